"""What-if scenarios (issue 15): each equals recomputing the profile on the chain the scenario describes, and the
gamma, vanna and charm parts of the flow sum to the total."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.data_paths import snapshot_chain
from transforms.gex.analytic_tables import exposure_tables
from transforms.gex.exposure import gex_profile, key_levels
from transforms.gex.positioning import dealer_positions
from transforms.gex.scenarios import SCENARIOS, is_monthly, scenario_profiles

STEP = 0.01


@pytest.fixture(scope="module")
def btc():
    chain = snapshot_chain("BTC", "20260731T113322Z")
    positions = pl.concat([dealer_positions(chain, m) for m in ("naive", "customer_long")])
    return chain, positions, scenario_profiles(chain, positions)


def _close(a: np.ndarray, b: np.ndarray, rtol: float) -> None:
    scale = float(np.abs(b).max()) + 1e-300
    assert float(np.abs(a - b).max()) <= rtol * scale


def _recomputed(chain: pl.DataFrame, model: str, at, *, vol_model: str = "sticky_strike"):
    """gex_profile and key levels of ``chain`` moved to ``at`` (options settled by then dropped), from scratch."""
    moved = chain.with_columns(pl.lit(at).cast(chain["snapshot_ts"].dtype).alias("snapshot_ts"))
    moved = moved.filter(pl.col("expiration_ts") > pl.col("snapshot_ts"))
    positions = dealer_positions(moved, model)
    profile = gex_profile(moved, positions, step=STEP, vol_model=vol_model).sort("price_level")
    return profile, key_levels(moved, positions, step=STEP, vol_model=vol_model).row(0, named=True)


@pytest.mark.parametrize("scenario", ["rolloff_next", "rolloff_monthly", "time_24h"])
def test_rolling_off_or_ageing_equals_recomputing_without_the_settled_instruments(btc, scenario):
    chain, _, table = btc
    for model in ("naive", "customer_long"):
        rows = table.filter(pl.col("scenario") == scenario, pl.col("model") == model).sort("price_level")
        at = rows["horizon_ts"][0]
        profile, levels = _recomputed(chain, model, at)
        assert rows.height == profile.height == 51
        _close(rows["dealer_gex_usd"].to_numpy(), profile["dealer_gex_usd"].to_numpy(), 1e-12)
        _close(rows["dealer_delta"].to_numpy(), profile["dealer_delta"].to_numpy(), 1e-12)
        assert (rows["zero_gamma"][0] is None) == (levels["zero_gamma"] is None)
        if levels["zero_gamma"] is not None:
            assert rows["zero_gamma"][0] == pytest.approx(levels["zero_gamma"], rel=1e-12)
    expiries = sorted(set(chain["expiration_ts"].to_list()))
    horizon = table.filter(pl.col("scenario") == scenario)["horizon_ts"][0]
    if scenario == "rolloff_next":
        assert horizon == expiries[0]  # 2026-08-01 08:00: the daily
    elif scenario == "rolloff_monthly":
        assert horizon == min(e for e in expiries if is_monthly(e)) and horizon.day == 28  # 28 Aug 2026, a Friday
    else:
        assert horizon == chain["snapshot_ts"][0] + timedelta(hours=24)


def test_an_iv_shift_equals_recomputing_with_shifted_iv(btc):
    chain, _, table = btc
    shifted = chain.with_columns(pl.col("mark_iv") + 5.0)
    profile = gex_profile(shifted, dealer_positions(shifted, "naive"), step=STEP).sort("price_level")
    rows = table.filter(pl.col("scenario") == "iv_plus_5", pl.col("model") == "naive").sort("price_level")
    _close(rows["dealer_gex_usd"].to_numpy(), profile["dealer_gex_usd"].to_numpy(), 1e-12)
    _close(rows["dealer_delta"].to_numpy(), profile["dealer_delta"].to_numpy(), 1e-12)
    # the vol change alone, to first order: -(dealer vanna per vol point) x 5 at spot
    vanna = exposure_tables(chain, dealer_positions(chain, "naive"))["exposure_by_expiry"]["vanna_coins_per_vol"].sum()
    at_spot = rows.filter(pl.col("pct_from_spot") == 0.0).row(0, named=True)
    assert at_spot["charm_flow_coins"] == 0.0 and at_spot["gamma_flow_coins"] == 0.0
    assert at_spot["vanna_flow_coins"] == pytest.approx(-5.0 * vanna, rel=0.1)


def test_the_spot_vol_move_is_the_sticky_moneyness_profile_and_its_vanna_part_is_the_smile_alone(btc):
    chain, positions, table = btc
    naive = positions.filter(pl.col("model") == "naive")
    smile = gex_profile(chain, naive, step=STEP, vol_model="sticky_moneyness").sort("price_level")
    strike = gex_profile(chain, naive, step=STEP).sort("price_level")
    rows = table.filter(pl.col("scenario") == "spot_vol", pl.col("model") == "naive").sort("price_level")
    _close(rows["dealer_delta"].to_numpy(), smile["dealer_delta"].to_numpy(), 1e-12)
    _close(rows["gamma_flow_coins"].to_numpy(), strike["hedge_flow_coins"].to_numpy(), 1e-12)
    expected_vanna = strike["dealer_delta"].to_numpy() - smile["dealer_delta"].to_numpy()
    _close(rows["vanna_flow_coins"].to_numpy(), expected_vanna, 1e-9)
    assert (rows["charm_flow_coins"] == 0.0).all()


def test_gamma_vanna_and_charm_parts_sum_to_the_total_flow(btc):
    _, _, table = btc
    assert set(table["scenario"]) == set(SCENARIOS)
    for (scenario, model), rows in table.partition_by("scenario", "model", as_dict=True).items():
        parts = rows["gamma_flow_coins"] + rows["vanna_flow_coins"] + rows["charm_flow_coins"]
        scale = float(rows["hedge_flow_coins"].abs().max()) + 1.0
        assert float((parts - rows["hedge_flow_coins"]).abs().max()) <= 1e-9 * scale, (scenario, model)
        usd = rows["hedge_flow_coins"] * rows["price_level"]
        assert (rows["hedge_flow_usd"] == usd).all()
        if scenario in ("rolloff_next", "rolloff_monthly", "time_24h"):
            assert (rows["vanna_flow_coins"] == 0.0).all()  # time alone: no vol change
        else:
            assert (rows["charm_flow_coins"] == 0.0).all()  # vol alone: no time passes


def test_an_unknown_scenario_is_refused(btc):
    chain, positions, _ = btc
    with pytest.raises(ValueError, match="unknown scenario 'iv_plus_50'|unknown scenario iv_plus_50"):
        scenario_profiles(chain, positions, scenarios=["iv_plus_50"])


def test_scenario_names_of_the_cli_are_the_transforms_scenarios():
    from pipelines.publishing.scenario_view import SCENARIO_NAMES

    assert SCENARIO_NAMES == SCENARIOS
