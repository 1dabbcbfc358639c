"""``gexflow grade``: grade every stored snapshot's forecast against what followed (exports/grades/)."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli.options import EPILOG, common_options, parse_day, settings_from
from pipelines.config import ConfigError


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "grade", help="grade every stored snapshot's forecast against what followed (exports/grades/)", epilog=EPILOG
    )
    common_options(p, source=False, api=False)
    p.add_argument("--since", help="first UTC day YYYY-MM-DD of forecasts to grade (default: the first snapshot)")
    p.add_argument("--until", help="last UTC day YYYY-MM-DD of forecasts to grade (default: the last snapshot)")
    p.add_argument(
        "--fit-until",
        help="UTC day YYYY-MM-DD: the GEX-conditioned scale is fitted on forecasts whose horizon ended by the end "
        "of that day and scored on forecasts made after it (default: no out-of-sample test)",
    )
    p.add_argument(
        "--tardis", type=Path, metavar="DIR", help="also use the recorded derivative_ticker index rows under DIR"
    )
    p.add_argument("--no-report", action="store_true", help="store the grades only; do not write exports/grades/")
    p.set_defaults(func=execute)


def execute(args) -> int:
    from datetime import UTC, datetime, timedelta

    from pipelines.cli.progress import counter
    from pipelines.jobs.grade import grade_cycle
    from pipelines.store.reads import stored_coins

    settings = settings_from(args)
    since, until = parse_day(args.since, "--since"), parse_day(args.until, "--until")
    fit_day = parse_day(args.fit_until, "--fit-until")
    fit_until = datetime.combine(fit_day, datetime.min.time(), UTC) + timedelta(days=1) if fit_day else None
    if args.tardis is not None and not args.tardis.is_dir():
        raise ConfigError(f"--tardis {args.tardis}: not a directory")
    result = grade_cycle(
        settings.data_dir,
        currencies=stored_coins(settings.data_dir, settings.currencies),
        since=since,
        until=until,
        fit_until=fit_until,
        tardis_dir=args.tardis,
        report=not args.no_report,
        progress=counter("forecasting (once per stored snapshot)"),
    )
    graded = result.grades.filter(result.grades["status"] == "graded").height
    print(
        f"graded {graded} of {result.grades.height} forecast(s) ({result.computed_forecasts} snapshot(s) forecast now, "
        f"{result.ticker_rows} derivative_ticker row(s) imported)"
    )
    if result.report_dir is not None:
        print(f"report: {result.report_dir / 'index.html'}")
    return 0
