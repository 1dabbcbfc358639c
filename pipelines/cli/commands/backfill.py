"""``gexflow backfill``: option snapshots from Tardis CSV days or a replay directory, then their analytics."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli.options import EPILOG, common_options, duration_s, parse_day, settings_from


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "backfill", help="backfill snapshots from Tardis CSV files or a replay directory", epilog=EPILOG
    )
    common_options(p, source=False, api=False)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--tardis", type=Path, metavar="DIR", help="Tardis.dev options_chain + derivative_ticker CSV.gz files"
    )
    g.add_argument("--replay", type=Path, metavar="DIR", help="recorded API responses (e.g. <data-dir>/raw/deribit)")
    p.add_argument("--since", help="first UTC day YYYY-MM-DD (Tardis only; default: the first file)")
    p.add_argument("--until", help="last UTC day YYYY-MM-DD (Tardis only; default: the last file)")
    p.add_argument("--no-compute", action="store_true", help="do not compute analytics for the backfilled snapshots")
    p.add_argument(
        "--every",
        default="1h",
        metavar="DUR",
        help="Tardis: a chain snapshot as of every DUR from 00:00 UTC (default 1h; e.g. 15m, 30s)",
    )
    p.add_argument(
        "--max-staleness",
        default="1h",
        metavar="DUR",
        help="Tardis: leave out options (and a grouped file's index) last updated longer ago than DUR (default 1h)",
    )
    p.add_argument(
        "--each-timestamp",
        action="store_true",
        help="Tardis: the old reading of snapshot-grouped files, one snapshot per distinct timestamp "
        "(refuses tick-level files)",
    )
    p.add_argument(
        "--dask-address",
        metavar="ADDR",
        help="fan the Tardis days out over an existing Dask cluster (tcp://host:8786; GEXFLOW_DASK_ADDRESS) as a "
        "Prefect flow run; needs prefect-dask and a data dir every worker sees at the same path",
    )
    p.set_defaults(func=execute)


def execute(args) -> int:
    from pipelines.cli.progress import DayProgress, counter
    from pipelines.jobs.backfill_grid import Grid
    from pipelines.orchestration import engine

    settings = settings_from(args)
    request = engine.BackfillRequest(
        tardis_dir=args.tardis,
        replay_dir=args.replay,
        since=parse_day(args.since, "--since"),
        until=parse_day(args.until, "--until"),
        grid=Grid(duration_s(args.every, "--every"), duration_s(args.max_staleness, "--max-staleness")),
        each_timestamp=args.each_timestamp,
        compute=not args.no_compute,
    )
    return engine.backfill(settings, request, day_progress=DayProgress, progress=counter("computing"))
