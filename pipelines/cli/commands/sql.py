"""``gexflow sql``: run a read-only SQL query against the warehouse, with bound ``$NAME`` parameters."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli.options import EPILOG, data_dir_of, data_dir_option, format_option
from pipelines.config import ConfigError


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser("sql", help="run a read-only SQL query against the warehouse", epilog=EPILOG)
    p.add_argument("query", nargs="?", help="SQL text (or use --file)")
    p.add_argument("--file", type=Path, help="a .sql file (e.g. sql/queries/latest_key_levels.sql)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="bind $NAME in the query (repeatable); values are bound, never formatted into the SQL",
    )
    format_option(p)
    data_dir_option(p)
    p.set_defaults(func=execute)


def execute(args) -> int:
    from pipelines.publishing.tables import render
    from pipelines.store.reads import read_query

    data_dir = data_dir_of(args)
    if bool(args.query) == bool(args.file):
        raise ConfigError("give either a query or --file FILE")
    query = query_text(args.file) if args.file else args.query
    columns, rows = read_query(data_dir, query, bound_params(args.param))
    if columns is not None:
        print(render(columns, rows, args.format))
    return 0


def query_text(path: Path) -> str:
    """A SQL file's text; a name like ``sql/queries/latest_key_levels.sql`` also finds the packaged copy."""
    from pipelines.store.reads import packaged_query

    if not path.exists():
        packaged = packaged_query(path.name)
        if packaged.is_file():
            return packaged.read_text(encoding="utf-8")
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def bound_params(items: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` items as a dict; a malformed or repeated NAME is refused."""
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"--param must be NAME=VALUE, got {item!r}")
        if name in params:
            raise ConfigError(f"--param {name} is given twice ({params[name]!r} and {value!r}); give it once")
        params[name] = value
    return params
