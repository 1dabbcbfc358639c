from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from tests.data_paths import SHARED_DATA
from tests.fake_deribit import FakeDeribit

# Property tests draw the same examples on every run by default, so CI never fails on a case drawn for the
# first time; HYPOTHESIS_PROFILE=explore draws fresh ones (and prints a reproduction blob on failure).
settings.register_profile("default", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (addopts): three workers for every two cores this process may use. Most of the suite's time is
    spent waiting on the processes it starts (CLI runs, Prefect servers, ``gexflow serve``, Chromium, numba compiles
    in children), so one worker per core leaves the cores partly idle. On 2 cores, 3 workers took the suite from 715 s
    to 602 s (79 % of the cores busy) and 4 gave nothing more (614 s; benchmarks/RESULTS.md).
    PYTEST_XDIST_AUTO_NUM_WORKERS still wins."""
    if env := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(env)
    # the cores this process may run on (a container's CPU set); macOS has no affinity call
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores * 3 // 2)


@pytest.fixture
def fake_deribit():
    server = FakeDeribit().start()
    yield server
    server.stop()


@pytest.fixture
def fast_env(monkeypatch):
    """Client settings that keep fault tests quick: tiny backoff, short read timeout."""
    monkeypatch.setenv("GEXFLOW_BACKOFF_BASE_S", "0.01")
    monkeypatch.setenv("GEXFLOW_BACKOFF_CAP_S", "0.05")
    monkeypatch.setenv("GEXFLOW_READ_TIMEOUT_S", "0.5")
    monkeypatch.setenv("GEXFLOW_CONNECT_TIMEOUT_S", "0.5")
    monkeypatch.setenv("GEXFLOW_MAX_RETRIES", "3")
    # the recordings are months old: freshness is tested on its own
    monkeypatch.setenv("GEXFLOW_MAX_SNAPSHOT_AGE_S", "0")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("GEXFLOW_DATA_DIR", raising=False)
    monkeypatch.delenv("GEXFLOW_DERIBIT_URL", raising=False)
    monkeypatch.delenv("GEXFLOW_WHAT_IFS", raising=False)  # compute's default: no what-if tables


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, for the tests that need the large sets (the 7-month Tardis history); skips without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the large recordings in {SHARED_DATA}, which is not beside the repository")
    return SHARED_DATA


# Tests that read ../shared as a whole rather than the small recordings in tests/data (tests/data_paths.py says
# which is which). A fresh clone without ../shared skips them with the reason given; .ci/run has ../shared and runs
# all. Single tests mark themselves instead: the ``shared_data`` fixture.
NEEDS_SHARED = {
    "test_chaos": "the chaos run backfills from ../shared/data/tardis (benchmarks/chaos_run.py) and takes minutes",
}


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        test = f"{module}::{getattr(item, 'originalname', item.name)}"
        reason = NEEDS_SHARED.get(test) or NEEDS_SHARED.get(module)
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"needs {SHARED_DATA}, not beside the repository: {reason}"))
