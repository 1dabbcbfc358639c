"""with_greeks against Deribit's published greeks, the scalar reference and finite differences."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import polars as pl
import pytest

from tests import reference as ref
from tests.chains import chain_frame, option_row
from tests.data_paths import ticker_records
from transforms.frames.normalise import parse_option_name
from transforms.frames.schemas import OPTION_GREEKS, OPTION_SNAPSHOT
from transforms.pricing.greeks import with_greeks

# Deribit rounds its ticker delta to 5 decimals and gamma to 5 decimals (gamma error up to 5e-6 from
# rounding alone); these bounds are the contract in the brief, the observed maxima are printed.
DELTA_TOL = 2e-4
GAMMA_TOL = 6e-6


def _ticker_chain() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The 415 recorded tickers as an OPTION_SNAPSHOT frame (snapshot_ts = the ticker's timestamp) and
    Deribit's own delta/gamma alongside."""
    rows, theirs = [], []
    for t in ticker_records():
        p = parse_option_name(t["instrument_name"])
        rows.append(
            {
                "currency": p["base"],
                "snapshot_ts": datetime.fromtimestamp(t["timestamp"] / 1000, tz=UTC),
                "instrument_name": t["instrument_name"],
                "option_type": p["option_type"],
                "strike": p["strike"],
                "expiration_ts": p["expiration_ts"],
                "contract_size": 1.0,
                "is_linear": False,
                "open_interest": float(t["open_interest"]),
                "mark_iv": float(t["mark_iv"]),
                "mark_price": float(t["mark_price"]),
                "bid_price": None,
                "ask_price": None,
                "underlying_price": float(t["underlying_price"]),
                "underlying_index": t["underlying_index"],
                "index_price": float(t["index_price"]),
                "source": "test",
            }
        )
        theirs.append({"deribit_delta": t["greeks"]["delta"], "deribit_gamma": t["greeks"]["gamma"]})
    return pl.DataFrame(rows, schema=OPTION_SNAPSHOT, orient="row"), pl.DataFrame(theirs)


def test_delta_and_gamma_reproduce_deribits_published_greeks_for_all_415_recorded_options():
    chain, theirs = _ticker_chain()
    assert chain.height == 415
    ours = with_greeks(chain)
    delta_err = (ours["delta"] - theirs["deribit_delta"]).abs().max()
    gamma_err = (ours["gamma"] - theirs["deribit_gamma"]).abs().max()
    print(f"\nvs Deribit greeks (415 options): max |delta err| = {delta_err:.3e}, max |gamma err| = {gamma_err:.3e}")
    assert ours["is_priced"].all()
    assert delta_err < DELTA_TOL
    assert gamma_err < GAMMA_TOL


def test_every_greek_matches_the_scalar_black76_reference_to_1e_12():
    chain, _ = _ticker_chain()
    ours = with_greeks(chain)
    for r in ours.iter_rows(named=True):
        g = ref.black76(
            r["underlying_price"], r["strike"], r["mark_iv"] / 100.0, r["tau_years"], r["option_type"] == "call"
        )
        assert r["delta"] == pytest.approx(g.delta, rel=1e-12, abs=1e-15)
        assert r["gamma"] == pytest.approx(g.gamma, rel=1e-12)
        assert r["vanna"] == pytest.approx(g.vanna, rel=1e-11, abs=1e-15)
        assert r["charm_per_year"] == pytest.approx(g.charm_per_year, rel=1e-11, abs=1e-15)
        assert r["charm_per_day"] == pytest.approx(g.charm_per_year / 365.0, rel=1e-11, abs=1e-15)


def test_tau_is_act_365_in_years_from_millisecond_timestamps():
    chain = chain_frame([option_row(strike=60_000.0, expiry_days=1.5)])
    out = with_greeks(chain)
    assert out["tau_years"][0] == pytest.approx(1.5 / 365.0, rel=1e-15)


def test_vanna_and_charm_agree_with_finite_differences_of_delta():
    f, k, sigma, tau = 60_000.0, 66_000.0, 0.55, 20 / 365
    for is_call in (True, False):
        g = ref.black76(f, k, sigma, tau, is_call)
        h = 1e-6
        dvol = (ref.black76(f, k, sigma + h, tau, is_call).delta - ref.black76(f, k, sigma - h, tau, is_call).delta) / (
            2 * h
        )
        # charm is the change of delta as calendar time passes: tau shrinks
        dtime = (
            ref.black76(f, k, sigma, tau - h, is_call).delta - ref.black76(f, k, sigma, tau + h, is_call).delta
        ) / (2 * h)
        assert g.vanna == pytest.approx(dvol, rel=1e-6)
        assert g.charm_per_year == pytest.approx(dtime, rel=1e-6)
        dgamma = (
            ref.black76(f + 1, k, sigma, tau, is_call).delta - ref.black76(f - 1, k, sigma, tau, is_call).delta
        ) / 2
        assert g.gamma == pytest.approx(dgamma, rel=1e-6)


def test_charm_of_an_out_of_the_money_call_is_negative_and_of_an_in_the_money_call_positive():
    chain = chain_frame(
        [
            option_row(strike=70_000.0, expiry_days=10.0, name="otm"),
            option_row(strike=50_000.0, expiry_days=10.0, name="itm"),
        ]
    )
    out = with_greeks(chain).sort("instrument_name")
    assert out["charm_per_day"].to_list()[0] > 0  # itm
    assert out["charm_per_day"].to_list()[1] < 0  # otm


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"expiry_days": 0.0}, "expired"),
        ({"expiry_days": -1.0}, "expired"),
        ({"expiry_days": 5.0, "mark_iv": None}, "no_iv"),
        ({"expiry_days": 5.0, "mark_iv": 0.0}, "no_iv"),
        ({"expiry_days": 5.0, "forward": None}, "no_forward"),
    ],
)
def test_options_that_cannot_be_priced_get_zero_greeks_and_say_why(kwargs, reason):
    out = with_greeks(chain_frame([option_row(strike=60_000.0, **kwargs)]))
    row = out.row(0, named=True)
    assert row["is_priced"] is False
    assert row["unpriced_reason"] == reason
    for col in ("delta", "gamma", "vanna", "charm_per_year", "charm_per_day", "delta_premium_adjusted"):
        assert row[col] == 0.0


def test_premium_adjusted_delta_is_delta_minus_the_coin_mark_price_for_inverse_options_only():
    chain = chain_frame(
        [
            option_row(strike=60_000.0, expiry_days=30.0, mark_price=0.05, name="inverse"),
            option_row(strike=60_000.0, expiry_days=30.0, mark_price=3000.0, is_linear=True, name="linear"),
            option_row(strike=60_000.0, expiry_days=30.0, mark_price=None, name="no_mark"),
        ]
    )
    out = {r["instrument_name"]: r for r in with_greeks(chain).iter_rows(named=True)}
    assert out["inverse"]["delta_premium_adjusted"] == pytest.approx(out["inverse"]["delta"] - 0.05, rel=1e-15)
    assert out["linear"]["delta_premium_adjusted"] == out["linear"]["delta"]
    g = ref.black76(60_000.0, 60_000.0, 0.6, out["no_mark"]["tau_years"], True)
    assert out["no_mark"]["delta_premium_adjusted"] == pytest.approx(g.delta - g.price_usd / 60_000.0, rel=1e-12)


def test_with_greeks_keeps_a_lazy_frame_lazy_and_declares_its_schema():
    chain = chain_frame([option_row(strike=60_000.0, expiry_days=3.0)])
    lazy = with_greeks(chain.lazy())
    assert isinstance(lazy, pl.LazyFrame)
    assert dict(lazy.collect_schema()) == OPTION_GREEKS


def test_deep_out_of_the_money_put_delta_keeps_its_relative_precision():
    out = with_greeks(chain_frame([option_row(strike=20_000.0, expiry_days=7.0, option_type="put")]))
    g = ref.black76(60_000.0, 20_000.0, 0.6, 7 / 365, False)
    assert 0 > out["delta"][0] > -1e-30
    assert out["delta"][0] == pytest.approx(g.delta, rel=1e-12)
    assert math.isfinite(out["gamma"][0])
