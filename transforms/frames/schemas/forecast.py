"""Daily flow forecast contracts (transforms/forecasting/forecast.py, DESIGN.md 4.4)."""

from __future__ import annotations

import polars as pl

from transforms.frames.schemas.core import UTC_TS

# One row per (currency, forecast_date, model, horizon_hours, price_level) -- with ``horizon`` as the
# tie-break when the next expiry happens to be exactly a fixed horizon away (e.g. t0 = 08:00 UTC, 24 h).
# D(S', t) = sum q_i c_i delta_i(F_i S'/S0, tau_i(t)) is the dealer delta (coins) of the book aged to time t;
# options with tau_i(t) <= 0 have settled and contribute nothing. Flows are coins dealers trade to stay
# hedged, > 0 = dealers buy. The four components sum to hedge_flow_coins at every level (by construction).
FLOW_FORECAST = {
    "currency": pl.String,
    "forecast_date": pl.Date,  # UTC date of t0
    "model": pl.String,  # dealer-positioning model: 'naive' | 'customer_long' | 'custom' | 'taker_flow'
    "horizon": pl.String,  # '1h', '24h', ..., or 'next_expiry'
    "horizon_hours": pl.Float64,  # h: hours from t0 to the horizon end (float for 'next_expiry')
    "price_level": pl.Float64,  # S', USD: spot at t0 + h
    "pct_move": pl.Float64,  # (S'/S0 - 1) * 100, percent
    "t0": UTC_TS,  # forecast start (UTC); >= snapshot_ts
    "snapshot_ts": UTC_TS,  # the option-chain snapshot the book comes from (UTC)
    "horizon_end_ts": UTC_TS,  # t0 + h (UTC)
    "spot": pl.Float64,  # S0 = index_price of the snapshot, USD
    "sigma_atm": pl.Float64,  # ATM implied vol to t0 + h, percent (total-variance interpolation)
    "hedge_flow_coins": pl.Float64,  # -(D(S', t0 + h) - D(S0, t0)), coins; > 0 = dealers buy
    "hedge_flow_usd": pl.Float64,  # hedge_flow_coins * S', USD
    "gamma_flow_coins": pl.Float64,  # -(D(S', t0) - D(S0, t0)): the price move alone at t0; 0 at S0
    "charm_flow_coins": pl.Float64,  # -(D_surv(S0, t0 + h) - D_surv(S0, t0)): time decay at S0 of surviving options
    "expiry_flow_coins": pl.Float64,  # +D_exp(S0, t0): unwind of the hedges of options settling by t0 + h
    "remainder_flow_coins": pl.Float64,  # total - gamma - charm - expiry: cross term of price and time
    "probability_weight": pl.Float64,  # log-normal probability of the bin around S' (sums to 1 per horizon)
}

# One row per (currency, forecast_date, model, horizon): the forecast weighted by the market-implied
# distribution. Flows in coins (> 0 = dealers buy) and USD (coins * price level). Moves of k sigma are
# S0 exp(k sigma_atm sqrt(h / 8760)); flows there are linear interpolations on the grid (NULL outside it).
FORECAST_SUMMARY = {
    "currency": pl.String,
    "forecast_date": pl.Date,
    "model": pl.String,
    "horizon": pl.String,
    "horizon_hours": pl.Float64,
    "t0": UTC_TS,
    "snapshot_ts": UTC_TS,
    "horizon_end_ts": UTC_TS,
    "spot": pl.Float64,  # S0, USD
    "sigma_atm": pl.Float64,  # percent, annualised (ACT/365)
    "sigma_move_pct": pl.Float64,  # sigma_atm/100 * sqrt(h / 8760) * 100: one standard deviation of ln(S/S0), percent
    "expected_flow_coins": pl.Float64,  # sum w * hedge_flow_coins
    "expected_flow_usd": pl.Float64,  # sum w * hedge_flow_usd
    "expected_abs_flow_coins": pl.Float64,  # sum w * |hedge_flow_coins|
    "expected_abs_flow_usd": pl.Float64,  # sum w * |hedge_flow_usd|
    "flow_at_spot_coins": pl.Float64,  # hedge_flow_coins at S' = S0 (= charm + expiry flow)
    "charm_flow_coins": pl.Float64,  # charm component (level-independent)
    "expiry_flow_coins": pl.Float64,  # expiry roll-off component (level-independent)
    "price_minus_2sigma": pl.Float64,  # USD
    "price_minus_1sigma": pl.Float64,
    "price_plus_1sigma": pl.Float64,
    "price_plus_2sigma": pl.Float64,
    "flow_minus_2sigma_coins": pl.Float64,  # hedge flow if spot is at price_minus_2sigma at t0 + h; NULL off-grid
    "flow_minus_1sigma_coins": pl.Float64,
    "flow_plus_1sigma_coins": pl.Float64,
    "flow_plus_2sigma_coins": pl.Float64,
    "flow_minus_2sigma_usd": pl.Float64,  # the coins times that price level
    "flow_minus_1sigma_usd": pl.Float64,
    "flow_plus_1sigma_usd": pl.Float64,
    "flow_plus_2sigma_usd": pl.Float64,
    "zero_gamma": pl.Float64,  # from key_levels at the snapshot, USD; NULL when not given or none in range
    "call_wall": pl.Float64,  # USD; NULL when not given
    "put_wall": pl.Float64,  # USD; NULL when not given
}

# One row per (currency, snapshot_ts, model, expiration_ts) for expiries after the snapshot: what leaves
# the dealer book at that settlement, with greeks as of the snapshot.
EXPIRY_ROLLOFF = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "model": pl.String,
    "expiration_ts": UTC_TS,  # 08:00 UTC settlement
    "hours_to_expiry": pl.Float64,  # from snapshot_ts
    "spot": pl.Float64,  # index_price at the snapshot, USD
    "options": pl.Int64,  # instruments of that expiry in the chain
    "open_interest": pl.Float64,  # contracts, calls + puts
    "call_open_interest": pl.Float64,  # contracts
    "put_open_interest": pl.Float64,  # contracts
    "dealer_gex_usd": pl.Float64,  # sum q c gamma F^2 0.01: USD per 1 % move leaving the book
    "dealer_delta_coins": pl.Float64,  # sum q c delta, coins; the dealers' hedge is -dealer_delta_coins
    "dealer_charm_coins_per_day": pl.Float64,  # sum q c charm_per_day: change of dealer delta per day passing
    # +dealer_delta_coins: coins dealers buy (> 0) unwinding the hedge, at today's deltas
    "unwind_flow_coins": pl.Float64,
    "unwind_flow_usd": pl.Float64,  # unwind_flow_coins * spot, USD
}
