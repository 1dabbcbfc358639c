"""How many threads the numba kernels get: the cores that other processes leave idle, measured at call time.

The profile kernel cuts its levels into one block per thread, and a call ends when its last block does. With a
core kept busy by another process, the block on that core waits for its time slices, so 2 threads can take far
longer than 1 (benchmarks/bench_threads.py; figures in benchmarks/RESULTS.md, "Kernel threads"). So before each chunk
of work :class:`KernelThreads` reads how much CPU other processes used on the cores this process may run on since
its last look (``/proc/stat`` minus this process's own CPU time) and gives the kernels only the cores left idle
(at least one). On an idle box that is every core; a fixed count (GEXFLOW_KERNEL_THREADS) turns the probe off.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager

import numba

# other processes' use of a core above this share takes the core away from the kernels
BUSY_SHARE = 0.25
SAMPLE_S = 0.05  # the shortest window measured (/proc/stat counts in 10 ms ticks)


def _allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _busy_seconds(cpus: set[int]) -> float | None:
    """CPU seconds spent not idle on ``cpus`` since boot (every process), or None without /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            v = [int(x) for x in rest.split()[:8]]  # user nice system idle iowait irq softirq steal
            ticks += sum(v) - v[3] - v[4]
    return ticks / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def threads_for(others: float, cores: int, cap: int) -> int:
    """Threads for the kernels when other processes use ``others`` cores of ``cores``: the cores they leave idle
    (a core counts as taken from a use above BUSY_SHARE of it), at least 1, at most ``cap``."""
    return max(1, min(cap, cores - max(0, math.ceil(others - BUSY_SHARE))))


def _sample(cpus: set[int]) -> tuple[float, float, float] | None:
    busy = _busy_seconds(cpus)
    return None if busy is None else (time.monotonic(), busy, _own_seconds())


# A chooser made within FIRST_WINDOW_S of this module's import (a CLI run's compute, forecast or profile) starts
# its first window at the import, not at its first choice, so it needs no SAMPLE_S wait (a longer window; this
# process's own CPU is subtracted). Later, as in a long-lived process, and in a forked child (whose own CPU time
# restarts at zero), it starts a window of its own.
FIRST_WINDOW_S = 30.0
_IMPORT_CPUS = _allowed_cpus()
_IMPORT_PID = os.getpid()
_IMPORTED = _sample(_IMPORT_CPUS)


def _first_window(cpus: set[int]) -> tuple[float, float, float] | None:
    if _IMPORTED is None or cpus != _IMPORT_CPUS or os.getpid() != _IMPORT_PID:
        return None
    return _IMPORTED if time.monotonic() - _IMPORTED[0] <= FIRST_WINDOW_S else None


class KernelThreads:
    """Chooses (and sets, :meth:`apply`) the numba thread count before each chunk of kernel work.

    ``fixed`` > 0 always gives that many (capped by numba's pool); 0 chooses from the idle cores."""

    def __init__(self, fixed: int = 0, max_threads: int | None = None):
        self.fixed = fixed
        self.max_threads = max_threads or numba.config.NUMBA_NUM_THREADS
        self.cpus = _allowed_cpus()
        self._last: tuple[float, float, float] | None = _first_window(self.cpus)
        self.last_others: float | None = None  # cores other processes used in the last window

    def choose(self) -> int:
        cap = max(1, min(self.max_threads, len(self.cpus)))
        if self.fixed > 0:
            return min(self.fixed, self.max_threads)
        if self._last is None or time.monotonic() - self._last[0] < SAMPLE_S:
            self._last = self._last or _sample(self.cpus)
            if self._last is None:
                return cap  # no /proc/stat: nothing to go by
            time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - self._last[0])))
        now = _sample(self.cpus)
        if now is None:
            return cap
        wall, busy, own = (b - a for a, b in zip(self._last, now, strict=True))
        self._last = now
        others = max(0.0, (busy - own) / wall) if wall > 0 else 0.0
        self.last_others = others
        return threads_for(others, len(self.cpus), cap)

    def apply(self) -> int:
        threads = self.choose()
        numba.set_num_threads(threads)
        return threads


@contextmanager
def chosen_threads(fixed: int = 0):
    """Run the block with the kernel threads :class:`KernelThreads` chooses once, then restore the caller's."""
    before = numba.get_num_threads()
    try:
        yield KernelThreads(fixed).apply()
    finally:
        numba.set_num_threads(before)
