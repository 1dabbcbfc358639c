"""``gexflow ingest``: take an option-chain snapshot into the warehouse."""

from __future__ import annotations

import time

from pipelines.cli.options import EPILOG, common_options, settings_from


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser("ingest", help="take an option-chain snapshot into the warehouse", epilog=EPILOG)
    common_options(p)
    p.set_defaults(func=execute)


def execute(args) -> int:
    from pipelines.orchestration import engine

    settings = settings_from(args)
    t0 = time.perf_counter()
    engine.snapshot(settings)
    from pipelines.publishing import report

    print(report.snapshot_summary(settings.data_dir, settings.currencies))
    print(f"data dir {settings.data_dir} ({time.perf_counter() - t0:.1f} s)")
    return 0
