"""Where the real-data recordings live and how to load them, for tests and benchmarks: the one place that says.

``DATA`` (tests/data, in the repository) holds the small recordings most tests read: the four API snapshots, the
tickers, the trade tape, one combo trade, the rate-limit error and eight days of Tardis chains (tests/data/README.md
says where each file came from). ``SHARED_DATA`` (../shared/data beside the repository, present in CI) holds the
large sets only a few tests need: the 7-month Tardis history (``FULL_TARDIS``). Those tests skip with a reason
when it is absent (tests/conftest.py NEEDS_SHARED, or the ``shared_data`` fixture). The tick-file tool is a
verbatim copy in tests/tools (``TICK_TOOL``), run on the tests/data days.

Independent of tests/conftest.py: import it directly (``from tests.data_paths import ...``).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from transforms.frames.normalise import instruments_frame, option_snapshot_frame, snapshot_ts_of

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
GOLDEN = TESTS / "golden"

# small real recordings shipped in the repository
DATA = TESTS / "data"
DERIBIT_API = DATA / "deribit-api"
SNAPSHOTS = DERIBIT_API / "snapshots"
TICKERS = DERIBIT_API / "tickers"
TRADES = DERIBIT_API / "trades" / "trades.BTC.option.20200221.jsonl"
COMBO_TRADES = DERIBIT_API / "combos" / "http_get_last_trades_option_combo.json"
RATE_LIMIT_ERROR = DERIBIT_API / "errors" / "too_many_requests.json"
TARDIS = DATA / "tardis"  # 2026-05-28..30 and 2026-07-27..31, the days the tests read

# the large sets, only beside the repository (CI, development machines)
SHARED = REPO_ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"
FULL_TARDIS = SHARED_DATA / "tardis"  # 2025-12-30..2026-07-31, 214 days
TICK_TOOL = TESTS / "tools" / "tardis_ticks.py"  # a byte-for-byte copy of ../shared/tools/tardis_ticks.py

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
