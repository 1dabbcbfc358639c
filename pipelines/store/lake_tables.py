"""Every lake table with its schema, in one place, so whichever writer runs first makes every view bind."""

from __future__ import annotations

from pathlib import Path

from pipelines.store.table_names import Table
from transforms.frames.schemas import (
    ANALYTICS_INPUT,
    DEALER_POSITION_STORED,
    EXPIRY_ROLLOFF,
    EXPOSURE_BY_EXPIRY,
    FLOW_FORECAST,
    FORECAST_SUMMARY,
    GEX_BY_STRIKE,
    GEX_PROFILE,
    INGEST_RUN,
    INSTRUMENT,
    KEY_LEVELS_BY_TENOR,
    KEY_LEVELS_STORED,
    OI_RECONCILIATION,
    OPTION_SNAPSHOT,
    SCENARIO_PROFILE,
    TAPE_COVERAGE,
    TRADE,
    TRADE_RUN,
    TRADE_WATERMARK,
)
from transforms.gex.hedge_ladder import HEDGE_LADDER, LADDER_VOLUME
from transforms.grading.schemas import FORECAST_GRADE, FORECAST_HISTORY, INDEX_PRICE
from warehouse import lake
from warehouse.catalog import refresh_views

__all__ = ["LAKE_TABLES", "Table", "prepare_warehouse"]


LAKE_TABLES: dict[Table, dict] = {
    Table.INSTRUMENTS: INSTRUMENT,
    Table.OPTION_SNAPSHOTS: OPTION_SNAPSHOT,
    Table.STATE_INGEST_RUNS: INGEST_RUN,
    Table.TRADES: TRADE,
    Table.STATE_TRADE_WATERMARKS: TRADE_WATERMARK,
    Table.STATE_TRADE_RUNS: TRADE_RUN,
    Table.DEALER_POSITIONS: DEALER_POSITION_STORED,
    Table.GEX_BY_STRIKE: GEX_BY_STRIKE,
    Table.GEX_PROFILE: GEX_PROFILE,
    Table.KEY_LEVELS: KEY_LEVELS_STORED,
    Table.FLOW_FORECAST: FLOW_FORECAST,
    Table.FORECAST_SUMMARY: FORECAST_SUMMARY,
    Table.EXPIRY_ROLLOFF: EXPIRY_ROLLOFF,
    Table.TAPE_COVERAGE: TAPE_COVERAGE,
    Table.OI_RECONCILIATION: OI_RECONCILIATION,
    Table.FORECAST_HISTORY: FORECAST_HISTORY,
    Table.INDEX_PRICES: INDEX_PRICE,
    Table.FORECAST_GRADES: FORECAST_GRADE,
    Table.STATE_ANALYTICS_INPUTS: ANALYTICS_INPUT,
    Table.EXPOSURE_BY_EXPIRY: EXPOSURE_BY_EXPIRY,
    Table.KEY_LEVELS_BY_TENOR: KEY_LEVELS_BY_TENOR,
    Table.SCENARIO_PROFILES: SCENARIO_PROFILE,
    Table.HEDGE_LADDER: HEDGE_LADDER,
    Table.HEDGE_LADDER_VOLUME: LADDER_VOLUME,
}


def prepare_warehouse(data_dir: Path) -> None:
    """A zero-row schema file for every lake table, then the DuckDB views (a no-op when unchanged)."""
    for table, schema in LAKE_TABLES.items():
        lake.ensure_empty_file(data_dir, table, schema)
    refresh_views(data_dir)
