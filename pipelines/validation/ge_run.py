"""Great Expectations behind the validation gate: one ephemeral context per process, a cached suite per set of
checks, and the results as JSON-serialisable summaries (:func:`run_suite`).

GE takes seconds to import, so it is imported on the first validation and the context, data source, assets
and suites are built once per process and reused. Its top-level import also executes modules that only
expectations and renderers the gate never uses need: scipy.stats (the KL-divergence and distributional
expectations) and altair (data-docs charts), about a third of its import time. Those two are registered as
deferred modules first (:func:`defer`): each is executed in place the first time anything reads one of
its attributes, so every check runs exactly as before, and a process that does use them gets them whole.
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
import importlib
import importlib.util
import logging
import sys
import threading
import types
import warnings
from dataclasses import dataclass
from typing import Any

import polars as pl

from pipelines.store.table_names import Table
from pipelines.validation.checks import Check, Param

_PARTIAL = 20  # unexpected values / row ids GE keeps per failed check (SUMMARY result format)
DEFERRED = ("scipy.stats", "altair")  # imported by GE's top level, used by none of our expectations
# what the import system and module reprs read from a module without needing its contents
_PASS_THROUGH = frozenset({"__spec__", "__name__", "__loader__", "__path__", "__package__", "__file__", "__class__"})
_defer_lock = threading.RLock()


class _Deferred(types.ModuleType):
    """A module whose code has not run yet: the first read of any other attribute runs it in this very module
    object (as :class:`importlib.util.LazyLoader` does, which on Python 3.11 also runs it on ``__spec__``,
    read by every later ``import`` of the name)."""

    def __getattribute__(self, attr: str) -> Any:
        if attr in _PASS_THROUGH:
            return object.__getattribute__(self, attr)
        with _defer_lock:
            if type(self) is _Deferred:
                object.__setattr__(self, "__class__", types.ModuleType)
                spec = object.__getattribute__(self, "__spec__")
                spec.loader.exec_module(self)
        return getattr(self, attr)


def defer(names: tuple[str, ...]) -> None:
    """Put each of ``names`` that is installed and not imported yet into ``sys.modules`` as a deferred module:
    importing it gives that module, whose code runs on first use."""
    with _defer_lock:
        for name in names:
            if name in sys.modules:
                continue
            try:
                spec = importlib.util.find_spec(name)  # imports the parent package of a dotted name
            except ModuleNotFoundError:
                continue
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            module.__class__ = _Deferred
            sys.modules[name] = module
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)


_lock = threading.Lock()


def run_suite(
    table: str, frame: pl.DataFrame, checks: tuple[Check, ...], id_column: str | None, params: dict | None
) -> dict:
    """Run the (cached) suite for ``checks`` over ``frame`` in this process; a JSON-serialisable summary of the
    results (:func:`pipelines.validation.ge_worker.run_suite` sends it to the worker process when there is one)."""
    # GE validation is serialised: one shared context, and warnings.catch_warnings is process-global.
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations raised from inside GE
        ge = _ge()
        suite = _suite(table, checks)
        pdf = frame.to_pandas()
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
