"""``gexflow`` command line. Heavy imports happen inside commands so ``--help`` and errors are instant."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pipelines.cli import ladder
from pipelines.config import ANALYTICS_VERSION, ConfigError, Settings, load_settings
from pipelines.publishing.scenario_view import SCENARIO_NAMES

EPILOG = (
    "Environment: GEXFLOW_DATA_DIR, GEXFLOW_DERIBIT_URL, GEXFLOW_CURRENCIES, GEXFLOW_SOURCE, GEXFLOW_ENGINE, "
    "PREFECT_API_URL."
)


def _data_dir(parser) -> None:
    parser.add_argument("--data-dir", help="data directory (default ./data; env GEXFLOW_DATA_DIR)")


def _common(parser: argparse.ArgumentParser, *, source: bool = True, api: bool = True) -> None:
    g = parser.add_argument_group("common options")
    _data_dir(g)
    g.add_argument(
        "--currency",
        action="append",
        dest="currencies",
        metavar="C",
        help="currency, repeatable or comma-separated: BTC, ETH, USDC (default BTC and ETH)",
    )
    if api:
        g.add_argument(
            "--api-url",
            help="Deribit API v2 base URL (default https://www.deribit.com/api/v2; env GEXFLOW_DERIBIT_URL)",
        )
    if source:
        g.add_argument("--source", help="live (default), sample (bundled real snapshots) or replay:DIR")
        g.add_argument(
            "--engine",
            choices=["auto", "direct", "prefect"],
            help="auto (default): a Prefect flow run when PREFECT_API_URL is set, in-process otherwise",
        )


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (its default prints the whole usage block first)."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


class _Version(argparse.Action):
    """--version, looked up only when asked for (the package metadata read is not free at every start)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"gexflow {version()}")
        parser.exit()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


MODEL_NAMES = ("naive", "customer_long", "taker_flow", "custom")


def _model(text: str) -> str:
    if text not in MODEL_NAMES:
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; models: {', '.join(MODEL_NAMES)}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gexflow",
        description="Dealer gamma exposure and hedging-flow analytics for Deribit options.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("ingest", help="take an option-chain snapshot into the warehouse", epilog=EPILOG)
    _common(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "run", help="one full cycle: ingest, then the analytics; prints a per-currency summary", epilog=EPILOG
    )
    _common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "trades", help="ingest the option trade tape incrementally (de-duplicated, watermarked)", epilog=EPILOG
    )
    _common(p)
    p.add_argument("--trades-since", help="first run's start, ISO time (UTC if no offset); default 24 h ago")
    p.set_defaults(func=cmd_trades)

    p = sub.add_parser(
        "compute", help="(re)compute positions, GEX, profile and key levels for stored snapshots", epilog=EPILOG
    )
    _common(p, source=False, api=False)
    p.add_argument("--since", help="first snapshot time, ISO (UTC if no offset)")
    p.add_argument("--until", help="last snapshot time, ISO")
    p.add_argument("--book", type=Path, help="CSV/Parquet of instrument_name, contracts: adds the 'custom' model")
    p.add_argument("--include-blocks", action="store_true", help="count block trades and combo legs in taker_flow")
    p.set_defaults(func=cmd_compute)

    for name, helptext in (
        ("levels", "print the key levels: total GEX, zero gamma, walls, max pain"),
        ("profile", "print the GEX profile and hedge flow per price level"),
    ):
        p = sub.add_parser(name, help=helptext, epilog=EPILOG)
        p.add_argument(
            "--currency",
            action="append",
            dest="currencies",
            help="BTC, ETH, SOL, ...; "
            + (
                "repeatable or comma-separated (default GEXFLOW_CURRENCIES, else BTC and ETH)"
                if name == "levels"
                else "one currency (default the first of GEXFLOW_CURRENCIES, else BTC)"
            ),
        )
        p.add_argument("--at", help="use the latest snapshot at or before this ISO time (default: the latest)")
        p.add_argument(
            "--model",
            type=_model,
            default="naive" if name == "profile" else None,
            help="naive, customer_long, taker_flow, custom"
            + (" (default naive)" if name == "profile" else " (default all)"),
        )
        _data_dir(p)
        p.add_argument("--format", choices=["table", "csv", "json"], default="table")
        if name == "profile":
            p.add_argument(
                "--every",
                type=_positive_int,
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
        p.set_defaults(func=cmd_levels if name == "levels" else cmd_profile)

    _history_parser(sub)
    ladder.configure_parser(sub)

    p = sub.add_parser("backfill", help="backfill snapshots from Tardis CSV files or a replay directory", epilog=EPILOG)
    _common(p, source=False, api=False)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--tardis", type=Path, metavar="DIR", help="Tardis.dev options_chain + derivative_ticker CSV.gz files"
    )
    g.add_argument("--replay", type=Path, metavar="DIR", help="recorded API responses (e.g. <data-dir>/raw/deribit)")
    p.add_argument("--since", help="first UTC day YYYY-MM-DD (Tardis only; default: the first file)")
    p.add_argument("--until", help="last UTC day YYYY-MM-DD (Tardis only; default: the last file)")
    p.add_argument("--no-compute", action="store_true", help="do not compute analytics for the backfilled snapshots")
    p.add_argument(
        "--every",
        default="1h",
        metavar="DUR",
        help="Tardis: a chain snapshot as of every DUR from 00:00 UTC (default 1h; e.g. 15m, 30s)",
    )
    p.add_argument(
        "--max-staleness",
        default="1h",
        metavar="DUR",
        help="Tardis: leave out options (and a grouped file's index) last updated longer ago than DUR (default 1h)",
    )
    p.add_argument(
        "--each-timestamp",
        action="store_true",
        help="Tardis: the old reading of snapshot-grouped files, one snapshot per distinct timestamp "
        "(refuses tick-level files)",
    )
    p.add_argument(
        "--dask-address",
        metavar="ADDR",
        help="fan the Tardis days out over an existing Dask cluster (tcp://host:8786; GEXFLOW_DASK_ADDRESS) as a "
        "Prefect flow run; needs prefect-dask and a data dir every worker sees at the same path",
    )
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("forecast", help="publish the daily hedge-flow forecast (files under exports/)", epilog=EPILOG)
    _common(p, source=False, api=False)
    p.add_argument("--date", help="forecast date YYYY-MM-DD (UTC; default today)")
    p.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="M",
        help="positioning model, repeatable (default: every model available)",
    )
    p.add_argument(
        "--horizon",
        action="append",
        type=float,
        dest="horizons",
        metavar="HOURS",
        help="horizon in hours, repeatable (default 1 and 24; 'to the next expiry' is always added)",
    )
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser(
        "serve", help="serve the Prefect deployments on their UTC schedules until stopped", epilog=EPILOG
    )
    _common(p, source=False)
    p.add_argument("--list", action="store_true", help="print deployments, schedules and parameters; start nothing")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "grade", help="grade every stored snapshot's forecast against what followed (exports/grades/)", epilog=EPILOG
    )
    _common(p, source=False, api=False)
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
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("sql", help="run a read-only SQL query against the warehouse", epilog=EPILOG)
    p.add_argument("query", nargs="?", help="SQL text (or use --file)")
    p.add_argument("--file", type=Path, help="a .sql file (e.g. sql/queries/latest_key_levels.sql)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="bind $NAME in the query (repeatable); values are bound, never formatted into the SQL",
    )
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _data_dir(p)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser(
        "status",
        help="per currency: snapshots stored and computed, last ingest, trades and watermark, last forecast",
        epilog=EPILOG,
    )
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--wide", action="store_true", help="table with one row per currency (wider than 100 columns)")
    _data_dir(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "check",
        help="verify the lake against the manifest of published files; names missing or corrupt files (exit 2)",
        epilog=EPILOG,
    )
    _data_dir(p)
    p.set_defaults(func=cmd_check)
    return parser


def settings_from(args) -> Settings:
    flags = {k: getattr(args, k, None) for k in ("data_dir", "api_url", "source", "engine", "dask_address")}
    flags["currencies"] = tuple(args.currencies) if getattr(args, "currencies", None) else None
    return load_settings(flags)


# ---------------------------------------------------------------- commands


def _ingest(settings: Settings):
    if settings.uses_prefect:
        from pipelines.orchestration.flows import snapshot_flow

        return snapshot_flow(list(settings.currencies), settings.source, str(settings.data_dir), settings.api_url)
    from pipelines.jobs.ingest import snapshot_cycle

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
    if settings.uses_prefect:  # one flow run, as the hourly deployment: trades and compute are its subflow runs
        from pipelines.orchestration.flows import snapshot_flow

        coins, data_dir = list(settings.currencies), str(settings.data_dir)
        live = settings.source == "live"
        snapshot_flow(coins, settings.source, data_dir, settings.api_url, compute=True, refresh_tape=live)
    else:
        _ingest(settings)
        if settings.source == "live":
            _trades(settings, None)
        from pipelines.jobs.compute import compute_cycle

        compute_cycle(
            settings.data_dir,
            _coins(settings),
            only_missing=True,
            include_blocks=settings.include_blocks,
            kernel_threads=settings.kernel_threads,
        )
    from pipelines.publishing import report

    print(report.run_summary(settings.data_dir, _coins(settings)))
    print(f"data dir {settings.data_dir} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _coins(settings: Settings) -> tuple[str, ...]:
    """Currencies as stored: USDC options live under their base coins."""
    if "USDC" not in settings.currencies and "USDT" not in settings.currencies:
        return settings.currencies
    from warehouse import lake

    scan = lake.scan(settings.data_dir, "option_snapshots")
    stored = set(scan.select("currency").unique().collect()["currency"]) if scan is not None else set()
    coins = tuple(sorted(stored - {"BTC", "ETH"} | (set(settings.currencies) & {"BTC", "ETH"})))
    return coins or settings.currencies  # nothing stored yet: keep the names so errors can say which


def cmd_compute(args) -> int:
    settings = settings_from(args)
    from pipelines.jobs.compute import compute_cycle, load_book

    since, until = parse_when(args.since, "--since"), parse_when(args.until, "--until")
    if since and until and since > until:
        raise ConfigError(f"--since {args.since} is after --until {args.until}")
    notes: list[str] = []
    book = load_book(args.book, notes) if args.book else None
    for note in notes:
        print(f"warning: book {args.book}: {note}", file=sys.stderr)
    result = compute_cycle(
        settings.data_dir,
        _coins(settings),
        since=since,
        until=until,
        book=book,
        include_blocks=args.include_blocks or settings.include_blocks,
        progress=_progress("computing"),
        kernel_threads=settings.kernel_threads,
    )
    print(
        f"computed {len(result.snapshots)} snapshot(s): " + ", ".join(f"{t} {n} rows" for t, n in result.rows.items())
    )
    if result.book_unmatched:
        n, first = len(result.book_unmatched), result.book_unmatched[0]
        print(
            f"warning: {n} of {book.height} book instrument(s) are in none of these snapshots and count for nothing "
            f"(e.g. {first})",
            file=sys.stderr,
        )
    return 0


def _progress(label: str):
    """A one-line progress counter on stderr for long runs (silent when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(done, total, currency, ts):
        end = "\n" if done == total else "\r"
        print(f"{label} {done}/{total} {currency} {ts:%Y-%m-%d %H:%M}", end=end, file=sys.stderr, flush=True)

    return show


def _levels_frame(args, table: str):
    from pipelines.jobs.compute import latest_at

    settings = load_settings({"data_dir": args.data_dir})
    at = parse_when(args.at, "--at")
    currency = args.currency.upper()
    frame = latest_at(settings.data_dir, table, currency, at, args.model)
    if frame.is_empty():
        what = f"model {args.model} " if args.model else ""
        when = f" at or before {at:%Y-%m-%dT%H:%M:%SZ}" if at else ""
        stored = _stored_span(settings.data_dir, table, currency, args.model) if at else None
        if stored:
            raise ConfigError(f"no {table} for {what}{currency}{when}: {stored}")
        raise ConfigError(f"no {table} for {what}{currency}{when}: run `gexflow run` or `gexflow compute` first")
    return frame


def _stored_span(data_dir: Path, table: str, currency: str, model: str | None) -> str | None:
    """'N snapshot(s) from A to B', or None when ``table`` holds nothing for ``currency``."""
    import polars as pl

    from warehouse import lake

    scan = lake.scan(data_dir, table)
    if scan is None:
        return None
    scan = scan.filter(pl.col("currency") == currency)
    if model is not None:
        scan = scan.filter(pl.col("model") == model)
    span = scan.select(
        pl.col("snapshot_ts").n_unique().alias("n"),
        pl.col("snapshot_ts").min().alias("first"),
        pl.col("snapshot_ts").max().alias("last"),
    ).collect()
    n, first, last = span.row(0)
    if not n:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return f"{n} snapshot(s) stored, from {first:{fmt}} to {last:{fmt}}; pick --at at or after the first"


def _currencies(args) -> list[str]:
    """Stored currencies from --currency (repeatable, comma-separated; any stored coin such as SOL) or, without
    it, GEXFLOW_CURRENCIES (default BTC, ETH; USDC stands for the coins of its linear options)."""
    given = [part.strip().upper() for item in args.currencies or () for part in item.split(",")]
    given = [c for c in given if c]
    if given:
        return list(dict.fromkeys(given))
    return list(_coins(load_settings({"data_dir": args.data_dir})))


def cmd_levels(args) -> int:
    import polars as pl

    from pipelines.publishing.tables import render_frame, render_transposed

    frames = []
    for currency in _currencies(args):
        args.currency = currency
        frames.append(_levels_table(args))
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


def _levels_table(args):
    return (
        _levels_frame(args, "key_levels")
        .sort("model")
        .select(
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
    )


def cmd_profile(args) -> int:
    import polars as pl

    currencies = _currencies(args)
    if len(currencies) > 1 and args.currencies:
        raise ConfigError(f"profile shows one currency at a time, got {', '.join(currencies)}")
    args.currency = currencies[0]  # without --currency: the first of GEXFLOW_CURRENCIES
    if args.plot:
        from pipelines.publishing.charts import image_format

        try:
            image_format(args.plot)  # before any work: the format the extension names, or a refusal
        except ValueError as exc:
            raise ConfigError(f"--plot {exc}") from None

    from pipelines.publishing.tables import render_frame

    frame = _levels_frame(args, "gex_profile").sort("price_level")
    if args.scenario:
        from pipelines.publishing.scenario_view import show

        return show(args, frame, load_settings({"data_dir": args.data_dir}).data_dir)
    if args.vol != "sticky-strike" or args.delta != "forward":
        frame = _repriced_profile(args, frame["snapshot_ts"][0])
    if args.plot:
        from pipelines.jobs.compute import latest_at
        from pipelines.publishing.charts import profile_chart

        levels = latest_at(
            load_settings({"data_dir": args.data_dir}).data_dir,
            "key_levels",
            args.currency.upper(),
            frame["snapshot_ts"][0],
            args.model,
        )
        profile_chart(frame, levels, args.plot)
    shown = frame
    if args.format == "table":
        n = frame.height
        mid = n // 2
        keep = [i for i in range(n) if (i - mid) % args.every == 0]
        shown = frame[keep].select(
            "price_level", "pct_from_spot", "dealer_gex_usd", "dealer_delta", "hedge_flow_coins", "hedge_flow_usd"
        )
        how = f" ({args.vol} vol, {args.delta} delta)" if args.vol != "sticky-strike" or args.delta != "forward" else ""
        print(
            f"{args.currency.upper()} {args.model} at {frame['snapshot_ts'][0]:%Y-%m-%d %H:%M:%SZ}{how}: "
            "dealer_gex_usd per 1 % move; dealer_delta in coins; hedge_flow > 0 = dealers buy"
        )
    print(
        render_frame(
            shown.with_columns(pl.col("pct_from_spot").round(2)) if "pct_from_spot" in shown.columns else shown,
            args.format,
        )
    )
    if args.plot:
        print(f"chart written to {args.plot}")
    return 0


def _repriced_profile(args, snapshot_ts):
    """The profile of the stored snapshot and dealer positions with another vol model or delta convention
    (computed on the fly, not stored: the warehouse holds the sticky-strike, forward-delta profile)."""
    import polars as pl

    from pipelines.store.reads import load_chain
    from transforms.frames.schemas import DEALER_POSITION
    from transforms.gex.exposure import gex_profile
    from warehouse import lake

    data_dir = load_settings({"data_dir": args.data_dir}).data_dir
    currency = args.currency.upper()
    chain = load_chain(data_dir, [currency], snapshot_ts, snapshot_ts)
    positions = (
        lake.scan(data_dir, "dealer_positions")
        .filter(pl.col("currency") == currency, pl.col("snapshot_ts") == snapshot_ts, pl.col("model") == args.model)
        .select(list(DEALER_POSITION))
        .collect()
    )
    from pipelines.jobs.threads import chosen_threads

    with chosen_threads():
        profile = gex_profile(
            chain, positions, vol_model=args.vol.replace("-", "_"), delta_convention=args.delta.replace("-", "_")
        )
    # csv/json readers have no header line: each row says which conventions produced it
    return profile.sort("price_level").with_columns(
        pl.lit(args.vol).alias("vol_model"), pl.lit(args.delta).alias("delta_convention")
    )


def _history_parser(sub) -> None:
    p = sub.add_parser(
        "history", help="key levels over the stored snapshots: spot, zero gamma, walls, total GEX and their changes"
    )
    p.add_argument("--currency", default="BTC", help="one currency (default BTC)")
    p.add_argument(
        "--model", type=_model, default="naive", help="naive, customer_long, taker_flow, custom (default naive)"
    )
    p.add_argument("--since", help="first snapshot time, ISO (UTC if no offset)")
    p.add_argument("--until", help="last snapshot time, ISO")
    p.add_argument(
        "--plot", type=Path, metavar="FILE", help="chart spot, zero gamma and walls over time (png, svg, pdf)"
    )
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _data_dir(p)
    p.set_defaults(func=cmd_history)


def cmd_history(args) -> int:
    """The key_levels_history view for one currency and model (sql/views/key_levels_history.sql)."""
    since, until = parse_when(args.since, "--since"), parse_when(args.until, "--until")
    if since and until and since > until:
        raise ConfigError(f"--since {args.since} is after --until {args.until}")
    if args.plot:
        from pipelines.publishing.charts import image_format

        try:
            image_format(args.plot)
        except ValueError as exc:
            raise ConfigError(f"--plot {exc}") from None
    from pipelines.publishing.history import load_history
    from pipelines.publishing.tables import render_frame

    data_dir = load_settings({"data_dir": args.data_dir}).data_dir
    currency = args.currency.strip().upper()
    frame = load_history(data_dir, currency, args.model, since, until)
    if frame.is_empty():
        raise ConfigError(f"no key levels for {currency} model {args.model} in that range: run `gexflow compute` first")
    if args.plot:
        from pipelines.publishing.depth_charts import history_chart

        history_chart(frame, args.plot)
    shown = frame
    if args.format == "table":
        shown = frame.select(
            "snapshot_ts", "spot", "zero_gamma", "call_wall", "put_wall", "total_gex_usd",
            "spot_change_24h", "zero_gamma_change_24h", "total_gex_change_24h",
        )  # fmt: skip
        print(f"{currency} {args.model}: USD levels; total_gex_usd per 1 % move; changes vs the snapshot ~24 h before")
    print(render_frame(shown, args.format))
    if args.plot:
        print(f"chart written to {args.plot}")
    return 0


def parse_when(value: str | None, flag: str):
    """ISO date/time -> aware UTC datetime (naive means UTC); None stays None."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (ValueError, OverflowError):  # 9999-12-31T23:59-05:00 overflows in UTC
        raise ConfigError(f"{flag} must be an ISO date or time like 2026-07-31T08:00Z, got {value!r}") from None
    _check_year(ts.year, flag, value)
    return ts


def _check_year(year: int, flag: str, value: str) -> None:
    """Deribit lists options from 2016; a year outside 2000..2200 is a typo (and 9999 overflows date arithmetic)."""
    if not 2000 <= year <= 2200:
        raise ConfigError(f"{flag} must be between the years 2000 and 2200, got {value!r}")


def _trades(settings: Settings, since) -> int:
    """Run the trades cycle (as a flow with Prefect), then re-compute the stored snapshots the new trades
    reach; returns how many were re-computed."""
    if settings.uses_prefect:
        from pipelines.orchestration.flows import trades_flow

        out = trades_flow(
            list(settings.currencies), str(settings.data_dir), settings.api_url, since.isoformat() if since else None
        )
        return out["recomputed"]
    from pipelines.jobs.compute import refresh_taker_flow
    from pipelines.jobs.trades import trades_cycle

    result = trades_cycle(settings, trades_since=since)
    return len(refresh_taker_flow(settings.data_dir, result.first_new, settings.lock_wait_s, settings.include_blocks))


def cmd_trades(args) -> int:
    settings = settings_from(args)
    since = parse_when(args.trades_since, "--trades-since")
    if since is not None and since > datetime.now(UTC):  # checked before the data dir or its lock is made
        raise ConfigError(f"--trades-since {args.trades_since} is in the future")
    from pipelines.publishing import report

    recomputed = _trades(settings, since)
    print(report.trades_summary(settings.data_dir, settings.currencies))
    if recomputed:
        print(f"re-computed {recomputed} stored snapshot(s) the new trades reach (taker_flow now sees them)")
    return 0


def print_snapshot_summary(settings: Settings, elapsed: float) -> None:
    from pipelines.publishing import report

    print(report.snapshot_summary(settings.data_dir, settings.currencies))
    print(f"data dir {settings.data_dir} ({elapsed:.1f} s)")


def _day(value: str | None, flag: str):
    from datetime import date

    if value is None:
        return None
    import re

    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ConfigError(f"{flag} must be YYYY-MM-DD, got {value!r}")
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:  # 2026-02-30: the right shape, no such day
        raise ConfigError(f"{flag} {value} is not a calendar date ({exc})") from None
    _check_year(day.year, flag, value)
    return day


def duration_s(value: str, flag: str) -> int:
    """``1h``, ``15m``, ``30s`` or plain seconds -> whole seconds > 0."""
    units = {"h": 3600, "m": 60, "s": 1}
    text = str(value).strip().lower()
    scale = units.get(text[-1:], None)
    number = text[:-1] if scale else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise ConfigError(f"{flag} must be a duration like 1h, 15m or 30s, got {value!r}") from None
    if not (0 < seconds < 10 * 86_400) or seconds != int(seconds):
        raise ConfigError(f"{flag} must be whole seconds between 1 s and 10 days, got {value!r}")
    return int(seconds)


def cmd_backfill(args) -> int:
    from pipelines.jobs.backfill import backfill_cycle, check_grid
    from pipelines.jobs.backfill_grid import Grid

    settings = settings_from(args)
    since, until = _day(args.since, "--since"), _day(args.until, "--until")
    grid = Grid(duration_s(args.every, "--every"), duration_s(args.max_staleness, "--max-staleness"))
    check_grid(grid, args.each_timestamp)
    if settings.dask_address and settings.engine == "direct":
        raise ConfigError(
            "--dask-address fans the days out as a Prefect flow run; it cannot run with GEXFLOW_ENGINE=direct"
        )
    if settings.uses_prefect or settings.dask_address:
        from pipelines.orchestration.flows import backfill_runner

        out = backfill_runner(settings.dask_address)(
            list(settings.currencies),
            str(settings.data_dir),
            str(args.tardis) if args.tardis else None,
            str(args.replay) if args.replay else None,
            args.since,
            args.until,
            compute=not args.no_compute,
            every_s=grid.every_s,
            max_staleness_s=grid.max_staleness_s,
            each_timestamp=args.each_timestamp,
        )
        print(out)
        return int(out.get("exit_code", 0))
    with _day_progress() as progress:
        result = backfill_cycle(
            settings,
            tardis_dir=args.tardis,
            replay_dir=args.replay,
            since=since,
            until=until,
            progress=progress.done,
            on_read=progress.read,
            grid=grid,
            each_timestamp=args.each_timestamp,
        )
    for line in result.lines():
        print(line)
    if not args.no_compute:
        from pipelines.jobs.backfill import DEFAULT_LOCK_WAIT_S
        from pipelines.jobs.compute import compute_cycle

        # also after a resumed run that published nothing new: a run killed between its days' commit and
        # this compute left snapshots without analytics (missing-or-stale ones are computed, others skipped)
        if result.snapshots or _stored(settings):
            done = compute_cycle(
                settings.data_dir,
                _coins(settings),
                only_missing=True,
                include_blocks=settings.include_blocks,
                progress=_progress("computing"),
                kernel_threads=settings.kernel_threads,
                lock_wait_s=max(settings.lock_wait_s, DEFAULT_LOCK_WAIT_S),  # as the days: another writer is normal
            )
            print(f"computed {len(done.snapshots)} snapshot(s)")
    return result.exit_code


def _stored(settings: Settings) -> bool:
    """Whether the lake holds option snapshots of any of the settings' currencies."""
    from warehouse import lake

    return any(lake.currency_files(settings.data_dir, "option_snapshots", c) for c in _coins(settings))


class _day_progress:
    """Backfill progress per day: on a terminal a rich bar per day file (fraction read, rows read, then the
    snapshots built); piped, one line per day on stderr as each is published."""

    def __enter__(self):
        self.bar, self.tasks = None, {}
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.fields[day]}"),
                BarColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
        return self

    def _task(self, day):
        if day not in self.tasks:
            self.tasks[day] = self.bar.add_task("", total=1.0, day=str(day))
        return self.tasks[day]

    def read(self, day, fraction, rows) -> None:
        if self.bar is not None:
            self.bar.update(self._task(day), completed=fraction, description=f"{rows:,} rows read")

    def done(self, done, total, day) -> None:
        if self.bar is None:
            print(f"backfill {done}/{total} {day.line()}", file=sys.stderr, flush=True)
            return
        text = "already published" if day.resumed else f"{day.rows_read:,} rows read, {day.snapshots} snapshots built"
        self.bar.update(self._task(day.day), completed=1.0, description=text)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def cmd_forecast(args) -> int:
    settings = settings_from(args)
    day = _day(args.date, "--date")
    for h in args.horizons or ():
        if not 0 < h <= 24 * 90:
            raise ConfigError(f"--horizon must be more than 0 and at most 2160 hours (90 days), got {h:g}")
    if settings.uses_prefect:
        from pipelines.orchestration.flows import forecast_flow

        out = forecast_flow(list(_coins(settings)), str(settings.data_dir), args.date, args.models, args.horizons)
        print(f"forecast published to {out['folder']}")
        return 0
    from pipelines.jobs.forecast import forecast_cycle

    result = forecast_cycle(
        settings.data_dir,
        forecast_date=day,
        currencies=_coins(settings),
        models=args.models,
        horizons_hours=tuple(args.horizons) if args.horizons else (1, 24),
        now=datetime.now(UTC),
    )
    from pipelines.publishing import report

    print(report.forecast_summary(result))
    return 0


def cmd_grade(args) -> int:
    from datetime import timedelta

    from pipelines.jobs.grade import grade_cycle

    settings = settings_from(args)
    since, until = _day(args.since, "--since"), _day(args.until, "--until")
    fit_day = _day(args.fit_until, "--fit-until")
    fit_until = datetime.combine(fit_day, datetime.min.time(), UTC) + timedelta(days=1) if fit_day else None
    if args.tardis is not None and not args.tardis.is_dir():
        raise ConfigError(f"--tardis {args.tardis}: not a directory")
    result = grade_cycle(
        settings.data_dir,
        currencies=_coins(settings),
        since=since,
        until=until,
        fit_until=fit_until,
        tardis_dir=args.tardis,
        report=not args.no_report,
        progress=_progress("forecasting (once per stored snapshot)"),
    )
    graded = result.grades.filter(result.grades["status"] == "graded").height
    print(
        f"graded {graded} of {result.grades.height} forecast(s) ({result.computed_forecasts} snapshot(s) forecast now, "
        f"{result.ticker_rows} derivative_ticker row(s) imported)"
    )
    if result.report_dir is not None:
        print(f"report: {result.report_dir / 'index.html'}")
    return 0


def cmd_serve(args) -> int:
    import json

    from pipelines.orchestration.schedules import deployment_specs
    from pipelines.publishing.tables import render

    settings = settings_from(args)
    specs = deployment_specs(settings)
    if args.list:
        rows = [(s.name, s.flow, s.cron or "on demand", s.timezone, json.dumps(s.parameters)) for s in specs]
        print(render(["deployment", "flow", "cron", "timezone", "parameters"], rows))
        return 0
    if not settings.prefect_api_url:
        raise ConfigError(
            "gexflow serve needs a Prefect server for its scheduler: run `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from pipelines.orchestration.flows import serve

    serve(specs, settings.dask_address)
    return 0


def _query_text(path: Path) -> str:
    """A SQL file's text; a name like ``sql/queries/latest_key_levels.sql`` also finds the packaged copy."""
    if not path.exists():
        packaged = _packaged_query(path.name)
        if packaged.is_file():
            return packaged.read_text(encoding="utf-8")
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _packaged_query(name: str):
    """The installed copy of ``sql/queries/<name>``."""
    from importlib import resources

    return resources.files("sql") / "queries" / name


def _read_statements():
    import duckdb

    kinds = duckdb.StatementType
    return frozenset({kinds.SELECT, kinds.EXPLAIN, kinds.PRAGMA, kinds.CALL})


def cmd_sql(args) -> int:
    from pipelines.publishing.tables import render

    settings = load_settings({"data_dir": args.data_dir})
    if bool(args.query) == bool(args.file):
        raise ConfigError("give either a query or --file FILE")
    if args.file:
        query = _query_text(args.file)
    else:
        query = args.query
    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"--param must be NAME=VALUE, got {item!r}")
        if name in params:
            raise ConfigError(f"--param {name} is given twice ({params[name]!r} and {value!r}); give it once")
        params[name] = value
    columns, rows = _read_query(settings.data_dir, query, params)
    if columns is not None:
        print(render(columns, rows, args.format))
    return 0


def _read_query(data_dir: Path, query: str, params: dict) -> tuple[list[str] | None, list]:
    """(column names, rows) of a read-only query on the warehouse; columns None for a statement without rows."""
    from warehouse.catalog import connect_readonly

    con = connect_readonly(data_dir)
    try:
        import duckdb

        try:
            kinds = [st.type for st in con.extract_statements(query)]
            # the connection is read-only, which stops writes to the database but not COPY ... TO, EXPORT or
            # ATTACH, which write files anywhere (into the lake too): only statements that read are run
            refused = sorted({k.name for k in kinds if k not in _read_statements()})
            if refused:
                raise ConfigError(
                    f"gexflow sql is read-only (SELECT, EXPLAIN, PRAGMA, CALL); refused: {', '.join(refused)}"
                )
            cur = con.execute(query, params or None)
        except duckdb.Error as exc:
            raise ConfigError(f"query failed: {str(exc).splitlines()[0]}") from None
        if cur.description is None:
            return None, []
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()


def cmd_status(args) -> int:
    """The packaged sql/queries/data_status.sql: one row per currency."""
    from pipelines.publishing.tables import render

    settings = load_settings({"data_dir": args.data_dir})
    query = _packaged_query("data_status.sql").read_text(encoding="utf-8")
    columns, rows = _read_query(settings.data_dir, query, {"analytics_version": ANALYTICS_VERSION})
    if args.format == "table" and not args.wide:  # one column per currency: fits 100 columns
        import polars as pl

        from pipelines.publishing.tables import render_transposed

        print(render_transposed(pl.DataFrame(rows, schema=columns, orient="row"), key="currency"))
        return 0
    print(render(columns, rows, args.format))
    return 0


def cmd_check(args) -> int:
    """Every lake file against the manifest its commit wrote (size and SHA-256); others must be readable Parquet."""
    from warehouse.manifest import verify

    data_dir = load_settings({"data_dir": args.data_dir}).data_dir
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


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("gexflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gexflow ... | head`: the reader left; stop quietly, as other command-line tools do
        return _reader_gone()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one line, never a traceback
        if _interrupted(exc):  # Ctrl-C inside a numba kernel or a Rust library arrives wrapped
            print("gexflow: interrupted", file=sys.stderr)
            return 130
        return _fail(exc, getattr(args, "data_dir", None))


def _interrupted(exc: BaseException | None, depth: int = 0) -> bool:
    """Whether ``exc`` is, wraps or groups a KeyboardInterrupt (SystemError from a numba kernel, pyo3's
    PanicException, an exception group of worker threads)."""
    if exc is None or depth > 10:
        return False
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup) and any(_interrupted(e, depth + 1) for e in exc.exceptions):
        return True
    return _interrupted(exc.__cause__ or exc.__context__, depth + 1)


def _reader_gone() -> int:
    """stdout's reader closed the pipe: point stdout at /dev/null so the interpreter's final flush cannot
    fail again, and exit like a process ended by SIGPIPE (128 + 13), without a message."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("gexflow")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _is_unreadable_parquet(exc: BaseException) -> bool:
    import duckdb
    import polars as pl

    readers = (pl.exceptions.ComputeError, duckdb.InvalidInputException, duckdb.IOException)
    return isinstance(exc, readers) and "parquet" in str(exc).lower()


def _unreadable_files(data_dir) -> str:
    """ "; unreadable: <paths>" naming the damaged lake files, or "" when none is found."""
    try:
        from warehouse.manifest import unreadable

        bad = unreadable(load_settings({"data_dir": data_dir}).data_dir)
    except Exception:  # noqa: BLE001 - naming the file is a courtesy; the error itself is reported anyway
        return ""
    return f"; unreadable: {', '.join(bad)} (see gexflow check)" if bad else ""


def _fail(exc: BaseException, data_dir=None) -> int:
    from pipelines.config import debug_enabled

    if debug_enabled():
        import traceback

        traceback.print_exc()
    message = " ".join(str(exc).split()) or type(exc).__name__
    from pipelines.errors import expected_errors

    if isinstance(exc, expected_errors()):
        print(f"gexflow: error: {message}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    if isinstance(exc, OSError):
        print(
            f"gexflow: error: {exc.strerror or message}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr
        )
        return 2
    if _is_unreadable_parquet(exc):  # a damaged lake file is a storage problem, not a bug
        where = _unreadable_files(data_dir)
        print(
            f"gexflow: error: a Parquet file under the data dir is unreadable{where}: {message[:300]}",
            file=sys.stderr,
        )
        return 2
    print(
        f"gexflow: internal error: {type(exc).__name__}: {message} (GEXFLOW_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    return 1
