"""A real Prefect server with its scheduler service, and ``gexflow serve`` as an operator runs them.

``prefect_test_harness`` (tests/integration/test_flows.py) never runs the server's scheduler, so a Prefect/SQLAlchemy
combination whose scheduler fails on every loop passed it (issue 11). Here a ``prefect server start``
subprocess (own SQLite database, free port on 127.0.0.1) schedules the deployments that a ``gexflow serve``
subprocess registers, and the served runner executes them against the fake exchange. Everything is asserted
through Prefect's API (flow run states) and the lake.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace

import duckdb
import pytest

from tests.fake_deribit import FakeDeribit
from tests.prefect_server import PrefectServer, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]

GEXFLOW_DEPLOYMENTS = {
    "snapshot-hourly",
    "trades-every-10-minutes",
    "forecast-daily",
    "compute-on-demand",
    "backfill-on-demand",
}


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    server = PrefectServer(tmp_path_factory.mktemp("prefect") / "home")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def exchange():
    server = FakeDeribit().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(prefect_server, exchange, tmp_path_factory):
    """One ``gexflow serve`` for the module (BTC into its own data dir), its group stopped at the end; the read
    timeout is long and there are no client retries, so a stalled exchange answer keeps a run in flight."""
    data_dir = tmp_path_factory.mktemp("served")
    proc = prefect_server.serve(
        data_dir / "data", exchange.url, data_dir / "serve.log", GEXFLOW_READ_TIMEOUT_S="120", GEXFLOW_MAX_RETRIES="0"
    )
    try:
        yield SimpleNamespace(proc=proc, data_dir=data_dir / "data", exchange=exchange)
    finally:
        proc.stop()


@pytest.fixture
def client(prefect_server):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    # few client retries: a passing SQLite lock (503) is retried, a broken server fails the test in seconds
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url, PREFECT_CLIENT_MAX_RETRIES: 3}):
        with SyncPrefectClient(prefect_server.api_url) as c:
            yield c


def served_deployments(client, proc) -> dict:
    """name -> deployment once ``gexflow serve`` has registered all of gexflow's deployments."""

    def registered():
        if proc.popen.poll() is not None:
            raise AssertionError(f"gexflow serve exited {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        found = {d.name: d for d in client.read_deployments()}
        return found if GEXFLOW_DEPLOYMENTS <= set(found) else None

    return wait_for(registered, 120, "gexflow serve to register its deployments")


def runs_of(client, deployment_id):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def subflows_of(client, flow_run_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    children = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
    return client.read_flow_runs(flow_run_filter=children)


def flow_name(client, flow_run) -> str:
    return client.read_flow(flow_run.flow_id).name


def final_state(client, flow_run_id, timeout_s: float, proc):
    def done():
        state = client.read_flow_run(flow_run_id).state
        return state if state and state.is_final() else None

    try:
        return wait_for(done, timeout_s, f"flow run {flow_run_id} to finish", interval_s=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; serve log:\n{proc.output()[-4000:]}") from None


def test_the_installed_versions_let_the_server_insert_scheduled_runs(client, prefect_server):
    """The insert the scheduler service does on every loop (``schedule_runs``), asked for directly through the API:
    fails at once (HTTP 500/503) with a Prefect/SQLAlchemy combination that cannot schedule (see pyproject.toml)."""
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.schedules import Cron

    from pipelines.orchestration.flows import trades_flow

    deployment = trades_flow.to_deployment(name="scheduler-insert-check", schedules=[Cron("*/10 * * * *")])
    deployment_id = deployment.apply()
    try:
        client.request("POST", f"/deployments/{deployment_id}/schedule", json={"min_runs": 3})
    except PrefectHTTPStatusError as exc:
        raise AssertionError(f"the server cannot schedule runs: {exc}\n{prefect_server.errors()}") from None
    runs = runs_of(client, deployment_id)
    assert len(runs) >= 3 and all(r.state.is_scheduled() for r in runs)


def due_or_missed(client, deployment_id, schedule_id, due):
    """("due", run) once the schedule's run due at ``due`` exists, ("missed", run) if its first run is a later one."""
    mine = [r for r in runs_of(client, deployment_id) if r.created_by and r.created_by.id == schedule_id]
    on_time = next((r for r in mine if r.expected_start_time == due), None)
    return ("due", on_time) if on_time else ("missed", mine[0]) if mine else None


def run_of_a_schedule_due_soon(client, deployment_id, server, leads_s=(4, 15, 45)):
    """Add an hourly schedule to the deployment, due ``lead`` seconds from now, and return the flow run the server's
    scheduler creates for that due time.

    The scheduler generates a schedule's runs from its own loop's "now" on. When it gets to the new schedule only
    after the due time (a loaded 2-core CI machine; it takes ~0.7 s when idle), the runs it creates are the later
    hourly ones and the due one never comes: that schedule is deleted (with its runs) and one due later is tried."""
    from prefect.client.schemas.schedules import IntervalSchedule

    for lead_s in leads_s:
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead_s)
        [schedule] = client.create_deployment_schedules(
            deployment_id, [(IntervalSchedule(interval=timedelta(hours=1), anchor_date=due), True)]
        )

        created = partial(due_or_missed, client, deployment_id, schedule.id, due)
        try:
            outcome, run = wait_for(created, 60, f"the scheduler to schedule the run due in {lead_s} s")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; server log:\n{server.errors()}") from None
        if outcome == "due":
            return run
        client.delete_deployment_schedule(deployment_id, schedule.id)
    raise AssertionError(f"the scheduler reached a new schedule only after its due time, leads {leads_s} s")


CRON_TIMES = {
    "snapshot-hourly": lambda t: t.minute == 0,
    "trades-every-10-minutes": lambda t: t.minute % 10 == 0,
    "forecast-daily": lambda t: (t.hour, t.minute) == (8, 5),
}


def test_the_server_scheduler_schedules_the_served_deployments_and_a_scheduled_run_lands_in_the_lake(
    client, prefect_server, served
):
    from prefect.client.schemas.objects import StateType

    deps = served_deployments(client, served.proc)

    # (a) the server's scheduler service creates the runs of every cron deployment, at their cron times
    def scheduled():
        runs = {name: [r for r in runs_of(client, deps[name].id) if r.auto_scheduled] for name in deps}
        return runs if all(len(runs[name]) >= 3 for name in CRON_TIMES) else None

    try:
        runs = wait_for(scheduled, 60, "the scheduler to create the scheduled flow runs")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; server log:\n{prefect_server.errors()}") from None
    assert not runs["compute-on-demand"] and not runs["backfill-on-demand"]
    for name, on_cron in CRON_TIMES.items():
        times = [r.expected_start_time.astimezone(UTC) for r in runs[name]]
        assert all(on_cron(t) and t.second == 0 for t in times), (name, times)
        assert all(r.state.is_scheduled() and r.state.state_details.scheduled_time for r in runs[name])

    # (b) a schedule due in a few seconds on the real snapshot deployment: the scheduler creates its run and the
    # served runner executes it (snapshot, trade tape, compute: one flow run and two subflow runs) into the lake
    run = run_of_a_schedule_due_soon(client, deps["snapshot-hourly"].id, prefect_server)
    assert run.auto_scheduled
    state = final_state(client, run.id, 240, served.proc)
    assert state.is_completed(), f"{state.type}: {state.message}\n{served.proc.output()[-4000:]}"
    assert sorted((flow_name(client, r), r.state.type) for r in subflows_of(client, run.id)) == [
        ("compute", StateType.COMPLETED),
        ("trades", StateType.COMPLETED),
    ]
    con = duckdb.connect(str(served.data_dir / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from option_snapshots").fetchone()[0] == 854
        assert con.execute("select count(distinct model) from key_levels").fetchone()[0] >= 2
    finally:
        con.close()


# last in the module: it stops the module's serve
def test_sigterm_to_serve_cancels_its_in_flight_run(client, served):
    """An operator stops ``gexflow serve`` (systemd, docker stop: SIGTERM) while a run waits on a stalled exchange:
    the run ends Cancelled on the server, its process is gone and serve exits 0. (Prefect 3.8.8's own handler
    left it Running forever.)"""
    from prefect.client.schemas.objects import StateType

    deps = served_deployments(client, served.proc)
    served.exchange.delay_s = 60.0  # the chain request stalls (the client's read timeout is longer still)
    served.exchange.fail("get_instruments:ETH", "timeout")  # ETH: a cron run (BTC) that falls due cannot take it
    snapshot = deps["snapshot-hourly"].id
    run = client.create_flow_run_from_deployment(
        snapshot, parameters={"currencies": ["ETH"]}
    )  # `prefect deployment run`

    def stalled():
        return client.read_flow_run(run.id).state.is_running() and served.exchange.faults_served

    wait_for(stalled, 120, "the run to start and wait on the exchange", interval_s=0.5)
    served.proc.signal(signal.SIGTERM)
    wait_for(lambda: served.proc.popen.poll() is not None, 90, "gexflow serve to exit after SIGTERM")
    assert served.proc.popen.returncode == 0, served.proc.output()[-3000:]
    state = client.read_flow_run(run.id).state
    assert state.type == StateType.CANCELLED, f"{state.type}: {state.message}\n{served.proc.output()[-3000:]}"
    wait_for(lambda: not served.proc.group_alive(), 10, "the flow run's process to be gone")
