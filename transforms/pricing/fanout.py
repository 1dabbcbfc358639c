"""Runs a serial, GIL-free numba kernel over contiguous ranges of independent work items on several threads.

Why not ``@njit(parallel=True)``: numba compiles a parallel kernel through its parfor passes and a generated
gufunc, which on these 2 cores cost ~1.5-2 s of compile per kernel on a first run (four kernels: ~6.6 s of a
~15 s first ``gexflow run``; benchmarks/RESULTS.md, "First run"). A kernel that loops over a range of items
and releases the GIL (``nogil=True``) compiles in a fraction of that, and this module runs one range per
thread. The work is split exactly as the ``prange`` loops split it (contiguous ranges, one per thread), and
every item writes only its own outputs, so results do not depend on the split (tested bit for bit).

The thread count is numba's (:func:`numba.get_num_threads`: ``NUMBA_NUM_THREADS``, or what
``numba.set_num_threads`` set on the calling thread), so the callers' thread control is unchanged. The
calling thread runs the first range itself; with one thread or one item nothing is handed to the pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numba

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = max(1, numba.config.NUMBA_NUM_THREADS - 1)  # the calling thread runs one range itself
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gexflow-kernel")
        return _pool


def spans(n_items: int, parts: int) -> list[tuple[int, int]]:
    """[0, n_items) cut into ``parts`` contiguous, non-empty ranges of near-equal size (fewer when n_items is
    smaller): the split numba's prange makes."""
    parts = max(1, min(parts, n_items))
    return [(k * n_items // parts, (k + 1) * n_items // parts) for k in range(parts)] if n_items else []


def fan_out(kernel: Callable, n_items: int, *args) -> None:
    """``kernel(lo, hi, *args)`` for contiguous ranges covering [0, n_items), one per thread, the first on the
    calling thread; returns when every range is done (re-raising the first error). ``kernel`` must be compiled
    with ``nogil=True`` and write only the outputs of items lo..hi-1."""
    ranges = spans(n_items, numba.get_num_threads())
    if len(ranges) <= 1:
        if ranges:
            kernel(0, n_items, *args)
        return
    pool = _executor()
    futures = [pool.submit(kernel, lo, hi, *args) for lo, hi in ranges[1:]]
    try:
        kernel(*ranges[0], *args)
    finally:
        wait(futures)  # never leave a thread writing into outputs the caller is about to read or drop
    for future in futures:
        future.result()


__all__ = ["fan_out", "spans"]
