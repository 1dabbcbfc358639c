"""Chaos suite: random kill -9 / SIGINT interruptions, disk-full runs, corrupted inputs and a damaged lake,
each checked against a clean reference run (docs/reliability.md).

    python -m benchmarks.chaos --runs 200 [--seed 1] [--days 2] [--json out.json]

The scenario is three real gexflow commands: ``ingest --source sample`` (BTC, ETH), ``compute``, and
``backfill --tardis ../shared/data/tardis`` over ``--days`` days of BTC (which computes its snapshots too).
A reference run in a fresh data dir records the lake before every command and after every commit.

Each trial copies the lake as it was before one command, runs that command as a ``gexflow`` subprocess
(a warm worker: the CLI's ``main`` in a process that did its imports before the command arrived, so a
trial costs the command, not Great Expectations' import: seconds, benchmarks/RESULTS.md) and interrupts it:

- ``kill``/``sigint`` at a uniformly random time (phase ``random``), a random 0-300 ms after its first
  staged temp file appeared (``staging``), or the moment its commit journal appeared (``commit``);
- ``disk-full``: the run with a file-size limit (RLIMIT_FSIZE: the kernel fails the write, like ENOSPC);
- ``corrupt-input``: a Tardis day file truncated or with flipped bytes;
- ``damaged-lake``: a reference lake with a file deleted, truncated or flipped (``gexflow check`` must name
  it), or a torn ``warehouse.duckdb`` (the next reader must rebuild it).

Then the next writer takes the lock (rolls forward, sweeps orphans) and the lake must equal the state
before the command or after one of its commits (never a partial snapshot), with no temp file or journal
left; finally the command is re-run to completion and the lake must equal the reference exactly:
missing rows are lost rows, extra files or rows duplicates, different contents silently wrong numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from benchmarks.chaos_run import Reference, Workers, steps
from benchmarks.chaos_trials import corrupt_input, damaged_lake, interruption

# ---------------------------------------------------------------- the plan and the matrix

DAMAGE = ("deleted", "truncated", "flipped", "torn-duckdb")


def plan(runs: int, rng, names: list[str]) -> list[dict]:
    """Trials: the first few cover every category, the rest are drawn at random."""
    fixed = [
        {"category": "interrupt", "kind": "kill", "phase": "commit", "step": "compute"},
        {"category": "interrupt", "kind": "sigint", "phase": "staging", "step": "ingest"},
        {"category": "interrupt", "kind": "kill", "phase": "staging", "step": "backfill"},
        {"category": "disk-full", "kind": "disk-full", "phase": "fsize", "step": rng.choice(names)},
        {
            "category": "corrupt-input",
            "kind": "tardis",
            "phase": rng.choice(["truncated", "flipped"]),
            "step": "backfill",
        },
        {"category": "damaged-lake", "kind": "lake", "phase": rng.choice(DAMAGE[:3]), "step": "-"},
        {"category": "damaged-lake", "kind": "lake", "phase": "torn-duckdb", "step": "-"},
    ]
    out = fixed[: min(runs, len(fixed))]
    while len(out) < runs:
        r = rng.random()
        if r < 0.75:
            out.append(
                {
                    "category": "interrupt",
                    "kind": rng.choice(["kill", "kill", "sigint"]),
                    "phase": rng.choice(["random", "random", "staging", "commit"]),
                    "step": rng.choice(names),
                }
            )
        elif r < 0.85:
            out.append({"category": "disk-full", "kind": "disk-full", "phase": "fsize", "step": rng.choice(names)})
        elif r < 0.92:
            phase = rng.choice(["truncated", "flipped"])
            out.append({"category": "corrupt-input", "kind": "tardis", "phase": phase, "step": "backfill"})
        else:
            out.append({"category": "damaged-lake", "kind": "lake", "phase": rng.choice(DAMAGE), "step": "-"})
    for n, t in enumerate(out):
        t["n"] = n
    return out


COUNTS = ("lost_rows", "duplicates", "partial_snapshots", "wrong_numbers", "leftovers")


def matrix(trials: list[dict]) -> tuple[list[str], list[list]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for t in trials:
        groups[(t["category"], t["kind"], t["phase"], t["step"])].append(t)
    head = ["category", "kind", "phase", "command", "trials", "hit", "mid-commit", "before", "after", "errors 1-line"]
    head += [*COUNTS, "detected"]
    rows = []
    for key in sorted(groups):
        ts = groups[key]
        states = Counter(t.get("state", "-") for t in ts)
        rows.append(
            [
                *key,
                len(ts),
                sum(bool(t.get("hit")) for t in ts),
                sum(bool(t.get("mid_commit")) for t in ts),
                states.get(0, 0),
                sum(n for s, n in states.items() if isinstance(s, int) and s > 0),
                f"{sum(bool(t.get('one_line')) for t in ts)}/{len(ts)}",
                *(sum(t.get(c, 0) for c in [c]) for c in COUNTS),
                f"{sum(bool(t.get('detected')) for t in ts)}/{len(ts)}" if key[0] == "damaged-lake" else "-",
            ]
        )
    total = ["total", "", "", "", len(trials)] + ["" for _ in head[5:10]]
    total += [sum(t.get(c, 0) for t in trials) for c in COUNTS] + [""]
    return head, [*rows, total]


def failures(trials: list[dict]) -> list[dict]:
    """Trials that lost, duplicated, tore or silently changed data, left files over, were not detected, or
    broke the one-line rule, or (a SIGINT) ended otherwise than finished or "gexflow: interrupted", exit 130
    (docs/reliability.md, "Ctrl-C")."""
    bad = []
    for t in trials:
        broken = any(t.get(c, 0) for c in COUNTS) or not (t.get("one_line", True) and t.get("reported", True))
        broken |= t["category"] == "damaged-lake" and not t.get("detected")
        broken |= t["category"] in ("interrupt", "disk-full") and t.get("rerun_rc") != 0
        if broken:
            bad.append(t)
    return bad


def run(runs: int, seed: int, days: int, work: Path, log=print, progress: Path | None = None):
    rng = random.Random(seed)
    scenario = steps(days)
    os.environ["GEXFLOW_MAX_SNAPSHOT_AGE_S"] = "0"
    os.environ.pop("PREFECT_API_URL", None)
    t0 = time.perf_counter()
    workers = Workers(work)  # imports while the reference runs
    trials = []
    try:
        ref = Reference(work / "reference", scenario)
        log(f"reference run: {', '.join(f'{k} {v:.1f} s' for k, v in ref.seconds.items())}")
        for t in plan(runs, rng, list(scenario)):
            if t["category"] in ("interrupt", "disk-full"):
                interruption(t, ref, workers, rng, work, scenario)
            elif t["category"] == "corrupt-input":
                corrupt_input(t, ref, rng, work, scenario)
            else:
                damaged_lake(t, ref, rng, work)
            trials.append(t)
            if progress is not None:
                progress.write_text(json.dumps(trials, indent=1, default=str))
            log(
                f"[{len(trials)}/{runs}] {t['category']} {t['kind']} {t['phase']} {t['step']}: rc {t.get('rc')} "
                f"state {t.get('state', '-')} {'OK' if not failures([t]) else 'FAILED ' + json.dumps(t, default=str)}"
            )
    finally:
        workers.close()
    log(f"{len(trials)} trials in {time.perf_counter() - t0:.0f} s")
    return trials, ref


def main(argv_: list[str] | None = None) -> int:
    from pipelines.publishing.tables import render

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--days", type=int, default=2, choices=[1, 2, 3], help="Tardis days backfilled (2026-07-29 on)")
    p.add_argument("--json", type=Path, help="write every trial here")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv_)
    work = Path(tempfile.mkdtemp(prefix="gexflow-chaos-"))
    try:
        trials, _ref = run(args.runs, args.seed, args.days, work, progress=args.json)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    head, rows = matrix(trials)
    print(render(head, rows))
    if args.json:
        args.json.write_text(json.dumps(trials, indent=1, default=str))
    bad = failures(trials)
    print(f"{len(bad)} failed trial(s)" if bad else "all trials: nothing lost, duplicated, partial, wrong or left over")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
