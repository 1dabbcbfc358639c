"""The validation gate every batch passes before it reaches the lake (DESIGN section 6).

Each ``validate_*`` function checks one polars frame against its contract in
:mod:`transforms.frames.schemas` (column names and polars dtypes, checked here without GE) and then runs a
Great Expectations 1.x suite over it (value ranges, keys, expiry after snapshot, freshness). It
never raises on bad data: it returns a :class:`ValidationReport` whose ``failures`` say what failed,
one short line per failed check, and whose ``details`` are the JSON-serialisable GE results for the
quarantine report.

The checks themselves are data (:mod:`pipelines.validation.checks`); Great Expectations is imported on the
first validation, not with this module (:mod:`pipelines.validation.ge_run`, which also keeps runs quiet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from pipelines.store.lake_tables import Table
from pipelines.validation.checks import (
    FRESH_PARAM,
    FRESHNESS,
    INSTRUMENT_CHECKS,
    OPTION_SNAPSHOT_CHECKS,
    RATIOS,
    TRADE_CHECKS,
    Check,
    unique,
)
from pipelines.validation.ge_run import warm_up as warm_up
from pipelines.validation.ge_worker import run_suite
from pipelines.validation.polars_checks import (
    CHAIN_SIZE,
    COVERAGE_NEIGHBOURS,
    COVERAGE_SHARE,
    chain_sizes,
    coverage_failures,
    non_finite_failures,
    short_chains,
)
from transforms.frames.schemas import INSTRUMENT, OPTION_SNAPSHOT

_EXAMPLES = 3  # row ids quoted in a failure line


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one batch."""

    table: str  # 'option_snapshots' | 'instruments' | 'trades'
    success: bool
    failures: list[str]  # one short human line per failed check
    checked_rows: int
    details: dict  # JSON-serialisable GE result summary (for the quarantine report)

    def summary(self) -> str:
        """One line: ``option_snapshots: ok (854 rows)`` or ``option_snapshots: 2 checks failed: a; b``."""
        if self.success:
            return f"{self.table}: ok ({self.checked_rows} rows)"
        n = len(self.failures)
        return f"{self.table}: {n} check{'s' if n != 1 else ''} failed: " + "; ".join(self.failures)


# --- the checks --------------------------------------------------------------------------------------


# --- public API --------------------------------------------------------------------------------------


def validate_option_snapshots(
    frame: pl.DataFrame,
    *,
    now: datetime | None = None,
    max_age: timedelta | None = None,
    neighbours: pl.DataFrame | None = None,
    listed: pl.DataFrame | None = None,
) -> ValidationReport:
    """Validate an OPTION_SNAPSHOT frame: finite numbers, nulls, bounds, keys, expiry, coverage.

    Freshness (every ``snapshot_ts >= now - max_age``) is checked only when both ``now`` and
    ``max_age`` are given: live runs pass the clock, replays and backfills do not. ``now`` must be
    timezone-aware.

    Coverage compares each (currency, snapshot_ts) chain in ``frame`` with its nearest other chains of
    that currency -- those in ``frame`` and the rows of ``neighbours`` (currency, snapshot_ts, options of
    chains already published or in the same run) -- and with ``listed`` (the same columns: options the
    exchange lists at that snapshot_ts), see :func:`short_chains`.
    """
    params = None
    if now is not None and max_age is not None:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("validate_option_snapshots: now must be timezone-aware")
        params = {FRESH_PARAM: (now - max_age).astimezone(UTC)}
    checks = OPTION_SNAPSHOT_CHECKS + ((FRESHNESS,) if params else ())
    derived = frame.with_columns(
        (pl.col(num) / pl.col(den)).alias(name)
        for name, (num, den) in RATIOS.items()
        if all(frame.schema.get(c) == pl.Float64 for c in (num, den))
    )
    extra = coverage_failures(chain_sizes(frame), neighbours, listed)
    return _validate(Table.OPTION_SNAPSHOTS, derived, OPTION_SNAPSHOT, checks, "instrument_name", params, extra)


def validate_instruments(frame: pl.DataFrame) -> ValidationReport:
    """Validate an INSTRUMENT frame: unique (currency, instrument_name), strike and contract size > 0, type."""
    return _validate(Table.INSTRUMENTS, frame, INSTRUMENT, INSTRUMENT_CHECKS, "instrument_name", None)


def validate_trades(frame: pl.DataFrame) -> ValidationReport:
    """Validate a trades frame; the checks run on the columns present.

    ``trade_id`` is required (it is the key); ``currency``, ``ts``, ``direction``, ``amount`` and
    ``price`` are checked when present. The key is (currency, trade_id), or trade_id alone without
    a currency column.
    """
    key = tuple(c for c in ("currency", "trade_id") if c in frame.columns)
    checks = TRADE_CHECKS + ((unique(key),) if "trade_id" in key else ())
    return _validate(Table.TRADES, frame, {"trade_id": None}, checks, "trade_id", None)


# --- machinery ---------------------------------------------------------------------------------------


def _schema_problems(frame: pl.DataFrame, schema: dict) -> tuple[list[str], set[str]]:
    """Contract problems (missing columns, wrong dtypes; a ``None`` dtype accepts any) and the bad columns."""
    problems, bad = [], set()
    for col, dtype in schema.items():
        if col not in frame.schema:
            problems.append(f"missing {col}")
            bad.add(col)
        elif dtype is not None and frame.schema[col] != dtype:
            problems.append(f"{col} is {frame.schema[col]}, expected {dtype}")
            bad.add(col)
    return problems, bad


def _validate(
    table: str,
    frame: pl.DataFrame,
    schema: dict,
    checks: tuple[Check, ...],
    id_column: str,
    params: dict | None,
    extra: list[str] | None = None,
) -> ValidationReport:
    problems, bad = _schema_problems(frame, schema)
    usable = [c for c in checks if all(col in frame.columns and col not in bad for col in c.columns)]
    failures = ["schema: " + "; ".join(problems)] if problems else []
    ids = id_column if id_column in frame.columns and id_column not in bad else None
    failures += non_finite_failures(frame, ids, skip=tuple(RATIOS)) + (extra or [])
    # A check is skipped when a column it reads is missing or mistyped: for option snapshots and
    # instruments that is already a schema failure; trades check only the columns they have.
    details: dict = {
        "table": table,
        "checked_rows": frame.height,
        "schema_problems": problems,
        "skipped_checks": [c.label for c in checks if c not in usable],
    }
    if usable:
        needed = sorted({col for c in usable for col in c.columns} | ({ids} if ids else set()))
        result = run_suite(table, frame.select(needed), tuple(usable), ids, params)
        details.update(result)
        for r in result["results"]:
            r["check"] = usable[r["check"]].label
            if not r["success"]:
                failures.append(_failure_line(r["check"], r, params))
    return ValidationReport(table, not failures, failures, frame.height, details)


def _failure_line(label: str, r: dict, params: dict | None) -> str:
    if label == FRESHNESS.label and params:
        label += f" ({params[FRESH_PARAM]:%Y-%m-%dT%H:%M:%SZ})"
    if r.get("exception"):
        message = r["exception"].strip().splitlines()[0] if r["exception"].strip() else "error"
        return f"{label}: could not be evaluated ({message[:160]})"
    n = r.get("unexpected_count")
    if n is None:
        return f"{label}: failed"
    line = f"{label}: {n} row{'s fail' if n != 1 else ' fails'}"
    rows = r.get("row_ids") or []
    ids = list(dict.fromkeys(rows))  # distinct, in order: a duplicated key names its row once
    if not ids:
        return line
    more = len(ids) > _EXAMPLES or n > len(rows)  # GE keeps only the first _PARTIAL failing rows
    return line + " (" + ", ".join(str(i) for i in ids[:_EXAMPLES]) + (", ..." if more else "") + ")"


__all__ = [
    "CHAIN_SIZE",
    "COVERAGE_NEIGHBOURS",
    "COVERAGE_SHARE",
    "ValidationReport",
    "chain_sizes",
    "short_chains",
    "validate_instruments",
    "validate_option_snapshots",
    "validate_trades",
    "warm_up",
]
