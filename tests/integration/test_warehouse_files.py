"""Atomic writes and journaled commits."""

from __future__ import annotations

import json

from warehouse import atomic, files


def test_a_commit_interrupted_after_its_journal_is_rolled_forward_by_the_next_writer(tmp_path):
    a, b = tmp_path / "lake" / "a.parquet", tmp_path / "lake" / "b.parquet"
    a.parent.mkdir(parents=True)
    staged = []
    for final, payload in ((a, b"A"), (b, b"B")):
        tmp = atomic.temp_path(final)
        tmp.write_bytes(payload)
        staged.append(files.Staged(tmp, final))
    # simulate a crash after the journal and the first rename
    journal = tmp_path / atomic.JOURNAL_DIR / "x.json"
    atomic.write_atomic(
        journal, json.dumps({"renames": [[str(s.tmp), str(s.final)] for s in staged], "deletes": []}).encode()
    )
    staged[0].tmp.replace(a)
    assert a.exists() and not b.exists()
    with files.writer_lock(tmp_path):
        pass
    assert a.read_bytes() == b"A" and b.read_bytes() == b"B"
    assert not journal.exists() and not list(tmp_path.rglob("*.tmp"))


def test_a_torn_journal_is_dropped_without_touching_data(tmp_path):
    journal = tmp_path / atomic.JOURNAL_DIR / "y.json"
    journal.parent.mkdir(parents=True)
    journal.write_text('{"renames": [[')
    assert files.recover(tmp_path) == 0
    assert not journal.exists()


def test_write_atomic_replaces_the_whole_file_or_nothing(tmp_path):
    target = tmp_path / "f.bin"
    atomic.write_atomic(target, b"old")
    atomic.write_atomic(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_waiting_writer_gets_the_lock_once_the_first_one_releases_it(tmp_path):
    import threading
    import time

    import pytest

    from warehouse import WarehouseError

    released = threading.Event()

    def hold():
        with files.writer_lock(tmp_path):
            time.sleep(0.5)
        released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.1)
    with pytest.raises(WarehouseError, match="another gexflow writer"):
        with files.writer_lock(tmp_path):
            pass
    t0 = time.monotonic()
    with files.writer_lock(tmp_path, wait_s=10):
        assert released.is_set()
    assert time.monotonic() - t0 < 5
    holder.join()


def test_a_transaction_left_by_an_exception_before_its_journal_publishes_nothing_and_leaves_no_temp(tmp_path):
    import pytest

    final = tmp_path / "lake" / "t" / "a.parquet"
    with pytest.raises(ValueError):
        with files.transaction(tmp_path) as tx:
            tx.add(files.stage_bytes(final, b"A"))
            raise ValueError("bad input found after staging")
    assert not final.exists() and not list(tmp_path.rglob("*.tmp"))


def test_a_journaled_file_is_never_discarded_and_the_commit_is_recorded_in_the_manifest(tmp_path):
    from warehouse import manifest

    final = tmp_path / "lake" / "t" / "a.parquet"
    staged = files.stage_bytes(final, b"payload")
    with files.transaction(tmp_path) as tx:
        tx.add(staged)
    files.discard([staged])  # an old-style cleanup after the commit must not undo it
    assert final.read_bytes() == b"payload"
    assert manifest.expected(tmp_path) == {"lake/t/a.parquet": (7, staged.sha256)}
    assert manifest.verify(tmp_path) == (1, [])


def test_stage_partitions_splits_by_currency_and_utc_date_and_stages_one_partition_whole(tmp_path):
    from datetime import UTC, datetime

    import polars as pl

    from warehouse import lake

    ts = [datetime(2026, 7, 1, 23, 0, tzinfo=UTC), datetime(2026, 7, 2, 1, 0, tzinfo=UTC)]
    frame = pl.DataFrame({"currency": ["BTC", "BTC", "ETH"], "ts": [ts[0], ts[1], ts[0]], "x": [1.0, 2.0, 3.0]})
    split = lake.stage_partitions(tmp_path, "t", frame, name="n", date_col="ts")
    where = sorted(str(s.final.relative_to(tmp_path)) for s in split)
    assert where == [
        "lake/t/currency=BTC/date=2026-07-01/n.parquet",
        "lake/t/currency=BTC/date=2026-07-02/n.parquet",
        "lake/t/currency=ETH/date=2026-07-01/n.parquet",
    ]
    one = frame.head(1)  # one currency and one date: staged without grouping, the same bytes as the grouped file
    whole = lake.stage_partitions(tmp_path / "b", "t", one, name="n", date_col="ts")
    grouped = next(s for s in split if "BTC/date=2026-07-01" in str(s.final))
    assert [s.final.relative_to(tmp_path / "b") for s in whole] == [grouped.final.relative_to(tmp_path)]
    assert whole[0].tmp.read_bytes() == grouped.tmp.read_bytes() == lake.parquet_bytes(one)
    files.discard(split + whole)
