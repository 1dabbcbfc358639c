"""Tardis.dev downloadable CSV files of Deribit: finding the day files and reading them.

Layout (Tardis' own file names, one file per UTC day, gzipped):
``deribit_options_chain_<YYYY-MM-DD>_OPTIONS.csv.gz`` and
``deribit_derivative_ticker_<YYYY-MM-DD>_PERPETUALS.csv.gz``. They may sit in one folder (as
``tardis-dev``'s ``datasets.download`` writes them) or in ``options_chain/`` and ``derivative_ticker/``
subfolders of the Tardis directory (as ``../shared/data/tardis``); the directory is searched recursively.

Every failure is a one-line :class:`~pipelines.errors.SourceError` naming the file. The parsing and
mapping to the frame contracts is pure and lives in :mod:`transforms.frames.tardis`.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from pipelines.errors import SourceError
from transforms.frames.tardis import (
    DERIVATIVE_TICKER_COLUMNS,
    OPTIONS_CHAIN_COLUMNS,
    TardisFormatError,
    index_prices_frame,
    options_chain_frame,
)

_OPTIONS_CHAIN = re.compile(r"^deribit_options_chain_(?P<day>\d{4}-\d{2}-\d{2})_OPTIONS\.csv\.gz$")
_PATTERN = "deribit_options_chain_<YYYY-MM-DD>_OPTIONS.csv.gz"
_TICKER_NAME = "deribit_derivative_ticker_{day}_PERPETUALS.csv.gz"


@dataclass(frozen=True)
class TardisDay:
    day: date
    options_chain: Path
    derivative_ticker: Path


def day_of(path: Path) -> date:
    """The UTC day in an ``options_chain`` file name."""
    m = _OPTIONS_CHAIN.match(Path(path).name)
    if not m:
        raise SourceError(f"{path}: not a Tardis Deribit options_chain file name ({_PATTERN})")
    try:
        return date.fromisoformat(m["day"])
    except ValueError:
        raise SourceError(f"{path}: bad date in file name") from None


def ticker_file_for(options_chain: Path) -> Path:
    """The ``derivative_ticker`` file of the same day: next to the options_chain file, or in a sibling
    ``derivative_ticker/`` folder. SourceError when neither exists."""
    options_chain = Path(options_chain)
    name = _TICKER_NAME.format(day=f"{day_of(options_chain):%Y-%m-%d}")
    candidates = (options_chain.parent / name, options_chain.parent.parent / "derivative_ticker" / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SourceError(
        f"{options_chain}: no derivative_ticker file {name} for the index price "
        f"(looked in {candidates[0].parent} and {candidates[1].parent})"
    )


def find_days(tardis_dir: Path, since: date | None = None, until: date | None = None) -> list[TardisDay]:
    """The day files of ``tardis_dir`` with ``since <= day <= until`` (inclusive, UTC), sorted by day.

    Checks, before anything is read in full: the directory exists, at least one options_chain file
    is in range, every one has its derivative_ticker file and both headers have the Tardis columns.
    """
    root = Path(tardis_dir)
    if not root.is_dir():
        raise SourceError(f"Tardis directory {root} does not exist")
    found: dict[date, Path] = {}
    for path in sorted(root.rglob("deribit_options_chain_*.csv.gz")):
        day = day_of(path)
        if day in found:
            raise SourceError(f"Tardis directory {root} has two options_chain files for {day}: {found[day]} and {path}")
        found[day] = path
    in_range = {d: p for d, p in found.items() if (since is None or d >= since) and (until is None or d <= until)}
    if not in_range:
        span = f"{since or '...'} .. {until or '...'}"
        have = f" (it has {min(found)} .. {max(found)})" if found else ""
        raise SourceError(f"Tardis directory {root} has no {_PATTERN} files in {span}{have}")
    days = []
    for day, path in sorted(in_range.items()):
        ticker = ticker_file_for(path)
        check_header(path, OPTIONS_CHAIN_COLUMNS, "options_chain")
        check_header(ticker, DERIVATIVE_TICKER_COLUMNS, "derivative_ticker")
        days.append(TardisDay(day, path, ticker))
    return days


def check_header(path: Path, required: tuple[str, ...], kind: str) -> None:
    """Read only the first line: SourceError unless it names every ``required`` column."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            header = fh.readline().strip()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read gzip CSV ({_reason(exc)})") from None
    missing = [c for c in required if c not in header.split(",")]
    if missing:
        raise SourceError(f"{path}: not a Tardis {kind} file: header lacks {', '.join(missing)}")


GROUPED_HEAD_ROWS = 20_000  # rows looked at to tell a snapshot-grouped file from a tick-level one
GROUPED_MAX_TIMESTAMPS = 50  # a grouped file's first rows share a handful of timestamps; ticks have thousands


def check_grouped(path: Path) -> None:
    """SourceError unless the file is snapshot-grouped (all rows of a snapshot share one ``timestamp``), judged
    on its first rows: the each-timestamp reading would turn every tick of a tick-level file into a snapshot."""
    stamps: set[str] = set()
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            at = next(reader).index("timestamp")
            for k, row in enumerate(reader):
                if k >= GROUPED_HEAD_ROWS:
                    break
                stamps.add(row[at])
    except (OSError, EOFError, UnicodeDecodeError, zlib.error, ValueError, IndexError, StopIteration) as exc:
        raise SourceError(f"{path}: cannot read gzip CSV ({_reason(exc)})") from None
    if len(stamps) > GROUPED_MAX_TIMESTAMPS:
        raise SourceError(
            f"{path}: not snapshot-grouped ({len(stamps):,} distinct timestamps in its first {k:,} rows): "
            "a tick-level file is read as of a grid, without --each-timestamp"
        )


def _read_text_csv(path: Path) -> pl.DataFrame:
    """The whole file with every column as text (empty fields null), so a bad value is reported by line
    and column rather than as a type-inference error.

    polars would pad a line with too few fields with nulls (and silently null its prices), so the
    field count of every line is checked against the header first.
    """
    try:
        data = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read gzip CSV ({_reason(exc)})") from None
    try:
        lines = pl.read_csv(
            data,
            has_header=False,
            separator="\x1f",
            quote_char=None,
            infer_schema=False,
            new_columns=["line"],
            raise_if_empty=True,
        )
        commas = lines.select(pl.col("line").str.count_matches(",", literal=True).alias("n"))["n"]
        short = commas != commas[0]
        if short.any():
            at = int(short.arg_true()[0])
            raise SourceError(f"{path}: line {at + 1} has {commas[at] + 1} fields, the header {commas[0] + 1}")
        return pl.read_csv(data, infer_schema=False, raise_if_empty=True)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise SourceError(f"{path}: cannot read gzip CSV ({_reason(exc)})") from None


def read_options_chain(path: Path, currencies) -> pl.DataFrame:
    """Typed options_chain rows of ``currencies`` (see :func:`transforms.frames.tardis.options_chain_frame`)."""
    try:
        return options_chain_frame(_read_text_csv(path), currencies)
    except TardisFormatError as exc:
        raise SourceError(f"{path}: {exc}") from None


def read_index_prices(path: Path, currencies) -> pl.DataFrame:
    """(currency, index_ts_us, index_price) of the ``<C>-PERPETUAL`` rows of a derivative_ticker file."""
    try:
        return index_prices_frame(_read_text_csv(path), currencies)
    except TardisFormatError as exc:
        raise SourceError(f"{path}: {exc}") from None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


__all__ = [
    "TardisDay",
    "check_grouped",
    "check_header",
    "day_of",
    "find_days",
    "read_index_prices",
    "read_options_chain",
    "ticker_file_for",
]
