"""Frame contracts of forecast grading (issue 14): the per-snapshot forecast history, the index observations
used as realised prices, and the grades. Kept beside ``transforms/frames/schemas/`` so grading adds no churn there."""

from __future__ import annotations

import polars as pl

from transforms.frames.schemas import FORECAST_SUMMARY, UTC_TS

# One row per (currency, snapshot_ts, model, horizon): the forecast made AT the snapshot (t0 = snapshot_ts)
# from that snapshot alone. FORECAST_SUMMARY columns plus the regime at t0 from key levels.
FORECAST_HISTORY = {
    **FORECAST_SUMMARY,
    "total_gex_usd": pl.Float64,  # dealer GEX at spot, USD per 1 % move (key_levels)
    "gex_expiring_24h_share": pl.Float64,  # |GEX| of options expiring within 24 h / |GEX| (key_levels); NULL if 0
}

# One row per (currency, index_ts): a recorded index price (real recordings only).
INDEX_PRICE = {
    "currency": pl.String,
    "index_ts": UTC_TS,
    "index_price": pl.Float64,  # USD
    "source": pl.String,  # 'snapshot' (option_snapshots.index_price) | 'derivative_ticker' (Tardis <C>-PERPETUAL)
}

# One row per (currency, snapshot_ts, model, horizon), graded or not (status says why not).
FORECAST_GRADE = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,  # = t0 of the forecast
    "model": pl.String,
    "horizon": pl.String,  # '1h' | '24h' | 'next_expiry'
    "horizon_hours": pl.Float64,
    "horizon_end_ts": UTC_TS,  # t0 + h
    "status": pl.String,  # 'graded' | 'no_price' (no recording in [t0 + h - 1 h, t0 + h] after t0)
    "spot": pl.Float64,  # S0, USD
    "sigma_atm": pl.Float64,  # percent, annualised, to t0 + h
    "implied_var": pl.Float64,  # (sigma_atm/100)^2 * h / 8760: total variance of ln(S_{t0+h}/S0)
    "expected_flow_coins": pl.Float64,  # > 0 = dealers expected to buy
    "total_gex_usd": pl.Float64,
    "gex_positive": pl.Boolean,  # total_gex_usd > 0
    "zero_gamma": pl.Float64,  # USD; NULL when none in the +-25 % grid
    "zero_gamma_distance_sd": pl.Float64,  # ln(S0 / zero_gamma) / sqrt(implied_var); NULL without zero gamma
    "gex_expiring_24h_share": pl.Float64,
    "call_wall": pl.Float64,
    "put_wall": pl.Float64,
    "realised_ts": UTC_TS,  # the recording used: latest at or before t0 + h, within 1 h, after t0
    "realised_price": pl.Float64,  # USD
    "realised_source": pl.String,  # 'snapshot' | 'derivative_ticker'
    "elapsed_hours": pl.Float64,  # realised_ts - t0
    "realised_log_move": pl.Float64,  # ln(realised_price / S0)
    "implied_sd": pl.Float64,  # sqrt(implied_var * elapsed_hours / horizon_hours): the forecast's sd to realised_ts
    "z": pl.Float64,  # (realised_log_move + implied_sd^2 / 2) / implied_sd
    "pit": pl.Float64,  # Phi(z)
    "in_1sigma": pl.Boolean,  # |z| <= 1
    "in_2sigma": pl.Boolean,  # |z| <= 2
    "crps": pl.Float64,  # CRPS of Normal(-sd^2/2, sd^2) at the realised log move (log-return units)
    "log_score": pl.Float64,  # -log density of the same at the realised log move (lower is better)
    "flow_direction_hit": pl.Boolean,  # sign(expected_flow) == sign(realised move); NULL when either is 0
    "call_wall_touched": pl.Boolean,  # NULL unless recordings <= 5 min apart cover (t0, realised_ts]
    "put_wall_touched": pl.Boolean,
}

__all__ = ["FORECAST_GRADE", "FORECAST_HISTORY", "INDEX_PRICE"]
