"""The forecast summary (FORECAST_SUMMARY): a FLOW_FORECAST grid weighted by the market-implied distribution --
expected flows, the flow at spot, and flows at +-1 and +-2 sigma moves (DESIGN.md 4.4). Pure."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from transforms.forecasting.horizons import HOURS_PER_YEAR
from transforms.frames.schemas import FLOW_FORECAST, FORECAST_SUMMARY, KEY_LEVELS, check

SIGMA_MOVES = (-2, -1, 1, 2)
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


__all__ = ["SIGMA_MOVES", "forecast_summary", "summary_numbers"]
