"""Against the real Deribit API. Deselected by default (`-m 'not live'` in pyproject); run on purpose with
`python -m pytest -m live tests/integration/test_live.py` on a machine with internet access."""

from __future__ import annotations

import duckdb
import pytest

from pipelines.cli.app import main

pytestmark = pytest.mark.live


def test_a_live_cycle_lands_a_fresh_btc_chain_and_its_levels(tmp_path, capsys):
    assert main(["run", "--currency", "BTC", "--data-dir", str(tmp_path)]) == 0
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    options, oi, age_s = con.execute(
        "select count(*), sum(open_interest), epoch(now() - max(snapshot_ts)) from option_snapshots"
    ).fetchone()
    models = {m for (m,) in con.execute("select distinct model from key_levels").fetchall()}
    con.close()
    assert options > 100 and oi > 0 and age_s < 900
    assert {"naive", "customer_long"} <= models
    assert "zero_gamma" in capsys.readouterr().out
