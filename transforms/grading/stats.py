"""Statistics over graded forecasts (FORECAST_GRADE rows): intervals that respect overlapping horizons,
OLS with Newey-West standard errors, and the out-of-sample test of a GEX-conditioned scale. numpy only.

Intervals: a moving-block bootstrap over calendar days (UTC date of t0). Forecasts whose horizons overlap
(a 24 h forecast every ~6 h) are correlated; whole runs of ``block_days`` consecutive days are resampled,
so the correlation within a run is kept. Every statistic here is a function of per-day sums, so a
replicate is (day counts) @ (per-day sums). The random generator is seeded: same rows, same interval.

Out of sample: the forecast says z ~ Normal(0, 1). A scale k multiplies the forecast's sd (the mean stays
-sd^2/2); its maximum-likelihood value on rows whose horizon ended by ``fit_until`` is k^2 = mean(z^2).
Three predictive distributions are scored on rows whose t0 is after ``fit_until``:

    plain   k = 1                               the ATM implied distribution as published
    const   k = k_all                           one scale fitted in sample, no GEX
    gex     k = k_high or k_low                 GEX-conditioned: GEX in coins per 1 % move above / at or below
                                                its in-sample median (k_all when a side has < MIN_FIT rows)

The gain of 'gex' over 'const' is what dealer gamma adds beyond implied volatility.
"""

from __future__ import annotations

import math

import numpy as np

from transforms.grading.scores import crps_normal, log_score_normal

LEVEL = 0.95
REPLICATES = 2000
SEED = 20260731
MIN_DAYS = 10  # days with data an interval needs: a bootstrap over fewer days is not credible
MIN_FIT = 20  # in-sample rows a GEX regime needs for its own scale
MS_PER_DAY = 86_400_000


def day_index(t0_ms: np.ndarray) -> np.ndarray:
    """0-based calendar-day number of each t0 (epoch ms) from the first day present."""
    days = np.floor_divide(np.asarray(t0_ms, dtype=np.int64), MS_PER_DAY)
    return days - days.min() if days.size else days


def block_days(horizon_hours: float) -> int:
    """Days per bootstrap block: the days a horizon spans, plus one."""
    return int(math.ceil(max(horizon_hours, 1.0) / 24.0)) + 1


def day_sums(days: np.ndarray, columns: list[np.ndarray]) -> np.ndarray:
    """(n_days, k) per-day sums of each column (NaN counts as 0: pass indicator columns for counts)."""
    n_days = int(days.max()) + 1 if days.size else 0
    out = np.zeros((n_days, len(columns)))
    for j, col in enumerate(columns):
        np.add.at(out[:, j], days, np.nan_to_num(np.asarray(col, dtype=np.float64)))
    return out


def block_counts(n_days: int, block: int, replicates: int = REPLICATES, seed: int = SEED) -> np.ndarray:
    """(replicates, n_days): how often each day appears in a moving-block resample of the day sequence."""
    rng = np.random.default_rng(seed)
    block = max(1, min(block, n_days))
    n_blocks = int(math.ceil(n_days / block))
    starts = rng.integers(0, n_days - block + 1, size=(replicates, n_blocks))
    picks = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(replicates, -1)[:, :n_days]
    counts = np.zeros((replicates, n_days))
    np.add.at(counts, (np.repeat(np.arange(replicates), picks.shape[1]), picks.ravel()), 1.0)
    return counts


def bootstrap(sums: np.ndarray, stat, block: int, level: float = LEVEL) -> tuple[float, float, float]:
    """(estimate, low, high): ``stat`` (a function of a (..., k) array of column totals) on all days and its
    percentile interval over moving-block resamples of days (NaN with fewer than MIN_DAYS days with data)."""
    estimate = float(stat(sums.sum(axis=0)))
    if int(np.any(sums != 0.0, axis=1).sum()) < MIN_DAYS:
        return estimate, math.nan, math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = np.asarray(stat(block_counts(sums.shape[0], block) @ sums), dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return estimate, math.nan, math.nan
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(reps, [tail, 100.0 - tail])
    return estimate, float(low), float(high)


def rms(totals: np.ndarray) -> np.ndarray:
    """sqrt(sum z^2 / n) from totals (sum z^2, n): realised over implied move (1 = calibrated)."""
    return np.sqrt(totals[..., 0] / totals[..., 1])


def mean(totals: np.ndarray) -> np.ndarray:
    """sum x / n from totals (sum x, n)."""
    return totals[..., 0] / totals[..., 1]


def rms_difference(totals: np.ndarray) -> np.ndarray:
    """rms of the first group minus rms of the second, totals (sum z^2 a, n a, sum z^2 b, n b)."""
    return np.sqrt(totals[..., 0] / totals[..., 1]) - np.sqrt(totals[..., 2] / totals[..., 3])


# --- regression -----------------------------------------------------------------------------------------


def newey_west_lag(t0_ms: np.ndarray, horizon_hours: float) -> int:
    """Lags covering one horizon of overlap: ceil(h / median spacing of t0), at least 1."""
    if t0_ms.size < 2:
        return 1
    gap_h = float(np.median(np.diff(np.sort(t0_ms)))) / 3_600_000.0
    return max(1, int(math.ceil(horizon_hours / gap_h))) if gap_h > 0 else 1


def ols_hac(y: np.ndarray, x: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients of y on x (rows in time order; include the intercept column yourself) and their
    Newey-West (Bartlett kernel, ``lag`` lags) standard errors."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    xtx_inv = np.linalg.pinv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    scores = x * (y - x @ beta)[:, None]
    meat = scores.T @ scores
    for j in range(1, min(lag, len(y) - 1) + 1):
        gamma = scores[j:].T @ scores[:-j]
        meat += (1.0 - j / (lag + 1.0)) * (gamma + gamma.T)
    cov = xtx_inv @ meat @ xtx_inv
    return beta, np.sqrt(np.clip(np.diag(cov), 0.0, None))


# --- the out-of-sample scale --------------------------------------------------------------------------------


def fit_scales(z: np.ndarray, high: np.ndarray, min_fit: int = MIN_FIT) -> dict[str, float]:
    """k_all, k_high, k_low (maximum likelihood: sqrt(mean z^2); a regime with fewer than ``min_fit`` rows
    gets k_all) and the row counts, from in-sample rows; ``high`` marks the high-GEX rows."""
    z = np.asarray(z, dtype=np.float64)
    pos = np.asarray(high, dtype=bool)
    k_all = float(np.sqrt(np.mean(z * z))) if z.size else 1.0

    def k_of(mask):
        return float(np.sqrt(np.mean(z[mask] ** 2))) if mask.sum() >= min_fit else k_all

    return {
        "k_all": k_all,
        "k_high": k_of(pos),
        "k_low": k_of(~pos),
        "n_high": int(pos.sum()),
        "n_low": int((~pos).sum()),
    }


def scaled_scores(z: np.ndarray, sd: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(CRPS, log score) of the forecast with its sd multiplied by ``k`` (mean unchanged)."""
    k = np.asarray(k, dtype=np.float64)
    return crps_normal(z / k, sd * k), log_score_normal(z / k, sd * k)


__all__ = [
    "LEVEL",
    "MIN_DAYS",
    "MIN_FIT",
    "block_counts",
    "block_days",
    "bootstrap",
    "day_index",
    "day_sums",
    "fit_scales",
    "mean",
    "newey_west_lag",
    "ols_hac",
    "rms",
    "rms_difference",
    "scaled_scores",
]
