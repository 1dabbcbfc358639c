"""``gexflow status``: per currency, snapshots stored and computed, last ingest, trades, watermark, forecast."""

from __future__ import annotations

from pipelines.cli.options import EPILOG, data_dir_of, data_dir_option, format_option
from pipelines.config import ANALYTICS_VERSION


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "status",
        help="per currency: snapshots stored and computed, last ingest, trades and watermark, last forecast",
        epilog=EPILOG,
    )
    format_option(p)
    p.add_argument("--wide", action="store_true", help="table with one row per currency (wider than 100 columns)")
    data_dir_option(p)
    p.set_defaults(func=execute)


def execute(args) -> int:
    """The packaged sql/queries/data_status.sql: one row per currency."""
    from pipelines.publishing.tables import render
    from pipelines.store.reads import packaged_query, read_query

    data_dir = data_dir_of(args)
    query = packaged_query("data_status.sql").read_text(encoding="utf-8")
    columns, rows = read_query(data_dir, query, {"analytics_version": ANALYTICS_VERSION})
    if args.format == "table" and not args.wide:  # one column per currency: fits 100 columns
        import polars as pl

        from pipelines.publishing.tables import render_transposed

        print(render_transposed(pl.DataFrame(rows, schema=columns, orient="row"), key="currency"))
        return 0
    print(render(columns, rows, args.format))
    return 0
