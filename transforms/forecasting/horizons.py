"""Time and the implied distribution of a forecast horizon (DESIGN.md 4.4): millisecond timestamps, the 08:00 UTC
settlements, horizon labels and ends, the ATM implied-vol term structure and the log-normal weight of each price
level. Pure.

Probability weights: ln(S_{t0+h}/S0) ~ Normal(-v/2, v) with v = sigma_atm^2 h / 8760 (a martingale in
USD, ACT/365 hours), where sigma_atm is the ATM implied vol to t0 + h: each expiry's ATM IV (mark_iv
interpolated linearly in ln(K/F) at the expiry's forward F, the median underlying_price of the expiry;
calls and puts at one strike averaged; flat beyond the outermost strikes) becomes a total variance
w_e = sigma_e^2 tau_e(t0), interpolated linearly in time to h / 8760 years; flat vol before the first and
after the last expiry. Each level's weight is the probability of its bin, bounded by the midpoints between
neighbouring levels; the first and last bins absorb the tails, so the weights sum to 1.

Horizons: fixed hours (default 1 and 24) labelled '1h', '24h', and 'next_expiry' = from t0 to the
earliest expiration_ts after t0 in the snapshot (an 08:00 UTC settlement; the next 08:00 UTC when the
chain lists none), so that expiry is settled and its unwind is the expiry component.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from transforms.pricing.greeks import MS_PER_YEAR

MS_PER_HOUR = 3_600_000
HOURS_PER_YEAR = 8760.0  # 365 days: the ACT/365 year of the greeks
NEXT_EXPIRY = "next_expiry"
SETTLEMENT_HOUR_UTC = 8
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_erfc = np.frompyfunc(math.erfc, 1, 1)


# --- time ------------------------------------------------------------------------------------------------


def _epoch_ms(ts: datetime) -> int:
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        raise ValueError(f"t0 must be a timezone-aware datetime, got {ts!r}")
    return (ts - _EPOCH) // timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(ms))


def next_settlement(after: datetime) -> datetime:
    """The first 08:00 UTC strictly after ``after``."""
    after = after.astimezone(UTC)
    candidate = datetime.combine(after.date(), datetime.min.time(), UTC) + timedelta(hours=SETTLEMENT_HOUR_UTC)
    return candidate if candidate > after else candidate + timedelta(days=1)


def horizon_label(hours: float) -> str:
    """'1h', '24h', '1.5h' for a fixed horizon in hours."""
    return f"{hours:g}h"


# --- the implied distribution ----------------------------------------------------------------------------


def atm_term_structure(greeks: pl.DataFrame, t0_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(tau_e(t0) in years, ATM IV sigma_e as a decimal) per expiry alive at t0, ascending in tau.

    ``greeks`` is one snapshot's OPTION_GREEKS rows. The ATM IV of an expiry is its mark_iv smile (strikes
    with an IV; call and put at one strike averaged) interpolated linearly in ln(K/F) at ln(K/F) = 0, F the
    median forward of the expiry; flat beyond the outermost strikes.
    """
    priced = greeks.filter(pl.col("is_priced")).with_columns(
        pl.col("underlying_price").median().over("expiration_ts").alias("_forward")
    )
    nodes = (
        priced.group_by("expiration_ts", "strike")
        .agg(pl.col("mark_iv").mean(), pl.col("_forward").first())
        .with_columns((pl.col("strike") / pl.col("_forward")).log().alias("_x"), pl.col("expiration_ts").dt.epoch("ms"))
        .sort("expiration_ts", "_x")
    )
    taus, sigmas = [], []
    for (expiry_ms,), smile in nodes.group_by("expiration_ts", maintain_order=True):
        tau = (int(expiry_ms) - t0_ms) / MS_PER_YEAR
        if tau <= 0.0:
            continue
        taus.append(tau)
        sigmas.append(float(np.interp(0.0, smile["_x"].to_numpy(), smile["mark_iv"].to_numpy())) / 100.0)
    return np.array(taus), np.array(sigmas)


def atm_vol_to(tau_years: float, taus: np.ndarray, sigmas: np.ndarray) -> float:
    """ATM vol (decimal) to ``tau_years`` from the per-expiry ATM vols: total variance sigma^2 tau linear in
    tau between the bracketing expiries, flat vol before the first and after the last."""
    if taus.size == 0:
        raise ValueError("no expiry with an implied vol after t0: cannot weight the levels")
    if tau_years <= taus[0]:
        return float(sigmas[0])
    if tau_years >= taus[-1]:
        return float(sigmas[-1])
    variance = float(np.interp(tau_years, taus, sigmas**2 * taus))
    return math.sqrt(variance / tau_years)


def lognormal_bin_weights(levels: np.ndarray, spot: float, variance: float) -> np.ndarray:
    """P(S in the bin of each level) for ln(S/spot) ~ Normal(-variance/2, variance).

    Bins are bounded by the midpoints between neighbouring levels; the first and last bins run to 0 and
    infinity, so the weights sum to 1 (up to rounding).
    """
    if not variance > 0.0:
        raise ValueError(f"variance must be positive, got {variance!r}")
    edges = 0.5 * (levels[1:] + levels[:-1])
    sd = math.sqrt(variance)
    z = (np.log(edges / spot) + 0.5 * variance) / sd
    cdf = 0.5 * _erfc(-z / math.sqrt(2.0)).astype(np.float64)  # math.erfc per element (exact; no numpy erfc)
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


def forecast_start(forecast_date: date, snapshot_ts: datetime) -> datetime:
    """t0 of a daily forecast: the later of the forecast date's 08:00 UTC settlement and the snapshot time
    (a book observed before the settlement is aged to it, so the day's expiry has already left it)."""
    settle = datetime.combine(forecast_date, datetime.min.time(), UTC) + timedelta(hours=SETTLEMENT_HOUR_UTC)
    return max(settle, snapshot_ts.astimezone(UTC))


# --- the grid and the horizons -----------------------------------------------------------------------------


def _grid(half_width: float, step: float) -> np.ndarray:
    if not (math.isfinite(step) and step > 0.0):
        raise ValueError(f"step must be a positive number, got {step!r}")
    if not (math.isfinite(half_width) and 0.0 < half_width < 1.0):
        raise ValueError(f"half_width must be in (0, 1), got {half_width!r}")
    n = int(math.floor(half_width / step + 1e-9))
    return np.arange(-n, n + 1, dtype=np.float64) * step


def _horizons(horizons_hours, include_next_expiry: bool, t0_ms: int, expiries_ms: np.ndarray) -> list[tuple[str, int]]:
    """[(label, horizon end in epoch ms)] in the order asked, each label once (a repeated horizon is one
    horizon, not two sets of rows), 'next_expiry' last."""
    out = []
    for h in horizons_hours:
        h = float(h)
        if not (math.isfinite(h) and h > 0.0):
            raise ValueError(f"horizons must be positive hours, got {h!r}")
        label = horizon_label(h)
        if all(label != seen for seen, _ in out):
            out.append((label, t0_ms + round(h * MS_PER_HOUR)))
    if include_next_expiry:
        later = expiries_ms[expiries_ms > t0_ms]
        end = int(later.min()) if later.size else _epoch_ms(next_settlement(_from_ms(t0_ms)))
        out.append((NEXT_EXPIRY, end))
    return out


__all__ = [
    "HOURS_PER_YEAR",
    "MS_PER_HOUR",
    "NEXT_EXPIRY",
    "atm_term_structure",
    "atm_vol_to",
    "forecast_start",
    "horizon_label",
    "lognormal_bin_weights",
    "next_settlement",
]
