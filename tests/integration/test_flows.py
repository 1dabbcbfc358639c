"""Each Prefect flow runs once under prefect_test_harness against the local fake Deribit server."""

from __future__ import annotations

import logging
import sys

import duckdb
import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="module")
def prefect_harness():
    import pipelines.orchestration.flows  # noqa: F401 - configures Prefect (no telemetry) before the harness starts its server

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_the_temporary_prefect_server_runs_without_telemetry(prefect_harness):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        server = client.request("GET", "/admin/settings").json()["server"]
    assert server["analytics_enabled"] is False


def test_telemetry_is_turned_off_only_where_the_user_left_it_unset(monkeypatch):
    from prefect.settings import Settings

    from pipelines.orchestration.flows import quiet_temporary_server

    monkeypatch.delenv(
        "PREFECT_SERVER_ANALYTICS_ENABLED", raising=False
    )  # importing pipelines.orchestration.flows set it
    unset = Settings()
    env: dict[str, str] = {}
    quiet_temporary_server(env, unset)
    assert env == {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "true"}  # the user's environment
    quiet_temporary_server(env, unset)
    assert env == {"PREFECT_SERVER_ANALYTICS_ENABLED": "true"}
    env = {}
    quiet_temporary_server(env, Settings(server={"analytics_enabled": True}))  # e.g. from the user's Prefect profile
    assert env == {}


def test_a_truncated_replay_file_fails_the_flow_run_at_the_first_attempt(prefect_harness, fast_env, tmp_path):
    import time

    from pipelines.errors import SourceError
    from pipelines.orchestration.flows import snapshot_flow
    from tests.fake_deribit import SNAPSHOTS, STAMPS

    replay = tmp_path / "replay"
    replay.mkdir()
    for method in ("get_instruments", "get_book_summary_by_currency", "get_index_price"):
        body = (SNAPSHOTS / f"{method}.BTC.{STAMPS[1]}.json").read_bytes()
        (replay / f"{method}.BTC.{STAMPS[1]}.json").write_bytes(
            body[: len(body) // 2] if method == "get_book_summary_by_currency" else body
        )
    records: list[logging.LogRecord] = []
    catch = logging.Handler()
    catch.emit = records.append
    flow_runs = logging.getLogger("prefect.flow_runs")
    flow_runs.addHandler(catch)
    t0 = time.perf_counter()
    try:
        state = snapshot_flow(["BTC"], f"replay:{replay}", str(tmp_path / "data"), None, return_state=True)
    finally:
        flow_runs.removeHandler(catch)
    seconds = time.perf_counter() - t0
    assert state.is_failed()
    err = state.result(raise_on_failure=False)
    assert isinstance(err, SourceError) and "get_book_summary_by_currency.BTC" in str(err)
    assert fetch_chain_run_counts(state) == [1]  # no Prefect task retry
    assert seconds < 5  # a retry would first wait 5 s
    # Prefect logs the failure as one line, like the CLI: the expected error's traceback is dropped
    failed = [r for r in records if r.levelno >= logging.ERROR and "get_book_summary_by_currency.BTC" in r.getMessage()]
    assert failed and all(r.exc_info is None for r in records)


def test_prefect_run_logs_drop_the_traceback_of_expected_errors_only():
    from pipelines.errors import SourceError
    from pipelines.orchestration.flows import RUN_LOGGERS, OneLineExpectedErrors

    def record(exc):
        try:
            raise exc
        except Exception:
            return logging.LogRecord(
                "prefect.flow_runs", logging.ERROR, __file__, 1, "failed: %r", (exc,), sys.exc_info()
            )

    expected, bug = record(SourceError("replay file x is truncated")), record(ZeroDivisionError("a bug"))
    assert OneLineExpectedErrors().filter(expected) and expected.exc_info is None
    assert OneLineExpectedErrors().filter(bug) and bug.exc_info is not None and bug.exc_info[0] is ZeroDivisionError
    for name in RUN_LOGGERS:  # installed on the loggers Prefect's engines log run failures with
        assert any(isinstance(f, OneLineExpectedErrors) for f in logging.getLogger(name).filters)


def test_the_snapshot_flow_lands_the_chain_as_a_prefect_flow_run(prefect_harness, fake_deribit, fast_env, tmp_path):
    from pipelines.orchestration.flows import snapshot_flow

    state = snapshot_flow(["BTC", "ETH"], "live", str(tmp_path), fake_deribit.url, return_state=True)
    assert state.is_completed()
    assert state.result()["snapshots"] == 2
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from option_snapshots").fetchone()[0] == 854 + 710
    con.close()


def test_a_failed_tape_refresh_still_computes_the_snapshot_and_fails_the_run(
    prefect_harness, fake_deribit, fast_env, tmp_path
):
    from pipelines.orchestration.flows import snapshot_flow

    fake_deribit.fail("get_last_trades_by_currency_and_time", "invalid_params")
    state = snapshot_flow(
        ["BTC"], "live", str(tmp_path), fake_deribit.url, compute=True, refresh_tape=True, return_state=True
    )
    assert state.is_failed()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from option_snapshots").fetchone()[0] == 854
    assert con.execute("select count(*) from key_levels").fetchone()[0] == 2  # computed with the stored tape
    con.close()


def test_a_permanent_error_fails_the_flow_run_without_task_retries(prefect_harness, fake_deribit, fast_env, tmp_path):
    from pipelines.orchestration.flows import snapshot_flow

    fake_deribit.fail("get_book_summary_by_currency", "invalid_params")
    state = snapshot_flow(["BTC"], "live", str(tmp_path), fake_deribit.url, return_state=True)
    assert state.is_failed()
    assert fake_deribit.calls("get_book_summary_by_currency") == 1


def test_the_trades_flow_lands_the_recorded_tape_once(prefect_harness, fake_deribit, fast_env, tmp_path):
    import json

    from pipelines.orchestration.flows import trades_flow
    from tests.data_paths import TRADES

    lines = TRADES.read_text().splitlines()
    fake_deribit.trades["BTC"] = [json.loads(line) for line in lines if line.strip()]
    for _ in range(2):
        state = trades_flow(["BTC"], str(tmp_path), fake_deribit.url, "2020-02-20T00:00:00+00:00", return_state=True)
        assert state.is_completed()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*), count(distinct trade_id) from trades").fetchone() == (463, 463)
    con.close()


def test_the_trades_flow_recomputes_the_computed_snapshots_its_trades_reach(
    prefect_harness, fake_deribit, fast_env, tmp_path
):
    from pipelines.orchestration.flows import snapshot_flow, trades_flow
    from tests.fake_deribit import TAPE

    assert snapshot_flow(
        ["BTC"], "live", str(tmp_path), fake_deribit.url, compute=True, return_state=True
    ).is_completed()
    fake_deribit.trades["BTC"] = [TAPE[0]]  # a taker buys 40 of a put an hour before the recorded snapshot
    state = trades_flow(["BTC"], str(tmp_path), fake_deribit.url, "2026-07-31T00:00:00+00:00", return_state=True)
    assert state.is_completed()
    assert state.result()["recomputed"] == 1
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    models = con.execute("select model from key_levels order by model").fetchall()
    con.close()
    assert models == [("customer_long",), ("naive",), ("taker_flow",)]


def test_the_compute_and_forecast_flows_run_on_stored_snapshots(prefect_harness, fake_deribit, fast_env, tmp_path):
    from pipelines.orchestration.flows import forecast_flow, snapshot_flow

    state = snapshot_flow(
        ["BTC"], "live", str(tmp_path), fake_deribit.url, compute=True, refresh_tape=True, return_state=True
    )
    assert state.is_completed()
    assert fake_deribit.calls("get_last_trades_by_currency_and_time") >= 1  # the tape was brought up to date
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from key_levels").fetchone()[0] == 2
    assert con.execute("select count(*) from trade_runs").fetchone()[0] == 1
    con.close()
    state = forecast_flow(["BTC"], str(tmp_path), "2026-07-31", return_state=True)
    assert state.is_completed()
    assert (tmp_path / "exports" / "flow_forecast" / "date=2026-07-31" / "index.html").exists()


def test_the_deployments_have_pinned_names_utc_schedules_and_parameters(tmp_path):
    from pipelines.config import load_settings
    from pipelines.orchestration.flows import deployments
    from pipelines.orchestration.schedules import deployment_specs

    settings = load_settings({"data_dir": str(tmp_path)}, env={})
    specs = {s.name: s for s in deployment_specs(settings)}
    assert {n: (s.flow, s.cron, s.timezone) for n, s in specs.items()} == {
        "snapshot-hourly": ("snapshot", "0 * * * *", "UTC"),
        "trades-every-10-minutes": ("trades", "*/10 * * * *", "UTC"),
        "forecast-daily": ("forecast", "5 8 * * *", "UTC"),
        "compute-on-demand": ("compute", None, "UTC"),
        "backfill-on-demand": ("backfill", None, "UTC"),
    }
    assert specs["snapshot-hourly"].parameters == {
        "currencies": ["BTC", "ETH"],
        "data_dir": str(tmp_path.resolve()),
        "api_url": "https://www.deribit.com/api/v2",
        "source": "live",
        "compute": True,
        "refresh_tape": True,
    }
    built = {d.name: d for d in deployments(deployment_specs(settings))}
    assert set(built) == set(specs)
    for name, spec in specs.items():
        schedules = built[name].schedules or []
        assert [(s.schedule.cron, s.schedule.timezone) for s in schedules] == (
            [(spec.cron, "UTC")] if spec.cron else []
        )
        assert built[name].parameters == spec.parameters


def test_serve_list_prints_every_deployment_without_starting_anything(tmp_path, capsys):
    from pipelines.cli.app import main

    assert main(["serve", "--list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in (
        "snapshot-hourly",
        "trades-every-10-minutes",
        "forecast-daily",
        "0 * * * *",
        "*/10 * * * *",
        "5 8 * * *",
    ):
        assert name in out


def test_the_backfill_flow_fans_tardis_days_out_and_computes_them(prefect_harness, tmp_path):
    from pipelines.orchestration.flows import backfill_flow
    from tests.data_paths import TARDIS

    state = backfill_flow(["BTC"], str(tmp_path), str(TARDIS), None, "2026-07-30", "2026-07-31", return_state=True)
    assert state.is_completed() and state.result()["exit_code"] == 0
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    snaps = con.execute("select count(distinct snapshot_ts) from option_snapshots where source = 'tardis'").fetchone()[
        0
    ]
    levels = con.execute("select count(distinct snapshot_ts) from key_levels").fetchone()[0]
    con.close()
    assert snaps >= 6 and levels == snaps


def fetch_chain_run_counts(state, wait_s: float = 10.0) -> list[int]:
    """run_count of each fetch-chain task run of a finished flow run, as the Prefect server recorded them
    (task run states reach the server as events, so this waits until they have all arrived)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    deadline = time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while True:
            runs = [r for r in client.read_task_runs(flow_run_filter=flow_runs) if r.name.startswith("fetch-chain")]
            if (runs and all(r.state and r.state.is_final() for r in runs)) or time.monotonic() > deadline:
                return [r.run_count for r in runs]
            time.sleep(0.2)


def test_the_backfill_flow_fans_tardis_days_out_over_a_dask_cluster(prefect_harness, tmp_path):
    """A real Dask cluster (scheduler and two worker processes on 127.0.0.1) runs the read-tardis-day tasks through
    prefect-dask: every day file is read once, by one task on a worker; the flow publishes the days in order."""
    import distributed

    from pipelines.orchestration.flows import backfill_runner
    from tests.data_paths import TARDIS

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        distributed.Client(cluster) as client,
        distributed.get_task_stream(client) as stream,
    ):
        state = backfill_runner(cluster.scheduler_address)(
            ["BTC"], str(tmp_path), str(TARDIS), None, "2026-07-30", "2026-07-31", return_state=True
        )
        workers = {w.worker_address for w in cluster.workers.values()}
    assert state.is_completed() and state.result()["exit_code"] == 0
    ran = [t for t in stream.data if t["key"].startswith("read_day-")]  # Dask keys the task by its function
    assert len(ran) == 2 and {t["worker"] for t in ran} <= workers  # one task per day file, each on a worker
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    days = con.execute("select count(distinct snapshot_ts::date) from option_snapshots where source = 'tardis'")
    assert days.fetchone()[0] == 2
    assert con.execute("select count(distinct snapshot_ts) from key_levels").fetchone()[0] >= 6
    con.close()


def test_a_dask_address_needs_prefect_dask_and_a_valid_address(monkeypatch, tmp_path, capsys):
    from pipelines.cli.app import main
    from pipelines.config import ConfigError, load_settings
    from pipelines.orchestration.flows import backfill_flow, backfill_runner
    from tests.data_paths import TARDIS

    assert load_settings(env={"GEXFLOW_DASK_ADDRESS": "tcp://10.0.0.5:8786"}).dask_address == "tcp://10.0.0.5:8786"
    assert backfill_runner(None) is backfill_flow  # unset: the flow's own thread pool
    tardis = ["backfill", "--tardis", str(TARDIS), "--data-dir", str(tmp_path / "d")]
    for extra, engine, needle in [
        (["--dask-address", "localhost:8786"], "auto", "must be a Dask scheduler address like tcp://host:8786"),
        (["--dask-address", "tcp://127.0.0.1:9"], "direct", "cannot run with GEXFLOW_ENGINE=direct"),
    ]:
        monkeypatch.setenv("GEXFLOW_ENGINE", engine)
        assert main([*tardis, *extra]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()
    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # as if the [dask] extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'gexflow\[dask\]'"):
        backfill_runner("tcp://127.0.0.1:8786")


def test_run_with_the_prefect_engine_tracks_its_compute_as_a_subflow_run(
    prefect_harness, fake_deribit, fast_env, tmp_path
):
    """`gexflow run --engine prefect` is one flow run, as the hourly deployment: the trade tape and the compute are
    its subflow runs (the compute used to run outside Prefect, untracked)."""
    from pathlib import Path

    from prefect.client.orchestration import get_client

    from pipelines.cli.app import main

    argv = ["run", "--engine", "prefect", "--currency", "BTC", "--api-url", fake_deribit.url, "--data-dir"]
    assert main([*argv, str(tmp_path)]) == 0
    with get_client(sync_client=True) as client:
        mine = [
            r
            for r in client.read_flow_runs()
            if Path(r.parameters.get("data_dir") or "/").resolve() == tmp_path.resolve()
        ]
        runs = {client.read_flow(r.flow_id).name: r for r in mine}
        assert sorted(runs) == ["compute", "snapshot", "trades"] and len(mine) == 3
        assert all(r.state.is_completed() for r in mine)
        for child in ("trades", "compute"):  # a subflow run's parent is a task run of the snapshot flow run
            parent = client.read_task_run(runs[child].parent_task_run_id)
            assert parent.flow_run_id == runs["snapshot"].id
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from key_levels").fetchone()[0] == 2
    con.close()
