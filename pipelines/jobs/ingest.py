"""Snapshot ingestion: fetch -> land raw -> normalise -> validate -> publish -> record.

:func:`snapshot_cycle` is the table of contents; each step is a plain function. The Prefect flow in
:mod:`pipelines.orchestration.flows` runs the same cycle with the steps wrapped as tasks (retries, observability);
the CLI runs it in-process when no Prefect API is configured (see README, "Prefect").
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import polars as pl

from pipelines.config import Settings
from pipelines.errors import GexflowError, SourceError
from pipelines.sources.deribit import DeribitClient, RawResponse, TokenBucket, index_names
from pipelines.sources.replay import (
    BOOK_METHOD,
    INSTRUMENTS_METHOD,
    ReplayDirectory,
    ReplayTransport,
    parse_stamp,
    sample_directory,
)
from pipelines.store.lake_tables import Table, prepare_warehouse
from transforms.frames.normalise import NormaliseError, instruments_frame, number, option_snapshot_frame, snapshot_ts_of
from transforms.frames.schemas import INGEST_RUN, INSTRUMENT, OPTION_SNAPSHOT
from warehouse import atomic, files, lake, raw


class QualityError(GexflowError):
    """A batch failed validation; it was quarantined and nothing reached the lake."""


@dataclass
class Cycle:
    """One snapshot to take: a client that answers for it and the stamp its raw bodies are filed under."""

    client: DeribitClient
    stamp_ts: datetime
    source: str  # 'deribit' | 'replay' | 'sample'
    replay: ReplayDirectory | None = None  # where a replay's bodies come from (to name a bad file)
    replay_stamp: str | None = None

    def origin(self, method: str, key: str) -> Path | None:
        """The replay file a body of ``method`` (short name) for ``key`` was read from; None when live."""
        if self.replay is None or self.replay_stamp is None or not self.replay.has(method, key, self.replay_stamp):
            return None
        return self.replay.path(method, key, self.replay_stamp)


@dataclass
class FetchedChain:
    currency: str  # the requested currency (BTC, ETH, USDC)
    instruments: list
    book: list
    index_prices: dict[str, float]
    raw_paths: list[Path] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # short method -> the file its body is in (for errors)


@dataclass
class Batch:
    cycle_stamp: datetime
    source: str
    instruments: pl.DataFrame
    snapshots: pl.DataFrame


@dataclass
class IngestResult:
    run_id: str
    batches: list[Batch] = field(default_factory=list)
    raw_files: int = 0

    def summary(self) -> pl.DataFrame:
        """One row per (currency, snapshot_ts) landed by this run."""
        frames = [b.snapshots for b in self.batches if not b.snapshots.is_empty()]
        if not frames:
            return pl.DataFrame(schema={"currency": pl.String, "snapshot_ts": INGEST_RUN["snapshot_ts"]})
        return (
            pl.concat(frames)
            .group_by("currency", "snapshot_ts")
            .agg(
                pl.len().alias("options"),
                pl.col("open_interest").sum().alias("open_interest"),
                pl.col("index_price").first().alias("index_price"),
                pl.col("expiration_ts").n_unique().alias("expiries"),
            )
            .sort("currency", "snapshot_ts")
        )


# ---------------------------------------------------------------- steps


def open_cycles(settings: Settings, now: datetime) -> list[Cycle]:
    """The snapshots this run takes: one live cycle, or one per recorded stamp of a replay/sample.

    A replay is checked whole here, before the data dir is made: every file each snapshot needs must
    be there (a missing one is named). A live client keeps malformed bodies under raw/_malformed/.
    """
    if settings.source == "live":
        client = DeribitClient.from_settings(
            settings, now=lambda: now, on_malformed=partial(land_malformed, settings.data_dir)
        )
        return [Cycle(client, now, "deribit")]
    directory = ReplayDirectory.open(sample_directory() if settings.source == "sample" else settings.replay_dir)
    label = "sample" if settings.source == "sample" else "replay"
    stamps = directory.snapshots(settings.currencies)
    directory.require(stamps, settings.currencies)
    cycles = []
    for stamp in stamps:
        ts = parse_stamp(stamp)
        transport = ReplayTransport(directory, stamp)
        client = DeribitClient(
            transport,
            bucket=TokenBucket(1e9, 10**9),
            instruments_bucket=TokenBucket(1e9, 10**9),
            max_retries=0,
            now=lambda ts=ts: ts,
            parse=transport.parse,  # a bad file: one SourceError naming it, never retried
        )
        cycles.append(Cycle(client, ts, label, directory, stamp))
    return cycles


MALFORMED_DIR = "_malformed"  # raw/_malformed/deribit/...: beside raw/deribit, never read back as data


def land_malformed(data_dir: Path, response: RawResponse, attempt: int) -> Path:
    """Keep a body that arrived but is not a usable response (truncated JSON, a proxy's HTML page), as received.

    ``raw/_malformed/deribit/<method>/currency=<C>/date=<D>/<method>.<KEY>.<STAMP>.attempt<N>.malformed.gz``,
    STAMP the response's time as for good bodies, N the client's attempt. Outside ``raw/deribit`` and
    not named ``*.json[.gz]``, so neither a replay of ``raw/deribit`` (or of ``raw/``) nor
    ``backfill --replay`` ever reads one. Never overwrites: a taken name moves the stamp on by 1 ms.
    """
    params = response.params
    if response.short_method == "get_index_price":
        key = str(params.get("index_name", "unknown"))
        currency = key.split("_", 1)[0].upper()
    else:
        key = currency = str(params.get("currency", "unknown"))
    stamp = response.received_at.astimezone(UTC)
    stamp = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
    while True:
        good = raw.raw_path(data_dir, response.method, currency, key, stamp)
        path = (data_dir / "raw" / MALFORMED_DIR / good.relative_to(data_dir / "raw")).with_name(
            good.name.removesuffix(".json.gz") + f".attempt{attempt}.malformed.gz"
        )
        if not path.exists():
            break
        stamp += timedelta(milliseconds=1)
    return atomic.write_atomic(path, gzip.compress(response.body, compresslevel=6, mtime=0))


def fetch_chain(cycle: Cycle, currency: str, data_dir: Path) -> FetchedChain:
    """Instruments, book summary and index price(s) of one currency; each body lands under raw/ as it arrives."""
    landed: list[Path] = []
    where: dict[str, Path] = {}

    def keep(response: RawResponse, key: str, coin: str) -> None:
        landed.append(raw.land_raw(data_dir, response.method, coin, key, cycle.stamp_ts, response.body))
        method = response.short_method
        where[method] = cycle.origin(method, key) or cycle.origin(method, coin) or landed[-1]

    instruments, r = cycle.client.get_instruments(currency)
    keep(r, currency, currency)
    book, r = cycle.client.get_book_summary(currency)
    keep(r, currency, currency)
    if not isinstance(instruments, list) or not isinstance(book, list):
        raise NormaliseError(f"{currency}: get_instruments/get_book_summary_by_currency result is not a list")
    if not book:  # e.g. exchange maintenance, or a currency without options: a failed run, not an empty one
        raise SourceError(
            f"get_book_summary_by_currency listed no options for {currency} at {cycle.stamp_ts:%Y-%m-%d %H:%M:%SZ}"
            " (raw body kept); nothing was published"
        )
    prices = {}
    for name in index_names(currency, instruments):
        result, r = cycle.client.get_index_price(name)
        keep(r, name, name.split("_", 1)[0].upper())
        try:
            price = number(result["index_price"], "index_price", f"get_index_price {name}")
        except (TypeError, KeyError, NormaliseError) as exc:
            what = exc if isinstance(exc, NormaliseError) else f"get_index_price {name}: result has no index_price"
            raise SourceError(f"{what} (in {where['get_index_price']}); nothing was published") from None
        if price is None:
            raise SourceError(f"get_index_price {name}: index_price is null (in {where['get_index_price']})")
        prices[name] = price  # a non-finite or absurd value is the validation gate's to refuse
    return FetchedChain(currency, instruments, book, prices, landed, where)


def normalise(cycle: Cycle, chains: list[FetchedChain]) -> Batch:
    """Raw results -> instruments and option_snapshots frames (USDC options split by base coin)."""
    ins_frames, snap_frames = [], []
    for chain in chains:
        if not chain.book:
            continue
        body = BOOK_METHOD
        try:
            seen = snapshot_ts_of(chain.book)
            body = INSTRUMENTS_METHOD
            ins = instruments_frame(chain.instruments, seen)
            body = BOOK_METHOD
            snap_frames.append(option_snapshot_frame(chain.book, ins, chain.index_prices, cycle.source))
        except NormaliseError as exc:  # a type error in a body: one line naming its file, nothing published
            path = chain.files.get(exc.body or body, "the response")
            raise SourceError(f"{path}: {exc}; nothing was published") from None
        ins_frames.append(ins)
    instruments = pl.concat(ins_frames) if ins_frames else pl.DataFrame(schema=INSTRUMENT)
    snapshots = pl.concat(snap_frames) if snap_frames else pl.DataFrame(schema=OPTION_SNAPSHOT)
    return Batch(cycle.stamp_ts, cycle.source, instruments, snapshots)


def validate(
    batch: Batch,
    data_dir: Path,
    now: datetime | None,
    max_age_s: float,
    neighbours: Sequence[Batch] = (),
) -> None:
    """Great Expectations gate; a failing batch goes to quarantine with its report and the run fails.

    Coverage (a chain with far fewer options than its neighbours is refused) compares each chain with the
    published chains of its currency nearest in time, the other ``neighbours`` batches (the rest of the run
    or day), and, for API snapshots, the unexpired options get_instruments lists.
    """
    from pipelines.validation import quality

    max_age = timedelta(seconds=max_age_s) if now is not None else None
    around, listed = coverage_references(batch, data_dir, neighbours)
    reports = [
        quality.validate_instruments(batch.instruments),
        quality.validate_option_snapshots(batch.snapshots, now=now, max_age=max_age, neighbours=around, listed=listed),
    ]
    failed = [r for r in reports if not r.success]
    if not failed:
        return
    where = quarantine(data_dir, batch, failed)
    raise QualityError(f"{'; '.join(r.summary() for r in failed)} (batch quarantined in {where})")


def coverage_references(
    batch: Batch, data_dir: Path, others: Sequence[Batch] = ()
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """What :func:`validate` judges the coverage of ``batch``'s chains against: (neighbours, listing).

    Neighbours: the published chains of each currency nearest in time and the chains of the ``others``
    batches. Listing: per chain, the unexpired options get_instruments listed with it -- None for a Tardis
    batch, whose instruments are derived from its own chain.
    """
    from pipelines.validation.polars_checks import CHAIN_SIZE, chain_sizes, published_chain_sizes

    own = chain_sizes(batch.snapshots)
    frames = [chain_sizes(b.snapshots) for b in others if b is not batch]
    frames.append(published_chain_sizes(data_dir, own))
    around = pl.concat([f.cast(CHAIN_SIZE) for f in frames]).unique(maintain_order=True)
    if batch.source == "tardis":
        return around, None
    unexpired = own.join(batch.instruments.select("currency", "expiration_ts"), on="currency").filter(
        pl.col("expiration_ts") > pl.col("snapshot_ts")
    )
    listed = unexpired.group_by("currency", "snapshot_ts").agg(pl.len().alias("options")).cast(CHAIN_SIZE)
    return around, listed


def quarantine(data_dir: Path, batch: Batch, reports) -> Path:
    stamp = raw.stamp_of(batch.cycle_stamp)
    folder = data_dir / "quarantine" / f"date={batch.cycle_stamp:%Y-%m-%d}" / stamp
    folder.mkdir(parents=True, exist_ok=True)
    batch.instruments.write_parquet(folder / "instruments.parquet")
    batch.snapshots.write_parquet(folder / "option_snapshots.parquet")
    report = [{"table": r.table, "failures": r.failures, "rows": r.checked_rows, "details": r.details} for r in reports]
    atomic.write_atomic(folder / "report.json", json.dumps(report, indent=1, default=str).encode())
    return folder


def stage(batch: Batch, data_dir: Path) -> list[files.Staged]:
    """Parquet files for the batch under temp names: one per (table, currency, date, snapshot)."""
    staged = []
    try:
        for (currency, snapshot_ts), part in batch.snapshots.group_by("currency", "snapshot_ts", maintain_order=True):
            name = raw.stamp_of(snapshot_ts)
            staged += lake.stage_partitions(data_dir, Table.OPTION_SNAPSHOTS, part, name=name, date_col="snapshot_ts")
            ins = batch.instruments.filter(pl.col("currency") == currency)
            staged += lake.stage_partitions(data_dir, Table.INSTRUMENTS, ins, name=name, date_col="seen_ts")
    except BaseException:
        files.discard(staged)
        raise
    return staged


def run_record(run_id: str, started: datetime, finished: datetime, batches: list[Batch], status: str, message: str):
    rows = []
    for batch in batches:
        for (currency, snapshot_ts), part in batch.snapshots.group_by("currency", "snapshot_ts", maintain_order=True):
            rows.append(
                (
                    run_id,
                    started,
                    finished,
                    batch.source,
                    currency,
                    snapshot_ts,
                    part.height,
                    float(part["open_interest"].sum()),
                    status,
                    message,
                )
            )
    return pl.DataFrame(rows, schema=INGEST_RUN, orient="row")


def publish(batches: list[Batch], data_dir: Path, run_id: str, started: datetime, finished: datetime) -> None:
    """All batches of the run become visible together (one journaled commit), then the views refresh."""
    with files.transaction(data_dir) as tx:
        for batch in batches:
            tx.add(stage(batch, data_dir))
        record = run_record(run_id, started, finished, batches, "ok", "")
        if not record.is_empty():
            tx.add(lake.stage_partitions(data_dir, Table.STATE_INGEST_RUNS, record, name=run_id, date_col="started_ts"))


PLAIN_STEPS = SimpleNamespace(
    open_cycles=open_cycles, fetch_chain=fetch_chain, normalise=normalise, validate=validate, publish=publish
)


# ---------------------------------------------------------------- the cycle


def snapshot_cycle(settings: Settings, steps=PLAIN_STEPS, now: datetime | None = None) -> IngestResult:
    """Take every snapshot the source offers for ``settings.currencies`` and publish them atomically.

    Raw bodies that arrived are kept even when the run fails; the lake and views change only if
    every currency of every snapshot was fetched, normalised and validated.
    """
    now = now or datetime.now(UTC)
    data_dir = settings.data_dir
    cycles = steps.open_cycles(settings, now)  # a missing replay directory fails here, before the data dir is made
    files.check_writable(data_dir)
    result = IngestResult(run_id=f"{raw.stamp_of(now)}-{uuid.uuid4().hex[:6]}")
    with files.writer_lock(data_dir, settings.lock_wait_s):
        for cycle in cycles:
            chains = [steps.fetch_chain(cycle, currency, data_dir) for currency in settings.currencies]
            result.raw_files += sum(len(c.raw_paths) for c in chains)
            batch = steps.normalise(cycle, chains)
            fresh_as_of = now if cycle.source == "deribit" and settings.max_snapshot_age_s > 0 else None
            steps.validate(batch, data_dir, fresh_as_of, settings.max_snapshot_age_s, result.batches)
            result.batches.append(batch)
        steps.publish(result.batches, data_dir, result.run_id, now, datetime.now(UTC))
        prepare_warehouse(data_dir)
    return result
