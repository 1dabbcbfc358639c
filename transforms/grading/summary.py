"""The report's tables from graded forecasts (FORECAST_GRADE), one group per (currency, model, horizon).
Pure; the statistics and their intervals are described in :mod:`transforms.grading.stats`."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import polars as pl

from transforms.grading import stats as st

GROUP = ["currency", "model", "horizon"]
ZG_CAP_SD = 3.0  # |distance to zero gamma| beyond this (or no zero gamma in the grid) counts as 'far'
PIT_BINS = 10


def _groups(grades: pl.DataFrame):
    graded = grades.filter(pl.col("status") == "graded").sort("snapshot_ts")
    for key, g in graded.group_by(GROUP, maintain_order=True):
        yield dict(zip(GROUP, key, strict=True)), g


def _days(g: pl.DataFrame) -> np.ndarray:
    return st.day_index(g["snapshot_ts"].dt.epoch("ms").to_numpy())


def _block(g: pl.DataFrame) -> int:
    return st.block_days(float(g["horizon_hours"].max()))


def _interval(g: pl.DataFrame, columns: list[np.ndarray], stat) -> tuple[float, float, float]:
    return st.bootstrap(st.day_sums(_days(g), columns), stat, _block(g))


def gex_coins(g: pl.DataFrame) -> np.ndarray:
    """Total dealer GEX in coins per 1 % move (total_gex_usd / spot): the size of the gamma hedge, free of the
    price level that inflates the USD figure over a long history. NULL GEX counts as 0."""
    return (g["total_gex_usd"].fill_null(0.0) / g["spot"]).to_numpy()


def regime_labels(g: pl.DataFrame) -> dict[str, np.ndarray]:
    """Regime kind -> label per row: GEX sign, GEX quintile (in coins, within the group), and distance from
    spot to zero gamma in implied sd."""
    pos = g["gex_positive"].fill_null(False).to_numpy()
    coins = gex_coins(g)
    edges = np.quantile(coins, [0.2, 0.4, 0.6, 0.8])
    quintile = np.array([f"Q{q + 1}" for q in np.searchsorted(edges, coins, side="right")])
    dist = g["zero_gamma_distance_sd"].abs().fill_null(math.inf).to_numpy()
    near = np.where(dist <= 1.0, "<=1 sd", np.where(dist <= ZG_CAP_SD, "1-3 sd", ">3 sd or none"))
    return {"gex_sign": np.where(pos, "positive", "negative"), "gex_quintile": quintile, "zero_gamma_distance": near}


def ratio_by_regime(grades: pl.DataFrame) -> pl.DataFrame:
    """Realised/implied move ratio sqrt(mean z^2) per regime, with n, days and a block-bootstrap interval."""
    rows = []
    for key, g in _groups(grades):
        z2 = g["z"].to_numpy() ** 2
        one = np.ones(g.height)
        labels = {"all": np.full(g.height, "all"), **regime_labels(g)}
        for kind, lab in labels.items():
            for value in sorted(set(lab.tolist())):
                m = (lab == value).astype(float)
                est, lo, hi = _interval(g, [z2 * m, one * m], st.rms)
                n_days = int(np.unique(_days(g)[m > 0]).size)
                rows.append({**key, "regime_kind": kind, "regime": value, "n": int(m.sum()), "days": n_days,
                             "ratio": est, "ci_low": lo, "ci_high": hi})  # fmt: skip
    return pl.DataFrame(rows, orient="row") if rows else pl.DataFrame()


GEX_HIGH_LOW = "gex above - below median"
GEX_SIGN = "gex positive - negative"


def regime_difference(grades: pl.DataFrame) -> pl.DataFrame:
    """Ratio in the higher-GEX regime minus the lower one, with its interval (the pinning claim: < 0): GEX in
    coins above minus at-or-below the group's median, and positive minus negative GEX when both occur."""
    rows = []
    for key, g in _groups(grades):
        z2 = g["z"].to_numpy() ** 2
        coins = gex_coins(g)
        splits = {
            GEX_HIGH_LOW: (coins > np.median(coins)).astype(float),
            GEX_SIGN: g["gex_positive"].fill_null(False).to_numpy().astype(float),
        }
        for name, a in splits.items():
            b = 1.0 - a
            if a.sum() == 0 or b.sum() == 0:
                continue
            est, lo, hi = _interval(g, [z2 * a, a, z2 * b, b], st.rms_difference)
            counts = {"n_a": int(a.sum()), "n_b": int(b.sum())}
            rows.append({**key, "comparison": name, **counts, "difference": est, "ci_low": lo, "ci_high": hi})
    return pl.DataFrame(rows, orient="row") if rows else pl.DataFrame()


def calibration(grades: pl.DataFrame) -> pl.DataFrame:
    """Coverage of the +-1 sd / +-2 sd bands (nominal 68.3 % / 95.4 %) and the flow-direction hit rate."""
    rows = []
    for key, g in _groups(grades):
        one = np.ones(g.height)
        for name, col, nominal in (("1sigma", "in_1sigma", 0.6827), ("2sigma", "in_2sigma", 0.9545)):
            est, lo, hi = _interval(g, [g[col].cast(pl.Float64).to_numpy(), one], st.mean)
            rows.append({**key, "measure": f"coverage_{name}", "nominal": nominal, "n": g.height,
                         "value": est, "ci_low": lo, "ci_high": hi})  # fmt: skip
        hit = g["flow_direction_hit"]
        known = hit.is_not_null().cast(pl.Float64).to_numpy()
        est, lo, hi = _interval(g, [hit.fill_null(False).cast(pl.Float64).to_numpy(), known], st.mean)
        rows.append({**key, "measure": "flow_direction_hit_rate", "nominal": 0.5, "n": int(known.sum()),
                     "value": est, "ci_low": lo, "ci_high": hi})  # fmt: skip
    return pl.DataFrame(rows, orient="row") if rows else pl.DataFrame()


def pit_histogram(grades: pl.DataFrame) -> pl.DataFrame:
    """Counts of PIT values in 10 equal bins per group (flat = calibrated)."""
    rows = []
    for key, g in _groups(grades):
        counts, _ = np.histogram(g["pit"].to_numpy(), bins=PIT_BINS, range=(0.0, 1.0))
        rows += [{**key, "bin": i, "bin_low": i / PIT_BINS, "count": int(c)} for i, c in enumerate(counts)]
    return pl.DataFrame(rows, orient="row") if rows else pl.DataFrame()


REGRESSORS = ("intercept", "implied_sd", "gex_kcoins", "gex_positive", "zero_gamma_near", "gex_expiring_24h_share")


def _design(g: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    """Regressors with variation in this group (a model whose GEX never changes sign has no sign term)."""
    dist = g["zero_gamma_distance_sd"].abs().fill_null(math.inf).to_numpy()
    cols = {
        "intercept": np.ones(g.height),
        "implied_sd": g["implied_sd"].to_numpy(),
        "gex_kcoins": gex_coins(g) / 1000.0,
        "gex_positive": g["gex_positive"].fill_null(False).cast(pl.Float64).to_numpy(),
        "zero_gamma_near": (dist <= 1.0).astype(float),
        "gex_expiring_24h_share": g["gex_expiring_24h_share"].fill_null(0.0).to_numpy(),
    }
    names = [n for n in REGRESSORS if n == "intercept" or np.ptp(cols[n]) > 0]
    return names, np.column_stack([cols[n] for n in names])


def regression(grades: pl.DataFrame) -> pl.DataFrame:
    """|realised log move| on the implied sd plus regime terms, OLS with Newey-West standard errors.
    gex_kcoins = total GEX in thousand coins per 1 % move; zero_gamma_near = 1 when spot is within 1 implied
    sd of zero gamma; a NULL share counts as 0. Terms without variation in a group are left out."""
    rows = []
    for key, g in _groups(grades):
        if g.height < 3 * len(REGRESSORS):
            continue
        names, x = _design(g)
        t0 = g["snapshot_ts"].dt.epoch("ms").to_numpy()
        lag = st.newey_west_lag(t0, float(g["horizon_hours"].median()))
        beta, se = st.ols_hac(np.abs(g["realised_log_move"].to_numpy()), x, lag)
        for name, b, s in zip(names, beta, se, strict=True):
            ci = {"ci_low": float(b - 1.96 * s), "ci_high": float(b + 1.96 * s)}
            rows.append(
                {**key, "term": name, "coef": float(b), "se_newey_west": float(s), **ci, "n": g.height, "lag": lag}
            )
    return pl.DataFrame(rows, orient="row") if rows else pl.DataFrame()


def _oos_row(key: dict, g: pl.DataFrame, fit_until: datetime, min_fit: int) -> dict | None:
    fit = g.filter(pl.col("horizon_end_ts") <= fit_until)  # every input of these rows is at or before fit_until
    test = g.filter(pl.col("snapshot_ts") > fit_until)
    if fit.height < min_fit or test.height < 2:
        return None
    threshold = float(np.median(gex_coins(fit)))  # fitted in sample, like the scales
    k = st.fit_scales(fit["z"].to_numpy(), gex_coins(fit) > threshold, min_fit=min_fit)
    z, sd = test["z"].to_numpy(), test["implied_sd"].to_numpy()
    high = gex_coins(test) > threshold
    scores = {
        "plain": st.scaled_scores(z, sd, np.ones(z.size)),
        "const": st.scaled_scores(z, sd, np.full(z.size, k["k_all"])),
        "gex": st.scaled_scores(z, sd, np.where(high, k["k_high"], k["k_low"])),
    }
    head = {"fit_until": fit_until, "n_fit": fit.height, "n_test": test.height, "gex_threshold_coins": threshold}
    row = {**key, **head, **k}
    one = np.ones(z.size)
    for i, score in enumerate(("crps", "log_score")):
        for name in scores:
            row[f"{score}_{name}"] = float(np.mean(scores[name][i]))
        for a, b in (("gex", "plain"), ("gex", "const"), ("const", "plain")):
            est, lo, hi = _interval(test, [scores[a][i] - scores[b][i], one], st.mean)
            row |= {f"{score}_{a}_minus_{b}": est, f"{score}_{a}_minus_{b}_low": lo, f"{score}_{a}_minus_{b}_high": hi}
    return row


def out_of_sample(grades: pl.DataFrame, fit_until: datetime | None, min_fit: int = st.MIN_FIT) -> pl.DataFrame:
    """Scores of plain / const / gex after ``fit_until`` and the differences with intervals (< 0 = better).
    A group needs ``min_fit`` rows whose horizon ended by ``fit_until`` (each GEX sign too, for its own scale)."""
    if fit_until is None:
        return pl.DataFrame()
    rows = [r for key, g in _groups(grades) if (r := _oos_row(key, g, fit_until, min_fit)) is not None]
    return pl.DataFrame(rows, orient="row") if rows else pl.DataFrame()


def counts(grades: pl.DataFrame) -> pl.DataFrame:
    """Forecasts per group and status, with the sources of the realised prices."""
    return (
        grades.group_by(*GROUP, "status", "realised_source")
        .agg(
            pl.len().alias("forecasts"),
            pl.col("snapshot_ts").min().alias("first"),
            pl.col("snapshot_ts").max().alias("last"),
        )
        .sort(*GROUP, "status", "realised_source", nulls_last=True)
    )


__all__ = [
    "calibration",
    "counts",
    "out_of_sample",
    "pit_histogram",
    "ratio_by_regime",
    "gex_coins",
    "regime_difference",
    "regime_labels",
    "regression",
]
