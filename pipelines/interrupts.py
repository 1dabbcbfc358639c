"""Ctrl-C: one KeyboardInterrupt per SIGINT, raised only where it is safe to raise one, and an ignored SIGINT
stays ignored. Three ways a Ctrl-C went wrong, each seen with real signals (tests/integration/test_ctrl_c.py):

- **polars takes SIGINT over when imported** (Rust's signal-hook, in front of Python's handler, which it calls on),
  so that a Ctrl-C cancels a running query. polars then raises a KeyboardInterrupt of its own and Python's handler a
  second one at the next bytecode: typically inside the ``except KeyboardInterrupt`` that is printing "gexflow:
  interrupted", which then ends in a traceback (pola-rs/polars#23988). Its handler also raises where Python's is
  ``SIG_IGN`` (a job started in the background by a shell script). After polars is imported, Python installs its own
  handler again (an import hook, :func:`pipelines.deferred.after_import`), which replaces polars' at the OS level: a
  polars query then runs to its end before the interrupt is seen (ours work on one batch or one snapshot at a time).
- **A KeyboardInterrupt inside a callback from native code.** polars' Rust calls Python (its dtype classes, say)
  and unwraps the result: a KeyboardInterrupt raised there became a Rust panic, a backtrace on stderr and
  ``PanicException``; numba's C dispatcher turns one raised in its compiler into ``SystemError``.
- **A KeyboardInterrupt inside the import system's own code**, between a lock's acquire and release: with this
  handler before it deferred there too, one of 8 ``gexflow run``s deadlocked (the main thread waiting on a module
  lock, the kernel-compile thread on the import system's global lock).

So the handler (:func:`_on_sigint`) raises at once only when the innermost Python frame is neither in a package
of :data:`CALLED_BACK` nor the import system's. Otherwise it raises at the next instruction of the nearest frame
out from there that is (our code, once the native call returns to it), or at the end of :data:`GRACE_S` where
the main thread then is (as Python's own handler would), whichever comes first.

:func:`handle_ctrl_c` installs all this where Python's default handler is in force, on the main thread only (a
signal handler can be set nowhere else); a handler someone else installed (Prefect's runner in ``gexflow serve``)
and ``SIG_IGN`` are left as they are, and given back to Python once polars is imported.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import types

from pipelines.deferred import after_import

LIBRARIES = ("polars",)  # the libraries that take SIGINT over when imported
# packages whose Python code their native code calls (and unwraps the result of): no KeyboardInterrupt is raised
# while one of their frames is the innermost
CALLED_BACK = ("polars", "pyarrow", "numba", "llvmlite", "duckdb")
GRACE_S = 2.0  # the longest a Ctrl-C waits for a safe frame; then it is raised where the main thread is


class _Deferral:
    """The Ctrl-C being deferred. Handlers run on the main thread only; ``lock`` orders them against the grace
    timer's thread."""

    since: float | None = None  # monotonic time of the Ctrl-C, while one is deferred
    frame: types.FrameType | None = None  # the frame whose next instruction raises it
    timer: threading.Timer | None = None  # re-sends SIGINT at the end of the grace period
    raised = False  # a KeyboardInterrupt was raised since handle_ctrl_c
    resent = False  # the grace timer sent SIGINT and no handler has run for it yet
    lock = threading.RLock()  # between the grace timer's send and the end of a deferral (reentrant: main thread)


def handle_ctrl_c() -> None:
    """Install :func:`_on_sigint` where Python's default SIGINT handler is in force, give SIGINT back to Python now
    if polars is imported, and when it is imported later. Does nothing off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    _Deferral.raised = False
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)  # also takes SIGINT back from polars at the OS level
    elif any(name in sys.modules for name in LIBRARIES):
        _reclaim()
    after_import(LIBRARIES, _reclaim)


def _on_sigint(signum: int, frame: types.FrameType | None) -> None:
    """Python's ``default_int_handler``, deferred while the innermost frame is unsafe (:func:`_unsafe`) to the next
    instruction of the nearest safe frame out from it (a trace function on that frame alone, as pdb's
    ``set_trace`` sets one), or to the end of :data:`GRACE_S`, whichever comes first."""
    now = time.monotonic()
    with _Deferral.lock:
        if _Deferral.resent:
            _Deferral.resent = False
            if _Deferral.since is None:  # sent just as the deferral ended: that Ctrl-C has been raised already
                return
    if _Deferral.since is None:
        _Deferral.since = now
    if frame is None or not _unsafe(frame) or now - _Deferral.since >= GRACE_S:
        _interrupt()
    if _Deferral.frame is None:
        safe = frame
        while safe is not None and _unsafe(safe):
            safe = safe.f_back
        if safe is not None and sys.gettrace() is None:  # never displace a debugger's or coverage's tracer
            _Deferral.frame = safe
            safe.f_trace_opcodes = True
            safe.f_trace = _trace_safe_frame
            sys.settrace(_trace_no_new_frame)  # turns tracing on in this thread; no frame called from now on
    if _Deferral.timer is None:
        _Deferral.timer = threading.Timer(GRACE_S - (now - _Deferral.since), _resend, (threading.main_thread().ident,))
        _Deferral.timer.daemon = True
        _Deferral.timer.start()


def _trace_no_new_frame(frame, event, arg):
    return None


def _trace_safe_frame(frame, event, arg):
    if event in ("opcode", "line"):
        _interrupt()
    return _trace_safe_frame


def _interrupt() -> None:
    """End the deferral and raise the KeyboardInterrupt here."""
    if _Deferral.frame is not None:
        sys.settrace(None)
        _Deferral.frame.f_trace = None
        _Deferral.frame.f_trace_opcodes = False
    with _Deferral.lock:
        if _Deferral.timer is not None:
            _Deferral.timer.cancel()
        _Deferral.since = _Deferral.frame = _Deferral.timer = None
        _Deferral.raised = True
    raise KeyboardInterrupt


def ctrl_c_raised() -> bool:
    """Whether :func:`_on_sigint` raised a KeyboardInterrupt since :func:`handle_ctrl_c`. A library may catch one
    and raise its own error instead (DuckDB: ``RuntimeError: Query interrupted``); the CLI then still knows the
    run was interrupted."""
    return _Deferral.raised


def _resend(main_ident: int) -> None:
    """The grace period is over: SIGINT to the main thread again (a real signal, which also interrupts a blocking
    system call), unless the deferral has ended meanwhile."""
    with _Deferral.lock:
        if _Deferral.since is None:
            return
        _Deferral.resent = True
        try:
            signal.pthread_kill(main_ident, signal.SIGINT)
        except (OSError, ProcessLookupError):  # the process is exiting
            _Deferral.resent = False


def _unsafe(frame: types.FrameType) -> bool:
    """Whether ``frame`` is the import system's own code or Python code of a :data:`CALLED_BACK` package."""
    filename = frame.f_code.co_filename
    return filename.startswith("<frozen importlib.") or _package_of(filename) in CALLED_BACK


def _package_of(filename: str) -> str | None:
    for root in _site_roots():
        if filename.startswith(root):
            return filename[len(root) :].split(os.sep, 1)[0]
    return None


def _site_roots() -> tuple[str, ...]:
    """The directories the :data:`CALLED_BACK` packages are installed in, each ending in a separator."""
    roots = set()
    for name in CALLED_BACK:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            roots.add(os.path.dirname(os.path.dirname(module.__file__)) + os.sep)
    return tuple(roots)


def _reclaim() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGINT)
    if handler is not None:  # None: installed outside Python, which Python cannot set back
        signal.signal(signal.SIGINT, handler)


__all__ = ["CALLED_BACK", "GRACE_S", "LIBRARIES", "ctrl_c_raised", "handle_ctrl_c"]
