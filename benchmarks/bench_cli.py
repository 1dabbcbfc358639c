"""Wall time of ``gexflow run --source sample`` from a cold process, and what the Prefect engine adds.

Run: ``python -m benchmarks.bench_cli [--repeats N]``. Each run is a fresh process into a fresh data
directory. Engines compared in the same run:
  direct   the flow's cycle in-process (default when PREFECT_API_URL is unset)
  prefect  the same cycle as a Prefect flow run; with no PREFECT_API_URL Prefect starts its temporary
           local server in a subprocess first
Also reports the import cost of the heavy modules on their own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def wall(cmd: list[str], env: dict) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
    return elapsed, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    gexflow = [sys.executable, "-m", "pipelines.cli"]
    rows = []
    for label, modules in [
        ("import polars+duckdb+numpy", "polars, duckdb, numpy"),
        ("import numba", "numba"),
        ("import great_expectations", "great_expectations"),
        ("import prefect", "prefect"),
        ("import prefect server app", "prefect.server.api.server"),
    ]:
        times = [wall([sys.executable, "-c", f"import {modules}"], env)[0] for _ in range(args.repeats)]
        rows.append((label, statistics.median(times), min(times)))
    for engine in ("direct", "prefect"):
        times = []
        for _ in range(args.repeats):
            tmp = Path(tempfile.mkdtemp(prefix="gexflow-bench-"))
            try:
                elapsed, rc = wall(
                    [*gexflow, "run", "--source", "sample", "--engine", engine, "--data-dir", str(tmp)], env
                )
                if rc != 0:
                    raise SystemExit(f"gexflow run --engine {engine} failed (exit {rc})")
                times.append(elapsed)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        rows.append((f"gexflow run --source sample --engine {engine}", statistics.median(times), min(times)))
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  median s    min s")
    for label, med, best in rows:
        print(f"{label:<{width}}  {med:8.2f}  {best:7.2f}")
    medians = {label: med for label, med, _ in rows}
    direct = medians["gexflow run --source sample --engine direct"]
    prefect = medians["gexflow run --source sample --engine prefect"]
    print(f"Prefect engine with its temporary server adds {prefect - direct:.1f} s ({prefect / direct:.1f}x)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_cli.json").write_text(
        json.dumps([dict(zip(["what", "median_s", "min_s"], r, strict=True)) for r in rows], indent=1)
    )


if __name__ == "__main__":
    main()
