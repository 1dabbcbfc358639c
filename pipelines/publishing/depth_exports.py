"""The depth part of the daily export folder (issue 15), per currency C:

    C_exposure_by_expiry.parquet|csv|json   EXPOSURE_BY_EXPIRY rows of the forecast's snapshot, every model
    C_history.parquet|csv|json              key_levels_history of the last 30 days up to the snapshot, every model
    C_gex_by_expiry.png                     dealer GEX per expiry (bars)
    C_gex_heatmap.png                       dealer GEX per strike x expiry
    C_vanna_by_strike.png                   dealer vanna exposure per strike
    C_history.png                           spot, zero gamma and walls over the 30 days, shaded by GEX sign

Charts show the ``naive`` model when present (else the first model); the data files hold every model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

HISTORY_DAYS = 30


@dataclass
class DepthExport:
    by_expiry: pl.DataFrame  # EXPOSURE_BY_EXPIRY of the forecast's snapshots
    by_strike: pl.DataFrame  # GEX_BY_STRIKE of the same snapshots
    levels: pl.DataFrame  # KEY_LEVELS of the same snapshots (spot)
    history: dict[str, pl.DataFrame] = field(default_factory=dict)  # currency -> key_levels_history rows

    def write(self, folder: Path, currency: str) -> tuple[list[Path], list[Path]]:
        """(data files, charts) of ``currency`` written into ``folder``."""
        from pipelines.publishing import depth_charts
        from pipelines.publishing.exports import write_table

        mine = pl.col("currency") == currency
        by_expiry, by_strike = self.by_expiry.filter(mine), self.by_strike.filter(mine)
        history = self.history.get(currency)
        data = write_table(by_expiry, folder / f"{currency}_exposure_by_expiry")
        if history is not None and history.height:
            data += write_table(history, folder / f"{currency}_history")
        charts = []
        model = _chart_model(by_expiry)
        if model is not None:
            one = pl.col("model") == model
            spot = float(self.levels.filter(mine & one)["spot"][0])
            charts.append(
                depth_charts.gex_by_expiry_chart(by_expiry.filter(one), folder / f"{currency}_gex_by_expiry.png")
            )
            strikes = by_strike.filter(one)
            charts.append(depth_charts.strike_expiry_heatmap(strikes, spot, folder / f"{currency}_gex_heatmap.png"))
            charts.append(depth_charts.vanna_by_strike_chart(strikes, spot, folder / f"{currency}_vanna_by_strike.png"))
        if history is not None:
            model = _chart_model(history)
            rows = history.filter(pl.col("model") == model) if model is not None else history.clear()
            if rows.height >= 2:
                charts.append(depth_charts.history_chart(rows, folder / f"{currency}_history.png"))
        return data, charts


def _chart_model(frame: pl.DataFrame) -> str | None:
    models = frame["model"].unique(maintain_order=True).to_list()
    return "naive" if "naive" in models else (models[0] if models else None)


def recent_history(data_dir: Path, picks: dict[str, datetime], models) -> dict[str, pl.DataFrame]:
    """Per currency: key_levels_history of every model in ``models`` for the 30 days up to its picked snapshot
    (empty when the warehouse has none)."""
    from pipelines.publishing.history import last_days
    from warehouse.catalog import db_path

    if not db_path(Path(data_dir)).exists():
        return {}
    out = {}
    for currency, until in picks.items():
        frames = [last_days(data_dir, currency, m, until, HISTORY_DAYS) for m in models]
        out[currency] = (
            pl.concat([f for f in frames if f.height], how="vertical_relaxed")
            if any(f.height for f in frames)
            else frames[0]
        )
    return out


__all__ = ["HISTORY_DAYS", "DepthExport", "recent_history"]
