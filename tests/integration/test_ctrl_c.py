"""Ctrl-C as a terminal sends it: a real SIGINT to the process group of a real process that ran the CLI's ``main``
and is inside a polars query (pipelines/interrupts.py).

Without :func:`pipelines.interrupts.keep_sigint_with_python`, polars' own SIGINT handler made one Ctrl-C raise two
KeyboardInterrupts (the second inside the ``except`` handling the first: a traceback in 9 of 12 trials), and made a
process that ignores SIGINT stop on one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 5

# The child: the CLI's main as `gexflow` runs it (``status`` imports polars inside main; ``--version`` exits before
# anything is imported, so polars is imported afterwards), then group-bys of ~0.1-0.3 s each until a signal lands.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pipelines.cli.app import main
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
    import numpy as np
    import polars as pl
    n = 400_000
    frame = pl.DataFrame({"a": np.arange(n, dtype="float64"), "s": pl.int_range(n, eager=True).cast(pl.String)})
    print("ready", flush=True)
    start = time.monotonic()
    try:
        while time.monotonic() - start < 3:
            frame.group_by("s").agg(pl.col("a").max())
        print("finished", flush=True)
    except KeyboardInterrupt:
        time.sleep(0.5)  # a second KeyboardInterrupt from the same Ctrl-C would land here
        print("interrupted once", flush=True)
    """
)


def _ctrl_c(argv: list[str], delay: float, ignored: bool) -> tuple[int, str, str]:
    """Start the child in its own process group (SIGINT ignored in it if ``ignored``, as a shell script starts a
    background job), SIGINT the group ``delay`` s after it is inside its loop, and return (rc, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored else None
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=preexec,
    )
    try:
        for line in proc.stdout:  # what main printed (--version), then the loop's "ready"
            if line.strip() == "ready":
                break
        else:
            raise AssertionError(f"the child never got to its loop:\n{proc.stderr.read()}")
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "ready\n" + out, err


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["status", "--data-dir", "{tmp}"], ["--version"]], ids=["polars-in-main", "after"])
def test_one_ctrl_c_is_one_keyboard_interrupt(tmp_path, argv):
    rng = random.Random(3)
    for _ in range(TRIALS):
        rc, out, err = _ctrl_c([a.replace("{tmp}", str(tmp_path)) for a in argv], rng.uniform(0.0, 0.3), False)
        assert rc == 0 and "interrupted once" in out, f"rc {rc}, stdout {out!r}, stderr:\n{err}"
        assert "Traceback" not in err, err


@pytest.mark.slow
def test_an_ignored_ctrl_c_stays_ignored(tmp_path):
    rng = random.Random(4)
    for _ in range(2):
        rc, out, err = _ctrl_c(["status", "--data-dir", str(tmp_path)], rng.uniform(0.0, 0.3), True)
        assert rc == 0 and "finished" in out, f"rc {rc}, stdout {out!r}, stderr:\n{err}"
