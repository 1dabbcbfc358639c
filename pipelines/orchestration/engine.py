"""How a cycle runs: in this process (the jobs' cycles) or as a Prefect flow run (:mod:`.flows`).

:func:`run` is the one place that chooses (``settings.uses_prefect``: ``--engine``, GEXFLOW_ENGINE, or 'auto'
with PREFECT_API_URL set); the functions below give each cycle its two ways and return the same thing either
way. Prefect and the jobs are imported only on the path taken: a direct run never loads Prefect."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pipelines.config import ConfigError, Settings


def run(settings: Settings, direct: Callable[[], Any], flow: Callable[[], Any], *, prefect: bool = False) -> Any:
    """``flow()`` (a Prefect flow run) when the settings ask for Prefect or ``prefect`` is set, else ``direct()``."""
    return flow() if settings.uses_prefect or prefect else direct()


def _coins(settings: Settings) -> tuple[str, ...]:
    from pipelines.store.reads import stored_coins

    return stored_coins(settings.data_dir, settings.currencies)


# ---------------------------------------------------------------- snapshot, trades, the full cycle


def snapshot(settings: Settings) -> None:
    """One option-chain snapshot (fetch, land raw, validate, publish)."""

    def flow():
        from pipelines.orchestration.flows import snapshot_flow

        snapshot_flow(list(settings.currencies), settings.source, str(settings.data_dir), settings.api_url)

    run(settings, lambda: _snapshot_direct(settings), flow)


def _validating() -> None:
    """Start this process's Great Expectations worker before the jobs import, so that GE's import runs on another
    core meanwhile (pipelines/validation/ge_worker.py)."""
    from pipelines.validation import ge_worker

    ge_worker.start()


def _compiling(settings: Settings) -> None:
    """Compile the compute kernels on a background thread while the snapshot is fetched and validated: on a first
    run they are otherwise the longest step, started only when compute prices (pipelines/jobs/precompile.py)."""
    from pipelines.jobs import precompile

    precompile.start(what_ifs=settings.what_ifs)


def _snapshot_direct(settings: Settings) -> None:
    _validating()
    from pipelines.jobs.ingest import snapshot_cycle

    snapshot_cycle(settings)


def trades(settings: Settings, since) -> int:
    """The trades cycle, then a re-compute of the stored snapshots the new trades reach; returns how many were
    re-computed."""

    def flow():
        from pipelines.orchestration.flows import trades_flow

        coins, data_dir = list(settings.currencies), str(settings.data_dir)
        return trades_flow(coins, data_dir, settings.api_url, since.isoformat() if since else None)["recomputed"]

    return run(settings, lambda: _trades_direct(settings, since), flow)


def _trades_direct(settings: Settings, since) -> int:
    _validating()
    from pipelines.jobs.compute import refresh_taker_flow
    from pipelines.jobs.trades import trades_cycle

    result = trades_cycle(settings, trades_since=since)
    return len(
        refresh_taker_flow(
            settings.data_dir, result.first_new, settings.lock_wait_s, settings.include_blocks, settings.what_ifs
        )
    )


def full_cycle(settings: Settings) -> None:
    """Snapshot, then (live source) the trade tape, then the analytics of the snapshots not computed yet. With
    Prefect one flow run, as the hourly deployment: trades and compute are its subflow runs."""
    live = settings.source == "live"

    def flow():
        from pipelines.orchestration.flows import snapshot_flow

        coins, data_dir = list(settings.currencies), str(settings.data_dir)
        snapshot_flow(coins, settings.source, data_dir, settings.api_url, compute=True, refresh_tape=live)

    def direct():
        _compiling(settings)
        _snapshot_direct(settings)
        if live:
            _trades_direct(settings, None)
        _compute_missing(settings)

    run(settings, direct, flow)


def _compute_missing(settings: Settings, **options):
    """Analytics of the stored snapshots without them (or stale ones); ``options`` for compute_cycle."""
    from pipelines.jobs.compute import compute_cycle

    return compute_cycle(
        settings.data_dir,
        _coins(settings),
        only_missing=True,
        include_blocks=settings.include_blocks,
        what_ifs=settings.what_ifs,
        kernel_threads=settings.kernel_threads,
        **options,
    )


# ---------------------------------------------------------------- forecast


def forecast(settings: Settings, day: date | None, models, horizons) -> str:
    """Publish the daily forecast of ``day`` (today if None); returns what to tell the user."""

    def flow():
        from pipelines.orchestration.flows import forecast_flow

        text = day.isoformat() if day else None
        out = forecast_flow(list(_coins(settings)), str(settings.data_dir), text, models, horizons)
        return f"forecast published to {out['folder']}"

    def direct():
        from datetime import UTC, datetime

        from pipelines.jobs.forecast import forecast_cycle

        result = forecast_cycle(
            settings.data_dir,
            forecast_date=day,
            currencies=_coins(settings),
            models=models,
            horizons_hours=tuple(horizons) if horizons else (1, 24),
            now=datetime.now(UTC),
        )
        from pipelines.publishing import report

        return report.forecast_summary(result)

    return run(settings, direct, flow)


# ---------------------------------------------------------------- backfill


@dataclass(frozen=True)
class BackfillRequest:
    """What to backfill: Tardis day files (``tardis_dir``, optionally ``since``..``until``) on ``grid``, or a
    replay directory of recorded API responses; then, with ``compute``, the analytics."""

    tardis_dir: Path | None
    replay_dir: Path | None
    since: date | None
    until: date | None
    grid: Any  # pipelines.jobs.backfill_grid.Grid
    each_timestamp: bool
    compute: bool


@contextmanager
def _no_day_progress():
    yield SimpleNamespace(done=None, read=None)


def backfill(settings: Settings, request: BackfillRequest, *, say=print, day_progress=None, progress=None) -> int:
    """Backfill, then compute; returns the exit code (1 when snapshots failed). With Prefect, or a Dask address
    (the days fan out over its workers), one ``backfill`` flow run. ``say`` receives each line to report;
    ``day_progress()`` is a context giving ``done``/``read`` hooks per Tardis day; ``progress`` the compute's."""
    from pipelines.jobs.backfill import check_grid

    check_grid(request.grid, request.each_timestamp)
    if settings.dask_address and settings.engine == "direct":
        raise ConfigError(
            "--dask-address fans the days out as a Prefect flow run; it cannot run with GEXFLOW_ENGINE=direct"
        )

    def flow():
        out = _backfill_flow_run(settings, request)
        say(out)
        return int(out.get("exit_code", 0))

    def direct():
        return _backfill_direct(settings, request, say, day_progress or _no_day_progress, progress)

    return run(settings, direct, flow, prefect=bool(settings.dask_address))


def _backfill_flow_run(settings: Settings, request: BackfillRequest) -> dict:
    from pipelines.orchestration.flows import backfill_runner

    return backfill_runner(settings.dask_address)(
        list(settings.currencies),
        str(settings.data_dir),
        str(request.tardis_dir) if request.tardis_dir else None,
        str(request.replay_dir) if request.replay_dir else None,
        request.since.isoformat() if request.since else None,
        request.until.isoformat() if request.until else None,
        compute=request.compute,
        every_s=request.grid.every_s,
        max_staleness_s=request.grid.max_staleness_s,
        each_timestamp=request.each_timestamp,
    )


def _backfill_direct(settings: Settings, request: BackfillRequest, say, day_progress, progress) -> int:
    if request.compute:
        _compiling(settings)
    _validating()
    from pipelines.jobs.backfill import DEFAULT_LOCK_WAIT_S, backfill_cycle
    from pipelines.store.reads import has_snapshots

    with day_progress() as days:
        result = backfill_cycle(
            settings,
            tardis_dir=request.tardis_dir,
            replay_dir=request.replay_dir,
            since=request.since,
            until=request.until,
            progress=days.done,
            on_read=days.read,
            grid=request.grid,
            each_timestamp=request.each_timestamp,
        )
    for line in result.lines():
        say(line)
    # also after a resumed run that published nothing new: a run killed between its days' commit and this
    # compute left snapshots without analytics (missing-or-stale ones are computed, others skipped)
    if request.compute and (result.snapshots or has_snapshots(settings.data_dir, _coins(settings))):
        # as the days: another writer is normal
        done = _compute_missing(settings, progress=progress, lock_wait_s=max(settings.lock_wait_s, DEFAULT_LOCK_WAIT_S))
        say(f"computed {len(done.snapshots)} snapshot(s)")
    return result.exit_code
