"""Frame contracts shared by the pure transforms.

Every frame that crosses a layer boundary is declared here once (column -> polars dtype) and checked
with :func:`check` at the boundary. Units are part of the name or stated in the comment.
"""

from __future__ import annotations

import polars as pl

from transforms.errors import GexflowError

UTC_TS = pl.Datetime("ms", "UTC")

# One row per (currency, snapshot_ts, instrument_name): a normalised option-chain snapshot.
# It carries the instrument attributes the math needs, so a snapshot is self-contained
# (Tardis backfills have no separate instruments call).
OPTION_SNAPSHOT = {
    "currency": pl.String,  # base coin: BTC, ETH, SOL (USDC-settled linear options are split by base coin)
    "snapshot_ts": UTC_TS,  # book summary creation_timestamp (UTC)
    "instrument_name": pl.String,
    "option_type": pl.String,  # 'call' | 'put'
    "strike": pl.Float64,  # USD (quote currency)
    "expiration_ts": UTC_TS,  # 08:00 UTC settlement
    "contract_size": pl.Float64,  # underlying coins per contract
    "is_linear": pl.Boolean,  # True for USDC-settled options (premium in USDC, not coin)
    "open_interest": pl.Float64,  # contracts
    "mark_iv": pl.Float64,  # percent, e.g. 57.62; nullable
    "mark_price": pl.Float64,  # premium in settlement currency (coin for inverse); nullable
    "bid_price": pl.Float64,  # nullable
    "ask_price": pl.Float64,  # nullable
    "underlying_price": pl.Float64,  # USD, the per-expiry forward Deribit prices the option on; nullable
    "underlying_index": pl.String,  # future name or SYN.<expiry>
    "index_price": pl.Float64,  # USD spot index at the snapshot
    "source": pl.String,  # 'deribit' | 'replay' | 'sample' | 'tardis'
}

# One row per (currency, instrument_name).
INSTRUMENT = {
    "currency": pl.String,
    "instrument_name": pl.String,
    "option_type": pl.String,
    "strike": pl.Float64,
    "expiration_ts": UTC_TS,
    "contract_size": pl.Float64,
    "settlement_period": pl.String,
    "settlement_currency": pl.String,
    "price_index": pl.String,
    "is_linear": pl.Boolean,
    "listed_ts": UTC_TS,  # creation_timestamp of the instrument; nullable
    "seen_ts": UTC_TS,  # snapshot time this version was recorded
}

# State table: one row per (run_id, currency, snapshot_ts) an ingest run landed.
INGEST_RUN = {
    "run_id": pl.String,
    "started_ts": UTC_TS,
    "finished_ts": UTC_TS,
    "source": pl.String,
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "options": pl.Int64,
    "open_interest": pl.Float64,
    "status": pl.String,
    "message": pl.String,
}


class SchemaError(GexflowError, ValueError):
    """A frame does not match its declared contract."""


def check(frame: pl.DataFrame | pl.LazyFrame, schema: dict, name: str) -> None:
    """Raise SchemaError naming every missing column or wrong dtype of ``frame`` against ``schema``."""
    actual = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    problems = []
    for col, dtype in schema.items():
        if col not in actual:
            problems.append(f"missing {col}")
        elif actual[col] != dtype:
            problems.append(f"{col} is {actual[col]}, expected {dtype}")
    if problems:
        raise SchemaError(f"{name}: " + "; ".join(problems))


def empty(schema: dict) -> pl.DataFrame:
    """An empty frame with exactly the declared columns and dtypes."""
    return pl.DataFrame(schema=schema)


# One row per (currency, trade_id): an option trade from ``public/get_last_trades_by_currency_and_time``.
# ``currency`` is the currency the tape was queried for (BTC, ETH, USDC): Deribit's trade_id is unique
# within it. Sizes are in Deribit's option amount unit (coins of the underlying, the unit of
# open_interest); prices in the settlement currency (coin for inverse options).
TRADE = {
    "currency": pl.String,
    "trade_id": pl.String,
    "ts": UTC_TS,  # trade timestamp (UTC, ms)
    "instrument_name": pl.String,
    "direction": pl.String,  # the TAKER's side: 'buy' | 'sell'
    "amount": pl.Float64,  # contracts (= coins for BTC/ETH options), > 0
    "price": pl.Float64,  # premium in settlement currency (coin for inverse options)
    "iv": pl.Float64,  # percent; nullable
    "index_price": pl.Float64,  # USD spot index at the trade
    "mark_price": pl.Float64,  # nullable (absent in older trades)
    "contracts": pl.Float64,  # trade size in contract units; nullable (absent in older trades)
    "trade_seq": pl.Int64,  # per-instrument sequence number
    "tick_direction": pl.Int64,  # 0 plus tick, 1 zero-plus, 2 minus, 3 zero-minus
    "liquidation": pl.String,  # 'M' (maker liquidated), 'T' (taker), 'MT' (both); null when none
    "block_trade_id": pl.String,  # nullable
    "block_trade_leg_count": pl.Int64,  # nullable
    "combo_id": pl.String,  # the combo instrument this trade is a leg of; nullable
    "combo_trade_id": pl.String,  # the combo trade this leg belongs to; nullable
    "block_rfq_id": pl.String,  # nullable
    "is_block": pl.Boolean,  # block_trade_id is set
    "is_combo": pl.Boolean,  # combo_id or combo_trade_id is set
    "is_liquidation": pl.Boolean,  # liquidation is set
}

# One row per currency: where the next incremental trades run starts (lake/_state/trade_watermarks).
TRADE_WATERMARK = {
    "currency": pl.String,
    "watermark_ts": UTC_TS,  # next run requests start_timestamp = watermark_ts (inclusive)
    "last_trade_id": pl.String,  # id of the latest stored trade at watermark_ts; nullable
    "fetched_until_ts": UTC_TS,  # end_timestamp of the run that set it
    "run_id": pl.String,
    "updated_ts": UTC_TS,  # when the run published it (wall clock)
}

# One row per (run_id, currency): what each trades run fetched and stored (lake/_state/trade_runs).
# One row per computed (currency, snapshot_ts): what its analytics were computed from (lake/_state/analytics_inputs,
# written in the same commit as the analytics). A row whose inputs no longer match the lake marks them stale.
ANALYTICS_INPUT = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "computed_ts": UTC_TS,
    "analytics_version": pl.Int64,  # pipelines.store.inputs.ANALYTICS_VERSION when computed
    "snapshot_file": pl.String,  # the option_snapshots file, relative to the lake root
    "snapshot_sha256": pl.String,  # its content hash
    "tape_trades": pl.Int64,  # trades of the coin's tape (own + its linear options') with ts <= snapshot_ts
    "tape_start_ts": UTC_TS,  # earliest trades-run window start of the coin's own tape; nullable
    "linear_tape_start_ts": UTC_TS,  # the later of the USDC/USDT tapes' earliest starts; nullable
    "include_blocks": pl.Boolean,  # taker_flow counted block trades and combo legs (recorded, not compared)
}

TRADE_RUN = {
    "run_id": pl.String,
    "currency": pl.String,
    "started_ts": UTC_TS,
    "start_ts": UTC_TS,  # start_timestamp of the first page requested
    "end_ts": UTC_TS,  # end_timestamp requested (the run's as-of time)
    "pages": pl.Int64,
    "fetched": pl.Int64,  # trades received, overlapping pages and re-fetches included
    "new": pl.Int64,  # trades added to the lake
    "duplicates": pl.Int64,  # fetched - new
    "watermark_ts": UTC_TS,
    "warnings": pl.String,  # '; '-joined; empty when none
}


# --- GEX engine contracts (transforms/pricing/greeks.py, positioning.py, exposure.py) --------------------------

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


# --- Daily flow forecast contracts (transforms/forecasting/forecast.py, DESIGN.md 4.4) --------------------------------

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


# One row per (currency, snapshot_ts, instrument_name) with an earlier snapshot: |delta_oi| > traded = a tape gap.
OI_RECONCILIATION = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "instrument_name": pl.String,
    "prev_snapshot_ts": UTC_TS,
    "open_interest": pl.Float64,
    "prev_open_interest": pl.Float64,
    "delta_oi": pl.Float64,  # contracts
    "traded_amount": pl.Float64,  # contracts traded in (prev_snapshot_ts, snapshot_ts]
    "trades": pl.Int64,
    "is_violation": pl.Boolean,
}

# One row per (currency, snapshot_ts): the share of open interest the trade tape can account for (0..1).
TAPE_COVERAGE = {
    "currency": pl.String,
    "snapshot_ts": UTC_TS,
    "instruments": pl.Int64,
    "instruments_traded": pl.Int64,
    "open_interest": pl.Float64,
    "oi_explained": pl.Float64,
    "coverage": pl.Float64,
    "coverage_taker": pl.Float64,
    "oi_traded_share": pl.Float64,
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
