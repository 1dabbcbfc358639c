"""Threshold rebalancing (issue 15): the ladder of prices at which a band-hedging dealer re-hedges, and what the
band does to the volume traded over a move.

Pure. Model and assumptions: the dealer book's delta D(S) (coins, sticky-strike re-pricing of the stored book,
forwards moving with spot, no time passing) is hedged to zero at S0. The dealer does not re-hedge continuously but
only when the unhedged delta D(S) - D(S_r) since the last re-hedge at S_r reaches the band b (coins), and then
trades it back to zero in one order at that price:

    rung k       S_k = the first price beyond S_{k-1} (moving away from S0) with |D(S_k) - D(S_{k-1})| = b
    order k      -(D(S_k) - D(S_{k-1})) = -+b coins (> 0 = dealers buy), USD = coins x S_k

so every order is exactly b coins; its sign is that of -dD (long gamma: sell on the way up, buy on the way down).
A band can be given in coins or as a fraction of the dealer gamma at spot, |GEX(S0)| / S0 = the coins D changes by
for a 1 % move (``band_coins = fraction x |total GEX| / S0``). Prices move one way (a path that turns back inside
a band trades nothing more); the band is symmetric; orders fill at the trigger price (no slippage); rungs are
found on a 0.05 % grid and refined by Brent's method (two crossings inside one grid step are not seen).

Over a move from S0 to S_end the rungs crossed trade sum_k order_k = -(D(S_n) - D(S0)), which differs from the
continuous hedge's -(D(S_end) - D(S0)) by less than b; as b -> 0 the ladder converges to the continuous flow, and
its traded volume (sum |order_k|) to the total variation of D along the path.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from transforms.gex.exposure import GROUP, _exposures, _Profile, _spot
from transforms.gex.levels import _brent

LADDER_STEP = 0.0005  # the search grid, as a fraction of spot

HEDGE_LADDER = {
    "currency": pl.String,
    "snapshot_ts": pl.Datetime("ms", "UTC"),
    "model": pl.String,
    "band_coins": pl.Float64,
    "direction": pl.String,  # 'up' | 'down' from spot
    "rung": pl.Int64,  # 1, 2, ... moving away from spot
    "price_level": pl.Float64,  # S_k, USD
    "pct_from_spot": pl.Float64,
    "order_coins": pl.Float64,  # -(D(S_k) - D(S_{k-1})), > 0 = dealers buy; |order| = band
    "order_usd": pl.Float64,  # order_coins x S_k
    "cumulative_coins": pl.Float64,  # sum of the orders so far
    "continuous_flow_coins": pl.Float64,  # -(D(S_k) - D(S0)): what a continuous hedger has traded by S_k
}

# One row per (currency, snapshot_ts, model, band_gamma, direction) of :func:`ladder_volume`.
LADDER_VOLUME = {
    "currency": pl.String,
    "snapshot_ts": pl.Datetime("ms", "UTC"),
    "model": pl.String,
    "band_gamma": pl.Float64,  # the band as a fraction of the gamma at spot
    "band_coins": pl.Float64,
    "direction": pl.String,  # 'up' | 'down'
    "rungs": pl.Int64,  # orders triggered over the move
    "traded_coins": pl.Float64,  # sum |order|
    "net_coins": pl.Float64,  # sum order (> 0 = dealers bought)
    "continuous_net_coins": pl.Float64,  # -(D(S_end) - D(S0))
    "continuous_traded_coins": pl.Float64,  # total variation of D along the path (0.05 % grid)
}


def ladder(delta, band: float, move: float, step: float = LADDER_STEP) -> list[tuple[float, float]]:
    """[(ratio S_k/S0, order coins), ...] from spot to S0 (1 + move) (move < 0: downwards) for a dealer delta
    ``delta(ascending ratio array) -> coins`` and a band in coins."""
    if not band > 0.0:
        raise ValueError(f"band must be a positive number of coins, got {band!r}")
    n = max(1, int(np.ceil(abs(move) / step - 1e-9)))
    ratios = 1.0 + np.sign(move) * np.minimum(np.arange(n + 1) * step, abs(move))  # in the order of travel
    values = delta(ratios) if move > 0 else delta(ratios[::-1])[::-1]

    def at(r: float) -> float:
        return float(delta(np.array([r]))[0])

    rungs: list[tuple[float, float]] = []
    ref, pos, i = float(values[0]), 1.0, 1
    while i < ratios.size:
        hit = np.flatnonzero(np.abs(values[i:] - ref) >= band)
        if hit.size == 0:
            break
        j = i + int(hit[0])
        left = pos if j == i else float(ratios[j - 1])

        def f(r: float, ref=ref) -> float:
            return abs(at(r) - ref) - band

        fl, fr = f(left), f(float(ratios[j]))
        r = float(ratios[j]) if fr == 0.0 or fl >= 0.0 else _brent(f, left, float(ratios[j]), fl, fr, 1e-13)
        d = at(r)
        rungs.append((r, -(d - ref)))
        ref, pos = d, r
        i = j + 1 if r == ratios[j] else j
    return rungs


def _delta_of(group: pl.DataFrame, greeks: pl.DataFrame):
    profile = _Profile(group, greeks, "sticky_strike", "forward")
    return lambda ratios: profile(np.asarray(ratios, dtype=np.float64))[1]


def band_from_gamma(group: pl.DataFrame, fraction: float) -> float:
    """The band in coins for ``fraction`` of the dealer gamma at spot (|total GEX| / S0: coins per 1 % move)."""
    return fraction * abs(float(group["gex_usd"].sum())) / _spot(group)


def hedge_ladder(chain, positions, *, band_coins=None, band_gamma=None, move_pct: float = 5.0) -> pl.DataFrame:
    """The rungs up to +move_pct % and down to -move_pct % of every (currency, snapshot_ts, model) book (HEDGE_LADDER),
    with the band in coins or as a fraction of the gamma at spot (exactly one of the two)."""
    if (band_coins is None) == (band_gamma is None):
        raise ValueError("give the band either in coins or as a fraction of the gamma at spot")
    greeks, x = _exposures(chain, positions)
    rows = []
    for key, group in x.partition_by(GROUP, as_dict=True, maintain_order=True).items():
        spot, delta = _spot(group), _delta_of(group, greeks)
        band = band_coins if band_coins is not None else band_from_gamma(group, band_gamma)
        if not band > 0.0:
            continue
        d0 = float(delta(np.array([1.0]))[0])
        for direction, move in (("up", move_pct / 100.0), ("down", -move_pct / 100.0)):
            total = 0.0
            for k, (r, order) in enumerate(ladder(delta, band, move), start=1):
                total += order
                continuous = -(float(delta(np.array([r]))[0]) - d0)
                rows.append(
                    (*key, band, direction, k, r * spot, (r - 1.0) * 100.0, order, order * r * spot, total, continuous)
                )
    return pl.DataFrame(rows, schema=HEDGE_LADDER, orient="row")


def ladder_volume(chain, positions, *, bands_gamma=(0.05, 0.1, 0.25, 0.5, 1.0), move_pct: float = 5.0) -> pl.DataFrame:
    """Per book, band and direction: the rungs and coins a band hedger trades over a +-move_pct % move against the
    continuous hedger's net flow and traded volume (the total variation of D on the 0.05 % grid)."""
    greeks, x = _exposures(chain, positions)
    rows = []
    for key, group in x.partition_by(GROUP, as_dict=True, maintain_order=True).items():
        delta = _delta_of(group, greeks)
        for fraction in bands_gamma:
            band = band_from_gamma(group, fraction)
            if not band > 0.0:
                continue
            for direction, move in (("up", move_pct / 100.0), ("down", -move_pct / 100.0)):
                rungs = ladder(delta, band, move)
                grid = 1.0 + np.linspace(0.0, move, int(round(abs(move) / LADDER_STEP)) + 1)
                path = delta(np.sort(grid))
                rows.append(
                    {
                        "currency": key[0],
                        "snapshot_ts": key[1],
                        "model": key[2],
                        "band_gamma": fraction,
                        "band_coins": band,
                        "direction": direction,
                        "rungs": len(rungs),
                        "traded_coins": float(sum(abs(o) for _, o in rungs)),
                        "net_coins": float(sum(o for _, o in rungs)),
                        "continuous_net_coins": -(
                            float(path[-1] if move > 0 else path[0]) - float(delta(np.array([1.0]))[0])
                        ),
                        "continuous_traded_coins": float(np.abs(np.diff(path)).sum()),
                    }
                )
    return pl.DataFrame(rows, schema=LADDER_VOLUME, orient="row") if rows else pl.DataFrame(schema=LADDER_VOLUME)


__all__ = ["HEDGE_LADDER", "LADDER_VOLUME", "LADDER_STEP", "band_from_gamma", "hedge_ladder", "ladder", "ladder_volume"]
