"""Compile the compute kernels on a background thread while a command fetches and validates its snapshots.

On a first run (an empty numba cache) compiling the kernels is the longest step of ``gexflow run``, and it used to
start only when compute priced its first book, after ingest had waited for validation. :func:`start` compiles them
on a daemon thread from the start of the command instead (:func:`transforms.pricing.warm.compile_compute_kernels`);
a kernel the compute calls while the thread compiles it waits for numba's compiler lock and then uses that
compilation. With a warm cache the thread only loads the kernels. The thread changes no number, and any error in
it is left for the compute to meet again (it compiles for itself then). Once per process (a forked child starts
its own). ``pipelines.orchestration.engine`` starts it on the paths that compute.
"""

from __future__ import annotations

import os
import threading

_started: int | None = None  # the pid that started the thread


def _compile() -> None:
    try:
        from transforms.pricing.warm import compile_compute_kernels

        compile_compute_kernels()
    except BaseException:  # noqa: BLE001 -- the compute meets the same error on its own thread, with its message
        return


def start() -> threading.Thread | None:
    """Start this process's compile thread unless it was started; returns it (None when already started)."""
    global _started
    if _started == os.getpid():
        return None
    _started = os.getpid()
    thread = threading.Thread(target=_compile, name="gexflow-precompile", daemon=True)
    thread.start()
    return thread


__all__ = ["start"]
