"""Analytics over stored snapshots: dealer positions per model, GEX by strike, the re-priced profile
and key levels, written to the lake per snapshot (idempotent: one file per table, currency and snapshot).

Models: ``naive`` and ``customer_long`` always; ``taker_flow`` once the trade tape has trades for the
currency (a coin's tape is its own plus the trades of its linear ``<COIN>_USDC-...`` options from the
USDC/USDT tape: snapshots are stored by base coin, tapes by the currency they were queried with);
``custom`` when a book file is given, and on a recompute without one for every snapshot that already has
it (its book is read back from the stored positions, see :func:`stored_books`). ``key_levels``
rows of non-naive models carry how far their total GEX and zero gamma sit from ``naive``.

:func:`compute_cycle` reads as plan -> compute -> stage -> publish: :func:`plan_compute` (which snapshots are
missing or stale, their tapes and stored books; lake reads through :mod:`pipelines.store.reads`),
:func:`compute_chunk` (pure transforms, :mod:`transforms.gex.analytic_tables`), :func:`stage_chunk` (one file per
table and snapshot) and one journaled ``warehouse.files.transaction`` that publishes them with the inputs records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numba
import polars as pl

from pipelines.errors import GexflowError
from pipelines.jobs.threads import KernelThreads
from pipelines.store import inputs, reads
from pipelines.store.lake_tables import Table, prepare_warehouse
from pipelines.store.reads import (
    LINEAR_TAPES,
    Tape,
    computed_snapshots,
    linear_coins,
    listed_times,
    load_chain,
    load_tape,
)
from transforms.gex.analytic_tables import analytics, positions_for
from transforms.gex.positioning import book_instruments_not_in_chain, book_notes, validated_book
from transforms.gex.taker_flow import oi_reconciliation, tape_coverage
from warehouse import files, lake, raw


@dataclass
class ComputeResult:
    snapshots: list[tuple[str, datetime]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    # instruments of a given book found in none of the computed snapshots (the custom model ignores them)
    book_unmatched: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- plan


@dataclass
class ComputePlan:
    """What one run computes (the missing or stale snapshots) and what it computes them from."""

    groups: dict[tuple[str, datetime], pl.DataFrame]  # every stored snapshot in range, by (currency, snapshot_ts)
    current: pl.DataFrame  # the current inputs of every snapshot in ``groups`` (pipelines.store.inputs)
    todo: list[tuple[str, datetime]]  # the snapshots to compute, in time order
    pending: dict[str, list[datetime]]  # ``todo`` per currency
    listed: pl.DataFrame | None  # when each instrument was listed (taker_flow)
    tapes: dict[str, Tape | None]  # per pending currency, its trade tape
    checks: dict[str, dict[str, pl.DataFrame]]  # per currency with a tape: tape_coverage, oi_reconciliation
    books: dict[tuple[str, datetime], pl.DataFrame]  # stored custom books of ``todo`` (without a given book)
    book: pl.DataFrame | None = None  # the given book: the custom model of every snapshot
    include_blocks: bool = False  # block trades count in taker_flow
    what_ifs: bool = False  # store the what-if tables (scenario_profiles, hedge_ladder, hedge_ladder_volume)


def plan_compute(
    data_dir: Path,
    chain: pl.DataFrame,
    listed: pl.DataFrame | None,
    *,
    only_missing: bool,
    book,
    include_blocks: bool,
    what_ifs: bool = False,
) -> ComputePlan:
    """Which snapshots of ``chain`` to compute (all, or with ``only_missing`` those without analytics or whose
    analytics are stale) and the tapes, tape checks and stored books they are computed with."""
    groups = chain.partition_by("currency", "snapshot_ts", as_dict=True, maintain_order=True)
    current, todo = _todo(data_dir, groups, only_missing)
    pending: dict[str, list[datetime]] = {}
    for currency, snapshot_ts in todo:
        pending.setdefault(currency, []).append(snapshot_ts)
    tapes = {c: load_tape(data_dir, c) for c in pending}
    checks = tape_checks(data_dir, tapes, pending)
    books = stored_books(data_dir, todo) if book is None else {}
    return ComputePlan(groups, current, todo, pending, listed, tapes, checks, books, book, include_blocks, what_ifs)


def _todo(data_dir: Path, groups: dict, only_missing: bool) -> tuple[pl.DataFrame, list[tuple[str, datetime]]]:
    """(the current inputs of every snapshot in ``groups``, the snapshots to compute in time order): all of them,
    or with ``only_missing`` those without analytics or whose analytics are stale (:mod:`pipelines.store.inputs`)."""
    current = inputs.current_inputs(data_dir, groups)
    fresh = inputs.fresh_snapshots(data_dir, current, computed_snapshots(data_dir)) if only_missing else set()
    return current, sorted((k for k in groups if k not in fresh), key=lambda k: (k[1], k[0]))


def tape_checks(data_dir: Path, tapes: dict, pending: dict[str, list[datetime]]) -> dict[str, dict[str, pl.DataFrame]]:
    """Per currency with a tape: tape_coverage and oi_reconciliation for the ``pending`` snapshots, read
    together with the stored snapshot just before the first of them (reconciliation needs a predecessor),
    not the whole history."""
    out = {}
    for currency, found in tapes.items():
        if found is None or not pending.get(currency):
            continue
        tape = found.trades
        first, last = min(pending[currency]), max(pending[currency])
        before = reads.last_snapshot_before(data_dir, currency, first)
        chain = load_chain(data_dir, [currency], before or first, last)
        out[currency] = {
            Table.TAPE_COVERAGE: tape_coverage(chain, tape),
            Table.OI_RECONCILIATION: oi_reconciliation(chain, tape),
        }
    return out


def stored_books(data_dir: Path, snapshots) -> dict[tuple[str, datetime], pl.DataFrame]:
    """Per (currency, snapshot_ts) of ``snapshots`` whose stored dealer_positions hold a ``custom`` model: the
    book (DEALER_BOOK) that model was computed from, so a recompute without a book keeps it.

    ``dealer_positions(chain, "custom", book=...)`` writes each chain instrument's summed book contracts
    with method ``user_book`` and 0 with ``not_in_book``; so the ``user_book`` rows (zero contracts
    included) are the book restricted to the snapshot's chain, and recomputing with it gives the same rows
    (book lines outside the chain were never stored and never counted). A snapshot whose book matched
    nothing gets an empty book, which still yields its all-``not_in_book`` custom model. Reads only the
    files of ``snapshots``, in one scan.
    """
    custom = reads.stored_custom_positions(data_dir, snapshots)
    if custom is None:
        return {}
    books = {}
    for (currency, ts), rows in custom.partition_by(
        "currency", "snapshot_ts", as_dict=True, maintain_order=True
    ).items():
        held = rows.filter(pl.col("method") == "user_book")
        try:
            books[(currency, ts)] = validated_book(
                held.select("instrument_name", pl.col("dealer_contracts").alias("contracts"))
            )
        except ValueError as exc:  # stored under older, looser book checks
            raise GexflowError(
                f"the custom book stored for {currency} {ts:%Y-%m-%d %H:%M:%S} no longer validates ({exc}): "
                "recompute with --book"
            ) from None
    return books


# ---------------------------------------------------------------- compute and stage


# Snapshots per analytics call: one call over many snapshots is much faster than one per snapshot (polars'
# per-call overhead dominates a single chain; benchmarks/bench_backfill.py, figures in benchmarks/RESULTS.md);
# 64 keeps a chunk's frames small (~150k position rows for BTC).
CHUNK_SNAPSHOTS = 64


def _chunks(pending: dict[str, list[datetime]]):
    """(currency, [snapshot_ts, ...]) runs of up to CHUNK_SNAPSHOTS of each currency's pending snapshots."""
    for currency, stamps in pending.items():
        for i in range(0, len(stamps), CHUNK_SNAPSHOTS):
            yield currency, stamps[i : i + CHUNK_SNAPSHOTS]


def compute_chunk(plan: ComputePlan, currency: str, stamps: list[datetime]) -> dict[str, pl.DataFrame]:
    """Every analytic table of ``currency``'s snapshots ``stamps`` (pure transforms over the planned inputs)."""
    part = pl.concat([plan.groups[(currency, ts)] for ts in stamps])
    positions = positions_for(
        part,
        tape=plan.tapes[currency],
        listed=plan.listed,
        book=plan.book,
        books={ts: plan.books[(currency, ts)] for ts in stamps if (currency, ts) in plan.books},
        include_blocks=plan.include_blocks,
    )
    tables = analytics(part, positions, what_ifs=plan.what_ifs)
    for table, frame in plan.checks.get(currency, {}).items():
        tables[table] = frame.filter(pl.col("snapshot_ts").is_in(stamps))
    return tables


def stage_chunk(tx, data_dir: Path, tables: dict[str, pl.DataFrame], currency: str, stamps, result: ComputeResult):
    """Stage one file per (table, snapshot) of a computed chunk into the transaction ``tx``; yields each
    snapshot_ts once its files are staged (and counted in ``result``). A table with no rows for a snapshot now
    loses the file an earlier computation left for it (deleted in the same commit), so a re-computation replaces
    all of a snapshot's analytics, not only the tables that still have rows."""
    by_snapshot = {t: f.partition_by("snapshot_ts", as_dict=True) for t, f in tables.items()}
    for snapshot_ts in stamps:
        stamp = raw.stamp_of(snapshot_ts)
        for table, parts in by_snapshot.items():
            frame = parts.get((snapshot_ts,))
            if frame is not None:
                tx.add(lake.stage_partitions(data_dir, table, frame, name=stamp, date_col="snapshot_ts"))
            else:
                day = snapshot_ts.astimezone(UTC)
                earlier = lake.partition_dir(data_dir, table, currency, day) / f"{stamp}.parquet"
                if earlier.exists():
                    tx.delete(earlier)
            result.rows[table] = result.rows.get(table, 0) + (0 if frame is None else frame.height)
        result.snapshots.append((currency, snapshot_ts))
        yield snapshot_ts


def _compute_and_stage(tx, data_dir: Path, plan: ComputePlan, result: ComputeResult, progress, kernel_threads: int):
    """Compute the planned snapshots chunk by chunk and stage each chunk's files into ``tx`` as it is done."""
    threads = KernelThreads(kernel_threads)
    for currency, stamps in _chunks(plan.pending):
        threads.apply()
        tables = compute_chunk(plan, currency, stamps)
        for snapshot_ts in stage_chunk(tx, data_dir, tables, currency, stamps, result):
            if progress:
                progress(len(result.snapshots), len(plan.todo), currency, snapshot_ts)


# ---------------------------------------------------------------- the cycle


def _nothing_stored(currencies, since: datetime | None, until: datetime | None) -> GexflowError:
    return GexflowError(
        f"no stored snapshots for {', '.join(currencies)}"
        + (f" between {since or '-'} and {until or '-'}" if since or until else "")
        + ": run `gexflow ingest` first"
    )


def compute_cycle(
    data_dir: Path,
    currencies,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    only_missing: bool = False,
    book: pl.DataFrame | None = None,
    include_blocks: bool = False,
    what_ifs: bool = False,
    progress=None,
    lock_wait_s: float = 0.0,
    kernel_threads: int = 0,
) -> ComputeResult:
    """Compute and publish the analytic tables for every stored snapshot in range (one commit); with
    ``only_missing`` only those without analytics or whose analytics are stale (their inputs changed, see
    :mod:`pipelines.store.inputs`). Each computed snapshot's inputs record is published in the same commit.

    Plan (:func:`plan_compute`) -> compute (:func:`compute_chunk`, pure transforms) -> stage
    (:func:`stage_chunk`) -> publish (the journaled ``files.transaction``, then the views).

    With ``book`` every snapshot gets (or has replaced) the ``custom`` model from it; without, a snapshot
    that already has a stored ``custom`` model keeps it, recomputed from its stored book (:func:`stored_books`).
    ``kernel_threads``: numba threads of the profile kernel; 0 chooses them per chunk from the cores other
    processes leave idle (:class:`pipelines.jobs.threads.KernelThreads`). ``what_ifs``: also store
    scenario_profiles, hedge_ladder and hedge_ladder_volume (GEXFLOW_WHAT_IFS); without, a recomputed snapshot has
    none (what an earlier computation stored of them is removed in the same commit).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise _nothing_stored(currencies, since, until)  # and do not create it
    files.check_writable(data_dir)
    result = ComputeResult()
    numba_threads = numba.get_num_threads()
    with files.writer_lock(data_dir, lock_wait_s):
        chain = load_chain(data_dir, currencies, since, until)
        if chain.is_empty():
            raise _nothing_stored(currencies, since, until)
        listed = listed_times(data_dir)
        try:
            with files.transaction(data_dir) as tx:  # publish: every file staged below, in one journaled commit
                plan = plan_compute(
                    data_dir,
                    chain,
                    listed,
                    only_missing=only_missing,
                    book=book,
                    include_blocks=include_blocks,
                    what_ifs=what_ifs,
                )
                _compute_and_stage(tx, data_dir, plan, result, progress, kernel_threads)
                tx.add(inputs.stage_records(data_dir, plan.current, plan.todo, datetime.now(UTC), include_blocks))
        finally:
            numba.set_num_threads(numba_threads)  # the caller's thread count, whatever happened
        prepare_warehouse(data_dir)
    if book is not None and plan.todo:
        computed = pl.concat([plan.groups[k].select("instrument_name") for k in plan.todo])
        result.book_unmatched = book_instruments_not_in_chain(computed, book)["instrument_name"].to_list()
    return result


# ---------------------------------------------------------------- after a trades run


def stale_since(data_dir: Path, first_new: dict[str, datetime]) -> dict[str, datetime]:
    """Per currency: the first already computed snapshot at or after the earliest trade a trades run just added
    (:attr:`pipelines.jobs.trades.TradesResult.first_new`). That snapshot and every later one was computed on a tape
    without the trade, so its taker_flow model is out of date. Currencies without such a snapshot are left out."""
    out: dict[str, datetime] = {}
    by_coin: dict[str, datetime] = {}
    for currency, first_trade in first_new.items():
        # a USDC/USDT tape reaches every coin with linear options (over-reaching is only extra work)
        for coin in linear_coins(data_dir) if currency in LINEAR_TAPES else [currency]:
            by_coin[coin] = min(first_trade, by_coin.get(coin, first_trade))
    for currency, first_trade in sorted(by_coin.items()):
        first = reads.first_computed_since(data_dir, currency, first_trade)
        if first is not None:
            out[currency] = first
    return out


def refresh_taker_flow(
    data_dir: Path,
    first_new: dict[str, datetime],
    lock_wait_s: float = 0.0,
    include_blocks: bool = False,
    what_ifs: bool = False,
) -> list:
    """Re-compute (every model, idempotently; a stored custom model is kept) the computed snapshots the trades
    a run added reach (see :func:`stale_since`). Returns the (currency, snapshot_ts) re-computed."""
    done: list[tuple[str, datetime]] = []
    for currency, first in stale_since(data_dir, first_new).items():
        done += compute_cycle(
            data_dir,
            [currency],
            since=first,
            lock_wait_s=lock_wait_s,
            include_blocks=include_blocks,
            what_ifs=what_ifs,
        ).snapshots
    return done


def load_book(path: Path, notes: list[str] | None = None) -> pl.DataFrame:
    """A user's dealer book (CSV or Parquet with instrument_name, contracts) for the ``custom`` model; what was
    normalised on the way (padded names, repeated instruments summed) is appended to ``notes``."""
    try:
        frame = pl.read_parquet(path) if path.suffix.lower() == ".parquet" else pl.read_csv(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise GexflowError(f"cannot read book {path}: {str(exc).splitlines()[0][:160]}") from None
    if frame.height == 0:  # an empty book is legal inside (a stored one that matched nothing), not as input
        raise GexflowError(f"book {path}: dealer book has no rows (a header only?)")
    try:
        book = validated_book(frame)
    except ValueError as exc:
        raise GexflowError(f"book {path}: {exc}") from None
    if notes is not None:
        notes.extend(book_notes(frame))
    return book


__all__ = [
    "ComputePlan",
    "ComputeResult",
    "compute_cycle",
    "load_book",
    "refresh_taker_flow",
    "stale_since",
    "stored_books",
]
