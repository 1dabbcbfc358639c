"""Backfill: Tardis.dev CSV history (or recorded API replays) into the lake, one journaled commit per day.

:func:`backfill_cycle` is the table of contents. For Tardis it plans the day files
(:func:`plan_backfill`) and runs :func:`backfill_day` on each:

    read options_chain + derivative_ticker -> normalise (transforms.tardis) -> one ingest.Batch per
    snapshot timestamp -> validate -> stage -> commit the day (one journal) under the writer lock

Choices (README "Backfill"):

- **Publishing unit: one day file.** Each day is one :func:`warehouse.files.commit`, so a crash loses
  at most the day in flight and a re-run resumes; file names are the snapshot stamps
  (``lake/<table>/currency=C/date=D/<YYYYMMDDTHHMMSSmmmZ>.parquet``, the names live snapshots use),
  so re-running replaces files instead of duplicating rows. A re-run never deletes: a snapshot that
  landed once and fails later keeps its earlier file.
- **Bad snapshots: skip and report.** A snapshot timestamp whose batch fails validation is quarantined
  by :func:`pipelines.ingest.validate` (both currencies of that timestamp, as a live cycle would) and
  the others of the day still land; a currency's chain with no index price within 60 s is skipped
  (not quarantined: the CSV is the record). Both are listed in ``result.failed`` and in the
  ``ingest_runs`` state table with ``status = 'failed'``; ``result.exit_code`` is 1 when anything
  failed. Bad input -- a missing directory, no files in range, a malformed file -- is a one-line
  :class:`~pipelines.errors.SourceError` instead: before anything is written for wrong names and
  headers (checked for every day up front), and at that day (earlier days stay published) for a
  bad value inside a file.
- **Locking: per day, for the commit only.** Reading, validating and staging (temp files nobody
  reads) run without the lock; the rename of the day's files runs under
  :func:`warehouse.files.writer_lock`, waiting up to ``lock_wait_s`` for it. So per-day steps may run
  concurrently (threads or processes: days never share a file), and an hourly snapshot is never locked
  out for the length of a long backfill. Great Expectations validation is serialised per process.
- **Validation cost.** Each snapshot batch is validated exactly as a live one; to keep 800+ batches
  affordable the whole day is first validated as one frame (every check is per row or keyed by
  snapshot_ts, so the day passes iff every snapshot does) and only a failing day is re-validated (and
  quarantined) snapshot by snapshot.

Replays (``replay_dir``) are :func:`pipelines.ingest.snapshot_cycle` with ``source=replay:<DIR>``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

import polars as pl

from pipelines import ingest
from pipelines.config import ConfigError, Settings
from pipelines.lake_tables import prepare_warehouse
from pipelines.sources import tardis
from transforms.schemas import INGEST_RUN
from transforms.tardis import instruments_frame, option_snapshot_frame, snapshot_index_prices
from warehouse import files, lake, raw

TARDIS_CURRENCIES = ("BTC", "ETH")  # inverse options: the CSV has no contract size for USDC-settled ones
SOURCE = "tardis"
DEFAULT_LOCK_WAIT_S = 120.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Progress = Callable[[int, int, str, datetime], None]  # (days done, days total, currencies, day start UTC)


@dataclass(frozen=True)
class FailedSnapshot:
    """A snapshot (one timestamp, one or both currencies) that did not land."""

    snapshot_ts: datetime
    currencies: tuple[str, ...]
    file: Path  # the options_chain file it came from
    reason: str  # one line
    quarantined: Path | None = None  # quarantine/date=D/<stamp>/ with report.json, when validation failed

    def line(self) -> str:
        when = self.snapshot_ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return f"{','.join(self.currencies)} {when}: {self.reason}"


@dataclass
class DayResult:
    day: date
    path: Path
    landed: pl.DataFrame  # one row per (currency, snapshot_ts) published: options, open_interest, index_price, expiries
    failed: list[FailedSnapshot] = field(default_factory=list)
    rows: int = 0  # option_snapshots rows published
    files: int = 0  # lake files published (option_snapshots + instruments + state)
    seconds: float = 0.0

    @property
    def snapshots(self) -> int:
        """(currency, snapshot_ts) chains published."""
        return self.landed.height


@dataclass
class BackfillResult:
    run_id: str
    source: str  # 'tardis' | 'replay'
    days: list[DayResult] = field(default_factory=list)
    ingest: ingest.IngestResult | None = None  # replays only
    seconds: float = 0.0

    def summary(self) -> pl.DataFrame:
        """One row per (currency, snapshot_ts) landed: options, open_interest, index_price, expiries."""
        if self.ingest is not None:
            return self.ingest.summary()
        frames = [d.landed for d in self.days]
        return pl.concat(frames) if frames else _summary([])

    @property
    def rows(self) -> int:
        return int(self.summary()["options"].sum() or 0)

    @property
    def snapshots(self) -> int:
        return self.summary().height

    @property
    def failed(self) -> list[FailedSnapshot]:
        return [f for d in self.days for f in d.failed]

    @property
    def exit_code(self) -> int:
        """0 when every snapshot landed, 1 when some were skipped (they are in ``failed``)."""
        return 1 if self.failed else 0

    def lines(self) -> list[str]:
        """Human report: a totals line, then one line per failed snapshot."""
        head = f"backfilled {self.snapshots} snapshot(s), {self.rows} rows"
        if self.source == "tardis":
            head += f" from {len(self.days)} day file(s)"
        head += f" in {self.seconds:.1f} s"
        if self.failed:
            head += f"; {len(self.failed)} snapshot(s) failed"
        # a day file with no option rows for the asked currencies (e.g. only a header) lands nothing: say so
        empty = [d for d in self.days if d.rows == 0 and not d.failed]
        return [
            head,
            *(f"  failed {f.line()}" for f in self.failed),
            *(f"  empty {d.day}: {d.path.name} has no option rows for these currencies" for d in empty),
        ]


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
) -> BackfillResult:
    """Backfill ``settings.data_dir`` from a Tardis directory (days ``since..until``, inclusive, UTC)
    or a replay directory; see the module docstring for what is published when."""
    t0 = time.perf_counter()
    if (tardis_dir is None) == (replay_dir is None):
        raise ConfigError("backfill needs exactly one of --tardis DIR or --replay DIR")
    if replay_dir is not None:
        if since is not None or until is not None:
            raise ConfigError("--since/--until apply to --tardis only (a replay takes every recorded snapshot)")
        result = ingest.snapshot_cycle(settings.with_(source=f"replay:{replay_dir}"))
        return BackfillResult(result.run_id, "replay", ingest=result, seconds=time.perf_counter() - t0)

    currencies = tardis_currencies(settings)
    paths = plan_backfill(tardis_dir, since=since, until=until)
    files.check_writable(settings.data_dir)
    result = BackfillResult(new_run_id(), SOURCE)
    refresh_warehouse(settings, lock_wait_s=lock_wait_s)  # views bind now, so days show up as they land
    for done, path in enumerate(paths, start=1):
        day = backfill_day(settings, path, run_id=result.run_id, lock_wait_s=lock_wait_s)
        result.days.append(day)
        if progress:
            progress(done, len(paths), ",".join(currencies), datetime.combine(day.day, time_of_day.min, UTC))
    refresh_warehouse(settings, lock_wait_s=lock_wait_s)
    result.seconds = time.perf_counter() - t0
    return result


def plan_backfill(tardis_dir: Path, *, since: date | None = None, until: date | None = None) -> list[Path]:
    """The options_chain day files to backfill, oldest first (each has its derivative_ticker file).

    Raises a one-line SourceError before anything is written: missing directory, no file in range,
    a day without its ticker file, a file whose name or header is not Tardis'.
    """
    if since is not None and until is not None and since > until:
        raise ConfigError(f"--since {since} is after --until {until}")
    return [d.options_chain for d in tardis.find_days(Path(tardis_dir), since, until)]


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
    """Read, validate and publish one Tardis day file (one journaled commit). Safe to run concurrently
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
        record = _run_record(run_id, started, batches, failed)
        if not record.is_empty():
            tx.add(
                lake.stage_partitions(
                    data_dir, "_state/ingest_runs", record, name=f"{run_id}-{day:%Y%m%d}", date_col="started_ts"
                )
            )
        with waiting_writer_lock(data_dir, lock_wait_s):
            tx.commit()
    staged = tx.staged
    landed = _summary(good)
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
        snapshot_ts = _EPOCH + timedelta(milliseconds=ts_us // 1000)  # as transforms.tardis truncates to ms
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


def validate_batches(batches: list[ingest.Batch], data_dir: Path, path: Path) -> list[FailedSnapshot]:
    """Validate every batch as :func:`pipelines.ingest.validate` does; failing ones are quarantined and returned.

    Fast path: the day's batches concatenated pass (every option_snapshots check is per row or keyed by
    (currency, snapshot_ts, instrument_name); the derived instruments repeat those columns, keyed per
    snapshot) -> all pass. Otherwise each batch goes through ``ingest.validate``.
    """
    from pipelines import quality

    if not batches:
        return []
    if len(batches) > 1:
        day_snapshots = pl.concat([b.snapshots for b in batches])
        day_instruments = pl.concat([b.instruments for b in batches]).unique(
            ["currency", "instrument_name"], keep="last", maintain_order=True
        )
        if (
            quality.validate_option_snapshots(day_snapshots).success
            and quality.validate_instruments(day_instruments).success
        ):
            return []
    failed = []
    for batch in batches:
        try:
            ingest.validate(batch, data_dir, None, 0)
        except ingest.QualityError as exc:
            stamp = raw.stamp_of(batch.cycle_stamp)
            folder = data_dir / "quarantine" / f"date={batch.cycle_stamp:%Y-%m-%d}" / stamp
            currencies = tuple(sorted(batch.snapshots["currency"].unique().to_list()))
            failed.append(FailedSnapshot(batch.cycle_stamp, currencies, path, " ".join(str(exc).split()), folder))
    return failed


_SUMMARY = {
    "currency": pl.String,
    "snapshot_ts": INGEST_RUN["snapshot_ts"],
    "options": pl.UInt32,
    "open_interest": pl.Float64,
    "index_price": pl.Float64,
    "expiries": pl.UInt32,
}


def _summary(batches: list[ingest.Batch]) -> pl.DataFrame:
    """IngestResult.summary() of the batches, with every column also when nothing landed."""
    if not any(b.snapshots.height for b in batches):
        return pl.DataFrame(schema=_SUMMARY)
    return ingest.IngestResult(run_id="", batches=batches).summary().cast(_SUMMARY)


def _run_record(
    run_id: str, started: datetime, batches: list[ingest.Batch], failed: list[FailedSnapshot]
) -> pl.DataFrame:
    """ingest_runs rows: 'ok' per landed (currency, snapshot_ts), 'failed' with the reason per failed one."""
    finished = datetime.now(UTC)
    quarantined = {f.snapshot_ts: f for f in failed if f.quarantined is not None}
    ok = [b for b in batches if b.cycle_stamp not in quarantined]
    frames = [ingest.run_record(run_id, started, finished, ok, "ok", "")]
    for batch in batches:
        if batch.cycle_stamp in quarantined:
            reason = quarantined[batch.cycle_stamp].reason
            frames.append(ingest.run_record(run_id, started, finished, [batch], "failed", reason))
    for f in failed:
        if f.quarantined is None:  # no index price: nothing of it was normalised into a batch
            for currency in f.currencies:
                frames.append(
                    pl.DataFrame(
                        [(run_id, started, finished, SOURCE, currency, f.snapshot_ts, 0, 0.0, "failed", f.reason)],
                        schema=INGEST_RUN,
                        orient="row",
                    )
                )
    return pl.concat(frames)


# ---------------------------------------------------------------- locking


def waiting_writer_lock(data_dir: Path, wait_s: float):
    """:func:`warehouse.files.writer_lock` waiting up to ``wait_s`` for another writer; an unwritable data dir
    fails at once instead of after ``wait_s``."""
    files.check_writable(data_dir)
    return files.writer_lock(data_dir, wait_s)


__all__ = [
    "BackfillResult",
    "DayResult",
    "FailedSnapshot",
    "backfill_cycle",
    "backfill_day",
    "plan_backfill",
    "refresh_warehouse",
    "tardis_currencies",
    "validate_batches",
    "waiting_writer_lock",
]
