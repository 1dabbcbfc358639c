"""Exposure by expiry and tenor, vanna and charm (issue 15): the scalar reference on the real snapshots, the sums,
finite differences of the re-priced dealer delta, and the hand-checked edges of the tenor buckets."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests import reference as ref
from tests.chains import chain_frame, option_row
from tests.data_paths import all_snapshot_chains
from transforms.frames.schemas import EXPOSURE_BY_EXPIRY, GEX_BY_STRIKE, KEY_LEVELS_BY_TENOR
from transforms.gex.analytic_tables import exposure_tables
from transforms.gex.depth import TENORS, exposure_by_expiry, key_levels_by_tenor
from transforms.gex.exposure import gex_by_strike, key_levels
from transforms.gex.positioning import dealer_positions
from transforms.pricing.kernels import profile_at_levels

MS_PER_YEAR = 365 * 86_400_000
MEASURES = (
    "gex_usd",
    "dealer_delta_coins",
    "dealer_delta_usd",
    "vanna_coins_per_vol",
    "vanna_usd_per_vol",
    "charm_coins_per_day",
    "charm_usd_per_day",
)
KEYS = ["currency", "snapshot_ts", "model"]


@pytest.fixture(scope="module")
def real():
    chain = all_snapshot_chains()
    positions = pl.concat([dealer_positions(chain, m) for m in ("naive", "customer_long")])
    return chain, positions, exposure_tables(chain, positions)


def _held(chain: pl.DataFrame, positions: pl.DataFrame) -> dict[tuple, list[ref.Held]]:
    """Reference options per (currency, snapshot_ts, model), straight from the rows."""
    rows = positions.join(chain, on=["currency", "snapshot_ts", "instrument_name"], how="inner")
    out: dict[tuple, list[ref.Held]] = {}
    for r in rows.sort("instrument_name").iter_rows(named=True):
        tau_ms = (r["expiration_ts"] - r["snapshot_ts"]) // timedelta(milliseconds=1)
        ok = r["mark_iv"] is not None and r["underlying_price"] is not None
        option = ref.Option(
            forward=r["underlying_price"] if ok else 1.0,
            strike=r["strike"],
            sigma=r["mark_iv"] / 100.0 if ok else 0.0,
            tau=tau_ms / MS_PER_YEAR,
            weight=r["dealer_contracts"] * r["contract_size"],
            is_call=r["option_type"] == "call",
        )
        held = ref.Held(
            option,
            r["strike"],
            int(r["expiration_ts"].timestamp() * 1000),
            r["option_type"] == "call",
            r["open_interest"] or 0.0,
            r["contract_size"],
        )
        out.setdefault((r["currency"], r["snapshot_ts"], r["model"]), []).append(held)
    return out


def _close(value: float, expected: tuple[float, float], rtol: float) -> bool:
    """``value`` within rtol of the reference sum, judged against the sum of |terms| when the sum cancels."""
    total, size = expected
    return abs(value - total) <= rtol * max(abs(total), 1e-3 * size) + 1e-300


def test_exposure_by_expiry_and_the_new_strike_columns_match_the_scalar_reference(real):
    chain, positions, tables = real
    held = _held(chain, positions)
    by_expiry = tables["exposure_by_expiry"]
    assert by_expiry.height == sum(len({h.expiry_ms for h in hs}) for hs in held.values())
    per_expiry = {key: ref.summed(hs, lambda h: h.expiry_ms) for key, hs in held.items()}
    per_strike = {key: ref.summed(hs, lambda h: (None, h.strike)) for key, hs in held.items()}
    for key, hs in held.items():
        per_strike[key].update(ref.summed(hs, lambda h: (h.expiry_ms, h.strike)))
    for row in by_expiry.iter_rows(named=True):
        key = (row["currency"], row["snapshot_ts"], row["model"])
        expected = per_expiry[key][int(row["expiration_ts"].timestamp() * 1000)]
        for name in MEASURES:
            assert _close(row[name], expected[name], 1e-12), (key, row["expiration_ts"], name)
    strikes = tables["gex_by_strike"]
    for row in strikes.iter_rows(named=True):
        key = (row["currency"], row["snapshot_ts"], row["model"])
        exp_ms = None if row["expiration_ts"] is None else int(row["expiration_ts"].timestamp() * 1000)
        expected = per_strike[key][(exp_ms, row["strike"])]
        for name in ("vanna_coins_per_vol", "vanna_usd_per_vol", "charm_coins_per_day", "charm_usd_per_day"):
            assert _close(row[name], expected[name], 1e-12), (key, row["strike"], name)


def test_key_levels_by_tenor_match_the_scalar_reference(real):
    chain, positions, tables = real
    held = _held(chain, positions)
    ratios = [1.0 + k * 0.0025 for k in range(-100, 101)]
    tenors = tables["key_levels_by_tenor"]
    assert tenors.height == 4 * len(held)
    for row in tenors.filter(pl.col("tenor") != "all").iter_rows(named=True):
        key = (row["currency"], row["snapshot_ts"], row["model"])
        inside = [h for h in held[key] if 0.0 < h.option.tau <= row["max_days"] / 365.0]
        sums = ref.summed(inside, lambda h: 0).get(0, {})
        for name in ("gex_usd", "dealer_delta_coins", "vanna_coins_per_vol", "charm_coins_per_day"):
            column = "total_gex_usd" if name == "gex_usd" else name
            assert _close(row[column], sums.get(name, (0.0, 0.0)), 1e-12), (key, row["tenor"], name)
        roots = [r * row["spot"] for r in ref.zero_gamma_roots([h.option for h in inside], ratios)]
        assert row["zero_gamma_roots"] == pytest.approx(roots, rel=1e-12, abs=0.0), (key, row["tenor"])
        assert (row["call_wall"], row["put_wall"], row["abs_gamma_strike"]) == ref.walls(inside)
        assert row["expiries"] == len({h.expiry_ms for h in inside})


def test_per_expiry_sums_equal_the_totals_and_tenor_all_equals_key_levels(real):
    chain, positions, tables = real
    by_expiry = tables["exposure_by_expiry"].group_by(KEYS).agg(pl.col(c).sum() for c in MEASURES)
    strikes = tables["gex_by_strike"].filter(pl.col("expiration_ts").is_null())
    per_strike = strikes.group_by(KEYS).agg(pl.col("vanna_coins_per_vol", "charm_coins_per_day").sum())
    levels = tables["key_levels"]
    tenors = tables["key_levels_by_tenor"]
    everything = tenors.filter(pl.col("tenor") == "all")
    joined = (
        levels.join(by_expiry, on=KEYS).join(everything, on=KEYS, suffix="_all").join(per_strike, on=KEYS, suffix="_k")
    )
    assert joined.height == levels.height == 8
    for r in joined.iter_rows(named=True):
        assert r["gex_usd"] == pytest.approx(r["total_gex_usd"], rel=1e-12)
        assert r["dealer_delta_coins"] == pytest.approx(r["dealer_delta_coins_all"], rel=1e-12)
        assert r["vanna_coins_per_vol"] == pytest.approx(r["vanna_coins_per_vol_all"], rel=1e-12)
        assert r["vanna_coins_per_vol_k"] == pytest.approx(r["vanna_coins_per_vol_all"], rel=1e-12)
        assert r["charm_coins_per_day"] == pytest.approx(r["charm_coins_per_day_all"], rel=1e-12)
        assert r["charm_coins_per_day_k"] == pytest.approx(r["charm_coins_per_day_all"], rel=1e-12)
        # 'all' is key_levels itself: the same numbers, not just close ones
        for col in (
            "spot",
            "total_gex_usd",
            "zero_gamma",
            "zero_gamma_roots",
            "call_wall",
            "put_wall",
            "abs_gamma_strike",
        ):
            assert r[col] == r[f"{col}_all"], col
    # the tenor buckets grow: every expiry in '1d' is in '7d', ... and 'all' counts them all
    counts = tenors.pivot("tenor", index=KEYS, values="expiries")
    assert (counts["1d"] <= counts["7d"]).all() and (counts["7d"] <= counts["30d"]).all()
    assert (counts["30d"] <= counts["all"]).all()


def _dealer_delta(rows: pl.DataFrame, sigma_bump: float = 0.0, tau_bump: float = 0.0) -> float:
    """Dealer delta of ``rows`` (greeks-joined positions) re-priced by the kernel at spot with sigma and tau bumped."""
    is_put = (rows["option_type"] == "put").to_numpy()
    weight = rows["weight_coins"].to_numpy()
    _, delta = profile_at_levels(
        rows["underlying_price"].to_numpy(),
        rows["strike"].to_numpy(),
        rows["mark_iv"].to_numpy() / 100.0 + sigma_bump,
        rows["tau_years"].to_numpy() + tau_bump,
        weight,
        np.where(is_put, weight, 0.0),
        np.array([1.0]),
    )
    return float(delta[0])


def test_vanna_and_charm_match_finite_differences_of_the_repriced_dealer_delta(real):
    from transforms.gex.exposure import _exposures

    chain, positions, tables = real
    _, x = _exposures(chain, positions)
    x = x.filter(pl.col("is_priced"))
    by_expiry = tables["exposure_by_expiry"]
    h_sigma = 1e-4  # 0.01 vol point
    h_tau = 60.0 / (365.0 * 86_400.0)  # one minute, in years
    aggregates = {tuple(r[c] for c in [*KEYS, "expiration_ts"]): r for r in by_expiry.iter_rows(named=True)}
    checked = 0
    for key, rows in x.partition_by([*KEYS, "expiration_ts"], as_dict=True).items():
        expected = aggregates[key]
        vanna = (_dealer_delta(rows, h_sigma) - _dealer_delta(rows, -h_sigma)) / (2.0 * h_sigma) / 100.0
        # time passing shortens tau: charm per day = (D(tau - h) - D(tau + h)) / (2 h in days)
        charm = (_dealer_delta(rows, tau_bump=-h_tau) - _dealer_delta(rows, tau_bump=h_tau)) / (2.0 * h_tau * 365.0)
        assert vanna == pytest.approx(expected["vanna_coins_per_vol"], rel=1e-6), key
        assert charm == pytest.approx(expected["charm_coins_per_day"], rel=1e-6), key
        checked += 1
    assert checked == by_expiry.height


def test_tenor_buckets_cut_at_whole_days_and_have_their_own_walls():
    """Naive dealers: the 1-day bucket holds only the short-dated 61k call (long gamma everywhere, so no zero
    gamma, call wall 61k); the 7-day bucket adds a big short 55k put, which turns GEX negative below spot."""
    rows = [
        option_row(strike=61_000, expiry_days=1.0, option_type="call", open_interest=500.0, name="C61-1d"),
        option_row(strike=55_000, expiry_days=1.0 + 1e-6, option_type="put", open_interest=4_000.0, name="P55-1d+"),
        option_row(strike=70_000, expiry_days=7.0, option_type="call", open_interest=50.0, name="C70-7d"),
        option_row(strike=60_000, expiry_days=90.0, option_type="call", open_interest=30_000.0, name="C60-90d"),
    ]
    chain = chain_frame(rows)
    positions = dealer_positions(chain, "naive")
    tenors = key_levels_by_tenor(chain, positions)
    assert tenors.schema == pl.Schema(KEY_LEVELS_BY_TENOR)
    by = {r["tenor"]: r for r in tenors.iter_rows(named=True)}
    assert [t for t, _ in TENORS] + ["all"] == list(by)
    assert by["1d"]["expiries"] == 1 and by["1d"]["zero_gamma"] is None
    assert (by["1d"]["call_wall"], by["1d"]["put_wall"]) == (61_000.0, None)
    assert by["7d"]["expiries"] == 3 and by["7d"]["put_wall"] == 55_000.0
    assert by["7d"]["zero_gamma"] is not None and 55_000 < by["7d"]["zero_gamma"] < 61_000
    levels = key_levels(chain, positions).row(0, named=True)
    assert by["all"]["call_wall"] == levels["call_wall"] == 60_000.0
    assert by["30d"]["total_gex_usd"] == pytest.approx(by["7d"]["total_gex_usd"], rel=1e-15)
    assert by["all"]["total_gex_usd"] == levels["total_gex_usd"]


def test_depth_frames_have_their_declared_schemas_even_when_empty():
    chain = chain_frame([option_row(strike=60_000, expiry_days=3.0)])
    none = dealer_positions(chain, "naive").clear()
    assert exposure_by_expiry(chain, none).schema == pl.Schema(EXPOSURE_BY_EXPIRY)
    assert key_levels_by_tenor(chain, none).schema == pl.Schema(KEY_LEVELS_BY_TENOR)
    assert gex_by_strike(chain, none).schema == pl.Schema(GEX_BY_STRIKE)


def test_vanna_and_charm_signs_follow_the_dealer_position():
    """Dealers long an out-of-the-money call: more vol raises its delta (vanna > 0: they must sell), time passing
    lowers it (charm < 0: they buy back part of the hedge)."""
    chain = chain_frame([option_row(strike=70_000, expiry_days=10.0, open_interest=100.0)])
    naive = exposure_by_expiry(chain, dealer_positions(chain, "naive")).row(0, named=True)
    short = exposure_by_expiry(chain, dealer_positions(chain, "customer_long")).row(0, named=True)
    assert naive["vanna_coins_per_vol"] > 0 and naive["charm_coins_per_day"] < 0
    assert short["vanna_coins_per_vol"] == -naive["vanna_coins_per_vol"]
    assert naive["hours_to_expiry"] == pytest.approx(240.0, abs=1e-6)


def test_the_what_if_tables_are_empty_unless_asked_for_and_then_the_public_functions_tables(real):
    """compute stores the what-if tables only with GEXFLOW_WHAT_IFS (issue 15's budget): without ``what_ifs`` they are
    empty, typed frames (so a re-computation removes stale files); with it, exactly what scenario_profiles and
    ladder_tables give for the same inputs."""
    from transforms.frames.schemas import SCENARIO_PROFILE
    from transforms.gex.depth import WHAT_IF_TABLES
    from transforms.gex.exposure import _exposures
    from transforms.gex.hedge_ladder import HEDGE_LADDER, LADDER_VOLUME, STORED_BANDS, ladder_tables
    from transforms.gex.scenarios import STORED_SCENARIOS, scenario_profiles

    chain, positions, tables = real
    for name, schema in zip(WHAT_IF_TABLES, (SCENARIO_PROFILE, HEDGE_LADDER, LADDER_VOLUME), strict=True):
        assert tables[name].is_empty() and dict(tables[name].schema) == schema
    first = chain.filter(pl.col("snapshot_ts") == chain["snapshot_ts"].min())
    held = positions.join(first.select("currency", "snapshot_ts").unique(), on=["currency", "snapshot_ts"])
    stored = exposure_tables(first, held, what_ifs=True)
    assert stored["scenario_profiles"].height > 0 and stored["hedge_ladder"].height > 0
    assert stored["scenario_profiles"].equals(scenario_profiles(first, held, scenarios=STORED_SCENARIOS))
    greeks, x = _exposures(first, held)
    ladders = ladder_tables(greeks, x, bands_gamma=STORED_BANDS)
    assert stored["hedge_ladder"].equals(ladders["hedge_ladder"])
    assert stored["hedge_ladder_volume"].equals(ladders["hedge_ladder_volume"])
