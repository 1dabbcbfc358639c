"""Deribit trade pages -> TRADE frames, pure: the page's trade list, combo legs flattened, the wire fields
typed, and a stored partition brought to the current TRADE layout.

Moved here from ``pipelines.jobs.trades`` (issue 13): the job pages the API and publishes; this is what it
does to the bodies in between.
"""

from __future__ import annotations

import polars as pl

from transforms.frames.normalise import NormaliseError
from transforms.frames.schemas import TRADE, check

# The wire fields kept, with the dtype they are read as (ids are strings whatever JSON type they come in).
WIRE = {
    "trade_id": pl.String,
    "timestamp": pl.Int64,
    "instrument_name": pl.String,
    "direction": pl.String,
    "amount": pl.Float64,
    "price": pl.Float64,
    "iv": pl.Float64,
    "index_price": pl.Float64,
    "mark_price": pl.Float64,
    "contracts": pl.Float64,
    "trade_seq": pl.Int64,
    "tick_direction": pl.Int64,
    "liquidation": pl.String,
    "block_trade_id": pl.String,
    "block_trade_leg_count": pl.Int64,
    "combo_id": pl.String,
    "combo_trade_id": pl.String,
    "block_rfq_id": pl.String,
}


def page_trades(currency: str, result) -> tuple[list[dict], bool, list[int]]:
    """(trades, has_more, timestamps) of one get_last_trades_by_currency_and_time page, or a one-line
    NormaliseError."""
    trades = result.get("trades") if isinstance(result, dict) else None
    if not isinstance(trades, list):
        raise NormaliseError(f"{currency}: get_last_trades_by_currency_and_time result has no trades list")
    try:
        stamps = [int(t["timestamp"]) for t in trades]
    except (KeyError, TypeError, ValueError):
        raise NormaliseError(f"{currency}: get_last_trades_by_currency_and_time trade without a timestamp") from None
    return trades, bool(result.get("has_more")), stamps


def flatten_legs(trades: list[dict]) -> list[dict]:
    """A combo trade carrying ``legs`` is replaced by its legs: they are the option trades (own trade_id,
    combo_id, combo_trade_id); the combo instrument itself is not an option. kind=option pages list the
    legs on their own, so this only matters if a combo trade slips in; de-duplication absorbs repeats."""
    if not any("legs" in t for t in trades):
        return trades
    out = []
    for t in trades:
        legs = t.get("legs")
        if isinstance(legs, list) and legs:
            out.extend(leg for leg in legs if isinstance(leg, dict))
        else:
            out.append(t)
    return out


def trades_frame(currency: str, trades: list[dict]) -> pl.DataFrame:
    """Trade dicts as Deribit sends them -> TRADE frame (optional fields null when absent; not de-duplicated)."""
    wire = pl.from_dicts(trades, schema=WIRE, strict=False) if trades else pl.DataFrame(schema=WIRE)
    frame = wire.select(
        pl.lit(currency, pl.String).alias("currency"),
        "trade_id",
        pl.col("timestamp").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC").alias("ts"),
        *(c for c in WIRE if c not in ("trade_id", "timestamp")),
        pl.col("block_trade_id").is_not_null().alias("is_block"),
        (pl.col("combo_id").is_not_null() | pl.col("combo_trade_id").is_not_null()).alias("is_combo"),
        pl.col("liquidation").is_not_null().alias("is_liquidation"),
    )
    check(frame, TRADE, "trades")
    return frame


def conform_trades(frame: pl.DataFrame) -> pl.DataFrame:
    """A stored partition in the current TRADE layout (columns added later read as null)."""
    return frame.select(pl.col(c).cast(t) if c in frame.columns else pl.lit(None, t).alias(c) for c, t in TRADE.items())
