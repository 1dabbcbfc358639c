"""Great Expectations in a helper process: its import (the largest fixed cost of a short run) runs on another core
while this process imports the rest, fetches and normalises.

:func:`start` launches the worker (:func:`main`, in a new interpreter with this process's ``sys.path``) once per
process; the commands that validate call it first thing (``pipelines.orchestration.engine``). The worker imports
GE, without the optional dependencies of GE's it never uses (``HIDDEN``), and builds its context
(:mod:`pipelines.validation.ge_run`), then answers requests over a pair of pipes, one at
a time: ``(table, frame as Arrow IPC bytes, checks, id_column, params)`` -> ``("ok", summary)`` or
``("error", text)``; the worker never imports polars.
:func:`run_suite` sends each validation there while this process has a worker, and runs GE in this process
(:func:`pipelines.validation.ge_run.run_suite`) otherwise. The first failure of the worker (it died, was killed,
or answered with an error) ends it: that validation and every later one run in this process, which gives the same
verdict or raises GE's own exception. The summary is the same dict either way
(tests/integration/test_ge_worker.py).

The worker's stdin, stdout and stderr are /dev/null, so nothing of GE's reaches the terminal. It exits when its
request pipe closes: at this process's exit (normal or not: the kernel closes the pipe of a killed process) or
when this process gives up on it. A forked child of this process never uses its parent's worker.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # nothing heavy at import: start() runs first thing, before the command's own imports (polars)
    import polars as pl

    from pipelines.validation.checks import Check

# What the worker hides from GE: optional dependencies of GE's that the worker never uses, so GE runs as it does
# without them installed. sqlalchemy (installed here for Prefect) backs only GE's SQL data sources; the worker
# validates pandas frames, and GE imports sqlalchemy's core at its top level when it can (~10 % of that import).
HIDDEN = ("sqlalchemy",)

_BOOT = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from pipelines.validation.ge_worker import main; main(int(sys.argv[2]), int(sys.argv[3]))"
)


class Worker:
    """The helper process of this process and its two pipes."""

    def __init__(self) -> None:
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        # the child imports what this process imports: this sys.path (a checkout on PYTHONPATH, pytest's rootdir)
        path = json.dumps([p for p in sys.path if p])
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, path, str(requests_r), str(replies_w)],
                pass_fds=(requests_r, replies_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except BaseException:
            os.close(requests_w)
            os.close(replies_r)
            raise
        finally:
            os.close(requests_r)
            os.close(replies_w)
        self.requests = os.fdopen(requests_w, "wb")
        self.replies = os.fdopen(replies_r, "rb")
        self.owner = os.getpid()
        self.answered = 0  # requests answered (ok or error)

    def call(self, request: tuple) -> tuple[str, Any]:
        pickle.dump(request, self.requests, protocol=pickle.HIGHEST_PROTOCOL)
        self.requests.flush()
        reply = pickle.load(self.replies)
        self.answered += 1
        return reply

    def close(self) -> None:
        """Close the pipes (the worker sees the end of its requests and exits); a forked child only drops them."""
        for pipe in (self.requests, self.replies):
            try:
                pipe.close()
            except OSError:
                pass
        if os.getpid() == self.owner and self.process.poll() is None:
            try:
                self.process.wait(timeout=0.05)  # reaped now if it is already on its way out
            except subprocess.TimeoutExpired:
                pass  # it ends on its own at EOF (or with this process, whose children init reaps)


_worker: Worker | None = None
_lock = threading.Lock()  # one request at a time on the pipes


def run_suite(
    table: str, frame: pl.DataFrame, checks: tuple[Check, ...], id_column: str | None, params: dict | None
) -> dict:
    """:func:`pipelines.validation.ge_run.run_suite`, in this process's worker while it has one, else here. Either
    way GE gets ``frame`` through its Arrow IPC stream (:func:`pipelines.validation.ge_run.pandas_frame`)."""
    ipc = frame_ipc(frame)
    with _lock:
        worker = current()
        if worker is not None:
            try:
                status, reply = worker.call((table, ipc, checks, id_column, params))
            except (OSError, EOFError, ValueError, pickle.PickleError):
                status, reply = "gone", None
            except BaseException:  # e.g. Ctrl-C mid-request: the pipes may hold half a message, never reuse them
                stop()
                raise
            if status == "ok":
                return reply
            stop()  # from now on every validation runs here, this one first
    from pipelines.validation import ge_run

    return ge_run.run_suite(table, ipc, checks, id_column, params)


def frame_ipc(frame: pl.DataFrame) -> bytes:
    """``frame`` as the Arrow IPC stream GE reads (:func:`pipelines.validation.ge_run.pandas_frame`); the oldest
    compatibility level writes the Arrow types polars' ``to_pandas`` converts from (large strings, not views)."""
    import polars as pl  # imported already by the caller, which made ``frame``

    return frame.write_ipc_stream(None, compat_level=pl.CompatLevel.oldest()).getvalue()


def start() -> None:
    """Start this process's worker unless one runs (or GE is already imported here: nothing to hide then)."""
    global _worker
    if _worker is not None and _worker.owner == os.getpid():
        return
    if "great_expectations" in sys.modules:
        return
    try:
        _worker = Worker()
    except OSError:
        _worker = None  # no process to be had: validations run here
        return
    atexit.register(stop)


def current() -> Worker | None:
    """This process's running worker, if any (never the parent's, in a forked child)."""
    worker = _worker
    if worker is None or worker.owner != os.getpid():
        return None
    return worker


def stop() -> None:
    """End this process's worker (validations run in this process from now on)."""
    global _worker
    worker, _worker = _worker, None
    if worker is not None:
        worker.close()


def main(requests_fd: int, replies_fd: int) -> None:
    """The worker: GE imported and its context built, then one reply per request until the requests end."""
    try:
        _serve(requests_fd, replies_fd)
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C reaches the whole process group; the caller is gone
        pass


def _serve(requests_fd: int, replies_fd: int) -> None:
    for name in HIDDEN:  # a None entry makes ``import name`` raise ImportError, which GE takes as "not installed"
        sys.modules.setdefault(name, None)
    from pipelines.validation import ge_run

    requests, replies = os.fdopen(requests_fd, "rb"), os.fdopen(replies_fd, "wb")
    ge_run.warm_up()  # before the first request arrives
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", ge_run.run_suite(*request))
        except Exception as exc:  # noqa: BLE001 - the caller re-runs it in its own process and sees the real one
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()
