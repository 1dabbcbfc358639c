"""``gexflow run``: one full cycle (snapshot, the trade tape on a live source, the analytics) and its summary."""

from __future__ import annotations

import time

from pipelines.cli.options import EPILOG, common_options, settings_from


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="one full cycle: ingest, then the analytics; prints a per-currency summary", epilog=EPILOG
    )
    common_options(p)
    p.set_defaults(func=execute)


def execute(args) -> int:
    """One full cycle: snapshot, then (live source) the trade tape, then the analytics."""
    from pipelines.orchestration import engine

    settings = settings_from(args)
    t0 = time.perf_counter()
    engine.full_cycle(settings)
    from pipelines.publishing import report
    from pipelines.store.reads import stored_coins

    print(report.run_summary(settings.data_dir, stored_coins(settings.data_dir, settings.currencies)))
    print(f"data dir {settings.data_dir} ({time.perf_counter() - t0:.1f} s)")
    return 0
