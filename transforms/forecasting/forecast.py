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

Probability weights: ln(S_{t0+h}/S0) ~ Normal(-v/2, v) with v = sigma_atm^2 h / 8760 (a martingale in
USD, ACT/365 hours), where sigma_atm is the ATM implied vol to t0 + h: each expiry's ATM IV (mark_iv
interpolated linearly in ln(K/F) at the expiry's forward F, the median underlying_price of the expiry;
calls and puts at one strike averaged; flat beyond the outermost strikes) becomes a total variance
w_e = sigma_e^2 tau_e(t0), interpolated linearly in time to h / 8760 years; flat vol before the first and
after the last expiry. Each level's weight is the probability of its bin, bounded by the midpoints between
neighbouring levels; the first and last bins absorb the tails, so the weights sum to 1.

Horizons: fixed hours (default 1 and 24) labelled '1h', '24h', and 'next_expiry' = from t0 to the
earliest expiration_ts after t0 in the snapshot (an 08:00 UTC settlement; the next 08:00 UTC when the
chain lists none), so that expiry is settled and its unwind is the expiry component.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from transforms.frames.schemas import (
    DEALER_POSITION,
    EXPIRY_ROLLOFF,
    FLOW_FORECAST,
    FORECAST_SUMMARY,
    KEY_LEVELS,
    OPTION_SNAPSHOT,
    check,
)
from transforms.pricing.greeks import MS_PER_YEAR, with_greeks
from transforms.pricing.kernels import profile_at_levels

MS_PER_HOUR = 3_600_000
HOURS_PER_YEAR = 8760.0  # 365 days: the ACT/365 year of the greeks
NEXT_EXPIRY = "next_expiry"
SETTLEMENT_HOUR_UTC = 8
SIGMA_MOVES = (-2, -1, 1, 2)
_SNAPSHOT = ["currency", "snapshot_ts"]
_JOIN = ["currency", "snapshot_ts", "instrument_name"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_erfc = np.frompyfunc(math.erfc, 1, 1)


# --- time ------------------------------------------------------------------------------------------------


def _epoch_ms(ts: datetime) -> int:
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        raise ValueError(f"t0 must be a timezone-aware datetime, got {ts!r}")
    return (ts - _EPOCH) // timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(ms))


def next_settlement(after: datetime) -> datetime:
    """The first 08:00 UTC strictly after ``after``."""
    after = after.astimezone(UTC)
    candidate = datetime.combine(after.date(), datetime.min.time(), UTC) + timedelta(hours=SETTLEMENT_HOUR_UTC)
    return candidate if candidate > after else candidate + timedelta(days=1)


def horizon_label(hours: float) -> str:
    """'1h', '24h', '1.5h' for a fixed horizon in hours."""
    return f"{hours:g}h"


# --- the implied distribution ----------------------------------------------------------------------------


def atm_term_structure(greeks: pl.DataFrame, t0_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(tau_e(t0) in years, ATM IV sigma_e as a decimal) per expiry alive at t0, ascending in tau.

    ``greeks`` is one snapshot's OPTION_GREEKS rows. The ATM IV of an expiry is its mark_iv smile (strikes
    with an IV; call and put at one strike averaged) interpolated linearly in ln(K/F) at ln(K/F) = 0, F the
    median forward of the expiry; flat beyond the outermost strikes.
    """
    priced = greeks.filter(pl.col("is_priced")).with_columns(
        pl.col("underlying_price").median().over("expiration_ts").alias("_forward")
    )
    nodes = (
        priced.group_by("expiration_ts", "strike")
        .agg(pl.col("mark_iv").mean(), pl.col("_forward").first())
        .with_columns((pl.col("strike") / pl.col("_forward")).log().alias("_x"), pl.col("expiration_ts").dt.epoch("ms"))
        .sort("expiration_ts", "_x")
    )
    taus, sigmas = [], []
    for (expiry_ms,), smile in nodes.group_by("expiration_ts", maintain_order=True):
        tau = (int(expiry_ms) - t0_ms) / MS_PER_YEAR
        if tau <= 0.0:
            continue
        taus.append(tau)
        sigmas.append(float(np.interp(0.0, smile["_x"].to_numpy(), smile["mark_iv"].to_numpy())) / 100.0)
    return np.array(taus), np.array(sigmas)


def atm_vol_to(tau_years: float, taus: np.ndarray, sigmas: np.ndarray) -> float:
    """ATM vol (decimal) to ``tau_years`` from the per-expiry ATM vols: total variance sigma^2 tau linear in
    tau between the bracketing expiries, flat vol before the first and after the last."""
    if taus.size == 0:
        raise ValueError("no expiry with an implied vol after t0: cannot weight the levels")
    if tau_years <= taus[0]:
        return float(sigmas[0])
    if tau_years >= taus[-1]:
        return float(sigmas[-1])
    variance = float(np.interp(tau_years, taus, sigmas**2 * taus))
    return math.sqrt(variance / tau_years)


def lognormal_bin_weights(levels: np.ndarray, spot: float, variance: float) -> np.ndarray:
    """P(S in the bin of each level) for ln(S/spot) ~ Normal(-variance/2, variance).

    Bins are bounded by the midpoints between neighbouring levels; the first and last bins run to 0 and
    infinity, so the weights sum to 1 (up to rounding).
    """
    if not variance > 0.0:
        raise ValueError(f"variance must be positive, got {variance!r}")
    edges = 0.5 * (levels[1:] + levels[:-1])
    sd = math.sqrt(variance)
    z = (np.log(edges / spot) + 0.5 * variance) / sd
    cdf = 0.5 * _erfc(-z / math.sqrt(2.0)).astype(np.float64)  # math.erfc per element (exact; no numpy erfc)
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


# --- the forecast -----------------------------------------------------------------------------------------


def _grid(half_width: float, step: float) -> np.ndarray:
    if not (math.isfinite(step) and step > 0.0):
        raise ValueError(f"step must be a positive number, got {step!r}")
    if not (math.isfinite(half_width) and 0.0 < half_width < 1.0):
        raise ValueError(f"half_width must be in (0, 1), got {half_width!r}")
    n = int(math.floor(half_width / step + 1e-9))
    return np.arange(-n, n + 1, dtype=np.float64) * step


def _horizons(horizons_hours, include_next_expiry: bool, t0_ms: int, expiries_ms: np.ndarray) -> list[tuple[str, int]]:
    """[(label, horizon end in epoch ms)] in the order asked, each label once (a repeated horizon is one
    horizon, not two sets of rows), 'next_expiry' last."""
    out = []
    for h in horizons_hours:
        h = float(h)
        if not (math.isfinite(h) and h > 0.0):
            raise ValueError(f"horizons must be positive hours, got {h!r}")
        label = horizon_label(h)
        if all(label != seen for seen, _ in out):
            out.append((label, t0_ms + round(h * MS_PER_HOUR)))
    if include_next_expiry:
        later = expiries_ms[expiries_ms > t0_ms]
        end = int(later.min()) if later.size else _epoch_ms(next_settlement(_from_ms(t0_ms)))
        out.append((NEXT_EXPIRY, end))
    return out


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
        books = joined.filter((pl.col("currency") == currency) & (pl.col("snapshot_ts") == snapshot_ts))
        for (model,), rows in books.group_by("model", maintain_order=True):
            book = _Book(rows)
            for label, end_ms in horizons:
                sigma, weight = weights[label]
                parts = _components(book, ratio, centre, t0_ms, end_ms)
                frames.append(
                    pl.DataFrame(
                        {
                            "currency": currency,
                            "forecast_date": _from_ms(t0_ms).date(),
                            "model": model,
                            "horizon": label,
                            "horizon_hours": (end_ms - t0_ms) / MS_PER_HOUR,
                            "price_level": levels,
                            "pct_move": steps * 100.0,
                            "t0": _from_ms(t0_ms),
                            "snapshot_ts": snapshot_ts,
                            "horizon_end_ts": _from_ms(end_ms),
                            "spot": spot,
                            "sigma_atm": sigma * 100.0,
                            **parts,
                            "hedge_flow_usd": parts["hedge_flow_coins"] * levels,
                            "probability_weight": weight,
                        }
                    ).select([pl.col(c).cast(t) for c, t in FLOW_FORECAST.items()])
                )
    out = pl.concat(frames) if frames else pl.DataFrame(schema=FLOW_FORECAST)
    check(out, FLOW_FORECAST, "flow_forecast")
    return out


# --- summary and roll-off ----------------------------------------------------------------------------------

_SUMMARY_KEYS = ["currency", "forecast_date", "model", "horizon", "snapshot_ts"]


def _sigma_row(group: pl.DataFrame) -> dict:
    return summary_numbers(
        group["price_level"].to_numpy(),
        group["hedge_flow_coins"].to_numpy(),
        group["hedge_flow_usd"].to_numpy(),
        group["probability_weight"].to_numpy(),
        spot=float(group["spot"][0]),
        hours=float(group["horizon_hours"][0]),
        sigma_atm=float(group["sigma_atm"][0]),
        charm=float(group["charm_flow_coins"][0]),
        expiry=float(group["expiry_flow_coins"][0]),
    )


def summary_numbers(levels, coins, usd, w, *, spot: float, hours: float, sigma_atm: float, charm: float, expiry: float):
    """The FORECAST_SUMMARY numbers of one (currency, forecast_date, model, horizon) from its grid (levels
    ascending, hedge flow in coins and USD, probability weights); ``sigma_atm`` in percent."""
    sd = sigma_atm / 100.0 * math.sqrt(hours / HOURS_PER_YEAR)
    centre = int(np.argmin(np.abs(levels - spot)))
    row = {
        "sigma_move_pct": sd * 100.0,
        "expected_flow_coins": float(np.dot(w, coins)),
        "expected_flow_usd": float(np.dot(w, usd)),
        "expected_abs_flow_coins": float(np.dot(w, np.abs(coins))),
        "expected_abs_flow_usd": float(np.dot(w, np.abs(usd))),
        "flow_at_spot_coins": float(coins[centre]),
        "charm_flow_coins": charm,
        "expiry_flow_coins": expiry,
    }
    for k in SIGMA_MOVES:
        name = f"{'minus' if k < 0 else 'plus'}_{abs(k)}sigma"
        price = spot * math.exp(k * sd)
        inside = levels[0] <= price <= levels[-1]
        flow = float(np.interp(price, levels, coins)) if inside else None
        row[f"price_{name}"] = price
        row[f"flow_{name}_coins"] = flow
        row[f"flow_{name}_usd"] = None if flow is None else flow * price
    return row


def forecast_summary(forecast: pl.DataFrame, levels: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per (currency, forecast_date, model, horizon) of a FLOW_FORECAST frame (FORECAST_SUMMARY).

    Expected flows are probability-weighted sums over the grid; flows at k sigma are interpolated linearly
    in price on the grid (NULL beyond it). ``levels`` (a KEY_LEVELS frame, e.g. from
    ``transforms.gex.exposure.key_levels``) adds zero_gamma, call_wall and put_wall per (currency, snapshot_ts,
    model); without it those columns are NULL.
    """
    check(forecast, FLOW_FORECAST, "forecast_summary input")
    rows = []
    for _, group in forecast.group_by(_SUMMARY_KEYS, maintain_order=True):
        group = group.sort("price_level")
        head = group.row(0, named=True)
        rows.append({c: head[c] for c in FORECAST_SUMMARY if c in head} | _sigma_row(group))
    base = {c: t for c, t in FORECAST_SUMMARY.items() if c not in ("zero_gamma", "call_wall", "put_wall")}
    out = pl.DataFrame(rows, schema=base, orient="row") if rows else pl.DataFrame(schema=base)
    if levels is not None:
        check(levels, KEY_LEVELS, "forecast_summary levels")
        walls = levels.select("currency", "snapshot_ts", "model", "zero_gamma", "call_wall", "put_wall")
        out = out.join(walls, on=["currency", "snapshot_ts", "model"], how="left", maintain_order="left")
    else:
        out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in ("zero_gamma", "call_wall", "put_wall"))
    out = out.select(list(FORECAST_SUMMARY))
    check(out, FORECAST_SUMMARY, "forecast_summary")
    return out


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


def forecast_start(forecast_date: date, snapshot_ts: datetime) -> datetime:
    """t0 of a daily forecast: the later of the forecast date's 08:00 UTC settlement and the snapshot time
    (a book observed before the settlement is aged to it, so the day's expiry has already left it)."""
    settle = datetime.combine(forecast_date, datetime.min.time(), UTC) + timedelta(hours=SETTLEMENT_HOUR_UTC)
    return max(settle, snapshot_ts.astimezone(UTC))


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
