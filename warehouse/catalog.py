"""``warehouse.duckdb``: the public views over the lake, defined by the files in ``sql/views/``.

DuckDB cannot take prepared parameters in DDL (``CREATE VIEW``/``CREATE MACRO``: "Binder Error:
Unexpected prepared parameter"), so the lake location is installed once as the macro
``gexflow_lake()`` and the view files refer to it; the view SQL itself is never formatted.

The database file is only opened read-write when a view definition (or the lake location) changed,
so readers holding it open read-only are not blocked by routine ingestion: new Parquet files show
up through the views' globs without touching the database.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import duckdb

from warehouse import WarehouseError
from warehouse.atomic import mark_stager, temp_path, write_atomic
from warehouse.lake import lake_root

DB_NAME = "warehouse.duckdb"
STATE_NAME = "warehouse.catalog.json"


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


def view_sql() -> dict[str, str]:
    """{view name: SQL text} of every ``sql/views/*.sql``, in file-name order (numeric prefixes order dependencies)."""
    folder = resources.files("sql") / "views"
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            name = entry.name[:-4].split("__", 1)[-1]
            out[name] = entry.read_text(encoding="utf-8")
    return out


def read_sql(relative: str) -> str:
    """Text of a packaged SQL file, e.g. ``queries/latest_key_levels.sql``."""
    return (resources.files("sql") / relative).read_text(encoding="utf-8")


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _desired(data_dir: Path) -> dict:
    views = view_sql()
    return {
        "lake_root": str(lake_root(data_dir).resolve()),
        "views": {n: hashlib.sha256(s.encode()).hexdigest()[:16] for n, s in views.items()},
    }


def refresh_views(data_dir: Path, *, wait_s: float = 10.0, force: bool = False) -> bool:
    """Create every view if anything changed; returns True when the database was (re)built.

    The database is built whole under a temp name and renamed over ``warehouse.duckdb``: a full disk
    or a kill mid-build leaves the old file (or none), never a torn one; readers that hold the old
    file open keep reading it. ``wait_s`` is kept for callers; building never waits for readers.
    """
    desired = _desired(data_dir)
    state_path = data_dir / STATE_NAME
    db = db_path(data_dir)
    if not force and db.exists() and state_path.exists():
        try:
            if json.loads(state_path.read_text()) == desired:
                return False
        except ValueError:
            pass
    mark_stager(data_dir)  # a kill mid-build leaves a temp file the next writer must sweep
    tmp = temp_path(db)
    try:
        _build(tmp, desired, db)
        Path(f"{db}.wal").unlink(missing_ok=True)  # a torn file's log must not be replayed into the new one
        os.replace(tmp, db)
    except OSError as exc:
        raise WarehouseError(f"cannot write {db}: {exc.strerror or exc} (the lake is intact; re-run)") from None
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    write_atomic(state_path, json.dumps(desired, indent=1).encode())
    return True


def _build(path: Path, desired: dict, shown: Path) -> None:
    """Build the views into ``path``; errors name ``shown`` (the file being replaced), not the temp name."""
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise WarehouseError(f"cannot create {shown}: {_short(exc, path)}") from None
    try:
        con.execute("begin transaction")
        con.execute(f"create or replace macro gexflow_lake() as {_quote_literal(desired['lake_root'])}")
        for name, sql in view_sql().items():
            try:
                con.execute(sql)
            except duckdb.Error as exc:
                raise WarehouseError(f"view {name} failed to build: {str(exc).splitlines()[0]}") from None
        con.execute("commit")
        con.execute("checkpoint")
    except duckdb.Error as exc:
        raise WarehouseError(f"cannot write {shown}: {_short(exc, path)} (the lake is intact)") from None
    finally:
        con.close()


def _short(exc: Exception, tmp: Path) -> str:
    return str(exc).splitlines()[0].replace(f"{tmp}", "<temp file>")[:200]


def _stored_lake_root(data_dir: Path) -> str | None:
    try:
        return json.loads((data_dir / STATE_NAME).read_text()).get("lake_root")
    except (OSError, ValueError, AttributeError):
        return None


def connect_readonly(data_dir: Path):
    """A read-only connection to the warehouse (UTC session time zone).

    The views read the lake through an absolute path (``gexflow_lake()``). If the data dir was moved or
    copied since they were written, they are re-pointed at this data dir's lake first (a short read-write
    open of the database); if that is impossible the error says so rather than reading another lake.
    """
    db = db_path(data_dir)
    if not db.exists() and (lake_root(data_dir) / "option_snapshots").is_dir():
        refresh_views(data_dir, force=True)  # removed by hand or lost: the lake has everything to rebuild it
    if not db.exists():
        raise WarehouseError(f"no warehouse at {db}: run `gexflow ingest` (or `gexflow run`) first")
    stored = _stored_lake_root(data_dir)
    here = str(lake_root(data_dir).resolve())
    if stored is not None and stored != here:
        try:
            refresh_views(data_dir, wait_s=2.0, force=True)
        except (WarehouseError, duckdb.Error, OSError) as exc:
            raise WarehouseError(
                f"{db} reads the lake at {stored}, not {here} (data dir moved or copied?), and could not be "
                f"re-pointed: {str(exc).splitlines()[0][:200]}"
            ) from None
    try:
        con = _open_readonly(db)
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            raise WarehouseError(f"cannot open {db}: {str(exc).splitlines()[0][:200]}") from None
        refresh_views(data_dir, force=True)  # damaged or torn: it holds only views, rebuild it from the lake
        try:
            con = _open_readonly(db)
        except duckdb.Error as again:
            raise WarehouseError(f"cannot open {db}: {str(again).splitlines()[0][:200]}") from None
    con.execute("set TimeZone = 'UTC'")
    return con


def _open_readonly(db: Path):
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("select count(*) from duckdb_views()").fetchone()
    except duckdb.Error:
        con.close()
        raise
    return con
