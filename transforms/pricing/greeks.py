"""Black-76 greeks of every option in an OPTION_SNAPSHOT frame (DESIGN.md 4.1).

Conventions, per option, from its own row only:

    F     = underlying_price, the per-expiry forward Deribit prices the option on (USD)
    K     = strike (USD);  sigma = mark_iv / 100;  r = 0
    tau   = (expiration_ts - snapshot_ts) / 365 days, ACT/365 from millisecond timestamps (years)
    d1    = (ln(F/K) + sigma^2 tau / 2) / (sigma sqrt(tau));   d2 = d1 - sigma sqrt(tau)

    delta  = N(d1) for a call, N(d1) - 1 for a put                     (per coin of contract size: x q x c = coins)
    gamma  = phi(d1) / (F sigma sqrt(tau))                             (delta per USD move of F)
    vanna  = d(delta)/d(sigma) = -phi(d1) d2 / sigma                   (delta per 1.00 of sigma = 100 vol points)
    charm_per_year = d(delta)/dt = phi(d1) d2 / (2 tau)                (delta per year of calendar time passing)
    charm_per_day  = charm_per_year / 365                              (delta per day passing)

Charm sign: charm is the change of delta as time passes (tau shrinks) with F and sigma held. It has
the sign of d2 for calls and puts alike (delta_put = delta_call - 1): as expiry nears, delta moves
towards its payoff value -- up towards 1 for an in-the-money call and towards 0 for an out-of-the-money
put (d2 > 0), down towards 0 for an out-of-the-money call and towards -1 for an in-the-money put (d2 < 0).

    delta_premium_adjusted = delta - mark_price (coin) for inverse (coin-settled) options: the delta of
    the position measured in coins when the premium itself is in coins. When mark_price is null the
    Black-76 coin price V/F is used. Linear (USDC-settled) options keep delta.

An option is priced (``is_priced``) when tau > 0, 0 < sigma finite, F > 0 and K > 0. Otherwise every
greek is 0 and ``unpriced_reason`` says why ('expired', 'no_iv', 'no_forward', 'bad_strike'); such
options contribute nothing to exposures. Deribit's ticker gamma is never used (it is rounded to 5
decimals); delta and gamma reproduce Deribit's greeks (tests/unit/test_greeks.py).
"""

from __future__ import annotations

import math

import polars as pl
from numba import vectorize

from transforms.frames.schemas import OPTION_GREEKS, OPTION_SNAPSHOT, check

MS_PER_YEAR = 365 * 86_400_000
DAYS_PER_YEAR = 365.0
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@vectorize(["float64(float64)"], cache=True)
def _ndtr(x):
    """Standard normal CDF N(x) to full double precision in both tails (libm erfc)."""
    return 0.5 * math.erfc(-x * 0.7071067811865476)


def tau_years() -> pl.Expr:
    """(expiration_ts - snapshot_ts) in years, ACT/365, from millisecond timestamps."""
    return (pl.col("expiration_ts") - pl.col("snapshot_ts")).dt.total_milliseconds().cast(pl.Float64) / MS_PER_YEAR


def unpriced_reason() -> pl.Expr:
    """Why an option gets no greeks (null when it is priced). Needs a ``tau_years`` column."""
    sigma = pl.col("mark_iv") / 100.0
    forward = pl.col("underlying_price")
    return (
        pl.when(pl.col("tau_years").is_null() | pl.col("tau_years").is_nan() | ~(pl.col("tau_years") > 0.0))
        .then(pl.lit("expired"))
        .when(sigma.is_null() | sigma.is_nan() | ~(sigma > 0.0) | sigma.is_infinite())
        .then(pl.lit("no_iv"))
        .when(forward.is_null() | forward.is_nan() | ~(forward > 0.0) | forward.is_infinite())
        .then(pl.lit("no_forward"))
        .when(pl.col("strike").is_null() | pl.col("strike").is_nan() | ~(pl.col("strike") > 0.0))
        .then(pl.lit("bad_strike"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def with_greeks(chain: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """OPTION_SNAPSHOT frame -> the same rows with Black-76 greeks added (OPTION_GREEKS contract).

    Lazy in, lazy out; columns outside the OPTION_SNAPSHOT contract are not carried through.
    Adds tau_years, is_priced, unpriced_reason, delta, gamma, vanna,
    charm_per_year, charm_per_day and delta_premium_adjusted (units in the module docstring).
    """
    check(chain, OPTION_SNAPSHOT, "with_greeks input")
    sigma = pl.col("mark_iv") / 100.0
    vs = sigma * pl.col("tau_years").sqrt()
    is_call = pl.col("option_type") == "call"
    d1 = pl.col("_d1")
    d2 = d1 - pl.col("_vs")
    pdf = (-0.5 * d1 * d1).exp() * _INV_SQRT_2PI
    # N(d1) - 1 written as -N(-d1): the same number, without cancellation for deep out-of-the-money puts
    delta = pl.when(is_call).then(_ndtr(d1)).otherwise(-_ndtr(-d1))
    k_over_f = pl.col("strike") / pl.col("underlying_price")
    model_coin_price = (
        pl.when(is_call).then(_ndtr(d1) - k_over_f * _ndtr(d2)).otherwise(k_over_f * _ndtr(-d2) - _ndtr(-d1))
    )
    coin_price = pl.when(pl.col("is_linear")).then(0.0).otherwise(pl.coalesce(pl.col("mark_price"), model_coin_price))

    def priced(expr: pl.Expr) -> pl.Expr:
        return pl.when(pl.col("is_priced")).then(expr).otherwise(0.0)

    out = (
        chain.with_columns(tau_years().alias("tau_years"))
        .with_columns(unpriced_reason().alias("unpriced_reason"))
        .with_columns(pl.col("unpriced_reason").is_null().alias("is_priced"))
        .with_columns(priced(vs).alias("_vs"))
        .with_columns(
            priced(
                ((pl.col("underlying_price") / pl.col("strike")).log() + 0.5 * pl.col("_vs") ** 2) / pl.col("_vs")
            ).alias("_d1")
        )
        .with_columns(
            priced(delta).alias("delta"),
            priced(pdf / (pl.col("underlying_price") * pl.col("_vs"))).alias("gamma"),
            priced(-pdf * d2 / sigma).alias("vanna"),
            priced(pdf * d2 / (2.0 * pl.col("tau_years"))).alias("charm_per_year"),
            priced(delta - coin_price).alias("delta_premium_adjusted"),
        )
        .with_columns((pl.col("charm_per_year") / DAYS_PER_YEAR).alias("charm_per_day"))
        .drop("_vs", "_d1")
        .select(list(OPTION_GREEKS))
    )
    check(out, OPTION_GREEKS, "with_greeks output")
    return out


__all__ = ["DAYS_PER_YEAR", "MS_PER_YEAR", "tau_years", "unpriced_reason", "with_greeks"]
