"""Analytics keyed to their inputs: a re-landed (corrected) snapshot or trades added before it make its stored
analytics stale; `status` counts them and `run`/`compute` recompute them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pytest

from pipelines.cli.app import main
from pipelines.config import load_settings
from tests.fake_deribit import SNAPSHOTS, TAPE

LEVELS = "select model, total_gex_usd, zero_gamma, call_wall, put_wall from key_levels order by model"


def query(data_dir, sql):
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def status(data_dir, capsys) -> dict:
    capsys.readouterr()
    assert main(["status", "--format", "json", "--data-dir", str(data_dir)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    return row


def corrected_book(stamp: str) -> bytes:
    """The recorded BTC book summaries with the open interest of every fifth option corrected upwards by half."""
    doc = json.loads((SNAPSHOTS / f"get_book_summary_by_currency.BTC.{stamp}.json").read_text())
    for i, row in enumerate(doc["result"]):
        if i % 5 == 0 and row.get("open_interest"):
            row["open_interest"] = round(row["open_interest"] * 1.5, 1)
    return json.dumps(doc).encode()


def test_a_re_landed_corrected_snapshot_is_stale_until_run_recomputes_it(fake_deribit, fast_env, tmp_path, capsys):
    data = tmp_path / "data"
    base = ["--api-url", fake_deribit.url, "--currency", "BTC"]
    assert main(["ingest", *base, "--data-dir", str(data)]) == 0
    assert main(["compute", "--currency", "BTC", "--data-dir", str(data)]) == 0
    original = query(data, LEVELS)
    row = status(data, capsys)
    assert (row["computed_snapshots"], row["not_computed"], row["stale"]) == (1, 0, 0)

    # the exchange's data for the same snapshot is corrected and landed again (same snapshot_ts, same file name)
    fake_deribit.bodies[("get_book_summary_by_currency", "BTC")] = corrected_book(fake_deribit.stamp)
    assert main(["ingest", *base, "--data-dir", str(data)]) == 0
    row = status(data, capsys)
    assert (row["snapshots"], row["computed_snapshots"], row["not_computed"], row["stale"]) == (1, 1, 0, 1)
    assert query(data, LEVELS) == original  # not yet recomputed

    # `run` (ingest + trades + compute of missing-or-stale snapshots) recomputes it
    assert main(["run", *base, "--data-dir", str(data)]) == 0
    assert status(data, capsys)["stale"] == 0
    fresh = tmp_path / "fresh"  # a fresh compute of the corrected data
    assert main(["run", *base, "--data-dir", str(fresh)]) == 0
    recomputed = query(data, LEVELS)
    assert recomputed == query(fresh, LEVELS)
    naive = {r[0]: r[1] for r in recomputed}["naive"]
    assert naive != pytest.approx({r[0]: r[1] for r in original}["naive"], rel=1e-3)  # the correction shows


def test_trades_added_before_a_computed_snapshot_make_it_stale_until_compute(fake_deribit, fast_env, tmp_path, capsys):
    """A trades run whose re-compute did not happen (interrupted, or run on its own) leaves taker_flow behind:
    the record of the tape the snapshot was computed with says so, and the next run's compute catches up."""
    from pipelines.jobs.trades import trades_cycle

    data = tmp_path / "data"
    base = ["--api-url", fake_deribit.url, "--currency", "BTC", "--data-dir", str(data)]
    assert main(["ingest", *base]) == 0 and main(["compute", *base[2:]]) == 0
    assert status(data, capsys)["stale"] == 0
    fake_deribit.trades["BTC"] = TAPE
    settings = load_settings({"data_dir": data, "api_url": fake_deribit.url, "currencies": ("BTC",)})
    trades_cycle(settings, trades_since=datetime(2026, 7, 31, tzinfo=UTC))  # the tape only: no re-compute
    assert status(data, capsys)["stale"] == 1
    assert query(data, "select count(*) from key_levels where model = 'taker_flow'") == [(0,)]

    from pipelines.jobs.compute import compute_cycle

    done = compute_cycle(data, ["BTC"], only_missing=True)
    assert len(done.snapshots) == 1
    assert status(data, capsys)["stale"] == 0
    assert query(data, "select count(*) from key_levels where model = 'taker_flow'") == [(1,)]
    assert compute_cycle(data, ["BTC"], only_missing=True).snapshots == []  # nothing stale any more


def test_analytics_computed_before_inputs_were_recorded_count_as_stale(fake_deribit, fast_env, tmp_path, capsys):
    data = tmp_path / "data"
    base = ["--api-url", fake_deribit.url, "--currency", "BTC", "--data-dir", str(data)]
    assert main(["ingest", *base]) == 0 and main(["compute", *base[2:]]) == 0
    for path in (data / "lake" / "_state" / "analytics_inputs").glob("currency=*/date=*/*.parquet"):
        path.unlink()
    assert status(data, capsys)["stale"] == 1
    from pipelines.jobs.compute import compute_cycle

    assert len(compute_cycle(data, ["BTC"], only_missing=True).snapshots) == 1
    assert status(data, capsys)["stale"] == 0


def test_a_new_analytics_version_makes_every_computed_snapshot_stale(
    fake_deribit, fast_env, tmp_path, capsys, monkeypatch
):
    from pipelines.cli.commands import status as cli
    from pipelines.jobs.compute import compute_cycle
    from pipelines.store import inputs

    data = tmp_path / "data"
    base = ["--api-url", fake_deribit.url, "--currency", "BTC", "--data-dir", str(data)]
    assert main(["ingest", *base]) == 0 and main(["compute", *base[2:]]) == 0
    for module in (cli, inputs):  # a release whose analytics code changed stored numbers bumps the constant
        monkeypatch.setattr(module, "ANALYTICS_VERSION", inputs.ANALYTICS_VERSION + 1)
    assert status(data, capsys)["stale"] == 1
    assert len(compute_cycle(data, ["BTC"], only_missing=True).snapshots) == 1
    assert status(data, capsys)["stale"] == 0
    assert query(data, "select distinct analytics_version from analytics_inputs") == [(inputs.ANALYTICS_VERSION,)]
