"""The Parquet lake: ``lake/<table>/currency=<C>/date=<YYYY-MM-DD>/<name>.parquet`` (zstd).

Writers stage files under temp names and publish them with :func:`warehouse.files.commit`; the same
snapshot always maps to the same file name, so re-running replaces instead of duplicating.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from warehouse.atomic import write_atomic
from warehouse.files import Staged, discard, stage_bytes

EMPTY_NAME = "_empty.parquet"


def lake_root(data_dir: Path) -> Path:
    return data_dir / "lake"


def table_dir(data_dir: Path, table: str) -> Path:
    return lake_root(data_dir) / table


def partition_dir(data_dir: Path, table: str, currency: str, date) -> Path:
    return table_dir(data_dir, table) / f"currency={currency}" / f"date={date:%Y-%m-%d}"


def data_files(data_dir: Path, table: str) -> list[Path]:
    """Published data files of a table (not the empty schema file, not temp files)."""
    root = table_dir(data_dir, table)
    return sorted(p for p in root.glob("currency=*/date=*/*.parquet")) if root.is_dir() else []


def currency_files(data_dir: Path, table: str, currency: str) -> list[Path]:
    """Published data files of one currency of a table, in (date, name) order: time order for snapshot tables,
    whose files are named by their snapshot stamp."""
    root = table_dir(data_dir, table) / f"currency={currency}"
    return sorted(root.glob("date=*/*.parquet")) if root.is_dir() else []


def row_count(path: Path) -> int:
    """Rows of one Parquet file, from its footer (the data is not read)."""
    return pl.scan_parquet(path).select(pl.len()).collect().item()


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """The file's bytes, encoded in memory: a full disk then fails on a plain write that names the file,
    never inside the Parquet writer (which left torn files reported later as "Invalid thrift")."""
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=True)
    return buf.getvalue()


def _single_partition(frame: pl.DataFrame, date_col: str, currency_col: str) -> tuple | None:
    """(currency, date) when every row of ``frame`` is in the same one (no nulls), else None: what the group_by in
    :func:`stage_partitions` would find, read from the column ends instead (dates of the column's own time zone)."""
    dates, currencies = frame.get_column(date_col), frame.get_column(currency_col)
    if not isinstance(dates.dtype, pl.Datetime) or dates.null_count() or currencies.null_count():
        return None
    first, last = dates.min(), dates.max()
    if first.date() != last.date() or currencies.n_unique() != 1:
        return None
    return currencies[0], first.date()


def stage_partitions(
    data_dir: Path, table: str, frame: pl.DataFrame, *, name: str, date_col: str, currency_col: str = "currency"
) -> list[Staged]:
    """Split ``frame`` by (currency, UTC date of ``date_col``) and stage one ``<name>.parquet`` per partition."""
    staged: list[Staged] = []
    if frame.is_empty():
        return staged
    single = _single_partition(frame, date_col, currency_col)
    if single is not None:  # the common case (one snapshot's rows): no grouping (benchmarks/RESULTS.md, "Depth")
        return [stage_bytes(partition_dir(data_dir, table, *single) / f"{name}.parquet", parquet_bytes(frame))]
    keyed = frame.with_columns(pl.col(date_col).dt.date().alias("__date"))
    try:
        for (currency, date), part in keyed.group_by([currency_col, "__date"], maintain_order=True):
            final = partition_dir(data_dir, table, currency, date) / f"{name}.parquet"
            staged.append(stage_bytes(final, parquet_bytes(part.drop("__date"))))
    except BaseException:
        discard(staged)  # never journaled: the caller never saw them
        raise
    return staged


def stage_file(path: Path, frame: pl.DataFrame) -> Staged:
    """Stage ``frame`` to be published at exactly ``path``."""
    return stage_bytes(path, parquet_bytes(frame))


def ensure_empty_file(data_dir: Path, table: str, schema: dict) -> Path:
    """A zero-row file carrying the table's schema, so its view binds before any data lands."""
    path = table_dir(data_dir, table) / EMPTY_NAME
    frame = pl.DataFrame(schema=schema)
    if path.exists():
        try:
            if pl.read_parquet_schema(path) == frame.schema:
                return path
        except Exception:  # noqa: BLE001 - unreadable schema file: rewrite it
            pass
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd")
    return write_atomic(path, buf.getvalue())


def scan(data_dir: Path, table: str) -> pl.LazyFrame | None:
    """Lazy scan of a table's published files, or None when it has none."""
    files = data_files(data_dir, table)
    if not files:
        return None
    return pl.scan_parquet([str(f) for f in files], missing_columns="insert", extra_columns="ignore")
