"""What-if scenarios end to end: `gexflow run` stores the depth tables and, with GEXFLOW_WHAT_IFS, the scenario
table; `gexflow profile --scenario` shows one; the scenario math is tests/unit/test_scenarios.py."""

from __future__ import annotations

import json

import polars as pl
import pytest


def test_compute_stores_the_depth_tables_and_profile_shows_a_scenario(tmp_path, fast_env, capsys, monkeypatch):
    import duckdb

    from pipelines.cli.app import main

    monkeypatch.setenv("GEXFLOW_WHAT_IFS", "true")
    assert main(["run", "--source", "sample", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        gaps = con.execute(
            "select k.total_gex_usd - e.gex, k.total_gex_usd from key_levels k join (select currency, snapshot_ts, "
            "model, sum(gex_usd) gex from exposure_by_expiry group by all) e using (currency, snapshot_ts, model)"
        ).fetchall()
        tenors = con.execute("select count(*), count(distinct tenor) from key_levels_by_tenor").fetchone()
        stored = pl.DataFrame(
            con.execute(
                "select * from scenario_profiles where currency = 'BTC' and model = 'naive' "
                "and scenario = 'rolloff_next' order by snapshot_ts desc, price_level limit 51"
            ).fetchall(),
            schema=[d[0] for d in con.description],
            orient="row",
        )
    finally:
        con.close()
    assert len(gaps) == 8 and all(abs(gap) <= 1e-9 * abs(total) for gap, total in gaps)
    assert tenors == (32, 4)  # 2 currencies x 2 snapshots x 2 models x 4 tenors
    png = tmp_path / "scenario.png"
    args = ["profile", "--currency", "BTC", "--scenario", "rolloff_next", "--data-dir", str(tmp_path)]
    assert main([*args, "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "scenario rolloff_next" in out and "vanna_flow_coins" in out and png.read_bytes()[:4] == b"\x89PNG"
    assert main([*args, "--format", "json"]) == 0
    live = pl.DataFrame(json.loads(capsys.readouterr().out))
    assert live.height == 201
    # the stored 1 % grid is a subset of the 0.25 % one: the same numbers where the levels meet
    for row in stored.iter_rows(named=True):
        match = live.filter((pl.col("price_level") - row["price_level"]).abs() <= 1e-9 * row["price_level"])
        assert match.height == 1
        assert match["hedge_flow_coins"][0] == pytest.approx(row["hedge_flow_coins"], rel=1e-9, abs=1e-9)
