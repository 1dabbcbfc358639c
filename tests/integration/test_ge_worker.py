"""The Great Expectations worker process (pipelines/validation/ge_worker.py): the same reports as in this process,
and every way it can fail leaves the validation to this process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from pipelines.validation import ge_worker
from pipelines.validation.quality import validate_instruments, validate_option_snapshots
from tests.unit.test_quality import VICTIM, btc_chain, recorded, with_victim


def _exited(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (or reaped already): ask /proc whether it is still there
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    done = stat.read().rpartition(")")[2].split()[0] == "Z"  # a zombie nobody reaped has exited
            except FileNotFoundError:
                return True
        if done:
            return True
        time.sleep(0.05)
    return False


def _reports() -> list:
    failing = with_victim(open_interest=pl.lit(-5.0), mark_iv=pl.lit(5000.0))
    return [
        validate_option_snapshots(btc_chain()),
        validate_option_snapshots(failing),
        validate_instruments(recorded("BTC", "20260731T113322Z")[0]),
    ]


@pytest.fixture
def worker(monkeypatch):
    """A worker installed as this process's own (start() declines in a process that has imported GE already)."""
    started = ge_worker.Worker()
    monkeypatch.setattr(ge_worker, "_worker", started)
    yield started
    started.close()


def test_the_worker_gives_the_reports_this_process_gives(worker, monkeypatch):
    there = _reports()
    assert worker.answered == 3 and ge_worker.current() is worker
    monkeypatch.setattr(ge_worker, "_worker", None)
    here = _reports()
    assert [r.success for r in there] == [True, False, True]
    assert [(r.failures, r.details) for r in there] == [(r.failures, r.details) for r in here]
    assert all(r["row_ids"] == [VICTIM] for r in there[1].details["results"] if not r["success"])


def _maps(pid: int, package: str) -> bool:
    """Whether process ``pid`` has loaded ``package`` (its compiled extensions are mapped once it is imported)."""
    with open(f"/proc/{pid}/maps") as maps:
        return package in maps.read()


def test_the_worker_builds_ge_without_sqlalchemy_which_ge_imports_where_it_can(worker):
    validate_option_snapshots(btc_chain())  # the worker has imported GE and answered
    assert worker.answered == 1
    assert not _maps(worker.process.pid, "sqlalchemy")
    code = "import os, great_expectations; print(os.getpid()); input()"
    plain = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert _maps(int(plain.stdout.readline()), "sqlalchemy")  # the control: GE alone does import it
    finally:
        plain.communicate("\n")


def test_the_worker_never_imports_polars(worker):
    """Frames reach the worker as Arrow IPC, which pandas' pyarrow reads: polars' import is not in its start."""
    validate_option_snapshots(btc_chain())
    assert worker.answered == 1
    assert _maps(os.getpid(), "polars")  # the control: this process has it mapped, and the path is matched
    assert not _maps(worker.process.pid, "polars")


def test_a_run_with_a_worker_never_imports_ge_itself():
    code = (
        "import sys; from pipelines.validation import ge_worker; ge_worker.start(); "
        "from tests.unit.test_quality import btc_chain; "
        "from pipelines.validation.quality import validate_option_snapshots as v; report = v(btc_chain()); "
        "print(report.success, ge_worker.current().answered, 'great_expectations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "1", "False"]


def test_a_killed_worker_leaves_the_validation_to_this_process(worker):
    expected = validate_option_snapshots(btc_chain())
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait()
    again = validate_option_snapshots(btc_chain())
    assert (again.success, again.details) == (expected.success, expected.details)
    assert ge_worker.current() is None  # given up: every later validation runs here


def test_an_error_in_the_worker_is_raised_by_this_process_as_ge_raises_it(worker):
    frame = btc_chain().select("instrument_name", "open_interest")
    with pytest.raises(KeyError, match="no_such_table"):
        ge_worker.run_suite("no_such_table", frame, (), "instrument_name", None)
    assert worker.answered == 1  # the worker answered with the error; this process then raised it itself
    assert ge_worker.current() is None
    assert _exited(worker.process.pid, 10.0)  # its pipes were closed: it ended


def test_a_forked_child_does_not_use_its_parents_worker(worker):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it sees a worker of its own, then leave without cleanup
        os.close(read)
        os.write(write, b"none" if ge_worker.current() is None else b"parent's")
        os._exit(0)
    os.close(write)
    seen = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert seen == b"none"
    assert ge_worker.current() is worker  # the parent's is still its own
    assert validate_option_snapshots(btc_chain()).success and worker.answered == 1


def test_the_worker_ends_when_its_process_is_killed():
    code = (
        "import os, time; from pipelines.validation import ge_worker; ge_worker.start(); "
        "print(ge_worker.current().process.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(parent.stdout.readline())
        assert not _exited(worker_pid, 0.5)  # alive while its parent is
        parent.kill()
        parent.wait()
        assert _exited(worker_pid, 30.0)  # end of its requests: it exits (after its GE import, if still in it)
    finally:
        parent.kill()
        parent.stdout.close()


class _Interrupting:
    """A request parameter whose pickling is interrupted (as by Ctrl-C) halfway through sending the request."""

    def __reduce__(self):
        raise KeyboardInterrupt


def test_an_interrupted_request_ends_the_worker_never_to_read_half_a_message(worker):
    frame = btc_chain().select("instrument_name", "open_interest")
    with pytest.raises(KeyboardInterrupt):
        ge_worker.run_suite("option_snapshots", frame, (), "instrument_name", {"now": _Interrupting()})
    assert ge_worker.current() is None
    assert _exited(worker.process.pid, 10.0)
    assert validate_option_snapshots(btc_chain()).success  # later validations run in this process
