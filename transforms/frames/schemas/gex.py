"""GEX engine contracts (transforms/pricing/greeks.py, transforms/gex/positioning.py, exposure.py, depth.py,
scenarios.py): greeks, dealer positions, GEX by strike and profile, key levels, exposure by expiry and tenor,
scenario profiles."""

from __future__ import annotations

import polars as pl

from transforms.frames.schemas.core import OPTION_SNAPSHOT, UTC_TS

# One row per (currency, snapshot_ts, instrument_name): OPTION_SNAPSHOT plus Black-76 greeks on the
# option's own forward (DESIGN.md 4.1). Unpriced options (expired, no IV, no forward) carry 0 greeks.
OPTION_GREEKS = {
    **OPTION_SNAPSHOT,
    "tau_years": pl.Float64,  # (expiration_ts - snapshot_ts) / 365 days, ACT/365, ms precision
    "is_priced": pl.Boolean,  # tau > 0, 0 < mark_iv, underlying_price > 0, strike > 0
    "unpriced_reason": pl.String,  # null | 'expired' | 'no_iv' | 'no_forward' | 'bad_strike'
    "delta": pl.Float64,  # forward delta: N(d1) call, N(d1) - 1 put (coins per coin of contract)
    "gamma": pl.Float64,  # d(delta)/dF, per USD
    "vanna": pl.Float64,  # d(delta)/d(sigma), per 1.00 of sigma (divide by 100 for per vol point)
    "charm_per_year": pl.Float64,  # d(delta)/dt as time passes, per year
    "charm_per_day": pl.Float64,  # the same per day (charm_per_year / 365)
    "delta_premium_adjusted": pl.Float64,  # delta - mark_price (coin) for inverse options; delta for linear
}

# One row per (currency, snapshot_ts, model, instrument_name): the dealer book a positioning model implies.
# Every positioning model (naive, customer_long, custom, and later taker_flow) returns exactly this frame,
# and the exposure functions join it to the chain on (currency, snapshot_ts, instrument_name).
DEALER_POSITION = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "model": pl.String,  # 'naive' | 'customer_long' | 'custom' | 'taker_flow'
    "instrument_name": pl.String,
    "dealer_contracts": pl.Float64,  # signed contracts, + = dealers long
    "method": pl.String,  # the rule that produced the row, e.g. 'oi_sign_by_type', 'user_book'
    "is_fallback": pl.Boolean,  # True when the model fell back to another rule for this instrument
}

# A user-supplied dealer book for the 'custom' model: one row per instrument_name after validation.
DEALER_BOOK = {
    "instrument_name": pl.String,
    "contracts": pl.Float64,  # signed contracts, + = dealers long
}

# One row per (currency, snapshot_ts, model, expiration_ts, strike); expiration_ts NULL = all expiries summed.
GEX_BY_STRIKE = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "model": pl.String,
    "expiration_ts": UTC_TS,  # NULL on the all-expiries rows
    "strike": pl.Float64,  # USD
    "call_gex_usd": pl.Float64,  # dealer-signed q*c*gamma*F^2*0.01 of the calls: USD per 1 % move
    "put_gex_usd": pl.Float64,  # the same for the puts
    "net_gex_usd": pl.Float64,  # call_gex_usd + put_gex_usd; > 0 = dealers long gamma (dampening)
    "call_open_interest": pl.Float64,  # contracts
    "put_open_interest": pl.Float64,  # contracts
    # dealer vanna / charm (issue 15; NULL in files computed before): change of dealer delta, calls + puts
    "vanna_coins_per_vol": pl.Float64,  # sum q*c*vanna/100: coins per +1 vol point of IV
    "vanna_usd_per_vol": pl.Float64,  # sum q*c*vanna/100*F: USD per +1 vol point
    "charm_coins_per_day": pl.Float64,  # sum q*c*charm_per_day: coins per day passing
    "charm_usd_per_day": pl.Float64,  # sum q*c*charm_per_day*F: USD per day passing
}

# One row per (currency, snapshot_ts, model, price_level): the chain re-priced at spot level S'.
GEX_PROFILE = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "model": pl.String,
    "price_level": pl.Float64,  # S', USD
    "pct_from_spot": pl.Float64,  # (S'/S0 - 1) * 100, percent
    "dealer_gex_usd": pl.Float64,  # sum q*c*gamma(F')*F'^2*0.01 at S': USD per 1 % move
    "dealer_delta": pl.Float64,  # D(S') = sum q*c*delta(F'), coins
    "hedge_flow_coins": pl.Float64,  # -(D(S') - D(S0)), coins; > 0 = dealers buy on the way to S'
    "hedge_flow_usd": pl.Float64,  # hedge_flow_coins * S', USD
}

# One row per (currency, snapshot_ts, model).
KEY_LEVELS = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "model": pl.String,
    "spot": pl.Float64,  # index_price, USD
    "total_gex_usd": pl.Float64,  # sum of dealer GEX at spot, USD per 1 % move
    "zero_gamma": pl.Float64,  # USD; root of the re-priced GEX(S') nearest spot; NULL if none in the grid range
    "zero_gamma_roots": pl.List(pl.Float64),  # every root in range, ascending, USD
    "call_wall": pl.Float64,  # strike with the largest call gamma*OI*c*F^2*0.01 over all expiries, USD
    "put_wall": pl.Float64,  # the same for puts
    "abs_gamma_strike": pl.Float64,  # the same for calls + puts
    "max_pain": pl.Float64,  # strike minimising holders' USD payout at the nearest expiry with OI
    "max_pain_expiry": UTC_TS,  # that expiry
    "gex_expiring_24h_share": pl.Float64,  # sum |GEX_i| of options expiring within 24 h / sum |GEX_i|; NULL if 0
}


# Stored dealer_positions: the contract plus the taker_flow diagnostics (NULL for other models).
DEALER_POSITION_STORED = {
    **DEALER_POSITION,
    "trades_used": pl.Int64,  # trades counted (ts <= snapshot_ts, blocks/combos excluded unless asked)
    "block_trades_excluded": pl.Int64,
    "liquidations": pl.Int64,
    "net_taker_contracts": pl.Float64,  # sum of taker amount, buy = +1, sell = -1
    "gross_taker_contracts": pl.Float64,
    "is_capped": pl.Boolean,  # dealer position capped to +-open interest
}

# Stored key_levels: the contract plus each model's distance from the naive model.
KEY_LEVELS_STORED = {
    **KEY_LEVELS,
    "naive_total_gex_usd": pl.Float64,
    "total_gex_vs_naive_usd": pl.Float64,  # total_gex_usd - naive's; 0 for naive
    "zero_gamma_vs_naive": pl.Float64,  # zero_gamma - naive's, USD; NULL when either is NULL
}


# --- Depth: exposure by expiry and tenor (transforms/gex/depth.py, issue 15) ---------------------------------
# Dealer-signed, for dealer position q (contracts), contract size c, the option's forward F (USD).
# USD columns convert coins at each option's own forward F, as GEX does (GEX = q c gamma F^2 0.01).

# One row per (currency, snapshot_ts, model, expiration_ts) of the options in the chain.
EXPOSURE_BY_EXPIRY = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "model": pl.String,
    "expiration_ts": UTC_TS,  # 08:00 UTC settlement
    "hours_to_expiry": pl.Float64,  # from snapshot_ts
    "options": pl.Int64,  # instruments of that expiry joined to the model's positions
    "gex_usd": pl.Float64,  # sum q c gamma F^2 0.01: USD per 1 % move; > 0 = dealers long gamma
    "dealer_delta_coins": pl.Float64,  # DEX: sum q c delta, coins (dealers hold -this as hedge)
    "dealer_delta_usd": pl.Float64,  # sum q c delta F, USD
    "vanna_coins_per_vol": pl.Float64,  # sum q c vanna / 100: change of dealer delta per +1 vol point, coins
    "vanna_usd_per_vol": pl.Float64,  # the same times F, USD
    "charm_coins_per_day": pl.Float64,  # sum q c charm_per_day: change of dealer delta per day passing, coins
    "charm_usd_per_day": pl.Float64,  # the same times F, USD
    "open_interest": pl.Float64,  # contracts, calls + puts
    "call_open_interest": pl.Float64,
    "put_open_interest": pl.Float64,
}

# One row per (currency, snapshot_ts, model, tenor): tenor '1d' | '7d' | '30d' = the options expiring within
# 1, 7, 30 days of the snapshot (tau <= N/365 years, cumulative); 'all' = every option (= key_levels).
KEY_LEVELS_BY_TENOR = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "model": pl.String,
    "tenor": pl.String,
    "max_days": pl.Float64,  # N (NULL for 'all')
    "spot": pl.Float64,  # index_price, USD
    "expiries": pl.Int64,  # expiries in the bucket
    "total_gex_usd": pl.Float64,  # USD per 1 % move
    "dealer_delta_coins": pl.Float64,
    "vanna_coins_per_vol": pl.Float64,
    "charm_coins_per_day": pl.Float64,
    "zero_gamma": pl.Float64,  # root of the bucket's re-priced GEX(S') nearest spot, USD; NULL if none in range
    "zero_gamma_roots": pl.List(pl.Float64),
    "call_wall": pl.Float64,  # strike with the largest call gamma*OI*c*F^2*0.01 in the bucket, USD
    "put_wall": pl.Float64,
    "abs_gamma_strike": pl.Float64,
}

# One row per (currency, snapshot_ts, model, scenario, price_level): the dealer book under a what-if scenario
# (transforms/gex/scenarios.py). Flows in coins from (S0, t0) to the scenario at S', > 0 = dealers buy; the three
# parts sum to hedge_flow_coins at every level.
SCENARIO_PROFILE = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "model": pl.String,
    "scenario": pl.String,  # rolloff_next | rolloff_monthly | iv_minus_10 | iv_minus_5 | iv_plus_5 | iv_plus_10 | ...
    "horizon_ts": UTC_TS,  # t1: the time the book is re-priced at (snapshot_ts for the vol scenarios)
    "price_level": pl.Float64,  # S', USD
    "pct_from_spot": pl.Float64,  # percent
    "dealer_gex_usd": pl.Float64,  # the scenario book's GEX at S': USD per 1 % move
    "dealer_delta": pl.Float64,  # the scenario book's dealer delta at S', coins
    "hedge_flow_coins": pl.Float64,  # -(D_scenario(S') - D(S0, t0)): coins, > 0 = dealers buy
    "gamma_flow_coins": pl.Float64,  # the price move at t1 and the old vols
    "vanna_flow_coins": pl.Float64,  # the vol change at S'
    "charm_flow_coins": pl.Float64,  # time passing at spot (incl. the unwind of settled options); level-independent
    "hedge_flow_usd": pl.Float64,  # hedge_flow_coins * S'
    "zero_gamma": pl.Float64,  # the scenario book's zero gamma nearest spot, USD; NULL if none in range
}
