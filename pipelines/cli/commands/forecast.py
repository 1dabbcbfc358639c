"""``gexflow forecast``: publish the daily hedge-flow forecast (files under exports/)."""

from __future__ import annotations

from pipelines.cli.options import EPILOG, common_options, parse_day, settings_from
from pipelines.config import ConfigError


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "forecast", help="publish the daily hedge-flow forecast (files under exports/)", epilog=EPILOG
    )
    common_options(p, source=False, api=False)
    p.add_argument("--date", help="forecast date YYYY-MM-DD (UTC; default today)")
    p.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="M",
        help="positioning model, repeatable (default: every model available)",
    )
    p.add_argument(
        "--horizon",
        action="append",
        type=float,
        dest="horizons",
        metavar="HOURS",
        help="horizon in hours, repeatable (default 1 and 24; 'to the next expiry' is always added)",
    )
    p.set_defaults(func=execute)


def execute(args) -> int:
    settings = settings_from(args)
    day = parse_day(args.date, "--date")
    for h in args.horizons or ():
        if not 0 < h <= 24 * 90:
            raise ConfigError(f"--horizon must be more than 0 and at most 2160 hours (90 days), got {h:g}")
    from pipelines.orchestration import engine

    print(engine.forecast(settings, day, args.models, args.horizons))
    return 0
