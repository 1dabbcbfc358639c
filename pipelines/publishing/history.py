"""Key levels over time: the ``key_levels_history`` view read for one currency and model (``gexflow history``,
the daily page's history chart and its exports)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.errors import GexflowError
from transforms.frames.schemas import UTC_TS
from warehouse.catalog import connect_readonly, db_path, read_sql, refresh_views

# the earliest / latest times a history query can be asked for (Deribit lists options from 2016)
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_TYPES = {
    "currency": pl.String,
    "model": pl.String,
    "snapshot_ts": UTC_TS,
    "ts_1h_ago": UTC_TS,
    "ts_24h_ago": UTC_TS,
    "is_long_gamma": pl.Boolean,
}


def load_history(
    data_dir: Path, currency: str, model: str, since: datetime | None = None, until: datetime | None = None
) -> pl.DataFrame:
    """Rows of ``key_levels_history`` for ``currency`` and ``model`` with since <= snapshot_ts <= until, oldest
    first (UTC timestamps). The views are brought up to date first (a no-op unless a definition changed)."""
    data_dir = Path(data_dir)
    if not db_path(data_dir).exists():
        raise GexflowError(f"no warehouse in {data_dir}: run `gexflow run` or `gexflow backfill` first")
    refresh_views(data_dir)
    con = connect_readonly(data_dir)
    try:
        params = {
            "currency": currency,
            "model": model,
            "since": (since or _EARLIEST).isoformat(),
            "until": (until or _LATEST).isoformat(),
        }
        cur = con.execute(read_sql("queries/key_levels_history.sql"), params)
        columns = [d[0] for d in cur.description]
        frame = pl.DataFrame(cur.fetchall(), schema=columns, orient="row", infer_schema_length=None)
    finally:
        con.close()
    # a column that is NULL in every row comes back untyped: give each its type
    types = {c: _TYPES.get(c, pl.Float64) for c in columns}
    return frame.with_columns(
        pl.col(c).dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
        if t == UTC_TS and frame[c].dtype != pl.Null
        else pl.col(c).cast(t)
        for c, t in types.items()
    )


def last_days(data_dir: Path, currency: str, model: str, until: datetime, days: int = 30) -> pl.DataFrame:
    """The history of the ``days`` days up to ``until`` (the daily page shows the last 30)."""
    return load_history(data_dir, currency, model, until - timedelta(days=days), until)


__all__ = ["last_days", "load_history"]
