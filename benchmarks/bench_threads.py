"""Benchmark: the profile kernel's threads on an idle box and with one core kept busy by another process.

    python -m benchmarks.bench_threads [--profiles 300]

For the synthetic 1,000 x 400 chain of benchmarks/bench_profile.py, times single profiles with 1 numba thread,
2 threads, and the policy compute uses
(pipelines.jobs.threads.KernelThreads: threads = the cores other processes
leave idle, chosen before each batch of 20 profiles as compute does per chunk of snapshots), in two conditions:

    idle     nothing started by the benchmark (other users of the machine are measured and reported)
    loaded   a busy-loop process pinned to the last allowed core

Mean ms per profile is total time / profiles (what a job pays); the median and 90th percentile show the
spread. With ``--compute-days N`` it also backfills the first N Tardis days into a scratch dir and times a full
``compute_cycle`` over them (every snapshot, models naive and customer_long) with kernel_threads 1, 2 and 0 (the
policy) in both conditions. Results go to benchmarks/results/bench_threads.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numba

from benchmarks.bench_profile import RESULTS, synthetic_case  # sets the numba cache dir first
from pipelines.jobs.compute import compute_cycle
from pipelines.jobs.threads import KernelThreads
from transforms.pricing import kernels

BATCH = 20  # profiles per thread choice (compute chooses once per chunk of snapshots: hundreds of profiles)
BUSY = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"


def profile(case):
    return kernels.profile_at_levels(
        case.forward, case.strike, case.sigma, case.tau, case.weight, case.put_weight, case.ratio
    )


def timed(case, profiles: int, policy) -> dict:
    """Times ``profiles`` single profiles; ``policy`` is a thread count or a KernelThreads."""
    times, chosen = [], []
    for i in range(profiles):
        if i % BATCH == 0:
            n = policy.apply() if isinstance(policy, KernelThreads) else policy
            numba.set_num_threads(n)
            chosen.append(n)
        t0 = time.perf_counter()
        profile(case)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {
        "mean_ms": 1e3 * sum(times) / len(times),
        "median_ms": 1e3 * statistics.median(times),
        "p90_ms": 1e3 * times[int(0.9 * len(times))],
        "threads_chosen": sorted(set(chosen)),
    }


def others_load(seconds: float = 1.0) -> float:
    """Cores used by other processes over ``seconds`` (this one idle)."""
    probe = KernelThreads()
    probe.choose()
    time.sleep(seconds)
    probe.choose()
    return probe.last_others


POLICIES = (("1 thread", 1), ("2 threads", 2), ("policy (idle cores)", 0))


def run_condition(case, name: str, profiles: int, data_dir: Path | None) -> tuple[list[dict], list[dict]]:
    busy = None
    cpus = sorted(os.sched_getaffinity(0))
    if name == "loaded":
        busy = subprocess.Popen([sys.executable, "-c", BUSY, str(cpus[-1])])
        time.sleep(0.5)
    try:
        background = others_load()
        rows, computes = [], []
        for label, fixed in POLICIES:
            profile(case)  # warm
            policy = fixed or KernelThreads()
            rows.append(
                {"condition": name, "threads": label, "others_cores": background, **timed(case, profiles, policy)}
            )
            print(json.dumps(rows[-1]), flush=True)
        for label, fixed in POLICIES if data_dir is not None else ():
            t0 = time.perf_counter()
            done = compute_cycle(data_dir, ["BTC", "ETH"], kernel_threads=fixed)
            seconds = time.perf_counter() - t0
            computes.append({"condition": name, "threads": label, "snapshots": len(done.snapshots), "seconds": seconds})
            print(json.dumps(computes[-1]), flush=True)
        return rows, computes
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def backfilled(days: int, where: Path) -> Path:
    """A scratch data dir with the first ``days`` Tardis days landed (no analytics yet)."""
    from pipelines.config import Settings
    from pipelines.jobs.backfill import backfill_cycle

    tardis = Path(__file__).resolve().parents[2] / "shared" / "data" / "tardis"
    first = sorted((tardis / "options_chain").glob("*.csv.gz"))[0].name.split("_")[3]
    since = date.fromisoformat(first)
    backfill_cycle(Settings(data_dir=where), tardis_dir=tardis, since=since, until=since + timedelta(days=days - 1))
    return where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=300, help="profiles timed per row")
    parser.add_argument("--compute-days", type=int, default=0, help="also time compute over N backfilled days")
    args = parser.parse_args(argv)
    if numba.config.NUMBA_NUM_THREADS < 2 or len(os.sched_getaffinity(0)) < 2:
        print("needs at least 2 cores and NUMBA_NUM_THREADS >= 2")
        return 1
    case = synthetic_case()
    numba.set_num_threads(2)
    profile(case)  # compile / load from cache
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as scratch:
        data_dir = backfilled(args.compute_days, Path(scratch)) if args.compute_days else None
        if data_dir is not None:
            compute_cycle(data_dir, ["BTC", "ETH"])  # warm: imports, every kernel compiled or loaded from cache
        idle, idle_computes = run_condition(case, "idle", args.profiles, data_dir)
        loaded, loaded_computes = run_condition(case, "loaded", args.profiles, data_dir)
    rows, computes = idle + loaded, idle_computes + loaded_computes
    env = {
        "numba": numba.__version__,
        "threading_layer": numba.threading_layer(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "profiles_per_row": args.profiles,
        "batch": BATCH,
    }
    lines = [
        "# profile kernel threads, idle and with one core busy",
        "",
        "```",
        json.dumps(env),
        "```",
        "",
        "| condition | threads | other processes (cores) | mean ms | median ms | p90 ms | threads chosen |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['condition']} | {r['threads']} | {r['others_cores']:.2f} | {r['mean_ms']:.2f} | {r['median_ms']:.2f} "
        f"| {r['p90_ms']:.2f} | {r['threads_chosen']} |"
        for r in rows
    ]
    if computes:
        lines += ["", f"compute_cycle over {args.compute_days} backfilled Tardis days (kernel_threads as given):", ""]
        lines += ["| condition | kernel threads | snapshots | seconds |", "|---|---|---:|---:|"]
        lines += [f"| {c['condition']} | {c['threads']} | {c['snapshots']} | {c['seconds']:.2f} |" for c in computes]
    text = "\n".join(lines)
    print(text)
    (RESULTS / "bench_threads.md").write_text(text + "\n")
    (RESULTS / "bench_threads.json").write_text(json.dumps({"env": env, "rows": rows, "computes": computes}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
