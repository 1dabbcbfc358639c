"""Contracts of the trade tape, its watermark and runs, the tape's reconciliation against open interest and
coverage, and what the analytics were computed from."""

from __future__ import annotations

import polars as pl

from transforms.frames.schemas.core import UTC_TS

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

# One row per (run_id, currency): what each trades run fetched and stored (lake/_state/trade_runs).
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
