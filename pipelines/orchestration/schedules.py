"""Every deployment gexflow serves, with its UTC cron schedule and parameters, in one place.

Plain data (no Prefect import), so ``gexflow serve --list`` is instant and tests can pin it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.config import Settings

TIMEZONE = "UTC"


@dataclass(frozen=True)
class DeploymentSpec:
    name: str  # deployment name
    flow: str  # flow name in pipelines.orchestration.flows
    cron: str | None  # None = run on demand only
    parameters: dict = field(default_factory=dict)
    description: str = ""
    timezone: str = TIMEZONE


def deployment_specs(settings: Settings) -> list[DeploymentSpec]:
    """The deployments for ``settings`` (currencies, data dir, API URL are baked into their parameters)."""
    common = {"currencies": list(settings.currencies), "data_dir": str(settings.data_dir.resolve())}
    live = {**common, "api_url": settings.api_url}
    return [
        DeploymentSpec(
            "snapshot-hourly",
            "snapshot",
            "0 * * * *",
            {**live, "source": "live", "compute": True, "refresh_tape": True},
            "option-chain snapshot at :00, then the trade tape up to it, then compute for the new snapshot",
        ),
        DeploymentSpec("trades-every-10-minutes", "trades", "*/10 * * * *", live, "incremental option trade tape"),
        DeploymentSpec(
            "forecast-daily",
            "forecast",
            "5 8 * * *",
            common,
            "daily flow forecast after the 08:00 UTC expiry, published to exports/",
        ),
        DeploymentSpec(
            "compute-on-demand",
            "compute",
            None,
            {**common, "since": None, "until": None},
            "(re)compute positions, GEX, profile and key levels for stored snapshots",
        ),
        DeploymentSpec(
            "backfill-on-demand",
            "backfill",
            None,
            {**common, "tardis_dir": None, "replay_dir": None, "since": None, "until": None},
            "backfill from Tardis CSV files or recorded raw replays",
        ),
    ]
