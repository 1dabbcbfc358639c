"""The short chaos run (benchmarks/chaos.py): about 20 random interruptions (kill -9, SIGINT, disk full) of real
gexflow subprocesses over ingest, compute and a one-day Tardis backfill, a corrupted input and a damaged lake;
nothing lost, duplicated, partial, silently wrong or left over."""

from __future__ import annotations

import pytest

from benchmarks.chaos import failures, matrix, run


@pytest.mark.slow
def test_a_short_chaos_run_loses_duplicates_and_leaves_nothing(tmp_path, capsys):
    trials, _ref = run(20, seed=7, days=1, work=tmp_path, log=lambda line: None)
    assert len(trials) == 20
    assert {t["category"] for t in trials} == {"interrupt", "disk-full", "corrupt-input", "damaged-lake"}
    hits = [t for t in trials if t.get("hit")]
    assert len(hits) >= 5  # signals that landed while a command ran
    assert any(t.get("mid_commit") for t in trials)  # at least one died between journal and last rename
    _head, rows = matrix(trials)
    assert rows[-1][0] == "total"
    assert failures(trials) == []
