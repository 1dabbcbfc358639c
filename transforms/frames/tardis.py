"""Tardis.dev Deribit CSV frames -> the OPTION_SNAPSHOT and INSTRUMENT contracts of :mod:`transforms.frames.schemas`.

Pure: takes the frames as read (every column a string, empty fields already null) and returns typed
frames. Reading files and naming them in errors is :mod:`pipelines.sources.tardis`'s job.

Tardis conventions (https://docs.tardis.dev/downloadable-csv-files): ``timestamp``/``expiration`` are
microseconds since the epoch (UTC); ``mark_iv`` is in percent (as Deribit); prices are in the
settlement coin; ``underlying_price`` is the per-expiry forward (USD). ``options_chain`` rows carry no
spot index: it comes from the ``derivative_ticker`` rows of ``<C>-PERPETUAL`` (their ``index_price``)
at the snapshot's timestamp.
"""

from __future__ import annotations

import polars as pl

from transforms.errors import GexflowError
from transforms.frames.schemas import INSTRUMENT, OPTION_SNAPSHOT, UTC_TS, check

# Columns a file must have (others, e.g. delta/vega/bid_iv, may be there and are ignored).
OPTIONS_CHAIN_COLUMNS = (
    "exchange",
    "symbol",
    "timestamp",
    "type",
    "strike_price",
    "expiration",
    "open_interest",
    "bid_price",
    "ask_price",
    "mark_price",
    "mark_iv",
    "underlying_index",
    "underlying_price",
)
DERIVATIVE_TICKER_COLUMNS = ("exchange", "symbol", "timestamp", "index_price")

_INT_COLUMNS = ("timestamp", "expiration")  # microseconds since the epoch
_FLOAT_COLUMNS = (
    "strike_price",
    "open_interest",
    "bid_price",
    "ask_price",
    "mark_price",
    "mark_iv",
    "underlying_price",
)
_REQUIRED_VALUES = ("exchange", "symbol", "timestamp")  # a row without these cannot be placed in a snapshot

# An index quote further than this from the snapshot does not price it (DESIGN: exact, else nearest within 60 s).
INDEX_TOLERANCE_US = 60_000_000

# Inverse (coin-settled) BTC/ETH options: one coin per contract. USDC-settled linear options
# (``SOL_USDC-...``) have other contract sizes that the CSV does not carry, so they are not mapped.
INVERSE_CONTRACT_SIZE = 1.0


class TardisFormatError(GexflowError, ValueError):
    """A Tardis CSV frame does not have the documented shape; one line, without the file name."""


# ---------------------------------------------------------------- parsing


def _check_columns(raw: pl.DataFrame, required: tuple[str, ...], kind: str) -> None:
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise TardisFormatError(f"not a Tardis {kind} file: header lacks {', '.join(missing)}")


def _cast_or_fail(raw: pl.DataFrame, columns: tuple[str, ...], dtype: pl.DataType) -> list[pl.Expr]:
    """Casts of ``columns``; raises naming the first value that is not a finite number and its file line
    (the header is line 1)."""
    exprs = [pl.col(c).str.strip_chars().cast(dtype, strict=False).alias(c) for c in columns]
    typed = raw.select(exprs)
    for col in columns:
        finite = typed[col].cast(pl.Float64).is_finite().fill_null(False)
        bad = raw[col].is_not_null() & ~finite
        if bad.any():
            row = int(bad.arg_true()[0])
            raise TardisFormatError(f"line {row + 2}: {col} {raw[col][row]!r} is not a finite number")
    return exprs


def _require_values(raw: pl.DataFrame, columns: tuple[str, ...]) -> None:
    for col in columns:
        if raw[col].null_count():
            row = int(raw[col].is_null().arg_true()[0])
            raise TardisFormatError(f"line {row + 2}: {col} is empty")


def _check_exchange(raw: pl.DataFrame) -> None:
    others = raw.filter(pl.col("exchange") != "deribit")["exchange"]
    if others.len():
        raise TardisFormatError(f"exchange {others[0]!r} in a Deribit file (expected 'deribit')")


def options_chain_frame(raw: pl.DataFrame, currencies: tuple[str, ...] | list[str]) -> pl.DataFrame:
    """Typed ``options_chain`` rows of the options on ``currencies`` (``BTC-...``/``ETH-...`` symbols).

    ``raw`` is the file as read with every column a string and empty fields null. Adds ``currency``
    (the symbol's prefix); ``timestamp``/``expiration`` become Int64 microseconds, prices Float64.
    Raises :class:`TardisFormatError` on a wrong header or a value that is not a finite number.
    """
    _check_columns(raw, OPTIONS_CHAIN_COLUMNS, "options_chain")
    _require_values(raw, _REQUIRED_VALUES)
    _check_exchange(raw)
    ints = _cast_or_fail(raw, _INT_COLUMNS, pl.Int64)
    floats = _cast_or_fail(raw, _FLOAT_COLUMNS, pl.Float64)
    wanted = [c.upper() for c in currencies]
    return (
        raw.lazy()
        .with_columns(pl.col("symbol").str.extract(r"^([A-Z0-9]+)-", 1).alias("currency"))
        .filter(pl.col("currency").is_in(wanted))
        .select("currency", *ints, *floats, "symbol", "type", "underlying_index")
        .collect()
    )


def index_prices_frame(raw: pl.DataFrame, currencies: tuple[str, ...] | list[str]) -> pl.DataFrame:
    """``derivative_ticker`` rows -> one row per (currency, index_ts_us): the ``<C>-PERPETUAL`` ``index_price``.

    Rows without an index price are skipped; of several rows at the same microsecond the last one in
    the file wins.
    """
    _check_columns(raw, DERIVATIVE_TICKER_COLUMNS, "derivative_ticker")
    schema = {"currency": pl.String, "index_ts_us": pl.Int64, "index_price": pl.Float64}
    _require_values(raw, _REQUIRED_VALUES)
    _check_exchange(raw)
    ints = _cast_or_fail(raw, ("timestamp",), pl.Int64)
    floats = _cast_or_fail(raw, ("index_price",), pl.Float64)
    wanted = [c.upper() for c in currencies]
    return (
        raw.lazy()
        .select(pl.col("symbol").str.extract(r"^([A-Z0-9]+)-PERPETUAL$", 1).alias("currency"), *ints, *floats)
        .filter(pl.col("currency").is_in(wanted) & pl.col("index_price").is_not_null())
        .rename({"timestamp": "index_ts_us"})
        .unique(["currency", "index_ts_us"], keep="last", maintain_order=True)
        .sort("currency", "index_ts_us")
        .collect()
        .cast(schema)
    )


# ---------------------------------------------------------------- snapshots


def snapshot_index_prices(
    chain: pl.DataFrame, index: pl.DataFrame, tolerance_us: int = INDEX_TOLERANCE_US
) -> pl.DataFrame:
    """One row per (currency, timestamp) of ``chain``: the index price at that microsecond.

    The exact ticker timestamp if there is one, else the nearest within ``tolerance_us``; else
    ``index_price`` is null. ``index_ts_us``/``index_gap_us`` describe the nearest ticker row whether or
    not it was close enough (null when the currency has no ticker row at all), for error messages.
    """
    keys = chain.select("currency", "timestamp").unique().sort("currency", "timestamp")
    joined = keys.join_asof(
        index.sort("currency", "index_ts_us"),
        left_on="timestamp",
        right_on="index_ts_us",
        by="currency",
        strategy="nearest",
        coalesce=False,
        check_sortedness=False,  # sorted by (currency, ts) above: sorted within each `by` group
    )
    gap = (pl.col("timestamp") - pl.col("index_ts_us")).abs()
    return joined.select(
        "currency",
        "timestamp",
        pl.when(gap <= tolerance_us).then(pl.col("index_price")).alias("index_price"),
        "index_ts_us",
        gap.alias("index_gap_us"),
    )


def _utc_ms(col: str) -> pl.Expr:
    """Microseconds since the epoch -> UTC millisecond timestamp (truncated, as Deribit's ms stamps)."""
    return pl.from_epoch(pl.col(col) // 1000, time_unit="ms").dt.replace_time_zone("UTC").cast(UTC_TS)


def option_snapshot_frame(chain: pl.DataFrame, index: pl.DataFrame, source: str = "tardis") -> pl.DataFrame:
    """Typed ``options_chain`` rows + :func:`snapshot_index_prices` -> OPTION_SNAPSHOT, sorted.

    ``index_price`` is null for snapshots without an index quote close enough; the caller decides what
    to do with them (the backfill reports and skips them).
    """
    frame = (
        chain.lazy()
        .join(index.lazy().select("currency", "timestamp", "index_price"), on=["currency", "timestamp"], how="left")
        .select(
            pl.col("currency"),
            _utc_ms("timestamp").alias("snapshot_ts"),
            pl.col("symbol").alias("instrument_name"),
            pl.col("type").alias("option_type"),
            pl.col("strike_price").alias("strike"),
            _utc_ms("expiration").alias("expiration_ts"),
            pl.lit(INVERSE_CONTRACT_SIZE).alias("contract_size"),
            pl.lit(False).alias("is_linear"),
            "open_interest",
            "mark_iv",
            "mark_price",
            "bid_price",
            "ask_price",
            "underlying_price",
            "underlying_index",
            "index_price",
            pl.lit(source).alias("source"),
        )
        .sort("currency", "snapshot_ts", "instrument_name")
        .collect()
        .cast(OPTION_SNAPSHOT)
    )
    check(frame, OPTION_SNAPSHOT, "option_snapshots")
    return frame


def settlement_period(expiration_ts: pl.Expr) -> pl.Expr:
    """Deribit's ``settlement_period`` from the expiry date: 'month' for the last Friday of a month
    (quarterlies included: Deribit labels them 'month' too), 'week' for other Fridays, 'day' otherwise.

    The same rule the shared API recordings used to fill ``get_instruments.settlement_period``.
    """
    is_friday = expiration_ts.dt.weekday() == 5
    is_last_friday = is_friday & (expiration_ts.dt.offset_by("7d").dt.month() != expiration_ts.dt.month())
    return pl.when(is_last_friday).then(pl.lit("month")).when(is_friday).then(pl.lit("week")).otherwise(pl.lit("day"))


def instruments_frame(snapshots: pl.DataFrame) -> pl.DataFrame:
    """INSTRUMENT rows derived from OPTION_SNAPSHOT rows (Tardis has no instruments file).

    One row per snapshot row, ``seen_ts`` = its snapshot time; ``listed_ts`` is unknown (null);
    ``settlement_period`` is derived from the expiry (:func:`settlement_period`); inverse options:
    settlement in the coin, ``<coin>_usd`` price index.
    """
    frame = snapshots.select(
        "currency",
        "instrument_name",
        "option_type",
        "strike",
        "expiration_ts",
        "contract_size",
        settlement_period(pl.col("expiration_ts")).alias("settlement_period"),
        pl.col("currency").alias("settlement_currency"),
        (pl.col("currency").str.to_lowercase() + "_usd").alias("price_index"),
        "is_linear",
        pl.lit(None, UTC_TS).alias("listed_ts"),
        pl.col("snapshot_ts").alias("seen_ts"),
    ).cast(INSTRUMENT)
    check(frame, INSTRUMENT, "instruments")
    return frame


__all__ = [
    "DERIVATIVE_TICKER_COLUMNS",
    "INDEX_TOLERANCE_US",
    "OPTIONS_CHAIN_COLUMNS",
    "TardisFormatError",
    "index_prices_frame",
    "instruments_frame",
    "option_snapshot_frame",
    "options_chain_frame",
    "settlement_period",
    "snapshot_index_prices",
]
