"""Terminal summaries read back from the warehouse (so every engine prints the same thing)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.publishing.tables import render_frame
from pipelines.store.lake_tables import Table
from warehouse import lake


def snapshot_summary(data_dir: Path, currencies) -> str:
    """Latest snapshot per currency: options, open interest, spot."""
    scan = lake.scan(data_dir, Table.OPTION_SNAPSHOTS)
    if scan is None:
        return "no snapshots in the warehouse"
    coins = [c for c in currencies if c != "USDC"]
    latest = (
        scan.filter(pl.col("currency").is_in(coins) | pl.lit("USDC" in currencies))
        .filter(pl.col("snapshot_ts") == pl.col("snapshot_ts").max().over("currency"))
        .group_by("currency", "snapshot_ts")
        .agg(
            pl.len().alias("options"),
            pl.col("expiration_ts").n_unique().alias("expiries"),
            pl.col("open_interest").sum().round(1).alias("open_interest"),
            pl.col("index_price").first().alias("spot_usd"),
        )
        .sort("currency")
        .collect()
    )
    return render_frame(latest)


def trades_summary(data_dir: Path, currencies) -> str:
    """Latest trades run per currency: pages, fetched, new, duplicates, watermark, warnings."""
    scan = lake.scan(data_dir, Table.STATE_TRADE_RUNS)
    if scan is None:
        return "no trades runs recorded"
    latest = (
        scan.filter(pl.col("currency").is_in(list(currencies)))
        .filter(pl.col("run_id") == pl.col("run_id").max().over("currency"))
        .select("currency", "pages", "fetched", "new", "duplicates", "watermark_ts", "warnings")
        .sort("currency")
        .collect()
    )
    return render_frame(latest)


def run_summary(data_dir: Path, currencies) -> str:
    """Latest snapshot per currency with the naive model's key levels (and taker_flow's when present)."""
    snaps = snapshot_summary(data_dir, currencies)
    scan = lake.scan(data_dir, Table.KEY_LEVELS)
    if scan is None:
        return snaps
    levels = (
        scan.filter(pl.col("currency").is_in(list(currencies)))
        .filter(pl.col("snapshot_ts") == pl.col("snapshot_ts").max().over("currency"))
        .filter(pl.col("model").is_in(["naive", "taker_flow"]))
        .select(
            "currency",
            "model",
            "spot",
            pl.col("total_gex_usd").round(0),
            pl.col("zero_gamma").round(2),
            "call_wall",
            "put_wall",
            "max_pain",
        )
        .sort("currency", "model")
        .collect()
    )
    return (
        snaps
        + "\n\n"
        + render_frame(levels)
        + ("\ntotal_gex_usd: USD change of dealer delta per 1 % move (> 0 = dealers long gamma); levels in USD")
    )


def forecast_summary(result) -> str:
    """Where a forecast went, and its headline numbers per currency, model and horizon."""
    s = result.frames.summary.sort("currency", "model", "horizon_hours").select(
        "currency",
        "model",
        "horizon",
        "t0",
        "spot",
        pl.col("sigma_move_pct").round(2),
        pl.col("expected_flow_coins").round(1),
        pl.col("expected_abs_flow_coins").round(1),
        pl.col("flow_minus_1sigma_coins").round(1),
        pl.col("flow_plus_1sigma_coins").round(1),
    )
    lines = [render_frame(s), "flows in coins; > 0 = dealers buy; sigma_move_pct = one standard deviation of the move"]
    if result.exports is not None:
        lines.append(f"forecast published to {result.exports.folder}")
        lines.append(f"  page: {result.exports.index_html}")
        lines.append(f"  files: {len(result.exports.data_files)} data files, {len(result.exports.charts)} charts")
    return "\n".join(lines)
