"""``gexflow history``: key levels over the stored snapshots of one currency and model, with their changes."""

from __future__ import annotations

from pathlib import Path

from pipelines.cli.options import check_plot, data_dir_of, data_dir_option, format_option, model, time_range
from pipelines.config import ConfigError

TABLE_COLUMNS = (
    "snapshot_ts", "spot", "zero_gamma", "call_wall", "put_wall", "total_gex_usd",
    "spot_change_24h", "zero_gamma_change_24h", "total_gex_change_24h",
)  # fmt: skip


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "history", help="key levels over the stored snapshots: spot, zero gamma, walls, total GEX and their changes"
    )
    p.add_argument("--currency", default="BTC", help="one currency (default BTC)")
    p.add_argument(
        "--model", type=model, default="naive", help="naive, customer_long, taker_flow, custom (default naive)"
    )
    p.add_argument("--since", help="first snapshot time, ISO (UTC if no offset)")
    p.add_argument("--until", help="last snapshot time, ISO")
    p.add_argument(
        "--plot", type=Path, metavar="FILE", help="chart spot, zero gamma and walls over time (png, svg, pdf)"
    )
    format_option(p)
    data_dir_option(p)
    p.set_defaults(func=execute)


def execute(args) -> int:
    """The key_levels_history view for one currency and model (sql/views/key_levels_history.sql)."""
    since, until = time_range(args)
    if args.plot:
        check_plot(args.plot)
    from pipelines.publishing.history import load_history
    from pipelines.publishing.tables import render_frame

    data_dir = data_dir_of(args)
    currency = args.currency.strip().upper()
    frame = load_history(data_dir, currency, args.model, since, until)
    if frame.is_empty():
        raise ConfigError(f"no key levels for {currency} model {args.model} in that range: run `gexflow compute` first")
    if args.plot:
        from pipelines.publishing.depth_charts import history_chart

        history_chart(frame, args.plot)
    shown = frame
    if args.format == "table":
        shown = frame.select(*TABLE_COLUMNS)
        print(f"{currency} {args.model}: USD levels; total_gex_usd per 1 % move; changes vs the snapshot ~24 h before")
    print(render_frame(shown, args.format))
    if args.plot:
        print(f"chart written to {args.plot}")
    return 0
