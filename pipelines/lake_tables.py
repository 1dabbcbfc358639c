"""Every lake table with its schema, in one place, so whichever writer runs first makes every view bind."""

from __future__ import annotations

from pathlib import Path

from transforms.schemas import INGEST_RUN, INSTRUMENT, OPTION_SNAPSHOT, TRADE, TRADE_RUN, TRADE_WATERMARK
from warehouse import lake
from warehouse.catalog import refresh_views

LAKE_TABLES: dict[str, dict] = {
    "instruments": INSTRUMENT,
    "option_snapshots": OPTION_SNAPSHOT,
    "_state/ingest_runs": INGEST_RUN,
    "trades": TRADE,
    "_state/trade_watermarks": TRADE_WATERMARK,
    "_state/trade_runs": TRADE_RUN,
}


def prepare_warehouse(data_dir: Path) -> None:
    """A zero-row schema file for every lake table, then the DuckDB views (a no-op when unchanged)."""
    for table, schema in LAKE_TABLES.items():
        lake.ensure_empty_file(data_dir, table, schema)
    refresh_views(data_dir)
