"""Where the shared real-data recordings live and how to load them, for tests and benchmarks.

Independent of tests/conftest.py: import it directly (``from tests.data_paths import ...``).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from transforms.frames.normalise import instruments_frame, option_snapshot_frame, snapshot_ts_of

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DERIBIT_API = SHARED_DATA / "deribit-api"
SNAPSHOTS = DERIBIT_API / "snapshots"
TICKERS = DERIBIT_API / "tickers"
GOLDEN = Path(__file__).resolve().parent / "golden"

# the two real API snapshots (UTC stamps in the file names)
SNAPSHOT_STAMPS = ("20260105T153329Z", "20260731T113322Z")
CURRENCIES = ("BTC", "ETH")


def _result(path: Path):
    return json.loads(path.read_text())["result"]


def snapshot_chain(currency: str, stamp: str) -> pl.DataFrame:
    """OPTION_SNAPSHOT frame of one recorded snapshot, through the project's own normaliser."""
    book = _result(SNAPSHOTS / f"get_book_summary_by_currency.{currency}.{stamp}.json")
    instruments = _result(SNAPSHOTS / f"get_instruments.{currency}.{stamp}.json")
    index = _result(SNAPSHOTS / f"get_index_price.{currency}.{stamp}.json")["index_price"]
    return option_snapshot_frame(
        book, instruments_frame(instruments, snapshot_ts_of(book)), {f"{currency.lower()}_usd": index}, "sample"
    )


def all_snapshot_chains() -> pl.DataFrame:
    """The four recorded chains (BTC, ETH x two snapshots) in one frame."""
    return pl.concat([snapshot_chain(c, s) for s in SNAPSHOT_STAMPS for c in CURRENCIES])


def ticker_records() -> list[dict]:
    """The 415 recorded option tickers with Deribit's greeks (89 from 2021-07-22, 326 from 2020-05-21)."""
    rows = []
    for name in ("ticker.options.20210722.jsonl", "order_book.BTC.20200521.jsonl"):
        rows += [json.loads(line) for line in (TICKERS / name).read_text().splitlines() if line.strip()]
    return rows
