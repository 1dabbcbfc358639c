"""Many sticky-strike dealer profiles from one set of option arrays: the fused kernel of ``transforms.pricing.kernels``
run over a batch of (book, as-of time, expiry window) tasks instead of one book per Python call.

Symbols as in ``transforms.pricing.kernels``. The options of many books are concatenated; task t names a slice
[lo_t, hi_t) of them (one book), an as-of time at_t (epoch ms) and an expiry window (after_t, until_t], and
yields, at the levels S'_j = m_j S0,

    gex_usd[t, j]     = sum_i w_i phi(d1_i) F_i m_j 0.01 / (sigma_i sqrt(tau_i))
    delta_coins[t, j] = sum_i (w_i N(d1_i) - p_i)

over the live options i of the slice with after_t < expiration_i <= until_t, tau_i = (expiration_i - at_t) /
365 days: ``profile_at_levels`` of exactly those options (in slice order) at those taus. The kernel math is
not repeated here: the per-option terms are the ones of ``gamma_delta_profile`` and the per-level sums are
its ``_accumulate_block`` (in input order, the same for any split of the levels into blocks), so every task
equals the one-book call bit for bit (tested). :meth:`OptionBatch.profiles` runs the tasks on the kernel
threads (a contiguous range of tasks per thread, :func:`run_tasks`), replacing thousands of small parallel
calls -- each waking the threads -- by one; :meth:`OptionBatch.profile` runs one task on the calling thread
(root finding, one level at a time).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from transforms.pricing.fanout import fan_out
from transforms.pricing.gauss_terms import (
    _FAST_CONSTANTS,
    _UNSCALE,
    FASTMATH,
    INV_SQRT_2PI,
    _accumulate_block,
    _accumulate_pair,
    writable,
)
from transforms.pricing.greeks import MS_PER_YEAR

ALL_EXPIRIES = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)  # an expiry window that keeps every option


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def _terms_of(f, k, sg, t, w, p):
    """gamma_delta_profile's per-option terms (live, ha, hb, g, hw, hwm) of one option."""
    if t > 0.0 and sg > 0.0 and f > 0.0 and k > 0.0 and (w != 0.0 or p != 0.0):
        vs = sg * math.sqrt(t)
        b = 1.0 / vs
        a = math.log(f / k) * b + 0.5 * vs
        return True, 0.5 * a, 0.5 * b, w * f * 0.01 * b * INV_SQRT_2PI, 0.5 * w, 0.5 * w - p
    return False, 0.0, 0.0, 0.0, 0.0, 0.0


def _task_kernel(pair: bool):
    """The task kernel for one value of ``pair`` (a closure constant, as in ``gauss_terms._accumulator``): without it
    the two-weighting branches are dropped, so a command that never prices two weightings in one task (only the
    forecast does) never compiles the two-weighting block loop.

    Inlined into its range loop (``inline="always"``; every call, :meth:`OptionBatch.profile`'s one task included,
    goes through :func:`_task_range`) rather than compiled as a function of its own: numba links a callee's module
    into its caller's and optimises it again there, so a separate task kernel had the block loop optimised once more
    (~12 % of a first run's compile, benchmarks/RESULTS.md). Each variant keeps a qualname of its own, as
    ``gauss_terms.njit_variant`` gives the compiled ones."""

    def task(
        ratio, out, forward, strike, sigma, expiry_ms, tau, weight, put_weight, live, lo, hi, lo2, at, after, until,
        terms, on, x, k_arr,
    ):  # fmt: skip
        """One task into ``out`` (zeroed; gex, delta and, when ``pair`` and ``lo2`` >= 0, the gex and delta of the
        weights at [lo2, lo2 + hi - lo)): gamma_delta_profile's per-option terms for the options kept, then its
        _accumulate_block over all levels (or _accumulate_pair for two weightings). tau is ``tau[i]`` when
        ``tau`` has one per option, else (expiry_ms[i] - at) / MS_PER_YEAR. ``terms``, ``on`` and ``x`` are the
        caller's scratch (:func:`_scratch`), ``k_arr`` is ``_FAST_CONSTANTS``."""
        fixed = tau.size == forward.size
        two = pair and lo2 >= 0
        n = hi - lo
        ha, hb, g, hw, hwm = terms[0][:n], terms[1][:n], terms[2][:n], terms[3][:n], terms[4][:n]
        g2, hw2, hwm2 = terms[5][:n], terms[6][:n], terms[7][:n]
        live_n = on[:n]
        for ii in range(n):
            i = lo + ii
            e = expiry_ms[i]
            if not (live[i] and e > after and e <= until):
                live_n[ii] = False
                continue
            t = tau[i] if fixed else (e - at) / MS_PER_YEAR
            live_n[ii], ha[ii], hb[ii], g[ii], hw[ii], hwm[ii] = _terms_of(
                forward[i], strike[i], sigma[i], t, weight[i], put_weight[i]
            )
            if two:
                _on, _a, _b, g2[ii], hw2[ii], hwm2[ii] = _terms_of(
                    forward[i], strike[i], sigma[i], t, weight[lo2 + ii], put_weight[lo2 + ii]
                )
        m = ratio.size
        xm = x[:m]
        for j in range(m):
            xm[j] = math.log(ratio[j])
        if two:
            _accumulate_pair(xm, out[0], out[1], out[2], out[3], ha, hb, g, hw, hwm, g2, hw2, hwm2, live_n, k_arr)
        else:
            _accumulate_block(xm, out[0], out[1], ha, hb, g, hw, hwm, live_n, k_arr)
        for j in range(m):
            out[0, j] = out[0, j] * ratio[j] * _UNSCALE
            out[2, j] = out[2, j] * ratio[j] * _UNSCALE

    task.__qualname__ = f"{task.__qualname__}_{'pair' if pair else 'one'}"
    return njit(inline="always", fastmath=FASTMATH, error_model="numpy")(task)  # never compiled on its own


_task = _task_kernel(False)
_task_pair = _task_kernel(True)

# One range loop per task kernel, each naming its kernel as a module global: a closure over a dispatcher would be
# recompiled in every process (numba's cache keys a closure by its pickled free variables, and a dispatcher's
# pickle differs from process to process).


@njit(nogil=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def _task_range(
    t0, t1, out, levels, forward, strike, sigma, expiry_ms, tau, weight, put_weight, live, lo, hi, lo2, at, after,
    until, terms, on, x, k_arr,
):  # fmt: skip
    """Tasks t0..t1-1 into ``out[t]``, each at the ascending ratios ``levels[t]`` (or ``levels[0]`` for every
    task when ``levels`` has one row)."""
    shared = levels.shape[0] == 1
    for t in range(t0, t1):
        _task(
            levels[0] if shared else levels[t], out[t], forward, strike, sigma, expiry_ms, tau, weight, put_weight,
            live, lo[t], hi[t], lo2[t], at[t], after[t], until[t], terms, on, x, k_arr,
        )  # fmt: skip


@njit(nogil=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def _task_range_pair(
    t0, t1, out, levels, forward, strike, sigma, expiry_ms, tau, weight, put_weight, live, lo, hi, lo2, at, after,
    until, terms, on, x, k_arr,
):  # fmt: skip
    """:func:`_task_range` with the two-weighting task kernel."""
    shared = levels.shape[0] == 1
    for t in range(t0, t1):
        _task_pair(
            levels[0] if shared else levels[t], out[t], forward, strike, sigma, expiry_ms, tau, weight, put_weight,
            live, lo[t], hi[t], lo2[t], at[t], after[t], until[t], terms, on, x, k_arr,
        )  # fmt: skip


def run_tasks(arrays, lo, hi, lo2, at, after, until, levels) -> np.ndarray:
    """(tasks, 4, levels) array of every task (1-D int64 task arrays) over the option ``arrays`` of an
    :class:`OptionBatch`, at the rows of ``levels`` (one shared row, or one per task), on the kernel threads
    (``transforms.pricing.fanout``; the same numbers for any split of the tasks)."""
    out = np.zeros((lo.size, 4, levels.shape[1]))
    pair = bool(np.any(lo2 >= 0))
    work = int((hi - lo).sum()) * levels.shape[1] * (2 if pair else 1)
    kernel = _task_range_pair if pair else _task_range
    width = int((hi - lo).max()) if lo.size else 0
    fan_out(
        kernel, lo.size, out, levels, *arrays, lo, hi, lo2, at, after, until,
        work=work, scratch=lambda: _scratch(width, levels.shape[1]),
    )  # fmt: skip
    return out


def _scratch(width: int, n_levels: int) -> tuple[np.ndarray, ...]:
    """The task kernel's working arrays for one range of tasks of at most ``width`` options at ``n_levels``
    levels (``terms``, ``on``, ``x``), and its constants (``k_arr``): allocated here, not in the kernel, whose
    first compile would otherwise include numba's ``np.zeros`` and ``np.empty`` (about a sixth of its compile time,
    benchmarks/RESULTS.md)."""
    return np.zeros((8, width)), np.zeros(width, dtype=np.bool_), np.zeros(n_levels), _FAST_CONSTANTS


def _f64(a) -> np.ndarray:
    return writable(a, np.float64)


def _i64(a) -> np.ndarray:
    return writable(a, np.int64)


def _levels(level_ratio) -> np.ndarray:
    ratio = _f64(level_ratio)
    if ratio.ndim != 1 or not np.all(np.isfinite(ratio)) or np.any(ratio <= 0.0):
        raise ValueError("level_ratio must be a 1-D array of positive finite numbers")
    if ratio.size > 1 and np.any(np.diff(ratio) <= 0.0):
        raise ValueError("level_ratio must be strictly increasing")
    return ratio


class OptionBatch:
    """The options of many books (1-D arrays of equal length: F, K, sigma as a decimal, expiration in epoch ms
    (int64), w, p, ``live`` = false to leave an option out). ``tau`` (years, one per option) fixes each
    option's time to expiry for every task instead of computing it from the task's as-of time (for callers
    whose taus were computed elsewhere, e.g. the greeks' tau_years). An option with a non-finite input
    contributes nothing, as in ``profile_at_levels``."""

    def __init__(self, forward, strike, sigma, expiry_ms, weight, put_weight, live, *, tau=None):
        n = np.shape(forward)[0] if np.ndim(forward) == 1 else -1
        tau = np.zeros(0) if tau is None else _f64(tau)
        self.arrays = [_f64(a) for a in (forward, strike, sigma)] + [_i64(expiry_ms), tau]
        self.arrays += [_f64(weight), _f64(put_weight), np.ascontiguousarray(live, dtype=np.bool_)]
        if any(a.shape != (n,) for i, a in enumerate(self.arrays) if i != 4) or tau.size not in (0, n):
            raise ValueError("option arrays must be 1-D and of equal length")
        ok = np.ones(n, dtype=np.bool_)
        for a in self.arrays[:7]:
            ok &= np.isfinite(a) if a.size == n else True
        self.arrays[7] = self.arrays[7] & ok
        self.size = n

    def same_options(self, lo: int, hi: int, lo2: int) -> bool:
        """Whether [lo2, lo2 + hi - lo) holds the same options as [lo, hi) (inputs, live, and which weights are
        nonzero): then one task can price both weightings (``pair_lo``)."""
        hi2 = lo2 + hi - lo
        if not (0 <= lo <= hi <= self.size and 0 <= lo2 <= hi2 <= self.size):
            return False
        f, k, s, e, tau, w, p, live = self.arrays
        same = [a[lo:hi] for a in (f, k, s, e, live)], [a[lo2:hi2] for a in (f, k, s, e, live)]
        if tau.size:
            same[0].append(tau[lo:hi])
            same[1].append(tau[lo2:hi2])
        same[0].append((w[lo:hi] != 0.0) | (p[lo:hi] != 0.0))
        same[1].append((w[lo2:hi2] != 0.0) | (p[lo2:hi2] != 0.0))
        return all(np.array_equal(a, b) for a, b in zip(*same, strict=True))

    def profiles(self, lo, hi, at_ms, after_ms, until_ms, level_ratio, *, pair_lo=None) -> tuple[np.ndarray, ...]:
        """(gex_usd, delta_coins), each tasks x levels, of every task (1-D int64 task arrays of equal length).
        With ``pair_lo`` (per task: -1, or the start of a slice with :meth:`same_options`) also the gex and
        delta of that slice's weights over the same options: (gex, delta, gex2, delta2)."""
        task = [_i64(a) for a in (lo, hi, at_ms, after_ms, until_ms)]
        pair = np.full(task[0].shape, -1, dtype=np.int64) if pair_lo is None else _i64(pair_lo)
        if any(a.ndim != 1 or a.shape != task[0].shape for a in [*task, pair]):
            raise ValueError("task arrays must be 1-D and of equal length")
        if np.any(task[0] < 0) or np.any(task[1] > self.size) or np.any(task[0] > task[1]):
            raise ValueError("task slices must lie within the option arrays")
        paired = pair >= 0
        triples = np.unique(np.stack([task[0][paired], task[1][paired], pair[paired]], axis=1), axis=0)
        for a, b, c in triples.tolist():
            if not self.same_options(a, b, c):
                raise ValueError(f"options at {c} are not those at {a}..{b}: they cannot share a task")
        out = run_tasks(self.arrays, task[0], task[1], pair, *task[2:], _levels(level_ratio)[None, :])
        return (out[:, 0], out[:, 1]) if pair_lo is None else (out[:, 0], out[:, 1], out[:, 2], out[:, 3])

    def profile(self, lo: int, hi: int, at_ms: int, level_ratio, window=ALL_EXPIRIES) -> tuple[np.ndarray, np.ndarray]:
        """(gex_usd, delta_coins) per level of one task, computed on the calling thread (the range loop over that one
        task, so no other kernel is compiled for it)."""
        if not 0 <= lo <= hi <= self.size:
            raise ValueError("task slice must lie within the option arrays")
        ratio = _levels(level_ratio)
        out = np.zeros((1, 4, ratio.size))
        task = [np.array([v], dtype=np.int64) for v in (lo, hi, -1, at_ms, window[0], window[1])]
        _task_range(0, 1, out, ratio[None, :], *self.arrays, *task, *_scratch(hi - lo, ratio.size))
        return out[0, 0], out[0, 1]


__all__ = ["ALL_EXPIRIES", "OptionBatch", "run_tasks"]
