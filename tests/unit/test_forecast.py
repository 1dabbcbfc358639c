"""The daily flow forecast on the real 2026-07-31T11:33:22Z BTC chain: identities, scalar oracles, signs."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest

from tests import reference as ref
from tests.chains import reference_options
from tests.data_paths import snapshot_chain
from transforms.forecasting.forecast import (
    HOURS_PER_YEAR,
    expiry_rolloff,
    flow_forecast,
    forecast_start,
    forecast_summary,
    next_settlement,
)
from transforms.frames.schemas import EXPIRY_ROLLOFF, FLOW_FORECAST, FORECAST_SUMMARY
from transforms.gex.exposure import key_levels
from transforms.gex.positioning import dealer_positions

STAMP = "20260731T113322Z"
MODELS = ("naive", "customer_long")
COMPONENTS = ["gamma_flow_coins", "charm_flow_coins", "expiry_flow_coins", "remainder_flow_coins"]
NEXT_EXPIRY = datetime(2026, 8, 1, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def chain() -> pl.DataFrame:
    return snapshot_chain("BTC", STAMP)


@pytest.fixture(scope="module")
def positions(chain) -> pl.DataFrame:
    return pl.concat([dealer_positions(chain, m) for m in MODELS])


@pytest.fixture(scope="module")
def t0(chain) -> datetime:
    return chain["snapshot_ts"][0]


@pytest.fixture(scope="module")
def forecast(chain, positions, t0) -> pl.DataFrame:
    return flow_forecast(chain, positions, t0=t0)


def _rows(forecast: pl.DataFrame, model: str, horizon: str) -> pl.DataFrame:
    return forecast.filter((pl.col("model") == model) & (pl.col("horizon") == horizon)).sort("price_level")


def _options(chain, positions, model):
    return reference_options(chain, positions.filter(pl.col("model") == model))


def _delta(options, ratio: float, age_years: float) -> float:
    """Scalar dealer delta sum w * Black-76 delta at F * ratio, each option aged by ``age_years``."""
    return sum(
        o.weight * ref.black76(o.forward * ratio, o.strike, o.sigma, o.tau - age_years, o.is_call).delta
        for o in options
    )


def test_the_forecast_has_one_row_per_model_horizon_and_level(forecast):
    assert forecast.schema == pl.Schema(FLOW_FORECAST)
    counts = forecast.group_by("model", "horizon").len()
    assert counts.height == len(MODELS) * 3 and set(counts["len"]) == {201}
    assert set(forecast["horizon"]) == {"1h", "24h", "next_expiry"}
    assert forecast.select("model", "horizon", "price_level").is_duplicated().sum() == 0
    assert forecast["forecast_date"].unique().to_list() == [datetime(2026, 7, 31).date()]


def test_a_repeated_horizon_is_one_horizon(chain, positions, t0, forecast):
    """`--horizon 24 --horizon 24` once doubled the 24 h rows (probability weights summing to 2)."""
    again = flow_forecast(chain, positions, t0=t0, horizons_hours=(1, 24, 24, 24.0, 1))
    assert again.equals(forecast)


def test_components_sum_to_the_total_at_every_level(forecast):
    parts = forecast.select(COMPONENTS).to_numpy()
    total = forecast["hedge_flow_coins"].to_numpy()
    scale = np.maximum(np.abs(parts).max(axis=1), np.abs(total))
    assert np.all(np.abs(parts.sum(axis=1) - total) <= 1e-9 * scale)
    np.testing.assert_allclose(forecast["hedge_flow_usd"], total * forecast["price_level"].to_numpy(), rtol=1e-15)


def test_gamma_is_zero_at_spot_and_the_total_there_is_charm_plus_expiry(forecast):
    at_spot = forecast.filter(pl.col("pct_move") == 0.0)
    assert at_spot.height == len(MODELS) * 3
    assert (at_spot["price_level"] == at_spot["spot"]).all()
    assert (at_spot["gamma_flow_coins"] == 0.0).all()
    scale = at_spot.select(pl.max_horizontal(pl.col(COMPONENTS[1:3]).abs())).to_series().to_numpy() + 1.0
    assert np.all(np.abs(at_spot["remainder_flow_coins"].to_numpy()) <= 1e-9 * scale)


@pytest.mark.parametrize("model", MODELS)
def test_expiry_component_is_the_hand_computed_unwind_of_the_options_settling_in_the_horizon(
    chain, positions, forecast, t0, model
):
    options = _options(chain, positions, model)
    expiry_ms = {h: int(_rows(forecast, model, h)["horizon_end_ts"][0].timestamp() * 1000) for h in ("1h", "24h")}
    expiry_ms["next_expiry"] = int(NEXT_EXPIRY.timestamp() * 1000)
    t0_ms = int(t0.timestamp() * 1000)
    for horizon, end_ms in expiry_ms.items():
        settling = [o for o in options if t0_ms < o.expiry <= end_ms]
        # dealers hold -D_exp against the settling options; when they settle the hedge is bought back: +D_exp
        hand = sum(o.weight * ref.black76(o.forward, o.strike, o.sigma, o.tau, o.is_call).delta for o in settling)
        scale = sum(abs(o.weight * ref.black76(o.forward, o.strike, o.sigma, o.tau, o.is_call).delta) for o in settling)
        got = _rows(forecast, model, horizon)["expiry_flow_coins"]
        assert got.n_unique() == 1
        assert abs(got[0] - hand) <= 1e-9 * scale, horizon
    assert _rows(forecast, model, "1h")["expiry_flow_coins"][0] == 0.0  # nothing settles within the hour
    assert {o.expiry for o in options if o.expiry <= expiry_ms["24h"]} == {expiry_ms["next_expiry"]}


@pytest.mark.parametrize("model", MODELS)
def test_total_gamma_and_charm_match_the_scalar_reference(chain, positions, forecast, model):
    options = _options(chain, positions, model)
    rows = _rows(forecast, model, "24h")
    age = 24.0 / HOURS_PER_YEAR
    survivors = [o for o in options if o.tau > age]
    d0 = _delta(options, 1.0, 0.0)
    scale = sum(abs(o.weight) for o in options)
    charm = -(_delta(survivors, 1.0, age) - _delta(survivors, 1.0, 0.0))
    assert abs(rows["charm_flow_coins"][0] - charm) <= 1e-9 * scale
    for pct in (-10.0, -1.0, 0.0, 0.5, 3.0, 25.0):
        row = rows.filter(pl.col("pct_move") == pct).row(0, named=True)
        ratio = row["price_level"] / row["spot"]
        total = -(_delta(survivors, ratio, age) - d0)
        gamma = -(_delta(options, ratio, 0.0) - d0)
        assert abs(row["hedge_flow_coins"] - total) <= 1e-9 * scale, pct
        assert abs(row["gamma_flow_coins"] - gamma) <= 1e-9 * scale, pct


def test_probability_weights_sum_to_one_and_follow_the_lognormal(forecast):
    for (_model, horizon), rows in forecast.group_by("model", "horizon"):
        rows = rows.sort("price_level")
        w = rows["probability_weight"].to_numpy()
        assert abs(w.sum() - 1.0) <= 1e-12 and (w >= 0.0).all()
        spot = rows["spot"][0]
        v = (rows["sigma_atm"][0] / 100.0) ** 2 * rows["horizon_hours"][0] / HOURS_PER_YEAR
        dist = NormalDist(mu=-v / 2.0, sigma=math.sqrt(v))
        levels = rows["price_level"].to_numpy()
        j = int(np.flatnonzero(rows["pct_move"].to_numpy() == 0.0)[0])
        lo, hi = 0.5 * (levels[j - 1] + levels[j]), 0.5 * (levels[j] + levels[j + 1])
        assert w[j] == pytest.approx(dist.cdf(math.log(hi / spot)) - dist.cdf(math.log(lo / spot)), rel=1e-9)
        assert w[0] == pytest.approx(dist.cdf(math.log(0.5 * (levels[0] + levels[1]) / spot)), rel=1e-9, abs=1e-15)
        if horizon != "1h":  # the 1 h distribution is narrower than a few grid steps: moments are coarse there
            x = np.log(levels / spot)
            mean = float(w @ x)
            assert mean == pytest.approx(-v / 2.0, abs=2e-4)
            assert float(w @ (x - mean) ** 2) == pytest.approx(v, rel=0.02)


def _atm_iv(chain: pl.DataFrame, expiry: datetime) -> tuple[float, float]:
    """(forward, ATM IV in percent) of one expiry: IV at the two strikes around the median forward,
    call and put averaged, linear in ln K."""
    rows = chain.filter(pl.col("expiration_ts") == expiry)
    forward = float(rows["underlying_price"].median())
    smile = rows.group_by("strike").agg(pl.col("mark_iv").mean()).sort("strike")
    below = smile.filter(pl.col("strike") <= forward).row(-1, named=True)
    above = smile.filter(pl.col("strike") > forward).row(0, named=True)
    t = (math.log(forward) - math.log(below["strike"])) / (math.log(above["strike"]) - math.log(below["strike"]))
    return forward, below["mark_iv"] + t * (above["mark_iv"] - below["mark_iv"])


def test_sigma_atm_is_the_total_variance_interpolation_of_the_expiries_atm_vols(chain, forecast, t0):
    first, second = NEXT_EXPIRY, NEXT_EXPIRY + timedelta(days=1)
    s1, s2 = _atm_iv(chain, first)[1] / 100.0, _atm_iv(chain, second)[1] / 100.0
    t1 = (first - t0).total_seconds() / 3600.0 / HOURS_PER_YEAR
    t2 = (second - t0).total_seconds() / 3600.0 / HOURS_PER_YEAR
    t24 = 24.0 / HOURS_PER_YEAR
    w24 = s1**2 * t1 + (s2**2 * t2 - s1**2 * t1) * (t24 - t1) / (t2 - t1)
    sig = {h: _rows(forecast, "naive", h)["sigma_atm"][0] / 100.0 for h in ("1h", "24h", "next_expiry")}
    assert sig["24h"] == pytest.approx(math.sqrt(w24 / t24), rel=1e-12)
    assert sig["next_expiry"] == pytest.approx(s1, rel=1e-12)  # the horizon ends exactly at the first expiry
    assert sig["1h"] == pytest.approx(s1, rel=1e-12)  # flat vol before the first expiry
    assert _rows(forecast, "customer_long", "24h")["sigma_atm"][0] == sig["24h"] * 100.0  # the model does not matter


def test_next_expiry_horizon_runs_to_the_next_0800_utc_settlement(forecast, t0):
    rows = forecast.filter(pl.col("horizon") == "next_expiry")
    assert rows["horizon_end_ts"].unique().to_list() == [NEXT_EXPIRY]
    assert rows["horizon_hours"][0] == pytest.approx((NEXT_EXPIRY - t0).total_seconds() / 3600.0, abs=1e-12)
    assert next_settlement(t0) == NEXT_EXPIRY
    assert next_settlement(NEXT_EXPIRY) == NEXT_EXPIRY + timedelta(days=1)


def test_sign_conventions_on_the_real_btc_book(forecast):
    """What the data shows (2026-07-31 BTC, one hour ahead, so the price move dominates):

    naive (dealers long calls, short puts): long gamma at spot with zero gamma at 62,995 USD (-1.27 %), so dealers
    SELL into rallies (flow < 0 at every level above spot) and BUY small dips (flow > 0 at -1 %), but below zero gamma
    they are short gamma and the flow turns to selling further down (flow < 0 at -5 %).
    customer_long (dealers short every option): short gamma over the whole grid, so dealers BUY rallies and SELL
    dips: the gamma flow has the sign of the move at every level.
    """
    naive = _rows(forecast, "naive", "1h")
    above = naive.filter(pl.col("pct_move") > 0.0)
    assert (above["gamma_flow_coins"] < 0.0).all() and (above["hedge_flow_coins"] < 0.0).all()
    at = {p: naive.filter(pl.col("pct_move") == p)["hedge_flow_coins"][0] for p in (-1.0, -5.0)}
    assert at[-1.0] > 0.0 and at[-5.0] < 0.0
    short = _rows(forecast, "customer_long", "1h").filter(pl.col("pct_move") != 0.0)
    assert (np.sign(short["gamma_flow_coins"]) == np.sign(short["pct_move"])).all()
    assert (np.sign(short["hedge_flow_coins"]) == np.sign(short["pct_move"])).all()


def test_summary_weights_the_grid_and_interpolates_the_sigma_moves(chain, positions, forecast):
    levels = key_levels(chain, positions)
    summary = forecast_summary(forecast, levels)
    assert summary.schema == pl.Schema(FORECAST_SUMMARY)
    assert summary.height == len(MODELS) * 3
    for row in summary.iter_rows(named=True):
        rows = _rows(forecast, row["model"], row["horizon"])
        w = rows["probability_weight"].to_numpy()
        coins, usd, x = (rows[c].to_numpy() for c in ("hedge_flow_coins", "hedge_flow_usd", "price_level"))
        assert row["expected_flow_coins"] == pytest.approx(float(w @ coins), rel=1e-12)
        assert row["expected_abs_flow_usd"] == pytest.approx(float(w @ np.abs(usd)), rel=1e-12)
        sd = row["sigma_atm"] / 100.0 * math.sqrt(row["horizon_hours"] / HOURS_PER_YEAR)
        assert row["sigma_move_pct"] == pytest.approx(sd * 100.0, rel=1e-12)
        price = row["spot"] * math.exp(sd)
        assert row["price_plus_1sigma"] == pytest.approx(price, rel=1e-12)
        j = int(np.searchsorted(x, price))
        between = coins[j - 1] + (coins[j] - coins[j - 1]) * (price - x[j - 1]) / (x[j] - x[j - 1])
        assert row["flow_plus_1sigma_coins"] == pytest.approx(between, rel=1e-9)
        assert row["flow_plus_1sigma_usd"] == pytest.approx(between * price, rel=1e-9)
        assert row["expiry_flow_coins"] == rows["expiry_flow_coins"][0]
        lv = levels.filter(pl.col("model") == row["model"]).row(0, named=True)
        assert (row["zero_gamma"], row["call_wall"], row["put_wall"]) == (
            lv["zero_gamma"],
            lv["call_wall"],
            lv["put_wall"],
        )
    assert forecast_summary(forecast)["zero_gamma"].null_count() == summary.height


def test_expiry_rolloff_is_what_the_forecast_unwinds(chain, positions, forecast):
    rolloff = expiry_rolloff(chain, positions)
    assert rolloff.schema == pl.Schema(EXPIRY_ROLLOFF)
    assert rolloff.select("model", "expiration_ts").is_duplicated().sum() == 0
    assert rolloff["expiration_ts"].n_unique() == chain["expiration_ts"].n_unique()
    levels = key_levels(chain, positions)
    for model in MODELS:
        mine = rolloff.filter(pl.col("model") == model)
        first = mine.filter(pl.col("expiration_ts") == NEXT_EXPIRY).row(0, named=True)
        assert first["unwind_flow_coins"] == pytest.approx(
            _rows(forecast, model, "next_expiry")["expiry_flow_coins"][0], rel=1e-9
        )
        total = levels.filter(pl.col("model") == model)["total_gex_usd"][0]
        assert mine["dealer_gex_usd"].sum() == pytest.approx(total, rel=1e-9)
        assert mine["open_interest"].sum() == pytest.approx(chain["open_interest"].sum(), rel=1e-12)


def test_several_currencies_and_a_later_t0(positions):
    both = pl.concat([snapshot_chain(c, STAMP) for c in ("BTC", "ETH")])
    pos = dealer_positions(both, "naive")
    start = both["snapshot_ts"][0] + timedelta(hours=2)
    out = flow_forecast(both, pos, t0=start, horizons_hours=(6,), include_next_expiry=False)
    assert out.group_by("currency").len().sort("currency").rows() == [("BTC", 201), ("ETH", 201)]
    assert out["horizon"].unique().to_list() == ["6h"]
    assert (out["t0"] == start).all() and (out["snapshot_ts"] == both["snapshot_ts"][0]).all()
    with pytest.raises(ValueError, match="after t0"):
        flow_forecast(both, pos, t0=both["snapshot_ts"][0] - timedelta(seconds=1))


def test_forecast_start_is_the_later_of_the_settlement_and_the_snapshot():
    day = datetime(2026, 7, 31).date()
    assert forecast_start(day, datetime(2026, 7, 31, 6, tzinfo=UTC)) == datetime(2026, 7, 31, 8, tzinfo=UTC)
    late = datetime(2026, 7, 31, 11, 33, tzinfo=UTC)
    assert forecast_start(day, late) == late
