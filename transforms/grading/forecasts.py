"""The forecast history: for every stored snapshot, the flow forecast made at that snapshot (t0 = snapshot_ts)
from that snapshot's chain alone, summarised (FORECAST_HISTORY). Pure: frames in, frames out.

No look-ahead by construction: the book (naive / customer_long positions), the implied distribution (ATM
term structure) and the regime (key levels) of a row are functions of one snapshot's rows only.
"""

from __future__ import annotations

import polars as pl

from transforms.forecasting.forecast import flow_forecast, forecast_summary
from transforms.forecasting.forecast_batch import summaries_of
from transforms.frames.schemas import check
from transforms.gex.exposure import _exposures, key_levels
from transforms.gex.levels_batch import key_levels_of
from transforms.gex.positioning import dealer_positions
from transforms.grading.schemas import FORECAST_HISTORY

HISTORY_MODELS = ("naive", "customer_long")  # the snapshot-based models (taker_flow needs a trade tape)
HISTORY_HORIZONS_HOURS = (1, 24)  # plus 'next_expiry'
_KEYS = ["currency", "snapshot_ts"]
_LEVELS = ["zero_gamma", "call_wall", "put_wall", "total_gex_usd", "gex_expiring_24h_share"]
# the greeks columns the batched forecasts and key levels read from the position join
_JOINED = ["index_price", "mark_iv", "strike", "expiration_ts", "option_type", "tau_years"]


def history_forecasts(
    chain: pl.DataFrame,
    *,
    models=HISTORY_MODELS,
    horizons_hours=HISTORY_HORIZONS_HOURS,
) -> pl.DataFrame:
    """FORECAST_HISTORY rows for every (currency, snapshot_ts) of ``chain`` (OPTION_SNAPSHOT rows), each
    forecast starting at its own snapshot time, for ``models`` and the fixed horizons plus the next expiry."""
    if chain.is_empty():
        return pl.DataFrame(schema=FORECAST_HISTORY)
    positions = pl.concat([dealer_positions(chain, m) for m in models])
    greeks, joined = _exposures(chain, positions, _JOINED)  # the greeks and the position join, once for both
    levels = key_levels_of(greeks, joined)
    regime = levels.select(*_KEYS, "model", *_LEVELS)
    out = (
        summaries_of(greeks, joined, horizons_hours)
        .drop("zero_gamma", "call_wall", "put_wall")  # NULL there: the key levels below fill them
        .join(regime, on=[*_KEYS, "model"], how="left", maintain_order="left")
        .select([pl.col(c).cast(t) for c, t in FORECAST_HISTORY.items()])
        .sort(*_KEYS, "model", "horizon")
    )
    check(out, FORECAST_HISTORY, "forecast history")
    return out


def history_forecasts_per_snapshot(
    chain: pl.DataFrame,
    *,
    models=HISTORY_MODELS,
    horizons_hours=HISTORY_HORIZONS_HOURS,
) -> pl.DataFrame:
    """:func:`history_forecasts` made the slow, obvious way -- ``transforms.forecasting.forecast.flow_forecast`` and
    ``forecast_summary`` one snapshot at a time, ``transforms.gex.exposure.key_levels`` -- kept as the reference
    the batched function is tested and benchmarked against (its CPU per snapshot: benchmarks/RESULTS.md, Forecast
    grading)."""
    if chain.is_empty():
        return pl.DataFrame(schema=FORECAST_HISTORY)
    positions = pl.concat([dealer_positions(chain, m) for m in models])
    levels = key_levels(chain, positions)
    frames = []
    for (_, snapshot_ts), snapshot in chain.group_by(_KEYS, maintain_order=True):
        keys = positions.filter(pl.col("snapshot_ts") == snapshot_ts)
        keys = keys.filter(pl.col("currency") == snapshot["currency"][0])
        frames.append(flow_forecast(snapshot, keys, t0=snapshot_ts, horizons_hours=horizons_hours))
    regime = levels.select(*_KEYS, "model", "total_gex_usd", "gex_expiring_24h_share")
    out = (
        forecast_summary(pl.concat(frames), levels)
        .join(regime, on=[*_KEYS, "model"], how="left", maintain_order="left")
        .select([pl.col(c).cast(t) for c, t in FORECAST_HISTORY.items()])
        .sort(*_KEYS, "model", "horizon")
    )
    check(out, FORECAST_HISTORY, "forecast history")
    return out


__all__ = ["HISTORY_HORIZONS_HOURS", "HISTORY_MODELS", "history_forecasts", "history_forecasts_per_snapshot"]
