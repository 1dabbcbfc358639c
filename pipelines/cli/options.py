"""Options and values the commands share: --data-dir, the common group (--currency, --api-url, --source,
--engine), --format, --model, and the parsing of dates, times and durations into one-line errors.

Light on purpose: every command module imports it while the parser is built (``gexflow --help``)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from pipelines.config import ConfigError, Settings, load_settings

EPILOG = (
    "Environment: GEXFLOW_DATA_DIR, GEXFLOW_DERIBIT_URL, GEXFLOW_CURRENCIES, GEXFLOW_SOURCE, GEXFLOW_ENGINE, "
    "PREFECT_API_URL."
)
FORMATS = ["table", "csv", "json"]
MODEL_NAMES = ("naive", "customer_long", "taker_flow", "custom")


def data_dir_option(parser) -> None:
    parser.add_argument("--data-dir", help="data directory (default ./data; env GEXFLOW_DATA_DIR)")


def format_option(parser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table")


def common_options(parser: argparse.ArgumentParser, *, source: bool = True, api: bool = True) -> None:
    g = parser.add_argument_group("common options")
    data_dir_option(g)
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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def model(text: str) -> str:
    if text not in MODEL_NAMES:
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; models: {', '.join(MODEL_NAMES)}")
    return text


def settings_from(args) -> Settings:
    flags = {k: getattr(args, k, None) for k in ("data_dir", "api_url", "source", "engine", "dask_address")}
    flags["currencies"] = tuple(args.currencies) if getattr(args, "currencies", None) else None
    return load_settings(flags)


def data_dir_of(args):
    """The data dir of a command that takes only --data-dir (flag, else GEXFLOW_DATA_DIR, else ./data)."""
    return load_settings({"data_dir": args.data_dir}).data_dir


def requested_currencies(args) -> list[str]:
    """Stored currencies from --currency (repeatable, comma-separated; any stored coin such as SOL) or, without
    it, GEXFLOW_CURRENCIES (default BTC, ETH; USDC stands for the coins of its linear options)."""
    given = [part.strip().upper() for item in args.currencies or () for part in item.split(",")]
    given = [c for c in given if c]
    if given:
        return list(dict.fromkeys(given))
    from pipelines.store.reads import stored_coins

    settings = load_settings({"data_dir": args.data_dir})
    return list(stored_coins(settings.data_dir, settings.currencies))


def parse_when(value: str | None, flag: str):
    """ISO date/time -> aware UTC datetime (naive means UTC); None stays None."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (ValueError, OverflowError):  # 9999-12-31T23:59-05:00 overflows in UTC
        raise ConfigError(f"{flag} must be an ISO date or time like 2026-07-31T08:00Z, got {value!r}") from None
    check_year(ts.year, flag, value)
    return ts


def time_range(args) -> tuple[datetime | None, datetime | None]:
    """(--since, --until) as UTC times; refuses a range that ends before it starts."""
    since, until = parse_when(args.since, "--since"), parse_when(args.until, "--until")
    if since and until and since > until:
        raise ConfigError(f"--since {args.since} is after --until {args.until}")
    return since, until


def check_year(year: int, flag: str, value: str) -> None:
    """Deribit lists options from 2016; a year outside 2000..2200 is a typo (and 9999 overflows date arithmetic)."""
    if not 2000 <= year <= 2200:
        raise ConfigError(f"{flag} must be between the years 2000 and 2200, got {value!r}")


def parse_day(value: str | None, flag: str):
    """``YYYY-MM-DD`` -> date; None stays None."""
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
    check_year(day.year, flag, value)
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


def check_plot(path) -> None:
    """--plot FILE: the format its extension names, or a refusal, before any work."""
    from pipelines.publishing.chart_text import image_format

    try:
        image_format(path)
    except ValueError as exc:
        raise ConfigError(f"--plot {exc}") from None
