"""The numba kernels against the scalar reference (tests/reference.py), to 1e-12 relative."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba.core import types

from tests import reference as ref
from transforms.pricing import kernels

RTOL = 1e-12


def _random_chain(seed: int, n: int, *, distinct: bool = True) -> list[ref.Option]:
    rng = np.random.default_rng(seed)
    spot = 60_000.0
    out = []
    for i in range(n):
        days = float(rng.choice([0.05, 0.5, 1.0, 3.0, 7.0, 30.0, 90.0, 180.0, 365.0])) * float(rng.uniform(0.5, 1.0))
        tau = days / 365.0
        out.append(
            ref.Option(
                forward=spot * math.exp(0.03 * tau),
                strike=round(spot * math.exp(rng.normal(0.0, 0.3)) / 500.0) * 500.0,
                sigma=float(rng.uniform(0.25, 1.2)),
                tau=tau,
                weight=float(rng.uniform(0.0, 2_000.0)) * (1 if distinct or i % 2 else 1),
                is_call=bool(rng.random() < 0.5),
                expiry=int(days * 10),
            )
        )
    return out


def _arrays(chain: list[ref.Option]):
    forward = np.array([o.forward for o in chain])
    strike = np.array([o.strike for o in chain])
    sigma = np.array([o.sigma for o in chain])
    tau = np.array([o.tau for o in chain])
    weight = np.array([o.weight for o in chain])
    put_weight = np.array([0.0 if o.is_call else o.weight for o in chain])
    return forward, strike, sigma, tau, weight, put_weight


def _assert_close(actual, expected, rtol=RTOL, scale=None):
    """Relative agreement, with an absolute floor of rtol * scale for values that are ~0 next to scale."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    floor = 0.0 if scale is None else rtol * scale
    err = np.abs(actual - expected)
    assert np.all(err <= rtol * np.abs(expected) + floor), (
        f"max rel err {np.max(err / np.maximum(np.abs(expected), 1e-300)):.3e}"
    )


def test_the_fast_kernel_matches_the_scalar_reference_to_1e_12_on_a_random_long_book():
    chain = _random_chain(1, 300)
    ratio = 1.0 + np.arange(-100, 101) * 0.0025
    gex, delta = kernels.profile_at_levels(*_arrays(chain), ratio)
    ref_gex, ref_delta = ref.profile(chain, ratio)
    _assert_close(gex, ref_gex)
    _assert_close(delta, ref_delta)


@pytest.mark.parametrize("days", [0.01, 0.3, 1.0, 7.0, 60.0, 400.0])
@pytest.mark.parametrize("moneyness", [0.5, 0.8, 0.97, 1.0, 1.03, 1.25, 2.0])
@pytest.mark.parametrize("is_call", [True, False])
def test_a_single_option_profile_matches_the_reference_in_every_region_of_d1(days, moneyness, is_call):
    """One option at a time sweeps d1 through the tails, Cody's rational and the centre series."""
    chain = [
        ref.Option(
            forward=60_000.0, strike=60_000.0 * moneyness, sigma=0.6, tau=days / 365.0, weight=3.0, is_call=is_call
        )
    ]
    ratio = 1.0 + np.arange(-100, 101) * 0.0025
    gex, delta = kernels.profile_at_levels(*_arrays(chain), ratio)
    ref_gex, ref_delta = ref.profile(chain, ratio)
    # values below 1e-10 of the option's scale are ~0: compared absolutely at that floor
    _assert_close(gex, ref_gex, scale=max(map(abs, ref_gex)) * 1e2 + 1e-300)
    _assert_close(delta, ref_delta, scale=3.0 * 1e2)


def test_the_general_kernel_with_a_flat_sigma_grid_equals_the_fast_kernel():
    chain = _random_chain(2, 120)
    forward, strike, sigma, tau, weight, put_weight = _arrays(chain)
    ratio = 1.0 + np.arange(-80, 81) * 0.003
    fast = kernels.profile_at_levels(forward, strike, sigma, tau, weight, put_weight, ratio)
    grid = np.repeat(sigma[:, None], ratio.size, axis=1)
    general = kernels.profile_at_levels(forward, strike, sigma, tau, weight, put_weight, ratio, sigma_grid=grid)
    _assert_close(general[0], fast[0])
    _assert_close(general[1], fast[1])


def test_premium_adjusted_delta_matches_the_reference():
    chain = _random_chain(3, 80)
    ratio = 1.0 + np.arange(-50, 51) * 0.005
    arrays = _arrays(chain)
    gex, delta = kernels.profile_at_levels(*arrays, ratio, premium_adjusted=np.ones(len(chain), dtype=bool))
    ref_gex, ref_delta = ref.profile(chain, ratio, premium_adjusted=True)
    _assert_close(gex, ref_gex)
    _assert_close(delta, ref_delta)


def test_sticky_moneyness_profile_matches_the_reference():
    chain = _random_chain(4, 60)
    ratio = 1.0 + np.arange(-40, 41) * 0.005
    forward, strike, sigma, tau, weight, put_weight = _arrays(chain)
    group = np.array([o.expiry for o in chain])
    x = np.log(strike / forward)
    grid = kernels.sticky_moneyness_sigma_grid(group, x, sigma, group, x, sigma, np.log(ratio))
    gex, delta = kernels.profile_at_levels(forward, strike, sigma, tau, weight, put_weight, ratio, sigma_grid=grid)
    ref_gex, ref_delta = ref.profile(chain, ratio, sticky_moneyness=True)
    _assert_close(gex, ref_gex)
    _assert_close(delta, ref_delta)


def test_options_at_or_past_expiry_or_with_bad_inputs_contribute_nothing():
    ratio = np.array([0.9, 1.0, 1.1])
    good = (
        np.array([60_000.0]),
        np.array([62_000.0]),
        np.array([0.5]),
        np.array([0.1]),
        np.array([2.0]),
        np.array([0.0]),
    )
    base = kernels.profile_at_levels(*good, ratio)
    for tau, sigma, forward in [
        (0.0, 0.5, 6e4),
        (-0.01, 0.5, 6e4),
        (0.1, 0.0, 6e4),
        (0.1, np.nan, 6e4),
        (0.1, 0.5, np.nan),
    ]:
        bad = (
            np.array([forward]),
            np.array([60_000.0]),
            np.array([sigma]),
            np.array([tau]),
            np.array([5.0]),
            np.array([0.0]),
        )
        both = [np.concatenate([g, b]) for g, b in zip(good, bad, strict=True)]
        out = kernels.profile_at_levels(*both, ratio)
        np.testing.assert_array_equal(out[0], base[0])
        np.testing.assert_array_equal(out[1], base[1])


def test_the_result_does_not_depend_on_the_number_of_parallel_blocks():
    forward, strike, sigma, tau, weight, put_weight = _arrays(_random_chain(5, 200))
    ratio = 1.0 + np.arange(-100, 101) * 0.0025
    one = kernels.gamma_delta_profile(forward, strike, sigma, tau, weight, put_weight, ratio, 1)
    for blocks in (2, 3, 7, 201):
        many = kernels.gamma_delta_profile(forward, strike, sigma, tau, weight, put_weight, ratio, blocks)
        np.testing.assert_array_equal(many[0], one[0])
        np.testing.assert_array_equal(many[1], one[1])


def test_merging_a_call_and_a_put_with_identical_inputs_gives_the_same_profile():
    """A call and a put at one strike share d1: one row with weight w_c + w_p and put_weight w_p is exact."""
    ratio = 1.0 + np.arange(-100, 101) * 0.0025
    f, k, s, t = 60_000.0, 64_000.0, 0.55, 0.05
    split = kernels.profile_at_levels([f, f], [k, k], [s, s], [t, t], [3.0, -5.0], [0.0, -5.0], ratio)
    merged = kernels.profile_at_levels([f], [k], [s], [t], [-2.0], [-5.0], ratio)
    _assert_close(merged[0], split[0], scale=1e6)
    _assert_close(merged[1], split[1], scale=5.0)


def test_unsorted_or_non_positive_levels_are_rejected_with_a_one_line_error():
    arrays = (np.array([6e4]), np.array([6e4]), np.array([0.5]), np.array([0.1]), np.array([1.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="strictly increasing"):
        kernels.profile_at_levels(*arrays, np.array([1.1, 1.0]))
    with pytest.raises(ValueError, match="positive"):
        kernels.profile_at_levels(*arrays, np.array([0.0, 1.0]))


# --- the fused kernel's own exp and N() (kernels.fast_gauss_terms runs the kernel's per-element code) ---------


def test_the_fused_kernels_exponential_matches_math_exp_down_to_the_smallest_subnormal():
    d = np.concatenate([np.linspace(-40.0, 40.0, 400_001), [0.0, -0.0, 38.6, -38.6, 38.61, 1e3, -1e8, 1e300]])
    e, _ = kernels.fast_gauss_terms(d)
    want = np.array([math.exp(-0.5 * v * v) for v in d.tolist()])
    near = np.abs(d) <= 8.0  # where phi is not negligible next to its peak
    assert np.max(np.abs(e[near] / want[near] - 1.0)) < 2e-15
    normal = want >= np.finfo(float).tiny
    assert np.max(np.abs(e[normal] / want[normal] - 1.0)) < 3e-14  # ln 2 rounding in the reduction at |d| ~ 37
    assert np.max(np.abs(e[~normal] - want[~normal])) < 1e-320  # subnormal results round once
    assert np.all(e[np.abs(d) >= 38.61] == 0.0)


def test_the_fused_kernels_normal_cdf_matches_erfc_to_1e_15_absolute():
    d = np.concatenate([np.linspace(-40.0, 40.0, 400_001), np.linspace(-1e-3, 1e-3, 2_001), [-1e8, 1e8, 1e300]])
    _, n = kernels.fast_gauss_terms(d)
    want = np.array([ref.norm_cdf(v) for v in d])
    assert np.max(np.abs(n - want)) < 1e-15
    lower = (d <= 0.0) & (want > 1e-12)  # relative in the lower tail (erfc's argument rounding dominates)
    assert np.max(np.abs(n[lower] / want[lower] - 1.0)) < 2e-14
    assert np.all(n[d <= -38.61] == 0.0)
    assert np.all(n[d >= 38.61] == 1.0)


def _extreme_chain() -> list[ref.Option]:
    """Minutes to a year to expiry, strikes from 0.2x to 5x: whole blocks of levels in the tails (|d1| > 38.6),
    blocks that cross into them (the clamped code path) and ordinary ones, calls and puts."""
    out = []
    for k, (minutes, moneyness) in enumerate(
        [(5, 0.2), (5, 0.97), (5, 1.0), (5, 1.03), (5, 5.0), (30, 0.9), (30, 1.12), (240, 0.8), (240, 1.3),
         (1440, 0.5), (1440, 1.02), (43200, 0.3), (43200, 2.5), (525600, 1.0)]
    ):  # fmt: skip
        out.append(
            ref.Option(
                forward=60_000.0,
                strike=60_000.0 * moneyness,
                sigma=0.3 + 0.05 * (k % 5),
                tau=minutes / 525_600.0,
                weight=1.0 + k,
                is_call=k % 2 == 0,
            )
        )
    return out


def test_options_in_and_around_the_tails_give_the_same_profile_for_any_split_into_blocks():
    forward, strike, sigma, tau, weight, put_weight = _arrays(_extreme_chain())
    ratio = 1.0 + np.arange(-100, 101) * 0.0025
    one = kernels.gamma_delta_profile(forward, strike, sigma, tau, weight, put_weight, ratio, 1)
    for blocks in (2, 3, 5, 7, 40, 201):
        many = kernels.gamma_delta_profile(forward, strike, sigma, tau, weight, put_weight, ratio, blocks)
        np.testing.assert_array_equal(many[0], one[0])
        np.testing.assert_array_equal(many[1], one[1])


def test_options_in_and_around_the_tails_match_the_reference():
    chain = _extreme_chain()
    ratio = 1.0 + np.arange(-100, 101) * 0.0025
    gex, delta = kernels.profile_at_levels(*_arrays(chain), ratio)
    ref_gex, ref_delta = ref.profile(chain, ratio)
    _assert_close(gex, ref_gex, scale=max(map(abs, ref_gex)) * 1e2)
    _assert_close(delta, ref_delta, scale=sum(o.weight for o in chain) * 1e2)


def test_gex_keeps_its_precision_where_gamma_is_subnormal():
    """A 7-hour call 30 % in the money: d1 ~ 23..38 over the grid, gamma down to 1e-311 (a case hypothesis found
    in tests/unit/test_exposure.py). Each level matches the reference to 1e-12 relative, or 1e-311 absolute."""
    o = ref.Option(forward=150.018, strike=105.0, sigma=0.2, tau=0.3 / 365.0, weight=1.0, is_call=True)
    ratio = 1.0 + np.arange(-20, 21) * 0.01
    gex, _ = kernels.profile_at_levels([o.forward], [o.strike], [o.sigma], [o.tau], [o.weight], [0.0], ratio)
    ref_gex, _ = ref.profile([o], ratio)
    assert any(0.0 < v < 1e-300 for v in ref_gex)
    _assert_close(gex, ref_gex, scale=1e-299)


def test_the_general_kernel_keeps_the_precision_of_subnormal_gamma_too():
    """The sticky-moneyness / premium-adjusted path once cut gamma to 0 from |d1| = 37.5 on (2.3e-311 lost at
    ratio 0.87 in this case); it now shares the fast kernel's exp, so subnormal gamma matches the reference."""
    o = ref.Option(forward=150.018, strike=105.0, sigma=0.2, tau=0.3 / 365.0, weight=1.0, is_call=True)
    ratio = 1.0 + np.arange(-20, 21) * 0.01
    grid = np.full((1, ratio.size), o.sigma)
    args = ([o.forward], [o.strike], [o.sigma], [o.tau], [o.weight], [0.0], ratio)
    gex, _ = kernels.profile_at_levels(*args, sigma_grid=grid)
    ref_gex, _ = ref.profile([o], ratio)
    assert any(0.0 < v < 1e-300 for v in ref_gex)
    _assert_close(gex, ref_gex, scale=1e-299)
    gex_pa, _ = kernels.profile_at_levels(*args, sigma_grid=grid, premium_adjusted=np.ones(1, dtype=bool))
    np.testing.assert_array_equal(gex_pa, gex)  # premium adjustment changes delta only


def test_read_only_inputs_reuse_the_writable_signature_so_each_kernel_compiles_once():
    """polars' ``to_numpy`` hands out read-only views, which numba types as another signature: without the
    copy in ``profile_at_levels`` a first ``gexflow run`` compiled the sticky-strike kernel three times."""
    forward, strike, sigma, tau, weight, put_weight = _arrays(_random_chain(7, 20))
    ratio = 1.0 + np.arange(-10, 11) * 0.01
    pa = np.zeros(forward.size, dtype=np.bool_)
    pa[::2] = True
    compiled = (kernels.gamma_delta_profile, kernels._general_blocks, kernels._general_blocks_adjusted)
    before = {k: set(k.signatures) for k in compiled}
    for read_only in (False, True):
        arrays = [a.copy() for a in (forward, strike, sigma, tau, weight, put_weight, ratio)]
        flags = pa.copy()
        for a in [*arrays, flags]:
            a.flags.writeable = not read_only
        kernels.profile_at_levels(*arrays)
        kernels.profile_at_levels(*arrays, premium_adjusted=flags)
    for kernel, seen in before.items():
        added = set(kernel.signatures) - seen
        assert all(t.mutable for sig in added for t in sig if isinstance(t, types.Array)), added


def test_option_batch_copies_read_only_inputs_so_the_task_kernel_compiles_once():
    """The same for :class:`~transforms.pricing.kernel_batch.OptionBatch` (compute hands it polars views): its
    task kernel compiled twice in a first run before its inputs were made writable."""
    from transforms.pricing.kernel_batch import ALL_EXPIRIES, OptionBatch, _task_range

    forward, strike, sigma, _tau, weight, put_weight = _arrays(_random_chain(8, 20))
    expiry = np.full(forward.size, 30 * 86_400_000, dtype=np.int64)
    live = np.ones(forward.size, dtype=np.bool_)
    ratio = 1.0 + np.arange(-10, 11) * 0.01
    before = set(_task_range.signatures)
    for a in (forward, strike, sigma, expiry, weight, put_weight, live):
        a.flags.writeable = False
    one = np.zeros(1, dtype=np.int64)
    window = np.full(1, ALL_EXPIRIES[0]), np.full(1, ALL_EXPIRIES[1])
    batch = OptionBatch(forward, strike, sigma, expiry, weight, put_weight, live)
    gex, _ = batch.profiles(one, one + forward.size, one, *window, ratio)
    assert np.isfinite(gex).all() and np.abs(gex).sum() > 0.0
    added = set(_task_range.signatures) - before
    assert all(t.mutable for sig in added for t in sig if isinstance(t, types.Array)), added
