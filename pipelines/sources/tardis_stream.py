"""Streaming read of one tick-level Tardis day: the file reduced to per (grid bucket, option) last rows.

A day file is 10-50 M rows; only the last update per option per bucket matters for the as-of snapshots
(:mod:`transforms.frames.asof`). pyarrow's CSV reader decompresses the ``.gz`` as a stream (zlib, in C++, no
GIL) and parses it in blocks of :data:`BLOCK_BYTES`; each block is reduced to its last row per
(bucket, option) with polars, and the reductions are reduced again, so memory is bounded by the
number of options times the buckets of a day, not by the file. Days read on separate threads
decompress in parallel on separate cores (gzip itself is serial per file). Measured against DuckDB's
``read_csv`` over the ``.gz`` and the ``zcat`` floor by benchmarks/bench_tardis_ticks.py (figures in
benchmarks/RESULTS.md).

Failures (truncated gzip, bad value, wrong header) are a one-line
:class:`~pipelines.errors.SourceError` naming the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines.errors import SourceError
from pipelines.sources.tardis import day_of, ticker_file_for
from transforms.frames.asof import BUCKET, INDEX_STATE, OPTION_STATE, bucket_expr

OnRows = Callable[[float, int], None]  # (fraction of the file read, rows read so far)
_FLOATS = ("strike_price", "open_interest", "bid_price", "ask_price", "mark_price", "mark_iv", "underlying_price")
_OPTION_COLUMNS = {
    "exchange": pa.string(),
    "symbol": pa.string(),
    "timestamp": pa.int64(),
    "type": pa.string(),
    "expiration": pa.int64(),
    "underlying_index": pa.string(),
    **{c: pa.float64() for c in _FLOATS},
}
_INDEX_COLUMNS = {"exchange": pa.string(), "symbol": pa.string(), "timestamp": pa.int64(), "index_price": pa.float64()}
BLOCK_BYTES = 8 << 20  # CSV bytes parsed per batch: memory is a few of these, whatever the file size
_MERGE_EVERY = 16  # reduce the per-batch reductions every this many batches


def _batches(path: Path, columns: dict):
    """(record batch of ``columns``, fraction of the compressed file consumed) of a gzipped CSV, decompressed
    and parsed as a stream."""
    raw = pa.OSFile(str(path))
    size = max(Path(path).stat().st_size, 1)
    stream = pa.input_stream(pa.CompressedInputStream(raw, "gzip"), buffer_size=1 << 20)
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(
            include_columns=list(columns), column_types=columns, null_values=[""], strings_can_be_null=True
        ),
    )
    try:
        for batch in reader:
            yield batch, min(raw.tell() / size, 1.0)
    finally:
        raw.close()


def _last_per(frame: pl.DataFrame, keys: list[str], ts: str) -> pl.DataFrame:
    """Per ``keys`` the row with the largest ``ts`` (of equal ones, the earlier row: verbatim duplicates are
    the same row, and the tool never stamps two different updates of an option with the same microsecond)."""
    rows = frame.with_row_index("__i")
    pick = rows.group_by(keys).agg(pl.col("__i").get(pl.col(ts).arg_max()))["__i"].sort()
    return frame[pick]


def _stream_reduce(
    path: Path, columns: dict, prepare, keys: list[str], ts: str, on_rows: OnRows | None = None
) -> tuple[pl.DataFrame, int]:
    """Stream ``path`` in batches, ``prepare`` each (filter, add keys) and keep per ``keys`` the latest row."""
    acc: list[pl.DataFrame] = []
    rows = 0
    try:
        for batch, done in _batches(path, columns):
            frame = pl.from_arrow(batch)
            rows += frame.height
            if on_rows is not None:
                on_rows(done, rows)
            acc.append(_last_per(prepare(frame), keys, ts))
            if len(acc) >= _MERGE_EVERY:
                acc = [_last_per(pl.concat(acc), keys, ts)]
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
        raise SourceError(f"{path}: cannot read gzip CSV ({_reason(exc)})") from None
    if not acc:
        return pl.DataFrame(), rows
    return _last_per(pl.concat(acc), keys, ts), rows


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:240]


def read_options(
    path: Path, every_us: int, currencies: tuple[str, ...], on_rows: OnRows | None = None
) -> tuple[pl.DataFrame, int]:
    """(bucket_us + OPTION_STATE rows of ``currencies``, option rows read) of one options_chain file."""
    seen = [0]

    def prepare(frame: pl.DataFrame) -> pl.DataFrame:
        _check_rows(path, frame, seen[0])
        seen[0] += frame.height
        return frame.with_columns(bucket_expr(pl.col("timestamp"), every_us).alias("bucket_us"))

    frame, rows = _stream_reduce(path, _OPTION_COLUMNS, prepare, ["bucket_us", "symbol"], "timestamp", on_rows)
    schema = {**BUCKET, **OPTION_STATE}
    if frame.is_empty():
        return pl.DataFrame(schema=schema), rows
    currency = pl.col("symbol").str.split_exact("-", 1).struct.field("field_0").alias("currency")
    frame = frame.with_columns(currency).filter(pl.col("currency").is_in(list(currencies)))
    return frame.select(list(schema)).cast(schema).sort("bucket_us", "symbol"), rows


def _check_rows(path: Path, frame: pl.DataFrame, before: int) -> None:
    """A row that cannot be placed or priced is bad input (line numbers count the header as line 1)."""
    for col in ("symbol", "timestamp"):
        if frame[col].null_count():
            raise SourceError(f"{path}: line {before + int(frame[col].is_null().arg_true()[0]) + 2}: {col} is empty")
    for col in _FLOATS:
        bad = frame[col].is_nan() | frame[col].is_infinite()
        if bad.any():
            at = int(bad.arg_true()[0])
            raise SourceError(f"{path}: line {before + at + 2}: {col} {frame[col][at]!r} is not a finite number")
    if (frame["exchange"] != "deribit").any():
        raise SourceError(f"{path}: rows of another exchange in a Deribit file (expected 'deribit')")


def read_index(path: Path, every_us: int, currencies: tuple[str, ...]) -> tuple[pl.DataFrame, dict, dict]:
    """(bucket_us + INDEX_STATE rows, index rows per currency, span of index timestamps per currency)."""
    wanted = [f"{c}-PERPETUAL" for c in currencies]
    parts, rows = [], 0
    try:
        for batch, _ in _batches(path, _INDEX_COLUMNS):
            frame = pl.from_arrow(batch)
            rows += frame.height
            parts.append(frame.filter(pl.col("symbol").is_in(wanted) & pl.col("index_price").is_not_null()))
    except (pa.ArrowException, OSError, EOFError, ValueError) as exc:
        raise SourceError(f"{path}: cannot read gzip CSV ({_reason(exc)})") from None
    frame = pl.concat(parts) if parts else pl.DataFrame(schema={k: pl.String for k in _INDEX_COLUMNS})
    frame = frame.select(
        pl.col("symbol").str.replace("-PERPETUAL", "", literal=True).alias("currency"),
        pl.col("timestamp").cast(pl.Int64).alias("index_ts_us"),
        pl.col("index_price").cast(pl.Float64),
    )
    stats = frame.group_by("currency").agg(
        pl.len().alias("n"), (pl.col("index_ts_us").max() - pl.col("index_ts_us").min()).alias("span")
    )
    counts = dict(zip(stats["currency"], stats["n"], strict=True))
    span = dict(zip(stats["currency"], stats["span"], strict=True))
    bucketed = frame.with_columns(bucket_expr(pl.col("index_ts_us"), every_us).alias("bucket_us"))
    last = _last_per(bucketed, ["bucket_us", "currency"], "index_ts_us") if bucketed.height else bucketed
    schema = {**BUCKET, **INDEX_STATE}
    return last.select(list(schema)).cast(schema).sort("currency", "bucket_us"), counts, span


@dataclass(frozen=True)
class DayRead:
    """One day file reduced: bucketed last rows, counts, and the index cadence per currency."""

    day: date
    path: Path
    ticker_path: Path
    options: pl.DataFrame  # bucket_us + OPTION_STATE
    index: pl.DataFrame  # bucket_us + INDEX_STATE
    rows: int  # option rows read (all currencies)
    index_rows: dict[str, int]  # <C>-PERPETUAL rows with an index price
    index_span_us: dict[str, int]  # last - first index timestamp per currency
    seconds: float


def read_day(
    path: Path,
    every_us: int,
    currencies: tuple[str, ...],
    ticker_path: Path | None = None,
    on_rows: OnRows | None = None,
) -> DayRead:
    """One Tardis day (options_chain + its derivative_ticker) reduced to per-bucket last rows; ``on_rows`` gets
    (fraction of the options_chain file read, rows read so far) as the read goes."""
    t0 = time.perf_counter()
    path = Path(path)
    ticker_path = Path(ticker_path) if ticker_path is not None else ticker_file_for(path)
    options, rows = read_options(path, every_us, currencies, on_rows)
    index, index_rows, span = read_index(ticker_path, every_us, currencies)
    options = options.sort("bucket_us", "symbol")
    return DayRead(day_of(path), path, ticker_path, options, index, rows, index_rows, span, time.perf_counter() - t0)


__all__ = ["DayRead", "read_day", "read_index", "read_options"]
