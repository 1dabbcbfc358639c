"""Normalise Deribit API v2 response bodies into the frame contracts of :mod:`transforms.frames.schemas`.

Pure: takes the already-parsed ``result`` payloads and returns frames.

Types are strict (docs/data-quality.md): a numeric field is a JSON number or null. A string ("12,5",
even "12.5"), a boolean or an object is a :class:`NormaliseError` naming the body, the instrument,
the field and the value, never a silent conversion. A null stays null (a null open interest is not
0), and a number that is not finite (JSON ``NaN``/``Infinity``, or an integer too large for a float)
is kept as NaN/inf: those are values, not types, and the validation gate quarantines them.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

import polars as pl

from transforms.errors import GexflowError
from transforms.frames.schemas import INSTRUMENT, OPTION_SNAPSHOT, UTC_TS, check

_MONTHS = {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
# BTC-14AUG26-50000-C, SOL_USDC-10JUN22-28d5-P (USDC strikes write the decimal point as 'd')
_NAME = re.compile(
    r"^(?P<base>[A-Z0-9]+)(?:_(?P<settle>[A-Z]+))?-(?P<day>\d{1,2})(?P<mon>[A-Z]{3})(?P<yy>\d{2})-(?P<strike>[0-9d.]+)-(?P<cp>[CP])$"
)


class NormaliseError(GexflowError, ValueError):
    """A response body does not have the shape Deribit documents.

    ``body`` names the response it was found in (``get_book_summary_by_currency``, ``get_instruments``)
    when known, so the caller can name the file that holds it.
    """

    def __init__(self, message: str, body: str | None = None):
        super().__init__(message)
        self.body = body


_BOOK = "get_book_summary_by_currency"
_INSTRUMENTS = "get_instruments"
_EXPIRY = "expiration_timestamp"


def number(value, field: str, where: str, body: str | None = None) -> float | None:
    """A JSON number as a float (None stays None); any other type is a NormaliseError naming it.

    Integers too large for a float become inf (a value the validation gate refuses, not a type error).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NormaliseError(f"{where}: {field} is not a number: {value!r}"[:300], body)
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _text(value, field: str, where: str, body: str | None = None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise NormaliseError(f"{where}: {field} is not a string: {value!r}"[:300], body)


def parse_option_name(name: str) -> dict:
    """Parse an option instrument name into base coin, settlement, expiry (08:00 UTC), strike and type."""
    m = _NAME.match(name)
    if not m:
        raise NormaliseError(f"not an option instrument name: {name!r}")
    month = _MONTHS.get(m["mon"])
    if month is None:
        raise NormaliseError(f"bad month in instrument name: {name!r}")
    expiry = datetime(2000 + int(m["yy"]), month, int(m["day"]), 8, tzinfo=UTC)
    return {
        "base": m["base"],
        "settlement_currency": m["settle"] or m["base"],
        "expiration_ts": expiry,
        "strike": float(m["strike"].replace("d", ".")),
        "option_type": "call" if m["cp"] == "C" else "put",
    }


def _ms(value: float | None) -> datetime | None:
    """Epoch milliseconds as a UTC datetime; a value no datetime can hold (inf, 1e300) is a NormaliseError."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        raise NormaliseError(f"timestamp out of range: {value!r}") from None


def instruments_frame(instruments: list[dict], seen_ts: datetime) -> pl.DataFrame:
    """``public/get_instruments`` result -> INSTRUMENT frame (options only)."""
    if not isinstance(instruments, list):
        raise NormaliseError("get_instruments result is not a list")
    rows = []
    for ins in instruments:
        try:
            if ins.get("kind", "option") != "option":
                continue
            settle = ins.get("settlement_currency") or ins["base_currency"]
            where = f"{_INSTRUMENTS} entry {ins.get('instrument_name', '?')}"
            rows.append(
                {
                    "currency": _text(ins["base_currency"], "base_currency", where, _INSTRUMENTS),
                    "instrument_name": _text(ins["instrument_name"], "instrument_name", where, _INSTRUMENTS),
                    "option_type": _text(ins["option_type"], "option_type", where, _INSTRUMENTS),
                    "strike": number(ins["strike"], "strike", where, _INSTRUMENTS),
                    "expiration_ts": _ms(
                        number(ins["expiration_timestamp"], "expiration_timestamp", where, _INSTRUMENTS)
                    ),
                    "contract_size": number(ins["contract_size"], "contract_size", where, _INSTRUMENTS),
                    "settlement_period": ins.get("settlement_period"),
                    "settlement_currency": settle,
                    "price_index": ins.get("price_index") or f"{ins['base_currency'].lower()}_usd",
                    "is_linear": ins.get("instrument_type") == "linear" or settle in ("USDC", "USDT"),
                    "listed_ts": _ms(number(ins.get("creation_timestamp"), "creation_timestamp", where, _INSTRUMENTS)),
                    "seen_ts": seen_ts,
                }
            )
        except NormaliseError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            name = ins.get("instrument_name", "?") if isinstance(ins, dict) else "?"
            raise NormaliseError(f"{_INSTRUMENTS} entry lacks {exc}: {name}", _INSTRUMENTS) from None
    frame = pl.DataFrame(rows, schema=INSTRUMENT, orient="row") if rows else pl.DataFrame(schema=INSTRUMENT)
    check(frame, INSTRUMENT, "instruments")
    return frame


def snapshot_ts_of(book_summary: list[dict]) -> datetime:
    """The snapshot time of a book summary: its (latest) ``creation_timestamp``, UTC."""
    stamps = [
        number(
            r.get("creation_timestamp"), "creation_timestamp", f"{_BOOK} entry {r.get('instrument_name', '?')}", _BOOK
        )
        for r in book_summary
        if isinstance(r, dict) and r.get("creation_timestamp") is not None
    ]
    stamps = [s for s in stamps if math.isfinite(s)]
    if not stamps:
        raise NormaliseError("book summary has no creation_timestamp", _BOOK)
    return _ms(max(stamps))


def option_snapshot_frame(
    book_summary: list[dict],
    instruments: pl.DataFrame,
    index_prices: dict[str, float],
    source: str,
) -> pl.DataFrame:
    """``public/get_book_summary_by_currency`` result -> OPTION_SNAPSHOT frame.

    ``instruments`` (an INSTRUMENT frame) supplies strike, expiry, contract size and settlement; rows
    missing from it (listed between the two calls) fall back to the instrument name.
    ``index_prices`` maps a price index name (``btc_usd``) to its value. USDC-settled options are
    split by base coin: ``currency`` is the base coin (SOL), never USDC.
    """
    if not isinstance(book_summary, list):
        raise NormaliseError("get_book_summary_by_currency result is not a list")
    if not book_summary:
        return pl.DataFrame(schema=OPTION_SNAPSHOT)
    snapshot_ts = snapshot_ts_of(book_summary)
    by_name = {r["instrument_name"]: r for r in instruments.iter_rows(named=True)}
    rows = []
    for b in book_summary:
        try:
            rows.append(_book_row(b, by_name, snapshot_ts, index_prices, source))
        except KeyError as exc:
            raise NormaliseError(f"book summary entry lacks {exc}", _BOOK) from None
        except (TypeError, AttributeError):  # an entry that is not an object
            raise NormaliseError(f"book summary entry is not an object: {b!r}"[:300], _BOOK) from None
    frame = pl.DataFrame(rows, schema=OPTION_SNAPSHOT, orient="row")
    check(frame, OPTION_SNAPSHOT, "option_snapshots")
    return frame.sort("currency", "instrument_name")


def _book_row(b: dict, by_name: dict, snapshot_ts: datetime, index_prices: dict[str, float], source: str) -> dict:
    """One OPTION_SNAPSHOT row of a book summary entry; KeyError, TypeError or AttributeError when the entry
    lacks a field or is not an object (the caller names it)."""
    name = b["instrument_name"]
    if not isinstance(name, str):
        raise NormaliseError(f"{_BOOK} entry has no instrument_name string: {name!r}"[:300], _BOOK)
    where = f"{_BOOK} entry {name}"
    ins = by_name.get(name)
    if ins is None:
        ins = _instrument_from_name(name)
    index_price = index_prices.get(ins["price_index"])
    if index_price is None:
        raise NormaliseError(f"no index price for {ins['price_index']} ({name})")
    return {
        "currency": ins["currency"],
        "snapshot_ts": snapshot_ts,
        "instrument_name": name,
        "option_type": ins["option_type"],
        "strike": ins["strike"],
        "expiration_ts": ins["expiration_ts"],
        "contract_size": ins["contract_size"],
        "is_linear": ins["is_linear"],
        # a null stays null (the gate refuses it): never 0 contracts by default
        "open_interest": number(b["open_interest"], "open_interest", where, _BOOK),
        **{f: number(b.get(f), f, where, _BOOK) for f in _BOOK_NUMBERS},
        "underlying_index": _text(b.get("underlying_index"), "underlying_index", where, _BOOK),
        "index_price": float(index_price),
        "source": source,
    }


def _instrument_from_name(name: str) -> dict:
    """The instrument attributes a book row needs, from its name alone (listed between the two calls)."""
    p = parse_option_name(name)
    settle = p["settlement_currency"]
    return {
        "currency": p["base"],
        "option_type": p["option_type"],
        "strike": p["strike"],
        "expiration_ts": p["expiration_ts"],
        "contract_size": 1.0,
        "is_linear": settle in ("USDC", "USDT"),
        "price_index": f"{p['base'].lower()}_{'usdc' if settle == 'USDC' else 'usd'}",
    }


_BOOK_NUMBERS = ("mark_iv", "mark_price", "bid_price", "ask_price", "underlying_price")


__all__ = [
    "NormaliseError",
    "instruments_frame",
    "number",
    "option_snapshot_frame",
    "parse_option_name",
    "snapshot_ts_of",
    "UTC_TS",
]
