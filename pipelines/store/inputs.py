"""What a snapshot's analytics were computed from, and which stored analytics no longer match it (stale).

``compute_cycle`` writes one ``lake/_state/analytics_inputs`` row per computed snapshot in the same journaled
commit as its analytics, so the record and the analytics never disagree. The inputs compared:

- the content (sha256) of the snapshot's ``option_snapshots`` file: a re-landed, corrected snapshot;
- the coin's trade tape up to the snapshot (how many trades have ``ts <= snapshot_ts``, and where the tapes
  start): trades added before the snapshot change its ``taker_flow`` model;
- :data:`pipelines.config.ANALYTICS_VERSION`: bump it when a change of the analytics code changes stored numbers.

A computed snapshot is stale when any of them differs, or when it has no record (computed before records
existed). ``sql/queries/data_status.sql`` counts stale snapshots with the same rules (``gexflow status``).
The custom book is not compared: it is stored with the analytics (dealer_positions) and read back from there.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.config import ANALYTICS_VERSION
from pipelines.store.lake_tables import Table
from pipelines.store.reads import LINEAR_TAPES
from transforms.frames.schemas import ANALYTICS_INPUT, UTC_TS
from warehouse import lake, raw

TABLE = Table.STATE_ANALYTICS_INPUTS
COMPARED = (
    "analytics_version",
    "snapshot_file",
    "snapshot_sha256",
    "tape_trades",
    "tape_start_ts",
    "linear_tape_start_ts",
)


def snapshot_file(data_dir: Path, currency: str, snapshot_ts: datetime) -> Path:
    """The option_snapshots file of one snapshot (ingest and backfill name it after the snapshot's stamp)."""
    folder = lake.partition_dir(data_dir, Table.OPTION_SNAPSHOTS, currency, snapshot_ts)
    return folder / f"{raw.stamp_of(snapshot_ts)}.parquet"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _tape_times(data_dir: Path, coins) -> dict[str, np.ndarray]:
    """Per coin: the sorted trade times (ms) of its tape; a USDC/USDT trade belongs to the coin its name starts with."""
    scan = lake.scan(data_dir, Table.TRADES)
    if scan is None:
        return {}
    linear = pl.col("currency").is_in(LINEAR_TAPES) & pl.col("instrument_name").str.contains("_", literal=True)
    coin = pl.when(linear).then(pl.col("instrument_name").str.split("_").list.first()).otherwise(pl.col("currency"))
    tape = scan.select(coin.alias("coin"), pl.col("ts").dt.epoch("ms")).filter(pl.col("coin").is_in(list(coins)))
    return {c: np.sort(f["ts"].to_numpy()) for (c,), f in tape.collect().partition_by("coin", as_dict=True).items()}


def _tape_starts(data_dir: Path) -> dict[str, datetime]:
    runs = lake.scan(data_dir, Table.STATE_TRADE_RUNS)
    if runs is None:
        return {}
    return dict(runs.group_by("currency").agg(pl.col("start_ts").min()).collect().iter_rows())


def current_inputs(data_dir: Path, snapshots) -> pl.DataFrame:
    """The inputs each (currency, snapshot_ts) of ``snapshots`` would be computed from now (ANALYTICS_INPUT
    without computed_ts and include_blocks)."""
    snapshots = list(snapshots)
    times = _tape_times(data_dir, {c for c, _ in snapshots})
    starts = _tape_starts(data_dir)
    linear = [starts[c] for c in LINEAR_TAPES if starts.get(c) is not None]
    root = lake.lake_root(data_dir)
    rows = []
    for currency, ts in snapshots:
        path = snapshot_file(data_dir, currency, ts)
        tape = times.get(currency)
        ms = round(ts.timestamp() * 1000)
        count = 0 if tape is None else int(np.searchsorted(tape, ms, side="right"))
        relative = path.relative_to(root).as_posix()
        first = starts.get(currency)
        rows.append((currency, ts, ANALYTICS_VERSION, relative, _sha256(path), count, first, max(linear, default=None)))
    names = ("currency", "snapshot_ts", *COMPARED)
    return pl.DataFrame(rows, schema={n: ANALYTICS_INPUT[n] for n in names}, orient="row")


def stored_inputs(data_dir: Path) -> pl.DataFrame | None:
    scan = lake.scan(data_dir, TABLE)
    return None if scan is None else scan.collect()


def fresh_snapshots(data_dir: Path, current: pl.DataFrame, computed: set[tuple[str, str]]) -> set[tuple[str, datetime]]:
    """The (currency, snapshot_ts) of ``current`` that are computed (``computed``: (currency, stamp) pairs with
    key levels) and whose recorded inputs equal ``current``'s; the others are missing or stale."""
    stored = stored_inputs(data_dir)
    if stored is None or current.is_empty():
        return set()
    joined = current.join(
        stored.select("currency", "snapshot_ts", *COMPARED), on=["currency", "snapshot_ts"], suffix="_r"
    )
    same = pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"{c}_r")) for c in COMPARED])
    keys = joined.filter(same & pl.col("snapshot_sha256").is_not_null()).select("currency", "snapshot_ts").rows()
    return {(c, ts) for c, ts in keys if (c, raw.stamp_of(ts)) in computed}


def stage_records(data_dir: Path, current: pl.DataFrame, keys, computed_ts: datetime, include_blocks: bool):
    """Stage the analytics_inputs record of each (currency, snapshot_ts) in ``keys`` (one file per snapshot, named
    after it, so a recompute replaces it)."""
    wanted = pl.DataFrame(list(keys), schema={"currency": pl.String, "snapshot_ts": UTC_TS}, orient="row")
    rows = current.join(wanted, on=["currency", "snapshot_ts"]).with_columns(
        pl.lit(computed_ts, UTC_TS).alias("computed_ts"), pl.lit(include_blocks).alias("include_blocks")
    )
    rows = rows.select(list(ANALYTICS_INPUT))
    staged = []
    for (_currency, ts), part in rows.partition_by("currency", "snapshot_ts", as_dict=True).items():
        staged += lake.stage_partitions(data_dir, TABLE, part, name=raw.stamp_of(ts), date_col="snapshot_ts")
    return staged
