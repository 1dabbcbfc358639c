"""Runs a serial, GIL-free numba kernel over contiguous ranges of independent work items on several threads.

Why not ``@njit(parallel=True)`` everywhere: numba compiles a parallel kernel through its parfor passes and a
generated gufunc, which on these 2 cores cost ~1.5-2 s of compile per kernel on a first run (benchmarks/RESULTS.md,
"First run"). A kernel that loops over a range of items and releases the GIL (``nogil=True``) compiles in a
fraction of that, and this module runs one range per thread. The work is split as ``prange`` split it
(contiguous ranges, one per thread), and every item writes only its own outputs, so results do not depend on
the split (tested bit for bit). The batched task kernel and the general kernel run here; the fused sticky-strike
kernel keeps ``parallel=True``: a single mid-size profile (1,000 options x 400 levels, ~0.35 ms) is ~0.1 ms
faster on numba's spinning OpenMP threads than with a pool thread woken for it.

The thread count is numba's (:func:`numba.get_num_threads`: ``NUMBA_NUM_THREADS``, or what
``numba.set_num_threads`` set on the calling thread), so the callers' thread control is unchanged. The
calling thread runs the first range itself; with one thread or one item nothing is handed to the pool.
Handing a range to a pool thread costs ~85 us on these 2 cores (waking a blocked thread and waiting for it),
about what one thread needs for 40k option x level evaluations, so a call says how much work it is (``work``,
evaluations) and gets at most one thread per ``MIN_WORK`` of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numba

MIN_WORK = 100_000  # evaluations per thread below which a thread costs more than it saves
_pool: ThreadPoolExecutor | None = None
_workers: list[threading.Thread] = []  # the pool's threads, to tell a pool that a fork left without threads
_pool_lock = threading.Lock()


def _register_worker() -> None:
    _workers.append(threading.current_thread())


def _executor() -> ThreadPoolExecutor:
    """The pool, made on first use, and made again in a forked child: fork copies none of the parent's threads
    (``threading`` marks them stopped), so a child that handed work to the parent's pool would wait forever."""
    global _pool
    with _pool_lock:
        if _pool is not None and _workers and not any(t.is_alive() for t in _workers):
            _pool = None
            _workers.clear()
        if _pool is None:
            workers = max(1, numba.config.NUMBA_NUM_THREADS - 1)  # the calling thread runs one range itself
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="gexflow-kernel", initializer=_register_worker)
        return _pool


def spans(n_items: int, parts: int) -> list[tuple[int, int]]:
    """[0, n_items) cut into ``parts`` contiguous, non-empty ranges of near-equal size (fewer when n_items is
    smaller): the split numba's prange makes."""
    parts = max(1, min(parts, n_items))
    return [(k * n_items // parts, (k + 1) * n_items // parts) for k in range(parts)] if n_items else []


def fan_out(
    kernel: Callable, n_items: int, *args, work: int | None = None, scratch: Callable[[], tuple] | None = None
) -> None:
    """``kernel(lo, hi, *args)`` for contiguous ranges covering [0, n_items), one per thread (at most one per
    ``MIN_WORK`` of ``work`` when given), the first on the calling thread; returns when every range is done
    (re-raising the first error). ``kernel`` must be compiled with ``nogil=True`` and write only the outputs
    of items lo..hi-1. With ``scratch``, each range gets working arrays of its own: ``kernel(lo, hi, *args,
    *scratch())``."""
    threads = numba.get_num_threads()
    if work is not None:
        threads = min(threads, max(1, work // MIN_WORK))
    ranges = spans(n_items, threads)
    extra = scratch or tuple
    if len(ranges) <= 1:
        if ranges:
            kernel(0, n_items, *args, *extra())
        return
    pool = _executor()
    futures = [pool.submit(kernel, lo, hi, *args, *extra()) for lo, hi in ranges[1:]]
    try:
        kernel(*ranges[0], *args, *extra())
    finally:
        wait(futures)  # never leave a thread writing into outputs the caller is about to read or drop
    for future in futures:
        future.result()


__all__ = ["MIN_WORK", "fan_out", "spans"]
