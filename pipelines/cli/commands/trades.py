"""``gexflow trades``: ingest the option trade tape incrementally, then re-compute the snapshots it reaches."""

from __future__ import annotations

from datetime import UTC, datetime

from pipelines.cli.options import EPILOG, common_options, parse_when, settings_from
from pipelines.config import ConfigError


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "trades", help="ingest the option trade tape incrementally (de-duplicated, watermarked)", epilog=EPILOG
    )
    common_options(p)
    p.add_argument("--trades-since", help="first run's start, ISO time (UTC if no offset); default 24 h ago")
    p.set_defaults(func=execute)


def execute(args) -> int:
    settings = settings_from(args)
    since = parse_when(args.trades_since, "--trades-since")
    if since is not None and since > datetime.now(UTC):  # checked before the data dir or its lock is made
        raise ConfigError(f"--trades-since {args.trades_since} is in the future")
    from pipelines.orchestration import engine
    from pipelines.publishing import report

    recomputed = engine.trades(settings, since)
    print(report.trades_summary(settings.data_dir, settings.currencies))
    if recomputed:
        print(f"re-computed {recomputed} stored snapshot(s) the new trades reach (taker_flow now sees them)")
    return 0
