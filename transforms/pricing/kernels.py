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

The per-element exponential and N() (hand-written, vectorisable, shared by both kernels and by
``transforms.pricing.kernel_batch``) and the fused kernel's block loop live in ``transforms.pricing.gauss_terms``,
which says how accurate they are. Summation over options is in input order for every level, whatever the number
of threads, so results are reproducible bit for bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from transforms.pricing.fanout import fan_out
from transforms.pricing.gauss_terms import (
    _FAST_CONSTANTS,
    _UNSCALE,
    FASTMATH,
    INV_SQRT_2PI,
    _accumulate_block,
    _terms,
    _unpack,
    fast_gauss_terms,
    njit_variant,
    writable,
)


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def gamma_delta_profile(forward, strike, sigma, tau, weight, put_weight, level_ratio, n_blocks):
    """Sticky-strike dealer (gex_usd, delta_coins) at each level S'_j = level_ratio[j] * S0.

    All inputs are 1-D float64 arrays; ``level_ratio`` must be sorted ascending and positive (use
    :func:`profile_at_levels`, which checks). The levels are cut into ``n_blocks`` blocks run in
    parallel (one per thread; passed in because numba.get_num_threads() would defeat caching).
    """
    n_levels = level_ratio.size
    n_opt = forward.size
    k_arr = _FAST_CONSTANTS.copy()
    # per option: d1 = 2 (s hb + ha), g = w F 0.01 / (sigma sqrt(tau) sqrt(2 pi)), hw = w / 2, hwm = w / 2 - p
    ha = np.zeros(n_opt)
    hb = np.zeros(n_opt)
    g = np.zeros(n_opt)
    hw = np.zeros(n_opt)
    hwm = np.zeros(n_opt)
    live = np.zeros(n_opt, dtype=np.bool_)
    for i in prange(n_opt):
        w = weight[i]
        p = put_weight[i]
        t = tau[i]
        sg = sigma[i]
        f = forward[i]
        k = strike[i]
        if t > 0.0 and sg > 0.0 and f > 0.0 and k > 0.0 and (w != 0.0 or p != 0.0):
            vs = sg * math.sqrt(t)
            b = 1.0 / vs
            a = math.log(f / k) * b + 0.5 * vs
            ha[i] = 0.5 * a
            hb[i] = 0.5 * b
            g[i] = w * f * 0.01 * b * INV_SQRT_2PI
            hw[i] = 0.5 * w
            hwm[i] = 0.5 * w - p
            live[i] = True
    gex = np.empty(n_levels)
    delta = np.empty(n_levels)
    n_blocks = max(1, min(n_levels, n_blocks))
    for blk in prange(n_blocks):
        j0 = blk * n_levels // n_blocks
        j1 = (blk + 1) * n_levels // n_blocks
        m = j1 - j0
        x = np.log(level_ratio[j0:j1])
        acc = np.zeros(2 * m)  # private to the block: no false sharing of cache lines between threads
        _accumulate_block(x, acc[:m], acc[m:], ha, hb, g, hw, hwm, live, k_arr)
        for j in range(m):
            gex[j0 + j] = acc[j] * level_ratio[j0 + j] * _UNSCALE
            delta[j0 + j] = acc[m + j]
    return gex, delta


def _general_accumulator(adjusted: bool):
    """The general kernel's loop over options, compiled once per value of ``adjusted`` (a closure constant, as in
    ``gauss_terms._accumulator``): without it the premium-adjusted branch is dropped, so the sticky-moneyness
    profiles of a run (forward delta) never compile it. Both variants run the same code for an option whose
    ``premium_adjusted`` flag is false, so they give the same numbers for it."""

    def accumulate(
        s, m, gex_acc, delta_acc, forward, strike, sigma_grid, tau, weight, put_weight, premium_adjusted, k_arr
    ):
        """As _accumulate_block with sigma per (option, level) (``sigma_grid`` holds this block's columns): the
        same per-element exp and N() (_terms on d1 itself: d1 = 2 (d1 * 1/2 + 0) exactly), gex scaled by 2^60."""
        k = _unpack(k_arr)
        for i in range(forward.size):
            w = weight[i]
            p = put_weight[i]
            t = tau[i]
            f = forward[i]
            kk = strike[i]
            if not (t > 0.0 and f > 0.0 and kk > 0.0 and (w != 0.0 or p != 0.0)):
                continue
            sq = math.sqrt(t)
            lfk = math.log(f / kk)
            g = w * f * 0.01 * INV_SQRT_2PI
            hw = 0.5 * w
            hwm = 0.5 * w - p
            sig = sigma_grid[i]
            if adjusted and premium_adjusted[i]:
                kf = kk / f
                for j in range(s.size):
                    ok = sig[j] > 0.0
                    vs = sig[j] * sq if ok else 1.0
                    on = 1.0 if ok else 0.0
                    d1 = (lfk + s[j]) / vs + 0.5 * vs
                    big, _t1 = _terms(d1, 0.0, 0.5, -w, hw, hwm, k, True)
                    _big2, t2 = _terms(d1 - vs, 0.0, 0.5, -w, hw, hwm, k, True)
                    gex_acc[j] += on * (g * m[j] / vs) * big
                    # Delta - V/F' = (K/F') N(d2) (call), -(K/F') N(-d2) = (K/F')(N(d2) - 1) (put)
                    delta_acc[j] += on * (kf / m[j]) * t2
            else:
                for j in range(s.size):
                    ok = sig[j] > 0.0
                    vs = sig[j] * sq if ok else 1.0
                    on = 1.0 if ok else 0.0
                    d1 = (lfk + s[j]) / vs + 0.5 * vs
                    big, t1 = _terms(d1, 0.0, 0.5, -w, hw, hwm, k, True)
                    gex_acc[j] += on * (g * m[j] / vs) * big
                    delta_acc[j] += on * t1

    return njit_variant(accumulate, "adjusted" if adjusted else "forward")


_accumulate_general = _general_accumulator(False)
_accumulate_general_adjusted = _general_accumulator(True)

# One block loop per variant, each naming its loop as a module global (see kernel_batch: a closure over a
# dispatcher would be compiled again in every process).


@njit(nogil=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def _general_blocks(
    b0, b1, n_blocks, level_ratio, gex_acc, delta_acc, forward, strike, sigma_grid, tau, weight, put_weight, pa
):
    """Blocks b0..b1-1 of the ``n_blocks`` the levels are cut into, through _accumulate_general (forward delta)."""
    n_levels = level_ratio.size
    k_arr = _FAST_CONSTANTS.copy()
    for blk in range(b0, b1):
        j0, j1 = blk * n_levels // n_blocks, (blk + 1) * n_levels // n_blocks
        block_sigma = np.ascontiguousarray(sigma_grid[:, j0:j1])
        _accumulate_general(
            np.log(level_ratio[j0:j1]), level_ratio[j0:j1], gex_acc[j0:j1], delta_acc[j0:j1],
            forward, strike, block_sigma, tau, weight, put_weight, pa, k_arr,
        )  # fmt: skip
        for j in range(j0, j1):
            gex_acc[j] = gex_acc[j] * _UNSCALE  # subnormal results round once, like the fast kernel's


@njit(nogil=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def _general_blocks_adjusted(
    b0, b1, n_blocks, level_ratio, gex_acc, delta_acc, forward, strike, sigma_grid, tau, weight, put_weight, pa
):
    """:func:`_general_blocks` through _accumulate_general_adjusted (premium-adjusted delta where ``pa``)."""
    n_levels = level_ratio.size
    k_arr = _FAST_CONSTANTS.copy()
    for blk in range(b0, b1):
        j0, j1 = blk * n_levels // n_blocks, (blk + 1) * n_levels // n_blocks
        block_sigma = np.ascontiguousarray(sigma_grid[:, j0:j1])
        _accumulate_general_adjusted(
            np.log(level_ratio[j0:j1]), level_ratio[j0:j1], gex_acc[j0:j1], delta_acc[j0:j1],
            forward, strike, block_sigma, tau, weight, put_weight, pa, k_arr,
        )  # fmt: skip
        for j in range(j0, j1):
            gex_acc[j] = gex_acc[j] * _UNSCALE


def gamma_delta_profile_general(
    forward, strike, sigma_grid, tau, weight, put_weight, premium_adjusted, level_ratio, n_blocks
):
    """Like :func:`gamma_delta_profile` with sigma per (option, level) (``sigma_grid[i, j]``, C order) and,
    where ``premium_adjusted[i]`` is true, the coin-numeraire delta Delta - V(F')/F' of an inverse option.

    Every (option, level) pays a division for d1 and the clamped code path (sigma moves d1 around, so no
    block can be known to stay out of the tails), and a second N() for the premium-adjusted delta: this
    path is slower than the fused sticky-strike kernel.
    """
    n_levels = level_ratio.size
    gex_acc = np.zeros(n_levels)
    delta_acc = np.zeros(n_levels)
    n_blocks = max(1, min(n_levels, n_blocks))
    blocks = _general_blocks_adjusted if premium_adjusted.any() else _general_blocks
    fan_out(
        blocks, n_blocks, n_blocks, level_ratio, gex_acc, delta_acc,
        forward, strike, sigma_grid, tau, weight, put_weight, premium_adjusted, work=forward.size * n_levels,
    )  # fmt: skip
    return gex_acc, delta_acc


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
        writable(a) for a in (forward, strike, sigma, tau, weight, put_weight)
    )
    level_ratio = writable(level_ratio)
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
    pa = None if premium_adjusted is None else writable(premium_adjusted, np.bool_)
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
    "FASTMATH",
    "fast_gauss_terms",
    "gamma_delta_profile",
    "gamma_delta_profile_general",
    "profile_at_levels",
    "sticky_moneyness_sigma_grid",
]
