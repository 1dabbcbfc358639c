"""Wall time of ``gexflow run --source sample`` from a cold process, where it goes, and against an older checkout.

Run: ``python -m benchmarks.bench_cli [--repeats N] [--old DIR] [--engines direct,prefect]``.

Every run is a fresh process into a fresh data directory. "cold" runs also get a fresh, empty numba cache
(``NUMBA_CACHE_DIR`` set to a new temporary directory for that process, so the kernels compile as on the first
run after installing); "warm" runs reuse the cache the cold run filled, as every later run does. ``--old DIR``
runs the same command from another checkout (``PYTHONPATH=DIR``; e.g. a ``git worktree add DIR <commit>``) in
turn with this one, cold then warm, A B A B.

Each run is timed from outside (wall, user + sys CPU of the process) and, from inside, split into exclusive
phases of the main thread: ``import`` (module loading, found by wrapping ``importlib._bootstrap._find_and_load``),
``compile`` (numba's own compile events), ``validation`` (the ``validate_*`` functions of the quality module, less
the imports and compiles inside them), ``ingest`` and ``compute`` (``snapshot_cycle`` and ``compute_cycle``, less
everything above), ``report`` and ``other`` (the CLI itself); ``start+exit`` is the process wall less all of those
(interpreter start and shutdown). Where the tree starts a Great Expectations worker process
(pipelines/validation/ge_worker.py), ``validation`` includes waiting for it to be ready, and the CPU column misses
the worker's own CPU (a grandchild the run does not wait for). Imports and compiles on other threads (the kernels
compiled by pipelines/jobs/precompile.py while the main thread ingests) overlap those phases: they are extra rows,
``compile (other threads)`` and ``import (other threads)``, outside the split; the main thread's wait for such a
compile (numba's compiler lock) is charged to the phase that waits, ``compute``. ``--engines direct,prefect`` adds
the Prefect engine (a temporary Prefect server per run: ~20 s each), timed from outside only.

The report names the machine (CPU model, vector ISA, cores) and ends with this checkout's median walls against
issue 13's targets (:data:`TARGETS`), with their spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# issue 13's targets for ``gexflow run --source sample`` (wall s, this checkout, direct engine): the first run
# after installing (an empty numba cache) and every later one
TARGETS = {"cold": 5.0, "warm": 3.0}
ROOT = Path(__file__).resolve().parent.parent
PHASES = ("start+exit", "import", "compile", "ingest", "validation", "compute", "report", "other")
# (category, module, function names): the functions a phase is, in the new layout and the flat one before it
WRAPPED = (
    ("ingest", "pipelines.jobs.ingest", ("snapshot_cycle",)),
    ("ingest", "pipelines.ingest", ("snapshot_cycle",)),
    ("validation", "pipelines.validation.quality", ("validate_option_snapshots", "validate_instruments")),
    ("validation", "pipelines.quality", ("validate_option_snapshots", "validate_instruments")),
    ("compute", "pipelines.jobs.compute", ("compute_cycle",)),
    ("compute", "pipelines.compute", ("compute_cycle",)),
    ("report", "pipelines.publishing.report", ("run_summary",)),
    ("report", "pipelines.report", ("run_summary",)),
)


# ---------------------------------------------------------------- the child: one CLI run, split into phases


class _Clock:
    """One thread's exclusive time per category: the innermost open category is charged (a stack of open ones)."""

    def __init__(self, spent: dict[str, float], outer: str | None) -> None:
        self.spent = spent
        self.stack = [outer] if outer else []
        self.mark = time.perf_counter()

    def enter(self, category: str) -> None:
        self._charge()
        self.stack.append(category)

    def leave(self) -> None:
        self._charge()
        self.stack.pop()

    def _charge(self) -> None:
        now = time.perf_counter()
        if self.stack:
            self.spent[self.stack[-1]] = self.spent.get(self.stack[-1], 0.0) + now - self.mark
        self.mark = now


class Phases:
    """Exclusive time per category. Only the main thread's phases split the wall clock (``spent``); another
    thread's imports and compiles (the precompile thread, pipelines/jobs/precompile.py) overlap them and are summed
    apart per category (``background``)."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys(PHASES[1:], 0.0)
        self.background: dict[str, float] = {}
        self.main = threading.get_ident()
        self.clocks = {self.main: _Clock(self.spent, "other")}

    def _clock(self) -> _Clock:
        ident = threading.get_ident()
        if ident not in self.clocks:
            self.clocks[ident] = _Clock(self.background, None)
        return self.clocks[ident]

    def enter(self, category: str) -> None:
        self._clock().enter(category)

    def leave(self) -> None:
        self._clock().leave()

    def wrap(self, category: str, fn):
        def timed(*args, **kwargs):
            self.enter(category)
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()

        timed.__wrapped__ = fn
        return timed


def _hook(phases: Phases) -> None:
    """Time module loading, wrap the phase functions as their modules load, and listen to numba's compiles."""
    import importlib._bootstrap as bootstrap

    original = bootstrap._find_and_load
    wrapped = {}
    for category, module, names in WRAPPED:
        wrapped.setdefault(module, []).append((category, names))

    def find_and_load(name, import_):
        phases.enter("import")
        try:
            module = original(name, import_)
        finally:
            phases.leave()
        for category, names in wrapped.pop(name, ()):
            for fn in names:
                setattr(module, fn, phases.wrap(category, getattr(module, fn)))
        if name == "numba.core.event":
            module.register("numba:compile", _listener(module, phases))
        return module

    bootstrap._find_and_load = find_and_load


def _listener(event_module, phases: Phases):
    class CompileListener(event_module.Listener):
        def on_start(self, event):
            phases.enter("compile")

        def on_end(self, event):
            phases.leave()

    return CompileListener()


def child(argv: list[str], out: Path) -> None:
    t0 = time.perf_counter()
    phases = Phases()
    _hook(phases)
    from pipelines import cli

    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the run's tables are not what is measured
    if hasattr(cli, "entry"):  # the entry point as the gexflow script runs it (pipelines/cli/app.py), where it exists
        sys.argv[1:] = argv
        rc = cli.entry()
    else:
        rc = cli.main(argv)
    phases.leave()
    if rc != 0:
        raise SystemExit(rc)
    background = {f"{k} (other threads)": v for k, v in phases.background.items()}
    out.write_text(json.dumps({"rc": rc, "inside": time.perf_counter() - t0, "phases": phases.spent | background}))


# ---------------------------------------------------------------- the parent: runs, tables


def run_once(tree: Path, cache: Path, engine: str) -> dict:
    """One fresh process of ``gexflow run --source sample`` from ``tree`` with numba cache ``cache``."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PYTHONPATH=str(tree), NUMBA_CACHE_DIR=str(cache))
    data = Path(tempfile.mkdtemp(prefix="gexflow-bench-"))
    out = data.parent / (data.name + ".json")
    argv = ["run", "--source", "sample", "--engine", engine, "--data-dir", str(data)]
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        if engine == "direct":
            proc = subprocess.run([sys.executable, __file__, "--child", str(out), *argv], env=env, capture_output=True)
        else:
            proc = subprocess.run(
                [sys.executable, "-m", "pipelines.cli", *argv], env=env, capture_output=True, cwd=tree
            )
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"run from {tree} failed (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        row = {"wall": wall, "cpu": cpu}
        if out.exists():
            inside = json.loads(out.read_text())
            row.update(inside["phases"])
            row["start+exit"] = wall - inside["inside"]
        return row
    finally:
        shutil.rmtree(data, ignore_errors=True)
        out.unlink(missing_ok=True)


def series(tree: Path, engine: str, repeats: int) -> dict[str, list[dict]]:
    """``repeats`` cold runs (each with a new empty numba cache) and ``repeats`` warm ones (the last cache)."""
    runs: dict[str, list[dict]] = {"cold": [], "warm": []}
    for _ in range(repeats):
        cache = Path(tempfile.mkdtemp(prefix="gexflow-numba-"))
        try:
            runs["cold"].append(run_once(tree, cache, engine))
            runs["warm"].append(run_once(tree, cache, engine))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return runs


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    """Medians: one column per (checkout, cold|warm), one row per figure."""
    cols = [(label, kind) for label in results for kind in ("cold", "warm")]
    extra = sorted({k for runs in results.values() for rows in runs.values() for r in rows for k in r} - {*PHASES})
    keys = ["wall", "cpu", *PHASES, *(k for k in extra if k not in ("wall", "cpu"))]
    head = "| s (median) | " + " | ".join(f"{label} {kind}" for label, kind in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]
    for key in keys:
        cells = []
        for label, kind in cols:
            values = [r[key] for r in results[label][kind] if key in r]
            cells.append(f"{statistics.median(values):.2f}" if values else "-")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict:
    """What the figures were taken on: the same commit's wall times move several-fold between machine classes
    (benchmarks/RESULTS.md, "First run"), so a result names its machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    isa = next((name for name in ("avx512f", "avx2") if name in flags), None)
    return {"cpu": model, "cores": cores, "isa": isa, "python": platform.python_version()}


def verdict(runs: dict[str, list[dict]]) -> str:
    """The medians of this checkout's walls against :data:`TARGETS`, with their spread."""
    parts = []
    for kind, target in TARGETS.items():
        walls = sorted(r["wall"] for r in runs[kind])
        median = statistics.median(walls)
        met = "met" if median <= target else "NOT met"
        parts.append(f"{kind} {median:.2f} s ({walls[0]:.2f}-{walls[-1]:.2f}) <= {target:g} s: {met}")
    return "targets (median wall, min-max): " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old", type=Path, help="another checkout to run the same command from, side by side")
    parser.add_argument("--engines", default="direct", help="comma-separated: direct, prefect")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        child(rest, args.child)
        return
    trees = {"this": ROOT} | ({"old": args.old.resolve()} if args.old else {})
    load = os.getloadavg()
    host = machine()
    print(f"{host['cpu']} ({host['isa'] or 'no AVX2'}), {host['cores']} cores, Python {host['python']}")
    results: dict[str, dict[str, dict[str, list[dict]]]] = {}
    for engine in args.engines.split(","):
        results[engine] = {label: {"cold": [], "warm": []} for label in trees}
        for _ in range(args.repeats):  # interleaved: this, old, this, old ...
            for label, tree in trees.items():
                one = series(tree, engine, 1)
                for kind in one:
                    results[engine][label][kind] += one[kind]
        print(f"engine {engine}, {args.repeats} run(s) each, load average before {load[0]:.1f}")
        print(table(results[engine]))
        if engine == "direct":
            print(verdict(results[engine]["this"]))
    print(f"load average after {os.getloadavg()[0]:.1f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_cli.json").write_text(json.dumps({"machine": host, "load": load, "results": results}, indent=1))


if __name__ == "__main__":
    if "--child" not in sys.argv:
        sys.path.insert(0, str(ROOT))
    main()
