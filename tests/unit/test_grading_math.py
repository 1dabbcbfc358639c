"""Pure math of forecast grading (transforms/grading/scores.py, grade_stats.py, grade_words.py) against independent
computations: scipy (a dev dependency, fine in tests), numerical integration, and explicit formulas."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from transforms.grading import stats as st
from transforms.grading.schemas import FORECAST_HISTORY, INDEX_PRICE
from transforms.grading.scores import crps_normal, grade_forecasts, log_score_normal, norm_cdf
from transforms.grading.summary import GEX_HIGH_LOW, out_of_sample
from transforms.grading.words import paragraph

stats = pytest.importorskip("scipy.stats", reason="scipy is a dev dependency")
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def test_normal_cdf_crps_and_log_score_match_scipy_and_numerical_integration():
    z = np.array([-3.1, -1.0, -0.2, 0.0, 0.7, 2.5])
    sd = np.array([0.01, 0.02, 0.03, 0.015, 0.05, 0.008])
    assert np.allclose(norm_cdf(z), stats.norm.cdf(z), rtol=0, atol=1e-15)
    assert np.allclose(log_score_normal(z, sd), -stats.norm.logpdf(z * sd, scale=sd), rtol=1e-12)
    from scipy.integrate import quad

    for zi, si in zip(z, sd, strict=True):  # CRPS = integral (F(y) - 1{y >= x})^2 dy, with mean 0 and x = z sd
        below = quad(lambda y, s=si: stats.norm.cdf(y, scale=s) ** 2, -np.inf, zi * si, epsabs=1e-14)[0]
        above = quad(lambda y, s=si: stats.norm.sf(y, scale=s) ** 2, zi * si, np.inf, epsabs=1e-14)[0]
        assert crps_normal(np.array([zi]), np.array([si]))[0] == pytest.approx(below + above, rel=1e-8)


def _history(rows) -> pl.DataFrame:
    base = {c: None for c in FORECAST_HISTORY}
    out = []
    for t0, hours, sigma in rows:
        out.append(base | {
            "currency": "BTC", "forecast_date": t0.date(), "model": "naive", "horizon": f"{hours:g}h",
            "horizon_hours": float(hours), "t0": t0, "snapshot_ts": t0, "horizon_end_ts": t0 + timedelta(hours=hours),
            "spot": 100.0, "sigma_atm": sigma, "expected_flow_coins": -5.0, "total_gex_usd": 1e6,
        })  # fmt: skip
    return pl.DataFrame(out, schema=FORECAST_HISTORY, orient="row")


def _prices(points) -> pl.DataFrame:
    rows = [("BTC", ts, px, "snapshot") for ts, px in points]
    return pl.DataFrame(rows, schema=INDEX_PRICE, orient="row")


def test_realised_price_is_the_latest_recording_at_or_before_the_target_within_one_hour_and_after_t0():
    h = timedelta(hours=24)
    t1, t2, t3, t4 = (T0 + timedelta(days=d) for d in (1, 2, 3, 5))
    history = _history([(T0, 24, 50.0), (t1, 24, 50.0), (t2, 24, 50.0), (t3, 24, 50.0), (t4, 1, 50.0)])
    prices = _prices([
        (T0, 100.0), (t1 + h - timedelta(hours=1), 101.0),  # exactly 1 h early: used for t1
        (t1 + h + timedelta(milliseconds=1), 999.0),  # after the target: never used
        (t2 + h - timedelta(hours=1, milliseconds=1), 102.0),  # 1 h + 1 ms early: t2 is not graded
        (t3 + h, 103.0), (t3 + h - timedelta(minutes=5), 55.0),  # exactly at the target wins over earlier
        (t4, 104.0),  # the snapshot's own time does not grade its 1 h forecast
        (T0 + h - timedelta(minutes=30), 110.0),
    ])  # fmt: skip
    g = grade_forecasts(history, prices).sort("snapshot_ts")
    assert g["status"].to_list() == ["graded", "graded", "no_price", "graded", "no_price"]
    assert g["realised_price"].to_list() == [110.0, 101.0, None, 103.0, None]
    row = g.row(0, named=True)
    assert row["elapsed_hours"] == pytest.approx(23.5)
    sd = 0.5 * math.sqrt(24 / 8760 * 23.5 / 24)
    assert row["implied_sd"] == pytest.approx(sd)
    assert row["z"] == pytest.approx((math.log(1.1) + sd * sd / 2) / sd)
    assert row["pit"] == pytest.approx(stats.norm.cdf(row["z"]))
    assert row["flow_direction_hit"] is False  # dealers expected to sell, price rose
    assert row["call_wall_touched"] is None  # no intraday path between 6-hourly recordings


def test_newey_west_matches_the_explicit_double_sum():
    rng = np.random.default_rng(3)
    n, lag = 120, 3
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    e = np.convolve(rng.normal(size=n + 3), np.ones(4), "valid")  # MA(3) errors
    y = x @ np.array([0.5, 2.0, -1.0]) + e
    beta, se = st.ols_hac(y, x, lag)
    assert np.allclose(beta, np.linalg.lstsq(x, y, rcond=None)[0])
    u = y - x @ beta
    w = np.maximum(0.0, 1.0 - np.abs(np.subtract.outer(np.arange(n), np.arange(n))) / (lag + 1.0))
    meat = sum(w[t, s] * u[t] * u[s] * np.outer(x[t], x[s]) for t in range(n) for s in range(n))
    bread = np.linalg.inv(x.T @ x)
    assert np.allclose(se, np.sqrt(np.diag(bread @ meat @ bread)), rtol=1e-10)


def test_block_bootstrap_resamples_runs_of_consecutive_days_and_is_reproducible():
    counts = st.block_counts(30, 3, replicates=50)
    assert counts.shape == (50, 30) and np.all(counts.sum(axis=1) == 30)
    assert np.array_equal(counts, st.block_counts(30, 3, replicates=50))
    x = np.random.default_rng(1).normal(size=400)
    sums = st.day_sums(np.arange(400), [x, np.ones(400)])
    est, lo, hi = st.bootstrap(sums, st.mean, 2)
    assert est == pytest.approx(x.mean()) and lo < est < hi
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / math.sqrt(400), rel=0.2)


def test_scale_fit_is_the_maximum_likelihood_sd_and_only_uses_rows_whose_horizon_ended():
    z = np.array([1.0, -2.0, 0.5, 3.0, -1.0])
    pos = np.array([True, True, False, False, False])
    k = st.fit_scales(z, pos, min_fit=2)
    assert k["k_all"] == pytest.approx(math.sqrt(np.mean(z**2)))
    assert k["k_high"] == pytest.approx(math.sqrt(2.5)) and k["k_low"] == pytest.approx(math.sqrt(10.25 / 3))
    assert st.fit_scales(z, pos, min_fit=3)["k_high"] == k["k_all"]  # too few high-GEX rows: the common scale


def _table(**cols) -> pl.DataFrame:
    return pl.DataFrame([cols])


def test_plain_words_say_no_measurable_effect_exactly_when_the_interval_contains_zero():
    key = {"currency": "BTC", "model": "naive", "horizon": "24h"}
    ratios = _table(**key, regime_kind="all", regime="all", n=40, days=20, ratio=0.8, ci_low=0.7, ci_high=0.9)
    reg = _table(**key, term="gex_kcoins", coef=0.001, ci_low=-0.002, ci_high=0.004)
    cases = ((-0.1, 0.2, "no measurable effect of the size of GEX"), (-0.3, -0.1, "as the pinning story claims"),
             (0.1, 0.3, "against the pinning story"))  # fmt: skip
    for lo, hi, expected in cases:
        diff = _table(**key, comparison=GEX_HIGH_LOW, n_a=20, n_b=20, difference=(lo + hi) / 2, ci_low=lo, ci_high=hi)
        text = paragraph({"ratio_by_regime": ratios, "regime_difference": diff, "regression": reg})
        assert expected in text and "smaller than the moves ATM implied volatility priced" in text
        assert "+0.100 percentage points" in text and "Newey-West): no measurable effect" in text
        assert ("pinning" in text) == (expected != cases[0][2])
        hits = 0 if expected == cases[0][2] else 1  # the regression interval contains zero in every case
        assert f"Of the 2 effects of dealer gamma stated above, {hits} have a 95 % interval that excludes zero" in text


def test_out_of_sample_fit_ignores_forecasts_whose_horizon_ends_after_fit_until():
    rows = []
    for i in range(12):
        t0 = T0 + timedelta(hours=12 * i)
        rows.append({"currency": "BTC", "model": "naive", "horizon": "24h", "horizon_hours": 24.0, "status": "graded",
                     "snapshot_ts": t0, "horizon_end_ts": t0 + timedelta(hours=24), "z": float(i % 3 - 1) * 2,
                     "implied_sd": 0.02, "gex_positive": True, "spot": 100.0, "total_gex_usd": 1e4 * i})  # fmt: skip
    grades = pl.DataFrame(rows)
    fit_until = T0 + timedelta(hours=12 * 5 + 24)  # horizons of t0 index 0..5 ended
    out = out_of_sample(grades, fit_until, min_fit=3).row(0, named=True)
    z = np.array([float(i % 3 - 1) * 2 for i in range(6)])
    assert out["n_fit"] == 6 and out["k_all"] == pytest.approx(math.sqrt(np.mean(z**2)))
    assert out["n_test"] == len([i for i in range(12) if T0 + timedelta(hours=12 * i) > fit_until])


def test_plain_words_say_when_gex_kept_one_sign_and_cannot_be_tested():
    key = {"currency": "ETH", "model": "customer_long", "horizon": "24h"}
    ratios = pl.concat([
        _table(**key, regime_kind="all", regime="all", n=12, days=5, ratio=1.1, ci_low=0.9, ci_high=1.3),
        _table(**key, regime_kind="gex_sign", regime="negative", n=12, days=5, ratio=1.1, ci_low=0.9, ci_high=1.3),
    ])  # fmt: skip
    text = paragraph({"ratio_by_regime": ratios, "regime_difference": pl.DataFrame(), "regression": pl.DataFrame()})
    assert "about as large as" in text
    assert "total dealer GEX was negative at every graded forecast" in text
