"""Frame contracts shared by the pure transforms.

Every frame that crosses a layer boundary is declared once (column -> polars dtype) in a module of this
package and checked with :func:`check` at the boundary; import them from here. Units are part of the name
or stated in the comment. By topic: ``core`` (the UTC timestamp, :func:`check`, :func:`empty`, chain
snapshots, instruments, ingest runs), ``trades`` (the tape, its watermark and runs, reconciliation,
analytics inputs), ``gex`` (greeks, dealer positions, GEX, key levels, depth, scenarios), ``forecast``
(the daily flow forecast).
"""

from __future__ import annotations

from transforms.frames.schemas.core import INGEST_RUN, INSTRUMENT, OPTION_SNAPSHOT, UTC_TS, SchemaError, check, empty
from transforms.frames.schemas.forecast import EXPIRY_ROLLOFF, FLOW_FORECAST, FORECAST_SUMMARY
from transforms.frames.schemas.gex import (
    DEALER_BOOK,
    DEALER_POSITION,
    DEALER_POSITION_STORED,
    EXPOSURE_BY_EXPIRY,
    GEX_BY_STRIKE,
    GEX_PROFILE,
    KEY_LEVELS,
    KEY_LEVELS_BY_TENOR,
    KEY_LEVELS_STORED,
    OPTION_GREEKS,
    SCENARIO_PROFILE,
)
from transforms.frames.schemas.trades import (
    ANALYTICS_INPUT,
    OI_RECONCILIATION,
    TAPE_COVERAGE,
    TRADE,
    TRADE_RUN,
    TRADE_WATERMARK,
)

__all__ = [
    "ANALYTICS_INPUT",
    "DEALER_BOOK",
    "DEALER_POSITION",
    "DEALER_POSITION_STORED",
    "EXPIRY_ROLLOFF",
    "EXPOSURE_BY_EXPIRY",
    "FLOW_FORECAST",
    "FORECAST_SUMMARY",
    "GEX_BY_STRIKE",
    "GEX_PROFILE",
    "INGEST_RUN",
    "INSTRUMENT",
    "KEY_LEVELS",
    "KEY_LEVELS_BY_TENOR",
    "KEY_LEVELS_STORED",
    "OI_RECONCILIATION",
    "OPTION_GREEKS",
    "OPTION_SNAPSHOT",
    "SCENARIO_PROFILE",
    "TAPE_COVERAGE",
    "TRADE",
    "TRADE_RUN",
    "TRADE_WATERMARK",
    "UTC_TS",
    "SchemaError",
    "check",
    "empty",
]
