"""``gexflow profile``: the GEX profile and hedge flow per price level of one currency and model; optionally
re-priced (another vol model or delta convention), a what-if scenario, or a chart."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli.options import EPILOG, check_plot, data_dir_of, data_dir_option, format_option, model, positive_int
from pipelines.config import ConfigError
from pipelines.publishing.scenario_view import SCENARIO_NAMES

TABLE_COLUMNS = ("price_level", "pct_from_spot", "dealer_gex_usd", "dealer_delta", "hedge_flow_coins", "hedge_flow_usd")


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser("profile", help="print the GEX profile and hedge flow per price level", epilog=EPILOG)
    p.add_argument(
        "--currency",
        action="append",
        dest="currencies",
        help="BTC, ETH, SOL, ...; one currency (default the first of GEXFLOW_CURRENCIES, else BTC)",
    )
    p.add_argument("--at", help="use the latest snapshot at or before this ISO time (default: the latest)")
    p.add_argument(
        "--model", type=model, default="naive", help="naive, customer_long, taker_flow, custom (default naive)"
    )
    data_dir_option(p)
    format_option(p)
    p.add_argument(
        "--every",
        type=positive_int,
        default=8,
        help="print every Nth level (default 8 = 2 %% steps); csv/json print all",
    )
    p.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also draw GEX and hedge flow per level; the extension names the format: png, svg, pdf, jpg",
    )
    p.add_argument(
        "--vol",
        choices=["sticky-strike", "sticky-moneyness"],
        default="sticky-strike",
        help="how IVs move with spot (default sticky-strike, the stored profile); sticky-moneyness "
        "re-prices the stored snapshot and positions along each expiry's smile",
    )
    p.add_argument(
        "--scenario",
        choices=SCENARIO_NAMES,
        help="what-if: rolloff_next / rolloff_monthly (that expiry settled, re-priced then), iv_minus_10 .. "
        "iv_plus_10 (vol points), spot_vol (IV along the smile), time_24h; flow split into gamma, vanna, charm",
    )
    p.add_argument(
        "--delta",
        choices=["forward", "premium-adjusted"],
        default="forward",
        help="dealer delta convention (default forward: Black-76, coins); premium-adjusted = delta minus "
        "option value / forward for inverse options (re-priced, like --vol sticky-moneyness)",
    )
    p.set_defaults(func=execute)


def _repriced(args) -> bool:
    return args.vol != "sticky-strike" or args.delta != "forward"


def execute(args) -> int:
    from pipelines.cli.commands.levels import latest_rows
    from pipelines.cli.options import requested_currencies

    currencies = requested_currencies(args)
    if len(currencies) > 1 and args.currencies:
        raise ConfigError(f"profile shows one currency at a time, got {', '.join(currencies)}")
    args.currency = currencies[0]  # without --currency: the first of GEXFLOW_CURRENCIES
    if args.plot:
        check_plot(args.plot)  # before any work: the format the extension names, or a refusal

    from pipelines.store.lake_tables import Table

    frame = latest_rows(args, Table.GEX_PROFILE).sort("price_level")
    if args.scenario:
        from pipelines.publishing.scenario_view import show

        return show(args, frame, data_dir_of(args))
    if _repriced(args):
        frame = repriced_profile(args, frame["snapshot_ts"][0])
    if args.plot:
        _plot(args, frame)
    _print(args, frame)
    if args.plot:
        print(f"chart written to {args.plot}")
    return 0


def _plot(args, frame) -> None:
    from pipelines.publishing.charts import profile_chart
    from pipelines.store.lake_tables import Table
    from pipelines.store.reads import latest_at

    snapshot_ts = frame["snapshot_ts"][0]
    levels = latest_at(data_dir_of(args), Table.KEY_LEVELS, args.currency.upper(), snapshot_ts, args.model)
    profile_chart(frame, levels, args.plot)


def _print(args, frame) -> None:
    """The table (every --every-th level around spot, under a header line), or every level as csv/json."""
    import polars as pl

    from pipelines.publishing.tables import render_frame

    shown = frame
    if args.format == "table":
        n = frame.height
        mid = n // 2
        shown = frame[[i for i in range(n) if (i - mid) % args.every == 0]].select(*TABLE_COLUMNS)
        how = f" ({args.vol} vol, {args.delta} delta)" if _repriced(args) else ""
        print(
            f"{args.currency.upper()} {args.model} at {frame['snapshot_ts'][0]:%Y-%m-%d %H:%M:%SZ}{how}: "
            "dealer_gex_usd per 1 % move; dealer_delta in coins; hedge_flow > 0 = dealers buy"
        )
    if "pct_from_spot" in shown.columns:
        shown = shown.with_columns(pl.col("pct_from_spot").round(2))
    print(render_frame(shown, args.format))


def repriced_profile(args, snapshot_ts):
    """The profile of the stored snapshot and dealer positions with another vol model or delta convention
    (computed on the fly, not stored: the warehouse holds the sticky-strike, forward-delta profile)."""
    import polars as pl

    from pipelines.jobs.threads import chosen_threads
    from pipelines.store.reads import dealer_positions_at, load_chain
    from transforms.gex.exposure import gex_profile

    data_dir = data_dir_of(args)
    currency = args.currency.upper()
    chain = load_chain(data_dir, [currency], snapshot_ts, snapshot_ts)
    positions = dealer_positions_at(data_dir, currency, snapshot_ts, args.model)
    with chosen_threads():
        profile = gex_profile(
            chain, positions, vol_model=args.vol.replace("-", "_"), delta_convention=args.delta.replace("-", "_")
        )
    # csv/json readers have no header line: each row says which conventions produced it
    return profile.sort("price_level").with_columns(
        pl.lit(args.vol).alias("vol_model"), pl.lit(args.delta).alias("delta_convention")
    )
