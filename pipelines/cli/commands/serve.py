"""``gexflow serve``: serve the Prefect deployments on their UTC schedules until stopped (or --list them)."""

from __future__ import annotations

from pipelines.cli.options import EPILOG, common_options, settings_from
from pipelines.config import ConfigError


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the Prefect deployments on their UTC schedules until stopped", epilog=EPILOG
    )
    common_options(p, source=False)
    p.add_argument("--list", action="store_true", help="print deployments, schedules and parameters; start nothing")
    p.set_defaults(func=execute)


def execute(args) -> int:
    import json

    from pipelines.orchestration.schedules import deployment_specs
    from pipelines.publishing.tables import render

    settings = settings_from(args)
    specs = deployment_specs(settings)
    if args.list:
        rows = [(s.name, s.flow, s.cron or "on demand", s.timezone, json.dumps(s.parameters)) for s in specs]
        print(render(["deployment", "flow", "cron", "timezone", "parameters"], rows))
        return 0
    if not settings.prefect_api_url:
        raise ConfigError(
            "gexflow serve needs a Prefect server for its scheduler: run `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from pipelines.orchestration.flows import serve

    serve(specs, settings.dask_address)
    return 0
