"""A fork while the precompile thread compiles (pipelines/jobs/precompile.py).

fork copies numba's compiler lock as the compiling thread holds it, but not the thread: a child that then compiled
anything waited for that lock forever. The child here forks while the thread holds the lock (checked) and compiles
a function of its own; it must finish.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import os, sys, time
from numba import njit
from numba.core.compiler_lock import global_compiler_lock
from pipelines.jobs import precompile

thread = precompile.start()
lock = global_compiler_lock._lock
deadline = time.monotonic() + 60
while lock.acquire(blocking=False):  # until the precompile thread holds numba's compiler lock
    lock.release()
    if not thread.is_alive() or time.monotonic() > deadline:
        sys.exit("the precompile thread never held the compiler lock")
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    os._exit(0 if njit(lambda x: x + 1)(1) == 2 else 3)  # a compile of the child's own
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_fork_during_the_precompile_does_not_leave_the_child_a_held_compiler_lock(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the process and its hung fork
        proc.communicate()
        raise AssertionError("the forked child hung on numba's compiler lock") from None
    assert proc.returncode == 0, err[-2000:]
