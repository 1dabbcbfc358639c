"""Normalise Deribit API v2 response bodies into the frame contracts of :mod:`transforms.schemas`.

Pure: takes the already-parsed ``result`` payloads and returns frames.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import polars as pl

from transforms.schemas import INSTRUMENT, OPTION_SNAPSHOT, UTC_TS, check

_MONTHS = {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
# BTC-14AUG26-50000-C, SOL_USDC-10JUN22-28d5-P (USDC strikes write the decimal point as 'd')
_NAME = re.compile(
    r"^(?P<base>[A-Z0-9]+)(?:_(?P<settle>[A-Z]+))?-(?P<day>\d{1,2})(?P<mon>[A-Z]{3})(?P<yy>\d{2})-(?P<strike>[0-9d.]+)-(?P<cp>[CP])$"
)


class NormaliseError(ValueError):
    """A response body does not have the shape Deribit documents."""


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


def _ms(value) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=UTC)


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
            rows.append(
                {
                    "currency": ins["base_currency"],
                    "instrument_name": ins["instrument_name"],
                    "option_type": ins["option_type"],
                    "strike": float(ins["strike"]),
                    "expiration_ts": _ms(ins["expiration_timestamp"]),
                    "contract_size": float(ins["contract_size"]),
                    "settlement_period": ins.get("settlement_period"),
                    "settlement_currency": settle,
                    "price_index": ins.get("price_index") or f"{ins['base_currency'].lower()}_usd",
                    "is_linear": ins.get("instrument_type") == "linear" or settle in ("USDC", "USDT"),
                    "listed_ts": _ms(ins.get("creation_timestamp")),
                    "seen_ts": seen_ts,
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NormaliseError(f"get_instruments entry lacks {exc}: {ins.get('instrument_name', '?')}") from None
    frame = pl.DataFrame(rows, schema=INSTRUMENT, orient="row") if rows else pl.DataFrame(schema=INSTRUMENT)
    check(frame, INSTRUMENT, "instruments")
    return frame


def snapshot_ts_of(book_summary: list[dict]) -> datetime:
    """The snapshot time of a book summary: its (latest) ``creation_timestamp``, UTC."""
    stamps = [r.get("creation_timestamp") for r in book_summary if r.get("creation_timestamp") is not None]
    if not stamps:
        raise NormaliseError("book summary has no creation_timestamp")
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
            name = b["instrument_name"]
            ins = by_name.get(name)
            if ins is None:
                p = parse_option_name(name)
                settle = p["settlement_currency"]
                ins = {
                    "currency": p["base"],
                    "option_type": p["option_type"],
                    "strike": p["strike"],
                    "expiration_ts": p["expiration_ts"],
                    "contract_size": 1.0,
                    "is_linear": settle in ("USDC", "USDT"),
                    "price_index": f"{p['base'].lower()}_{'usdc' if settle == 'USDC' else 'usd'}",
                }
            index_price = index_prices.get(ins["price_index"])
            if index_price is None:
                raise NormaliseError(f"no index price for {ins['price_index']} ({name})")
            rows.append(
                {
                    "currency": ins["currency"],
                    "snapshot_ts": snapshot_ts,
                    "instrument_name": name,
                    "option_type": ins["option_type"],
                    "strike": ins["strike"],
                    "expiration_ts": ins["expiration_ts"],
                    "contract_size": ins["contract_size"],
                    "is_linear": ins["is_linear"],
                    "open_interest": float(b["open_interest"] or 0.0),
                    "mark_iv": _float(b.get("mark_iv")),
                    "mark_price": _float(b.get("mark_price")),
                    "bid_price": _float(b.get("bid_price")),
                    "ask_price": _float(b.get("ask_price")),
                    "underlying_price": _float(b.get("underlying_price")),
                    "underlying_index": b.get("underlying_index"),
                    "index_price": float(index_price),
                    "source": source,
                }
            )
        except KeyError as exc:
            raise NormaliseError(f"book summary entry lacks {exc}") from None
    frame = pl.DataFrame(rows, schema=OPTION_SNAPSHOT, orient="row")
    check(frame, OPTION_SNAPSHOT, "option_snapshots")
    return frame.sort("currency", "instrument_name")


def _float(value) -> float | None:
    return None if value is None else float(value)


__all__ = [
    "NormaliseError",
    "instruments_frame",
    "option_snapshot_frame",
    "parse_option_name",
    "snapshot_ts_of",
    "UTC_TS",
]
