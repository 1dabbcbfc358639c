"""Reads of lake tables for the jobs, the CLI and the publishers: one place that knows which table holds what."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.store.lake_tables import Table
from transforms.frames.schemas import OPTION_SNAPSHOT
from transforms.gex.tape import Tape
from transforms.grading.schemas import INDEX_PRICE
from warehouse import lake, raw

# API currencies whose option tapes hold the linear options of several base coins (SOL_USDC-..., BTC_USDC-...)
LINEAR_TAPES = ("USDC", "USDT")


def load_chain(
    data_dir: Path, currencies, since: datetime | None = None, until: datetime | None = None
) -> pl.DataFrame:
    """Stored option snapshots of ``currencies`` with ``since <= snapshot_ts <= until`` (either open)."""
    scan = lake.scan(data_dir, Table.OPTION_SNAPSHOTS)
    if scan is None:
        return pl.DataFrame()
    cond = pl.col("currency").is_in(list(currencies))
    if since is not None:
        cond &= pl.col("snapshot_ts") >= since
    if until is not None:
        cond &= pl.col("snapshot_ts") <= until
    return scan.filter(cond).collect()


# ---------------------------------------------------------------- option snapshots and instruments


def load_snapshots(data_dir: Path, picks: dict[str, datetime]) -> pl.DataFrame:
    """OPTION_SNAPSHOT rows of one snapshot per currency (``picks``: currency -> snapshot_ts)."""
    scan = lake.scan(data_dir, Table.OPTION_SNAPSHOTS)
    wanted = pl.lit(False)
    for currency, ts in picks.items():
        wanted = wanted | ((pl.col("currency") == currency) & (pl.col("snapshot_ts") == ts))
    return scan.filter(wanted).select([pl.col(c).cast(t) for c, t in OPTION_SNAPSHOT.items()]).collect()


def snapshot_times_on(data_dir: Path, currencies, start: datetime, settle: datetime) -> pl.DataFrame | None:
    """Per currency with stored snapshots: the first snapshot of the day from ``start`` after ``settle``
    (``after``), the last of that day at or before it (``before``), and the first and last overall. None
    without snapshots."""
    scan = lake.scan(data_dir, Table.OPTION_SNAPSHOTS)
    if scan is None:
        return None
    return (
        scan.filter(pl.col("currency").is_in(list(currencies)))
        .group_by("currency")
        .agg(
            pl.col("snapshot_ts")
            .filter(pl.col("snapshot_ts") > settle, pl.col("snapshot_ts") < start + timedelta(days=1))
            .min()
            .alias("after"),
            pl.col("snapshot_ts")
            .filter(pl.col("snapshot_ts") >= start, pl.col("snapshot_ts") <= settle)
            .max()
            .alias("before"),
            pl.col("snapshot_ts").min().alias("first"),
            pl.col("snapshot_ts").max().alias("last"),
        )
        .collect()
    )


def last_snapshot_before(data_dir: Path, currency: str, ts: datetime) -> datetime | None:
    """The latest stored snapshot_ts of ``currency`` strictly before ``ts``."""
    return (
        lake.scan(data_dir, Table.OPTION_SNAPSHOTS)
        .filter((pl.col("currency") == currency) & (pl.col("snapshot_ts") < ts))
        .select(pl.col("snapshot_ts").max())
        .collect()
        .item()
    )


def snapshots_on_days(currency: str, days: list[date], paths: list[Path]) -> pl.DataFrame:
    """OPTION_SNAPSHOT rows of ``currency`` on ``days`` from ``paths`` (those days' partition files, see
    :func:`snapshot_partitions`)."""
    if not paths:
        return pl.DataFrame(schema=OPTION_SNAPSHOT)
    scan = pl.scan_parquet([str(p) for p in paths], missing_columns="insert", extra_columns="ignore")
    keep = (pl.col("currency") == currency) & pl.col("snapshot_ts").dt.date().is_in(days)
    return scan.filter(keep).select([pl.col(c).cast(t) for c, t in OPTION_SNAPSHOT.items()]).collect()


def linear_coins(data_dir: Path) -> list[str]:
    """Coins whose stored snapshots hold linear (USDC/USDT-settled) options."""
    scan = lake.scan(data_dir, Table.OPTION_SNAPSHOTS)
    if scan is None:
        return []
    found = scan.filter(pl.col("is_linear")).select(pl.col("currency").unique()).collect()
    return sorted(found["currency"].to_list())


def snapshot_partitions(data_dir: Path) -> dict[Path, list[Path]]:
    """The stored option_snapshots data files by partition folder."""
    partitions: dict[Path, list[Path]] = {}
    for path in lake.data_files(data_dir, Table.OPTION_SNAPSHOTS):
        partitions.setdefault(path.parent, []).append(path)
    return partitions


def listed_times(data_dir: Path) -> pl.DataFrame | None:
    """(instrument_name, listed_ts): when each stored instrument was first listed; None before any ingest."""
    ins = lake.scan(data_dir, Table.INSTRUMENTS)
    if ins is None:
        return None
    return ins.group_by("instrument_name").agg(pl.col("listed_ts").min()).collect()


# ---------------------------------------------------------------- trades


def load_tape(data_dir: Path, coin: str) -> Tape | None:
    """The stored trade tape of the options ``option_snapshots`` keeps under ``coin``; None without trades."""
    trades = lake.scan(data_dir, Table.TRADES)
    if trades is None:
        return None
    linear = pl.col("currency").is_in(LINEAR_TAPES) & pl.col("instrument_name").str.starts_with(f"{coin}_")
    tape = trades.filter((pl.col("currency") == coin) | linear).collect()
    if tape.is_empty():
        return None
    runs = lake.scan(data_dir, Table.STATE_TRADE_RUNS)
    starts = {}
    if runs is not None:
        starts = dict(runs.group_by("currency").agg(pl.col("start_ts").min()).collect().iter_rows())
    linear_starts = [starts[c] for c in LINEAR_TAPES if starts.get(c) is not None]
    return Tape(tape, starts.get(coin), max(linear_starts) if linear_starts else None)


def latest_watermarks(data_dir: Path, file_name: str) -> pl.DataFrame | None:
    """(currency, watermark_ts) of the latest update per currency in ``_state/trade_watermarks`` (one
    ``file_name`` per currency); None when there is none."""
    root = lake.table_dir(data_dir, Table.STATE_TRADE_WATERMARKS)
    found = sorted(root.glob(f"currency=*/{file_name}")) if root.is_dir() else []
    if not found:
        return None
    frame = pl.concat([pl.read_parquet(p, columns=["currency", "watermark_ts", "updated_ts"]) for p in found])
    return frame.sort("updated_ts").unique("currency", keep="last").select("currency", "watermark_ts")


def trades_partition(path: Path) -> pl.DataFrame | None:
    """A stored trades partition file (``lake.partition_dir(data_dir, Table.TRADES, currency, day) / ...``) as
    written, in whatever TRADE layout it was written with; None when it does not exist."""
    return pl.read_parquet(path) if path.exists() else None


# ---------------------------------------------------------------- Tardis backfill state


def backfill_state_dir(data_dir: Path, day: date) -> Path:
    """The folder of a Tardis backfill day's end state (grid and carried rows)."""
    return lake.table_dir(data_dir, Table.STATE_TARDIS_BACKFILL) / f"date={day:%Y-%m-%d}"


def backfill_grid_params(data_dir: Path, day: date) -> pl.DataFrame | None:
    """Unique (every_s, max_staleness_s) of the grid ``day`` was published on; None when it was not."""
    path = backfill_state_dir(data_dir, day) / "grid.parquet"
    if not path.is_file():
        return None
    return pl.read_parquet(path, columns=["every_s", "max_staleness_s"]).unique()


def backfill_carry(data_dir: Path, day: date) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """(carried option rows, carried index rows) at the end of ``day``, as stored; None without them."""
    folder = backfill_state_dir(data_dir, day)
    if not (folder / "carry_options.parquet").is_file():
        return None
    return pl.read_parquet(folder / "carry_options.parquet"), pl.read_parquet(folder / "carry_index.parquet")


# ---------------------------------------------------------------- analytics


def snapshot_of(path: Path) -> tuple[str, str]:
    """(currency, stamp) of an analytic file ``<table>/currency=C/date=D/<stamp>.parquet``."""
    return path.parent.parent.name.split("=", 1)[1], path.stem


def computed_snapshots(data_dir: Path) -> set[tuple[str, str]]:
    """(currency, stamp) pairs that already have key levels stored."""
    return {snapshot_of(p) for p in lake.data_files(data_dir, Table.KEY_LEVELS)}


def stored_custom_positions(data_dir: Path, snapshots) -> pl.DataFrame | None:
    """The stored ``custom`` model rows (currency, snapshot_ts, instrument_name, dealer_contracts, method) of
    the (currency, snapshot_ts) ``snapshots``, read from their dealer_positions files only, in one scan; None
    when none of them has a file."""
    wanted = {(currency, raw.stamp_of(ts)) for currency, ts in snapshots}
    paths = [str(p) for p in lake.data_files(data_dir, Table.DEALER_POSITIONS) if snapshot_of(p) in wanted]
    if not paths:
        return None
    return (
        pl.scan_parquet(paths, missing_columns="insert", extra_columns="ignore")
        .filter(pl.col("model") == "custom")
        .select("currency", "snapshot_ts", "instrument_name", "dealer_contracts", "method")
        .collect()
    )


def first_computed_since(data_dir: Path, currency: str, since: datetime) -> datetime | None:
    """The first snapshot_ts of ``currency`` at or after ``since`` with key levels stored."""
    scan = lake.scan(data_dir, Table.KEY_LEVELS)
    if scan is None:
        return None
    return (
        scan.filter((pl.col("currency") == currency) & (pl.col("snapshot_ts") >= since))
        .select(pl.col("snapshot_ts").min())
        .collect()
        .item()
    )


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


# ---------------------------------------------------------------- forecast grading


def snapshot_keys(data_dir: Path, currencies, in_range: pl.Expr) -> pl.DataFrame | None:
    """Unique (currency, snapshot_ts, date) of stored snapshots of ``currencies`` matching ``in_range``, sorted;
    None without any snapshots."""
    scan = lake.scan(data_dir, Table.OPTION_SNAPSHOTS)
    if scan is None:
        return None
    return (
        scan.filter(pl.col("currency").is_in(list(currencies)) & in_range)
        .select("currency", "snapshot_ts")
        .unique()
        .with_columns(pl.col("snapshot_ts").dt.date().alias("date"))
        .sort("currency", "snapshot_ts")
        .collect()
    )


def forecast_history_keys(data_dir: Path) -> pl.DataFrame | None:
    """Unique (currency, snapshot_ts) with a stored forecast_history row; None before any."""
    done = lake.scan(data_dir, Table.FORECAST_HISTORY)
    if done is None:
        return None
    return done.select("currency", "snapshot_ts").unique().collect()


def forecast_history_of(data_dir: Path, keys: pl.DataFrame) -> pl.DataFrame | None:
    """Stored forecast_history rows of the (currency, snapshot_ts) ``keys``; None before any."""
    stored = lake.scan(data_dir, Table.FORECAST_HISTORY)
    if stored is None:
        return None
    return stored.join(keys.lazy(), on=["currency", "snapshot_ts"], how="semi").collect()


def snapshot_index_prices(data_dir: Path, currencies) -> pl.DataFrame:
    """INDEX_PRICE rows (source 'snapshot') from the index_price of the stored API snapshots (not Tardis ones:
    those are priced as of up to the staleness window before their time)."""
    return (
        lake.scan(data_dir, Table.OPTION_SNAPSHOTS)
        .filter(pl.col("currency").is_in(list(currencies)), pl.col("source") != "tardis")
        .group_by("currency", "snapshot_ts")
        .agg(pl.col("index_price").drop_nulls().first())
        .select("currency", pl.col("snapshot_ts").alias("index_ts"), "index_price", pl.lit("snapshot").alias("source"))
        .collect()
        .select([pl.col(c).cast(t) for c, t in INDEX_PRICE.items()])
    )


def stored_index_prices(data_dir: Path, currencies) -> pl.DataFrame | None:
    """Stored index_prices rows of ``currencies``; None before any."""
    stored = lake.scan(data_dir, Table.INDEX_PRICES)
    if stored is None:
        return None
    return stored.filter(pl.col("currency").is_in(list(currencies))).collect()


# ---------------------------------------------------------------- reads used by the CLI commands


def stored_coins(data_dir: Path, currencies: tuple[str, ...]) -> tuple[str, ...]:
    """``currencies`` as stored: USDC/USDT options live under their base coins (BTC, ETH, SOL, ...)."""
    if "USDC" not in currencies and "USDT" not in currencies:
        return currencies
    scan = lake.scan(data_dir, Table.OPTION_SNAPSHOTS)
    stored = set(scan.select("currency").unique().collect()["currency"]) if scan is not None else set()
    coins = tuple(sorted(stored - {"BTC", "ETH"} | (set(currencies) & {"BTC", "ETH"})))
    return coins or currencies  # nothing stored yet: keep the names so errors can say which


def has_snapshots(data_dir: Path, coins) -> bool:
    """Whether the lake holds option snapshots of any of ``coins`` (as stored, see :func:`stored_coins`)."""
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
