"""Ctrl-C as a terminal sends it: a real SIGINT to the process group of a real process that ran the CLI's ``main``
and is inside polars (pipelines/interrupts.py).

Before that module, with Python's default handler (measured on the children below, SIGINT 0-0.3 s after "ready"):
during group-bys one Ctrl-C raised two KeyboardInterrupts, the second inside the ``except`` handling the first (a
traceback in 9 of 12 trials), because polars' own SIGINT handler raises one too; during ``frame.schema`` on a wide
frame, whose dtypes polars' Rust builds by calling back into Python, the interrupt became a Rust panic
(``PanicException``, a backtrace on stderr) in 3 of 8; a process started with SIGINT ignored stopped; and
``gexflow sql`` interrupted during a query said "internal error: RuntimeError: Query interrupted", exit 1 (DuckDB
catches the KeyboardInterrupt and raises its own error), in 5 of 5."""

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
# anything is imported, so polars is imported afterwards), then polars work for a while or until a signal lands:
# group-bys of ~0.1-0.3 s each (also under a tracer of someone else's, where the Ctrl-C waits out the grace
# period), or the schema of a 2,000-column frame (Rust calling polars' Python dtype classes).
CHILD = textwrap.dedent(
    """
    import sys, time
    from pipelines.cli.app import main
    work, seconds, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    try:
        main(argv)
    except SystemExit:
        pass
    import numpy as np
    import polars as pl
    if work == "group-by, traced":  # as under a debugger or coverage: no trace function of ours, the 2 s grace
        sys.settrace(lambda frame, event, arg: None)
    if work.startswith("group-by"):
        n = 400_000
        frame = pl.DataFrame({"a": np.arange(n, dtype="float64"), "s": pl.int_range(n, eager=True).cast(pl.String)})
        step = lambda: frame.group_by("s").agg(pl.col("a").max())
    else:
        wide = pl.DataFrame({f"c{i}": pl.Series([1], dtype=pl.Datetime("us", "UTC")) for i in range(2000)})
        step = lambda: wide.schema
    print("ready", flush=True)
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            step()
        print("finished", flush=True)
    except KeyboardInterrupt:
        time.sleep(0.5)  # a second KeyboardInterrupt from the same Ctrl-C would land here
        print("interrupted once", flush=True)
    """
)


def _ctrl_c(work: str, argv: list[str], delay: float, ignored: bool) -> tuple[int, str, str]:
    """Start the child in its own process group (SIGINT ignored in it if ``ignored``, as a shell script starts a
    background job), SIGINT the group ``delay`` s after it is inside its loop, and return (rc, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored else None
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, work, "3" if ignored else "20", *argv],  # the ignored one runs to its end
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=preexec,
    )

    def inside_the_loop(proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # what main printed (--version), then the loop's "ready"
            if line.strip() == "ready":
                break
        else:
            raise AssertionError(f"the child never got to its loop:\n{proc.stderr.read()}")
        time.sleep(delay)

    return _sigint(proc, inside_the_loop)


def _sigint(proc: subprocess.Popen, wait_until_inside) -> tuple[int, str, str]:
    """``wait_until_inside(proc)``, then SIGINT to the process group as a terminal's Ctrl-C; (rc, stdout, stderr).
    A child still running at the end (the test failed) is killed."""
    try:
        wait_until_inside(proc)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("work", "argv"),
    [
        ("group-by", ["status", "--data-dir", "{tmp}"]),
        ("group-by", ["--version"]),
        ("callback", ["status", "--data-dir", "{tmp}"]),
        ("group-by, traced", ["status", "--data-dir", "{tmp}"]),
    ],
    ids=["group-by, polars imported in main", "group-by, polars imported after", "callback from Rust", "traced"],
)
def test_one_ctrl_c_is_one_keyboard_interrupt(tmp_path, work, argv):
    rng = random.Random(3)
    for _ in range(2 if work.endswith("traced") else TRIALS):  # traced: each trial waits out the grace period
        argv_here = [a.replace("{tmp}", str(tmp_path)) for a in argv]
        rc, out, err = _ctrl_c(work, argv_here, rng.uniform(0.0, 0.3), ignored=False)
        assert rc == 0 and "interrupted once" in out, f"rc {rc}, stdout {out!r}, stderr:\n{err}"
        assert "Traceback" not in err and "panicked" not in err, err


@pytest.mark.slow
def test_an_ignored_ctrl_c_stays_ignored(tmp_path):
    rng = random.Random(4)
    for _ in range(2):
        rc, out, err = _ctrl_c("group-by", ["status", "--data-dir", str(tmp_path)], rng.uniform(0.0, 0.3), True)
        assert rc == 0 and "finished" in out, f"rc {rc}, stdout {out!r}, stderr:\n{err}"


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("ctrl-c-sample")
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--source", "sample", "--data-dir", str(data)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return data


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads a process's CPU time from /proc")
def test_ctrl_c_during_a_duckdb_query_is_an_interrupt(sample_dir):
    sql = [sys.executable, "-m", "pipelines.cli", "sql", "--data-dir", str(sample_dir)]
    start = time.monotonic()
    quick = subprocess.run([*sql, "SELECT 1"], capture_output=True, cwd=ROOT)
    assert quick.returncode == 0, quick.stderr
    start_up = time.monotonic() - start  # wall time of a whole `gexflow sql` with a query that takes nothing
    proc = subprocess.Popen(
        [*sql, "SELECT sum(i * i) FROM range(20000000000) t(i)"],  # minutes of work
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )

    def inside_the_query(proc: subprocess.Popen) -> None:
        # a whole start-up has passed and the process has since burnt a CPU second on DuckDB's threads
        time.sleep(start_up)
        busy_from = _cpu_s(proc.pid)
        while _cpu_s(proc.pid) < busy_from + 1.0:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)

    rc, _out, err = _sigint(proc, inside_the_query)
    assert (rc, err.strip()) == (130, "gexflow: interrupted"), err
