"""Ctrl-C stays Python's: one KeyboardInterrupt per SIGINT, and an ignored SIGINT stays ignored.

polars (since 1.2x) installs a SIGINT handler of its own when it is imported (Rust's signal-hook, in front of
Python's, which it calls on), so that a Ctrl-C cancels a running query. polars then raises a KeyboardInterrupt of
its own, and Python's handler raises a second one at the next bytecode: typically inside the ``except
KeyboardInterrupt`` that is printing "gexflow: interrupted", which then ends in a traceback (pola-rs/polars#23988).
Its handler also raises where Python's is ``SIG_IGN`` (a job started in the background by a shell script), so a
Ctrl-C meant for the script stopped a backfill that should have ignored it.

:func:`keep_sigint_with_python` gives SIGINT back to Python once polars is imported: Python installs its own
handler again (``signal.signal`` with the Python-level handler it already has), which replaces polars' at the OS
level. A Ctrl-C then raises exactly one KeyboardInterrupt, at the first bytecode after the running polars call
returns (a query runs to its end first; ours work on one batch or one snapshot at a time), and ``SIG_IGN`` means
ignored again. tests/integration/test_ctrl_c.py sends real signals to real processes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import signal
import sys
import threading
import types

LIBRARIES = ("polars",)  # the libraries that take SIGINT over when imported


def keep_sigint_with_python() -> None:
    """Give SIGINT back to Python now if a library of :data:`LIBRARIES` is imported, and when one is imported later.
    Only the main thread can set a signal handler: called from another thread, or where a library is imported on
    another thread, it does nothing (the CLI imports polars on its main thread)."""
    if any(name in sys.modules for name in LIBRARIES):
        _reclaim()
    with _lock:
        _FINDER.names.update(name for name in LIBRARIES if name not in sys.modules)
        if _FINDER.names and _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def _reclaim() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGINT)
    if handler is not None:  # None: installed outside Python, which Python cannot set back
        signal.signal(signal.SIGINT, handler)


class _Loader(importlib.abc.Loader):
    """The library's own loader, and :func:`_reclaim` once its module has run."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__.loader = module.__loader__ = self.real
        self.real.exec_module(module)
        _reclaim()


class _Finder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path`` while a name of :data:`LIBRARIES` is still to be imported (once per name)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        with _lock:
            if fullname not in self.names:
                return None
            self.names.discard(fullname)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


_lock = threading.Lock()  # guards the names only: never held while anything is imported
_FINDER = _Finder()

__all__ = ["LIBRARIES", "keep_sigint_with_python"]
