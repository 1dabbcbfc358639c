"""Cost of the depth tables (issue 15): ``python -m benchmarks.bench_depth --data-dir DIR [--since D --until D]
[--rounds 3]``.

Side by side on the same stored snapshots (a Tardis backfill, e.g. ``gexflow backfill --tardis
../shared/data/tardis --no-compute``), ``pipelines.jobs.compute.compute_cycle`` end to end (read, positions, analytics,
Parquet staging, one journaled commit) four ways, interleaved ``--rounds`` times so load on the machine hits
them alike; wall time and CPU time (this process, all threads: steadier than wall time on a shared box), best and
median round, each as the overhead over ``today``:

    today      the four analytic tables of before issue 15 (exposure_tables(depth=False))
    depth      plus exposure_by_expiry, key_levels_by_tenor and the vanna/charm columns (what compute stores)
    scenarios  plus scenario_profiles (the eight scenarios on the +-25 % grid in 1 % steps)
    full       plus hedge_ladder and hedge_ladder_volume (what compute stores with GEXFLOW_WHAT_IFS)

The data dir's analytic files are recomputed in place (idempotent); the last run is a full one, so the dir ends
as ``gexflow compute --what-ifs`` leaves it. Writes ``benchmarks/results/bench_depth.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from pipelines.jobs import compute
from transforms.gex import analytic_tables, hedge_ladder
from transforms.gex.depth import WHAT_IF_TABLES

RESULTS = Path(__file__).resolve().parent / "results"


def _run(data_dir: Path, currencies, since, until, mode: str) -> tuple[float, float, int]:
    saved = (analytic_tables.exposure_tables, analytic_tables.DEPTH_TABLES, hedge_ladder.STORED_BANDS)
    try:
        if mode == "today":
            analytic_tables.exposure_tables = functools.partial(saved[0], depth=False)
            analytic_tables.DEPTH_TABLES = ()
        elif mode == "depth":  # what-if tables empty, nothing priced; as in a dir that never stored them: no files
            analytic_tables.DEPTH_TABLES = tuple(t for t in saved[1] if t not in WHAT_IF_TABLES)
        elif mode == "scenarios":
            hedge_ladder.STORED_BANDS = ()
            analytic_tables.DEPTH_TABLES = tuple(t for t in saved[1] if t not in WHAT_IF_TABLES[1:])
        what_ifs = mode in ("scenarios", "full")
        t0, c0 = time.perf_counter(), time.process_time()
        result = compute.compute_cycle(data_dir, currencies, since=since, until=until, what_ifs=what_ifs)
        return time.perf_counter() - t0, time.process_time() - c0, len(result.snapshots)
    finally:
        analytic_tables.exposure_tables, analytic_tables.DEPTH_TABLES, hedge_ladder.STORED_BANDS = saved


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--since", default="2026-07-01")
    parser.add_argument("--until", default="2026-07-10")
    parser.add_argument("--currency", action="append", dest="currencies")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    since = datetime.fromisoformat(args.since).replace(tzinfo=UTC)
    until = datetime.fromisoformat(args.until).replace(tzinfo=UTC)
    currencies = args.currencies or ["BTC", "ETH"]
    _run(args.data_dir, currencies, since, until, "full")  # warm-up: numba caches, imports, page cache
    wall: dict[str, list[float]] = {"today": [], "depth": [], "scenarios": [], "full": []}
    cpu: dict[str, list[float]] = {m: [] for m in wall}
    snapshots = 0
    for _ in range(args.rounds):
        for mode in wall:
            elapsed, used, snapshots = _run(args.data_dir, currencies, since, until, mode)
            wall[mode].append(elapsed)
            cpu[mode].append(used)
    out = {"snapshots": snapshots, "range": [args.since, args.until], "wall_s": wall, "cpu_s": cpu}
    for name, runs in (("wall", wall), ("cpu", cpu)):
        best = {m: min(v) for m, v in runs.items()}
        median = {m: statistics.median(v) for m, v in runs.items()}
        out[f"{name}_ms_per_snapshot_best"] = {m: 1000 * s / snapshots for m, s in best.items()}
        out[f"{name}_overhead_best"] = {m: best[m] / best["today"] - 1 for m in runs}
        out[f"{name}_overhead_median"] = {m: median[m] / median["today"] - 1 for m in runs}
        for mode in runs:
            listed = ", ".join(f"{s:.2f}" for s in runs[mode])
            print(
                f"{name:>4} {mode:>9}: best {1000 * best[mode] / snapshots:.1f} ms/snapshot, "
                f"+{out[f'{name}_overhead_best'][mode]:.1%} best, +{out[f'{name}_overhead_median'][mode]:.1%} median "
                f"({listed} s)"
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_depth.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"{snapshots} snapshots, {args.rounds} interleaved rounds")
    return out


if __name__ == "__main__":
    main()
