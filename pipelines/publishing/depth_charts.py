"""PNG charts of the depth tables (issue 15; matplotlib Agg through pipelines/publishing/charts.py's figure helpers):

- :func:`history_chart`: spot with zero gamma and the call / put walls over time, the background shaded by the
  sign of total GEX (green = dealers long gamma, red = short), and total GEX below.
- :func:`gex_by_expiry_chart`: dealer GEX per expiry (bars, USD millions per 1 % move).
- :func:`strike_expiry_heatmap`: dealer GEX per (strike, expiry), diverging colours around 0.
- :func:`vanna_by_strike_chart`: dealer vanna exposure per strike (coins per vol point), spot marked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from pipelines.publishing.chart_text import save_figure
from pipelines.publishing.charts import (
    GAMMA_FLOW,
    GEX_AXIS,
    MARKERS,
    _figure,
    _price,
    _thousands,
    label_book_panels,
)

_LONG, _SHORT = "#1A9641", "#D7191C"


def _shade_by_sign(ax, times: list, gex: np.ndarray) -> None:
    """Background spans from each snapshot to the next, green where total GEX > 0 and red where < 0."""
    for i, t in enumerate(times):
        end = times[i + 1] if i + 1 < len(times) else t
        if not np.isfinite(gex[i]) or gex[i] == 0.0 or end == t:
            continue
        ax.axvspan(t, end, color=_LONG if gex[i] > 0 else _SHORT, alpha=0.12, linewidth=0)


def history_chart(history: pl.DataFrame, path: Path, *, title: str | None = None) -> Path:
    """Spot, zero gamma and the walls of one currency and model over time (KEY_LEVELS_HISTORY rows), into ``path``."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    rows = history.sort("snapshot_ts")
    head = rows.row(0, named=True)
    times = rows["snapshot_ts"].dt.replace_time_zone(None).to_list()
    gex = rows["total_gex_usd"].fill_null(float("nan")).to_numpy() / 1e6
    fig = _figure(11.0, 6.4)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    _shade_by_sign(top, times, gex)
    top.plot(times, rows["spot"].to_numpy(), color=MARKERS["spot"][0], linewidth=1.5, label="spot")
    for key in ("zero_gamma", "call_wall", "put_wall"):
        color, _, label = MARKERS[key]
        values = rows[key].fill_null(float("nan")).to_numpy()
        style = "-" if key == "zero_gamma" else "--"
        top.plot(times, values, color=color, linewidth=1.1, linestyle=style, drawstyle="steps-post", label=label)
    last = rows.row(-1, named=True)
    top.set_title(
        title
        or f"{head['currency']} {head['model']}: spot, zero gamma and walls, "
        f"{times[0]:%Y-%m-%d} to {times[-1]:%Y-%m-%d} "
        f"UTC (last: spot {_price(last['spot'])}, zero gamma "
        f"{_price(last['zero_gamma']) if last['zero_gamma'] is not None else 'none in ±25 %'})",
        fontsize=10,
    )
    top.set_ylabel(f"{head['currency']} price (USD)")
    handles, labels = top.get_legend_handles_labels()
    handles += [Patch(color=_LONG, alpha=0.25), Patch(color=_SHORT, alpha=0.25)]
    labels += ["dealers long gamma (GEX > 0)", "dealers short gamma (GEX < 0)"]
    top.legend(handles, labels, fontsize=8, loc="upper left", framealpha=0.85, ncols=2)
    top.grid(True, alpha=0.25)
    colors = np.where(gex > 0, _LONG, _SHORT)
    width = (
        np.median(np.diff(np.array(times, dtype="datetime64[ms]")).astype(float)) / 86_400_000
        if len(times) > 1
        else 0.2
    )
    bottom.bar(times, np.nan_to_num(gex), width=0.8 * width, color=colors, linewidth=0)
    bottom.axhline(0.0, color="#444444", linewidth=0.6)
    bottom.set_ylabel("total GEX\n(USD M per 1 %)")
    bottom.set_xlabel("snapshot time (UTC)")
    bottom.grid(True, alpha=0.25)
    locator = AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    for ax in (top, bottom):
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    save_figure(fig, path)
    return path


def gex_by_expiry_chart(by_expiry: pl.DataFrame, path: Path) -> Path:
    """Dealer GEX per expiry (one model, one snapshot; EXPOSURE_BY_EXPIRY rows) as bars, into ``path``."""
    rows = by_expiry.sort("expiration_ts")
    head = rows.row(0, named=True)
    gex = rows["gex_usd"].to_numpy() / 1e6
    labels = [f"{t:%d %b %y}" for t in rows["expiration_ts"]]
    fig = _figure(10.0, 4.6)
    ax = fig.subplots()
    ax.bar(range(len(gex)), gex, color=np.where(gex > 0, _LONG, _SHORT))
    ax.set_xticks(range(len(gex)), labels, rotation=45, ha="right", fontsize=8)
    ax.axhline(0.0, color="#444444", linewidth=0.6)
    ax.set_xlabel("expiry (08:00 UTC)")
    ax.set_ylabel(GEX_AXIS)
    ax.set_title(
        f"{head['currency']} {head['model']} dealer gamma exposure by expiry, snapshot "
        f"{head['snapshot_ts']:%Y-%m-%d %H:%M} UTC (total {gex.sum():+,.1f} M; > 0 = dealers long gamma)",
        fontsize=10,
    )
    ax.grid(True, axis="y", alpha=0.25)
    save_figure(fig, path)
    return path


def strike_expiry_heatmap(by_strike: pl.DataFrame, spot: float, path: Path, *, half_width: float = 0.3) -> Path:
    """Dealer net GEX per (strike, expiry) within ``half_width`` of spot (GEX_BY_STRIKE rows of one model and
    snapshot, per-expiry rows), colours symmetric around 0, into ``path``."""
    rows = by_strike.filter(
        pl.col("expiration_ts").is_not_null()
        & pl.col("strike").is_between(spot * (1 - half_width), spot * (1 + half_width))
    )
    head = rows.row(0, named=True)
    grid = rows.pivot("expiration_ts", index="strike", values="net_gex_usd", sort_columns=True).sort("strike")
    expiries = grid.columns[1:]
    values = grid.select(expiries).fill_null(0.0).to_numpy() / 1e6
    bound = float(np.abs(values).max()) or 1.0
    fig = _figure(10.0, 7.0)
    ax = fig.subplots()
    image = ax.imshow(
        values, aspect="auto", origin="lower", cmap="RdYlGn", vmin=-bound, vmax=bound, interpolation="nearest"
    )
    strikes = grid["strike"].to_numpy()
    step = max(1, len(strikes) // 25)
    ax.set_yticks(range(0, len(strikes), step), [f"{s:,.0f}" for s in strikes[::step]], fontsize=7)
    ax.set_xticks(range(len(expiries)), [str(e)[:10] for e in expiries], rotation=45, ha="right", fontsize=8)
    below = int(np.searchsorted(strikes, spot))
    ax.axhline(below - 0.5, color="#222222", linestyle="--", linewidth=1.0, label=f"spot {_price(spot)}")
    ax.set_xlabel("expiry (08:00 UTC)")
    ax.set_ylabel("strike (USD; one row per listed strike)")
    ax.legend(fontsize=8, loc="upper right")
    fig.colorbar(image, ax=ax, label=GEX_AXIS)
    ax.set_title(
        f"{head['currency']} {head['model']} dealer GEX by strike and expiry, snapshot "
        f"{head['snapshot_ts']:%Y-%m-%d %H:%M} "
        "UTC (green = dealers long gamma)",
        fontsize=10,
    )
    save_figure(fig, path)
    return path


def vanna_by_strike_chart(by_strike: pl.DataFrame, spot: float, path: Path, *, half_width: float = 0.3) -> Path:
    """Dealer vanna exposure per strike, all expiries summed (GEX_BY_STRIKE rows with expiration_ts NULL, one
    model and snapshot), in coins per +1 vol point, into ``path``."""
    rows = by_strike.filter(
        pl.col("expiration_ts").is_null()
        & pl.col("strike").is_between(spot * (1 - half_width), spot * (1 + half_width))
    ).sort("strike")
    head = rows.row(0, named=True)
    strikes = rows["strike"].to_numpy()
    vanna = rows["vanna_coins_per_vol"].fill_null(0.0).to_numpy()
    fig = _figure(10.0, 4.6)
    ax = fig.subplots()
    width = float(np.median(np.diff(strikes))) * 0.8 if strikes.size > 1 else spot * 0.01
    ax.bar(strikes, vanna, width=width, color=np.where(vanna > 0, "#4C78A8", "#F58518"))
    ax.axhline(0.0, color="#444444", linewidth=0.6)
    color, style, label = MARKERS["spot"]
    ax.axvline(spot, color=color, linestyle=style, linewidth=1.2, label=f"{label} {_price(spot)}")
    ax.set_xlabel("strike (USD)")
    ax.set_ylabel(f"dealer vanna ({head['currency']} per +1 vol point)")
    ax.set_title(
        f"{head['currency']} {head['model']} dealer vanna exposure by strike, snapshot "
        f"{head['snapshot_ts']:%Y-%m-%d %H:%M} "
        f"UTC\n(total {vanna.sum():+,.1f} {head['currency']} per vol point; > 0 = dealers sell if IV rises)",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, alpha=0.25)
    _thousands(ax)
    save_figure(fig, path)
    return path


def scenario_chart(rows: pl.DataFrame, base: pl.DataFrame, path: Path) -> Path:
    """One scenario of one book (SCENARIO_PROFILE rows) against today's profile (GEX_PROFILE rows): GEX per level
    (top) and the hedge flow split into gamma, vanna and charm (bottom), zero gammas marked, into ``path``."""
    rows, base = rows.sort("price_level"), base.sort("price_level")
    head = rows.row(0, named=True)
    fig = _figure(10.0, 7.0)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(base["price_level"], base["dealer_gex_usd"] / 1e6, color="#888888", linewidth=1.2, label="today")
    top.plot(rows["price_level"], rows["dealer_gex_usd"] / 1e6, color="#333333", linewidth=1.6, label=head["scenario"])
    x = rows["price_level"].to_numpy()
    for column, label, color in (
        GAMMA_FLOW,
        ("vanna_flow_coins", "vanna (vol change)", "#B279A2"),
        ("charm_flow_coins", "charm (time, settlements)", "#F58518"),
        ("hedge_flow_coins", "total", "#000000"),
    ):
        bottom.plot(
            x, rows[column].to_numpy(), color=color, linewidth=1.8 if column == "hedge_flow_coins" else 1.2, label=label
        )
    spot = (
        float(rows.filter(pl.col("pct_from_spot").abs() < 1e-9)["price_level"][0])
        if rows["pct_from_spot"].abs().min() < 1e-9
        else None
    )
    for ax in (top, bottom):
        if spot is not None:
            ax.axvline(
                spot,
                color=MARKERS["spot"][0],
                linestyle="--",
                linewidth=1.0,
                label=f"spot {_price(spot)}" if ax is top else None,
            )
        if head["zero_gamma"] is not None:
            label = f"zero gamma after {_price(head['zero_gamma'])}" if ax is top else None
            ax.axvline(head["zero_gamma"], color=MARKERS["zero_gamma"][0], linestyle=":", linewidth=1.2, label=label)
        ax.axhline(0.0, color="#444444", linewidth=0.6)
        ax.grid(True, alpha=0.25)
    top.set_title(
        f"{head['currency']} {head['model']} scenario {head['scenario']} (re-priced at "
        f"{head['horizon_ts']:%Y-%m-%d %H:%M} UTC), snapshot {head['snapshot_ts']:%Y-%m-%d %H:%M:%S} UTC",
        fontsize=10,
    )
    label_book_panels(top, bottom, head["currency"], f"hedge flow ({head['currency']}, > 0 = dealers buy)")
    save_figure(fig, path)
    return path


__all__ = ["gex_by_expiry_chart", "history_chart", "scenario_chart", "strike_expiry_heatmap", "vanna_by_strike_chart"]
