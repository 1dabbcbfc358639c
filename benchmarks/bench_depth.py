"""Cost of the depth tables (issue 15): ``python -m benchmarks.bench_depth --data-dir DIR [--since D --until D]
[--rounds 3]``.

Side by side on the same stored snapshots (a Tardis backfill, e.g. ``gexflow backfill --tardis
../shared/data/tardis --no-compute``), ``pipelines.jobs.compute.compute_cycle`` end to end (read, positions, analytics,
Parquet staging, one journaled commit) three ways, interleaved ``--rounds`` times so load on the machine hits
them alike, best round reported:

    today      the four analytic tables of before issue 15 (exposure_tables(depth=False))
    depth      plus exposure_by_expiry, key_levels_by_tenor and the vanna/charm columns (no scenarios)
    scenarios  plus scenario_profiles (the eight scenarios on the +-25 % grid in 1 % steps)

The data dir's analytic files are recomputed in place (idempotent); the last run is a full one, so the dir ends
as ``gexflow compute`` leaves it. Writes ``benchmarks/results/bench_depth.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from pipelines.jobs import compute
from transforms.gex import analytic_tables, exposure, scenarios

RESULTS = Path(__file__).resolve().parent / "results"


def _run(data_dir: Path, currencies, since, until, mode: str) -> tuple[float, int]:
    original_tables, original_depth, original_stored = (
        analytic_tables.exposure_tables,
        analytic_tables.DEPTH_TABLES,
        (scenarios.STORED_SCENARIOS),
    )
    try:
        if mode == "today":
            analytic_tables.exposure_tables = functools.partial(exposure.exposure_tables, depth=False)
            analytic_tables.DEPTH_TABLES = ()
        elif mode == "depth":
            scenarios.STORED_SCENARIOS = ()
            analytic_tables.DEPTH_TABLES = ("exposure_by_expiry", "key_levels_by_tenor")
        t0 = time.perf_counter()
        result = compute.compute_cycle(data_dir, currencies, since=since, until=until)
        return time.perf_counter() - t0, len(result.snapshots)
    finally:
        analytic_tables.exposure_tables, analytic_tables.DEPTH_TABLES = original_tables, original_depth
        scenarios.STORED_SCENARIOS = original_stored


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
    _run(args.data_dir, currencies, since, until, "scenarios")  # warm-up: numba caches, imports, page cache
    seconds: dict[str, list[float]] = {"today": [], "depth": [], "scenarios": []}
    snapshots = 0
    for _ in range(args.rounds):
        for mode in seconds:
            elapsed, snapshots = _run(args.data_dir, currencies, since, until, mode)
            seconds[mode].append(elapsed)
    best = {m: min(v) for m, v in seconds.items()}
    out = {
        "snapshots": snapshots,
        "range": [args.since, args.until],
        "seconds": seconds,
        "best_s": best,
        "ms_per_snapshot": {m: 1000 * s / snapshots for m, s in best.items()},
        "overhead_depth": best["depth"] / best["today"] - 1,
        "overhead_depth_and_scenarios": best["scenarios"] / best["today"] - 1,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_depth.json").write_text(json.dumps(out, indent=1) + "\n")
    for mode in seconds:
        runs = ", ".join(f"{s:.2f}" for s in seconds[mode])
        print(f"{mode:>9}: best {best[mode]:.2f} s = {out['ms_per_snapshot'][mode]:.1f} ms/snapshot ({runs})")
    both = out["overhead_depth_and_scenarios"]
    print(f"{snapshots} snapshots; depth +{out['overhead_depth']:.1%}, with scenarios +{both:.1%}")
    return out


if __name__ == "__main__":
    main()
