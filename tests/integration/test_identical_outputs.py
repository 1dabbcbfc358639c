"""benchmarks/identical_outputs.py: the check of issue 13 (byte-identical outputs before and after the move) on
two small hand-built data dirs, so it is known to see a difference and to forgive only the wall clock."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.identical_outputs import compare, hash_tree

LEVELS = "lake/key_levels/currency=BTC/date=2026-07-31/20260731T113322630Z.parquet"
INPUTS = "lake/_state/analytics_inputs/currency=BTC/date=2026-07-31/20260731T113322630Z.parquet"


def write_dir(root: Path, clock: datetime, run_id: str, *, zero_gamma=62994.58, version=1) -> Path:
    """A data dir as a run writes it: a table, a compute stamp, a run record, a manifest and the lock."""
    day = clock.strftime("%Y-%m-%d")
    runs = f"lake/_state/ingest_runs/currency=BTC/date={day}/{run_id}.parquet"
    tables = {
        LEVELS: {"currency": ["BTC"], "zero_gamma": [zero_gamma]},
        INPUTS: {"currency": ["BTC"], "computed_ts": [clock], "analytics_version": [version]},
        runs: {"run_id": [run_id], "started_ts": [clock], "finished_ts": [clock], "options": [854]},
    }
    listed = {}
    for rel, columns in tables.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), root / rel)
        data = (root / rel).read_bytes()
        listed[rel] = [len(data), hashlib.sha256(data).hexdigest()]
    (root / "_manifest").mkdir()
    stamp = int(clock.timestamp() * 1e9)
    (root / f"_manifest/{stamp:020d}-{run_id[-6:]}00.json").write_text(json.dumps({"files": listed, "removed": []}))
    (root / ".gexflow.lock").write_text(f"pid {stamp % 99991} on vm")
    return root


def capture(tmp_path: Path, name: str, data_dir: Path, stdout: str = "computed 1 snapshot(s)\n") -> Path:
    step = {"args": ["compute"], "exit": 0, "stdout": stdout, "stderr": "", "seconds": 1.0}
    step |= {"stdout_sha256": hashlib.sha256(stdout.encode()).hexdigest(), "stderr_sha256": ""}
    doc = {"commit": name, "files": hash_tree(data_dir, "sample"), "goldens": {}, "commands": {"compute": step}}
    out = tmp_path / f"{name}.json"
    out.write_text(json.dumps(doc))
    return out


T1, T2 = datetime(2026, 12, 7, 0, 32, 54, tzinfo=UTC), datetime(2026, 12, 8, 9, 1, 2, tzinfo=UTC)


def test_two_runs_differing_only_by_the_clock_are_identical(tmp_path, capsys):
    a = capture(tmp_path, "a", write_dir(tmp_path / "a", T1, "20261207T003254225Z-d35490"))
    b = capture(tmp_path, "b", write_dir(tmp_path / "b", T2, "20261208T090102000Z-951f43"))
    assert compare(a, b) == 0
    out = capsys.readouterr().out
    assert "IDENTICAL" in out
    assert "computed_ts is the wall-clock time" in out and "holds the pid" in out


def test_a_changed_number_a_changed_non_clock_column_and_changed_output_are_differences(tmp_path, capsys):
    a = capture(tmp_path, "a", write_dir(tmp_path / "a", T1, "20261207T003254225Z-d35490"))
    b_dir = write_dir(tmp_path / "b", T2, "20261208T090102000Z-951f43", zero_gamma=62994.59, version=2)
    b = capture(tmp_path, "b", b_dir, stdout="computed 2 snapshot(s)\n")
    assert compare(a, b) == 1
    out = capsys.readouterr().out
    assert f"DIFFER: files sample/{LEVELS}" in out
    assert f"DIFFER: files sample/{INPUTS}" in out  # computed_ts is dropped, analytics_version is not
    assert "DIFFER: files sample/_manifest/0.json" in out  # it lists the changed table's hash
    assert "DIFFER: commands compute stdout" in out and "+computed 2 snapshot(s)" in out


def test_a_missing_file_is_a_difference(tmp_path, capsys):
    a = capture(tmp_path, "a", write_dir(tmp_path / "a", T1, "20261207T003254225Z-d35490"))
    b_dir = write_dir(tmp_path / "b", T1, "20261207T003254225Z-d35490")
    (b_dir / LEVELS).unlink()
    b = capture(tmp_path, "b", b_dir)
    assert compare(a, b) == 1
    assert f"MISSING: files sample/{LEVELS}" in capsys.readouterr().out
