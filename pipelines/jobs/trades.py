"""Trade-tape ingestion: page -> land raw -> normalise -> validate -> merge -> publish -> record.

:func:`trades_cycle` is the table of contents; each step is a plain function (``PLAIN_STEPS``) so the
Prefect flow can run the same cycle with the steps wrapped as tasks, like :mod:`pipelines.jobs.ingest`.

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
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import polars as pl

from pipelines.config import ConfigError, Settings
from pipelines.jobs.ingest import QualityError, land_malformed
from pipelines.sources.deribit import DeribitClient, RawResponse
from pipelines.store.lake_tables import prepare_warehouse
from transforms.frames.normalise import NormaliseError
from transforms.frames.schemas import TRADE, TRADE_RUN, TRADE_WATERMARK, UTC_TS, check
from warehouse import files, lake, raw

METHOD = "public/get_last_trades_by_currency_and_time"
MAX_COUNT = 1000  # Deribit's largest page
DEFAULT_LOOKBACK = timedelta(hours=24)
TRADES_TABLE = "trades"
WATERMARK_TABLE = "_state/trade_watermarks"
RUN_TABLE = "_state/trade_runs"
PARTITION_FILE = "trades.parquet"
WATERMARK_FILE = "watermark.parquet"

# The wire fields kept, with the dtype they are read as (ids are strings whatever JSON type they come in).
_WIRE = {
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


@dataclass
class TradeWindow:
    """What one currency's run asks for: ``[start_ms, end_ms]`` (both inclusive, epoch ms)."""

    currency: str
    start_ms: int
    end_ms: int
    previous_watermark_ms: int | None
    warnings: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return self.start_ms > self.end_ms


@dataclass
class FetchedTrades:
    """The pages of one currency: trades as received (overlaps included) and where the next run starts."""

    window: TradeWindow
    trades: list[dict] = field(default_factory=list)
    pages: int = 0
    raw_paths: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    watermark_ms: int | None = None  # None: leave the stored watermark as it is
    last_trade_id: str | None = None

    @property
    def currency(self) -> str:
        return self.window.currency


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
                    _dt(f.window.start_ms),
                    f.pages,
                    len(f.trades),
                    self.new.get(f.currency, 0),
                    len(f.trades) - self.new.get(f.currency, 0),
                    _dt(f.watermark_ms if f.watermark_ms is not None else f.window.previous_watermark_ms),
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(ts: datetime) -> int:
    """Epoch milliseconds (exact integer arithmetic; sub-millisecond parts are dropped)."""
    return (ts - _EPOCH) // timedelta(milliseconds=1)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def _aware(ts: datetime, what: str) -> datetime:
    """UTC; a naive datetime is taken to be UTC."""
    if not isinstance(ts, datetime):
        raise ConfigError(f"{what} must be a datetime, got {ts!r}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# ---------------------------------------------------------------- steps


def read_watermarks(data_dir: Path) -> dict[str, int]:
    """{currency: watermark (epoch ms)} from ``lake/_state/trade_watermarks``."""
    root = lake.table_dir(data_dir, WATERMARK_TABLE)
    found = sorted(root.glob(f"currency=*/{WATERMARK_FILE}")) if root.is_dir() else []
    if not found:
        return {}
    frame = pl.concat([pl.read_parquet(p, columns=["currency", "watermark_ts", "updated_ts"]) for p in found])
    latest = frame.sort("updated_ts").unique("currency", keep="last")
    return {c: _ms(ts) for c, ts in latest.select("currency", "watermark_ts").iter_rows() if ts is not None}


def plan_windows(data_dir: Path, currencies, now: datetime, trades_since: datetime | None = None) -> list[TradeWindow]:
    """Per currency: start at the watermark if there is one, else at ``trades_since`` (default now - 24 h)."""
    now = _aware(now, "now")
    since = _aware(trades_since, "trades_since") if trades_since is not None else now - DEFAULT_LOOKBACK
    if since > now:
        raise ConfigError(
            f"--trades-since {since:%Y-%m-%dT%H:%M:%SZ} is after the run's end time {now:%Y-%m-%dT%H:%M:%SZ}"
        )
    marks = read_watermarks(data_dir)
    end_ms = _ms(now)
    windows = []
    for currency in currencies:
        mark = marks.get(currency)
        window = TradeWindow(currency, mark if mark is not None else _ms(since), end_ms, mark)
        if mark is not None and trades_since is not None:
            window.warnings.append(f"{currency}: trades_since ignored, continuing from the watermark {_at(mark)}")
        if window.is_empty:
            window.warnings.append(f"{currency}: watermark is after the run's end time; nothing fetched")
        windows.append(window)
    return windows


def open_client(settings: Settings) -> DeribitClient:
    """A live client. Its clock stamps raw pages with their receipt time; a page that arrives malformed
    (truncated JSON) is kept under raw/_malformed/ (:func:`pipelines.jobs.ingest.land_malformed`) before any retry."""
    return DeribitClient.from_settings(settings, on_malformed=partial(land_malformed, settings.data_dir))


def land_page(data_dir: Path, currency: str, response: RawResponse) -> Path:
    """Land one page body under raw/, stamped with its receipt time, never overwriting an earlier page."""
    stamp = response.received_at.astimezone(UTC)
    stamp = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
    while raw.raw_path(data_dir, METHOD, currency, currency, stamp).exists():
        stamp += timedelta(milliseconds=1)
    return raw.land_raw(data_dir, METHOD, currency, currency, stamp, response.body)


def _page(currency: str, result) -> tuple[list[dict], bool, list[int]]:
    """(trades, has_more, timestamps) of one page, or a one-line NormaliseError."""
    trades = result.get("trades") if isinstance(result, dict) else None
    if not isinstance(trades, list):
        raise NormaliseError(f"{currency}: get_last_trades_by_currency_and_time result has no trades list")
    try:
        stamps = [int(t["timestamp"]) for t in trades]
    except (KeyError, TypeError, ValueError):
        raise NormaliseError(f"{currency}: get_last_trades_by_currency_and_time trade without a timestamp") from None
    return trades, bool(result.get("has_more")), stamps


def _flatten_legs(trades: list[dict]) -> list[dict]:
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


def _at(ms: int) -> str:
    return f"{_dt(ms):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def fetch_trades(client: DeribitClient, window: TradeWindow, data_dir: Path, count: int = MAX_COUNT) -> FetchedTrades:
    """Page one currency's tape over ``window``; every page body lands under raw/ as it arrives."""
    out = FetchedTrades(window)
    if window.is_empty:
        return out
    currency, start, end = window.currency, window.start_ms, window.end_ms
    newest = start
    previous_ids: list | None = None
    while True:
        result, response = client.get_trades(currency, start, end, count=count)
        out.raw_paths.append(land_page(data_dir, currency, response))
        out.pages += 1
        trades, has_more, stamps = _page(currency, result)
        out.trades.extend(_flatten_legs(trades))
        where = f"{currency}: page {out.pages} (start {_at(start)})"
        if not trades:
            if has_more:
                out.warnings.append(f"{where}: empty page claims has_more; stopped")
            break
        first, last = min(stamps), max(stamps)
        if last >= newest:
            newest = last
            out.last_trade_id = str(trades[len(stamps) - 1 - stamps[::-1].index(last)].get("trade_id"))
        ids = [t.get("trade_id") for t in trades]
        if not has_more:
            break
        if last <= start and first == last and len(trades) >= count:
            out.warnings.append(
                f"{where}: more than {count} trades at {_at(start)}; Deribit cannot page past one millisecond, "
                f"the rest of it is skipped"
            )
            newest = max(newest, start + 1)
            break
        if ids == previous_ids:
            out.warnings.append(f"{where}: page identical to the previous one; stopped")
            break
        if last <= start:
            out.warnings.append(f"{where}: last trade timestamp {_at(last)} does not advance; stopped")
            break
        if last > end:
            out.warnings.append(f"{where}: trades after end_timestamp {_at(end)}; stopped")
            break
        start, previous_ids = last, ids
    out.watermark_ms = newest  # >= start >= the previous watermark: it never moves back
    return out


def trades_frame(currency: str, trades: list[dict]) -> pl.DataFrame:
    """Trade dicts as Deribit sends them -> TRADE frame (optional fields null when absent; not de-duplicated)."""
    wire = pl.from_dicts(trades, schema=_WIRE, strict=False) if trades else pl.DataFrame(schema=_WIRE)
    frame = wire.select(
        pl.lit(currency, pl.String).alias("currency"),
        "trade_id",
        pl.col("timestamp").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC").alias("ts"),
        *(c for c in _WIRE if c not in ("trade_id", "timestamp")),
        pl.col("block_trade_id").is_not_null().alias("is_block"),
        (pl.col("combo_id").is_not_null() | pl.col("combo_trade_id").is_not_null()).alias("is_combo"),
        pl.col("liquidation").is_not_null().alias("is_liquidation"),
    )
    check(frame, TRADE, "trades")
    return frame


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
    folder = data_dir / "quarantine" / TRADES_TABLE / run_id
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(folder / "trades.parquet")
    doc = [{"table": report.table, "failures": report.failures, "rows": report.checked_rows, "details": report.details}]
    files.write_atomic(folder / "report.json", json.dumps(doc, indent=1, default=str).encode())
    raise QualityError(f"{report.summary()} (batch quarantined in {folder})")


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    """A stored partition in the current TRADE layout (columns added later read as null)."""
    return frame.select(pl.col(c).cast(t) if c in frame.columns else pl.lit(None, t).alias(c) for c, t in TRADE.items())


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
            path = lake.partition_dir(data_dir, TRADES_TABLE, currency, date) / PARTITION_FILE
            if path.exists():
                stored = _conform(pl.read_parquet(path))
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
        [(f.currency, _dt(f.watermark_ms), f.last_trade_id, _dt(f.window.end_ms), run_id, published)],
        schema=TRADE_WATERMARK,
        orient="row",
    )


def run_record(fetched: list[FetchedTrades], new: dict[str, int], run_id: str, started: datetime) -> pl.DataFrame:
    rows = [
        (
            run_id,
            f.currency,
            started,
            _dt(f.window.start_ms),
            _dt(f.window.end_ms),
            f.pages,
            len(f.trades),
            new.get(f.currency, 0),
            len(f.trades) - new.get(f.currency, 0),
            _dt(f.watermark_ms if f.watermark_ms is not None else f.window.previous_watermark_ms),
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
                path = lake.table_dir(data_dir, WATERMARK_TABLE) / f"currency={f.currency}" / WATERMARK_FILE
                tx.add(lake.stage_file(path, watermark_record(f, run_id, published)))
        record = run_record(fetched, new, run_id, started)
        tx.add(lake.stage_partitions(data_dir, RUN_TABLE, record, name=run_id, date_col="started_ts"))
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
    now = _aware(now, "now") if now is not None else datetime.now(UTC)
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
