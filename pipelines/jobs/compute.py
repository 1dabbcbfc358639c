"""Analytics over stored snapshots: dealer positions per model, GEX by strike, the re-priced profile
and key levels, written to the lake per snapshot (idempotent: one file per table, currency and snapshot).

Models: ``naive`` and ``customer_long`` always; ``taker_flow`` once the trade tape has trades for the
currency (a coin's tape is its own plus the trades of its linear ``<COIN>_USDC-...`` options from the
USDC/USDT tape: snapshots are stored by base coin, tapes by the currency they were queried with);
``custom`` when a book file is given, and on a recompute without one for every snapshot that already has
it (its book is read back from the stored positions, see :func:`stored_books`). ``key_levels``
rows of non-naive models carry how far their total GEX and zero gamma sit from ``naive``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numba
import polars as pl

from pipelines.errors import GexflowError
from pipelines.jobs.threads import KernelThreads
from pipelines.store import inputs
from pipelines.store.lake_tables import prepare_warehouse
from pipelines.store.reads import load_chain
from transforms.frames.schemas import DEALER_POSITION_STORED, KEY_LEVELS_STORED, UTC_TS, check
from transforms.gex.depth import DEPTH_TABLES
from transforms.gex.exposure import exposure_tables
from transforms.gex.positioning import book_instruments_not_in_chain, book_notes, dealer_positions, validated_book
from transforms.gex.taker_flow import oi_reconciliation, taker_flow_positions, tape_coverage
from warehouse import files, lake, raw

BASE_MODELS = ("naive", "customer_long")
TABLES = ("dealer_positions", "gex_by_strike", "gex_profile", "key_levels")


@dataclass
class ComputeResult:
    snapshots: list[tuple[str, datetime]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    # instruments of a given book found in none of the computed snapshots (the custom model ignores them)
    book_unmatched: list[str] = field(default_factory=list)


# API currencies whose option tapes hold the linear options of several base coins (SOL_USDC-..., BTC_USDC-...)
LINEAR_TAPES = ("USDC", "USDT")


@dataclass(frozen=True)
class Tape:
    """Every stored trade of one coin's options and where the tapes that hold them start."""

    trades: pl.DataFrame  # the coin's own tape plus its linear options' trades from the USDC/USDT tapes
    start: datetime | None  # the first trades run's window start of the coin's own tape (inverse options)
    linear_start: datetime | None  # the same for the USDC/USDT tape (the later of the two if both exist)


def load_tape(data_dir: Path, coin: str) -> Tape | None:
    """The stored trade tape of the options ``option_snapshots`` keeps under ``coin``; None without trades."""
    trades = lake.scan(data_dir, "trades")
    if trades is None:
        return None
    linear = pl.col("currency").is_in(LINEAR_TAPES) & pl.col("instrument_name").str.starts_with(f"{coin}_")
    tape = trades.filter((pl.col("currency") == coin) | linear).collect()
    if tape.is_empty():
        return None
    runs = lake.scan(data_dir, "_state/trade_runs")
    starts = {}
    if runs is not None:
        starts = dict(runs.group_by("currency").agg(pl.col("start_ts").min()).collect().iter_rows())
    linear_starts = [starts[c] for c in LINEAR_TAPES if starts.get(c) is not None]
    return Tape(tape, starts.get(coin), max(linear_starts) if linear_starts else None)


def linear_coins(data_dir: Path) -> list[str]:
    """Coins whose stored snapshots hold linear (USDC/USDT-settled) options."""
    scan = lake.scan(data_dir, "option_snapshots")
    if scan is None:
        return []
    found = scan.filter(pl.col("is_linear")).select(pl.col("currency").unique()).collect()
    return sorted(found["currency"].to_list())


def listed_times(data_dir: Path) -> pl.DataFrame | None:
    ins = lake.scan(data_dir, "instruments")
    if ins is None:
        return None
    return ins.group_by("instrument_name").agg(pl.col("listed_ts").min()).collect()


def positions_for(
    chain: pl.DataFrame,
    *,
    tape: Tape | None = None,
    listed: pl.DataFrame | None = None,
    book: pl.DataFrame | None = None,
    books: dict[datetime, pl.DataFrame] | None = None,
    include_blocks: bool = False,
) -> pl.DataFrame:
    """DEALER_POSITION rows of every applicable model for ``chain`` (stored layout, taker extras nullable).
    The ``custom`` model comes from ``book`` for every snapshot of the chain, else from ``books`` for the
    snapshots (snapshot_ts) it has a book for."""
    frames = [dealer_positions(chain, m) for m in BASE_MODELS]
    if book is not None:
        frames.append(dealer_positions(chain, "custom", book=book))
    for snapshot_ts, stored in (books or {}).items() if book is None else ():
        frames.append(dealer_positions(chain.filter(pl.col("snapshot_ts") == snapshot_ts), "custom", book=stored))
    if tape is not None:
        with_listing = chain.join(listed, on="instrument_name", how="left") if listed is not None else chain
        # each option's tape starts where the tape that holds it starts: linear ones in the USDC/USDT tape
        linear = pl.col("is_linear").fill_null(False) if "is_linear" in chain.columns else pl.lit(False)
        starts = (
            pl.when(linear)
            .then(pl.lit(tape.linear_start, UTC_TS))
            .otherwise(pl.lit(tape.start, UTC_TS))
            .alias("tape_start_ts")
        )
        frames.append(
            taker_flow_positions(with_listing.with_columns(starts), tape.trades, include_blocks=include_blocks)
        )
    stored = [
        f.select(
            [
                pl.col(c).cast(t) if c in f.columns else pl.lit(None, t).alias(c)
                for c, t in DEALER_POSITION_STORED.items()
            ]
        )
        for f in frames
    ]
    out = pl.concat(stored)
    check(out, DEALER_POSITION_STORED, "dealer_positions")
    return out


def with_model_gaps(levels: pl.DataFrame) -> pl.DataFrame:
    """Add to each model's key levels how far its total GEX and zero gamma are from ``naive``."""
    naive = levels.filter(pl.col("model") == "naive").select(
        "currency",
        "snapshot_ts",
        pl.col("total_gex_usd").alias("naive_total_gex_usd"),
        pl.col("zero_gamma").alias("naive_zero_gamma"),
    )
    out = (
        levels.join(naive, on=["currency", "snapshot_ts"], how="left")
        .with_columns(
            (pl.col("total_gex_usd") - pl.col("naive_total_gex_usd")).alias("total_gex_vs_naive_usd"),
            (pl.col("zero_gamma") - pl.col("naive_zero_gamma")).alias("zero_gamma_vs_naive"),
        )
        .drop("naive_zero_gamma")
    )
    out = out.select(list(KEY_LEVELS_STORED))
    check(out, KEY_LEVELS_STORED, "key_levels")
    return out


def analytics(
    chain: pl.DataFrame, positions: pl.DataFrame, *, half_width=0.25, step=0.0025, vol_model="sticky_strike"
) -> dict[str, pl.DataFrame]:
    """The four analytic tables for ``chain`` (any number of snapshots) and ``positions`` (any models)."""
    tables = exposure_tables(chain, positions, half_width=half_width, step=step, vol_model=vol_model)
    return {
        "dealer_positions": positions,
        "gex_by_strike": tables["gex_by_strike"],
        "gex_profile": tables["gex_profile"],
        "key_levels": with_model_gaps(tables["key_levels"]),
        **{t: tables[t] for t in DEPTH_TABLES},
    }


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
        before = (
            lake.scan(data_dir, "option_snapshots")
            .filter((pl.col("currency") == currency) & (pl.col("snapshot_ts") < first))
            .select(pl.col("snapshot_ts").max())
            .collect()
            .item()
        )
        chain = load_chain(data_dir, [currency], before or first, last)
        out[currency] = {
            "tape_coverage": tape_coverage(chain, tape),
            "oi_reconciliation": oi_reconciliation(chain, tape),
        }
    return out


def _snapshot_of(path: Path) -> tuple[str, str]:
    """(currency, stamp) of an analytic file ``<table>/currency=C/date=D/<stamp>.parquet``."""
    return path.parent.parent.name.split("=", 1)[1], path.stem


def computed_snapshots(data_dir: Path) -> set[tuple[str, str]]:
    """(currency, stamp) pairs that already have key levels stored."""
    return {_snapshot_of(p) for p in lake.data_files(data_dir, "key_levels")}


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
    wanted = {(currency, raw.stamp_of(ts)) for currency, ts in snapshots}
    paths = [str(p) for p in lake.data_files(data_dir, "dealer_positions") if _snapshot_of(p) in wanted]
    if not paths:
        return {}
    custom = (
        pl.scan_parquet(paths, missing_columns="insert", extra_columns="ignore")
        .filter(pl.col("model") == "custom")
        .select("currency", "snapshot_ts", "instrument_name", "dealer_contracts", "method")
        .collect()
    )
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


def compute_cycle(
    data_dir: Path,
    currencies,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    only_missing: bool = False,
    book: pl.DataFrame | None = None,
    include_blocks: bool = False,
    progress=None,
    lock_wait_s: float = 0.0,
    kernel_threads: int = 0,
) -> ComputeResult:
    """Compute and publish the analytic tables for every stored snapshot in range (one commit); with
    ``only_missing`` only those without analytics or whose analytics are stale (their inputs changed, see
    :mod:`pipelines.store.inputs`). Each computed snapshot's inputs record is published in the same commit.

    With ``book`` every snapshot gets (or has replaced) the ``custom`` model from it; without, a snapshot
    that already has a stored ``custom`` model keeps it, recomputed from its stored book (:func:`stored_books`).
    ``kernel_threads``: numba threads of the profile kernel; 0 chooses them per chunk from the cores other
    processes leave idle (:class:`pipelines.jobs.threads.KernelThreads`).
    """
    data_dir = Path(data_dir)
    nothing = GexflowError(
        f"no stored snapshots for {', '.join(currencies)}"
        + (f" between {since or '-'} and {until or '-'}" if since or until else "")
        + ": run `gexflow ingest` first"
    )
    if not data_dir.is_dir():
        raise nothing  # and do not create it
    files.check_writable(data_dir)
    result = ComputeResult()
    numba_threads = numba.get_num_threads()
    with files.writer_lock(data_dir, lock_wait_s):
        chain = load_chain(data_dir, currencies, since, until)
        if chain.is_empty():
            raise nothing
        listed = listed_times(data_dir)
        try:
            with files.transaction(data_dir) as tx:
                groups = chain.partition_by("currency", "snapshot_ts", as_dict=True, maintain_order=True)
                current, todo = _todo(data_dir, groups, only_missing)
                pending: dict[str, list[datetime]] = {}
                for currency, snapshot_ts in todo:
                    pending.setdefault(currency, []).append(snapshot_ts)
                tapes = {c: load_tape(data_dir, c) for c in pending}
                checks = tape_checks(data_dir, tapes, pending)
                books = stored_books(data_dir, todo) if book is None else {}
                done_count = 0
                threads = KernelThreads(kernel_threads)
                for currency, stamps in _chunks(pending):
                    threads.apply()
                    part = pl.concat([groups[(currency, ts)] for ts in stamps])
                    positions = positions_for(
                        part,
                        tape=tapes[currency],
                        listed=listed,
                        book=book,
                        books={ts: books[(currency, ts)] for ts in stamps if (currency, ts) in books},
                        include_blocks=include_blocks,
                    )
                    tables = analytics(part, positions)
                    for table, frame in checks.get(currency, {}).items():
                        tables[table] = frame.filter(pl.col("snapshot_ts").is_in(stamps))
                    by_snapshot = {t: f.partition_by("snapshot_ts", as_dict=True) for t, f in tables.items()}
                    for snapshot_ts in stamps:
                        stamp = raw.stamp_of(snapshot_ts)
                        for table, parts in by_snapshot.items():
                            frame = parts.get((snapshot_ts,), tables[table].clear())
                            tx.add(lake.stage_partitions(data_dir, table, frame, name=stamp, date_col="snapshot_ts"))
                            result.rows[table] = result.rows.get(table, 0) + frame.height
                        result.snapshots.append((currency, snapshot_ts))
                        done_count += 1
                        if progress:
                            progress(done_count, len(todo), currency, snapshot_ts)
                tx.add(inputs.stage_records(data_dir, current, todo, datetime.now(UTC), include_blocks))
        finally:
            numba.set_num_threads(numba_threads)  # the caller's thread count, whatever happened
        prepare_warehouse(data_dir)
    if book is not None and todo:
        computed = pl.concat([groups[k].select("instrument_name") for k in todo])
        result.book_unmatched = book_instruments_not_in_chain(computed, book)["instrument_name"].to_list()
    return result


def _todo(data_dir: Path, groups: dict, only_missing: bool) -> tuple[pl.DataFrame, list[tuple[str, datetime]]]:
    """(the current inputs of every snapshot in ``groups``, the snapshots to compute in time order): all of them,
    or with ``only_missing`` those without analytics or whose analytics are stale (:mod:`pipelines.store.inputs`)."""
    current = inputs.current_inputs(data_dir, groups)
    fresh = inputs.fresh_snapshots(data_dir, current, computed_snapshots(data_dir)) if only_missing else set()
    return current, sorted((k for k in groups if k not in fresh), key=lambda k: (k[1], k[0]))


# Snapshots per analytics call: one call over many snapshots is ~3.8x faster than one per snapshot (polars'
# per-call overhead dominates a single chain); 64 keeps a chunk's frames small (~150k position rows for BTC).
CHUNK_SNAPSHOTS = 64


def _chunks(pending: dict[str, list[datetime]]):
    """(currency, [snapshot_ts, ...]) runs of up to CHUNK_SNAPSHOTS of each currency's pending snapshots."""
    for currency, stamps in pending.items():
        for i in range(0, len(stamps), CHUNK_SNAPSHOTS):
            yield currency, stamps[i : i + CHUNK_SNAPSHOTS]


def stale_since(data_dir: Path, first_new: dict[str, datetime]) -> dict[str, datetime]:
    """Per currency: the first already computed snapshot at or after the earliest trade a trades run just added
    (:attr:`pipelines.jobs.trades.TradesResult.first_new`). That snapshot and every later one was computed on a tape
    without the trade, so its taker_flow model is out of date. Currencies without such a snapshot are left out."""
    scan = lake.scan(data_dir, "key_levels")
    out: dict[str, datetime] = {}
    if scan is None:
        return out
    by_coin: dict[str, datetime] = {}
    for currency, first_trade in first_new.items():
        # a USDC/USDT tape reaches every coin with linear options (over-reaching is only extra work)
        for coin in linear_coins(data_dir) if currency in LINEAR_TAPES else [currency]:
            by_coin[coin] = min(first_trade, by_coin.get(coin, first_trade))
    for currency, first_trade in sorted(by_coin.items()):
        first = (
            scan.filter((pl.col("currency") == currency) & (pl.col("snapshot_ts") >= first_trade))
            .select(pl.col("snapshot_ts").min())
            .collect()
            .item()
        )
        if first is not None:
            out[currency] = first
    return out


def refresh_taker_flow(
    data_dir: Path, first_new: dict[str, datetime], lock_wait_s: float = 0.0, include_blocks: bool = False
) -> list:
    """Re-compute (every model, idempotently; a stored custom model is kept) the computed snapshots the trades
    a run added reach (see :func:`stale_since`). Returns the (currency, snapshot_ts) re-computed."""
    done: list[tuple[str, datetime]] = []
    for currency, first in stale_since(data_dir, first_new).items():
        done += compute_cycle(
            data_dir, [currency], since=first, lock_wait_s=lock_wait_s, include_blocks=include_blocks
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


def latest_at(data_dir: Path, table: str, currency: str, at: datetime | None, model: str | None = None) -> pl.DataFrame:
    """Rows of ``table`` for ``currency`` at the latest snapshot at or before ``at`` (latest overall if None)."""
    scan = lake.scan(data_dir, table)
    if scan is None:
        return pl.DataFrame()
    scan = scan.filter(pl.col("currency") == currency)
    if model is not None:
        scan = scan.filter(pl.col("model") == model)
    if at is not None:
        scan = scan.filter(pl.col("snapshot_ts") <= at)
    return scan.filter(pl.col("snapshot_ts") == pl.col("snapshot_ts").max()).collect()


__all__ = [
    "compute_cycle",
    "refresh_taker_flow",
    "stale_since",
    "stored_books",
    "positions_for",
    "load_tape",
    "Tape",
    "analytics",
    "with_model_gaps",
    "load_book",
    "latest_at",
    "UTC_TS",
]
