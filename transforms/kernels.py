"""Numba kernels of the GEX engine: Black-76 gamma and delta of many options at many spot levels.

Textbook symbols, per option i and spot level j (see DESIGN.md section 4):

    F      forward the option is priced on, USD (``underlying_price``)
    K      strike, USD
    sigma  implied volatility as a decimal (``mark_iv / 100``)
    tau    time to expiry in years, ACT/365; tau <= 0 means the option contributes nothing
    w      dealer weight q * c in coins (signed dealer contracts x coins per contract)
    p      the part of w that sits on puts (w for a put, 0 for a call; summed when a call and a
           put with identical F, K, sigma, tau are merged into one row)
    m_j    spot level as a ratio to spot, S'_j / S0; forwards move with spot: F' = F * m_j
    s_j    ln(m_j), so ln(F'/K) = ln(F/K) + s_j and the inner loop needs no logarithm

    d1            = (ln(F/K) + s_j + sigma^2 tau / 2) / (sigma sqrt(tau))
    gex_usd[j]    = sum_i w_i * Gamma_i(F'_i) * F'_i^2 * 0.01     USD per 1 % move of spot
                  = sum_i w_i * phi(d1) * F_i * m_j * 0.01 / (sigma sqrt(tau))
    delta_coins[j] = sum_i (w_i * N(d1) - p_i)                    coins (Delta_put = N(d1) - 1)

Vol is sticky-strike in :func:`gamma_delta_profile` (sigma fixed per option). The general kernel
:func:`gamma_delta_profile_general` takes one sigma per (option, level) -- used for sticky-moneyness
-- and can return the premium-adjusted (coin numeraire) delta of inverse options,
Delta - V(F')/F' = (K/F') N(d2) for a call and -(K/F') N(-d2) for a put.

Why hand-written exp and N(): this machine's numba has no SVML, so ``math.exp``/``math.erfc`` are
scalar libm calls (~5 ns and ~19 ns). The kernel uses an exp (Cody-Waite reduction + degree-10
polynomial, relative error < 1e-15 for the arguments used here) and an N() (a Taylor series of
N(x) - 1/2 in terms of phi(x) for |x| < 0.5, W. J. Cody's rational approximation of the Mills ratio
N(-y) exp(y^2/2) for y >= 0.5, as in R's ``pnorm``) written so LLVM vectorises them with AVX2.
Levels are sorted, so along the levels of one option d1 rises monotonically: each option's levels
split into contiguous runs (left tail, left, centre, right, right tail) and each run is a
branch-free vectorised loop. In the tails |d1| >= 37.5 the exp underflows (phi = 0, N = 0 or 1), so
they only add a constant delta. Summation over options is in input order for every level, whatever
the number of threads, so results are reproducible bit for bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

# LLVM fast-math flags: only 'contract' (fused multiply-add). Measured (benchmarks/bench_profile.py):
# it is the one flag that matters (~1.6x over none); adding nsz/arcp/nnan/ninf or fastmath=True
# (which adds reassoc/afn) gains nothing measurable, and leaving out 'reassoc' keeps the Cody-Waite
# reduction and the order of summation exactly as written, 'nnan'/'ninf' out keeps the NaN guards.
FASTMATH = {"contract"}

INV_SQRT_2PI = 0.3989422804014327
# |d1| at and beyond which exp(-d1^2/2) underflows in _exp_nonpos (exp(-703) ~ 1e-305): phi = 0 and
# N(d1) = 0 or 1 exactly as the full formula would give, so the tails are a constant delta.
TAIL_D1 = 37.5
# |d1| below which N(d1) comes from the series around 0 rather than Cody's rational.
CENTRE_D1 = 0.5

# Chebyshev fit of exp(r) on [-ln2/2, ln2/2], monomial form, max relative error 4.4e-16.
_E0 = 1.0
_E1 = 1.0000000000000087
_E2 = 0.5000000000000044
_E3 = 0.16666666666537108
_E4 = 0.041666666666475054
_E5 = 0.008333333390677773
_E6 = 0.0013888888932046604
_E7 = 0.00019841164711784939
_E8 = 2.480152032242095e-05
_E9 = 2.7642262393277706e-06
_E10 = 2.761660577181526e-07


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _exp_nonpos(x):
    """exp(x) for -708 < x <= 0, branch-free so LLVM can vectorise it (no SVML on this machine)."""
    n = np.floor(x * 1.4426950408889634 + 0.5)
    r = x - n * 0.6931471805599453
    p = _E10
    p = p * r + _E9
    p = p * r + _E8
    p = p * r + _E7
    p = p * r + _E6
    p = p * r + _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + _E1
    p = p * r + _E0
    # 2**n from the exponent bits: n + 2**52 + 1023 holds n + 1023 in its low mantissa bits.
    k = np.float64(n + 4503599627371519.0).view(np.int64) - np.int64(0x4330000000000000)
    return p * np.int64(k << 52).view(np.float64)


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _mills(y):
    """N(-y) * exp(y^2/2) for y >= 0.5: W. J. Cody (1969/1993) rational, as in R's pnorm (relative error
    < 2e-14 for 0.5 <= y <= 7; beyond that N(-y) < 1e-12 and the error grows slowly to 1e-7 at y = 37)."""
    num = 1.0765576773720192317e-8
    num = num * y + 0.39894151208813466764
    num = num * y + 8.8831497943883759412
    num = num * y + 93.506656132177855979
    num = num * y + 597.27027639480026226
    num = num * y + 2494.5375852903726711
    num = num * y + 6848.1904505362823326
    num = num * y + 11602.651437647350124
    num = num * y + 9842.7148383839780218
    den = y + 22.266688044328115691
    den = den * y + 235.38790178262499861
    den = den * y + 1519.377599407554805
    den = den * y + 6485.558298266760755
    den = den * y + 18615.571640885098091
    den = den * y + 34900.952721145977266
    den = den * y + 38912.003286093271411
    den = den * y + 19685.429676859990727
    return num / den


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _centre_series(x):
    """(N(x) - 1/2) / phi(x) = sum_n x^(2n+1) / (2n+1)!!, to 1e-16 for |x| <= 0.5."""
    z = x * x
    t = 1.0 / 13749310575.0
    t = t * z + 1.0 / 654729075.0
    t = t * z + 1.0 / 34459425.0
    t = t * z + 1.0 / 2027025.0
    t = t * z + 1.0 / 135135.0
    t = t * z + 1.0 / 10395.0
    t = t * z + 1.0 / 945.0
    t = t * z + 1.0 / 105.0
    t = t * z + 1.0 / 15.0
    t = t * z + 1.0 / 3.0
    t = t * z + 1.0
    return x * t


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _phi_and_cdf(d):
    """(exp(-d^2/2), N(d)) with the same approximations as the fast kernel; scalar, with branches."""
    if d <= -TAIL_D1:
        return 0.0, 0.0
    if d >= TAIL_D1:
        return 0.0, 1.0
    e = _exp_nonpos(-0.5 * d * d)
    if d < -CENTRE_D1:
        return e, e * _mills(-d)
    if d > CENTRE_D1:
        return e, 1.0 - e * _mills(d)
    return e, 0.5 + INV_SQRT_2PI * e * _centre_series(d)


# --- the runs of levels of one option (s is a contiguous slice of the sorted log levels) -----------


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _add_constant(delta_acc, c):
    for k in range(delta_acc.size):
        delta_acc[k] += c


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _left_run(s, gex_acc, delta_acc, b, a, g, w, p):
    for k in range(s.size):
        d = s[k] * b + a
        e = _exp_nonpos(-0.5 * d * d)
        gex_acc[k] += g * e
        delta_acc[k] += w * (e * _mills(-d)) - p


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _centre_run(s, gex_acc, delta_acc, b, a, g, w, p):
    c = 0.5 * w - p
    wn = w * INV_SQRT_2PI
    for k in range(s.size):
        d = s[k] * b + a
        e = _exp_nonpos(-0.5 * d * d)
        gex_acc[k] += g * e
        delta_acc[k] += c + (wn * e) * _centre_series(d)


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _right_run(s, gex_acc, delta_acc, b, a, g, w, p):
    c = w - p
    for k in range(s.size):
        d = s[k] * b + a
        e = _exp_nonpos(-0.5 * d * d)
        gex_acc[k] += g * e
        delta_acc[k] += c - w * (e * _mills(d))


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def _accumulate(s, gex_acc, delta_acc, forward, strike, sigma, tau, weight, put_weight):
    """Add every option's phi-weighted gamma term and delta to the accumulators of the sorted levels s."""
    for i in range(forward.size):
        w = weight[i]
        p = put_weight[i]
        t = tau[i]
        sg = sigma[i]
        f = forward[i]
        k = strike[i]
        if not (t > 0.0 and sg > 0.0 and f > 0.0 and k > 0.0 and (w != 0.0 or p != 0.0)):
            continue
        vs = sg * math.sqrt(t)
        b = 1.0 / vs
        h = 0.5 * vs
        lfk = math.log(f / k)
        a = lfk * b + h  # d1 = s * b + a
        g = w * f * 0.01 * b * INV_SQRT_2PI
        # level index where d1 crosses -TAIL, -CENTRE, +CENTRE, +TAIL (d1 = x  <=>  s = (x - h) vs - lfk)
        e1 = np.searchsorted(s, (-TAIL_D1 - h) * vs - lfk)
        e2 = np.searchsorted(s, (-CENTRE_D1 - h) * vs - lfk)
        e3 = np.searchsorted(s, (CENTRE_D1 - h) * vs - lfk, side="right")
        e4 = np.searchsorted(s, (TAIL_D1 - h) * vs - lfk, side="right")
        if p != 0.0:
            _add_constant(delta_acc[:e1], -p)
        _left_run(s[e1:e2], gex_acc[e1:e2], delta_acc[e1:e2], b, a, g, w, p)
        _centre_run(s[e2:e3], gex_acc[e2:e3], delta_acc[e2:e3], b, a, g, w, p)
        _right_run(s[e3:e4], gex_acc[e3:e4], delta_acc[e3:e4], b, a, g, w, p)
        if w != p:
            _add_constant(delta_acc[e4:], w - p)


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def gamma_delta_profile(forward, strike, sigma, tau, weight, put_weight, level_ratio, n_blocks):
    """Sticky-strike dealer (gex_usd, delta_coins) at each level S'_j = level_ratio[j] * S0.

    All inputs are 1-D float64 arrays; ``level_ratio`` must be sorted ascending and positive (use
    :func:`profile_at_levels`, which checks). The levels are cut into ``n_blocks`` blocks run in
    parallel (one per thread; passed in because numba.get_num_threads() would defeat caching).
    """
    n_levels = level_ratio.size
    s = np.log(level_ratio)
    gex_acc = np.zeros(n_levels)
    delta_acc = np.zeros(n_levels)
    n_blocks = max(1, min(n_levels, n_blocks))
    for blk in prange(n_blocks):
        j0 = blk * n_levels // n_blocks
        j1 = (blk + 1) * n_levels // n_blocks
        _accumulate(s[j0:j1], gex_acc[j0:j1], delta_acc[j0:j1], forward, strike, sigma, tau, weight, put_weight)
    return gex_acc * level_ratio, delta_acc


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _phi_and_cdf_branchless(d):
    """(exp(-d^2/2), N(d)) as in _phi_and_cdf, computing every branch and selecting (vectorisable)."""
    y = abs(d)
    e = _exp_nonpos(max(-0.5 * d * d, -708.0))
    e = e if y < TAIL_D1 else 0.0
    outer = e * _mills(max(y, CENTRE_D1))
    inner = 0.5 - (INV_SQRT_2PI * e) * _centre_series(min(y, CENTRE_D1))
    lower = outer if y > CENTRE_D1 else inner  # N(-y)
    return e, (1.0 - lower if d > 0.0 else lower)


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def _accumulate_general(
    s, m, gex_acc, delta_acc, forward, strike, sigma_grid, tau, weight, put_weight, premium_adjusted
):
    """As _accumulate with sigma per (option, level): ``sigma_grid`` holds this block's columns."""
    for i in range(forward.size):
        w = weight[i]
        p = put_weight[i]
        t = tau[i]
        f = forward[i]
        k = strike[i]
        if not (t > 0.0 and f > 0.0 and k > 0.0 and (w != 0.0 or p != 0.0)):
            continue
        sq = math.sqrt(t)
        lfk = math.log(f / k)
        g = w * f * 0.01 * INV_SQRT_2PI
        sig = sigma_grid[i]
        if premium_adjusted[i]:
            kf = k / f
            for j in range(s.size):
                ok = sig[j] > 0.0
                vs = sig[j] * sq if ok else 1.0
                on = 1.0 if ok else 0.0
                d1 = (lfk + s[j]) / vs + 0.5 * vs
                e, _n1 = _phi_and_cdf_branchless(d1)
                _e2, n2 = _phi_and_cdf_branchless(d1 - vs)
                gex_acc[j] += on * (g * m[j] / vs) * e
                # Delta - V/F' = (K/F') N(d2) (call), -(K/F') N(-d2) = (K/F')(N(d2) - 1) (put)
                delta_acc[j] += on * (kf / m[j]) * (w * n2 - p)
        else:
            for j in range(s.size):
                ok = sig[j] > 0.0
                vs = sig[j] * sq if ok else 1.0
                on = 1.0 if ok else 0.0
                d1 = (lfk + s[j]) / vs + 0.5 * vs
                e, n1 = _phi_and_cdf_branchless(d1)
                gex_acc[j] += on * (g * m[j] / vs) * e
                delta_acc[j] += on * (w * n1 - p)


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def gamma_delta_profile_general(
    forward, strike, sigma_grid, tau, weight, put_weight, premium_adjusted, level_ratio, n_blocks
):
    """Like :func:`gamma_delta_profile` with sigma per (option, level) (``sigma_grid[i, j]``, C order) and,
    where ``premium_adjusted[i]`` is true, the coin-numeraire delta Delta - V(F')/F' of an inverse option.

    Every (option, level) pays for both N() branches (no sorted-level runs: sigma moves d1 around), so
    this path is a few times slower than the fused sticky-strike kernel.
    """
    n_levels = level_ratio.size
    s = np.log(level_ratio)
    gex_acc = np.zeros(n_levels)
    delta_acc = np.zeros(n_levels)
    n_blocks = max(1, min(n_levels, n_blocks))
    for blk in prange(n_blocks):
        j0 = blk * n_levels // n_blocks
        j1 = (blk + 1) * n_levels // n_blocks
        block_sigma = np.ascontiguousarray(sigma_grid[:, j0:j1])
        _accumulate_general(
            s[j0:j1],
            level_ratio[j0:j1],
            gex_acc[j0:j1],
            delta_acc[j0:j1],
            forward,
            strike,
            block_sigma,
            tau,
            weight,
            put_weight,
            premium_adjusted,
        )
    return gex_acc, delta_acc


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def norm_cdf(x):
    """N(x) with the kernel's approximation (for tests and the per-option greeks' consistency checks)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _phi_and_cdf(x[i])[1]
    return out


# --- Python-side helpers -----------------------------------------------------------------------------


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def profile_at_levels(
    forward,
    strike,
    sigma,
    tau,
    weight,
    put_weight,
    level_ratio,
    *,
    sigma_grid=None,
    premium_adjusted=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Checked entry point: (gex_usd, delta_coins) per level; see the module docstring for the symbols.

    Uses the fused sticky-strike kernel unless ``sigma_grid`` (n_options x n_levels) or a true
    ``premium_adjusted`` flag asks for the general one. Non-finite inputs and tau <= 0 contribute nothing.
    """
    forward, strike, sigma, tau, weight, put_weight = (
        _f64(a) for a in (forward, strike, sigma, tau, weight, put_weight)
    )
    level_ratio = _f64(level_ratio)
    n = forward.size
    if any(a.shape != (n,) for a in (strike, sigma, tau, weight, put_weight)):
        raise ValueError("option arrays must be 1-D and of equal length")
    if level_ratio.ndim != 1 or not np.all(np.isfinite(level_ratio)) or np.any(level_ratio <= 0.0):
        raise ValueError("level_ratio must be a 1-D array of positive finite numbers")
    if level_ratio.size > 1 and np.any(np.diff(level_ratio) <= 0.0):
        raise ValueError("level_ratio must be strictly increasing")
    # an option with any non-finite input is dropped (tau = 0) rather than poisoning every level
    ok = np.isfinite(forward) & np.isfinite(strike) & np.isfinite(tau) & np.isfinite(weight) & np.isfinite(put_weight)
    if sigma_grid is None:
        ok &= np.isfinite(sigma)
    if not ok.all():
        tau = np.where(ok, tau, 0.0)
        forward, strike, weight, put_weight = (np.where(ok, a, 0.0) for a in (forward, strike, weight, put_weight))
    pa = None if premium_adjusted is None else np.ascontiguousarray(premium_adjusted, dtype=np.bool_)
    if sigma_grid is None and (pa is None or not pa.any()):
        return gamma_delta_profile(
            forward, strike, np.where(ok, sigma, 0.0), tau, weight, put_weight, level_ratio, numba.get_num_threads()
        )
    grid = np.broadcast_to(sigma[:, None], (n, level_ratio.size)) if sigma_grid is None else _f64(sigma_grid)
    if grid.shape != (n, level_ratio.size):
        raise ValueError("sigma_grid must have shape (n_options, n_levels)")
    grid = np.ascontiguousarray(np.where(np.isfinite(grid), grid, 0.0))
    if pa is None:
        pa = np.zeros(n, dtype=np.bool_)
    if pa.shape != (n,):
        raise ValueError("premium_adjusted must have one flag per option")
    return gamma_delta_profile_general(
        forward, strike, grid, tau, weight, put_weight, pa, level_ratio, numba.get_num_threads()
    )


def sticky_moneyness_sigma_grid(
    option_group,
    option_log_moneyness,
    option_sigma,
    node_group,
    node_log_moneyness,
    node_sigma,
    log_level_ratio,
) -> np.ndarray:
    """sigma[i, j] for sticky-moneyness vol: each option keeps its own sigma at spot and moves along its
    expiry's smile as spot moves, sigma_i + smile(x_i - s_j) - smile(x_i), where x = ln(K/F) and
    smile(.) is linear in log-moneyness through the nodes of the option's group (expiry), flat beyond
    the outermost nodes. Nodes with equal (group, x) are averaged (a call and a put at one strike).
    """
    option_group = np.asarray(option_group, dtype=np.int64)
    x = _f64(option_log_moneyness)
    sig = _f64(option_sigma)
    s = _f64(log_level_ratio)
    node_group = np.asarray(node_group, dtype=np.int64)
    nx = _f64(node_log_moneyness)
    ns = _f64(node_sigma)
    grid = np.broadcast_to(sig[:, None], (x.size, s.size)).copy()
    for g in np.unique(option_group):  # one pass per expiry (a dozen), vectorised inside
        nodes = node_group == g
        if nodes.sum() < 2:
            continue
        ux, inverse = np.unique(nx[nodes], return_inverse=True)
        us = np.bincount(inverse, weights=ns[nodes]) / np.bincount(inverse)
        rows = option_group == g
        xi = x[rows]
        shifted = np.interp(xi[:, None] - s[None, :], ux, us)
        grid[rows] = sig[rows, None] + shifted - np.interp(xi, ux, us)[:, None]
    return grid


__all__ = [
    "CENTRE_D1",
    "FASTMATH",
    "TAIL_D1",
    "gamma_delta_profile",
    "gamma_delta_profile_general",
    "norm_cdf",
    "profile_at_levels",
    "sticky_moneyness_sigma_grid",
]
