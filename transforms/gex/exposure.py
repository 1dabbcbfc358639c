"""Dealer gamma exposure, the re-priced profile, hedge flows and key levels (DESIGN.md 4.3).

Every function takes ``(chain, positions)``: an OPTION_SNAPSHOT frame (any number of
(currency, snapshot_ts) groups) and a DEALER_POSITION frame from any positioning model (any number of
models). They are joined on (currency, snapshot_ts, instrument_name) and every output is per
(currency, snapshot_ts, model); nothing here looks at the model name.

Units and signs, for dealer position q_i (contracts, + = long) and contract size c_i (coins):

    GEX_i           = q_i c_i gamma_i F_i^2 0.01    USD change of dealer delta per 1 % move; summed > 0 =
                                                    dealers long gamma: they sell rallies and buy dips (dampening)
    S0              = index_price (spot); levels S' = S0 (1 + k step), k = -n..n, S0 itself included exactly
    F_i'            = F_i S'/S0                     forwards move with spot; vol sticky-strike by default
    D(S')           = sum q_i c_i delta_i(F_i')     dealer delta, coins
    hedge_flow(S')  = -(D(S') - D(S0))              coins dealers trade to stay hedged from S0 to S'; > 0 = buy
    hedge_flow_usd  = hedge_flow(S') S'
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from transforms.frames.schemas import DEALER_POSITION, GEX_BY_STRIKE, GEX_PROFILE, UTC_TS, check
from transforms.gex.levels import GROUP, _levels_row, _levels_table, zero_gamma_roots
from transforms.pricing.greeks import with_greeks
from transforms.pricing.kernels import profile_at_levels, sticky_moneyness_sigma_grid

_JOIN = ["currency", "snapshot_ts", "instrument_name"]
VOL_MODELS = ("sticky_strike", "sticky_moneyness")
DELTA_CONVENTIONS = ("forward", "premium_adjusted")


# --- grid ------------------------------------------------------------------------------------------------


def _grid_steps(half_width: float, step: float) -> np.ndarray:
    if not (math.isfinite(step) and step > 0.0):
        raise ValueError(f"step must be a positive number, got {step!r}")
    if not (math.isfinite(half_width) and 0.0 <= half_width < 1.0):
        raise ValueError(f"half_width must be in [0, 1), got {half_width!r}")
    n = int(math.floor(half_width / step + 1e-9))
    return np.arange(-n, n + 1, dtype=np.float64) * step


def price_grid(spot: float, half_width: float = 0.25, step: float = 0.0025) -> np.ndarray:
    """Spot levels S0 (1 + k step) for |k step| <= half_width, ascending; S0 itself is included exactly.

    With the defaults: 201 levels from 0.75 S0 to 1.25 S0 in 0.25 % steps.
    """
    if not (math.isfinite(spot) and spot > 0.0):
        raise ValueError(f"spot must be a positive number, got {spot!r}")
    return spot * (1.0 + _grid_steps(half_width, step))


# --- shared preparation ----------------------------------------------------------------------------------


def _check_options(vol_model: str, delta_convention: str) -> None:
    if vol_model not in VOL_MODELS:
        raise ValueError(f"vol_model must be one of {', '.join(VOL_MODELS)}, got {vol_model!r}")
    if delta_convention not in DELTA_CONVENTIONS:
        raise ValueError(f"delta_convention must be one of {', '.join(DELTA_CONVENTIONS)}, got {delta_convention!r}")


def _exposures(
    chain: pl.DataFrame | pl.LazyFrame, positions: pl.DataFrame | pl.LazyFrame, greek_columns=None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(greeks of the whole chain, one row per (currency, snapshot_ts, model, instrument) with weights).

    Adds ``weight_coins`` = dealer_contracts * contract_size and ``gex_usd`` = weight_coins * gamma * F^2 * 0.01
    (0 for unpriced options). ``greek_columns`` (default: all) limits the greeks columns carried into the
    join (the same rows and values, less to sort and copy).
    """
    check(positions, DEALER_POSITION, "positions")
    greeks = with_greeks(chain.lazy()).collect()
    weight = pl.col("dealer_contracts") * pl.col("contract_size")
    needed = ["contract_size", "is_priced", "gamma", "underlying_price", "delta", "vanna", "charm_per_day"]
    carried = greeks if greek_columns is None else greeks.select(list(dict.fromkeys([*_JOIN, *needed, *greek_columns])))
    joined = (
        positions.lazy()
        .select(*_JOIN, "model", "dealer_contracts")
        .join(carried.lazy(), on=_JOIN, how="inner")
        .with_columns(weight.alias("weight_coins"))
        .with_columns(
            pl.when(pl.col("is_priced"))
            .then(pl.col("weight_coins") * pl.col("gamma") * pl.col("underlying_price") ** 2 * 0.01)
            .otherwise(0.0)
            .alias("gex_usd")
        )
        .with_columns(
            (pl.col("weight_coins") * pl.col("delta")).alias("delta_coins"),
            (pl.col("weight_coins") * pl.col("vanna") * 0.01).alias("vanna_coins_per_vol"),
            (pl.col("weight_coins") * pl.col("charm_per_day")).alias("charm_coins_per_day"),
        )
        .sort(*GROUP, "instrument_name")
        .collect()
    )
    return greeks, joined


def _spot(group: pl.DataFrame) -> float:
    spots = group["index_price"].drop_nulls().unique()
    if spots.len() != 1:
        key = f"{group['currency'][0]} {group['snapshot_ts'][0]}"
        raise ValueError(f"need exactly one index_price per snapshot, {key} has {spots.len()}")
    return float(spots[0])


class _Profile:
    """GEX(S') and D(S') of one (currency, snapshot_ts, model) group as a function of S'/S0."""

    def __init__(self, group: pl.DataFrame, greeks: pl.DataFrame, vol_model: str, delta_convention: str):
        live = group.filter(pl.col("is_priced") & (pl.col("weight_coins") != 0.0))
        is_put = pl.col("option_type") == "put"
        live = live.with_columns(
            (pl.col("mark_iv") / 100.0).alias("sigma"),
            pl.when(is_put).then(pl.col("weight_coins")).otherwise(0.0).alias("put_weight"),
        )
        self.fast = vol_model == "sticky_strike" and delta_convention == "forward"
        if self.fast:
            # Options with identical Black-76 inputs (a call and a put at one strike with the same IV)
            # share d1: merge them, keeping the put part apart for the -1 of the put delta. Exact.
            live = live.group_by("underlying_price", "strike", "sigma", "tau_years", maintain_order=True).agg(
                pl.col("weight_coins").sum(), pl.col("put_weight").sum()
            )
        self.forward = live["underlying_price"].to_numpy()
        self.strike = live["strike"].to_numpy()
        self.sigma = live["sigma"].to_numpy()
        self.tau = live["tau_years"].to_numpy()
        self.weight = live["weight_coins"].to_numpy()
        self.put_weight = live["put_weight"].to_numpy()
        self.n_options = live.height
        self.premium_adjusted = None
        self.smile = None
        if not self.fast:
            if delta_convention == "premium_adjusted":
                self.premium_adjusted = (~live["is_linear"]).to_numpy()
            if vol_model == "sticky_moneyness":
                nodes = greeks.filter(
                    (pl.col("currency") == group["currency"][0])
                    & (pl.col("snapshot_ts") == group["snapshot_ts"][0])
                    & pl.col("is_priced")
                )
                self.smile = (
                    live["expiration_ts"].dt.epoch("ms").to_numpy(),
                    np.log(self.strike / self.forward),
                    nodes["expiration_ts"].dt.epoch("ms").to_numpy(),
                    np.log(nodes["strike"].to_numpy() / nodes["underlying_price"].to_numpy()),
                    nodes["mark_iv"].to_numpy() / 100.0,
                )

    def __call__(self, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ratio = np.asarray(ratio, dtype=np.float64)
        if self.n_options == 0:
            return np.zeros(ratio.size), np.zeros(ratio.size)
        sigma_grid = None
        if self.smile is not None:
            group, x, node_group, node_x, node_sigma = self.smile
            sigma_grid = sticky_moneyness_sigma_grid(
                group, x, self.sigma, node_group, node_x, node_sigma, np.log(ratio)
            )
        return profile_at_levels(
            self.forward,
            self.strike,
            self.sigma,
            self.tau,
            self.weight,
            self.put_weight,
            ratio,
            sigma_grid=sigma_grid,
            premium_adjusted=self.premium_adjusted,
        )


def _with_keys(frame: pl.DataFrame, key: tuple) -> pl.DataFrame:
    currency, snapshot_ts, model = key
    return frame.with_columns(
        pl.lit(currency, dtype=pl.String).alias("currency"),
        pl.lit(snapshot_ts, dtype=UTC_TS).alias("snapshot_ts"),
        pl.lit(model, dtype=pl.String).alias("model"),
    )


# --- public tables -----------------------------------------------------------------------------------------


def gex_by_strike(chain: pl.DataFrame | pl.LazyFrame, positions: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Dealer GEX per (currency, snapshot_ts, model, expiration_ts, strike), plus rows with
    expiration_ts NULL summing all expiries (GEX_BY_STRIKE). USD per 1 % move, dealer-signed; open
    interest (contracts) of the calls and puts at the strike alongside."""
    _, x = _exposures(chain, positions)
    return _by_strike(x)


def _by_strike(x: pl.DataFrame) -> pl.DataFrame:
    is_call = pl.col("option_type") == "call"
    aggs = [
        pl.col("gex_usd").filter(is_call).sum().alias("call_gex_usd"),
        pl.col("gex_usd").filter(~is_call).sum().alias("put_gex_usd"),
        pl.col("open_interest").filter(is_call).sum().alias("call_open_interest"),
        pl.col("open_interest").filter(~is_call).sum().alias("put_open_interest"),
        pl.col("vanna_coins_per_vol").sum(),
        (pl.col("vanna_coins_per_vol") * pl.col("underlying_price")).sum().alias("vanna_usd_per_vol"),
        pl.col("charm_coins_per_day").sum(),
        (pl.col("charm_coins_per_day") * pl.col("underlying_price")).sum().alias("charm_usd_per_day"),
    ]
    per_expiry = x.group_by(*GROUP, "expiration_ts", "strike").agg(aggs)
    all_expiries = (
        x.group_by(*GROUP, "strike").agg(aggs).with_columns(pl.lit(None, dtype=UTC_TS).alias("expiration_ts"))
    )
    out = (
        pl.concat([per_expiry, all_expiries.select(per_expiry.columns)])
        .with_columns((pl.col("call_gex_usd") + pl.col("put_gex_usd")).alias("net_gex_usd"))
        .select(list(GEX_BY_STRIKE))
        .sort(*GROUP, "expiration_ts", "strike", nulls_last=True)
    )
    check(out, GEX_BY_STRIKE, "gex_by_strike")
    return out


def gex_profile(
    chain: pl.DataFrame | pl.LazyFrame,
    positions: pl.DataFrame | pl.LazyFrame,
    *,
    half_width: float = 0.25,
    step: float = 0.0025,
    vol_model: str = "sticky_strike",
    delta_convention: str = "forward",
) -> pl.DataFrame:
    """Dealer GEX, dealer delta and hedge flow at every spot level of :func:`price_grid` (GEX_PROFILE).

    ``vol_model``: 'sticky_strike' (each option keeps its IV) or 'sticky_moneyness' (each option moves
    along its expiry's smile, linear in ln(K/F), flat outside; its own IV at spot). ``delta_convention``:
    'forward' (Black-76 delta, coins) or 'premium_adjusted' (inverse options: delta - V(F')/F').
    """
    _check_options(vol_model, delta_convention)
    greeks, x = _exposures(chain, positions)
    frames, _ = _per_group(greeks, x, half_width, step, vol_model, delta_convention, profiles=True, levels=False)
    return _profile_table(frames)


def _per_group(greeks, x, half_width, step, vol_model, delta_convention, *, profiles: bool, levels: bool):
    """Per (currency, snapshot_ts, model) group of ``x``: its re-priced profile, evaluated once on the grid and
    turned into gex_profile rows (``profiles``) and/or its key-levels row (``levels``: zero gamma refined on
    the same profile)."""
    steps = _grid_steps(half_width, step)
    ratio = 1.0 + steps
    frames, rows = [], []
    for key, group in x.partition_by(GROUP, as_dict=True, maintain_order=True).items():
        spot = _spot(group)
        profile = _Profile(group, greeks, vol_model, delta_convention)
        gex, delta = profile(ratio)
        if profiles:
            frames.append(_profile_frame(key, spot, steps, gex, delta))
        if levels:
            rows.append(_levels_row(key, group, spot, profile, ratio, gex))
    return frames, rows


def _profile_frame(key: tuple, spot: float, steps: np.ndarray, gex: np.ndarray, delta: np.ndarray) -> pl.DataFrame:
    """One group's gex_profile rows from its profile (gex, delta) on the grid ``1 + steps``."""
    levels_usd = spot * (1.0 + steps)
    centre = int(np.flatnonzero(steps == 0.0)[0])
    flow = delta[centre] - delta  # -(D(S') - D(S0)), exactly 0 at S0
    frame = pl.DataFrame(
        {
            "price_level": levels_usd,
            "pct_from_spot": steps * 100.0,
            "dealer_gex_usd": gex,
            "dealer_delta": delta,
            "hedge_flow_coins": flow,
            "hedge_flow_usd": flow * levels_usd,
        }
    )
    return _with_keys(frame, key)


def _profile_table(frames: list[pl.DataFrame]) -> pl.DataFrame:
    out = pl.concat([f.select(list(GEX_PROFILE)) for f in frames]) if frames else pl.DataFrame(schema=GEX_PROFILE)
    check(out, GEX_PROFILE, "gex_profile")
    return out


def key_levels(
    chain: pl.DataFrame | pl.LazyFrame,
    positions: pl.DataFrame | pl.LazyFrame,
    *,
    half_width: float = 0.25,
    step: float = 0.0025,
    vol_model: str = "sticky_strike",
) -> pl.DataFrame:
    """One row per (currency, snapshot_ts, model) of the levels analysts watch (KEY_LEVELS).

    total_gex_usd is the sum of per-option dealer GEX at spot. zero_gamma is the root of the re-priced
    GEX(S') (see :func:`zero_gamma_roots`) nearest spot within the grid range, NULL if GEX keeps one sign.
    Walls and max pain use open interest, not dealer positions, so they do not depend on the model.
    gex_expiring_24h_share is sum |GEX_i| of options expiring within 24 h of the snapshot over sum |GEX_i|
    (absolute values, so it is a share in [0, 1] even when calls and puts offset; NULL when GEX is 0).
    """
    _check_options(vol_model, "forward")
    greeks, x = _exposures(chain, positions)
    _, rows = _per_group(greeks, x, half_width, step, vol_model, "forward", profiles=False, levels=True)
    return _levels_table(rows, greeks)


__all__ = [
    "DELTA_CONVENTIONS",
    "VOL_MODELS",
    "gex_by_strike",
    "gex_profile",
    "key_levels",
    "price_grid",
    "zero_gamma_roots",
]
