"""``gexflow levels``: print the key levels of the latest (or an --at) snapshot per currency and model."""

from __future__ import annotations

from pipelines.cli.options import EPILOG, data_dir_of, data_dir_option, format_option, model, parse_when
from pipelines.config import ConfigError

COLUMNS = (
    "currency",
    "snapshot_ts",
    "model",
    "spot",
    "total_gex_usd",
    "zero_gamma",
    "call_wall",
    "put_wall",
    "abs_gamma_strike",
    "max_pain",
    "max_pain_expiry",
    "gex_expiring_24h_share",
    "total_gex_vs_naive_usd",
    "zero_gamma_vs_naive",
)


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "levels", help="print the key levels: total GEX, zero gamma, walls, max pain", epilog=EPILOG
    )
    p.add_argument(
        "--currency",
        action="append",
        dest="currencies",
        help="BTC, ETH, SOL, ...; repeatable or comma-separated (default GEXFLOW_CURRENCIES, else BTC and ETH)",
    )
    p.add_argument("--at", help="use the latest snapshot at or before this ISO time (default: the latest)")
    p.add_argument("--model", type=model, default=None, help="naive, customer_long, taker_flow, custom (default all)")
    data_dir_option(p)
    format_option(p)
    p.set_defaults(func=execute)


def execute(args) -> int:
    import polars as pl

    from pipelines.cli.options import requested_currencies
    from pipelines.publishing.tables import render_frame, render_transposed
    from pipelines.store.lake_tables import Table

    frames = []
    for currency in requested_currencies(args):
        args.currency = currency
        frames.append(latest_rows(args, Table.KEY_LEVELS).sort("model").select(*COLUMNS))
    if args.format != "table":
        print(render_frame(pl.concat(frames), args.format))
        return 0
    for frame in frames:
        print(f"{frame['currency'][0]} at {frame['snapshot_ts'][0]:%Y-%m-%d %H:%M:%SZ} (USD unless stated)")
        print(render_transposed(frame.drop("currency", "snapshot_ts"), key="model"))
    print(
        "total_gex_usd: USD change of dealer delta per 1 % move (> 0 = dealers long gamma: they sell rallies, buy dips)"
    )
    return 0


def latest_rows(args, table: str):
    """Rows of ``table`` for ``args.currency`` (and ``args.model``) at the latest snapshot at or before --at;
    none stored: a ConfigError that says what to run, or which snapshots exist when --at is before them all."""
    from pipelines.store.reads import latest_at, stored_span

    data_dir = data_dir_of(args)
    at = parse_when(args.at, "--at")
    currency = args.currency.upper()
    frame = latest_at(data_dir, table, currency, at, args.model)
    if not frame.is_empty():
        return frame
    what = f"model {args.model} " if args.model else ""
    when = f" at or before {at:%Y-%m-%dT%H:%M:%SZ}" if at else ""
    span = stored_span(data_dir, table, currency, args.model) if at else None
    if span:
        n, first, last = span
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        stored = f"{n} snapshot(s) stored, from {first:{fmt}} to {last:{fmt}}; pick --at at or after the first"
        raise ConfigError(f"no {table} for {what}{currency}{when}: {stored}")
    raise ConfigError(f"no {table} for {what}{currency}{when}: run `gexflow run` or `gexflow compute` first")
