"""Scalar, obviously-correct references for the GEX engine: one option at a time, ``math`` only.

These are the oracles the vectorised code is tested against. They follow DESIGN.md 4.1/4.3 literally:
Black-76 on the option's forward, r = 0; at spot level S' every forward moves to F' = F S'/S0.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

SQRT2 = math.sqrt(2.0)
SQRT_2PI = math.sqrt(2.0 * math.pi)


def norm_cdf(x: float) -> float:
    """N(x), accurate in both tails (erfc, not 1 + erf)."""
    return 0.5 * math.erfc(-x / SQRT2)


def norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / SQRT_2PI


@dataclass(frozen=True)
class Greeks:
    d1: float
    d2: float
    delta: float  # N(d1) call, N(d1) - 1 put
    gamma: float  # per USD of forward
    vanna: float  # d delta / d sigma
    charm_per_year: float  # d delta / d t (time passing)
    price_usd: float  # Black-76 premium in USD


ZERO = Greeks(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def black76(forward: float, strike: float, sigma: float, tau: float, is_call: bool) -> Greeks:
    """Black-76 greeks of one option, r = 0; zeros when tau <= 0 or sigma <= 0 (contributes nothing)."""
    if not (tau > 0.0 and sigma > 0.0 and forward > 0.0 and strike > 0.0):
        return ZERO
    vol_sqrt_t = sigma * math.sqrt(tau)
    d1 = (math.log(forward / strike) + 0.5 * sigma * sigma * tau) / vol_sqrt_t
    d2 = d1 - vol_sqrt_t
    pdf = norm_pdf(d1)
    if is_call:
        delta = norm_cdf(d1)
        price = forward * norm_cdf(d1) - strike * norm_cdf(d2)
    else:
        delta = -norm_cdf(-d1)  # = N(d1) - 1
        price = strike * norm_cdf(-d2) - forward * norm_cdf(-d1)
    return Greeks(
        d1=d1,
        d2=d2,
        delta=delta,
        gamma=pdf / (forward * vol_sqrt_t),
        vanna=-pdf * d2 / sigma,
        charm_per_year=pdf * d2 / (2.0 * tau),
        price_usd=price,
    )


@dataclass(frozen=True)
class Option:
    """One option of a reference chain: forward and strike USD, sigma decimal, tau years,
    weight = dealer contracts x contract size (coins)."""

    forward: float
    strike: float
    sigma: float
    tau: float
    weight: float
    is_call: bool
    is_linear: bool = False
    expiry: int = 0  # groups options into expiries for the sticky-moneyness smile


def smile_sigma(option: Option, ratio: float, chain: list[Option]) -> float:
    """Sticky-moneyness vol of ``option`` at spot ratio S'/S0: its own sigma plus the change of its
    expiry's smile (linear in x = ln(K/F), flat outside the nodes; equal-x nodes averaged) between
    its moneyness now, x, and at S', x - ln(S'/S0)."""
    nodes: dict[float, list[float]] = {}
    for o in chain:
        if o.expiry == option.expiry and o.tau > 0.0 and o.sigma > 0.0:
            nodes.setdefault(math.log(o.strike / o.forward), []).append(o.sigma)
    if len(nodes) < 2:
        return option.sigma
    xs = sorted(nodes)
    ys = [sum(nodes[x]) / len(nodes[x]) for x in xs]

    def smile(x: float) -> float:
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        j = bisect.bisect_right(xs, x)
        x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0)

    x = math.log(option.strike / option.forward)
    return option.sigma + smile(x - math.log(ratio)) - smile(x)


def profile_point(
    chain: list[Option],
    ratio: float,
    *,
    premium_adjusted: bool = False,
    sticky_moneyness: bool = False,
) -> tuple[float, float]:
    """(dealer GEX in USD per 1 %, dealer delta in coins) at spot S' = ratio * S0, one option at a time."""
    gex = 0.0
    delta = 0.0
    for o in chain:
        f = o.forward * ratio
        sigma = smile_sigma(o, ratio, chain) if sticky_moneyness else o.sigma
        g = black76(f, o.strike, sigma, o.tau, o.is_call)
        gex += o.weight * g.gamma * f * f * 0.01
        if premium_adjusted and not o.is_linear:
            delta += o.weight * (g.delta - g.price_usd / f)
        else:
            delta += o.weight * g.delta
    return gex, delta


def profile(chain: list[Option], ratios, **kwargs) -> tuple[list[float], list[float]]:
    points = [profile_point(chain, r, **kwargs) for r in ratios]
    return [p[0] for p in points], [p[1] for p in points]


# --- depth (issue 15): exposure by expiry / strike / tenor, one option at a time ------------------------------

DAYS_PER_YEAR = 365.0


@dataclass(frozen=True)
class Held:
    """One option of a chain with its dealer position, for the depth references."""

    option: Option
    strike: float
    expiry_ms: int
    is_call: bool
    open_interest: float
    contract_size: float


def dealer_exposure(h: Held) -> dict[str, float]:
    """Dealer-signed GEX (USD per 1 %), delta (coins), vanna (coins per vol point), charm (coins per day) of one
    option, and the USD forms (coins x F)."""
    o = h.option
    g = black76(o.forward, o.strike, o.sigma, o.tau, o.is_call)
    out = {
        "gex_usd": o.weight * g.gamma * o.forward * o.forward * 0.01,
        "dealer_delta_coins": o.weight * g.delta,
        "vanna_coins_per_vol": o.weight * g.vanna / 100.0,
        "charm_coins_per_day": o.weight * g.charm_per_year / DAYS_PER_YEAR,
    }
    out["dealer_delta_usd"] = out["dealer_delta_coins"] * o.forward
    out["vanna_usd_per_vol"] = out["vanna_coins_per_vol"] * o.forward
    out["charm_usd_per_day"] = out["charm_coins_per_day"] * o.forward
    return out


def summed(held: list[Held], key) -> dict:
    """{key(h): {measure: (sum, sum of |terms|)}} over ``held``; the second number judges a sum that cancels."""
    out: dict = {}
    for h in held:
        bucket = out.setdefault(key(h), {})
        for name, value in dealer_exposure(h).items():
            s, a = bucket.get(name, (0.0, 0.0))
            bucket[name] = (s + value, a + abs(value))
    return out


def zero_gamma_roots(options: list[Option], ratios: list[float], tol: float = 1e-15) -> list[float]:
    """S'/S0 where the scalar GEX profile changes sign between neighbouring ``ratios``, each found by bisection
    until the bracket is ``tol`` relative wide."""

    def gex(r: float) -> float:
        return profile_point(options, r)[0]

    values = [gex(r) for r in ratios]
    roots = []
    for a, b, fa, fb in zip(ratios[:-1], ratios[1:], values[:-1], values[1:], strict=True):
        if fa == 0.0 or fb == 0.0 or (fa < 0.0) == (fb < 0.0):
            continue
        while b - a > tol * b:
            m = 0.5 * (a + b)
            fm = gex(m)
            if fm == 0.0:
                a = b = m
            elif (fm < 0.0) == (fa < 0.0):
                a, fa = m, fm
            else:
                b = m
        roots.append(0.5 * (a + b))
    return roots


def walls(held: list[Held]) -> tuple[float | None, float | None, float | None]:
    """(call wall, put wall, abs-gamma strike): strikes with the largest gamma*OI*c*F^2*0.01 (ties: lower strike)."""
    calls: dict[float, float] = {}
    puts: dict[float, float] = {}
    for h in held:
        o = h.option
        g = black76(o.forward, o.strike, o.sigma, o.tau, o.is_call)
        value = g.gamma * h.open_interest * h.contract_size * o.forward * o.forward * 0.01
        side = calls if h.is_call else puts
        side[h.strike] = side.get(h.strike, 0.0) + value
        (puts if h.is_call else calls).setdefault(h.strike, 0.0)
    both = {k: calls[k] + puts[k] for k in calls}

    def best(d: dict[float, float]) -> float | None:
        if not d or max(d.values()) <= 0.0:
            return None
        return min(d, key=lambda k: (-d[k], k))

    return best(calls), best(puts), best(both)
