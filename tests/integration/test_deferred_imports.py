"""The CLI defers the scipy modules numba's import executes and no kernel uses (pipelines/deferred.py): a sample run
never executes scipy.linalg, and numba's BLAS check still passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = """
import json, sys
from pipelines.cli.app import entry
sys.argv[1:] = ["run", "--source", "sample", "--data-dir", sys.argv[1]]
code = entry()
import numba.np.arraymath
linalg = sys.modules["scipy.linalg"]
print(json.dumps([code, numba.np.arraymath._HAVE_BLAS, type(linalg).__name__, "scipy.linalg._decomp" in sys.modules,
                  "scipy.linalg.cython_blas" in sys.modules]), file=sys.stderr)
"""


def test_a_sample_run_leaves_scipy_linalg_unexecuted_and_numba_finds_blas(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "data")], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]  # a crash names itself, not a JSON error
    assert json.loads(out.stderr.strip().splitlines()[-1]) == [0, True, "_Deferred", False, True]
