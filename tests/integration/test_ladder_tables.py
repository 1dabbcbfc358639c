"""The stored threshold-rebalancing tables (issue 15): hedge_ladder and hedge_ladder_volume against a scalar band
hedger (tests/reference.py, one option at a time) on the real snapshots, compute storing them behind their views,
and `gexflow ladder`."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests import reference as ref
from tests.data_paths import snapshot_chain
from transforms.gex.exposure import _exposures
from transforms.gex.hedge_ladder import BANDS_GAMMA, LADDER_STEP, MOVES_PCT, ladder_tables
from transforms.gex.positioning import dealer_positions

MS_PER_YEAR = 365 * 86_400_000


def _options(chain: pl.DataFrame, positions: pl.DataFrame) -> list[ref.Option]:
    """The reference options of one book (priced ones only), straight from the rows."""
    rows = positions.join(chain, on=["currency", "snapshot_ts", "instrument_name"], how="inner")
    out = []
    for r in rows.iter_rows(named=True):
        if r["mark_iv"] is None or r["underlying_price"] is None or r["expiration_ts"] <= r["snapshot_ts"]:
            continue
        tau_ms = (r["expiration_ts"] - r["snapshot_ts"]) // timedelta(milliseconds=1)
        out.append(
            ref.Option(
                forward=r["underlying_price"],
                strike=r["strike"],
                sigma=r["mark_iv"] / 100.0,
                tau=tau_ms / MS_PER_YEAR,
                weight=r["dealer_contracts"] * r["contract_size"],
                is_call=r["option_type"] == "call",
            )
        )
    return out


@pytest.fixture(scope="module")
def book():
    chain = snapshot_chain("BTC", "20260731T113322Z")
    positions = dealer_positions(chain, "naive")
    greeks, x = _exposures(chain, positions)
    return chain, _options(chain, positions), ladder_tables(greeks, x)


def test_every_rung_is_where_the_scalar_dealer_delta_has_moved_one_more_band(book):
    chain, options, tables = book
    rungs = tables["hedge_ladder"]
    spot = float(chain["index_price"][0])
    d0 = ref.profile_point(options, 1.0)[1]
    total_gex = sum(ref.profile_point([o], 1.0)[0] for o in options)
    assert sorted(set(rungs["band_gamma"])) == sorted(BANDS_GAMMA)
    for (fraction, direction), ladder in rungs.partition_by("band_gamma", "direction", as_dict=True).items():
        band = ladder["band_coins"][0]
        assert band == pytest.approx(fraction * abs(total_gex) / spot, rel=1e-12)
        ladder = ladder.sort("rung")
        assert ladder["rung"].to_list() == list(range(1, ladder.height + 1))
        steps = ladder["pct_from_spot"].diff().drop_nulls()
        assert ((steps > 0) if direction == "up" else (steps < 0)).all()  # each rung further from spot
        assert (ladder["pct_from_spot"].abs() <= 5.0 + 1e-9).all()
        moved = 0.0
        for r in ladder.iter_rows(named=True):
            assert abs(abs(r["order_coins"]) - band) <= 1e-9 * band  # one band per order
            moved += r["order_coins"]
            assert r["cumulative_coins"] == pytest.approx(moved, rel=1e-12, abs=1e-9 * band)
            d = ref.profile_point(options, r["price_level"] / spot)[1]
            assert abs(-(d - d0) - r["cumulative_coins"]) <= 1e-7 * band  # the trigger: D moved exactly that
            assert r["continuous_flow_coins"] == pytest.approx(-(d - d0), rel=1e-9, abs=1e-9 * band)
            assert r["order_usd"] == pytest.approx(r["order_coins"] * r["price_level"], rel=1e-12)


def test_volume_by_band_sums_the_rungs_and_the_continuous_hedge_is_the_scalar_path(book):
    chain, options, tables = book
    rungs, volume = tables["hedge_ladder"], tables["hedge_ladder_volume"]
    spot = float(chain["index_price"][0])
    assert volume.height == len(BANDS_GAMMA) * 2 * len(MOVES_PCT)
    deltas: dict[float, float] = {}

    def delta(ratio: float) -> float:
        if ratio not in deltas:
            deltas[ratio] = ref.profile_point(options, ratio)[1]
        return deltas[ratio]

    for row in volume.iter_rows(named=True):
        sign = 1.0 if row["direction"] == "up" else -1.0
        crossed = [
            r
            for r in rungs.iter_rows(named=True)
            if r["band_gamma"] == row["band_gamma"]
            and r["direction"] == row["direction"]
            and abs(r["pct_from_spot"]) <= row["move_pct"] + 1e-10
        ]
        assert row["rungs"] == len(crossed)
        assert row["traded_coins"] == pytest.approx(sum(abs(r["order_coins"]) for r in crossed), rel=1e-12, abs=1e-9)
        assert row["net_coins"] == pytest.approx(sum(r["order_coins"] for r in crossed), rel=1e-12, abs=1e-9)
        assert row["traded_usd"] == pytest.approx(sum(abs(r["order_usd"]) for r in crossed), rel=1e-12, abs=1e-6)
        steps = round(row["move_pct"] / 100.0 / LADDER_STEP)
        path = [delta(1.0 + sign * min(k * LADDER_STEP, row["move_pct"] / 100.0)) for k in range(steps + 1)]
        continuous = -(path[-1] - path[0])
        variation = sum(abs(b - a) for a, b in zip(path[:-1], path[1:], strict=True))
        assert row["continuous_net_coins"] == pytest.approx(continuous, rel=1e-9, abs=1e-9 * row["band_coins"])
        assert row["continuous_traded_coins"] == pytest.approx(variation, rel=1e-9)
        assert abs(row["net_coins"] - row["continuous_net_coins"]) < row["band_coins"] * (1 + 1e-9)  # within a band
        assert row["traded_coins"] <= row["continuous_traded_coins"] * (1 + 1e-9) and row["complete"]
    assert math.isclose(spot, float(chain["index_price"][0]))


def test_a_book_without_gamma_at_spot_has_no_gamma_band_and_a_coin_band_is_checked():
    chain = snapshot_chain("BTC", "20260731T113322Z")
    positions = dealer_positions(chain, "naive").with_columns(pl.lit(0.0).alias("dealer_contracts"))
    greeks, x = _exposures(chain, positions)
    tables = ladder_tables(greeks, x)
    assert tables["hedge_ladder"].is_empty() and tables["hedge_ladder_volume"].is_empty()
    with pytest.raises(ValueError, match="band must be a positive number of coins"):
        ladder_tables(greeks, x, band_coins=-1.0)
    with pytest.raises(ValueError, match="move must be a percentage"):
        ladder_tables(greeks, x, move_pct=float("nan"))


def test_compute_stores_both_tables_and_the_cli_prints_the_ladder(tmp_path, fast_env, capsys, monkeypatch):
    import duckdb

    from pipelines.cli.app import main

    monkeypatch.setenv("GEXFLOW_WHAT_IFS", "true")
    assert main(["run", "--source", "sample", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        books = con.execute("select count(distinct (currency, snapshot_ts, model)) from hedge_ladder").fetchone()[0]
        dupes = con.execute(
            "select count(*) from (select 1 from hedge_ladder group by currency, snapshot_ts, model, band_coins, "
            "direction, rung having count(*) > 1)"
        ).fetchone()[0]
        volume = con.execute(
            "select count(*), count(distinct (currency, snapshot_ts, model, band_coins, direction, move_pct)) "
            "from hedge_ladder_volume"
        ).fetchone()
        stored = con.execute(
            "select price_level, order_coins from hedge_ladder where currency = 'BTC' and model = 'naive' "
            "and band_gamma = 1 and direction = 'up' order by snapshot_ts desc, rung limit 1"
        ).fetchone()
    finally:
        con.close()
    assert books == 8 and dupes == 0  # 2 currencies x 2 snapshots x 2 models
    assert volume[0] == volume[1] == 8 * len(BANDS_GAMMA) * 2 * len(MOVES_PCT)
    assert main(["ladder", "--currency", "BTC", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "band 1 gamma" in out and "continuous_traded_coins" in out
    first_up = next(line for line in out.splitlines() if line.startswith("up "))
    assert f"{stored[0]:,.2f}" in first_up  # the stored rung, re-priced on the fly
    assert main(["ladder", "--data-dir", str(tmp_path), "--band", "5", "--band-unit", "coins", "--move", "2"]) == 0
    out = capsys.readouterr().out
    assert "band 5 coins = 5.0000 coins" in out and "within +-2 %" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--band", "0"], "--band must be a positive number, got '0'"),
        (["--band", "nan"], "--band must be a positive number, got 'nan'"),
        (["--move", "75"], "--move must be a positive number up to 50, got '75'"),
        (["--at", "soon"], "--at must be an ISO date or time"),
        (["--currency", "XRP"], "no key levels for XRP model naive"),
    ],
)
def test_bad_ladder_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    from pipelines.cli.app import main

    assert main(["ladder", "--data-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_cli_knows_the_stored_bands():
    from pipelines.cli.commands.ladder import STORED_BANDS

    assert STORED_BANDS == BANDS_GAMMA
    assert np.all(np.diff(MOVES_PCT) > 0)
