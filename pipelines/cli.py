"""``gexflow`` command line. Heavy imports happen inside commands so ``--help`` and errors are instant."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pipelines.config import ConfigError, Settings, load_settings

EPILOG = "Environment: GEXFLOW_DATA_DIR, GEXFLOW_DERIBIT_URL, GEXFLOW_CURRENCIES, GEXFLOW_SOURCE, GEXFLOW_ENGINE, PREFECT_API_URL."


def _common(parser: argparse.ArgumentParser, *, source: bool = True, api: bool = True) -> None:
    g = parser.add_argument_group("common options")
    g.add_argument("--data-dir", help="data directory (default ./data; env GEXFLOW_DATA_DIR)")
    g.add_argument("--currency", action="append", dest="currencies", metavar="C",
                   help="currency, repeatable or comma-separated: BTC, ETH, USDC (default BTC and ETH)")
    if api:
        g.add_argument("--api-url", help="Deribit API v2 base URL (default https://www.deribit.com/api/v2; env GEXFLOW_DERIBIT_URL)")
    if source:
        g.add_argument("--source", help="live (default), sample (bundled real snapshots) or replay:DIR")
        g.add_argument("--engine", choices=["auto", "direct", "prefect"],
                       help="auto (default): a Prefect flow run when PREFECT_API_URL is set, in-process otherwise")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gexflow", description="Dealer gamma exposure and hedging-flow analytics for Deribit options.", epilog=EPILOG
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("ingest", help="take an option-chain snapshot into the warehouse", epilog=EPILOG)
    _common(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("run", help="one full cycle: ingest, then the analytics; prints a per-currency summary", epilog=EPILOG)
    _common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("trades", help="ingest the option trade tape incrementally (de-duplicated, watermarked)", epilog=EPILOG)
    _common(p)
    p.add_argument("--trades-since", help="first run's start, ISO time (UTC if no offset); default 24 h ago")
    p.set_defaults(func=cmd_trades)

    p = sub.add_parser("sql", help="run a read-only SQL query against the warehouse", epilog=EPILOG)
    p.add_argument("query", nargs="?", help="SQL text (or use --file)")
    p.add_argument("--file", type=Path, help="a .sql file (e.g. sql/queries/latest_key_levels.sql)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="bind $NAME in the query (repeatable); values are bound, never formatted into the SQL")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--data-dir", help="data directory (default ./data; env GEXFLOW_DATA_DIR)")
    p.set_defaults(func=cmd_sql)
    return parser


def settings_from(args) -> Settings:
    flags = {k: getattr(args, k, None) for k in ("data_dir", "api_url", "source", "engine")}
    flags["currencies"] = tuple(args.currencies) if getattr(args, "currencies", None) else None
    return load_settings(flags)


# ---------------------------------------------------------------- commands


def _ingest(settings: Settings):
    engine = settings.engine
    if engine == "auto":
        engine = "prefect" if settings.prefect_api_url else "direct"
    if engine == "prefect":
        from pipelines.flows import snapshot_flow

        return snapshot_flow(list(settings.currencies), settings.source, str(settings.data_dir), settings.api_url)
    from pipelines.ingest import snapshot_cycle

    return snapshot_cycle(settings)


def cmd_ingest(args) -> int:
    settings = settings_from(args)
    t0 = time.perf_counter()
    _ingest(settings)
    print_snapshot_summary(settings, time.perf_counter() - t0)
    return 0


def cmd_run(args) -> int:
    """One full cycle: snapshot, then (live source) the trade tape, then the analytics."""
    settings = settings_from(args)
    t0 = time.perf_counter()
    _ingest(settings)
    if settings.source == "live":
        _trades(settings, None)
    print_snapshot_summary(settings, time.perf_counter() - t0)
    return 0


def parse_when(value: str | None, flag: str):
    """ISO date/time -> aware UTC datetime (naive means UTC); None stays None."""
    if value is None:
        return None
    from datetime import datetime, timezone

    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} must be an ISO date or time like 2026-07-31T08:00Z, got {value!r}") from None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _trades(settings: Settings, since):
    engine = settings.engine
    if engine == "auto":
        engine = "prefect" if settings.prefect_api_url else "direct"
    if engine == "prefect":
        from pipelines.flows import trades_flow

        return trades_flow(list(settings.currencies), str(settings.data_dir), settings.api_url,
                           since.isoformat() if since else None)
    from pipelines.trades import trades_cycle

    return trades_cycle(settings, trades_since=since)


def cmd_trades(args) -> int:
    settings = settings_from(args)
    since = parse_when(args.trades_since, "--trades-since")
    from pipelines import report

    _trades(settings, since)
    print(report.trades_summary(settings.data_dir, settings.currencies))
    return 0


def print_snapshot_summary(settings: Settings, elapsed: float) -> None:
    from pipelines import report

    print(report.snapshot_summary(settings.data_dir, settings.currencies))
    print(f"data dir {settings.data_dir} ({elapsed:.1f} s)")


def cmd_sql(args) -> int:
    from pipelines.tables import render
    from warehouse.catalog import connect_readonly

    settings = load_settings({"data_dir": args.data_dir})
    if bool(args.query) == bool(args.file):
        raise ConfigError("give either a query or --file FILE")
    if args.file:
        try:
            query = args.file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from None
    else:
        query = args.query
    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"--param must be NAME=VALUE, got {item!r}")
        params[name] = value
    con = connect_readonly(settings.data_dir)
    try:
        import duckdb

        try:
            cur = con.execute(query, params or None)
        except duckdb.Error as exc:
            raise ConfigError(f"query failed: {str(exc).splitlines()[0]}") from None
        if cur.description is None:
            return 0
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.close()
    print(render(columns, rows, args.format))
    return 0


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("gexflow: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line, never a traceback
        return _fail(exc)


def _expected_errors() -> tuple[type, ...]:
    from pipelines.errors import GexflowError
    from transforms.normalise import NormaliseError
    from transforms.schemas import SchemaError
    from warehouse import WarehouseError

    return (GexflowError, WarehouseError, ConfigError, NormaliseError, SchemaError)


def _fail(exc: BaseException) -> int:
    if os.environ.get("GEXFLOW_DEBUG"):
        import traceback

        traceback.print_exc()
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, _expected_errors()):
        print(f"gexflow: error: {message}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    if isinstance(exc, OSError):
        print(f"gexflow: error: {exc.strerror or message}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr)
        return 2
    print(f"gexflow: internal error: {type(exc).__name__}: {message} (GEXFLOW_DEBUG=1 shows the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
