"""Grading forecasts against what followed (issue 14). Pure: frames and arrays in, frames and numbers out.

For a forecast made at t0 = snapshot_ts with horizon h (FORECAST_HISTORY row) and the recorded index
prices P(t) (INDEX_PRICE rows, real recordings only):

    target       = t0 + h
    realised_ts  = the latest recording with target - 1 h <= ts <= target and ts > t0 (none: 'no_price')
    r            = ln(P(realised_ts) / S0)                          the realised log move
    v            = (sigma_atm / 100)^2 h / 8760                      the forecast's total variance to t0 + h
    sd           = sqrt(v (realised_ts - t0) / h)                    scaled to the time that actually elapsed
    z            = (r + sd^2 / 2) / sd                               the forecast says z ~ Normal(0, 1)
    pit          = Phi(z);   in_1sigma = |z| <= 1;   in_2sigma = |z| <= 2
    crps         = sd [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)]   of Normal(-sd^2/2, sd^2) at r
    log_score    = ln(sd sqrt(2 pi)) + z^2 / 2                      -log density at r (lower is better)

Regime at t0: gex_positive = total_gex_usd > 0; zero_gamma_distance_sd = ln(S0 / zero_gamma) / sqrt(v);
gex_expiring_24h_share. Walls touched only where recordings <= 5 min apart cover (t0, realised_ts]
(otherwise NULL: sparse recordings cannot tell whether a level was touched in between).

Every number of a row depends only on the forecast row and on recordings at or before its realised_ts
(<= t0 + h): nothing later can change it.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from transforms.frames.schemas import check
from transforms.grading.schemas import FORECAST_GRADE, FORECAST_HISTORY, INDEX_PRICE

HOURS_PER_YEAR = 8760.0
TOLERANCE_MS = 3_600_000  # a recording up to 1 h before t0 + h stands for the index at t0 + h
PATH_MAX_GAP_MS = 300_000  # recordings this close together count as an intraday path (wall touches)
SOURCE_ORDER = ("snapshot", "derivative_ticker")
_SQRT_PI = math.sqrt(math.pi)

_erfc = np.frompyfunc(math.erfc, 1, 1)


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (exact to double precision via erfc)."""
    x = np.asarray(x, dtype=np.float64)
    return _erfc(-x / math.sqrt(2.0)).astype(np.float64) * 0.5


def norm_pdf(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def crps_normal(z: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """CRPS of Normal(mu, sd^2) at an outcome x with z = (x - mu) / sd (Gneiting & Raftery 2007)."""
    z = np.asarray(z, dtype=np.float64)
    return np.asarray(sd) * (z * (2.0 * norm_cdf(z) - 1.0) + 2.0 * norm_pdf(z) - 1.0 / _SQRT_PI)


def log_score_normal(z: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """-log density of Normal(mu, sd^2) at x, z = (x - mu) / sd."""
    z = np.asarray(z, dtype=np.float64)
    return np.log(np.asarray(sd) * math.sqrt(2.0 * math.pi)) + 0.5 * z * z


def index_observations(snapshot_index: pl.DataFrame, ticker_index: pl.DataFrame | None = None) -> pl.DataFrame:
    """INDEX_PRICE rows from the stored snapshots' index prices and (optionally) recorded derivative_ticker
    rows; one row per (currency, index_ts) -- a snapshot's own index wins a tie (it is the same recording)."""
    frames = [snapshot_index.select(list(INDEX_PRICE))]
    if ticker_index is not None and not ticker_index.is_empty():
        frames.append(ticker_index.select(list(INDEX_PRICE)))
    rank = pl.col("source").replace_strict(list(SOURCE_ORDER), list(range(len(SOURCE_ORDER))), default=99)
    out = (
        pl.concat(frames)
        .filter(pl.col("index_price").is_not_null() & (pl.col("index_price") > 0))
        .sort("currency", "index_ts", rank)
        .unique(["currency", "index_ts"], keep="first", maintain_order=True)
    )
    check(out, INDEX_PRICE, "index observations")
    return out


def _realised(history: pl.DataFrame, prices: pl.DataFrame) -> pl.DataFrame:
    """history + realised_ts, realised_price, realised_source (as-of join, backward, within 1 h, after t0)."""
    obs = prices.select(
        "currency",
        pl.col("index_ts").alias("realised_ts"),
        pl.col("index_price").alias("realised_price"),
        pl.col("source").alias("realised_source"),
    ).sort("currency", "realised_ts")
    joined = (
        history.sort("horizon_end_ts")
        .join_asof(
            obs.sort("realised_ts"),
            left_on="horizon_end_ts",
            right_on="realised_ts",
            by="currency",
            strategy="backward",
            tolerance=f"{TOLERANCE_MS}ms",
            check_sortedness=False,
        )
        .with_columns(found=pl.col("realised_ts").is_not_null() & (pl.col("realised_ts") > pl.col("snapshot_ts")))
    )
    drop = ~pl.col("found")
    return joined.with_columns(
        pl.when(drop).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("realised_ts", "realised_price", "realised_source")
    ).drop("found")


def _scores(frame: pl.DataFrame) -> pl.DataFrame:
    """The per-row numbers of the module docstring, vectorised in numpy (NaN -> NULL where ungraded)."""
    r = frame["realised_log_move"].to_numpy().astype(np.float64)
    sd = frame["implied_sd"].to_numpy().astype(np.float64)
    graded = np.isfinite(r) & np.isfinite(sd) & (sd > 0)
    z = np.where(graded, (r + 0.5 * sd * sd) / np.where(graded, sd, 1.0), np.nan)
    zz = np.where(graded, z, 0.0)
    sdd = np.where(graded, sd, 1.0)
    cols = {
        "z": z,
        "pit": np.where(graded, norm_cdf(zz), np.nan),
        "crps": np.where(graded, crps_normal(zz, sdd), np.nan),
        "log_score": np.where(graded, log_score_normal(zz, sdd), np.nan),
    }
    out = frame.with_columns(pl.Series(k, v).fill_nan(None) for k, v in cols.items())
    return out.with_columns(
        (pl.col("z").abs() <= 1.0).alias("in_1sigma"),
        (pl.col("z").abs() <= 2.0).alias("in_2sigma"),
    )


def _wall_touches(frame: pl.DataFrame, prices: pl.DataFrame) -> pl.DataFrame:
    """call/put_wall_touched where recordings <= PATH_MAX_GAP_MS apart cover (t0, realised_ts], else NULL."""
    calls, puts = [], []
    series = {
        c: (g["index_ts"].dt.epoch("ms").to_numpy(), g["index_price"].to_numpy())
        for (c,), g in prices.sort("index_ts").group_by("currency", maintain_order=True)
    }
    for row in frame.select("currency", "snapshot_ts", "realised_ts", "call_wall", "put_wall").iter_rows():
        currency, t0, t1, call_wall, put_wall = row
        ts, px = series.get(currency, (np.array([], np.int64), np.array([])))
        if t1 is None:
            calls.append(None)
            puts.append(None)
            continue
        lo = np.searchsorted(ts, int(t0.timestamp() * 1000), side="left")
        hi = np.searchsorted(ts, int(t1.timestamp() * 1000), side="right")
        path_ts, path = ts[lo:hi], px[lo:hi]
        covered = path_ts.size >= 2 and float(np.diff(path_ts).max()) <= PATH_MAX_GAP_MS
        calls.append(bool(path.max() >= call_wall) if covered and call_wall is not None else None)
        puts.append(bool(path.min() <= put_wall) if covered and put_wall is not None else None)
    return frame.with_columns(
        pl.Series("call_wall_touched", calls, pl.Boolean), pl.Series("put_wall_touched", puts, pl.Boolean)
    )


def grade_forecasts(history: pl.DataFrame, prices: pl.DataFrame) -> pl.DataFrame:
    """FORECAST_GRADE: one row per FORECAST_HISTORY row, graded against ``prices`` (INDEX_PRICE)."""
    check(history, FORECAST_HISTORY, "grade input")
    check(prices, INDEX_PRICE, "grade prices")
    if history.is_empty():
        return pl.DataFrame(schema=FORECAST_GRADE)
    ms_h = pl.col("horizon_hours")
    var = (pl.col("sigma_atm") / 100.0) ** 2 * ms_h / HOURS_PER_YEAR
    base = _realised(history, prices).with_columns(var.alias("implied_var"))
    elapsed = (pl.col("realised_ts") - pl.col("snapshot_ts")).dt.total_milliseconds() / 3_600_000.0
    base = base.with_columns(elapsed.alias("elapsed_hours")).with_columns(
        pl.when(pl.col("realised_ts").is_null()).then(pl.lit("no_price")).otherwise(pl.lit("graded")).alias("status"),
        (pl.col("realised_price") / pl.col("spot")).log().alias("realised_log_move"),
        (pl.col("implied_var") * pl.col("elapsed_hours") / ms_h).sqrt().alias("implied_sd"),
        (pl.col("total_gex_usd") > 0).alias("gex_positive"),
        ((pl.col("spot") / pl.col("zero_gamma")).log() / pl.col("implied_var").sqrt()).alias("zero_gamma_distance_sd"),
    )
    flow_sign = pl.col("expected_flow_coins").sign()
    move_sign = pl.col("realised_log_move").sign()
    graded = _scores(base).with_columns(
        pl.when((flow_sign != 0) & (move_sign != 0)).then(flow_sign == move_sign).alias("flow_direction_hit")
    )
    out = (
        _wall_touches(graded, prices)
        .select([pl.col(c).cast(t) for c, t in FORECAST_GRADE.items()])
        .sort("currency", "snapshot_ts", "model", "horizon")
    )
    check(out, FORECAST_GRADE, "forecast_grades")
    return out


__all__ = [
    "PATH_MAX_GAP_MS",
    "TOLERANCE_MS",
    "crps_normal",
    "grade_forecasts",
    "index_observations",
    "log_score_normal",
    "norm_cdf",
    "norm_pdf",
]
