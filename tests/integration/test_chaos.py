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
    # signals that landed while a command ran (timing decides which phase; test_commit_faults.py kills
    # deterministically before every rename)
    assert sum(bool(t.get("hit")) for t in trials) >= 3
    _head, rows = matrix(trials)
    assert rows[-1][0] == "total"
    # the lake checks and the one-line rule hold for every trial, SIGINT ones included
    assert failures(trials) == []
