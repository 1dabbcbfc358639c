"""Key levels of a re-priced GEX profile (DESIGN.md 4.3): zero gamma (every sign change of GEX(S'), refined by
Brent's method), call/put walls and the abs-gamma strike (from open interest), max pain, and the key_levels row
and table of one or many (currency, snapshot_ts, model) groups. :mod:`transforms.gex.exposure` builds the
profiles; this module reads levels off them.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from transforms.frames.schemas import KEY_LEVELS, check

GROUP = ["currency", "snapshot_ts", "model"]
_SNAPSHOT = ["currency", "snapshot_ts"]
_DAY_YEARS = 1.0 / 365.0


def _brent(f, a: float, b: float, fa: float, fb: float, xtol: float, rtol: float = 4.0 * np.finfo(float).eps) -> float:
    """Root of f in [a, b] with f(a) f(b) < 0: Brent's method (the algorithm of scipy.optimize.brentq)."""
    xpre, xcur, fpre, fcur = a, b, fa, fb
    xblk = fblk = spre = scur = 0.0
    for _ in range(200):
        if fpre != 0.0 and fcur != 0.0 and (fpre < 0.0) != (fcur < 0.0):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        tol = (xtol + rtol * abs(xcur)) / 2.0
        sbis = (xblk - xcur) / 2.0
        if fcur == 0.0 or abs(sbis) < tol:
            return xcur
        if abs(spre) > tol and abs(fcur) < abs(fpre):
            if xpre == xblk:
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2.0 * abs(stry) < min(abs(spre), 3.0 * abs(sbis) - tol):
                spre, scur = scur, stry
            else:
                spre = scur = sbis
        else:
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > tol else (tol if sbis > 0.0 else -tol)
        fcur = f(xcur)
    return xcur


def zero_gamma_roots(profile, ratio: np.ndarray, gex: np.ndarray, *, xtol: float = 1e-12) -> list[float]:
    """Every S'/S0 in [ratio[0], ratio[-1]] where the continuous GEX(S') changes sign, ascending.

    Sign changes are bracketed on the grid values ``gex`` (= profile(ratio)); each bracket is refined by
    Brent's method on ``profile`` evaluated at a single level, to ``xtol`` in S'/S0. A grid level where
    GEX is exactly 0 between levels of opposite sign is itself the root; touching 0 without changing sign
    is not a root. Two sign changes within one grid step cancel out and are not seen.
    """

    def f(r: float) -> float:
        return float(profile(np.array([r]))[0][0])

    nonzero = np.flatnonzero(gex != 0.0)
    negative = gex[nonzero] < 0.0
    roots = []
    for i in np.flatnonzero(negative[:-1] != negative[1:]):  # consecutive nonzero levels of opposite sign
        j, k = nonzero[i], nonzero[i + 1]
        if k == j + 1:
            roots.append(_brent(f, float(ratio[j]), float(ratio[k]), float(gex[j]), float(gex[k]), xtol))
        else:  # exact zeros in between: the middle one
            roots.append(float(ratio[(j + k) // 2]))
    return roots


def _levels_row(key, group: pl.DataFrame, spot: float, profile, ratio: np.ndarray, gex: np.ndarray) -> dict:
    roots = [r * spot for r in zero_gamma_roots(profile, ratio, gex)]
    abs_gex = group["gex_usd"].abs()
    total_abs = float(abs_gex.sum())
    expiring = float(abs_gex.filter(group["tau_years"] <= _DAY_YEARS).sum())
    return {
        "currency": key[0],
        "snapshot_ts": key[1],
        "model": key[2],
        "spot": spot,
        "total_gex_usd": float(group["gex_usd"].sum()),
        "zero_gamma": min(roots, key=lambda r: (abs(r - spot), r)) if roots else None,
        "zero_gamma_roots": roots,
        "gex_expiring_24h_share": expiring / total_abs if total_abs > 0.0 else None,
    }


def _levels_table(rows: list[dict], greeks: pl.DataFrame) -> pl.DataFrame:
    schema = {
        c: KEY_LEVELS[c]
        for c in [
            "currency",
            "snapshot_ts",
            "model",
            "spot",
            "total_gex_usd",
            "zero_gamma",
            "zero_gamma_roots",
            "gex_expiring_24h_share",
        ]
    }
    levels = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    out = (
        levels.join(_walls(greeks), on=_SNAPSHOT, how="left")
        .join(_max_pain(greeks), on=_SNAPSHOT, how="left")
        .select(list(KEY_LEVELS))
        .sort(*GROUP)
    )
    check(out, KEY_LEVELS, "key_levels")
    return out


def _walls(greeks: pl.DataFrame) -> pl.DataFrame:
    """call_wall, put_wall, abs_gamma_strike per (currency, snapshot_ts) from gamma * OI * c * F^2 * 0.01."""
    oi_gex = (
        pl.col("gamma")
        * pl.col("open_interest").fill_null(0.0)
        * pl.col("contract_size")
        * pl.col("underlying_price") ** 2
        * 0.01
    )
    is_call = pl.col("option_type") == "call"
    by_strike = (
        greeks.with_columns(pl.when(pl.col("is_priced")).then(oi_gex).otherwise(0.0).alias("oi_gex"))
        .group_by(*_SNAPSHOT, "strike")
        .agg(pl.col("oi_gex").filter(is_call).sum().alias("call"), pl.col("oi_gex").filter(~is_call).sum().alias("put"))
        .with_columns((pl.col("call") + pl.col("put")).alias("both"))
    )

    def wall(col: str) -> pl.Expr:
        best = pl.col("strike").sort_by([col, "strike"], descending=[True, False]).first()
        return (
            pl.when(pl.col(col).max() > 0.0)
            .then(best)
            .otherwise(None)
            .alias({"call": "call_wall", "put": "put_wall", "both": "abs_gamma_strike"}[col])
        )

    return by_strike.group_by(*_SNAPSHOT).agg(wall("call"), wall("put"), wall("both"))


def _max_pain(greeks: pl.DataFrame) -> pl.DataFrame:
    """Strike minimising the USD payout to holders at the nearest unexpired expiry with open interest."""
    live = greeks.filter((pl.col("expiration_ts") > pl.col("snapshot_ts")) & (pl.col("open_interest") > 0.0))
    nearest = live.group_by(*_SNAPSHOT).agg(pl.col("expiration_ts").min().alias("max_pain_expiry"))
    options = greeks.join(
        nearest, left_on=[*_SNAPSHOT, "expiration_ts"], right_on=[*_SNAPSHOT, "max_pain_expiry"], how="semi"
    )
    candidates = options.select(*_SNAPSHOT, pl.col("strike").alias("settle")).unique()
    intrinsic = (
        pl.when(pl.col("option_type") == "call")
        .then((pl.col("settle") - pl.col("strike")).clip(lower_bound=0.0))
        .otherwise((pl.col("strike") - pl.col("settle")).clip(lower_bound=0.0))
    )
    payout = (
        candidates.join(options, on=_SNAPSHOT, how="inner")
        .with_columns((pl.col("open_interest") * pl.col("contract_size") * intrinsic).alias("payout_usd"))
        .group_by(*_SNAPSHOT, "settle")
        .agg(pl.col("payout_usd").sum())
    )
    best = payout.group_by(*_SNAPSHOT).agg(pl.col("settle").sort_by(["payout_usd", "settle"]).first().alias("max_pain"))
    return best.join(nearest, on=_SNAPSHOT, how="left")


__all__ = ["zero_gamma_roots"]
