"""Tardis backfill on a UTC grid: tick-level day files -> chain snapshots as of every grid time.

Per day file (:func:`pipelines.sources.tardis_stream.read_day`, streaming, one core each) the rows are
reduced to the last update per (grid bucket, option); then, day after day in order, the chain as of
each grid time is built from the previous day's end state, the day's buckets and the next file's rows
stamped before midnight (:func:`transforms.frames.asof.asof_day`), validated and published by one journaled
commit together with the day's end state (``lake/_state/tardis_backfill/date=D/``). That state makes a
re-run skip published days and start the next one exactly where an uninterrupted run would.

Reading is the expensive part (gzip is serial per file), publishing is cheap, so reads run ahead on a
pool (threads here; Prefect tasks on a thread pool or a Dask cluster in ``flows.backfill_flow``) while
days publish strictly in order. Each file is decompressed once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.config import Settings
from pipelines.errors import SourceError
from pipelines.jobs import ingest
from pipelines.jobs.backfill_publish import validate_batches, waiting_writer_lock
from pipelines.jobs.backfill_report import DayResult, FailedSnapshot, run_record, summary
from pipelines.sources.tardis import TardisDay
from pipelines.sources.tardis_stream import DayRead, read_day
from pipelines.store import reads
from pipelines.store.lake_tables import Table
from transforms.frames.asof import (
    INDEX_STATE,
    OPTION_STATE,
    US_PER_DAY,
    US_PER_S,
    Carry,
    GridPoint,
    asof_day,
    grid_times,
)
from transforms.frames.asof import snapshot_frame as asof_snapshot_frame
from transforms.frames.tardis import instruments_frame
from warehouse import files, lake

SOURCE = "tardis"
STATE_TABLE = Table.STATE_TARDIS_BACKFILL
INDEX_TICK_WINDOW_US = 60 * US_PER_S  # tick files: the index must be seconds old, at most a minute
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

GRID_STATE = {
    "currency": pl.String,
    "snapshot_ts": pl.Datetime("ms", "UTC"),
    "status": pl.String,  # published | no_data | failed | quarantined
    "options": pl.Int64,
    "stale": pl.Int64,
    "index_age_s": pl.Float64,
    "reason": pl.String,
    "every_s": pl.Int64,
    "max_staleness_s": pl.Int64,
    "file": pl.String,
}


@dataclass(frozen=True)
class Grid:
    """The as-of grid: snapshots every ``every_s`` from 00:00 UTC; options older than ``max_staleness_s`` left out."""

    every_s: int = 3600
    max_staleness_s: int = 3600

    @property
    def every_us(self) -> int:
        return self.every_s * US_PER_S

    @property
    def staleness_us(self) -> int:
        return self.max_staleness_s * US_PER_S

    def describe(self, seconds: int) -> str:
        return (
            f"{seconds // 3600}h"
            if seconds % 3600 == 0
            else f"{seconds // 60}m"
            if seconds % 60 == 0
            else f"{seconds}s"
        )


def day_start_us(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * US_PER_S


def _ts(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


# ---------------------------------------------------------------- state in the lake


state_dir = reads.backfill_state_dir


def is_published(data_dir: Path, day: date, grid: Grid) -> bool:
    """True when ``day`` was published on this grid (its grid state is in the lake)."""
    params = reads.backfill_grid_params(data_dir, day)
    return params is not None and params.rows() == [(grid.every_s, grid.max_staleness_s)]


def load_carry(data_dir: Path, day: date) -> Carry | None:
    found = reads.backfill_carry(data_dir, day)
    if found is None:
        return None
    options, index = found
    return Carry(options.cast(OPTION_STATE), index.cast(INDEX_STATE))


def _stage_state(data_dir: Path, day: date, grid_rows: pl.DataFrame, carry: Carry) -> list[files.Staged]:
    folder = state_dir(data_dir, day)
    return [
        lake.stage_file(folder / "carry_options.parquet", carry.options),
        lake.stage_file(folder / "carry_index.parquet", carry.index),
        lake.stage_file(folder / "grid.parquet", grid_rows),  # last: its presence marks the day published
    ]


# ---------------------------------------------------------------- one day


def index_windows(read: DayRead, currencies: tuple[str, ...], grid: Grid) -> dict[str, int]:
    """How old the index may be at a grid time, per currency (DESIGN section 2): a minute on tick files; the
    staleness window when the file's index rows are further apart than that (snapshot-grouped files)."""
    out = {}
    for currency in currencies:
        n, span = read.index_rows.get(currency, 0), read.index_span_us.get(currency, 0)
        tick_level = n > 1 and span / (n - 1) <= INDEX_TICK_WINDOW_US
        out[currency] = INDEX_TICK_WINDOW_US if tick_level else grid.staleness_us
    return out


def _classify(point: GridPoint, grid: Grid, ticker: Path, window_us: int) -> tuple[str, str]:
    """(status, reason) of one grid point before validation: no fresh option or no index row at all yet (the
    first grid time of the first file) is no data; options without a recent enough index is a failure."""
    if point.options.is_empty():
        why = f"{point.stale} stale" if point.stale else "no option rows yet"
        return "no_data", f"no option updated within {grid.describe(grid.max_staleness_s)} ({why})"
    if point.index_age_us is None:
        return "no_data", f"no {point.currency}-PERPETUAL index_price yet ({point.options.height} option(s))"
    if point.index_price is None:
        age = f"the latest is {point.index_age_us / US_PER_S:,.0f} s old"
        limit = f"{window_us // US_PER_S:,} s"
        return "failed", f"no {point.currency}-PERPETUAL index_price within {limit} in {ticker.name} ({age})"
    return "published", ""


def build_day(
    read: DayRead, nxt: DayRead | None, carry: Carry, grid: Grid, currencies: tuple[str, ...], ticker: Path
) -> tuple[list[ingest.Batch], list[FailedSnapshot], list[FailedSnapshot], pl.DataFrame, Carry]:
    """(batches per grid time, failed, no-data points, grid state rows, carry after the day) of one day."""
    start = day_start_us(read.day)
    options, index = read.options, read.index
    if nxt is not None:  # the next file's rows stamped before this day ends belong to its last snapshots
        options = pl.concat([options, nxt.options.filter(pl.col("bucket_us") < start + US_PER_DAY)])
        index = pl.concat([index, nxt.index.filter(pl.col("bucket_us") < start + US_PER_DAY)])
    windows = index_windows(read, currencies, grid)
    points, carry = asof_day(
        carry, options, index, grid_times(start, grid.every_us), currencies, grid.staleness_us, windows
    )
    frames: dict[int, list[pl.DataFrame]] = {}
    failed, empty, rows = [], [], []
    for p in points:
        status, reason = _classify(p, grid, ticker, windows[p.currency])
        if status == "published":
            frames.setdefault(p.snapshot_us, []).append(asof_snapshot_frame(p, SOURCE))
        else:
            (failed if status == "failed" else empty).append(
                FailedSnapshot(_ts(p.snapshot_us), (p.currency,), read.path, reason)
            )
        age = p.index_age_us / US_PER_S if p.index_age_us is not None else None
        rows.append((p.currency, _ts(p.snapshot_us), status, p.options.height, p.stale, age, reason))
    batches = []
    for t, parts in frames.items():
        snaps = pl.concat(parts)
        batches.append(ingest.Batch(_ts(t), SOURCE, instruments_frame(snaps), snaps))
    state = pl.DataFrame(rows, schema=list(GRID_STATE)[:7], orient="row").with_columns(
        pl.lit(grid.every_s).alias("every_s"),
        pl.lit(grid.max_staleness_s).alias("max_staleness_s"),
        pl.lit(read.path.name).alias("file"),
    )
    return batches, failed, empty, state.cast(GRID_STATE), carry


def _mark_quarantined(state: pl.DataFrame, failed: list[FailedSnapshot]) -> pl.DataFrame:
    for f in failed:
        if f.quarantined is None:
            continue
        hit = (pl.col("snapshot_ts") == f.snapshot_ts) & pl.col("currency").is_in(list(f.currencies))
        state = state.with_columns(
            pl.when(hit).then(pl.lit("quarantined")).otherwise(pl.col("status")).alias("status"),
            pl.when(hit).then(pl.lit(f.reason)).otherwise(pl.col("reason")).alias("reason"),
        )
    return state


def publish_day(
    settings: Settings,
    read: DayRead,
    nxt: DayRead | None,
    carry: Carry,
    grid: Grid,
    *,
    run_id: str,
    lock_wait_s: float,
) -> tuple[DayResult, Carry]:
    """Build, validate and publish one day (one journaled commit with its end state)."""
    t0, started = time.perf_counter(), datetime.now(UTC)
    currencies, data_dir = settings.currencies, settings.data_dir
    ticker = read.ticker_path
    batches, failed, empty, state, carry = build_day(read, nxt, carry, grid, currencies, ticker)
    failed += validate_batches(batches, data_dir, read.path)
    bad = {f.snapshot_ts for f in failed if f.quarantined is not None}
    good = [b for b in batches if b.cycle_stamp not in bad]
    with files.transaction(data_dir) as tx:  # discards before the journal, rolls forward after it
        for batch in good:
            tx.add(ingest.stage(batch, data_dir))
        record = run_record(run_id, started, batches, failed, SOURCE)
        if not record.is_empty():
            name = f"{run_id}-{read.day:%Y%m%d}"
            tx.add(lake.stage_partitions(data_dir, Table.STATE_INGEST_RUNS, record, name=name, date_col="started_ts"))
        tx.add(_stage_state(data_dir, read.day, _mark_quarantined(state, failed), carry))
        with waiting_writer_lock(data_dir, lock_wait_s):
            tx.commit()
    staged = tx.staged
    landed = summary(good)
    day = DayResult(
        day=read.day,
        path=read.path,
        landed=landed,
        failed=sorted(failed, key=lambda f: (f.snapshot_ts, f.currencies)),
        empty=empty,
        rows=int(landed["options"].sum() or 0),
        files=len(staged),
        seconds=time.perf_counter() - t0 + read.seconds,
        rows_read=read.rows,
        stale=int(state.filter(pl.col("status") == "published")["stale"].sum() or 0),
    )
    return day, carry


# ---------------------------------------------------------------- the run

Fetch = Callable[[int], DayRead]  # i -> the i-th day of the run, read (raises SourceError for a bad file)
Progress = Callable[[DayResult], None]


def prefetching_reader(
    days: list[TardisDay],
    grid: Grid,
    currencies: tuple[str, ...],
    workers: int,
    on_read: Callable[[date, float, int], None] | None = None,
):
    """A :data:`Fetch` over ``days`` reading at most ``workers + 1`` days ahead on a thread pool (pyarrow and
    polars release the GIL while they decompress, parse and reduce), and the pool to shut down afterwards.
    ``on_read(day, fraction, rows)`` reports each read as it goes (from the reading threads)."""
    pool = ThreadPoolExecutor(max(workers, 1), thread_name_prefix="tardis-read")
    futures: dict[int, Future] = {}

    def fetch(i: int) -> DayRead:
        for k in range(i, min(i + workers + 1, len(days))):
            if k not in futures:
                d = days[k]
                watch = (lambda f, n, day=d.day: on_read(day, f, n)) if on_read else None
                futures[k] = pool.submit(
                    read_day, d.options_chain, grid.every_us, currencies, d.derivative_ticker, watch
                )
        for k in [k for k in futures if k < i - 1]:
            del futures[k]  # published: let its frames go
        return futures[i].result()

    return fetch, pool


def run_days(
    settings: Settings,
    plan: list[date],
    todo: list[TardisDay],
    grid: Grid,
    fetch: Fetch,
    *,
    run_id: str,
    lock_wait_s: float,
    progress: Progress | None = None,
) -> list[DayResult]:
    """Publish ``todo`` (the days of ``plan`` not yet published, oldest first) in order.

    Each day starts from the end state of the newest planned day before it: in memory when that day was
    just published by this run, else from the lake (a resumed run); with no planned day before it, from
    the calendar day before it if that was published earlier, else empty. A bad file raises its one-line
    SourceError once every earlier day is published (the day before it without the bad file's rows
    stamped before midnight).
    """
    results: list[DayResult] = []
    carry, last = Carry(), None
    for i, d in enumerate(todo):
        read = fetch(i)
        nxt = None
        if i + 1 < len(todo) and todo[i + 1].day == d.day + timedelta(days=1):
            try:
                nxt = fetch(i + 1)
            except SourceError:
                nxt = None  # raised when its turn comes, after this day is published
        before = [p for p in plan if p < d.day]
        prev = before[-1] if before else d.day - timedelta(days=1)
        if prev != last:
            carry = load_carry(settings.data_dir, prev) or Carry()
        result, carry = publish_day(settings, read, nxt, carry, grid, run_id=run_id, lock_wait_s=lock_wait_s)
        last = d.day
        results.append(result)
        if progress:
            progress(result)
    return results


__all__ = [
    "GRID_STATE",
    "STATE_TABLE",
    "Grid",
    "build_day",
    "index_windows",
    "is_published",
    "load_carry",
    "prefetching_reader",
    "publish_day",
    "run_days",
]
