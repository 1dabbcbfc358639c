"""Kernel threads: chosen from the cores other processes leave idle (pipelines/jobs/threads.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numba
import pytest

from pipelines.config import ConfigError, load_settings
from pipelines.jobs.threads import KernelThreads, threads_for

BUSY = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) != 2, reason="the policy is shown on a 2-core box")
def test_a_core_kept_busy_by_another_process_leaves_the_kernels_one_thread():
    probe = KernelThreads()
    busy = subprocess.Popen([sys.executable, "-c", BUSY, str(sorted(os.sched_getaffinity(0))[-1])])
    try:
        time.sleep(0.3)
        probe.choose()
        time.sleep(0.3)
        assert probe.apply() == 1 and numba.get_num_threads() == 1
        assert probe.last_others >= 0.75
    finally:
        busy.kill()
        busy.wait()
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_a_fixed_count_skips_the_probe_and_is_capped_by_numbas_pool():
    assert KernelThreads(1).choose() == 1
    assert KernelThreads(64).choose() == numba.config.NUMBA_NUM_THREADS


def test_kernel_threads_setting_comes_from_the_environment_and_is_checked():
    assert load_settings(env={"GEXFLOW_KERNEL_THREADS": "1"}).kernel_threads == 1
    assert load_settings(env={}).kernel_threads == 0  # auto
    with pytest.raises(ConfigError, match="kernel_threads must be a number"):
        load_settings(env={"GEXFLOW_KERNEL_THREADS": "two"})


def test_compute_leaves_the_callers_thread_count_as_it_was(tmp_path, fast_env, capsys):
    from pipelines.cli.app import main
    from pipelines.jobs.compute import compute_cycle

    assert main(["ingest", "--source", "sample", "--currency", "BTC", "--data-dir", str(tmp_path)]) == 0
    numba.set_num_threads(2)
    assert len(compute_cycle(tmp_path, ["BTC"], kernel_threads=1).snapshots) == 2
    assert numba.get_num_threads() == 2


@pytest.mark.parametrize(
    ("others", "cores", "cap", "threads"),
    [
        (0.0, 2, 2, 2),  # idle box: every core
        (0.2, 2, 2, 2),  # a little background noise does not count
        (0.3, 2, 2, 1),
        (1.0, 2, 2, 1),  # one core busy: one thread
        (3.5, 2, 2, 1),  # never fewer than one
        (1.0, 8, 8, 7),
        (0.0, 8, 4, 4),  # numba's pool caps it
    ],
)
def test_threads_are_the_cores_other_processes_leave_idle(others, cores, cap, threads):
    assert threads_for(others, cores, cap) == threads


def test_a_chooser_made_soon_after_import_needs_no_wait_and_a_late_one_waits(monkeypatch):
    from pipelines.jobs import threads

    def no_sleep(seconds):
        raise AssertionError(f"slept {seconds} s")

    monkeypatch.setattr(threads.time, "sleep", no_sleep)
    now = threads._sample(threads._IMPORT_CPUS)
    monkeypatch.setattr(threads, "_IMPORTED", (now[0] - 1.0, *now[1:]))  # "imported" a second ago
    assert 1 <= KernelThreads().choose() <= numba.config.NUMBA_NUM_THREADS  # the window since "import": no wait
    late = (threads._IMPORTED[0] - threads.FIRST_WINDOW_S, *threads._IMPORTED[1:])
    monkeypatch.setattr(threads, "_IMPORTED", late)
    with pytest.raises(AssertionError, match="slept"):
        KernelThreads().choose()  # a stale import window: a fresh one, waited out
