"""The per-element exp and N() shared by every GEX kernel, and the block loop of the fused sticky-strike kernel.

Why hand-written exp and N(): numba without SVML (as installed from PyPI) has, so ``math.exp``/``math.erfc`` are
scalar libm calls that stop LLVM from vectorising (benchmarks/bench_kernel_anatomy.py). The fused kernel
(``kernels.gamma_delta_profile``) evaluates every (option, level) with the same straight-line code, which
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

import numpy as np
from numba import njit

# LLVM fast-math flags: only 'contract' (fused multiply-add). Measured (benchmarks/bench_profile.py):
# it is the one flag that matters on the fused kernel (figures: benchmarks/RESULTS.md, GEX kernel);
# nsz/arcp/nnan/ninf add nothing measurable, and 'reassoc' (part of fastmath=True) must not be added:
# it lets LLVM re-associate the rounding (x + _MAGIC) - _MAGIC in the exponential's range reduction
# (measured: exp off by up to 22 %, the profile by 28 %). Leaving it out also keeps the order of summation
# exactly as written; 'nnan'/'ninf' out keeps the NaN guards.
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
# with an address load and a broadcast per use, which it does for literals (slower in bench_profile).

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


def njit_variant(fn, variant: str):
    """``fn`` compiled as every kernel here is (njit, FASTMATH, numpy error model, cached) under a name of its own:
    its qualname + '_' + ``variant``.

    For the factories that compile one body per value of a closure constant (:func:`_accumulator`). numba names a
    compiled function's machine-code symbols, and its cache files, by qualname plus a counter that is unique only
    within one process. Two variants of one qualname compiled by two processes could so get the same symbol name,
    and a third process that loaded both from the cache ran one variant's code for the other: wrong numbers, for
    good (tests/integration/test_kernel_cache.py). A qualname per variant gives each its own symbols and files."""
    fn.__qualname__ = f"{fn.__qualname__}_{variant}"
    return njit(fastmath=FASTMATH, error_model="numpy", cache=True)(fn)


def writable(a, dtype=np.float64) -> np.ndarray:
    """``a`` as a C-contiguous, writable array of ``dtype``, for every kernel call of the package: numba types a
    read-only array (polars' ``to_numpy`` views) as another signature and compiles the kernel again for it; one
    signature per kernel compiles once (tests/unit/test_kernels.py checks both callers)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.writeable else a.copy()


def _accumulator(pair: bool):
    """The block loop, compiled once per value of ``pair`` (a closure constant: numba drops the other branch).

    Adds every live option's E 2^60 g and delta term to the accumulators of the sorted log levels x, and with
    ``pair`` those of a second weighting (g2, hw2, hwm2) of the same options to (gacc2, dacc2), so each pair
    of accumulators ends exactly as the single loop leaves it (LLVM merges the weight-free part of the two
    inlined _terms). Per level the options are summed in input order, and a term does not depend on which
    code path produced it, so the result is the same for any split of the levels into blocks."""

    def accumulate(x, gacc, dacc, gacc2, dacc2, ha, hb, g, hw, hwm, g2, hw2, hwm2, live, k_arr):
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
            hai, hbi = ha[i], hb[i]
            gi, hwi, hwmi = g[i], hw[i], hwm[i]
            gi2, hwi2, hwmi2 = (g2[i], hw2[i], hwm2[i]) if pair else (0.0, 0.0, 0.0)
            ws_keep = np.int64(np.float64(hwi + hwi).view(np.int64) ^ sign_i).view(np.float64)  # -w
            ws_keep2 = np.int64(np.float64(hwi2 + hwi2).view(np.int64) ^ sign_i).view(np.float64)
            d_lo = 2.0 * (x_lo * hbi + hai)
            d_hi = 2.0 * (x_hi * hbi + hai)
            if d_hi <= -_ZERO_D1 or d_lo >= _ZERO_D1:
                # every level in a tail: E = 0, the delta term is the constant -p (left) or w - p (right)
                c = hwmi - hwi if d_hi < 0.0 else hwmi + hwi
                c2 = hwmi2 - hwi2 if d_hi < 0.0 else hwmi2 + hwi2
                if c != 0.0:
                    for j in range(m):
                        dacc[j] = dacc[j] + c
                if pair and c2 != 0.0:
                    for j in range(m):
                        dacc2[j] = dacc2[j] + c2
            elif -d_lo < _FAST_D1 and d_hi < _FAST_D1:
                for j in range(m):
                    e, t = _terms(x[j], hai, hbi, ws_keep, hwi, hwmi, k, False)
                    gacc[j] = gacc[j] + gi * e
                    dacc[j] = dacc[j] + t
                    if pair:
                        _e, t2 = _terms(x[j], hai, hbi, ws_keep2, hwi2, hwmi2, k, False)
                        gacc2[j] = gacc2[j] + gi2 * e
                        dacc2[j] = dacc2[j] + t2
            else:
                for j in range(m):
                    e, t = _terms(x[j], hai, hbi, ws_keep, hwi, hwmi, k, True)
                    gacc[j] = gacc[j] + gi * e
                    dacc[j] = dacc[j] + t
                    if pair:
                        _e, t2 = _terms(x[j], hai, hbi, ws_keep2, hwi2, hwmi2, k, True)
                        gacc2[j] = gacc2[j] + gi2 * e
                        dacc2[j] = dacc2[j] + t2

    return njit_variant(accumulate, "pair" if pair else "one")


_accumulate_one = _accumulator(False)
_accumulate_pair = _accumulator(True)


@njit(inline="always")
def _accumulate_block(x, gacc, dacc, ha, hb, g, hw, hwm, live, k_arr):
    """The block loop for one weighting (see :func:`_accumulator`)."""
    _accumulate_one(x, gacc, dacc, gacc, dacc, ha, hb, g, hw, hwm, g, hw, hwm, live, k_arr)


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
