"""The validation gate every batch passes before it reaches the lake (DESIGN section 6).

Each ``validate_*`` function checks one polars frame against its contract in
:mod:`transforms.frames.schemas` (column names and polars dtypes, checked here without GE) and then runs a
Great Expectations 1.x suite over it (value ranges, keys, expiry after snapshot, freshness). It
never raises on bad data: it returns a :class:`ValidationReport` whose ``failures`` say what failed,
one short line per failed check, and whose ``details`` are the JSON-serialisable GE results for the
quarantine report.

Great Expectations takes seconds to import, so it is imported lazily on the first validation, and
the ephemeral context, data source, assets and suites are built once per process and reused.
GE's progress bars are switched off in the context config, its loggers are raised to ERROR, and the
warnings pandas emits from inside GE are suppressed around the GE calls, so a CLI run stays quiet.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

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

_PARTIAL = 20  # unexpected values / row ids GE keeps per failed check (SUMMARY result format)
_EXAMPLES = 3  # row ids quoted in a failure line
_FRESH_PARAM = "oldest_allowed_snapshot_ts"


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


@dataclass(frozen=True)
class _Check:
    """One named expectation: ``kind`` is a ``gx.expectations`` class name, ``columns`` those it reads."""

    label: str
    kind: str
    columns: tuple[str, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()


def _not_null(col: str) -> _Check:
    return _Check(f"{col} not null", "ExpectColumnValuesToNotBeNull", (col,), (("column", col),))


def _between(label: str, col: str, **kw: Any) -> _Check:
    """Nulls pass a between-check; pair it with :func:`_not_null` where the column is required."""
    return _Check(label, "ExpectColumnValuesToBeBetween", (col,), (("column", col), *kw.items()))


@dataclass(frozen=True)
class _Param:
    """A suite parameter, filled in per validation (GE's ``{"$PARAMETER": name}``)."""

    name: str


def _in_set(col: str, values: tuple[str, ...]) -> _Check:
    label = f"{col} in {{{', '.join(values)}}}"
    return _Check(label, "ExpectColumnValuesToBeInSet", (col,), (("column", col), ("value_set", values)))


def _unique(cols: tuple[str, ...]) -> _Check:
    label = f"unique ({', '.join(cols)})"
    if len(cols) == 1:
        return _Check(label, "ExpectColumnValuesToBeUnique", cols, (("column", cols[0]),))
    return _Check(label, "ExpectCompoundColumnsToBeUnique", cols, (("column_list", cols),))


_FRESHNESS = _between("snapshot_ts >= now - max_age", "snapshot_ts", min_value=_Param(_FRESH_PARAM))

# Bounds (docs/data-quality.md says why each is what it is): generous enough that 7 months of real chains
# sit far inside them, tight enough that every product the analytics form (q c gamma F^2) stays finite.
MAX_OPEN_INTEREST = 1e7  # contracts of one option; the largest recorded is 82,738 (ETH)
MIN_IV, MAX_IV = 1.0, 1000.0  # mark_iv, percent; recorded 10.6 .. 348.8
MAX_USD = 1e9  # strike, forward, index (USD); no underlying is within a factor of 100 of it
MAX_CONTRACT_SIZE = 1e6  # coins per contract; Deribit uses 1 (BTC, ETH), 10 or 1000 (small coins)
FORWARD_TO_INDEX = (0.5, 2.0)  # underlying_price / index_price; recorded 0.989 .. 1.050
STRIKE_TO_INDEX = (0.01, 100.0)  # strike / index_price; recorded 0.148 .. 10.4


def _g(x: float) -> str:
    """1e7 -> '1e7', 0.5 -> '0.5' (labels of the bounds)."""
    return f"{x:g}".replace("e+0", "e").replace("e+", "e")


def _range(col: str, low: float, high: float, *, open_low: bool = False, label: str | None = None) -> _Check:
    """``col in [low, high]`` (``(low, high]`` when ``open_low``); nulls pass, so pair it with a not-null check."""
    text = f"{label or col} in {'(' if open_low else '['}{_g(low)}, {_g(high)}]"
    return _between(text, col, min_value=low, max_value=high, strict_min=open_low)


# Derived columns the suite checks (computed in polars, never stored).
_RATIOS = {
    "forward_to_index": ("underlying_price", "index_price"),
    "strike_to_index": ("strike", "index_price"),
}

_OPTION_SNAPSHOT_CHECKS = (
    *(_not_null(c) for c in ("currency", "snapshot_ts", "instrument_name", "strike", "contract_size")),
    # Null policy: an option without open interest, IV or forward cannot be counted, and dropping it would
    # shrink the chain silently -- the snapshot is quarantined instead (docs/data-quality.md).
    _not_null("open_interest"),
    _between("open_interest >= 0", "open_interest", min_value=0),
    _between(f"open_interest <= {_g(MAX_OPEN_INTEREST)}", "open_interest", max_value=MAX_OPEN_INTEREST),
    _not_null("mark_iv"),
    _range("mark_iv", MIN_IV, MAX_IV),
    _range("strike", 0, MAX_USD, open_low=True),
    _range("contract_size", 0, MAX_CONTRACT_SIZE, open_low=True),
    # ignore_row_if="neither": a null expiry (or snapshot) fails instead of being skipped.
    _Check(
        "expiration_ts > snapshot_ts",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        ("expiration_ts", "snapshot_ts"),
        (("column_A", "expiration_ts"), ("column_B", "snapshot_ts"), ("or_equal", False), ("ignore_row_if", "neither")),
    ),
    _not_null("option_type"),
    _in_set("option_type", ("call", "put")),
    _unique(("currency", "snapshot_ts", "instrument_name")),
    _not_null("underlying_price"),
    _range("underlying_price", 0, MAX_USD, open_low=True),
    _not_null("index_price"),
    _range("index_price", 0, MAX_USD, open_low=True),
    _range("forward_to_index", *FORWARD_TO_INDEX, label="underlying_price / index_price"),
    _range("strike_to_index", *STRIKE_TO_INDEX, label="strike / index_price"),
    *(_range(c, 0, MAX_USD, label=f"{c} null or") for c in ("mark_price", "bid_price", "ask_price")),
)

_INSTRUMENT_CHECKS = (
    *(_not_null(c) for c in ("currency", "instrument_name", "strike", "contract_size", "option_type")),
    _unique(("currency", "instrument_name")),
    _range("strike", 0, MAX_USD, open_low=True),
    _range("contract_size", 0, MAX_CONTRACT_SIZE, open_low=True),
    _in_set("option_type", ("call", "put")),
)

_TRADE_CHECKS = (
    _not_null("trade_id"),
    _not_null("ts"),
    _not_null("amount"),
    _between("amount > 0", "amount", min_value=0, strict_min=True),
    _between("price >= 0", "price", min_value=0),
    _not_null("direction"),
    _in_set("direction", ("buy", "sell")),
)


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
        params = {_FRESH_PARAM: (now - max_age).astimezone(UTC)}
    checks = _OPTION_SNAPSHOT_CHECKS + ((_FRESHNESS,) if params else ())
    derived = frame.with_columns(
        (pl.col(num) / pl.col(den)).alias(name)
        for name, (num, den) in _RATIOS.items()
        if all(frame.schema.get(c) == pl.Float64 for c in (num, den))
    )
    extra = coverage_failures(chain_sizes(frame), neighbours, listed)
    return _validate("option_snapshots", derived, OPTION_SNAPSHOT, checks, "instrument_name", params, extra)


def validate_instruments(frame: pl.DataFrame) -> ValidationReport:
    """Validate an INSTRUMENT frame: unique (currency, instrument_name), strike and contract size > 0, type."""
    return _validate("instruments", frame, INSTRUMENT, _INSTRUMENT_CHECKS, "instrument_name", None)


def validate_trades(frame: pl.DataFrame) -> ValidationReport:
    """Validate a trades frame; the checks run on the columns present.

    ``trade_id`` is required (it is the key); ``currency``, ``ts``, ``direction``, ``amount`` and
    ``price`` are checked when present. The key is (currency, trade_id), or trade_id alone without
    a currency column.
    """
    key = tuple(c for c in ("currency", "trade_id") if c in frame.columns)
    checks = _TRADE_CHECKS + ((_unique(key),) if "trade_id" in key else ())
    return _validate("trades", frame, {"trade_id": None}, checks, "trade_id", None)


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
    checks: tuple[_Check, ...],
    id_column: str,
    params: dict | None,
    extra: list[str] | None = None,
) -> ValidationReport:
    problems, bad = _schema_problems(frame, schema)
    usable = [c for c in checks if all(col in frame.columns and col not in bad for col in c.columns)]
    failures = ["schema: " + "; ".join(problems)] if problems else []
    ids = id_column if id_column in frame.columns and id_column not in bad else None
    failures += non_finite_failures(frame, ids, skip=tuple(_RATIOS)) + (extra or [])
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
        result = _run_suite(table, frame.select(needed), tuple(usable), ids, params)
        details.update(result)
        for r in result["results"]:
            r["check"] = usable[r["check"]].label
            if not r["success"]:
                failures.append(_failure_line(r["check"], r, params))
    return ValidationReport(table, not failures, failures, frame.height, details)


def _failure_line(label: str, r: dict, params: dict | None) -> str:
    if label == _FRESHNESS.label and params:
        label += f" ({params[_FRESH_PARAM]:%Y-%m-%dT%H:%M:%SZ})"
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


_lock = threading.Lock()


def _run_suite(
    table: str, frame: pl.DataFrame, checks: tuple[_Check, ...], id_column: str | None, params: dict | None
) -> dict:
    """Run the (cached) suite for ``checks`` over ``frame``; a JSON-serialisable summary of the results."""
    # GE validation is serialised: one shared context, and warnings.catch_warnings is process-global.
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations raised from inside GE
        ge = _ge()
        suite = _suite(table, checks)
        pdf = frame.to_pandas()
        batch = ge.batch_definitions[table].get_batch(batch_parameters={"dataframe": pdf})
        result_format: dict = {"result_format": "SUMMARY", "partial_unexpected_count": _PARTIAL}
        if id_column:
            result_format["unexpected_index_column_names"] = [id_column]
        outcome = batch.validate(suite, result_format=result_format, expectation_parameters=params or {})
        as_json = outcome.to_json_dict()
    results = []
    for r in as_json["results"]:
        config, res = r["expectation_config"], r.get("result") or {}
        entry = {
            "check": config["meta"]["check"],
            "expectation": config["type"],
            "kwargs": {k: v for k, v in config["kwargs"].items() if k != "batch_id"},
            "success": bool(r["success"]),
            "unexpected_count": res.get("unexpected_count"),
            "unexpected_percent": res.get("unexpected_percent"),
            "partial_unexpected_list": res.get("partial_unexpected_list"),
        }
        if id_column:
            entry["row_ids"] = [row.get(id_column) for row in res.get("partial_unexpected_index_list") or ()]
        if message := _exception_message(r.get("exception_info")):
            entry["exception"] = message
        results.append(entry)
    results.sort(key=lambda e: e["check"])
    return {
        "great_expectations_version": as_json["meta"].get("great_expectations_version"),
        "statistics": as_json["statistics"],
        "results": results,
    }


def _exception_message(info: dict | None) -> str | None:
    """The first exception message in a result's ``exception_info``.

    GE 1.x gives either one ``{raised_exception, exception_message, ...}`` dict or, when a metric
    failed to compute, a dict of those keyed by metric id.
    """
    if not info:
        return None
    for item in (info, *(v for v in info.values() if isinstance(v, dict))):
        if item.get("raised_exception"):
            return str(item.get("exception_message") or "error")
    return None


@dataclass(frozen=True)
class _GE:
    gx: Any
    context: Any
    batch_definitions: dict


@functools.cache
def _ge() -> _GE:
    """The process-wide GE context with one whole-dataframe batch definition per table (built once)."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas(name="gexflow")
    batch_definitions = {
        table: source.add_dataframe_asset(name=table).add_batch_definition_whole_dataframe(f"{table}_batch")
        for table in ("option_snapshots", "instruments", "trades")
    }
    return _GE(gx, context, batch_definitions)


@functools.cache
def _suite(table: str, checks: tuple[_Check, ...]) -> Any:
    """The ExpectationSuite for ``checks`` (cached per distinct set of checks, so built once per process).

    Each expectation's ``meta['check']`` is its index in ``checks``, mapping results back to labels.
    """
    gx = _ge().gx
    suite = gx.ExpectationSuite(name=f"gexflow_{table}")
    for i, check in enumerate(checks):
        kwargs = {k: _ge_value(v) for k, v in check.kwargs}
        expectation = getattr(gx.expectations, check.kind)(**kwargs, meta={"check": i})
        suite.add_expectation(expectation)
    return suite


def _ge_value(value: Any) -> Any:
    """A :class:`_Check` kwarg (hashable, so suites can be cached) as GE takes it."""
    if isinstance(value, _Param):
        return {"$PARAMETER": value.name}
    return list(value) if isinstance(value, tuple) else value


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
]
