"""Threshold rebalancing (issue 15): properties of the hedge ladder on small random books."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.chains import chain_frame, option_row
from transforms.gex.exposure import _exposures
from transforms.gex.hedge_ladder import HEDGE_LADDER, LADDER_VOLUME, _delta_of, hedge_ladder, ladder, ladder_volume
from transforms.gex.positioning import dealer_positions

PROPERTY = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def books(draw):
    """A small naive or customer_long book around 60,000 and its dealer delta as a function of S'/S0."""
    rows = [
        option_row(
            strike=60_000 * draw(st.sampled_from([0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15])),
            expiry_days=draw(st.sampled_from([2.0, 7.0, 30.0, 90.0])),
            option_type=draw(st.sampled_from(["call", "put"])),
            open_interest=float(draw(st.integers(10, 5_000))),
            mark_iv=draw(st.floats(30.0, 120.0)),
            name=f"OPT-{i}",
        )
        for i in range(draw(st.integers(1, 5)))
    ]
    chain = chain_frame(rows)
    positions = dealer_positions(chain, draw(st.sampled_from(["naive", "customer_long"])))
    greeks, x = _exposures(chain, positions)
    return chain, positions, _delta_of(x, greeks)


def _band_hedger(delta, path: np.ndarray, band: float) -> list[float]:
    """Walk ``path`` (ratios in order of travel) re-hedging whenever the unhedged delta reaches the band."""
    values = delta(np.sort(path))
    values = values if path[-1] >= path[0] else values[::-1]
    ref, trades = values[0], []
    for value in values[1:]:
        if abs(value - ref) >= band * (1.0 - 1e-9):
            trades.append(-(value - ref))
            ref = value
    return trades


@PROPERTY
@given(
    book=books(),
    fraction=st.floats(0.3, 2.0),
    move=st.sampled_from([-0.08, -0.03, 0.03, 0.08]),
    seed=st.integers(0, 99),
)
def test_a_path_crossing_every_rung_trades_the_sum_of_the_rung_sizes(book, fraction, move, seed):
    _, _, delta = book
    span = abs(float(delta(np.array([1.0 + move]))[0] - delta(np.array([1.0]))[0]))
    band = max(span * fraction / 5.0, 1e-6)
    rungs = ladder(delta, band, move)
    for _, order in rungs:
        assert abs(abs(order) - band) <= 1e-9 * band  # every order is one band
    # a path that ends a hair short of the next rung is a tie the 1e-9 trigger tolerance cannot split: not drawn
    last = float(delta(np.array([rungs[-1][0] if rungs else 1.0]))[0])
    assume(abs(float(delta(np.array([1.0 + move]))[0]) - last) < band * (1.0 - 1e-6))
    rng = np.random.default_rng(seed)
    fine = 1.0 + move * np.sort(rng.uniform(0.0, 1.0, 400))
    path = np.concatenate([[1.0], fine, [r for r, _ in rungs], [1.0 + move]])
    path = np.unique(path) if move > 0 else np.unique(path)[::-1]
    trades = _band_hedger(delta, path, band)
    assert len(trades) == len(rungs)
    assert sum(trades) == pytest.approx(sum(o for _, o in rungs), rel=1e-9, abs=1e-9 * band * (len(rungs) + 1))


@settings(PROPERTY, max_examples=5)
@given(book=books(), move=st.sampled_from([-0.05, 0.05]))
def test_as_the_band_shrinks_the_ladder_converges_to_the_continuous_hedge_flow(book, move):
    _, _, delta = book
    d0, d_end = float(delta(np.array([1.0]))[0]), float(delta(np.array([1.0 + move]))[0])
    continuous = -(d_end - d0)
    grid = 1.0 + np.linspace(0.0, move, 2001)
    variation = float(np.abs(np.diff(delta(np.sort(grid)))).sum())
    if variation < 1e-6:
        return
    errors = []
    for k in range(1, 4):
        band = variation / 3.0**k
        rungs = ladder(delta, band, move)
        net = sum(o for _, o in rungs)
        assert abs(net - continuous) < band * (1.0 + 1e-9)  # what is left is inside the last band
        assert sum(abs(o) for _, o in rungs) <= variation * (1.0 + 1e-9)  # never more volume than a continuous hedge
        errors.append(abs(net - continuous))
    assert errors[-1] <= variation / 3.0**3 * (1.0 + 1e-9)


def test_the_ladder_tables_on_the_real_btc_book():
    from tests.data_paths import snapshot_chain

    chain = snapshot_chain("BTC", "20260731T113322Z")
    positions = dealer_positions(chain, "naive")
    rungs = hedge_ladder(chain, positions, band_gamma=1.0, move_pct=3.0)
    assert rungs.schema == pl.Schema(HEDGE_LADDER)
    up = rungs.filter(pl.col("direction") == "up")
    # naive dealers are long gamma above spot: they sell each rung into the rally, one band at a time
    assert up.height >= 2 and (up["order_coins"] < 0).all()
    assert (up["price_level"].diff().drop_nulls() > 0).all()
    assert (up["cumulative_coins"] - up["continuous_flow_coins"]).abs().max() <= 1e-9 * up["band_coins"][0]
    volume = ladder_volume(chain, positions, bands_gamma=(0.25, 1.0), move_pct=3.0)
    assert volume.schema == pl.Schema(LADDER_VOLUME)
    wide, narrow = (
        volume.filter(pl.col("direction") == "up", pl.col("band_gamma") == b).row(0, named=True) for b in (1.0, 0.25)
    )
    assert narrow["rungs"] > wide["rungs"]
    assert abs(narrow["net_coins"] - narrow["continuous_net_coins"]) < narrow["band_coins"]


def test_a_band_must_be_given_once_and_be_positive():
    chain = chain_frame([option_row(strike=60_000, expiry_days=7.0)])
    positions = dealer_positions(chain, "naive")
    with pytest.raises(ValueError, match="either in coins or as a fraction"):
        hedge_ladder(chain, positions)
    with pytest.raises(ValueError, match="band must be a positive"):
        ladder(lambda r: np.asarray(r), 0.0, 0.05)
