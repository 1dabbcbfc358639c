"""``gexflow check``: verify the lake against the manifest of published files (exit 2 naming what is wrong)."""

from __future__ import annotations

import sys

from pipelines.cli.options import EPILOG, data_dir_of, data_dir_option
from pipelines.config import ConfigError


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "check",
        help="verify the lake against the manifest of published files; names missing or corrupt files (exit 2)",
        epilog=EPILOG,
    )
    data_dir_option(p)
    p.set_defaults(func=execute)


def execute(args) -> int:
    """Every lake file against the manifest its commit wrote (size and SHA-256); others must be readable Parquet."""
    from warehouse.manifest import verify

    data_dir = data_dir_of(args)
    if not (data_dir / "lake").is_dir():
        raise ConfigError(f"no lake under {data_dir}: nothing to check")
    checked, problems = verify(data_dir)
    for problem in problems:
        print(f"{data_dir / problem.path}: {problem.what}")
    if problems:
        print(f"gexflow check: {len(problems)} of {checked} lake file(s) damaged or missing", file=sys.stderr)
        return 2
    print(f"{checked} lake file(s) match what was published")
    return 0
