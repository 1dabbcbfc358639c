"""Every lake table with its schema, in one place, so whichever writer runs first makes every view bind."""

from __future__ import annotations

from pathlib import Path

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
from transforms.grading.schemas import FORECAST_GRADE, FORECAST_HISTORY, INDEX_PRICE
from warehouse import lake
from warehouse.catalog import refresh_views

LAKE_TABLES: dict[str, dict] = {
    "instruments": INSTRUMENT,
    "option_snapshots": OPTION_SNAPSHOT,
    "_state/ingest_runs": INGEST_RUN,
    "trades": TRADE,
    "_state/trade_watermarks": TRADE_WATERMARK,
    "_state/trade_runs": TRADE_RUN,
    "dealer_positions": DEALER_POSITION_STORED,
    "gex_by_strike": GEX_BY_STRIKE,
    "gex_profile": GEX_PROFILE,
    "key_levels": KEY_LEVELS_STORED,
    "flow_forecast": FLOW_FORECAST,
    "forecast_summary": FORECAST_SUMMARY,
    "expiry_rolloff": EXPIRY_ROLLOFF,
    "tape_coverage": TAPE_COVERAGE,
    "oi_reconciliation": OI_RECONCILIATION,
    "forecast_history": FORECAST_HISTORY,
    "index_prices": INDEX_PRICE,
    "forecast_grades": FORECAST_GRADE,
    "_state/analytics_inputs": ANALYTICS_INPUT,
    "exposure_by_expiry": EXPOSURE_BY_EXPIRY,
    "key_levels_by_tenor": KEY_LEVELS_BY_TENOR,
    "scenario_profiles": SCENARIO_PROFILE,
}


def prepare_warehouse(data_dir: Path) -> None:
    """A zero-row schema file for every lake table, then the DuckDB views (a no-op when unchanged)."""
    for table, schema in LAKE_TABLES.items():
        lake.ensure_empty_file(data_dir, table, schema)
    refresh_views(data_dir)
