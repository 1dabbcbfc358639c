"""Backfill: Tardis.dev CSV history (or recorded API replays) into the lake, one journaled commit per day.

:func:`backfill_cycle` is the table of contents. For Tardis it plans the day files
(:func:`plan_backfill`, every name and header checked before anything is read) and by default builds
chain snapshots **as of a UTC grid** (DESIGN section 2; :mod:`pipelines.jobs.backfill_grid`):

    stream each day file (DuckDB, one core per file, days ahead in parallel) -> last update per
    (grid bucket, option) -> in day order: chain as of each grid time (carry from the previous day,
    the next file's rows stamped before midnight) -> validate -> stage -> commit the day + its end state

``each_timestamp=True`` is the old reading of snapshot-grouped files (every distinct ``timestamp`` is a
snapshot, :func:`backfill_day`); it refuses tick-level files.

Choices (docs/backfill.md):

- **Publishing unit: one day file.** Each day is one :func:`warehouse.files.commit`, so a crash loses
  at most the day in flight; file names are the snapshot stamps
  (``lake/<table>/currency=C/date=D/<YYYYMMDDTHHMMSSmmmZ>.parquet``, the names live snapshots use),
  so re-running replaces files instead of duplicating rows. A re-run skips days already published on
  the same grid (their end state is in ``lake/_state/tardis_backfill``) and gives the same files as an
  uninterrupted run.
- **Bad snapshots: skip and report.** A grid time whose batch fails validation is quarantined by
  :func:`pipelines.jobs.ingest.validate` (both currencies, as a live cycle would) and the others of the day
  still land; a currency's chain without a recent enough index price is skipped (not quarantined: the
  CSV is the record). Both are in ``result.failed`` and in ``ingest_runs`` with ``status = 'failed'``;
  ``result.exit_code`` is 1 then. A grid time with no fresh option (before the first update, or only
  stale ones) is not published and is reported (``result.empty``), not a failure. Bad input -- a
  missing directory, no files in range, a malformed or truncated file -- is a one-line
  :class:`~pipelines.errors.SourceError`: before anything is written for wrong names and headers, and
  at that day (earlier days stay published) for a bad value inside a file.
- **Locking: per day, for the commit only.** Reading, validating and staging run without the lock; the
  rename of the day's files runs under :func:`warehouse.files.writer_lock`, waiting up to
  ``lock_wait_s`` for it, so an hourly snapshot is never locked out by a long backfill.
- **Validation cost.** Only snapshots reach the quality gate (never ticks): the day's snapshots are
  validated as one frame and only a failing day is re-validated (and quarantined) snapshot by snapshot.

Replays (``replay_dir``) are :func:`pipelines.jobs.ingest.snapshot_cycle` with ``source=replay:<DIR>``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.config import ConfigError, Settings
from pipelines.jobs import ingest
from pipelines.jobs.backfill_grid import Grid, is_published, prefetching_reader, run_days
from pipelines.jobs.backfill_publish import validate_batches, waiting_writer_lock
from pipelines.jobs.backfill_report import BackfillResult, DayResult, FailedSnapshot, run_record, summary
from pipelines.sources import tardis
from pipelines.store.lake_tables import Table, prepare_warehouse
from transforms.frames.tardis import instruments_frame, option_snapshot_frame, snapshot_index_prices
from warehouse import files, lake, raw

TARDIS_CURRENCIES = ("BTC", "ETH")  # inverse options: the CSV has no contract size for USDC-settled ones
SOURCE = "tardis"
DEFAULT_LOCK_WAIT_S = 120.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Progress = Callable[[int, int, DayResult], None]  # (days done, days total, the day just done)


# ---------------------------------------------------------------- the cycle


def backfill_cycle(
    settings: Settings,
    *,
    tardis_dir: Path | None = None,
    replay_dir: Path | None = None,
    since: date | None = None,
    until: date | None = None,
    progress: Progress | None = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    grid: Grid | None = None,
    each_timestamp: bool = False,
    workers: int = 2,
    on_read: Callable[[date, float, int], None] | None = None,
) -> BackfillResult:
    """Backfill ``settings.data_dir`` from a Tardis directory (days ``since..until``, inclusive, UTC)
    or a replay directory; see the module docstring for what is published when. ``grid`` defaults to
    snapshots every hour, options older than an hour left out; ``workers`` day files are read at once, each
    reporting ``on_read(day, fraction read, rows read)`` as it goes."""
    t0 = time.perf_counter()
    if (tardis_dir is None) == (replay_dir is None):
        raise ConfigError("backfill needs exactly one of --tardis DIR or --replay DIR")
    if replay_dir is not None:
        if since is not None or until is not None:
            raise ConfigError("--since/--until apply to --tardis only (a replay takes every recorded snapshot)")
        result = ingest.snapshot_cycle(settings.with_(source=f"replay:{replay_dir}"))
        return BackfillResult(result.run_id, "replay", ingest=result, seconds=time.perf_counter() - t0)

    grid = check_grid(grid or Grid(), each_timestamp)
    tardis_currencies(settings)
    days = plan_days(tardis_dir, since=since, until=until)
    files.check_writable(settings.data_dir)
    result = BackfillResult(new_run_id(), SOURCE, missing=missing_days([d.day for d in days]))
    refresh_warehouse(settings, lock_wait_s=lock_wait_s)  # views bind now, so days show up as they land
    report = _reporter(result, len(days), progress)
    try:
        if each_timestamp:
            for d in days:
                report(backfill_day(settings, d.options_chain, run_id=result.run_id, lock_wait_s=lock_wait_s))
        else:
            run_grid(
                settings,
                days,
                grid,
                run_id=result.run_id,
                lock_wait_s=lock_wait_s,
                workers=workers,
                report=report,
                on_read=on_read,
            )
    finally:
        refresh_warehouse(settings, lock_wait_s=lock_wait_s)
        result.days.sort(key=lambda d: d.day)
    result.seconds = time.perf_counter() - t0
    return result


def _reporter(result: BackfillResult, total: int, progress: Progress | None):
    def report(day: DayResult) -> None:
        result.days.append(day)
        if progress:
            progress(len(result.days), total, day)

    return report


def run_grid(
    settings: Settings,
    days: list[tardis.TardisDay],
    grid: Grid,
    *,
    run_id: str,
    lock_wait_s: float,
    workers: int,
    report: Callable[[DayResult], None],
    fetch=None,
    on_read: Callable[[date, float, int], None] | None = None,
) -> None:
    """The as-of grid path: days already published on this grid are skipped (reported as such), the
    others read ``workers`` at a time (or through ``fetch``, e.g. Prefect task futures) and published in order."""
    todo = [d for d in days if not is_published(settings.data_dir, d.day, grid)]
    for d in days:
        if d not in todo:
            report(DayResult(d.day, d.options_chain, summary([]), resumed=True))
    if not todo:
        return
    pool = None
    if fetch is None:
        fetch, pool = prefetching_reader(todo, grid, settings.currencies, workers, on_read)
    try:
        plan = [d.day for d in days]
        run_days(settings, plan, todo, grid, fetch, run_id=run_id, lock_wait_s=lock_wait_s, progress=report)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def check_grid(grid: Grid, each_timestamp: bool) -> Grid:
    if each_timestamp:
        return grid
    if grid.every_s <= 0 or 86_400 % grid.every_s:
        raise ConfigError(f"--every must divide a day (e.g. 1h, 15m, 30s), got {grid.every_s} s")
    if grid.every_s < 1 or grid.max_staleness_s <= 0:
        raise ConfigError(f"--max-staleness must be positive, got {grid.max_staleness_s} s")
    return grid


def missing_days(days: list[date]) -> list[date]:
    """Calendar days between the first and the last planned day that have no file."""
    have = set(days)
    span = (days[-1] - days[0]).days if days else 0
    return [d for d in (days[0] + timedelta(days=k) for k in range(span)) if d not in have]


def plan_days(tardis_dir: Path, *, since: date | None = None, until: date | None = None) -> list[tardis.TardisDay]:
    """The day files to backfill (options_chain + derivative_ticker), oldest first; see :func:`plan_backfill`."""
    if since is not None and until is not None and since > until:
        raise ConfigError(f"--since {since} is after --until {until}")
    return tardis.find_days(Path(tardis_dir), since, until)


def plan_backfill(tardis_dir: Path, *, since: date | None = None, until: date | None = None) -> list[Path]:
    """The options_chain day files to backfill, oldest first (each has its derivative_ticker file).

    Raises a one-line SourceError before anything is written: missing directory, no file in range,
    a day without its ticker file, a file whose name or header is not Tardis'.
    """
    return [d.options_chain for d in plan_days(tardis_dir, since=since, until=until)]


def tardis_currencies(settings: Settings) -> tuple[str, ...]:
    unsupported = [c for c in settings.currencies if c not in TARDIS_CURRENCIES]
    if unsupported:
        raise ConfigError(
            f"Tardis backfill takes BTC and ETH options only, not {', '.join(unsupported)} "
            "(the CSV has no contract size for USDC-settled options)"
        )
    return settings.currencies


def new_run_id(now: datetime | None = None) -> str:
    return f"backfill-{raw.stamp_of(now or datetime.now(UTC))}-{uuid.uuid4().hex[:6]}"


def refresh_warehouse(settings: Settings, *, lock_wait_s: float = DEFAULT_LOCK_WAIT_S) -> None:
    """Schema files for every lake table and the DuckDB views (a no-op when unchanged), under the lock."""
    with waiting_writer_lock(settings.data_dir, lock_wait_s):
        prepare_warehouse(settings.data_dir)


# ---------------------------------------------------------------- one day


def backfill_day(
    settings: Settings,
    path: Path,
    ticker_path: Path | None = None,
    *,
    run_id: str | None = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
) -> DayResult:
    """The old reading of a snapshot-grouped day file (``--each-timestamp``): every distinct ``timestamp`` is one
    snapshot. Refuses a tick-level file (one whose timestamps are not grouped) before reading it whole.

    Reads, validates and publishes the day (one journaled commit). Safe to run concurrently
    with other days: it takes the writer lock only to commit. Does not refresh the views (see
    :func:`refresh_warehouse`; they glob the lake, so a day shows up as soon as it is committed once they exist).
    """
    t0 = time.perf_counter()
    started = datetime.now(UTC)
    path = Path(path)
    data_dir = settings.data_dir
    currencies = tardis_currencies(settings)
    run_id = run_id or new_run_id(started)
    day = tardis.day_of(path)
    ticker_path = Path(ticker_path) if ticker_path is not None else tardis.ticker_file_for(path)

    tardis.check_grouped(path)
    chain = tardis.read_options_chain(path, currencies)
    index = snapshot_index_prices(chain, tardis.read_index_prices(ticker_path, currencies))
    snapshots = option_snapshot_frame(chain, index, SOURCE)
    batches, failed = _batches(snapshots, index, path, ticker_path)
    failed += validate_batches(batches, data_dir, path)
    bad = {f.snapshot_ts for f in failed if f.quarantined is not None}
    good = [b for b in batches if b.cycle_stamp not in bad]

    with files.transaction(data_dir) as tx:
        for batch in good:
            tx.add(ingest.stage(batch, data_dir))
        record = run_record(run_id, started, batches, failed, SOURCE)
        if not record.is_empty():
            tx.add(
                lake.stage_partitions(
                    data_dir, Table.STATE_INGEST_RUNS, record, name=f"{run_id}-{day:%Y%m%d}", date_col="started_ts"
                )
            )
        with waiting_writer_lock(data_dir, lock_wait_s):
            tx.commit()
    staged = tx.staged
    landed = summary(good)
    return DayResult(
        day=day,
        path=path,
        landed=landed,
        failed=sorted(failed, key=lambda f: (f.snapshot_ts, f.currencies)),
        rows=int(landed["options"].sum() or 0),
        files=len(staged),
        seconds=time.perf_counter() - t0,
    )


def _batches(
    snapshots: pl.DataFrame, index: pl.DataFrame, path: Path, ticker_path: Path
) -> tuple[list[ingest.Batch], list[FailedSnapshot]]:
    """One Batch per snapshot timestamp (all currencies, like a live cycle).

    A currency's chain without an index price is set aside as failed (the rest of its timestamp goes on).
    """
    failed = []
    missing = index.filter(pl.col("index_price").is_null())
    rows = missing.select("currency", "timestamp", "index_ts_us", "index_gap_us").iter_rows()
    for currency, ts_us, nearest_us, gap_us in rows:
        snapshot_ts = _EPOCH + timedelta(milliseconds=ts_us // 1000)  # as transforms.frames.tardis truncates to ms
        if nearest_us is None:
            where = f"the file has no {currency}-PERPETUAL index_price"
        else:
            where = f"nearest is {gap_us / 1e6:,.0f} s away"
        reason = f"no {currency}-PERPETUAL index_price within 60 s in {ticker_path.name} ({where})"
        failed.append(FailedSnapshot(snapshot_ts, (currency,), path, reason))
    usable = snapshots.filter(pl.col("index_price").is_not_null())
    batches = [
        ingest.Batch(snapshot_ts, SOURCE, instruments_frame(part), part)
        for (snapshot_ts,), part in usable.group_by("snapshot_ts", maintain_order=True)
    ]
    return batches, failed


__all__ = [
    "BackfillResult",
    "DayResult",
    "FailedSnapshot",
    "Grid",
    "backfill_cycle",
    "backfill_day",
    "check_grid",
    "missing_days",
    "plan_backfill",
    "plan_days",
    "refresh_warehouse",
    "run_grid",
    "tardis_currencies",
]
