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
scalar libm calls (~5 ns and ~19 ns) that stop LLVM from vectorising. The fused kernel
(:func:`gamma_delta_profile`) evaluates every (option, level) with the same straight-line code, which
LLVM vectorises over contiguous levels (AVX2, 4 float64 lanes, FMA): d1 = a_i + b_i s_j from per-option
a_i, b_i; one exponential E = exp(-d1^2/2) (reduction to 2^n P(r), P a degree-10 minimax polynomial,
2^n put into the exponent bits); and N(-|d1|) = E R(|d1|), R a degree-7/8 rational minimax
approximation of the Mills ratio (one division), N(d1) = 1 - N(-d1) for d1 >= 0 chosen by the sign
bit. E is relative-accurate to 1.7e-15 for |d1| <= 8 (2.4e-14 at |d1| ~ 37, from rounding ln 2 in
the reduction) and is carried as E 2^60 so that it keeps its precision into the subnormal range; N
is accurate to 6e-16 absolute. Where |d1| >= 38.61 for every level of a block, E is 0 and N is 0 or 1
exactly, so such an option only adds a constant delta there. The general kernel runs the same
per-element code (:func:`fast_gauss_terms` exposes it for tests) on d1 computed per (option, level),
so both kernels share one exp, one N() and one subnormal range. Summation over options is in input
order for every level, whatever the number of threads, so results are reproducible bit for bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

# LLVM fast-math flags: only 'contract' (fused multiply-add). Measured (benchmarks/bench_profile.py):
# it is the one flag that matters (~1.3x over none on the fused kernel); nsz/arcp/nnan/ninf add nothing
# measurable, and 'reassoc' (part of fastmath=True) must not be added: it lets LLVM re-associate the
# rounding (x + _MAGIC) - _MAGIC in the exponential's range reduction (measured: exp off by up to 22 %,
# the profile by 28 %). Leaving it out also keeps the order of summation exactly as written;
# 'nnan'/'ninf' out keeps the NaN guards.
FASTMATH = {"contract"}

INV_SQRT_2PI = 0.3989422804014327

# --- the per-element exp and N() of both kernels -------------------------------------------------------------
#
# Every (option, level) evaluation is the same straight-line code, vectorised by LLVM over contiguous levels
# (4 float64 lanes of AVX2): d1 = a + b s from per-option a, b and per-level s = ln(m); one exponential
# E = exp(-d1^2/2) (range reduction 2^n P(r) with the 2^n assembled in the exponent bits); and
# N(-|d1|) = E R(|d1|) with R a rational approximation of the Mills ratio: no logarithm, no branch, no call
# (the inner loop is ~30 FMA/multiply instructions, one vdivpd and a few integer/logic ops per 4 lanes).
# Constants reach the loop as run-time values (_FAST_CONSTANTS, passed down as an array) so LLVM keeps them as
# loop-invariant vectors (a register or a stack operand folded into the FMA) instead of re-materialising each
# with an address load and a broadcast per use, which it does for literals (measured ~1.5x slower).

# Minimax polynomial for exp(r) on |r| <= ln(2)/2, c10..c0, relative error 3.0e-16 with these doubles.
_X10 = 2.7779371122742577e-07
_X9 = 2.7645098051907394e-06
_X8 = 2.48011159546651e-05
_X7 = 0.00019841157896307917
_X6 = 0.001388888925626456
_X5 = 0.008333333395864909
_X4 = 0.04166666666559332
_X3 = 0.16666666666524035
_X2 = 0.5000000000000083
_X1 = 1.000000000000009
_X0 = 1.0
# R(y) = P7(y) / Q8(y) ~ N(-y) exp(y^2/2) (Q monic), relative minimax on 0 <= y <= 7.5: relative error
# 6e-16 there (so N has an absolute error < 3.1e-16), 4e-12 at y = 10 and 2e-8 at y = 40, where
# N(-y) < 1e-23 (fitted with a Remez exchange in 50-digit arithmetic).
_M_P = (
    8923.934599160202,
    10721.859366095772,
    6417.940497191523,
    2369.8159378533283,
    574.9688931301672,
    91.21017929769508,
    8.777734019814279,
    0.3989421981481523,
)
_M_Q = (
    17847.869198320415,
    35684.25800875877,
    32383.86492416591,
    17482.935138410267,
    6167.025211856845,
    1463.2259607495037,
    229.63048352425963,
    22.002502036874528,
)
# The exponential is carried as E * 2^60, so it stays a normal number down to E ~ 2^-1076 (d1 ~ 38.6):
# gex is scaled back once per level at the end (subnormal results round once, like the scalar reference's),
# and the 2^-60 is folded into the numerator of R so that E 2^60 R(y) = N(-y).
_SCALE_BITS = 60
_UNSCALE = 2.0**-_SCALE_BITS
_MAGIC = 6755399441055744.0  # 1.5 * 2^52: x + _MAGIC holds round(x) in its low mantissa bits
_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
# From d1^2/2 >= _ZERO_S on, exp(-d1^2/2) <= 4.94e-324 (the smallest subnormal) and N(d1) rounds to 0 or 1:
# the kernel takes E = 0 there. |d1| >= _ZERO_D1 implies d1^2/2 >= _ZERO_S with a margin for rounding.
_ZERO_S = 745.0
_ZERO_D1 = 38.61
# an option whose |d1| < _FAST_D1 at both ends of a block of levels needs no clamping inside it
_FAST_D1 = 38.5
_CLAMP_S = 746.0  # keeps 2^(n + 60) a normal number
_CLAMP_Y = 40.0  # keeps Q8(y) finite


def _fast_constants() -> np.ndarray:
    sign = np.array([np.iinfo(np.int64).min], dtype=np.int64).view(np.float64)[0]
    bias = np.array([_SCALE_BITS], dtype=np.int64).view(np.float64)[0]
    poly = [_X10, _X9, _X8, _X7, _X6, _X5, _X4, _X3, _X2, _X1, _X0]
    num = [c * _UNSCALE for c in reversed(_M_P)]  # p7..p0
    den = list(reversed(_M_Q))  # q7..q0
    return np.array(poly + num + den + [-_LOG2E, _MAGIC, _LN2, bias, sign], dtype=np.float64)


_FAST_CONSTANTS = _fast_constants()


@njit(inline="always")
def _unpack(k_arr):
    """The constants of _terms as a tuple of scalars, read once before the loops (see _FAST_CONSTANTS)."""
    return (
        k_arr[0], k_arr[1], k_arr[2], k_arr[3], k_arr[4], k_arr[5], k_arr[6], k_arr[7], k_arr[8], k_arr[9],
        k_arr[10], k_arr[11], k_arr[12], k_arr[13], k_arr[14], k_arr[15], k_arr[16], k_arr[17], k_arr[18],
        k_arr[19], k_arr[20], k_arr[21], k_arr[22], k_arr[23], k_arr[24], k_arr[25], k_arr[26], k_arr[27],
        k_arr[28], k_arr[29], k_arr[30], k_arr[31],
    )  # fmt: skip


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _terms(xj, ha, hb, ws_keep, hw, hwm, k, clamp):
    """(E 2^60, delta term) of one option at one level: d1 = 2 (xj hb + ha); the delta term is
    w N(d1) - p = (hwm +- hw) -+ w E R(|d1|) with hwm = w/2 - p, sign chosen by the sign bit of d1."""
    (x10, x9, x8, x7, x6, x5, x4, x3, x2, x1, x0,
     p7, p6, p5, p4, p3, p2, p1, p0,
     q7, q6, q5, q4, q3, q2, q1, q0,
     nlog2e, magic, ln2, bias, sign) = k  # fmt: skip
    bias_i = np.float64(bias).view(np.int64)
    sign_i = np.float64(sign).view(np.int64)
    hd = xj * hb + ha  # d1 / 2
    d = hd + hd
    s = hd * d  # d1^2 / 2
    if clamp:
        s = min(s, _CLAMP_S)
    nf = s * nlog2e + magic
    n = nf - magic  # round(-s log2(e))
    r = -s - n * ln2  # |r| <= ln(2)/2
    # Estrin's scheme: 4 FMA levels deep instead of Horner's 10 (the loop is bound by latency as much as by
    # FMA throughput); 13 multiplies instead of 10
    r2 = r * r
    r4 = r2 * r2
    t01 = x1 * r + x0
    t23 = x3 * r + x2
    t45 = x5 * r + x4
    t67 = x7 * r + x6
    t89 = x9 * r + x8
    t03 = t23 * r2 + t01
    t47 = t67 * r2 + t45
    t8a = x10 * r2 + t89
    p = t8a * (r4 * r4) + (t47 * r4 + t03)
    # E 2^60 = p 2^(n + 60): add n + 60 to the exponent field of p (n + 60 >= -1016 keeps it normal)
    big = np.int64(np.float64(p).view(np.int64) + ((np.float64(nf).view(np.int64) + bias_i) << 52)).view(np.float64)
    if clamp:
        big = 0.0 if s >= _ZERO_S else big
    db = np.float64(d).view(np.int64)
    sd = db & sign_i  # sign bit of d1
    y = np.int64(db ^ sd).view(np.float64)  # |d1|
    if clamp:
        y = min(y, _CLAMP_Y)
    # numerator and denominator split into even and odd parts in y^2: four independent Horner chains
    y2 = y * y
    num = ((p7 * y2 + p5) * y2 + p3) * y2 + p1
    num = num * y + (((p6 * y2 + p4) * y2 + p2) * y2 + p0)
    den = ((q7 * y2 + q5) * y2 + q3) * y2 + q1
    den = den * y + ((((y2 + q6) * y2 + q4) * y2 + q2) * y2 + q0)
    # -w if d1 >= 0 (N = 1 - E R) else +w (N = E R); w if d1 >= 0 else 0
    ws = np.int64(np.float64(ws_keep).view(np.int64) ^ sd).view(np.float64)
    base = hwm + np.int64(np.float64(hw).view(np.int64) ^ sd).view(np.float64)
    return big, base + (big * ws) * (num / den)


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def _accumulate_block(x, gacc, dacc, ha, hb, g, hw, hwm, live, k_arr):
    """Add every live option's E 2^60 g and delta term to the accumulators of the sorted log levels x.

    Per level the options are summed in input order, and an (option, level) term does not depend on which
    code path below produced it, so the result is the same for any split of the levels into blocks.
    """
    k = _unpack(k_arr)
    sign_i = np.float64(k_arr[31]).view(np.int64)
    m = x.size
    if m == 0:
        return
    x_lo = x[0]
    x_hi = x[m - 1]
    for i in range(ha.size):
        if not live[i]:
            continue
        hai = ha[i]
        hbi = hb[i]
        gi = g[i]
        hwi = hw[i]
        hwmi = hwm[i]
        ws_keep = np.int64(np.float64(hwi + hwi).view(np.int64) ^ sign_i).view(np.float64)  # -w
        d_lo = 2.0 * (x_lo * hbi + hai)
        d_hi = 2.0 * (x_hi * hbi + hai)
        if d_hi <= -_ZERO_D1 or d_lo >= _ZERO_D1:
            # every level in a tail: E = 0, the delta term is the constant -p (left) or w - p (right)
            c = hwmi - hwi if d_hi < 0.0 else hwmi + hwi
            if c != 0.0:
                for j in range(m):
                    dacc[j] = dacc[j] + c
        elif -d_lo < _FAST_D1 and d_hi < _FAST_D1:
            for j in range(m):
                e, t = _terms(x[j], hai, hbi, ws_keep, hwi, hwmi, k, False)
                gacc[j] = gacc[j] + gi * e
                dacc[j] = dacc[j] + t
        else:
            for j in range(m):
                e, t = _terms(x[j], hai, hbi, ws_keep, hwi, hwmi, k, True)
                gacc[j] = gacc[j] + gi * e
                dacc[j] = dacc[j] + t


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def fast_gauss_terms(d):
    """(exp(-d^2/2), N(d)) for each d exactly as the fused kernel computes them (its clamped code path), for
    tests: E is returned unscaled (it rounds once into the subnormal range below 2.2e-308)."""
    k_arr = _FAST_CONSTANTS.copy()
    k = _unpack(k_arr)
    e = np.empty_like(d)
    n = np.empty_like(d)
    for j in range(d.size):
        # one option with w = 1, p = 0 at ha = 0, hb = 1/2 (so d1 = d): its delta term is N(d)
        big, t = _terms(d[j], 0.0, 0.5, -1.0, 0.5, 0.5, k, True)
        e[j] = big * _UNSCALE
        n[j] = t
    return e, n


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


@njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def _accumulate_general(
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
        if premium_adjusted[i]:
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


@njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
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
    k_arr = _FAST_CONSTANTS.copy()
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
            k_arr,
        )
    for j in range(n_levels):
        gex_acc[j] = gex_acc[j] * _UNSCALE  # subnormal results round once, like the fast kernel's
    return gex_acc, delta_acc


# --- Python-side helpers -----------------------------------------------------------------------------


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _writable(a, dtype=np.float64) -> np.ndarray:
    """``a`` as a C-contiguous, writable array: numba types a read-only array (polars' ``to_numpy`` views) as
    another signature and compiles the kernel again for it; one signature per kernel compiles once."""
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.writeable else a.copy()


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
        _writable(a) for a in (forward, strike, sigma, tau, weight, put_weight)
    )
    level_ratio = _writable(level_ratio)
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
    pa = None if premium_adjusted is None else _writable(premium_adjusted, np.bool_)
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
