"""Key levels (and gex_profile rows) of many (currency, snapshot_ts, model) groups in one batch:
``transforms.gex.exposure.key_levels`` and ``gex_profile`` (sticky-strike vol, forward delta) with the per-group
bookkeeping batched. Pure: frames in, frames out. ``compute`` uses it for every sticky-strike table, so a run
never compiles the fused ``parallel=True`` kernel (only one-off profiles, the forecast and the CLI's
``profile`` use that).

The numbers are that function's, computed the same way: the same greeks and position join
(``_exposures``), each group's options merged where their Black-76 inputs coincide (one polars query for
all groups instead of one per group), the GEX profile on the same grid (one ``OptionBatch.profiles`` call
for all groups: the fused kernel's block loop, the same sums), zero gamma refined by the same Brent iteration on the
same single-level profile (evaluated on the calling thread instead of waking the thread pool for one
level), and the same row and table code (``_levels_row``, ``_levels_table``, ``_profile_frame``). Tested equal,
bit for bit, to ``key_levels`` and ``gex_profile`` on real snapshots.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from transforms.forecasting.forecast_batch import spot_of
from transforms.gex.exposure import GROUP, _exposures, _grid_steps, _profile_frame
from transforms.gex.levels import _levels_row, _levels_table
from transforms.pricing.kernel_batch import ALL_EXPIRIES, OptionBatch


def _merged(x: pl.DataFrame) -> pl.DataFrame:
    """exposure._Profile's merged options of every group, groups contiguous and in order of ``x``."""
    live = x.filter(pl.col("is_priced") & (pl.col("weight_coins") != 0.0)).with_columns(
        (pl.col("mark_iv") / 100.0).alias("sigma"),
        pl.when(pl.col("option_type") == "put").then(pl.col("weight_coins")).otherwise(0.0).alias("put_weight"),
    )
    return live.group_by(*GROUP, "underlying_price", "strike", "sigma", "tau_years", maintain_order=True).agg(
        pl.col("weight_coins").sum(),
        pl.col("put_weight").sum(),
        pl.col("expiration_ts").first().dt.epoch("ms").alias("expiry_ms"),
    )


def _slices(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return (
        frame.select(GROUP)
        .with_row_index("_i")
        .group_by(GROUP, maintain_order=True)
        .agg(pl.col("_i").min().alias(f"{name}_lo"), (pl.col("_i").max() + 1).alias(f"{name}_hi"))
    )


def _spots(x: pl.DataFrame) -> pl.DataFrame:
    """Per group: how many distinct index prices, and one (exposure._spot checks there is exactly one)."""
    spots = pl.col("index_price").drop_nulls()
    return x.group_by(GROUP, maintain_order=True).agg(spots.n_unique().alias("spots"), spots.first().alias("spot"))


class _GroupProfile:
    """One group's GEX(S') and D(S') as a function of S'/S0 (exposure._Profile.__call__, same numbers)."""

    def __init__(self, options: OptionBatch, lo: int, hi: int, at_ms: int):
        self.options, self.lo, self.hi, self.at_ms = options, lo, hi, at_ms

    def __call__(self, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.options.profile(self.lo, self.hi, self.at_ms, ratio)


def key_levels_batch(
    chain: pl.DataFrame | pl.LazyFrame,
    positions: pl.DataFrame | pl.LazyFrame,
    *,
    half_width: float = 0.25,
    step: float = 0.0025,
) -> pl.DataFrame:
    """KEY_LEVELS of every (currency, snapshot_ts, model): ``key_levels(chain, positions, half_width=...,
    step=..., vol_model='sticky_strike')``, batched (module docstring)."""
    greeks, x = _exposures(chain, positions)
    return key_levels_of(greeks, x, half_width, step)


def key_levels_of(greeks: pl.DataFrame, x: pl.DataFrame, half_width: float = 0.25, step: float = 0.0025):
    """:func:`key_levels_batch` from ``transforms.gex.exposure._exposures(chain, positions)``."""
    _, rows = profiles_and_levels_of(greeks, x, half_width, step, profiles=False)
    return _levels_table(rows, greeks)


def profiles_and_levels_of(
    greeks: pl.DataFrame, x: pl.DataFrame, half_width: float, step: float, *, profiles: bool = True
) -> tuple[list[pl.DataFrame], list[dict]]:
    """``exposure._per_group(greeks, x, half_width, step, 'sticky_strike', 'forward', profiles=profiles,
    levels=True)`` batched: the same gex_profile frames (when ``profiles``) and key-levels rows, bit for bit."""
    steps = _grid_steps(half_width, step)
    ratio = 1.0 + steps
    merged = _merged(x)
    options = OptionBatch(
        merged["underlying_price"].to_numpy(),
        merged["strike"].to_numpy(),
        merged["sigma"].to_numpy(),
        merged["expiry_ms"].to_numpy(),
        merged["weight_coins"].to_numpy(),
        merged["put_weight"].to_numpy(),
        np.ones(merged.height, dtype=np.bool_),
        tau=merged["tau_years"].to_numpy(),  # polars' tau_years, as key_levels uses it
    )
    groups = (
        x.select(GROUP)
        .unique(maintain_order=True)
        .join(_slices(merged, "m"), on=GROUP, how="left", maintain_order="left")
        .with_columns(pl.col("m_lo", "m_hi").fill_null(0), pl.col("snapshot_ts").dt.epoch("ms").alias("at_ms"))
        .join(_spots(x), on=GROUP, how="left", maintain_order="left")
    )
    cols = {c: groups[c].to_numpy() for c in ("m_lo", "m_hi", "at_ms")}
    window = np.full(groups.height, ALL_EXPIRIES[0]), np.full(groups.height, ALL_EXPIRIES[1])
    gex, delta = options.profiles(cols["m_lo"], cols["m_hi"], cols["at_ms"], *window, ratio)
    parts = x.partition_by(GROUP, as_dict=True, maintain_order=True)  # as key_levels: sums on these copies
    frames, rows = [], []
    spots = groups.select("spots", "spot").rows()
    for t, (key, group) in enumerate(parts.items()):
        spot = spot_of(key[0], key[1], *spots[t])
        if profiles:
            frames.append(_profile_frame(key, spot, steps, gex[t], delta[t]))
        profile = _GroupProfile(options, int(cols["m_lo"][t]), int(cols["m_hi"][t]), int(cols["at_ms"][t]))
        rows.append(_levels_row(key, group, spot, profile, ratio, gex[t]))
    return frames, rows


__all__ = ["key_levels_batch", "key_levels_of", "profiles_and_levels_of"]
