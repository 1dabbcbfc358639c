"""Writers that wait for each other, and a warehouse that heals: torn DuckDB file, full disk, orphaned
temp files, missing or corrupt lake files (issue 11, items 5 and 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.data_paths import REPO_ROOT, TARDIS

DAY = "2026-07-31"
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GEXFLOW_MAX_SNAPSHOT_AGE_S": "0"}
ENV.pop("PREFECT_API_URL", None)
ENV.pop("GEXFLOW_DATA_DIR", None)

# once the backfill's day has landed (its run record appears), holds the writer lock 1.5 s at a time with 50 ms
# gaps for argv[2] seconds: the backfill's next writer steps (views, compute) almost always find it taken
HOLDER = """
import sys, time
from pathlib import Path
from warehouse import files
data = Path(sys.argv[1])
print("waiting", flush=True)
while not list(data.glob("lake/_state/ingest_runs/currency=*/date=*/*.parquet")):
    time.sleep(0.002)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    with files.writer_lock(data, wait_s=120):
        time.sleep(1.5)
    time.sleep(0.05)
"""


def gexflow(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *map(str, args)],
        cwd=REPO_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=kw.pop("timeout", 300),
        **kw,
    )


def test_backfills_compute_step_waits_for_a_writer_holding_the_lock(tmp_path):
    data = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data), "6"], cwd=REPO_ROOT, env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "waiting"
        proc = gexflow(
            "backfill", "--tardis", TARDIS, "--since", DAY, "--until", DAY, "--currency", "BTC", "--data-dir", data
        )
    finally:
        holder.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "computed 4 snapshot(s)" in proc.stdout


# ---------------------------------------------------------------- a warehouse that heals


def limited(max_bytes: int):
    """preexec_fn: no file of the child may grow past ``max_bytes`` (a real kernel write failure, EFBIG; Python
    ignores SIGXFSZ), the way a full disk fails a write part way."""
    import resource

    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, resource.RLIM_INFINITY))

    return apply


def ingested(tmp_path) -> Path:
    data = tmp_path / "data"
    proc = gexflow("ingest", "--source", "sample", "--currency", "BTC", "--data-dir", data)
    assert proc.returncode == 0, proc.stderr
    return data


def test_a_torn_warehouse_file_is_rebuilt_from_the_lake_by_the_next_command(tmp_path):
    data = ingested(tmp_path)
    db = data / "warehouse.duckdb"
    db.write_bytes(db.read_bytes()[:8192])  # what ENOSPC left behind during the first build
    proc = gexflow("sql", "select count(*) from option_snapshots", "--format", "csv", "--data-dir", data)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "1482"  # two BTC snapshots


def test_a_full_disk_while_building_the_warehouse_leaves_no_torn_file(tmp_path):
    data = tmp_path / "data"
    # lake files are < 30 kB, the DuckDB file ~270 kB: only the warehouse build hits the limit
    proc = gexflow("ingest", "--source", "sample", "--currency", "BTC", "--data-dir", data, preexec_fn=limited(100_000))
    assert proc.returncode == 2
    assert "warehouse.duckdb" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not list(data.glob("*.tmp*"))
    proc = gexflow("sql", "select count(*) from option_snapshots", "--format", "csv", "--data-dir", data)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "1482"  # two BTC snapshots


def test_a_full_disk_while_writing_parquet_names_the_file_and_publishes_nothing(tmp_path):
    from tests.lake_state import fingerprint, leftovers

    data = ingested(tmp_path)
    before = fingerprint(data)
    proc = gexflow("compute", "--currency", "BTC", "--data-dir", data, preexec_fn=limited(15_000))
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert line.startswith("gexflow: error: cannot write ") and ".parquet: File too large" in line, line
    assert "nothing was published" in line and "thrift" not in line.lower()
    assert fingerprint(data) == before
    assert leftovers(data) == []


def test_orphaned_temp_files_of_dead_writers_are_removed_under_the_lock(tmp_path):
    from warehouse import atomic, files

    data = ingested(tmp_path)
    folder = data / "lake" / "gex_profile" / "currency=BTC" / "date=2026-07-31"
    # a writer that staged a file and was killed before journaling it (a real, now dead, process)
    code = (
        "import os, signal, sys; from pathlib import Path; from warehouse import files; "
        "files.stage_bytes(Path(sys.argv[1]), b'orphan'); os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(folder / "x.parquet")], cwd=REPO_ROOT, env=ENV)
    assert proc.returncode == -9
    orphan = next(folder.glob(".x.parquet.*.tmp"))
    mine = files.stage_bytes(folder / "y.parquet", b"live writer")  # this process: alive, still staging
    with files.writer_lock(data):
        pass
    assert not orphan.exists()
    assert mine.tmp.exists()
    assert [m.name for m in (data / atomic.JOURNAL_DIR / atomic.STAGERS).iterdir()] == [f"{os.getpid()}@{atomic.HOST}"]
    files.commit(data, [mine])
    assert (folder / "y.parquet").read_bytes() == b"live writer"


def test_check_names_a_deleted_and_a_corrupted_lake_file_and_exits_2(tmp_path):
    data = ingested(tmp_path)
    assert gexflow("compute", "--currency", "BTC", "--data-dir", data).returncode == 0
    proc = gexflow("check", "--data-dir", data)
    assert proc.returncode == 0, proc.stderr
    gone = next(data.glob("lake/key_levels/currency=BTC/date=2026-07-31/*.parquet"))
    gone.unlink()
    flipped = next(data.glob("lake/option_snapshots/currency=BTC/date=2026-01-05/*.parquet"))
    raw = bytearray(flipped.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, one byte different: silent corruption
    flipped.write_bytes(bytes(raw))
    proc = gexflow("check", "--data-dir", data)
    assert proc.returncode == 2
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    assert any(str(gone) in line and "missing" in line for line in lines)
    assert any(str(flipped) in line and "SHA-256" in line for line in lines)


def test_a_reader_error_about_a_torn_lake_file_names_it(tmp_path):
    data = ingested(tmp_path)
    assert gexflow("compute", "--currency", "BTC", "--data-dir", data).returncode == 0
    torn = [
        next(data.glob(f"lake/{table}/currency=BTC/date=2026-07-31/*.parquet"))
        for table in ("option_snapshots", "key_levels")
    ]
    for path in torn:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for args, path in zip((("compute", "--currency", "BTC"), ("levels", "--currency", "BTC")), torn, strict=True):
        proc = gexflow(*args, "--data-dir", data)
        assert proc.returncode == 2, proc.stderr
        assert str(path) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_ctrl_c_that_arrives_wrapped_is_reported_as_an_interruption():
    from pipelines.cli.app import _interrupted

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise SystemError("CPUDispatcher(gamma_delta_profile) returned a result with an exception set") from inner
    except SystemError as wrapped:
        assert _interrupted(wrapped)
    assert _interrupted(BaseExceptionGroup("workers", [ValueError("x"), KeyboardInterrupt()]))
    assert not _interrupted(SystemError("a real bug"))
