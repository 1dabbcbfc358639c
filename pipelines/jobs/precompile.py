"""Compile the compute kernels on a background thread while a command fetches and validates its snapshots.

On a first run (an empty numba cache) compiling the kernels is the longest step of ``gexflow run``, and it used to
start only when compute priced its first book, after ingest had waited for validation. :func:`start` compiles them
on a daemon thread from the start of the command instead (:func:`transforms.pricing.warm.compile_compute_kernels`);
a kernel the compute calls while the thread compiles it waits for numba's compiler lock and then uses that
compilation. With a warm cache the thread only loads the kernels. The thread changes no number, and any error in
it is left for the compute to meet again (it compiles for itself then). Once per process (a forked child starts
its own). ``pipelines.orchestration.engine`` starts it on the paths that compute.

A fork waits for the thread to finish first: fork copies numba's compiler lock as the thread holds it, but not the
thread, so a child that compiled would wait for that lock forever (tests/integration/test_precompile_fork.py).
``subprocess`` does not fork this way (its child runs no Python before exec) and never waits.
"""

from __future__ import annotations

import os
import threading

FORK_WAIT_S = 300.0  # the longest a fork waits for the compile (it takes seconds; a hung one must not hang forks)

_started: int | None = None  # the pid that started the thread
_thread: threading.Thread | None = None


def _compile(what_ifs: bool) -> None:
    try:
        from transforms.pricing.warm import compile_compute_kernels

        compile_compute_kernels(what_ifs=what_ifs)
    except BaseException:  # noqa: BLE001 -- the compute meets the same error on its own thread, with its message
        return


def start(*, what_ifs: bool = False) -> threading.Thread | None:
    """Start this process's compile thread unless it was started; returns it (None when already started).
    ``what_ifs``: the compute stores the what-if tables, so the thread also compiles the general kernel."""
    global _started, _thread
    if _started == os.getpid():
        return None
    if _started is None:
        os.register_at_fork(before=_finish_before_fork)
    _started = os.getpid()
    _thread = threading.Thread(target=_compile, args=(what_ifs,), name="gexflow-precompile", daemon=True)
    _thread.start()
    return _thread


def _finish_before_fork() -> None:
    """Before this process forks: let its compile thread end, so the child's copy of numba's lock is free."""
    thread = _thread
    if thread is not None and _started == os.getpid() and thread is not threading.current_thread():
        thread.join(FORK_WAIT_S)


__all__ = ["start"]
