"""Commits that finish: a real multi-file ingest and compute commit is interrupted before every one of
its renames, by KeyboardInterrupt (SIGINT), by OSError(ENOSPC), and by SIGKILL of a subprocess; the next
writer must leave exactly the lake of an uninterrupted run, with no temp file and no journal left."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli.app import main
from tests.data_paths import REPO_ROOT
from tests.lake_state import diff, fingerprint, leftovers
from warehouse import atomic, files

INGEST = ["ingest", "--source", "sample", "--currency", "BTC"]
COMPUTE = ["compute", "--currency", "BTC"]

# SIGKILLs itself just before the rename with index argv[1] (0-based) of its gexflow command
KILLER = """
import os, signal, sys
from warehouse import files
from pipelines.cli.app import main
at, real, calls = int(sys.argv[1]), files._rename, [0]
def rename(src, dst):
    if calls[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)
    calls[0] += 1
    real(src, dst)
files._rename = rename
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("GEXFLOW_MAX_SNAPSHOT_AGE_S", "0")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("GEXFLOW_DATA_DIR", raising=False)


def gexflow(args, data_dir: Path) -> int:
    return main([*args, "--data-dir", str(data_dir)])


def count_renames(monkeypatch, args, data_dir: Path) -> int:
    real, calls = files._rename, []
    monkeypatch.setattr(files, "_rename", lambda src, dst: (calls.append(dst), real(src, dst)))
    assert gexflow(args, data_dir) == 0
    monkeypatch.setattr(files, "_rename", real)
    return len(calls)


def inject(monkeypatch, at: int, kind: str, times: int):
    """Fail the rename with index ``at`` (and the next ``times - 1`` ones: the same process's roll-forward too)."""
    real, calls = files._rename, [0]

    def rename(src, dst):
        calls[0] += 1
        if at < calls[0] <= at + times:
            if kind == "sigint":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)
        real(src, dst)

    monkeypatch.setattr(files, "_rename", rename)
    return real


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """Lakes of uninterrupted runs: before (empty / ingested) and after (ingest+compute / +ingest again)."""
    root = tmp_path_factory.mktemp("reference")
    mp = pytest.MonkeyPatch()
    mp.setenv("GEXFLOW_MAX_SNAPSHOT_AGE_S", "0")
    ingested = root / "ingested"
    assert gexflow(INGEST, ingested) == 0
    full = root / "full"
    shutil.copytree(ingested, full)
    assert gexflow(COMPUTE, full) == 0
    again = root / "again"
    shutil.copytree(full, again)
    assert gexflow(INGEST, again) == 0
    mp.undo()
    return {"ingested": ingested, "full": fingerprint(full), "again": fingerprint(again)}


CASES = {
    # interrupted command, the state it starts from, the next writer, the reference after both
    "ingest": (INGEST, None, COMPUTE, "full"),
    "compute": (COMPUTE, "ingested", INGEST, "again"),
}


def fresh(stages, start, path: Path) -> Path:
    if start is not None:
        shutil.copytree(stages[start], path)
    return path


def assert_finished(data_dir: Path, want: dict[str, str]):
    assert leftovers(data_dir) == []
    assert diff(fingerprint(data_dir), want) == {"missing": [], "extra": [], "changed": []}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_an_in_process_interruption_at_every_rename_is_finished(case, stages, tmp_path, monkeypatch):
    args, start, next_writer, reference = CASES[case]
    n = count_renames(monkeypatch, args, fresh(stages, start, tmp_path / "count"))
    assert n >= 5  # a real multi-file commit
    for at in range(n):
        # a SIGINT the same process survives to finish its commit; a disk error that also fails the
        # process's own roll-forward, so the next writer finishes it
        for kind, times, code in (("sigint", 1, 130), ("enospc", 10**6, 2)):
            data_dir = fresh(stages, start, tmp_path / f"{kind}{times}-{at}")
            real = inject(monkeypatch, at, kind, times)
            assert gexflow(args, data_dir) == code, (kind, at)
            monkeypatch.setattr(files, "_rename", real)
            if times == 1:  # the same process finished its commit before reporting the interruption
                assert not list((data_dir / atomic.JOURNAL_DIR).glob("*.json")), (kind, at)
            assert gexflow(next_writer, data_dir) == 0
            assert_finished(data_dir, stages[reference])


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_a_sigkill_at_every_rename_is_rolled_forward_by_the_next_writer(case, stages, tmp_path, monkeypatch):
    args, start, next_writer, reference = CASES[case]
    n = count_renames(monkeypatch, args, fresh(stages, start, tmp_path / "count"))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for at in range(n):
        data_dir = fresh(stages, start, tmp_path / f"kill-{at}")
        cmd = [sys.executable, "-c", KILLER, str(at), *args, "--data-dir", str(data_dir)]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert list((data_dir / atomic.JOURNAL_DIR).glob("*.json"))  # it died mid-commit
        assert gexflow(next_writer, data_dir) == 0
        assert_finished(data_dir, stages[reference])
