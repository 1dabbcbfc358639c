"""The analytic tables of stored chains, pure: every applicable model's dealer positions and the GEX tables
built on them, with each model's key levels measured against ``naive``.

Moved here from ``pipelines.jobs.compute`` (issue 13): the job reads the lake and stages files; what it
computes in between is this module.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from transforms.frames.schemas import DEALER_POSITION_STORED, KEY_LEVELS_STORED, UTC_TS, check
from transforms.gex.depth import DEPTH_TABLES, depth_tables
from transforms.gex.exposure import _by_strike, _check_options, _exposures, _per_group, _profile_table
from transforms.gex.levels import _levels_table
from transforms.gex.levels_batch import profiles_and_levels_of
from transforms.gex.positioning import dealer_positions
from transforms.gex.taker_flow import taker_flow_positions
from transforms.gex.tape import Tape

BASE_MODELS = ("naive", "customer_long")


def _with_tape_start(chain: pl.DataFrame, tape: Tape, listed: pl.DataFrame | None) -> pl.DataFrame:
    """``chain`` with listed_ts (when ``listed`` is given) and tape_start_ts: each option's tape starts where the
    tape that holds it starts, linear ones in the USDC/USDT tape."""
    with_listing = chain.join(listed, on="instrument_name", how="left") if listed is not None else chain
    linear = pl.col("is_linear").fill_null(False) if "is_linear" in chain.columns else pl.lit(False)
    starts = (
        pl.when(linear)
        .then(pl.lit(tape.linear_start, UTC_TS))
        .otherwise(pl.lit(tape.start, UTC_TS))
        .alias("tape_start_ts")
    )
    return with_listing.with_columns(starts)


def positions_for(
    chain: pl.DataFrame,
    *,
    tape: Tape | None = None,
    listed: pl.DataFrame | None = None,
    book: pl.DataFrame | None = None,
    books: dict[datetime, pl.DataFrame] | None = None,
    include_blocks: bool = False,
) -> pl.DataFrame:
    """DEALER_POSITION rows of every applicable model for ``chain`` (stored layout, taker extras nullable).
    The ``custom`` model comes from ``book`` for every snapshot of the chain, else from ``books`` for the
    snapshots (snapshot_ts) it has a book for."""
    frames = [dealer_positions(chain, m) for m in BASE_MODELS]
    if book is not None:
        frames.append(dealer_positions(chain, "custom", book=book))
    for snapshot_ts, stored in (books or {}).items() if book is None else ():
        frames.append(dealer_positions(chain.filter(pl.col("snapshot_ts") == snapshot_ts), "custom", book=stored))
    if tape is not None:
        frames.append(
            taker_flow_positions(_with_tape_start(chain, tape, listed), tape.trades, include_blocks=include_blocks)
        )
    stored = [
        f.select(
            [
                pl.col(c).cast(t) if c in f.columns else pl.lit(None, t).alias(c)
                for c, t in DEALER_POSITION_STORED.items()
            ]
        )
        for f in frames
    ]
    out = pl.concat(stored)
    check(out, DEALER_POSITION_STORED, "dealer_positions")
    return out


def with_model_gaps(levels: pl.DataFrame) -> pl.DataFrame:
    """Add to each model's key levels how far its total GEX and zero gamma are from ``naive``."""
    naive = levels.filter(pl.col("model") == "naive").select(
        "currency",
        "snapshot_ts",
        pl.col("total_gex_usd").alias("naive_total_gex_usd"),
        pl.col("zero_gamma").alias("naive_zero_gamma"),
    )
    out = (
        levels.join(naive, on=["currency", "snapshot_ts"], how="left")
        .with_columns(
            (pl.col("total_gex_usd") - pl.col("naive_total_gex_usd")).alias("total_gex_vs_naive_usd"),
            (pl.col("zero_gamma") - pl.col("naive_zero_gamma")).alias("zero_gamma_vs_naive"),
        )
        .drop("naive_zero_gamma")
    )
    out = out.select(list(KEY_LEVELS_STORED))
    check(out, KEY_LEVELS_STORED, "key_levels")
    return out


def exposure_tables(
    chain: pl.DataFrame | pl.LazyFrame,
    positions: pl.DataFrame | pl.LazyFrame,
    *,
    half_width: float = 0.25,
    step: float = 0.0025,
    vol_model: str = "sticky_strike",
    depth: bool = True,
    what_ifs: bool = False,
) -> dict[str, pl.DataFrame]:
    """:func:`~transforms.gex.exposure.gex_by_strike`, :func:`~transforms.gex.exposure.gex_profile` and
    :func:`~transforms.gex.exposure.key_levels` (forward delta) of the same inputs, the same frames, with the
    greeks, the position join and each group's profile computed once for all three; plus (``depth``) the tables
    of :func:`transforms.gex.depth.depth_tables` (exposure_by_expiry, key_levels_by_tenor, and with ``what_ifs``
    scenario_profiles and the hedge ladder tables) from the same greeks and join."""
    _check_options(vol_model, "forward")
    greeks, x = _exposures(chain, positions)
    if vol_model == "sticky_strike":  # every group's profile in one batch (the same numbers, bit for bit)
        frames, rows = profiles_and_levels_of(greeks, x, half_width, step)
    else:
        frames, rows = _per_group(greeks, x, half_width, step, vol_model, "forward", profiles=True, levels=True)
    levels = _levels_table(rows, greeks)
    tables = {"gex_by_strike": _by_strike(x), "gex_profile": _profile_table(frames), "key_levels": levels}
    if depth:
        tables.update(
            depth_tables(greeks, x, levels, half_width=half_width, step=step, vol_model=vol_model, what_ifs=what_ifs)
        )
    return tables


def analytics(
    chain: pl.DataFrame,
    positions: pl.DataFrame,
    *,
    half_width=0.25,
    step=0.0025,
    vol_model="sticky_strike",
    what_ifs: bool = False,
) -> dict[str, pl.DataFrame]:
    """The four analytic tables for ``chain`` (any number of snapshots) and ``positions`` (any models), and the
    depth tables (:data:`transforms.gex.depth.DEPTH_TABLES`; the what-if ones empty unless ``what_ifs``)."""
    tables = exposure_tables(chain, positions, half_width=half_width, step=step, vol_model=vol_model, what_ifs=what_ifs)
    return {
        "dealer_positions": positions,
        "gex_by_strike": tables["gex_by_strike"],
        "gex_profile": tables["gex_profile"],
        "key_levels": with_model_gaps(tables["key_levels"]),
        **{t: tables[t] for t in DEPTH_TABLES},
    }
