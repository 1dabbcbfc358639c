"""Exposure functions: metamorphic properties (hypothesis), the scalar reference, hand-checked levels."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests import reference as ref
from tests.chains import SNAPSHOT_TS, chain_frame, option_row, reference_options
from transforms.frames.schemas import GEX_BY_STRIKE, GEX_PROFILE, KEY_LEVELS
from transforms.gex.exposure import gex_by_strike, gex_profile, key_levels, price_grid
from transforms.gex.positioning import dealer_positions
from transforms.pricing.greeks import with_greeks

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODELS = st.sampled_from(["naive", "customer_long"])


@st.composite
def chains(draw, *, calls_only: bool = False, same_forward: bool = False, max_size: int = 10) -> pl.DataFrame:
    """A small random chain around one spot: several expiries, strikes, IVs and open interests."""
    spot = draw(st.sampled_from([150.0, 3_000.0, 60_000.0]))
    rows = []
    for i in range(draw(st.integers(1, max_size))):
        days = draw(st.sampled_from([0.3, 1.0, 3.0, 7.0, 30.0, 90.0, 365.0]))
        forward = spot if same_forward else spot * (1.0 + 0.0004 * days)
        rows.append(
            option_row(
                strike=spot * draw(st.sampled_from([0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.4])),
                expiry_days=days,
                option_type="call" if calls_only else draw(st.sampled_from(["call", "put"])),
                # Deribit open interest moves in steps of 0.1 contract; unconstrained floats reach 5e-324,
                # where a whole book's GEX is a denormal the kernel (rightly) flushes to 0
                open_interest=draw(st.integers(0, 50_000)) / 10.0,
                mark_iv=draw(st.floats(20.0, 150.0)),
                forward=forward,
                spot=spot,
                contract_size=draw(st.sampled_from([1.0, 0.1])),
                name=f"OPT-{i:03d}",
            )
        )
    return chain_frame(rows)


def _close(a: float, b: float, rtol: float, scale: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + rtol * scale


def _scale(chain: pl.DataFrame, positions: pl.DataFrame) -> float:
    """Sum of |per-option GEX| at spot: the size against which a sum that cancels to ~0 is judged."""
    g = with_greeks(chain).join(positions, on=["currency", "snapshot_ts", "instrument_name"])
    return (
        float((g["dealer_contracts"] * g["contract_size"] * g["gamma"] * g["underlying_price"] ** 2 * 0.01).abs().sum())
        + 1e-300
    )


@PROPERTY
@given(strike=st.floats(1_000.0, 200_000.0), iv=st.floats(5.0, 300.0), days=st.floats(0.01, 800.0))
def test_call_and_put_gamma_are_equal_at_the_same_strike(strike, iv, days):
    rows = [option_row(strike=strike, expiry_days=days, option_type=t, mark_iv=iv, name=t) for t in ("call", "put")]
    g = with_greeks(chain_frame(rows))
    assert g["gamma"][0] == g["gamma"][1]
    assert g["delta"][0] - g["delta"][1] == pytest.approx(1.0, rel=1e-14)


@PROPERTY
@given(chain=chains(), model=MODELS, factor=st.floats(0.01, 100.0))
def test_gex_is_linear_in_open_interest(chain, model, factor):
    scaled = chain.with_columns(pl.col("open_interest") * factor)
    base = gex_by_strike(chain, dealer_positions(chain, model))
    more = gex_by_strike(scaled, dealer_positions(scaled, model))
    scale = _scale(chain, dealer_positions(chain, model))
    for a, b in zip(base["net_gex_usd"], more["net_gex_usd"], strict=True):
        assert _close(b, a * factor, 1e-12, scale * factor)
    p0 = gex_profile(chain, dealer_positions(chain, model))["dealer_gex_usd"]
    p1 = gex_profile(scaled, dealer_positions(scaled, model))["dealer_gex_usd"]
    for a, b in zip(p0, p1, strict=True):
        assert _close(b, a * factor, 1e-12, scale * factor)


@PROPERTY
@given(chain=chains(), model=MODELS)
def test_per_strike_gex_over_all_expiries_sums_to_the_profile_gex_at_spot(chain, model):
    positions = dealer_positions(chain, model)
    by_strike = gex_by_strike(chain, positions)
    all_expiries = by_strike.filter(pl.col("expiration_ts").is_null())
    per_expiry = by_strike.filter(pl.col("expiration_ts").is_not_null())
    at_spot = gex_profile(chain, positions).filter(pl.col("pct_from_spot") == 0.0)["dealer_gex_usd"][0]
    total = key_levels(chain, positions)["total_gex_usd"][0]
    scale = _scale(chain, positions)
    assert _close(all_expiries["net_gex_usd"].sum(), at_spot, 1e-12, scale)
    assert _close(per_expiry["net_gex_usd"].sum(), all_expiries["net_gex_usd"].sum(), 1e-12, scale)
    assert _close(total, at_spot, 1e-12, scale)


@PROPERTY
@given(chain=chains(max_size=6), model=MODELS)
def test_the_profile_matches_the_scalar_reference_at_every_level(chain, model):
    positions = dealer_positions(chain, model)
    prof = gex_profile(chain, positions, half_width=0.2, step=0.01)
    spot = chain["index_price"][0]
    options = reference_options(chain, positions)
    ratios = prof["price_level"].to_numpy() / spot
    gex_scale = _scale(chain, positions) * 10.0
    delta_scale = sum(abs(o.weight) for o in options) + 1e-300
    for r, gex, delta in zip(ratios, prof["dealer_gex_usd"], prof["dealer_delta"], strict=True):
        g_ref, d_ref = ref.profile_point(options, float(r))
        assert _close(gex, g_ref, 1e-12, gex_scale)
        assert _close(delta, d_ref, 1e-12, delta_scale)


# found by hypothesis: a call so deep in the money (d1 ~ 37) that its gamma at spot is ~1e-300
_TINY_GAMMA = chain_frame([option_row(strike=121.3, expiry_days=0.3, mark_iv=20.0, forward=150.0, spot=150.0)])


@PROPERTY
@given(chain=chains(same_forward=True), model=MODELS)
@example(chain=_TINY_GAMMA, model="naive")
def test_hedge_flow_is_zero_at_spot_and_its_slope_there_is_minus_dealer_gamma(chain, model):
    """flow(S') = -(D(S') - D(S0)) with D(S') = sum_i w_i Delta_i(F_i S'/S0), w_i = q_i c_i, so

        d flow / dS' at S0 = -sum_i w_i Gamma_i F_i / S0 = -(100 / S0) sum_i GEX_i / F_i   (coins per USD),

    using GEX_i = w_i Gamma_i F_i^2 / 100. With every forward equal to spot (as generated here) this is
    -100 * total_gex_usd / S0^2. Checked by a central difference over +-0.001 % of spot, which cannot see
    a slope below the rounding of the two dealer deltas (a few ulp of sum |w_i| over 2 h S0): hypothesis
    found a deep in-the-money call whose gamma (~1e-300) is far below that.
    """
    positions = dealer_positions(chain, model)
    h = 1e-5
    prof = gex_profile(chain, positions, half_width=h, step=h)
    spot = chain["index_price"][0]
    flow = prof["hedge_flow_coins"].to_list()
    assert flow[1] == 0.0
    assert prof["hedge_flow_usd"][1] == 0.0
    slope = (flow[2] - flow[0]) / (2.0 * h * spot)
    total = key_levels(chain, positions)["total_gex_usd"][0]
    expected = -100.0 * total / spot**2
    scale = _scale(chain, positions) * 100.0 / spot**2
    resolution = 4.0 * np.finfo(float).eps * sum(abs(o.weight) for o in reference_options(chain, positions))
    assert abs(slope - expected) <= 1e-4 * (abs(expected) + scale) + resolution / (2.0 * h * spot)


@PROPERTY
@given(chain=chains(max_size=12), model=MODELS)
def test_each_zero_gamma_root_lies_where_the_profile_changes_sign(chain, model):
    positions = dealer_positions(chain, model)
    levels = key_levels(chain, positions).row(0, named=True)
    spot = levels["spot"]
    options = reference_options(chain, positions)
    roots = levels["zero_gamma_roots"]
    assert roots == sorted(roots)
    if levels["zero_gamma"] is None:
        assert roots == []
    else:
        assert levels["zero_gamma"] == min(roots, key=lambda r: abs(r - spot))
    for root in roots:
        assert 0.75 * spot <= root <= 1.25 * spot
        below = ref.profile_point(options, root / spot * (1 - 1e-7))[0]
        above = ref.profile_point(options, root / spot * (1 + 1e-7))[0]
        assert (below < 0) != (above < 0), (root, below, above)


@PROPERTY
@given(chain=chains(calls_only=True), model=MODELS)
def test_a_chain_whose_gex_keeps_one_sign_has_a_null_zero_gamma(chain, model):
    levels = key_levels(chain, dealer_positions(chain, model)).row(0, named=True)
    assert levels["zero_gamma"] is None
    assert levels["zero_gamma_roots"] == []


def test_zero_gamma_is_found_to_full_precision_between_a_short_put_and_a_long_call():
    """Naive dealers: short the 55k put (negative gamma below), long the 65k call (positive above)."""
    chain = chain_frame(
        [
            option_row(strike=55_000.0, expiry_days=30.0, option_type="put", open_interest=1_000.0, name="P"),
            option_row(strike=65_000.0, expiry_days=30.0, option_type="call", open_interest=1_000.0, name="C"),
        ]
    )
    positions = dealer_positions(chain, "naive")
    root = key_levels(chain, positions)["zero_gamma"][0]
    options = reference_options(chain, positions)
    assert 55_000.0 < root < 65_000.0
    scale = abs(ref.profile_point(options, 55_000.0 / 60_000.0)[0])
    assert abs(ref.profile_point(options, root / 60_000.0)[0]) < 1e-9 * scale


def test_price_grid_has_201_levels_by_default_and_contains_spot_exactly():
    grid = price_grid(63_803.33)
    assert grid.size == 201
    assert grid[100] == 63_803.33
    assert grid[0] == pytest.approx(0.75 * 63_803.33, rel=1e-15)
    assert grid[-1] == pytest.approx(1.25 * 63_803.33, rel=1e-15)
    assert np.all(np.diff(grid) > 0)
    assert price_grid(100.0, half_width=0.1, step=0.05).tolist() == pytest.approx([90.0, 95.0, 100.0, 105.0, 110.0])
    for bad in [dict(spot=0.0), dict(spot=1.0, step=0.0), dict(spot=1.0, half_width=1.0)]:
        with pytest.raises(ValueError):
            price_grid(**bad)


def _levels_chain() -> pl.DataFrame:
    near, far = 0.5, 30.0
    return chain_frame(
        [
            # nearest expiry (12 h): max pain over strikes 55k/60k/65k
            option_row(strike=55_000.0, expiry_days=near, option_type="call", open_interest=10.0, name="N-C55"),
            option_row(strike=60_000.0, expiry_days=near, option_type="call", open_interest=0.0, name="N-C60"),
            option_row(strike=65_000.0, expiry_days=near, option_type="put", open_interest=12.0, name="N-P65"),
            # an expired option with OI must not define the nearest expiry
            option_row(strike=40_000.0, expiry_days=-0.1, option_type="put", open_interest=1e6, name="X-P40"),
            # far expiry: the walls
            option_row(strike=62_000.0, expiry_days=far, option_type="call", open_interest=5_000.0, name="F-C62"),
            option_row(strike=70_000.0, expiry_days=far, option_type="call", open_interest=6_000.0, name="F-C70"),
            option_row(strike=58_000.0, expiry_days=far, option_type="put", open_interest=4_000.0, name="F-P58"),
            option_row(strike=45_000.0, expiry_days=far, option_type="put", open_interest=5_000.0, name="F-P45"),
        ]
    )


def test_walls_max_pain_and_the_24h_share_match_a_brute_force_count():
    chain = _levels_chain()
    positions = dealer_positions(chain, "naive")
    levels = key_levels(chain, positions).row(0, named=True)
    g = with_greeks(chain).with_columns(
        (
            pl.col("gamma") * pl.col("open_interest") * pl.col("contract_size") * pl.col("underlying_price") ** 2 * 0.01
        ).alias("oi_gex")
    )
    per_strike: dict[float, dict[str, float]] = {}
    for r in g.iter_rows(named=True):
        per_strike.setdefault(r["strike"], {"call": 0.0, "put": 0.0})[r["option_type"]] += r["oi_gex"]
    assert levels["call_wall"] == max(per_strike, key=lambda k: per_strike[k]["call"]) == 62_000.0
    assert levels["put_wall"] == max(per_strike, key=lambda k: per_strike[k]["put"]) == 58_000.0
    assert levels["abs_gamma_strike"] == max(per_strike, key=lambda k: sum(per_strike[k].values()))

    near = [r for r in g.iter_rows(named=True) if r["instrument_name"].startswith("N-")]
    payout = {
        p: sum(
            r["open_interest"] * max((p - r["strike"]) if r["option_type"] == "call" else (r["strike"] - p), 0.0)
            for r in near
        )
        for p in (55_000.0, 60_000.0, 65_000.0)
    }
    assert payout == {55_000.0: 120_000.0, 60_000.0: 110_000.0, 65_000.0: 100_000.0}
    assert levels["max_pain"] == 65_000.0
    assert levels["max_pain_expiry"] == SNAPSHOT_TS + timedelta(hours=12)

    joined = g.join(positions, on=["currency", "snapshot_ts", "instrument_name"])
    gex = (joined["dealer_contracts"] * joined["gamma"] * joined["underlying_price"] ** 2 * 0.01).abs()
    short = gex.filter(joined["instrument_name"].str.starts_with("N-")).sum()
    assert levels["gex_expiring_24h_share"] == pytest.approx(short / gex.sum(), rel=1e-12)


def test_unpriced_options_add_open_interest_but_no_gex_per_strike():
    chain = chain_frame(
        [
            option_row(strike=60_000.0, expiry_days=7.0, open_interest=100.0, name="A"),
            option_row(strike=60_000.0, expiry_days=7.0, open_interest=50.0, mark_iv=None, name="B", option_type="put"),
        ]
    )
    row = (
        gex_by_strike(chain, dealer_positions(chain, "naive"))
        .filter(pl.col("expiration_ts").is_null())
        .row(0, named=True)
    )
    assert row["put_open_interest"] == 50.0 and row["call_open_interest"] == 100.0
    assert row["put_gex_usd"] == 0.0 and row["call_gex_usd"] > 0.0
    assert row["net_gex_usd"] == row["call_gex_usd"] + row["put_gex_usd"]


def test_several_currencies_snapshots_and_models_in_one_frame_give_the_same_as_one_at_a_time():
    a = _levels_chain()
    b = a.with_columns(
        pl.lit("ETH").alias("currency"),
        pl.col("strike") / 20,
        pl.col("underlying_price") / 20,
        pl.col("index_price") / 20,
    )
    c = a.with_columns(pl.col("snapshot_ts") + timedelta(hours=1))
    chain = pl.concat([a, b, c])
    positions = pl.concat([dealer_positions(chain, m) for m in ("naive", "customer_long")])
    together = key_levels(chain, positions)
    assert together.height == 6
    for part in (a, b, c):
        for model in ("naive", "customer_long"):
            alone = key_levels(part, dealer_positions(part, model)).drop("zero_gamma_roots")
            row = together.join(
                alone.select("currency", "snapshot_ts", "model"), on=["currency", "snapshot_ts", "model"]
            ).drop("zero_gamma_roots")
            assert row.rows() == alone.rows()
    prof = gex_profile(chain, positions)
    assert prof.height == 6 * 201
    assert prof.group_by("currency", "snapshot_ts", "model").len()["len"].unique().to_list() == [201]


def test_every_output_has_its_declared_schema_even_when_empty():
    chain = _levels_chain()
    positions = dealer_positions(chain, "naive")
    assert dict(gex_by_strike(chain, positions).schema) == GEX_BY_STRIKE
    assert dict(gex_profile(chain, positions).schema) == GEX_PROFILE
    assert dict(key_levels(chain, positions).schema) == KEY_LEVELS
    nobody = positions.clear()
    assert dict(gex_profile(chain, nobody).schema) == GEX_PROFILE
    assert dict(key_levels(chain, nobody).schema) == KEY_LEVELS
    assert gex_profile(chain, nobody).height == 0


def test_long_gamma_dealers_sell_into_a_rally_and_buy_a_dip():
    chain = chain_frame([option_row(strike=60_000.0, expiry_days=14.0, open_interest=1_000.0)])
    prof = gex_profile(chain, dealer_positions(chain, "naive"))
    up = prof.filter(pl.col("pct_from_spot") > 0)["hedge_flow_coins"]
    down = prof.filter(pl.col("pct_from_spot") < 0)["hedge_flow_coins"]
    assert (up < 0).all() and (down > 0).all()
    assert np.allclose(prof["hedge_flow_usd"], prof["hedge_flow_coins"] * prof["price_level"], rtol=1e-15)


def test_sticky_moneyness_equals_sticky_strike_at_spot_and_differs_away_from_it():
    rows = [
        option_row(strike=k, expiry_days=30.0, option_type=t, mark_iv=iv, open_interest=oi, name=f"{t}{k:g}")
        for k, iv in [(50_000.0, 80.0), (60_000.0, 60.0), (70_000.0, 55.0)]
        for t, oi in (("call", 500.0), ("put", 300.0))
    ]
    chain = chain_frame(rows)
    positions = dealer_positions(chain, "naive")
    strike_vol = gex_profile(chain, positions)
    moneyness_vol = gex_profile(chain, positions, vol_model="sticky_moneyness")
    at = pl.col("pct_from_spot") == 0.0
    a = strike_vol.filter(at).row(0, named=True)
    b = moneyness_vol.filter(at).row(0, named=True)
    assert b["dealer_gex_usd"] == pytest.approx(a["dealer_gex_usd"], rel=1e-12)
    assert b["dealer_delta"] == pytest.approx(a["dealer_delta"], rel=1e-12)
    far = pl.col("pct_from_spot") == 10.0
    assert moneyness_vol.filter(far)["dealer_gex_usd"][0] != pytest.approx(
        strike_vol.filter(far)["dealer_gex_usd"][0], rel=1e-6
    )


def test_premium_adjusted_delta_moves_only_inverse_options():
    rows = [option_row(strike=60_000.0, expiry_days=30.0, is_linear=True, name="L")]
    chain = chain_frame(rows)
    positions = dealer_positions(chain, "naive")
    fwd = gex_profile(chain, positions)
    pa = gex_profile(chain, positions, delta_convention="premium_adjusted")
    assert np.allclose(pa["dealer_delta"], fwd["dealer_delta"], rtol=1e-12)
    inverse = chain.with_columns(pl.lit(False).alias("is_linear"))
    pa_inv = gex_profile(inverse, positions, delta_convention="premium_adjusted")
    options = reference_options(inverse, positions)
    for r, d in zip(pa_inv["price_level"] / 60_000.0, pa_inv["dealer_delta"], strict=True):
        assert d == pytest.approx(ref.profile_point(options, r, premium_adjusted=True)[1], rel=1e-12)


def test_bad_options_are_rejected_with_one_line_errors():
    chain = _levels_chain()
    positions = dealer_positions(chain, "naive")
    with pytest.raises(ValueError, match="vol_model"):
        gex_profile(chain, positions, vol_model="sticky_delta")
    with pytest.raises(ValueError, match="delta_convention"):
        gex_profile(chain, positions, delta_convention="spot")
    with pytest.raises(ValueError, match="step"):
        key_levels(chain, positions, step=-1.0)


def test_the_kernel_never_sees_deribits_rounded_ticker_gamma():
    """GEX comes from recomputed gamma: identical chains differing only in columns we do not read agree."""
    chain = _levels_chain()
    noisy = chain.with_columns(pl.lit(0.123).alias("bid_price"), pl.lit(9.0).alias("ask_price"))
    positions = dealer_positions(chain, "naive")
    assert gex_profile(chain, positions).equals(gex_profile(noisy, positions))
    assert math.isfinite(key_levels(chain, positions)["total_gex_usd"][0])
