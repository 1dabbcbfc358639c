"""The daily flow forecast (DESIGN.md 4.4): the hedge flow dealers must trade between t0 and t0 + h.

Pure: frames and scalars in, frames out; the forecast start ``t0`` is an argument (never the clock).

Symbols, per option i of a snapshot taken at t_s, and per spot level S' of the grid around S0:

    S0         = index_price of the snapshot (USD); levels S' = S0 (1 + k step), S0 itself exactly
    tau_i(t)   = (expiration_i - t) / 365 days (ACT/365, from millisecond timestamps); <= 0 = settled
    D(S', t)   = sum_i q_i c_i delta_i(F_i S'/S0, tau_i(t))       dealer delta in coins of the book aged
                                                                 to t, sticky-strike vol, forwards move with spot
    surv / exp = options alive at t0 + h (tau_i(t0 + h) > 0) / alive at t0 but settled by t0 + h
                 (an option expiring exactly at t0 + h has settled); D = D_surv + D_exp

Dealers hold -D to stay hedged, so the coins they trade from (S0, t0) to (S', t0 + h) are

    total      = -(D(S', t0 + h) - D(S0, t0))                        > 0 = dealers buy
    gamma      = -(D(S', t0) - D(S0, t0))                            the price move alone, at t0; 0 at S0
    charm      = -(D_surv(S0, t0 + h) - D_surv(S0, t0))              time passing alone, at S0, survivors only
    expiry     = -(0 - D_exp(S0, t0)) = +D_exp(S0, t0)               the hedges of the settling options are
                                                                     unwound: dealers buy back what they sold
                                                                     against a positive delta (and vice versa)
    remainder  = total - gamma - charm - expiry                      the cross term, exactly
               = -[(D_surv(S', t0+h) - D_surv(S0, t0+h)) - (D_surv(S', t0) - D_surv(S0, t0))]
                 + (D_exp(S', t0) - D_exp(S0, t0))
                 i.e. how the survivors' response to the price move changes over the horizon, plus the
                 gamma flow of the settling options that is undone because they are gone by t0 + h.

so gamma + charm + expiry + remainder = total at every level (remainder is defined as the difference; it
is 0 at S0 up to rounding). hedge_flow_usd = total * S'. Component USD values are coins * S' as well.

Probability weights and horizons: :mod:`transforms.forecasting.horizons`; the summary over the grid:
:mod:`transforms.forecasting.summary`.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from transforms.forecasting.horizons import (
    HOURS_PER_YEAR,
    MS_PER_HOUR,
    NEXT_EXPIRY,
    _epoch_ms,
    _from_ms,
    _grid,
    _horizons,
    atm_term_structure,
    atm_vol_to,
    forecast_start,
    horizon_label,
    lognormal_bin_weights,
    next_settlement,
)
from transforms.forecasting.summary import forecast_summary
from transforms.frames.schemas import DEALER_POSITION, EXPIRY_ROLLOFF, FLOW_FORECAST, OPTION_SNAPSHOT, check
from transforms.pricing.greeks import MS_PER_YEAR, with_greeks
from transforms.pricing.kernels import profile_at_levels

_SNAPSHOT = ["currency", "snapshot_ts"]
_JOIN = ["currency", "snapshot_ts", "instrument_name"]


# --- the forecast -----------------------------------------------------------------------------------------


class _Book:
    """One (currency, snapshot_ts, model) dealer book as arrays for the kernel."""

    def __init__(self, rows: pl.DataFrame):
        live = rows.filter(pl.col("is_priced") & (pl.col("weight_coins") != 0.0))
        self.forward = live["underlying_price"].to_numpy()
        self.strike = live["strike"].to_numpy()
        self.sigma = (live["mark_iv"] / 100.0).to_numpy()
        self.expiry_ms = live["expiration_ts"].dt.epoch("ms").to_numpy()
        self.weight = live["weight_coins"].to_numpy()
        self.put_weight = np.where((live["option_type"] == "put").to_numpy(), self.weight, 0.0)

    def delta(self, at_ms: int, ratio: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """D(S0 ratio, t) in coins over the options in ``keep``, aged to ``at_ms`` (settled ones add 0)."""
        if not keep.any():
            return np.zeros(ratio.size)
        tau = (self.expiry_ms[keep] - at_ms) / MS_PER_YEAR
        _, delta = profile_at_levels(
            self.forward[keep],
            self.strike[keep],
            self.sigma[keep],
            tau,
            self.weight[keep],
            self.put_weight[keep],
            ratio,
        )
        return delta


def _components(book: _Book, ratio: np.ndarray, centre: int, t0_ms: int, end_ms: int) -> dict[str, np.ndarray]:
    alive = book.expiry_ms > t0_ms
    surv = book.expiry_ms > end_ms
    expiring = alive & ~surv
    surv_t0 = book.delta(t0_ms, ratio, surv)  # D_surv(S', t0)
    exp_t0 = book.delta(t0_ms, ratio, expiring)  # D_exp(S', t0)
    surv_end = book.delta(end_ms, ratio, surv)  # D_surv(S', t0 + h) = D(S', t0 + h)
    return flow_components(surv_t0, exp_t0, surv_end, centre)


def flow_components(surv_t0: np.ndarray, exp_t0: np.ndarray, surv_end: np.ndarray, centre: int) -> dict:
    """The flow components (module docstring) per level from D_surv(S', t0), D_exp(S', t0), D_surv(S', t0 + h)."""
    d0 = surv_t0[centre] + exp_t0[centre]  # D(S0, t0)
    total = -(surv_end - d0)
    gamma = -((surv_t0 + exp_t0) - d0)
    charm = np.full(surv_t0.size, -(surv_end[centre] - surv_t0[centre]))
    expiry = np.full(surv_t0.size, exp_t0[centre])
    remainder = total - gamma - charm - expiry
    return {
        "hedge_flow_coins": total,
        "gamma_flow_coins": gamma,
        "charm_flow_coins": charm,
        "expiry_flow_coins": expiry,
        "remainder_flow_coins": remainder,
    }


def _spot(snapshot: pl.DataFrame) -> float:
    spots = snapshot["index_price"].drop_nulls().unique()
    if spots.len() != 1:
        raise ValueError(
            f"need exactly one index_price per snapshot, {snapshot['currency'][0]} {snapshot['snapshot_ts'][0]} "
            f"has {spots.len()}"
        )
    return float(spots[0])


def _joined(
    chain: pl.DataFrame | pl.LazyFrame, positions: pl.DataFrame | pl.LazyFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    check(chain, OPTION_SNAPSHOT, "forecast chain")
    check(positions, DEALER_POSITION, "forecast positions")
    greeks = with_greeks(chain.lazy()).collect()
    joined = (
        positions.lazy()
        .select(*_JOIN, "model", "dealer_contracts")
        .join(greeks.lazy(), on=_JOIN, how="inner")
        .with_columns((pl.col("dealer_contracts") * pl.col("contract_size")).alias("weight_coins"))
        .sort(*_SNAPSHOT, "model", "instrument_name")
        .collect()
    )
    return greeks, joined


def flow_forecast(
    chain: pl.DataFrame | pl.LazyFrame,
    positions: pl.DataFrame | pl.LazyFrame,
    *,
    t0: datetime,
    horizons_hours=(1, 24),
    include_next_expiry: bool = True,
    half_width: float = 0.25,
    step: float = 0.0025,
) -> pl.DataFrame:
    """The hedge-flow forecast from ``t0`` per (currency, snapshot, model, horizon, price level) (FLOW_FORECAST).

    ``chain``: OPTION_SNAPSHOT rows of one or more (currency, snapshot_ts) snapshots, each taken at or
    before ``t0`` (ValueError otherwise); ``positions``: DEALER_POSITION rows of any number of models.
    Levels: S0 (1 + k step), |k step| <= half_width. Math, units and signs in the module docstring.
    """
    t0_ms = _epoch_ms(t0)
    steps = _grid(half_width, step)
    ratio = 1.0 + steps
    centre = int(np.flatnonzero(steps == 0.0)[0])
    greeks, joined = _joined(chain, positions)
    frames = []
    for (currency, snapshot_ts), snapshot in greeks.group_by(_SNAPSHOT, maintain_order=True):
        snap_ms = _epoch_ms(snapshot_ts)
        if snap_ms > t0_ms:
            raise ValueError(
                f"{currency} snapshot {snapshot_ts:%Y-%m-%dT%H:%M:%S}Z is after t0 {t0:%Y-%m-%dT%H:%M:%S}Z"
            )
        spot = _spot(snapshot)
        levels = spot * ratio
        taus, sigmas = atm_term_structure(snapshot, t0_ms)
        expiries = snapshot["expiration_ts"].dt.epoch("ms").unique().to_numpy()
        horizons = _horizons(horizons_hours, include_next_expiry, t0_ms, expiries)
        weights = {}
        for label, end_ms in horizons:
            tau_h = (end_ms - t0_ms) / MS_PER_YEAR
            sigma = atm_vol_to(tau_h, taus, sigmas)
            weights[label] = (sigma, lognormal_bin_weights(levels, spot, sigma * sigma * tau_h))
        head = {"currency": currency, "snapshot_ts": snapshot_ts, "spot": spot}
        books = joined.filter((pl.col("currency") == currency) & (pl.col("snapshot_ts") == snapshot_ts))
        for (model,), rows in books.group_by("model", maintain_order=True):
            book = _Book(rows)
            for label, end_ms in horizons:
                sigma, weight = weights[label]
                parts = _components(book, ratio, centre, t0_ms, end_ms)
                frames.append(_forecast_frame(head, model, label, t0_ms, end_ms, steps, levels, sigma, parts, weight))
    out = pl.concat(frames) if frames else pl.DataFrame(schema=FLOW_FORECAST)
    check(out, FLOW_FORECAST, "flow_forecast")
    return out


def _forecast_frame(head: dict, model: str, label: str, t0_ms: int, end_ms: int, steps, levels, sigma, parts, weight):
    """The FLOW_FORECAST rows of one (model, horizon) of a snapshot (``head``: currency, snapshot_ts, spot)."""
    return pl.DataFrame(
        {
            "currency": head["currency"],
            "forecast_date": _from_ms(t0_ms).date(),
            "model": model,
            "horizon": label,
            "horizon_hours": (end_ms - t0_ms) / MS_PER_HOUR,
            "price_level": levels,
            "pct_move": steps * 100.0,
            "t0": _from_ms(t0_ms),
            "snapshot_ts": head["snapshot_ts"],
            "horizon_end_ts": _from_ms(end_ms),
            "spot": head["spot"],
            "sigma_atm": sigma * 100.0,
            **parts,
            "hedge_flow_usd": parts["hedge_flow_coins"] * levels,
            "probability_weight": weight,
        }
    ).select([pl.col(c).cast(t) for c, t in FLOW_FORECAST.items()])


# --- roll-off ----------------------------------------------------------------------------------------------


def expiry_rolloff(chain: pl.DataFrame | pl.LazyFrame, positions: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """What leaves the dealer book at each upcoming settlement, per (currency, snapshot_ts, model, expiration_ts)
    (EXPIRY_ROLLOFF), with greeks as of the snapshot: GEX (USD per 1 %), dealer delta (coins), dealer charm
    (coins per day) and open interest (contracts). unwind_flow_coins = +dealer_delta_coins: the coins
    dealers buy (> 0) when the hedges of those options are unwound, at today's deltas."""
    _, x = _joined(chain, positions)
    w = pl.col("weight_coins")
    priced = pl.col("is_priced")
    is_call = pl.col("option_type") == "call"
    oi = pl.col("open_interest").fill_null(0.0)
    out = (
        x.filter(pl.col("expiration_ts") > pl.col("snapshot_ts"))
        .group_by("currency", "snapshot_ts", "model", "expiration_ts")
        .agg(
            (pl.col("tau_years").first() * HOURS_PER_YEAR).alias("hours_to_expiry"),
            pl.col("index_price").first().alias("spot"),
            pl.len().cast(pl.Int64).alias("options"),
            oi.sum().alias("open_interest"),
            oi.filter(is_call).sum().alias("call_open_interest"),
            oi.filter(~is_call).sum().alias("put_open_interest"),
            pl.when(priced)
            .then(w * pl.col("gamma") * pl.col("underlying_price") ** 2 * 0.01)
            .otherwise(0.0)
            .sum()
            .alias("dealer_gex_usd"),
            (w * pl.col("delta")).sum().alias("dealer_delta_coins"),
            (w * pl.col("charm_per_day")).sum().alias("dealer_charm_coins_per_day"),
        )
        .with_columns(
            pl.col("dealer_delta_coins").alias("unwind_flow_coins"),
            (pl.col("dealer_delta_coins") * pl.col("spot")).alias("unwind_flow_usd"),
        )
        .select(list(EXPIRY_ROLLOFF))
        .sort("currency", "snapshot_ts", "model", "expiration_ts")
    )
    check(out, EXPIRY_ROLLOFF, "expiry_rolloff")
    return out


__all__ = [
    "HOURS_PER_YEAR",
    "NEXT_EXPIRY",
    "atm_term_structure",
    "atm_vol_to",
    "expiry_rolloff",
    "flow_forecast",
    "forecast_start",
    "forecast_summary",
    "horizon_label",
    "lognormal_bin_weights",
    "next_settlement",
]
