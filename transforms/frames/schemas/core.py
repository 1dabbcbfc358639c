"""The base of the frame contracts: the UTC timestamp dtype, :func:`check`, :func:`empty`, and the chain
snapshot, instrument and ingest-run contracts."""

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
