"""What a first run compiles (issue 13): kernels a command does not use are not compiled."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json
import numpy as np
from transforms.pricing import kernel_batch as kb

n = 4  # options [0, n) and the same options with other weights at [n, 2n)
batch = kb.OptionBatch(
    np.full(2 * n, 100.0), np.tile(np.linspace(80.0, 120.0, n), 2), np.full(2 * n, 0.5),
    np.full(2 * n, 10 * 86_400_000, dtype=np.int64), np.repeat([1.0, -2.0], n), np.zeros(2 * n), np.ones(2 * n, dtype=bool),
)
ratio = np.linspace(0.9, 1.1, 5)
task = dict(lo=[0], hi=[n], at_ms=[0], after_ms=[kb.ALL_EXPIRIES[0]], until_ms=[kb.ALL_EXPIRIES[1]])
batch.profiles(**task, level_ratio=ratio)
single = (len(kb._task_range.signatures), len(kb._task_range_pair.signatures))
batch.profiles(**task, level_ratio=ratio, pair_lo=[n])
paired = (len(kb._task_range.signatures), len(kb._task_range_pair.signatures))
print(json.dumps([single, paired]))
"""


def test_single_weighting_tasks_do_not_compile_the_two_weighting_kernel(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    single, paired = json.loads(out.stdout)
    assert single == [1, 0]  # the run, compute and depth path: one kernel
    assert paired == [1, 1]  # the forecast's two weightings in one task: compiled when first asked for
