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


# Test modules that read the real recordings in ../shared/data (or serve them from the fake exchange). A fresh
# clone without ../shared skips them with this reason instead of failing; .ci/run has ../shared and runs all.
# Moving the small recordings into tests/data so most of these run anywhere is the open part of issue 13.
NEEDS_SHARED = {
    "test_backfill",
    "test_grade",
    "test_grade_batch",
    "test_ingest",
    "test_quality",
    "test_scheduler",
    "test_taker_flow",
    "test_tardis_ticks",
    "test_trades",
    "test_validation",
    "test_depth",
    "test_exports",
    "test_forecast",
    "test_scenarios",
    "test_chaos",
    # single tests of modules that otherwise run anywhere
    "test_compute::test_a_new_book_replaces_the_stored_one",
    "test_compute::test_backfill_from_tardis_lands_and_computes_the_days",
    "test_compute::test_profile_reprices_the_stored_snapshot_with_another_vol_model_or_delta",
    "test_deribit_client::test_a_bad_replay_file_is_a_source_error_naming_it_and_never_retried",
    "test_deribit_client::test_the_recorded_rate_limit_error_is_transient",
    "test_flows::test_a_truncated_replay_file_fails_the_flow_run_at_the_first_attempt",
    "test_flows::test_the_backfill_flow_fans_tardis_days_out_and_computes_them",
    "test_flows::test_the_backfill_flow_fans_tardis_days_out_over_a_dask_cluster",
    "test_golden::test_key_levels_of_the_recorded_snapshots_match_the_golden_file",
    "test_golden::test_the_zero_gamma_of_each_recorded_snapshot_is_a_sign_change_of_the_scalar_reference_profile",
    "test_greeks::test_delta_and_gamma_reproduce_deribits_published_greeks_for_all_415_recorded_options",
    "test_greeks::test_every_greek_matches_the_scalar_black76_reference_to_1e_12",
    "test_hedge_ladder::test_the_ladder_tables_on_the_real_btc_book",
    "test_reliability::test_backfills_compute_step_waits_for_a_writer_holding_the_lock",
}
SHARED_FIXTURES = {"fake_deribit", "shared_data"}


def pytest_collection_modifyitems(config, items):
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason=f"needs the real recordings in {SHARED}, which is not beside the repository")
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        test = f"{module}::{getattr(item, 'originalname', item.name)}"
        if {module, test} & NEEDS_SHARED or SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)
