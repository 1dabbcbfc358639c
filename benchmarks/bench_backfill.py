"""Tardis backfill benchmark: ``python -m benchmarks.bench_backfill [--days N | --all] [--tardis DIR]``.

Backfills (the ``--each-timestamp`` reading, whose steps it times; the as-of grid reading of
tick-level files is ``benchmarks/bench_tardis_ticks.py``) the first N day files (default 30) of the
recorded Tardis history (``../shared/data/tardis``: 214 days, 1,692 chain snapshots, 1.37 M option
rows) into an empty scratch data dir with
:func:`pipelines.jobs.backfill.backfill_cycle`, end to end: read and parse the gzip CSVs, normalise, build
the derived instruments, Great Expectations validation, zstd Parquet staging, one journaled commit per
day, the DuckDB views. Then runs the same backfill again (every file replaced by an identical one), and
finally ``gexflow compute`` over every landed snapshot (models naive and customer_long: no trade tape), the
analytics a backfill runs next unless ``--no-compute``.

Reported: wall time (the first day includes the one-off Great Expectations import and context, also
shown on its own), option rows/s and chain snapshots/s (a snapshot = one currency's chain at one
timestamp), a per-step split (read+parse, normalise, validate, stage, commit) and the linear
extrapolation to all 214 days. The scratch dir (under the system temp dir) is removed at the end;
only ``benchmarks/results/bench_backfill.json`` is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from pipelines.config import Settings
from pipelines.jobs import backfill, ingest
from pipelines.jobs.compute import compute_cycle
from warehouse import files

RESULTS = Path(__file__).resolve().parent / "results"
TARDIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tardis"
ALL_DAYS, ALL_ROWS, ALL_SNAPSHOTS = 214, 1_368_548, 1_692  # the recorded history (data README, counted)


class StepTimer:
    """Wraps the functions backfill_day calls (by module attribute) and sums their wall time."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._undo: list = []

    def wrap(self, module, name: str, label: str) -> None:
        original = getattr(module, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0

        setattr(module, name, timed)
        self._undo.append((module, name, original))

    def restore(self) -> None:
        for module, name, original in reversed(self._undo):
            setattr(module, name, original)
        self._undo.clear()


def run(days: int, tardis_dir: Path) -> dict:
    paths = backfill.plan_backfill(tardis_dir)[:days]
    since, until = backfill.tardis.day_of(paths[0]), backfill.tardis.day_of(paths[-1])
    scratch = Path(tempfile.mkdtemp(prefix="gexflow-bench-backfill-"))
    timer = StepTimer()
    timer.wrap(backfill.tardis, "read_options_chain", "read_parse")
    timer.wrap(backfill.tardis, "read_index_prices", "read_parse")
    timer.wrap(backfill, "option_snapshot_frame", "normalise")
    timer.wrap(backfill, "snapshot_index_prices", "normalise")
    timer.wrap(backfill, "_batches", "normalise")
    timer.wrap(backfill, "validate_batches", "validate")
    timer.wrap(ingest, "stage", "stage")
    timer.wrap(files, "commit", "commit")
    try:
        settings = Settings(data_dir=scratch / "data")
        t0 = time.perf_counter()
        first = backfill.backfill_cycle(settings, tardis_dir=tardis_dir, since=since, until=since, each_timestamp=True)
        cold_first_day = time.perf_counter() - t0
        timer.seconds.clear()
        t0 = time.perf_counter()
        result = backfill.backfill_cycle(settings, tardis_dir=tardis_dir, since=since, until=until, each_timestamp=True)
        warm = time.perf_counter() - t0
        steps = dict(timer.seconds)
        t0 = time.perf_counter()
        again = backfill.backfill_cycle(settings, tardis_dir=tardis_dir, since=since, until=until, each_timestamp=True)
        rerun = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (scratch / "data" / "lake").rglob("*.parquet"))
        t0 = time.perf_counter()
        computed = compute_cycle(settings.data_dir, list(settings.currencies))
        compute_s = time.perf_counter() - t0
    finally:
        timer.restore()
        shutil.rmtree(scratch, ignore_errors=True)
    rows, snapshots = result.rows, result.snapshots
    return {
        "days": len(paths),
        "first_day": str(since),
        "last_day": str(until),
        "rows": rows,
        "snapshots": snapshots,
        "failed": len(result.failed) + len(again.failed) + len(first.failed),
        "cold_first_day_s": round(cold_first_day, 2),
        "warm_s": round(warm, 2),
        "rerun_s": round(rerun, 2),
        "rows_per_s": round(rows / warm),
        "snapshots_per_s": round(snapshots / warm, 1),
        "s_per_day": round(warm / len(paths), 3),
        "steps_s": {k: round(v, 2) for k, v in steps.items()},  # of the warm pass
        "lake_mb": round(size / 1e6, 1),
        "compute_s": round(compute_s, 2),
        "compute_snapshots": len(computed.snapshots),
        "compute_snapshots_per_s": round(len(computed.snapshots) / compute_s, 1),
        "compute_profile_rows": computed.rows.get("gex_profile", 0),
        "extrapolated_all_214_days_s": round(warm / len(paths) * ALL_DAYS + cold_first_day, 1),
        "extrapolated_by_rows_s": round(ALL_ROWS / (rows / warm) + cold_first_day, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_backfill", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="day files to backfill, from the oldest (default 30)")
    parser.add_argument("--all", action="store_true", help="every day file (214 in the recorded history)")
    parser.add_argument("--tardis", type=Path, default=TARDIS, help="Tardis directory (default ../shared/data/tardis)")
    args = parser.parse_args(argv)
    out = run(10_000 if args.all else args.days, args.tardis)
    print(
        f"backfill {out['days']} days ({out['first_day']} .. {out['last_day']}): {out['snapshots']} snapshots, "
        f"{out['rows']:,} rows in {out['warm_s']} s warm (+{out['cold_first_day_s']} s cold first day incl. GE start) "
        f"-> {out['rows_per_s']:,} rows/s, {out['snapshots_per_s']} snapshots/s, {out['s_per_day']} s/day; "
        f"re-run {out['rerun_s']} s; lake {out['lake_mb']} MB"
    )
    print(f"steps (s): {out['steps_s']}")
    print(
        f"compute (naive + customer_long): {out['compute_snapshots']} snapshots in {out['compute_s']} s "
        f"-> {out['compute_snapshots_per_s']} snapshots/s ({out['compute_profile_rows']:,} gex_profile rows)"
    )
    print(
        f"extrapolated to all {ALL_DAYS} days: {out['extrapolated_all_214_days_s']} s by days, "
        f"{out['extrapolated_by_rows_s']} s by rows"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_backfill.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
