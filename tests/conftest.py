from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from tests.fake_deribit import SHARED, FakeDeribit

REPO = Path(__file__).resolve().parents[1]

# Property tests draw the same examples on every run by default, so CI never fails on a case drawn for the
# first time; HYPOTHESIS_PROFILE=explore draws fresh ones (and prints a reproduction blob on failure).
settings.register_profile("default", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("shared/data is not beside the repository")
    return SHARED
