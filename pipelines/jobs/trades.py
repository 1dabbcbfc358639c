"""Trade-tape ingestion: page -> land raw -> normalise -> validate -> merge -> publish -> record.

:func:`trades_cycle` is the table of contents; each step is a plain function (``PLAIN_STEPS``) so the
Prefect flow can run the same cycle with the steps wrapped as tasks, like :mod:`pipelines.jobs.ingest`.
Planning the windows and paging the API live in :mod:`pipelines.jobs.trade_pages`; page bodies become
TRADE frames in :mod:`transforms.frames.trades`; this module normalises, validates, stages and publishes.

Incremental: per currency, ``public/get_last_trades_by_currency_and_time`` (kind=option,
sorting=asc) is paged from a start time to ``end_timestamp`` = the run's ``now``. The start is the
currency's watermark (``lake/_state/trade_watermarks``); without one, ``trades_since`` (default
24 h before ``now``). Each next page starts at the last trade's timestamp (inclusive), so pages
overlap; trades are de-duplicated by (currency, trade_id) within the run and against the lake.

Paging stops, with a warning in the result, on a page that cannot move forward:

- an empty page that claims ``has_more``;
- a full page whose trades all sit in the millisecond it started at: Deribit cannot page past a
  millisecond holding more than ``count`` trades. The rest of that millisecond is unreachable with
  this endpoint, so the watermark moves 1 ms past it (otherwise every later run would stall there);
- a page identical to the previous one (same trade ids), e.g. a server ignoring ``start_timestamp``;
- a page whose last timestamp does not advance past ``start_timestamp``.
Each request starts strictly later than the one before and never after ``end_timestamp``, so the
loop always terminates.

Raw pages land under ``raw/deribit/get_last_trades_by_currency_and_time/currency=<C>/date=<D>/``
as ``get_last_trades_by_currency_and_time.<C>.<STAMP>.json.gz`` where STAMP is the page's own
receipt time (UTC, ms); if a file of that name exists (two pages in one millisecond, or a re-run
with a frozen clock) the stamp moves on by 1 ms until the name is free. Pages therefore never
overwrite each other, and their names sort in fetch order (runs are serialised by the writer lock).
A page that arrives malformed (truncated JSON) is kept as received under ``raw/_malformed/deribit/...``
(one file per attempt, ``...<STAMP>.attempt<N>.malformed.gz``) before the client retries it.

Lake: ``lake/trades/currency=<C>/date=<trade date>/trades.parquet``, one file per (currency, UTC
trade date). A run reads the partitions its trades fall in, appends the trades not stored yet,
sorts by ts, and publishes every changed partition, the new watermarks and the run record with one
journaled commit: a failed run changes neither the lake nor the watermark.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import polars as pl

from pipelines.config import ConfigError, Settings
from pipelines.jobs.ingest import QualityError
from pipelines.jobs.trade_pages import (
    MAX_COUNT,
    WATERMARK_FILE,
    FetchedTrades,
    TradeWindow,
    as_utc,
    fetch_trades,
    from_epoch_ms,
    open_client,
    plan_windows,
    read_watermarks,
)
from pipelines.store import reads
from pipelines.store.lake_tables import Table, prepare_warehouse
from transforms.frames.schemas import TRADE, TRADE_RUN, TRADE_WATERMARK, UTC_TS
from transforms.frames.trades import conform_trades, trades_frame
from warehouse import atomic, files, lake, raw

PARTITION_FILE = "trades.parquet"


@dataclass
class TradesResult:
    run_id: str
    fetched: list[FetchedTrades] = field(default_factory=list)
    new: dict[str, int] = field(default_factory=dict)
    # per currency that gained trades, the time of the earliest one added: a snapshot computed before this run
    # at or after it had a tape without that trade (see pipelines.jobs.compute.refresh_taker_flow)
    first_new: dict[str, datetime] = field(default_factory=dict)

    @property
    def raw_files(self) -> int:
        return sum(len(f.raw_paths) for f in self.fetched)

    @property
    def warnings(self) -> list[str]:
        return [w for f in self.fetched for w in (*f.window.warnings, *f.warnings)]

    def summary(self) -> pl.DataFrame:
        """One row per currency: pages, fetched, new, duplicates (fetched - new), watermark, warnings."""
        return pl.DataFrame(
            [
                (
                    f.currency,
                    from_epoch_ms(f.window.start_ms),
                    f.pages,
                    len(f.trades),
                    self.new.get(f.currency, 0),
                    len(f.trades) - self.new.get(f.currency, 0),
                    from_epoch_ms(f.watermark_ms if f.watermark_ms is not None else f.window.previous_watermark_ms),
                    "; ".join((*f.window.warnings, *f.warnings)),
                )
                for f in self.fetched
            ],
            schema={
                "currency": pl.String,
                "start_ts": UTC_TS,
                "pages": pl.Int64,
                "fetched": pl.Int64,
                "new": pl.Int64,
                "duplicates": pl.Int64,
                "watermark_ts": UTC_TS,
                "warnings": pl.String,
            },
            orient="row",
        )


# ---------------------------------------------------------------- normalise and validate


def normalise(fetched: list[FetchedTrades]) -> pl.DataFrame:
    """All currencies' pages -> one TRADE frame, unique on (currency, trade_id) (first seen kept), by ts."""
    frames = [
        trades_frame(f.currency, f.trades).filter(pl.col("trade_id").is_first_distinct()) for f in fetched if f.trades
    ]
    if not frames:
        return pl.DataFrame(schema=TRADE)
    return pl.concat(frames).sort("currency", "ts", maintain_order=True)


def validate(frame: pl.DataFrame, data_dir: Path, run_id: str) -> None:
    """Great Expectations gate (pipelines.validation.quality); a failing batch is quarantined and the run fails."""
    if frame.is_empty():
        return
    from pipelines.validation import quality

    report = quality.validate_trades(frame)
    if report.success:
        return
    folder = data_dir / "quarantine" / Table.TRADES / run_id
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(folder / "trades.parquet")
    doc = [{"table": report.table, "failures": report.failures, "rows": report.checked_rows, "details": report.details}]
    atomic.write_atomic(folder / "report.json", json.dumps(doc, indent=1, default=str).encode())
    raise QualityError(f"{report.summary()} (batch quarantined in {folder})")


# ---------------------------------------------------------------- stage and publish


@dataclass
class Published:
    new: dict[str, int]  # trades added per currency (0 for a currency fetched without new trades)
    first_new: dict[str, datetime]  # the earliest added trade's time, per currency that gained trades


def stage_trades(frame: pl.DataFrame, data_dir: Path) -> tuple[list[files.Staged], dict[str, int], dict[str, datetime]]:
    """Merge ``frame`` into the partitions it touches; stage the changed ones. Returns (staged, new per currency,
    time of the earliest new trade per currency that gained any)."""
    staged: list[files.Staged] = []
    new: dict[str, int] = {}
    first_new: dict[str, datetime] = {}
    keyed = frame.with_columns(pl.col("ts").dt.date().alias("__date"))
    try:
        for (currency, date), part in keyed.group_by(["currency", "__date"], maintain_order=True):
            part = part.drop("__date")
            path = lake.partition_dir(data_dir, Table.TRADES, currency, date) / PARTITION_FILE
            stored = reads.trades_partition(path)
            if stored is not None:
                stored = conform_trades(stored)
                fresh = part.join(stored.select("trade_id"), on="trade_id", how="anti", maintain_order="left")
                merged = pl.concat([stored, fresh])
            else:
                fresh, merged = part, part
            new[currency] = new.get(currency, 0) + fresh.height
            if fresh.height:
                staged.append(lake.stage_file(path, merged.sort("ts", maintain_order=True)))
                first = fresh["ts"].min()
                first_new[currency] = min(first, first_new.get(currency, first))
    except BaseException:
        files.discard(staged)
        raise
    return staged, new, first_new


def watermark_record(f: FetchedTrades, run_id: str, published: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        [
            (
                f.currency,
                from_epoch_ms(f.watermark_ms),
                f.last_trade_id,
                from_epoch_ms(f.window.end_ms),
                run_id,
                published,
            )
        ],
        schema=TRADE_WATERMARK,
        orient="row",
    )


def run_record(fetched: list[FetchedTrades], new: dict[str, int], run_id: str, started: datetime) -> pl.DataFrame:
    rows = [
        (
            run_id,
            f.currency,
            started,
            from_epoch_ms(f.window.start_ms),
            from_epoch_ms(f.window.end_ms),
            f.pages,
            len(f.trades),
            new.get(f.currency, 0),
            len(f.trades) - new.get(f.currency, 0),
            from_epoch_ms(f.watermark_ms if f.watermark_ms is not None else f.window.previous_watermark_ms),
            "; ".join((*f.window.warnings, *f.warnings)),
        )
        for f in fetched
    ]
    return pl.DataFrame(rows, schema=TRADE_RUN, orient="row")


def publish(
    frame: pl.DataFrame, fetched: list[FetchedTrades], data_dir: Path, run_id: str, started: datetime
) -> Published:
    """Changed partitions, new watermarks and the run record become visible together (one journaled commit).

    Returns the number of trades added per currency and the time of the earliest one.
    """
    with files.transaction(data_dir) as tx:
        staged, new, first_new = stage_trades(frame, data_dir)
        tx.add(staged)
        published = datetime.now(UTC)
        for f in fetched:
            if f.watermark_ms is not None:
                path = (
                    lake.table_dir(data_dir, Table.STATE_TRADE_WATERMARKS) / f"currency={f.currency}" / WATERMARK_FILE
                )
                tx.add(lake.stage_file(path, watermark_record(f, run_id, published)))
        record = run_record(fetched, new, run_id, started)
        tx.add(lake.stage_partitions(data_dir, Table.STATE_TRADE_RUNS, record, name=run_id, date_col="started_ts"))
    return Published({f.currency: new.get(f.currency, 0) for f in fetched}, first_new)


def prepare_trades_warehouse(data_dir: Path) -> None:
    """Schema files for every lake table (the registry in pipelines.store.lake_tables), then every view."""
    prepare_warehouse(data_dir)


PLAIN_STEPS = SimpleNamespace(
    plan_windows=plan_windows,
    open_client=open_client,
    fetch_trades=fetch_trades,
    normalise=normalise,
    validate=validate,
    publish=publish,
)


# ---------------------------------------------------------------- the cycle


def trades_cycle(
    settings: Settings,
    *,
    now: datetime | None = None,
    trades_since: datetime | None = None,
    count: int = MAX_COUNT,
    steps=PLAIN_STEPS,
) -> TradesResult:
    """Fetch every currency's option trades up to ``now`` and publish them with the new watermarks atomically.

    ``trades_since`` is the first run's start (default ``now`` - 24 h); a currency with a watermark
    continues from it. ``count`` is the page size (Deribit allows at most 1000). Raw pages that
    arrived are kept when the run fails; the lake and watermarks change only if every currency was
    fetched, normalised and validated. Sources other than ``live`` have no trade tape: nothing is
    fetched (a warning says so) and only the empty tables and views are prepared.
    """
    if not 1 <= count <= MAX_COUNT:
        raise ConfigError(f"trades page size must be 1..{MAX_COUNT}, got {count}")
    now = as_utc(now, "now") if now is not None else datetime.now(UTC)
    started = datetime.now(UTC)
    data_dir = settings.data_dir
    files.check_writable(data_dir)
    result = TradesResult(run_id=f"{raw.stamp_of(started)}-{uuid.uuid4().hex[:6]}")
    with files.writer_lock(data_dir, settings.lock_wait_s):
        windows = steps.plan_windows(data_dir, settings.currencies, now, trades_since)
        if settings.source != "live":
            label = settings.source.split(":")[0]
            for w in windows:
                w.warnings.append(f"{w.currency}: source {label} has no trade tape; nothing fetched")
            result.fetched = [FetchedTrades(w) for w in windows]
            prepare_trades_warehouse(data_dir)
            return result
        client = steps.open_client(settings)
        result.fetched = [steps.fetch_trades(client, w, data_dir, count) for w in windows]
        frame = steps.normalise(result.fetched)
        steps.validate(frame, data_dir, result.run_id)
        published = steps.publish(frame, result.fetched, data_dir, result.run_id, started)
        result.new, result.first_new = published.new, published.first_new
        prepare_trades_warehouse(data_dir)
    return result


__all__ = [
    "FetchedTrades",
    "TradeWindow",
    "TradesResult",
    "fetch_trades",
    "normalise",
    "plan_windows",
    "read_watermarks",
    "stage_trades",
    "trades_cycle",
]
