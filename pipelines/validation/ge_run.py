"""Great Expectations behind the validation gate: one ephemeral context per process, a cached suite per set of
checks, and the results as JSON-serialisable summaries (:func:`run_suite`).

GE takes seconds to import, so it is imported on the first validation and the context, data source, assets
and suites are built once per process and reused. Its top-level import also executes modules that only
expectations and renderers the gate never uses need: scipy.stats (the KL-divergence and distributional
expectations) and altair (data-docs charts), about a third of its import time. Those two are registered as
deferred modules first (:func:`pipelines.deferred.defer`): each is executed in place the first time anything
reads one of its attributes, so every check runs exactly as before, and a process that does use them gets them
whole.
Once the context is built, the ~200k objects the import left are frozen (``gc.freeze``): no later garbage
collection walks them, nor the one at interpreter exit, which took ~0.8 s with them. GE's progress bars are
switched off in the context config, its loggers are raised to ERROR, and the warnings pandas emits from
inside GE are suppressed around the GE calls, so a CLI run stays quiet.

A batch is validated with GE's ``BOOLEAN_ONLY`` result format first: a passing batch's summary carries the
verdicts only (``unexpected_count`` and the value lists are None), which takes about half the time of
``SUMMARY``. A failing batch is validated again with ``SUMMARY``, so its quarantine report has the counts, the
first unexpected values and their row ids, as before.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from pipelines.deferred import defer
from pipelines.store.table_names import Table
from pipelines.validation.checks import Check, Param

_PARTIAL = 20  # unexpected values / row ids GE keeps per failed check (SUMMARY result format)
DEFERRED = ("scipy.stats", "altair")  # imported by GE's top level, used by none of our expectations
_lock = threading.Lock()


def run_suite(
    table: str, frame_ipc: bytes, checks: tuple[Check, ...], id_column: str | None, params: dict | None
) -> dict:
    """Run the (cached) suite for ``checks`` over a frame in this process; a JSON-serialisable summary of the
    results. The frame comes as an Arrow IPC stream (:func:`pandas_frame`), as
    :func:`pipelines.validation.ge_worker.run_suite` sends it to the worker process when there is one."""
    # GE validation is serialised: one shared context, and warnings.catch_warnings is process-global.
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations raised from inside GE
        ge = _ge()
        suite = _suite(table, checks)
        pdf = pandas_frame(frame_ipc)
        batch = ge.batch_definitions[table].get_batch(batch_parameters={"dataframe": pdf})
        # a passing batch needs only the verdicts (half the time of SUMMARY, which GE spends collecting unexpected
        # values and serialising them); a failing one is validated again for the report: counts, values, row ids
        outcome = batch.validate(
            suite, result_format={"result_format": "BOOLEAN_ONLY"}, expectation_parameters=params or {}
        )
        if not outcome.success:
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


def pandas_frame(frame_ipc: bytes) -> Any:
    """The pandas DataFrame GE validates, from a polars frame's Arrow IPC stream (``write_ipc_stream``): the
    conversion polars' own ``DataFrame.to_pandas`` makes (pyarrow's ``Table.to_pandas``, dates not as objects),
    the same dtypes and values (tests/unit/test_ge_frames.py), without importing polars here: the worker never
    does, and its start is the longest path of a short run."""
    import pyarrow.ipc  # pandas imports pyarrow already

    return pyarrow.ipc.open_stream(frame_ipc).read_all().to_pandas(date_as_object=False)


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
    """The process-wide GE context with one whole-dataframe batch definition per table (built once).

    The cyclic garbage collector is paused while GE imports and builds it: the import creates ~200k objects
    (pydantic model classes), and collections triggered along the way walk them all again and again (~0.3 s
    of a ~1.5 s import); nothing of it is garbage, and it is frozen (below) when done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_ge()
    finally:
        if was_enabled:
            gc.enable()


def _build_ge() -> _GE:
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    defer(DEFERRED)
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
        for table in (Table.OPTION_SNAPSHOTS, Table.INSTRUMENTS, Table.TRADES)
    }
    # GE's ~200k long-lived objects (modules, classes, the context) move to the permanent generation: later
    # collections, and the one at interpreter exit (~0.8 s with them), no longer walk them
    gc.freeze()
    return _GE(gx, context, batch_definitions)


@functools.cache
def _suite(table: str, checks: tuple[Check, ...]) -> Any:
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
    """A :class:`Check` kwarg (hashable, so suites can be cached) as GE takes it."""
    if isinstance(value, Param):
        return {"$PARAMETER": value.name}
    return list(value) if isinstance(value, tuple) else value


def warm_up() -> None:
    """Import GE and build its context now (e.g. before forking workers), not on the first validation."""
    _ge()
