"""Prefect flows: thin wrappers that run the pipelines' cycles with their steps as Prefect tasks.

No arithmetic here. Network steps carry Prefect retries on top of the client's own backoff, only for
transient failures (a permanent Deribit error such as -32602 is never retried).
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from datetime import UTC
from types import SimpleNamespace

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.settings import get_current_settings

from pipelines.config import ConfigError, debug_enabled, load_settings
from pipelines.errors import expected_errors
from pipelines.jobs import ingest, trades
from pipelines.sources.deribit import DeribitError


def quiet_temporary_server(env: MutableMapping[str, str], settings) -> None:
    """Turn off the usage heartbeat of the temporary Prefect server a flow run starts without PREFECT_API_URL
    (and of ``prefect_test_harness``): offline, every run logs ``ERROR | prefect.server.services.telemetry -
    Failed to send telemetry``. Prefect 3.8 starts that server as a subprocess with this process's environment
    plus the settings set explicitly here, so an environment default reaches it; a value the user set
    (``PREFECT_SERVER_ANALYTICS_ENABLED`` in the environment, a Prefect profile or .env) is left as it is.
    A long-lived ``prefect server start`` is the user's and is not touched."""
    if "analytics_enabled" not in settings.server.model_fields_set:
        env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


# the one write to the environment: a default Prefect's server subprocess inherits (nothing is read here)
quiet_temporary_server(os.environ, get_current_settings())  # noqa: TID251


class OneLineExpectedErrors(logging.Filter):
    """Prefect logs a failed run with its traceback ("Encountered exception during execution: ..."). For an
    expected failure (bad input, a source, exchange or storage error) the message is the whole story: keep the
    one line and drop the traceback, as the CLI does. Unexpected exceptions keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and isinstance(exc, expected_errors()):
            record.exc_info = None
            record.exc_text = None
        return True


RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
if not debug_enabled():  # GEXFLOW_DEBUG=1 keeps every traceback
    for _name in RUN_LOGGERS:
        logging.getLogger(_name).addFilter(OneLineExpectedErrors())


def _transient_only(task, task_run, state) -> bool:
    """Retry a task only when it failed with a transient Deribit error (429, 5xx, timeout, ...)."""
    try:
        state.result()
    except DeribitError as err:
        return err.transient
    except Exception:  # noqa: BLE001 - anything else is permanent
        return False
    return False


def _task(fn, name, **kw):
    return task(fn, name=name, cache_policy=NO_CACHE, persist_result=False, **kw)


SNAPSHOT_STEPS = SimpleNamespace(
    open_cycles=ingest.open_cycles,
    fetch_chain=_task(
        ingest.fetch_chain, "fetch-chain", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_transient_only
    ),
    normalise=_task(ingest.normalise, "normalise"),
    validate=_task(ingest.validate, "validate"),
    publish=_task(ingest.publish, "publish"),
)


# Flow runs wait this long for another writer: deployments collide by design (snapshot at :00, trades
# every 10 minutes, forecast at 08:05); the CLI fails at once instead (GEXFLOW_LOCK_WAIT_S overrides both).
FLOW_LOCK_WAIT_S = 300.0


def _settings(currencies, source, data_dir, api_url):
    settings = load_settings({"currencies": currencies, "source": source, "data_dir": data_dir, "api_url": api_url})
    return settings if settings.lock_wait_s else settings.with_(lock_wait_s=FLOW_LOCK_WAIT_S)


@flow(name="snapshot", description="Option-chain snapshot: fetch, land raw, validate, publish; then compute.")
def snapshot_flow(
    currencies: list[str] | None = None,
    source: str | None = None,
    data_dir: str | None = None,
    api_url: str | None = None,
    compute: bool = False,
    refresh_tape: bool = False,
) -> dict:
    """``refresh_tape`` (live source): bring the trade tape up to date before ``compute``, so the new snapshot's
    taker_flow model sees every trade up to the snapshot rather than the last 10-minute run. A failed tape
    fetch does not stop the compute (taker_flow then uses the tape it has); the run still ends failed."""
    settings = _settings(currencies, source, data_dir, api_url)
    result = ingest.snapshot_cycle(settings, steps=SNAPSHOT_STEPS)
    tape_error = None
    if compute and refresh_tape and settings.source == "live":
        try:
            trades_flow(list(settings.currencies), data_dir, api_url)
        except Exception as exc:  # noqa: BLE001 - reported after the compute, which must still run
            tape_error = exc
            get_run_logger().warning("trade tape not updated (%s); computing with the stored tape", exc)
    if compute:
        compute_flow(sorted(result.summary()["currency"].unique().to_list()), data_dir, only_missing=True)
    if tape_error is not None:
        raise tape_error
    return {"run_id": result.run_id, "snapshots": result.summary().height, "raw_files": result.raw_files}


@flow(name="compute", description="Positions, GEX by strike, profile and key levels for stored snapshots.")
def compute_flow(
    currencies: list[str] | None = None,
    data_dir: str | None = None,
    since: str | None = None,
    until: str | None = None,
    only_missing: bool = False,
    include_blocks: bool | None = None,
) -> dict:
    """``include_blocks`` None: GEXFLOW_INCLUDE_BLOCKS (default false) decides whether taker_flow counts block
    trades and combo legs."""
    from datetime import datetime

    from pipelines.jobs.compute import compute_cycle

    settings = _settings(None, None, data_dir, None)
    coins = currencies or list(settings.currencies)
    result = compute_cycle(
        settings.data_dir,
        coins,
        lock_wait_s=settings.lock_wait_s,
        only_missing=only_missing,
        since=datetime.fromisoformat(since) if since else None,
        until=datetime.fromisoformat(until) if until else None,
        include_blocks=settings.include_blocks if include_blocks is None else include_blocks,
        what_ifs=settings.what_ifs,
        kernel_threads=settings.kernel_threads,
    )
    return {"snapshots": len(result.snapshots), "rows": result.rows}


TRADES_STEPS = SimpleNamespace(
    plan_windows=trades.plan_windows,
    open_client=trades.open_client,
    fetch_trades=_task(
        trades.fetch_trades, "fetch-trades", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_transient_only
    ),
    normalise=_task(trades.normalise, "normalise-trades"),
    validate=_task(trades.validate, "validate-trades"),
    publish=_task(trades.publish, "publish-trades"),
)


@flow(name="trades", description="Option trade tape: incremental, de-duplicated, watermarked per currency.")
def trades_flow(
    currencies: list[str] | None = None,
    data_dir: str | None = None,
    api_url: str | None = None,
    trades_since: str | None = None,
) -> dict:
    from datetime import datetime

    from pipelines.jobs.compute import stale_since

    settings = _settings(currencies, "live", data_dir, api_url)
    since = datetime.fromisoformat(trades_since) if trades_since else None
    result = trades.trades_cycle(settings, trades_since=since, steps=TRADES_STEPS)
    # snapshots computed before these trades arrived: their taker_flow saw a tape that ended before them
    recomputed = 0
    for currency, first in stale_since(settings.data_dir, result.first_new).items():
        recomputed += compute_flow([currency], str(settings.data_dir), first.isoformat())["snapshots"]
    return {"run_id": result.run_id, "new": int(result.summary()["new"].sum()), "recomputed": recomputed}


@flow(name="forecast", description="Daily hedge-flow forecast after the 08:00 UTC expiry, published to exports/.")
def forecast_flow(
    currencies: list[str] | None = None,
    data_dir: str | None = None,
    forecast_date: str | None = None,
    models: list[str] | None = None,
    horizons_hours: list[float] | None = None,
) -> dict:
    from datetime import date, datetime

    from pipelines.jobs.forecast import forecast_cycle

    settings = _settings(currencies, None, data_dir, None)
    result = forecast_cycle(
        settings.data_dir,
        lock_wait_s=settings.lock_wait_s,
        forecast_date=date.fromisoformat(forecast_date) if forecast_date else None,
        currencies=list(settings.currencies),
        models=models,
        horizons_hours=tuple(horizons_hours or (1, 24)),
        now=datetime.now(UTC),
    )
    return {"folder": str(result.exports.folder) if result.exports else None, "date": str(result.forecast_date)}


@flow(name="backfill", description="Backfill option snapshots from Tardis CSV days or a raw replay, then compute.")
def backfill_flow(
    currencies: list[str] | None = None,
    data_dir: str | None = None,
    tardis_dir: str | None = None,
    replay_dir: str | None = None,
    since: str | None = None,
    until: str | None = None,
    compute: bool = True,
    every_s: int = 3600,
    max_staleness_s: int = 3600,
    each_timestamp: bool = False,
) -> dict:
    """Tardis days fan out over the flow's task runner (threads here; a DaskTaskRunner from prefect-dask on a
    cluster): one ``read-tardis-day`` task per day file decompresses it once and returns its per-bucket last
    rows (small); the flow then publishes the days in order, each from the previous day's end state (the
    ``each_timestamp`` reading maps ``backfill_day`` instead)."""
    from pathlib import Path

    from pipelines.jobs import backfill
    from pipelines.jobs.backfill_grid import Grid

    settings = _settings(currencies, None, data_dir, None)
    if replay_dir:
        backfill.backfill_cycle(settings, replay_dir=Path(replay_dir))
        failed = 0
    else:
        grid = backfill.check_grid(Grid(every_s, max_staleness_s), each_timestamp)
        failed = _tardis_days(settings, Path(tardis_dir), since, until, grid, each_timestamp)
    if compute:
        compute_flow(list(settings.currencies), data_dir, only_missing=True)
    return {"failed_snapshots": failed, "exit_code": 1 if failed else 0}


def _tardis_days(settings, tardis_dir, since: str | None, until: str | None, grid, each_timestamp: bool) -> int:
    """The Tardis days of a backfill flow run as task runs; returns how many snapshots failed."""
    from datetime import date

    from pipelines.jobs import backfill
    from pipelines.sources.tardis_stream import read_day

    backfill.tardis_currencies(settings)
    days = backfill.plan_days(
        tardis_dir,
        since=date.fromisoformat(since) if since else None,
        until=date.fromisoformat(until) if until else None,
    )
    backfill.refresh_warehouse(settings)
    results = []
    if each_timestamp:
        futures = _task(backfill.backfill_day, "backfill-day").map(settings, [d.options_chain for d in days])
        results = [f.result() for f in futures]
    else:
        todo = [d for d in days if not backfill.is_published(settings.data_dir, d.day, grid)]
        reader = _task(read_day, "read-tardis-day")
        futures = [
            reader.submit(d.options_chain, grid.every_us, settings.currencies, d.derivative_ticker) for d in todo
        ]
        backfill.run_grid(
            settings,
            days,
            grid,
            run_id=backfill.new_run_id(),
            lock_wait_s=settings.lock_wait_s,
            workers=0,
            report=results.append,
            fetch=lambda i: futures[i].result(),
        )
    failed = sum(len(r.failed) for r in results)
    backfill.refresh_warehouse(settings)
    return failed


def backfill_runner(dask_address: str | None):
    """The backfill flow as configured: Tardis days on the flow's thread pool, or, with ``dask_address``, on the
    workers of an existing Dask cluster through prefect-dask's DaskTaskRunner (DESIGN section 5: no home-made
    scheduler). Workers need gexflow installed and the data dir and Tardis files at the same paths."""
    if not dask_address:
        return backfill_flow
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError("a Dask address needs prefect-dask: pip install 'gexflow[dask]'") from None
    return backfill_flow.with_options(task_runner=DaskTaskRunner(address=dask_address))


FLOWS = {
    "backfill": backfill_flow,
    "snapshot": snapshot_flow,
    "trades": trades_flow,
    "compute": compute_flow,
    "forecast": forecast_flow,
}


def deployments(specs, dask_address: str | None = None):
    """Prefect RunnerDeployments for the specs of :mod:`pipelines.orchestration.schedules` (UTC cron schedules); with
    ``dask_address`` the backfill deployment fans out over that Dask cluster."""
    from prefect.schedules import Cron

    out = []
    for spec in specs:
        flow_obj = backfill_runner(dask_address) if spec.flow == "backfill" else FLOWS.get(spec.flow)
        if flow_obj is None:
            continue
        schedules = [Cron(spec.cron, timezone=spec.timezone)] if spec.cron else None
        out.append(
            flow_obj.to_deployment(
                name=spec.name, schedules=schedules, parameters=spec.parameters, description=spec.description
            )
        )
    return out


def serve(specs, dask_address: str | None = None) -> None:
    """Register the deployments and run their scheduled flow runs until stopped (needs PREFECT_API_URL).

    SIGTERM or SIGINT stops it gracefully: the runner cancels its in-flight flow runs (each ends Cancelled on the
    server, its process killed), pauses the deployments' schedules (as ``prefect.serve`` does) and returns."""
    import asyncio

    runner = _stopping_runner()
    served = deployments(specs, dask_address)
    for deployment in served:
        runner.add_deployment(deployment)
    names = ", ".join(f"{d.flow_name}/{d.name}" for d in served)
    print(f"serving {names}; SIGTERM or Ctrl-C stops (in-flight runs are cancelled)", flush=True)
    asyncio.run(runner.start())


def _stopping_runner():
    """A Prefect Runner whose SIGTERM (and SIGINT) handler works. Prefect 3.8.8's ``Runner.handle_sigterm`` calls
    the sync ``stop()`` inside the running event loop, where it only creates an un-awaited ``astop()`` coroutine,
    then ``sys.exit(0)``: in-flight runs were never cancelled and stayed Running on the server forever.
    Here the signal schedules ``astop()`` on the loop (cancel every in-flight run, then end the polling loops)."""
    import asyncio
    import signal

    from prefect.runner import Runner

    class StoppingRunner(Runner):
        _stop_task = None

        async def start(self, *args, **kwargs):
            self._loop_ref = asyncio.get_running_loop()
            signal.signal(signal.SIGINT, self.handle_sigterm)  # start() installs the SIGTERM handler itself
            await super().start(*args, **kwargs)

        def handle_sigterm(self, signum=None, frame=None) -> None:
            self._loop_ref.call_soon_threadsafe(self._stop_once, signum)

        def _stop_once(self, signum) -> None:
            """A second signal while stopping is ignored (cancelling takes at most 30 s a run; SIGKILL forces)."""
            if self._stop_task is not None:
                return
            if not self.started:  # still starting up: stop as soon as it has started
                self._loop_ref.call_later(0.2, self._stop_once, signum)
                return
            name = signal.Signals(signum).name if signum else "signal"
            self._logger.info("%s received: cancelling in-flight flow runs, then stopping", name)
            self._stop_task = self._loop_ref.create_task(self.astop())

    return StoppingRunner(pause_on_shutdown=True)
