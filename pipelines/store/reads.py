"""Reads of lake tables for the jobs, the CLI and the publishers: one place that knows which table holds what."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from warehouse import lake


def load_chain(
    data_dir: Path, currencies, since: datetime | None = None, until: datetime | None = None
) -> pl.DataFrame:
    """Stored option snapshots of ``currencies`` with ``since <= snapshot_ts <= until`` (either open)."""
    scan = lake.scan(data_dir, "option_snapshots")
    if scan is None:
        return pl.DataFrame()
    cond = pl.col("currency").is_in(list(currencies))
    if since is not None:
        cond &= pl.col("snapshot_ts") >= since
    if until is not None:
        cond &= pl.col("snapshot_ts") <= until
    return scan.filter(cond).collect()


# reads used by the CLI commands
# (their imports are inside them, so this block stays apart from the module header)


def stored_coins(data_dir: Path, currencies: tuple[str, ...]) -> tuple[str, ...]:
    """``currencies`` as stored: USDC/USDT options live under their base coins (BTC, ETH, SOL, ...)."""
    if "USDC" not in currencies and "USDT" not in currencies:
        return currencies
    from pipelines.store.lake_tables import Table

    scan = lake.scan(data_dir, Table.OPTION_SNAPSHOTS)
    stored = set(scan.select("currency").unique().collect()["currency"]) if scan is not None else set()
    coins = tuple(sorted(stored - {"BTC", "ETH"} | (set(currencies) & {"BTC", "ETH"})))
    return coins or currencies  # nothing stored yet: keep the names so errors can say which


def has_snapshots(data_dir: Path, coins) -> bool:
    """Whether the lake holds option snapshots of any of ``coins`` (as stored, see :func:`stored_coins`)."""
    from pipelines.store.lake_tables import Table

    return any(lake.currency_files(data_dir, Table.OPTION_SNAPSHOTS, c) for c in coins)


def stored_span(data_dir: Path, table: str, currency: str, model: str | None) -> tuple[int, datetime, datetime] | None:
    """(snapshots, first snapshot_ts, last snapshot_ts) of ``currency`` (and ``model``) in ``table``; None when it
    holds nothing for them."""
    scan = lake.scan(data_dir, table)
    if scan is None:
        return None
    scan = scan.filter(pl.col("currency") == currency)
    if model is not None:
        scan = scan.filter(pl.col("model") == model)
    span = scan.select(
        pl.col("snapshot_ts").n_unique().alias("n"),
        pl.col("snapshot_ts").min().alias("first"),
        pl.col("snapshot_ts").max().alias("last"),
    ).collect()
    n, first, last = span.row(0)
    return (n, first, last) if n else None


def dealer_positions_at(data_dir: Path, currency: str, snapshot_ts: datetime, model: str) -> pl.DataFrame:
    """DEALER_POSITION rows of one stored snapshot and positioning model."""
    from pipelines.store.lake_tables import Table
    from transforms.frames.schemas import DEALER_POSITION

    return (
        lake.scan(data_dir, Table.DEALER_POSITIONS)
        .filter(pl.col("currency") == currency, pl.col("snapshot_ts") == snapshot_ts, pl.col("model") == model)
        .select(list(DEALER_POSITION))
        .collect()
    )


def packaged_query(name: str):
    """The installed copy of ``sql/queries/<name>``."""
    from importlib import resources

    return resources.files("sql") / "queries" / name


def _read_statements():
    import duckdb

    kinds = duckdb.StatementType
    return frozenset({kinds.SELECT, kinds.EXPLAIN, kinds.PRAGMA, kinds.CALL})


def read_query(data_dir: Path, query: str, params: dict) -> tuple[list[str] | None, list]:
    """(column names, rows) of a read-only query on the warehouse; columns None for a statement without rows.
    Only statements that read are run (ConfigError names the others)."""
    import duckdb

    from pipelines.config import ConfigError
    from warehouse.catalog import connect_readonly

    con = connect_readonly(data_dir)
    try:
        try:
            kinds = [st.type for st in con.extract_statements(query)]
            # the connection is read-only, which stops writes to the database but not COPY ... TO, EXPORT or
            # ATTACH, which write files anywhere (into the lake too): only statements that read are run
            refused = sorted({k.name for k in kinds if k not in _read_statements()})
            if refused:
                raise ConfigError(
                    f"gexflow sql is read-only (SELECT, EXPLAIN, PRAGMA, CALL); refused: {', '.join(refused)}"
                )
            cur = con.execute(query, params or None)
        except duckdb.Error as exc:
            raise ConfigError(f"query failed: {str(exc).splitlines()[0]}") from None
        if cur.description is None:
            return None, []
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()
