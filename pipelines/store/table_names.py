"""The lake's table names, apart from their schemas (pipelines/store/lake_tables.py, which re-exports
:class:`Table`): what a light process needs -- the Great Expectations worker -- without importing every schema."""

from __future__ import annotations

from enum import StrEnum


class Table(StrEnum):
    """Lake table names (a member is its name as a str: paths, SQL and f-strings see the plain name)."""

    INSTRUMENTS = "instruments"
    OPTION_SNAPSHOTS = "option_snapshots"
    STATE_INGEST_RUNS = "_state/ingest_runs"
    TRADES = "trades"
    STATE_TRADE_WATERMARKS = "_state/trade_watermarks"
    STATE_TRADE_RUNS = "_state/trade_runs"
    DEALER_POSITIONS = "dealer_positions"
    GEX_BY_STRIKE = "gex_by_strike"
    GEX_PROFILE = "gex_profile"
    KEY_LEVELS = "key_levels"
    FLOW_FORECAST = "flow_forecast"
    FORECAST_SUMMARY = "forecast_summary"
    EXPIRY_ROLLOFF = "expiry_rolloff"
    TAPE_COVERAGE = "tape_coverage"
    OI_RECONCILIATION = "oi_reconciliation"
    FORECAST_HISTORY = "forecast_history"
    INDEX_PRICES = "index_prices"
    FORECAST_GRADES = "forecast_grades"
    STATE_ANALYTICS_INPUTS = "_state/analytics_inputs"
    EXPOSURE_BY_EXPIRY = "exposure_by_expiry"
    KEY_LEVELS_BY_TENOR = "key_levels_by_tenor"
    SCENARIO_PROFILES = "scenario_profiles"
    HEDGE_LADDER = "hedge_ladder"
    HEDGE_LADDER_VOLUME = "hedge_ladder_volume"
    # not a view: the Tardis backfill's end state of each day (pipelines.jobs.backfill_grid), no registered schema
    STATE_TARDIS_BACKFILL = "_state/tardis_backfill"
