"""Forecast grading benchmark: ``python -m benchmarks.bench_grade --data-dir DIR [--tardis DIR] [--reuse-forecasts]``.

DIR is a data dir after ``gexflow backfill --tardis ../shared/data/tardis`` (the whole history: 1,692 chain
snapshots, BTC and ETH). Its ``option_snapshots`` (and with ``--reuse-forecasts`` its ``forecast_history``)
are copied into a scratch dir, so DIR is not touched. Timed, each in one run of this script:

1. ``cold``: ``grade_cycle`` with no stored forecast history: the forecast made at every snapshot
   (naive and customer_long, 1 h / 24 h / next expiry) plus everything below. Skipped with ``--reuse-forecasts``.
2. ``grade``: ``grade_cycle`` again, forecasts stored: read the lake, import the derivative_ticker index rows,
   grade every forecast, the statistics (block bootstrap, Newey-West), one journaled commit, the report
   (HTML, 3 PNG charts, Parquet + CSV) -- what a re-grade over the whole history costs.
3. ``grade_math``: only ``transforms.grading.scores.grade_forecasts`` + the report tables, in memory.
4. ``reference`` (``--reference-days N``, default 4; 0 skips it): the forecast history of the first N stored
   days of each currency made both ways on the same chains -- batched (``history_forecasts``, what ``cold``
   runs) and one snapshot at a time (``history_forecasts_per_snapshot``, the code before the batching) --
   and whether the two agree to 1e-12 relative (and bit for bit).

Wall and CPU seconds are reported, with the load average before and after (the machine may be shared:
CPU time is the steadier figure). Writes ``benchmarks/results/bench_grade.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.jobs.grade import grade_cycle, load_prices
from pipelines.publishing.grade_report import report_tables
from transforms.frames.schemas import OPTION_SNAPSHOT
from transforms.grading.forecasts import history_forecasts, history_forecasts_per_snapshot
from transforms.grading.scores import grade_forecasts
from warehouse import lake

RESULTS = Path(__file__).resolve().parent / "results"
TARDIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tardis"
FIT_UNTIL = datetime(2026, 5, 1, tzinfo=UTC)
CURRENCIES = ("BTC", "ETH")


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - wall, 2), round(time.process_time() - cpu, 2)


def _copy(src: Path, dest: Path, tables) -> None:
    for table in tables:
        if (src / "lake" / table).is_dir():
            shutil.copytree(src / "lake" / table, dest / "lake" / table)


def _max_rel(a: pl.DataFrame, b: pl.DataFrame) -> float:
    worst = 0.0
    for col, dtype in a.schema.items():
        if dtype == pl.Float64:
            x, y = a[col].fill_null(np.nan).to_numpy(), b[col].fill_null(np.nan).to_numpy()
            both = np.isfinite(x) & np.isfinite(y)
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                return float("inf")
            scale = np.maximum(np.abs(y[both]), 1e-300)
            worst = max(worst, float(np.max(np.abs(x[both] - y[both]) / scale, initial=0.0)))
    return worst


def reference(data_dir: Path, days: int) -> dict:
    """Batched against one-snapshot-at-a-time forecast history on the first ``days`` days of each currency."""
    snaps = lake.scan(data_dir, "option_snapshots")
    first = snaps.select(pl.col("snapshot_ts").dt.date().min()).collect().item()
    chain = (
        snaps.filter(pl.col("snapshot_ts").dt.date() < first + timedelta(days=days))
        .select([pl.col(c).cast(t) for c, t in OPTION_SNAPSHOT.items()])
        .collect()
    )
    history_forecasts(chain.head(1))  # numba's compiled-function cache loaded outside the timing
    batched, b_wall, b_cpu = _timed(lambda: history_forecasts(chain))
    slow, s_wall, s_cpu = _timed(lambda: history_forecasts_per_snapshot(chain))
    n = chain.select("currency", "snapshot_ts").n_unique()
    return {
        "days": days,
        "snapshots": n,
        "batched": {"wall_s": b_wall, "cpu_s": b_cpu, "cpu_ms_per_snapshot": round(1000 * b_cpu / n, 1)},
        "per_snapshot": {"wall_s": s_wall, "cpu_s": s_cpu, "cpu_ms_per_snapshot": round(1000 * s_cpu / n, 1)},
        "max_relative_difference": _max_rel(batched, slow),
        "bit_identical": batched.equals(slow),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="a data dir after the whole Tardis backfill")
    ap.add_argument("--tardis", type=Path, default=TARDIS)
    ap.add_argument("--reuse-forecasts", action="store_true", help="copy forecast_history; skip the cold pass")
    ap.add_argument("--reference-days", type=int, default=4, help="days per currency for the reference (0: skip)")
    args = ap.parse_args()
    out: dict = {"data_dir": str(args.data_dir), "tardis": str(args.tardis), "fit_until": FIT_UNTIL.isoformat()}
    out["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    scratch = Path(tempfile.mkdtemp(prefix="bench_grade_"))
    try:
        data = scratch / "data"
        tables = ["option_snapshots"] + (["forecast_history"] if args.reuse_forecasts else [])
        _copy(args.data_dir, data, tables)
        kw = {"currencies": CURRENCIES, "fit_until": FIT_UNTIL, "tardis_dir": args.tardis}
        if not args.reuse_forecasts:
            cold, wall, cpu = _timed(lambda: grade_cycle(data, **kw))
            out["cold"] = {"wall_s": wall, "cpu_s": cpu, "snapshots_forecast": cold.computed_forecasts}
        warm, wall, cpu = _timed(lambda: grade_cycle(data, **kw))
        out["grade"] = {"wall_s": wall, "cpu_s": cpu, "snapshots_forecast": warm.computed_forecasts}
        out["forecasts"] = warm.grades.height
        out["graded"] = warm.grades.filter(warm.grades["status"] == "graded").height
        history = lake.scan(data, "forecast_history").collect()
        prices = load_prices(data, CURRENCIES, None)

        def math_only():
            return report_tables(grade_forecasts(history, prices), FIT_UNTIL)

        _, wall, cpu = _timed(math_only)
        out["grade_math"] = {"wall_s": wall, "cpu_s": cpu}
        if args.reference_days > 0:
            out["reference"] = reference(data, args.reference_days)
        out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_grade.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
