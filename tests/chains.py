"""Hand-made OPTION_SNAPSHOT frames for tests (conftest-independent helpers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from tests.reference import Option
from transforms.frames.schemas import OPTION_SNAPSHOT

SNAPSHOT_TS = datetime(2026, 7, 31, 11, 33, 22, 630000, tzinfo=UTC)
MS_PER_YEAR = 365 * 86_400_000


def option_row(
    *,
    strike: float,
    expiry_days: float,
    option_type: str = "call",
    open_interest: float = 100.0,
    mark_iv: float | None = 60.0,
    forward: float | None = 60_000.0,
    spot: float = 60_000.0,
    currency: str = "BTC",
    snapshot_ts: datetime = SNAPSHOT_TS,
    contract_size: float = 1.0,
    mark_price: float | None = 0.01,
    is_linear: bool = False,
    name: str | None = None,
) -> dict:
    """One OPTION_SNAPSHOT row; the expiry is ``expiry_days`` after the snapshot (whole ms)."""
    expiration_ts = snapshot_ts + timedelta(milliseconds=round(expiry_days * 86_400_000))
    if name is None:
        name = f"{currency}-{expiration_ts:%Y%m%d%H%M%S%f}-{strike:g}-{option_type[0].upper()}"
    return {
        "currency": currency,
        "snapshot_ts": snapshot_ts,
        "instrument_name": name,
        "option_type": option_type,
        "strike": float(strike),
        "expiration_ts": expiration_ts,
        "contract_size": contract_size,
        "is_linear": is_linear,
        "open_interest": float(open_interest),
        "mark_iv": mark_iv,
        "mark_price": mark_price,
        "bid_price": None,
        "ask_price": None,
        "underlying_price": forward,
        "underlying_index": "SYN.TEST",
        "index_price": spot,
        "source": "test",
    }


def chain_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=OPTION_SNAPSHOT, orient="row")


def reference_options(chain: pl.DataFrame, positions: pl.DataFrame) -> list[Option]:
    """The chain joined to dealer positions as reference Options (same tau arithmetic as the contract)."""
    rows = positions.join(chain, on=["currency", "snapshot_ts", "instrument_name"], how="inner").sort("instrument_name")
    out = []
    for r in rows.iter_rows(named=True):
        tau_ms = (r["expiration_ts"] - r["snapshot_ts"]) // timedelta(milliseconds=1)
        ok = r["mark_iv"] is not None and r["underlying_price"] is not None
        out.append(
            Option(
                forward=r["underlying_price"] if ok else 1.0,
                strike=r["strike"],
                sigma=r["mark_iv"] / 100.0 if ok else 0.0,
                tau=tau_ms / MS_PER_YEAR,
                weight=r["dealer_contracts"] * r["contract_size"],
                is_call=r["option_type"] == "call",
                is_linear=r["is_linear"],
                expiry=int(r["expiration_ts"].timestamp() * 1000),
            )
        )
    return out
