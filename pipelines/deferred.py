"""Modules imported on first use: a library's import can execute modules that nothing in this process calls.

:func:`defer` registers module names. The first import of a registered name, from anywhere, gives a module object
whose code has not run (its parent package is imported as usual); the first read of any attribute other than the
few the import system reads runs the code in place, so a process that does use the module gets it whole and
unchanged. Importing a submodule of a deferred package does not run the package. Registering imports nothing, so
it costs nothing on a path that never imports the name. Two users:

- Great Expectations' top level imports scipy.stats and altair, which no check of ours uses
  (:data:`pipelines.validation.ge_run.DEFERRED`).
- numba's import checks for BLAS with ``import scipy.linalg.cython_blas`` (its ``np.dot`` support), which runs
  scipy.linalg's ``__init__`` first: ~0.3 s of scipy modules no kernel of ours calls (:data:`NUMBA_UNUSED`,
  registered by the CLI's entry point). The check itself still runs and passes: ``cython_blas`` is imported in
  full, beside its deferred parent. (scipy comes with Great Expectations; a name that is not installed is simply
  not found, as without the deferral.)

:func:`after_import` is the same hook the other way round: a call made right after a module's first import, in
the importing thread (:mod:`pipelines.interrupts` takes SIGINT back from polars once polars has taken it).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

NUMBA_UNUSED = ("scipy.linalg",)

# what the import system and module reprs read from a module without needing its contents
_PASS_THROUGH = frozenset({"__spec__", "__name__", "__loader__", "__path__", "__package__", "__file__", "__class__"})
_names_lock = threading.Lock()  # guards the registered names only: never held while anything is imported


class _Deferred(types.ModuleType):
    """A module whose code has not run yet: the first read of any other attribute runs it in this very module
    object (as :class:`importlib.util.LazyLoader` does, which on Python 3.11 also runs it on ``__spec__``,
    read by every later ``import`` of the name). It stays deferred until its code has run: another thread reading
    it meanwhile waits on the module's own lock (in ``__spec__.loader_state``; no lock shared between modules is
    held while one runs), and reads from the running thread itself (a circular import) see the module so far."""

    def __getattribute__(self, attr: str) -> Any:
        if attr in _PASS_THROUGH:
            return object.__getattribute__(self, attr)
        spec = object.__getattribute__(self, "__spec__")
        state = spec.loader_state
        if state["running"] == threading.get_ident():
            return object.__getattribute__(self, attr)
        with state["deferred_lock"]:
            if type(self) is _Deferred:
                state["running"] = threading.get_ident()
                try:
                    spec.loader.exec_module(self)
                finally:  # run once, as an import is: a module whose code raised stays as far as it got
                    state["running"] = None
                    object.__setattr__(self, "__class__", types.ModuleType)
        return getattr(self, attr)


class _Loader(importlib.abc.Loader):
    """Makes the module as the real loader would and leaves it deferred; the real loader runs it on first use."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        spec = module.__spec__
        spec.loader_state = {**(spec.loader_state or {}), "deferred_lock": threading.Lock(), "running": None}
        spec.loader = module.__loader__ = self.real
        module.__class__ = _Deferred


class _After(importlib.abc.Loader):
    """The real loader, then a call."""

    def __init__(self, real: importlib.abc.Loader, then: Callable[[], None]) -> None:
        self.real, self.then = real, then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__.loader = module.__loader__ = self.real
        self.real.exec_module(module)
        self.then()


def _deferring(spec: importlib.machinery.ModuleSpec) -> importlib.machinery.ModuleSpec:
    if isinstance(spec.loader, importlib.machinery.SourceFileLoader):  # not an extension module (runs as made)
        spec.loader = _Loader(spec.loader)
    return spec


class _Finder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: finds a registered name the way the path finder does, and hands its spec to what
    the name was registered with (once per name: a later import after the module was removed from ``sys.modules``
    is an ordinary one)."""

    def __init__(self) -> None:
        self.names: dict[str, Callable[[importlib.machinery.ModuleSpec], importlib.machinery.ModuleSpec]] = {}

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        with _names_lock:
            hook = self.names.pop(fullname, None)
        if hook is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec  # not installed (or a namespace package): found as without the hook
        return hook(spec)


_FINDER = _Finder()


def _register(names: tuple[str, ...], hook) -> None:
    with _names_lock:
        _FINDER.names.update((name, hook) for name in names if name not in sys.modules)
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def defer(names: tuple[str, ...]) -> None:
    """Register ``names``: the first import of each (unless it is imported already) gives a deferred module."""
    _register(names, _deferring)


def after_import(names: tuple[str, ...], then: Callable[[], None]) -> None:
    """Call ``then()`` right after the first import of each of ``names`` that is not imported already, in the
    thread that imports it (a name registered twice keeps the later registration)."""

    def hook(spec: importlib.machinery.ModuleSpec) -> importlib.machinery.ModuleSpec:
        spec.loader = _After(spec.loader, then)
        return spec

    _register(names, hook)


__all__ = ["NUMBA_UNUSED", "after_import", "defer"]
