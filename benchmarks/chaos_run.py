"""The chaos suite's scenario, reference run and warm gexflow workers (benchmarks/chaos.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipelines.cli.app import main as gexflow_main
from tests.data_paths import REPO_ROOT, SHARED_DATA
from tests.lake_state import fingerprint
from warehouse import atomic, files

TARDIS = SHARED_DATA / "tardis"
FIRST_DAY = "2026-07-29"

# A fork server: imports once (Great Expectations alone takes seconds: benchmarks/RESULTS.md), then forks one
# real process per command.
# Nothing has started a thread pool when it forks (no polars/numba work ran in it). The child runs the CLI's
# main, may get a file-size limit (RLIMIT_FSIZE: the kernel fails writes as a full disk does) and keeps Python's
# SIGINT handler, so SIGINT is a KeyboardInterrupt and SIGKILL a kill, as for `gexflow` started from a shell.
WORKER = """
import json, os, resource, sys
from pipelines.validation import quality
from pipelines.cli.app import main
import pipelines.jobs.compute, pipelines.jobs.backfill, pipelines.jobs.ingest, transforms.gex.exposure
quality.warm_up()
print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        fd = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(fd, 2)
        if job.get("fsize"):
            resource.setrlimit(resource.RLIMIT_FSIZE, (job["fsize"], resource.RLIM_INFINITY))
        os.environ.update(job.get("env", {}))
        try:
            code = main(job["argv"])
        except BaseException as exc:  # escaped the CLI: a defect the matrix counts (not one line)
            print(f"escaped gexflow main: {type(exc).__name__}: {exc}", file=sys.stderr)
            code = 3
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


def steps(days: int) -> dict[str, list[str]]:
    last = f"2026-07-{29 + days - 1:02d}"
    return {
        "ingest": ["ingest", "--source", "sample"],
        "compute": ["compute"],
        "backfill": ["backfill", "--tardis", "{tardis}", "--since", FIRST_DAY, "--until", last, "--currency", "BTC"],
    }


def argv(step: list[str], data_dir: Path, tardis: Path = TARDIS) -> list[str]:
    return [a.replace("{tardis}", str(tardis)) for a in step] + ["--data-dir", str(data_dir)]


def quiet_main(args: list[str]) -> int:
    with open(os.devnull, "w") as null:
        out, err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = null
        try:
            return gexflow_main(args)
        finally:
            sys.stdout, sys.stderr = out, err


# ---------------------------------------------------------------- the reference run


class Reference:
    """Lake before each command (a directory to copy), and every state its commits may leave."""

    def __init__(self, root: Path, scenario: dict[str, list[str]]):
        self.root, self.scenario = root, scenario
        self.before: dict[str, Path] = {}
        self.states: dict[str, list[dict[str, str]]] = {}  # [before, after commit 1, ...]
        self.seconds: dict[str, float] = {}
        current = root / "ref"
        real_apply = files._apply
        for name, step in scenario.items():
            self.before[name] = root / f"before-{name}"
            if current.exists():
                shutil.copytree(current, self.before[name])
            states = [fingerprint(current)]

            def recording(root_, doc, states=states):
                real_apply(root_, doc)
                states.append(fingerprint(current))

            files._apply = recording
            t0 = time.perf_counter()
            try:
                assert quiet_main(argv(step, current)) == 0, f"reference {name} failed"
            finally:
                files._apply = real_apply
            self.seconds[name] = time.perf_counter() - t0
            if fingerprint(current) != states[-1]:
                states.append(fingerprint(current))  # what the command did after its last commit (schema files)
            self.states[name] = states
        self.final = root / "ref"

    def after(self, name: str) -> dict[str, str]:
        return self.states[name][-1]


# ---------------------------------------------------------------- workers


class Job:
    """One gexflow command running in a child of the fork server."""

    def __init__(self, server: subprocess.Popen, pid: int, stderr: Path):
        self.server, self.pid, self.stderr_path, self.returncode = server, pid, stderr, None

    def poll(self):
        return self.returncode

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self) -> tuple[int, str]:
        if self.returncode is None:
            self.returncode = int(self.server.stdout.readline())
        return self.returncode, self.stderr_path.read_text(errors="replace")


class Workers:
    """The fork server (see WORKER)."""

    def __init__(self, scratch: Path):
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GEXFLOW_MAX_SNAPSHOT_AGE_S": "0"}
        env.pop("PREFECT_API_URL", None)
        self.scratch = scratch
        self.server = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.n = 0

    def start(self, args: list[str], fsize: int | None = None) -> Job:
        if self.n == 0:
            assert self.server.stdout.readline().strip() == "ready", "the chaos fork server failed to start"
        self.n += 1
        err = self.scratch / f"stderr-{self.n}.txt"
        self.server.stdin.write(json.dumps({"argv": args, "fsize": fsize, "stderr": str(err)}) + "\n")
        self.server.stdin.flush()
        return Job(self.server, int(self.server.stdout.readline()), err)

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


def _alive(job: Job) -> bool:
    try:
        os.kill(job.pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    try:
        with open(f"/proc/{job.pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _first(data_dir: Path, pattern: str, proc: Job, limit_s: float) -> bool:
    """Poll until a file matching ``pattern`` exists under ``data_dir`` (True) or the process ends (False)."""
    deadline = time.monotonic() + limit_s
    while _alive(proc) and time.monotonic() < deadline:
        if next(data_dir.glob(pattern), None) is not None:
            return True
        time.sleep(0.0005)
    return False


def interrupt(proc: Job, data_dir: Path, phase: str, kind: str, rng, budget_s: float) -> bool:
    """Deliver the signal in ``phase``; returns whether it arrived while the command was still running."""
    if phase == "random":
        deadline = time.monotonic() + rng.uniform(0, budget_s)
        while _alive(proc) and time.monotonic() < deadline:
            time.sleep(0.002)
    elif phase == "staging":
        if not _first(data_dir, "lake/**/.*.tmp", proc, 120):
            return False
        time.sleep(rng.uniform(0, 0.3))
    elif not _first(data_dir, f"{atomic.JOURNAL_DIR}/*.json", proc, 120):
        return False
    if not _alive(proc):
        return False
    proc.signal(signal.SIGKILL if kind == "kill" else signal.SIGINT)
    return True
