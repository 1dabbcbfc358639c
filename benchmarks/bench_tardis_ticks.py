"""Tick-level Tardis backfill against the gzip floor: ``python -m benchmarks.bench_tardis_ticks [--skip-dask]``.

Files: made once with ``../shared/tools/tardis_ticks.py`` and cached (``--cache``, default
``/work/scratch/w12-tardis/ticks`` or ``$TMPDIR/gexflow-ticks``): 2026-07-30..31 at ``--rate 6`` (about 13 M
option rows and 0.8 GB gzipped a day; generating them takes minutes and ~12 GB of memory) and, for the
Dask comparison, 2026-07-28..31 at ``--dask-rate 1``.

Measured in one run, on the machine as it is when run (other processes included; RESULTS.md notes the load):

- the floor: a serial ``zcat`` of every file of the days (options_chain + derivative_ticker) to /dev/null;
- ``gexflow backfill --tardis`` of 1 and of 2 days, both currencies, default grid (1 h, 1 h staleness),
  analytics computed (the CLI's default), in a fresh data dir, as a subprocess: wall and peak RSS;
- the ratio of the 2-day wall to the 2-day serial zcat (the issue's target: <= 1.5), and of their CPU
  seconds (robust to other load on a shared machine: with 2 cores and days read in parallel, a CPU ratio
  below 3 leaves the wall below 1.5 x the serial zcat when the cores are free);
- 4 days through the Prefect ``backfill`` flow (no compute): the default thread-pool task runner against a
  2-worker ``distributed.LocalCluster`` (one thread each) through prefect-dask; and the CLI on 1 and 4 of
  those days (no compute), for memory against the number of days.

Writes ``benchmarks/results/bench_tardis_ticks.json``; scratch data dirs are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TOOL = SHARED / "tools" / "tardis_ticks.py"
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_CACHE = Path("/work/scratch/w12-tardis/ticks") if Path("/work/scratch").is_dir() else None


def ensure_files(out: Path, since: str, until: str, rate: float) -> Path:
    """The tool's files for ``since..until`` at ``rate`` in ``out`` (generated once, then reused)."""
    if len(list(out.glob("options_chain/*.csv.gz"))) and (out / "done").is_file():
        return out
    print(f"generating {since}..{until} at --rate {rate:g} into {out} (once) ...", flush=True)
    cmd = [sys.executable, str(TOOL), str(SHARED / "data" / "tardis"), str(out), "--since", since, "--until", until]
    subprocess.run([*cmd, "--rate", str(rate)], check=True)
    (out / "done").write_text("ok\n")
    return out


def day_files(root: Path, days: list[str]) -> list[Path]:
    return [p for d in days for p in sorted(root.rglob(f"*_{d}_*.csv.gz"))]


def zcat_seconds(paths: list[Path]) -> float:
    return zcat(paths)[0]


def zcat(paths: list[Path]) -> tuple[float, float]:
    """(wall s, CPU s) of a serial zcat of ``paths`` to /dev/null."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for p in paths:
        subprocess.run(["zcat", str(p)], check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return time.perf_counter() - t0, cpu


def timed_child(cmd: list[str]) -> tuple[float, float, float, str]:
    """(wall s, peak RSS GB, CPU s, stdout) of a child process, measured by ``/usr/bin/time`` (the peak RSS
    of a child forked from this process would otherwise count this process's own pages before exec)."""
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "time"
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M %U %S", "-o", str(stats), *cmd], capture_output=True, text=True, cwd=REPO
        )
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        rss_kb, user, system = stats.read_text().split()[-3:]
        return wall, int(rss_kb) / 1e6, float(user) + float(system), proc.stdout


def backfill(root: Path, since: str, until: str, *extra: str) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="gexflow-bench-ticks-"))
    cmd = [sys.executable, "-m", "pipelines.cli", "backfill", "--tardis", str(root), "--since", since, "--until", until]
    cmd += ["--data-dir", str(scratch / "data"), "--currency", "BTC,ETH", *extra]
    try:
        wall, rss, cpu, out = timed_child(cmd)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = out.strip().splitlines()[:2]
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_gb": round(rss, 2), "report": report}


def dask_comparison(root: Path, days: list[str]) -> dict:
    """4 days through the backfill flow: thread pool vs a 2-worker LocalCluster (reads only differ)."""
    # a loaded machine starts the temporary Prefect server slowly (the default wait is 20 s)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="gexflow-bench-prefect-"))  # own sqlite db
    import distributed
    from prefect import flow

    from pipelines.orchestration.flows import backfill_flow, backfill_runner

    @flow
    def warm_up() -> int:  # the temporary Prefect server starts here, not inside a timed run
        return 1

    warm_up()
    out = {}
    for name in ("threads", "dask"):
        scratch = Path(tempfile.mkdtemp(prefix="gexflow-bench-ticks-"))
        args = (["BTC", "ETH"], str(scratch / "data"), str(root), None, days[0], days[-1])
        try:
            if name == "threads":
                t0 = time.perf_counter()
                backfill_flow(*args, compute=False)
                out[name] = round(time.perf_counter() - t0, 1)
            else:
                with distributed.LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
                ) as cluster:
                    t0 = time.perf_counter()
                    backfill_runner(cluster.scheduler_address)(*args, compute=False)
                    out[name] = round(time.perf_counter() - t0, 1)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE or Path(tempfile.gettempdir()) / "gexflow-ticks")
    ap.add_argument("--rate", type=float, default=6.0)
    ap.add_argument("--dask-rate", type=float, default=1.0)
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args(argv)
    if not TOOL.is_file():
        raise SystemExit(f"needs {TOOL}")
    days = ["2026-07-30", "2026-07-31"]
    root = ensure_files(args.cache / f"rate{args.rate:g}", days[0], days[-1], args.rate)
    result: dict = {"rate": args.rate, "days": days, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    sizes = {d: sum(p.stat().st_size for p in day_files(root, [d])) / 1e9 for d in days}
    result["gz_gb"] = {d: round(v, 2) for d, v in sizes.items()}
    for n in (1, 2):
        span = days[:n]
        wall, cpu = zcat(day_files(root, span))
        result[f"zcat_{n}d_s"], result[f"zcat_{n}d_cpu_s"] = round(wall, 1), round(cpu, 1)
        result[f"backfill_{n}d"] = backfill(root, span[0], span[-1])
        print(json.dumps({k: result[k] for k in (f"zcat_{n}d_s", f"backfill_{n}d")}), flush=True)
    result["ratio_2d"] = round(result["backfill_2d"]["wall_s"] / result["zcat_2d_s"], 2)
    # the machine is shared: CPU seconds do not depend on how many other processes compete for the cores
    result["cpu_ratio_2d"] = round(result["backfill_2d"]["cpu_s"] / result["zcat_2d_cpu_s"], 2)
    save(result)  # the rate-6 figures stand even if the Dask part fails
    if not args.skip_dask:
        four = ["2026-07-28", "2026-07-29", "2026-07-30", "2026-07-31"]
        droot = ensure_files(args.cache / f"rate{args.dask_rate:g}-4d", four[0], four[-1], args.dask_rate)
        result["dask_4d"] = {"rate": args.dask_rate, **dask_comparison(droot, four)}
        result["dask_4d"]["zcat_s"] = round(zcat_seconds(day_files(droot, four)), 1)
        for n in (1, 4):  # memory does not grow with the number of days (CLI, thread pool, no compute)
            result["dask_4d"][f"cli_{n}d_no_compute"] = backfill(droot, four[0], four[n - 1], "--no-compute")
    save(result)
    print(json.dumps(result, indent=1))
    return 0


def save(result: dict) -> None:
    result["load_after"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_tardis_ticks.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
