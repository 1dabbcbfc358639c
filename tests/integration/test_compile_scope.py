"""What a first run compiles (issue 13): kernels a command does not use are not compiled."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# a child's prelude: the qualified names of what numba compiles, in ``compiled``
LISTEN = """
import json, sys
from numba.core import event
import threading
compiled, threads = [], {}
class Compiles(event.Listener):
    def on_start(self, ev):
        name = ev.data["dispatcher"].py_func.__qualname__ if "dispatcher" in ev.data else "?"
        compiled.append(name)
        threads.setdefault(threading.current_thread().name, set()).add(name)
    def on_end(self, ev):
        pass
event.register("numba:compile", Compiles())
"""

PROBE = (
    LISTEN
    + """
import numpy as np
from transforms.pricing import kernel_batch as kb

n = 4  # options [0, n) and the same options with other weights at [n, 2n)
batch = kb.OptionBatch(
    np.full(2 * n, 100.0), np.tile(np.linspace(80.0, 120.0, n), 2), np.full(2 * n, 0.5),
    np.full(2 * n, 10 * 86_400_000, dtype=np.int64), np.repeat([1.0, -2.0], n), np.zeros(2 * n),
    np.ones(2 * n, dtype=bool),
)
ratio = np.linspace(0.9, 1.1, 5)
task = dict(lo=[0], hi=[n], at_ms=[0], after_ms=[kb.ALL_EXPIRIES[0]], until_ms=[kb.ALL_EXPIRIES[1]])
batch.profiles(**task, level_ratio=ratio)
single = (len(kb._task_range.signatures), len(kb._task_range_pair.signatures))
batch.profiles(**task, level_ratio=ratio, pair_lo=[n])
paired = (len(kb._task_range.signatures), len(kb._task_range_pair.signatures))
print(json.dumps([single, paired, compiled]))
"""
)


def _probe(cache) -> list:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_single_weighting_tasks_do_not_compile_the_two_weighting_kernel(tmp_path):
    single, paired, compiled = _probe(tmp_path / "numba-cache")
    assert single == [1, 0]  # the run, compute and depth path: one kernel
    assert paired == [1, 1]  # the forecast's two weightings in one task: compiled when first asked for
    assert "_task_range" in compiled and "_task_range_pair" in compiled


def test_a_later_process_loads_the_batch_kernels_from_the_cache(tmp_path):
    first = _probe(tmp_path / "numba-cache")
    again = _probe(tmp_path / "numba-cache")
    assert again[:2] == first[:2]
    assert first[2] and again[2] == []  # nothing compiled: every kernel, closures included, came from the cache


RUN = (
    LISTEN
    + """
from pipelines.cli.app import main
code = main(["run", "--source", "sample", "--data-dir", sys.argv[1]])
from transforms.pricing import gauss_terms, kernel_batch, kernels
ours = {d.py_func.__qualname__ for m in (gauss_terms, kernel_batch, kernels) for d in vars(m).values()
        if hasattr(d, "py_func")}
main_thread = sorted(threads.get("MainThread", set()) & ours)
print(json.dumps([code, sorted(set(compiled)), main_thread]), file=sys.stderr)
"""
)


def _runs(tmp_path, count: int, **extra) -> list:
    """``count`` sample runs in fresh processes sharing one new numba cache: [exit code, compiled, compiled on the
    main thread] of each; ``extra`` environment variables over this process's (less any GEXFLOW_WHAT_IFS)."""
    env = {k: v for k, v in os.environ.items() if k != "GEXFLOW_WHAT_IFS"}
    env.update(NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), **extra)
    runs = []
    for k in range(count):
        out = subprocess.run(
            [sys.executable, "-c", RUN, str(tmp_path / f"data{k}")], env=env, capture_output=True, text=True
        )
        runs.append(json.loads(out.stderr.strip().splitlines()[-1]))
    return runs


def test_a_second_sample_run_compiles_nothing(tmp_path):
    """The first run after installing compiles what the run uses; every later run loads it all from the cache."""
    (first_code, first, first_main), (second_code, second, _) = _runs(tmp_path, 2)
    assert first_code == second_code == 0
    assert "_task_range" in first
    assert "_general_blocks" not in first  # the general kernel prices the spot_vol what-if, not stored by default
    assert "_task_range_pair" not in first  # the forecast's kernel: not used by a run
    assert "gamma_delta_profile" not in first  # the fused kernel of one-off profiles: compute prices in batches
    assert "_general_blocks_adjusted" not in first  # premium-adjusted delta: not what compute stores
    # every kernel was compiled on the precompile thread (pipelines/jobs/precompile.py) while the snapshot was
    # fetched and validated: the compute found each one compiled, for the very types it passes
    assert first_main == []
    assert second == []


def test_a_run_that_stores_the_what_ifs_compiles_the_general_kernel_on_the_precompile_thread(tmp_path):
    [(code, compiled, main_thread)] = _runs(tmp_path, 1, GEXFLOW_WHAT_IFS="true")
    assert code == 0
    assert "_task_range" in compiled and "_general_blocks" in compiled  # spot_vol's sticky-moneyness vols
    assert "_general_blocks_adjusted" not in compiled
    assert main_thread == []
