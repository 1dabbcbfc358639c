"""The kernel threads of transforms.pricing.fanout: every item once, errors surface, results independent of threads."""

from __future__ import annotations

import os
import time

import numba
import numpy as np
import pytest
from numba import njit

from transforms.pricing import kernels
from transforms.pricing.fanout import MIN_WORK, fan_out, spans
from transforms.pricing.kernel_batch import OptionBatch


@njit(nogil=True)
def _count(lo, hi, out, bad):
    for i in range(lo, hi):
        if i == bad:
            raise ValueError("bad item")
        out[i] += 1.0


@njit(nogil=True)
def _mark_start(lo, hi, out):
    for i in range(lo, hi):
        out[i] = lo


@njit(nogil=True)
def _count_in_scratch(lo, hi, out, seen):
    for i in range(lo, hi):
        seen[0] += 1.0
        out[i] = seen[0]


@pytest.fixture
def two_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2")
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    yield
    numba.set_num_threads(before)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 64])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_spans_cover_every_item_once_in_order(n, parts):
    got = spans(n, parts)
    assert [i for lo, hi in got for i in range(lo, hi)] == list(range(n))
    assert all(hi > lo for lo, hi in got) and len(got) == min(parts, n)


def test_every_item_runs_once_on_two_threads(two_threads):
    out = np.zeros(1001)
    fan_out(_count, out.size, out, -1)
    assert np.array_equal(out, np.ones(out.size))


def test_small_work_stays_on_the_calling_thread(two_threads):
    out = np.full(10, -1.0)
    fan_out(_mark_start, out.size, out, work=MIN_WORK)  # one thread's worth
    assert np.array_equal(out, np.zeros(10))
    fan_out(_mark_start, out.size, out, work=2 * MIN_WORK)
    assert np.array_equal(out, [0.0] * 5 + [5.0] * 5)


def test_each_range_gets_scratch_of_its_own(two_threads):
    made = []

    def scratch():
        made.append(np.zeros(1))
        return (made[-1],)

    out = np.zeros(10)
    fan_out(_count_in_scratch, out.size, out, work=2 * MIN_WORK, scratch=scratch)
    assert np.array_equal(out, [1.0, 2.0, 3.0, 4.0, 5.0] * 2)  # a shared counter would run on to 10
    assert len(made) == 2 and [float(s[0]) for s in made] == [5.0, 5.0]


@pytest.mark.parametrize("bad", [3, 900])  # in the calling thread's range, in the pool's
def test_an_error_in_any_range_reaches_the_caller(two_threads, bad):
    out = np.zeros(1000)
    with pytest.raises(ValueError, match="bad item"):
        fan_out(_count, out.size, out, bad)


def test_profiles_are_the_same_numbers_on_one_thread_and_two(two_threads):
    rng = np.random.default_rng(5)
    n, levels = 1500, 201
    assert n * levels >= 2 * MIN_WORK  # enough work for two threads
    f, k = rng.uniform(50e3, 70e3, n), rng.uniform(20e3, 150e3, n)
    s, t = rng.uniform(0.3, 1.2, n), rng.uniform(0.001, 1.0, n)
    w = rng.normal(0, 5, n)
    p = np.where(rng.random(n) < 0.5, w, 0.0)
    ratio = np.linspace(0.8, 1.2, levels)
    grid = s[:, None] * np.linspace(0.9, 1.1, levels)[None, :]
    batch = OptionBatch(np.tile(f, 3), np.tile(k, 3), np.tile(s, 3), np.full(3 * n, 2_000_000_000_000),
                        np.tile(w, 3), np.tile(p, 3), np.ones(3 * n, dtype=np.bool_))  # fmt: skip
    lo = np.arange(3) * n
    tasks = (lo, lo + n, np.full(3, 1_990_000_000_000), np.full(3, -(2**62)), np.full(3, 2**62))

    def everything():
        return [
            *kernels.profile_at_levels(f, k, s, t, w, p, ratio),
            *kernels.profile_at_levels(f, k, s, t, w, p, ratio, sigma_grid=grid),
            *batch.profiles(*tasks, ratio),
        ]

    two = everything()
    numba.set_num_threads(1)
    one = everything()
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_forked_child_gets_a_pool_of_its_own(two_threads):
    """The pool's threads do not survive fork: a child that fanned out into the parent's pool would wait forever."""
    out = np.zeros(1000)
    fan_out(_count, out.size, out, -1)  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # the child: fan out again, exit 0 if every item ran
        child = np.zeros(1000)
        fan_out(_count, child.size, child, -1)
        os._exit(0 if np.array_equal(child, np.ones(1000)) else 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child hung in fan_out")
