"""Trades benchmark: ``python -m benchmarks.bench_trades``.

1. Ingest: 1,000 pages x 1,000 synthetic trades in Deribit's field layout (every optional field
   present on some trades: mark_price, contracts, liquidation, block and combo ids). Consecutive pages
   overlap by 100 trades, as inclusive-start paging does, so ~10% of the 1 M rows are duplicates.
   Timed: ``pipelines.jobs.trades.normalise`` (page dicts -> TRADE frame, de-duplicated on (currency,
   trade_id)) + ``stage_trades`` (merge into the (currency, date) partitions, zstd Parquet) +
   ``files.commit``, into an empty lake. Not timed: generating the dicts, fetching, validation (GE).
   Then the same batch again into the now-full lake (every trade already stored: read, anti-join, no write).
2. taker_flow: ``transforms.gex.taker_flow.taker_flow_positions`` for a 1,000-option chain (one snapshot)
   from a 1 M-trade TRADE frame on those options (3% block/combo legs, 1% liquidations); also 24 hourly
   snapshots of the same chain.

Writes only under ``benchmarks/results/`` (gitignored): a scratch lake, removed at the end, and
``bench_trades.json``.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.jobs.trades import FetchedTrades, TradeWindow, normalise, stage_trades
from transforms.frames.schemas import OPTION_SNAPSHOT, TRADE
from transforms.gex.taker_flow import taker_flow_positions
from warehouse import files

RESULTS = Path(__file__).resolve().parent / "results"
T0 = datetime(2026, 7, 29, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
PAGES, PAGE, OVERLAP = 1000, 1000, 100
N_OPTIONS, N_TRADES = 1000, 1_000_000


def option_names(n: int) -> list[str]:
    expiries = [
        "31JUL26",
        "7AUG26",
        "14AUG26",
        "28AUG26",
        "25SEP26",
        "25DEC26",
        "26MAR27",
        "25JUN27",
        "24SEP27",
        "31DEC27",
    ]
    strikes = [20000 + 2000 * i for i in range(n // (2 * len(expiries)))]
    return [f"BTC-{e}-{k}-{cp}" for e in expiries for k in strikes for cp in "CP"][:n]


def synthetic_pages(rng: random.Random) -> list[dict]:
    """1,000 page results ({trades, has_more}); page p repeats the last 100 trades of page p-1."""
    names = option_names(N_OPTIONS)
    unique = PAGES * (PAGE - OVERLAP) + OVERLAP
    stream = []
    for i in range(unique):
        t = {
            "trade_seq": 1 + i // 7,
            "trade_id": str(300_000_000 + i),
            "timestamp": T0_MS + i * 250,  # 900 k trades over ~2.6 days: 3 daily partitions
            "tick_direction": i % 4,
            "price": round(0.0005 + (i % 400) * 0.0005, 4),
            "iv": 40.0 + (i % 300) / 10,
            "instrument_name": names[(i * 7919) % len(names)],
            "index_price": 64000.0 + (i % 1000),
            "direction": "buy" if rng.random() < 0.5 else "sell",
            "amount": float(rng.choice((0.1, 0.5, 1.0, 2.0, 10.0))),
            "mark_price": 0.01,
            "contracts": 1.0,
        }
        u = rng.random()
        if u < 0.02:
            t.update(block_trade_id=str(4_000 + i // 4), block_trade_leg_count=4, block_rfq_id=900 + i // 4)
        elif u < 0.03:
            t.update(combo_id="BTC-CS-14AUG26-60000_70000", combo_trade_id=str(500_000_000 + i // 2))
        elif u < 0.04:
            t["liquidation"] = "T"
        stream.append(t)
    step = PAGE - OVERLAP
    return [{"trades": stream[p * step : p * step + PAGE], "has_more": p < PAGES - 1} for p in range(PAGES)]


def bench_ingest(pages: list[dict]) -> dict:
    lake_dir = RESULTS / "bench_lake"
    shutil.rmtree(lake_dir, ignore_errors=True)
    end_ms = T0_MS + 4 * 86_400_000
    window = TradeWindow("BTC", T0_MS, end_ms, None)
    fetched = FetchedTrades(window, trades=[t for p in pages for t in p["trades"]], pages=len(pages))
    out = {"rows_fetched": len(fetched.trades)}
    t = time.perf_counter()
    frame = normalise([fetched])
    t_norm = time.perf_counter() - t
    staged, new, _first = stage_trades(frame, lake_dir)
    files.commit(lake_dir, staged)
    t_total = time.perf_counter() - t
    out.update(
        rows_unique=frame.height, new=new["BTC"], partitions=len(staged), normalise_dedupe_s=t_norm, ingest_s=t_total
    )
    t = time.perf_counter()
    frame = normalise([fetched])
    staged, new, _first = stage_trades(frame, lake_dir)
    files.commit(lake_dir, staged)
    out.update(rerun_new=new["BTC"], rerun_s=time.perf_counter() - t)
    stored = (
        pl.scan_parquet(str(lake_dir / "lake" / "trades" / "**" / "*.parquet"))
        .select(pl.len(), pl.col("trade_id").n_unique())
        .collect()
        .row(0)
    )
    out.update(stored_rows=stored[0], stored_unique=stored[1])
    shutil.rmtree(lake_dir, ignore_errors=True)
    return out


def chain_frame(names: list[str], snapshots: list[datetime]) -> pl.DataFrame:
    n = len(names)
    rows = pl.DataFrame({"instrument_name": names}).with_columns(
        pl.lit("BTC").alias("currency"),
        pl.when(pl.col("instrument_name").str.ends_with("C"))
        .then(pl.lit("call"))
        .otherwise(pl.lit("put"))
        .alias("option_type"),
        pl.col("instrument_name").str.split("-").list.get(2).cast(pl.Float64).alias("strike"),
        pl.lit(T0 + timedelta(days=30)).dt.cast_time_unit("ms").alias("expiration_ts"),
        pl.lit(1.0).alias("contract_size"),
        pl.lit(False).alias("is_linear"),
        pl.Series("open_interest", np.linspace(0.0, 900.0, n)),
        pl.lit(55.0).alias("mark_iv"),
        pl.lit(0.02).alias("mark_price"),
        pl.lit(None, pl.Float64).alias("bid_price"),
        pl.lit(None, pl.Float64).alias("ask_price"),
        pl.lit(64000.0).alias("underlying_price"),
        pl.lit("SYN").alias("underlying_index"),
        pl.lit(64000.0).alias("index_price"),
        pl.lit("bench").alias("source"),
    )
    snaps = pl.DataFrame({"snapshot_ts": pl.Series(snapshots, dtype=OPTION_SNAPSHOT["snapshot_ts"])})
    return snaps.join(rows, how="cross").select(list(OPTION_SNAPSHOT)).cast(OPTION_SNAPSHOT)


def trade_frame(names: list[str], n: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    kind = rng.random(n)
    ts = np.sort(rng.integers(T0_MS - 30 * 86_400_000, T0_MS + 86_400_000, n))
    frame = pl.DataFrame(
        {
            "currency": "BTC",
            "trade_id": pl.Series(np.arange(n)).cast(pl.String),
            "ts": pl.Series(ts).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
            "instrument_name": pl.Series(names).gather(rng.integers(0, len(names), n)),
            "direction": np.where(rng.random(n) < 0.5, "buy", "sell"),
            "amount": rng.choice([0.1, 0.5, 1.0, 2.0, 10.0], n),
            "_kind": kind,
        }
    ).with_columns(
        pl.when(pl.col("_kind") < 0.02).then(pl.lit("b")).alias("block_trade_id"),
        pl.when(pl.col("_kind").is_between(0.02, 0.03, closed="left")).then(pl.lit("BTC-CS")).alias("combo_id"),
        pl.when(pl.col("_kind").is_between(0.03, 0.04, closed="left")).then(pl.lit("T")).alias("liquidation"),
    )
    missing = {c: t for c, t in TRADE.items() if c not in frame.columns}
    return frame.with_columns(pl.lit(None, t).alias(c) for c, t in missing.items()).select(list(TRADE)).cast(TRADE)


def best_of(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times[0], min(times)


def bench_taker_flow() -> dict:
    names = option_names(N_OPTIONS)
    trades = trade_frame(names, N_TRADES)
    one = chain_frame(names, [T0])
    hourly = chain_frame(names, [T0 + timedelta(hours=h) for h in range(24)])
    first, best = best_of(lambda: taker_flow_positions(one, trades, tape_start=T0 - timedelta(days=60)), 5)
    first24, best24 = best_of(lambda: taker_flow_positions(hourly, trades), 3)
    rows = taker_flow_positions(one, trades).height
    return {
        "options": N_OPTIONS,
        "trades": N_TRADES,
        "rows": rows,
        "first_s": first,
        "best_s": best,
        "hourly24_first_s": first24,
        "hourly24_best_s": best24,
    }


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    pages = synthetic_pages(random.Random(42))
    ingest = bench_ingest(pages)
    del pages
    flow = bench_taker_flow()
    table = [
        ("ingest: normalise + dedupe (1 M rows)", f"{ingest['normalise_dedupe_s']:.2f} s", ""),
        ("ingest: normalise + dedupe + write (empty lake)", f"{ingest['ingest_s']:.2f} s", "<= 10 s"),
        (
            "  rows fetched / unique / stored",
            f"{ingest['rows_fetched']:,} / {ingest['rows_unique']:,} / {ingest['stored_unique']:,}",
            f"{ingest['partitions']} partitions",
        ),
        ("ingest: same batch again (all duplicates)", f"{ingest['rerun_s']:.2f} s", f"new = {ingest['rerun_new']}"),
        ("taker_flow: 1,000 options x 1 M trades, first", f"{flow['first_s']:.3f} s", "<= 1 s"),
        ("taker_flow: same, best of 5", f"{flow['best_s']:.3f} s", ""),
        ("taker_flow: 24 snapshots x 1,000 options, best of 3", f"{flow['hourly24_best_s']:.3f} s", ""),
    ]
    width = max(len(r[0]) for r in table)
    for name, value, note in table:
        print(f"{name:<{width}}  {value:>28}  {note}")
    (RESULTS / "bench_trades.json").write_text(json.dumps({"ingest": ingest, "taker_flow": flow}, indent=1))


if __name__ == "__main__":
    main()
