"""PNG charts of the daily flow forecast (matplotlib, Agg; imported lazily, no pyplot global state).

- :func:`hedge_flow_chart`: one currency and horizon, one column per model. Top: the hedge flow per price
  level at t0 + h, stacked by component (gamma, charm, expiry, remainder; coins, > 0 = dealers buy) with
  the total as a line. Bottom: the total in USD (millions) and the probability of each level. Both mark
  spot, the +-1 sigma band, zero gamma and the call / put walls.
- :func:`gex_profile_chart`: dealer GEX (USD millions per 1 % move) against spot level, one line per model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.publishing.chart_text import save_figure

GAMMA_FLOW = ("gamma_flow_coins", "gamma (price move)", "#4C78A8")  # (column, label, colour); scenario charts too
COMPONENTS = (
    GAMMA_FLOW,
    ("charm_flow_coins", "charm (time decay)", "#F58518"),
    ("expiry_flow_coins", "expiry roll-off", "#54A24B"),
    ("remainder_flow_coins", "remainder (cross term)", "#B279A2"),
)
MARKERS = {
    "spot": ("#222222", "--", "spot"),
    "zero_gamma": ("#7B3294", ":", "zero gamma"),
    "call_wall": ("#1A9641", "-.", "call wall"),
    "put_wall": ("#D7191C", "-.", "put wall"),
}
DPI = 100
GEX_AXIS = "dealer GEX (USD millions per 1 % move)"


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure  # lazy: matplotlib is only needed when publishing

    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def _tick(value: float) -> str:
    """An axis tick with thousands separators: 60,000 / -1,250.5 / 0.0125."""
    if value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _price(value: float) -> str:
    """A price for a label: whole USD above 1,000, cents below (SOL, XRP)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"


def _thousands(*axes) -> None:
    """Thousands separators on both axes of every given Axes."""
    from matplotlib.ticker import FuncFormatter

    for ax in axes:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))


def spot_axis(currency: str) -> str:
    return f"{currency} spot level (USD)"


def label_book_panels(top, bottom, currency: str, flow_label: str) -> None:
    """The labels, legends and tick format shared by the two-panel book charts (:func:`profile_chart` and
    ``depth_charts.scenario_chart``): GEX on top, hedge flow below, spot level along the bottom."""
    top.set_ylabel(GEX_AXIS)
    bottom.set_ylabel(flow_label)
    bottom.set_xlabel(spot_axis(currency))
    top.legend(fontsize=8, loc="upper left", framealpha=0.8)
    bottom.legend(fontsize=8, loc="upper right", framealpha=0.8)
    _thousands(top, bottom)


def _x_range(levels: np.ndarray, spot: float, sd: float, marks: dict) -> tuple[float, float]:
    """Spot +-max(4 sigma, 5 %), widened to show the marked levels, within the grid."""
    half = max(4.0 * sd, 0.05)
    lo, hi = spot * math.exp(-half), spot * math.exp(half)
    for value in marks.values():
        if value is not None and levels[0] <= value <= levels[-1]:
            lo, hi = min(lo, value * 0.99), max(hi, value * 1.01)
    return max(lo, levels[0]), min(hi, levels[-1])


def _mark(ax, marks: dict, band: tuple[float, float] | None, legend: bool) -> None:
    if band is not None:
        ax.axvspan(band[0], band[1], color="#999999", alpha=0.15, label="+-1 sigma" if legend else None)
    for key, value in marks.items():
        if value is None:
            continue
        color, style, label = MARKERS[key]
        label = f"{label} {_price(value)}"  # the level as a number, not only a line
        ax.axvline(value, color=color, linestyle=style, linewidth=1.2, label=label if legend else None)


def _stacked(ax, x, parts: list[tuple[np.ndarray, str, str]]) -> None:
    """Stacked step areas (one polygon per component, bar-like: each level owns the half steps around it),
    positive parts stacked upwards from 0 and negative parts downwards."""
    up = np.zeros_like(x)
    down = np.zeros_like(x)
    for values, label, color in parts:
        pos = np.clip(values, 0.0, None)
        neg = np.clip(values, None, 0.0)
        ax.fill_between(x, up, up + pos, step="mid", color=color, label=label, linewidth=0, alpha=0.85)
        ax.fill_between(x, down, down + neg, step="mid", color=color, linewidth=0, alpha=0.85)
        up += pos
        down += neg


def hedge_flow_chart(forecast: pl.DataFrame, summary: pl.DataFrame, path: Path) -> Path:
    """Chart one currency's forecast for one horizon (every model in ``forecast``) into ``path`` (PNG)."""
    models = forecast["model"].unique(maintain_order=True).to_list()
    fig = _figure(6.8 * len(models), 7.2)
    axes = fig.subplots(2, len(models), squeeze=False, sharex="col", height_ratios=[3, 2])
    head = forecast.row(0, named=True)
    for col, model in enumerate(models):
        rows = forecast.filter(pl.col("model") == model).sort("price_level")
        info = summary.filter(pl.col("model") == model).row(0, named=True)
        _flow_panels(axes[0][col], axes[1][col], rows, info, head["currency"], model)
    legend = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=min(len(legend), 10), fontsize=8)
    fig.suptitle(
        f"t0 {head['t0']:%Y-%m-%d %H:%M} UTC, snapshot {head['snapshot_ts']:%Y-%m-%d %H:%M:%S} UTC, "
        f"spot {head['spot']:,.2f} USD",
        fontsize=9,
    )
    save_figure(fig, path, "png")
    return path


def _flow_panels(top, bottom, rows: pl.DataFrame, info: dict, currency: str, model: str) -> None:
    """One model's column of :func:`hedge_flow_chart`: the flow by component in coins (``top``), the total in
    USD with the probability of each level (``bottom``). ``info`` is the model's FORECAST_SUMMARY row."""
    x = rows["price_level"].to_numpy()
    spot = info["spot"]
    sd = info["sigma_move_pct"] / 100.0
    marks = {
        "spot": spot,
        "zero_gamma": info["zero_gamma"],
        "call_wall": info["call_wall"],
        "put_wall": info["put_wall"],
    }
    band = (info["price_minus_1sigma"], info["price_plus_1sigma"])
    lo, hi = _x_range(x, spot, sd, marks)
    shown = (x >= lo) & (x <= hi)
    parts = [(rows[c].to_numpy()[shown], label, color) for c, label, color in COMPONENTS]
    _stacked(top, x[shown], parts)
    top.plot(x[shown], rows["hedge_flow_coins"].to_numpy()[shown], color="black", linewidth=1.6, label="total")
    top.axhline(0.0, color="#444444", linewidth=0.6)
    _mark(top, {k: v for k, v in marks.items() if v is not None and lo <= v <= hi}, band, legend=True)
    top.set_title(
        f"{currency} model {model}: dealer hedge flow to t0 + {info['horizon']} "
        f"({info['horizon_hours']:.1f} h)\nE[flow] {info['expected_flow_coins']:,.0f} coins, "
        f"E|flow| {info['expected_abs_flow_coins']:,.0f} coins, ATM vol {info['sigma_atm']:.1f} %",
        fontsize=10,
    )
    top.set_ylabel("hedge flow (coins; + = dealers buy)")
    top.grid(True, alpha=0.25)

    usd = rows["hedge_flow_usd"].to_numpy()[shown] / 1e6
    bottom.plot(x[shown], usd, color="black", linewidth=1.4, label="total flow")
    bottom.fill_between(x[shown], usd, 0.0, color="#4C78A8", alpha=0.25, linewidth=0)
    bottom.axhline(0.0, color="#444444", linewidth=0.6)
    _mark(bottom, {k: v for k, v in marks.items() if v is not None and lo <= v <= hi}, band, legend=False)
    bottom.set_ylabel("hedge flow (USD millions)")
    bottom.set_xlabel(f"{currency} price at t0 + h (USD)")
    bottom.grid(True, alpha=0.25)
    _thousands(top, bottom)
    prob = bottom.twinx()
    prob.plot(x[shown], rows["probability_weight"].to_numpy()[shown], color="#E45756", linewidth=1.0)
    prob.set_ylabel("probability of the level (per grid bin)", color="#E45756", fontsize=8)
    prob.tick_params(axis="y", labelcolor="#E45756", labelsize=7)
    prob.set_ylim(bottom=0.0)


def gex_profile_chart(profiles: pl.DataFrame, levels: pl.DataFrame | None, path: Path) -> Path:
    """Dealer GEX against spot level for one currency's snapshot, one line per model, into ``path`` (PNG)."""
    fig = _figure(10.0, 4.8)
    ax = fig.subplots()
    head = profiles.row(0, named=True)
    spot = None
    for model in profiles["model"].unique(maintain_order=True).to_list():
        rows = profiles.filter(pl.col("model") == model).sort("price_level")
        ax.plot(rows["price_level"], rows["dealer_gex_usd"] / 1e6, linewidth=1.6, label=f"{model}")
        at_spot = rows.filter(pl.col("pct_from_spot") == 0.0)
        if at_spot.height:
            spot = float(at_spot["price_level"][0])
        if levels is not None:
            lv = levels.filter(pl.col("model") == model)
            if lv.height and lv["zero_gamma"][0] is not None:
                ax.axvline(
                    lv["zero_gamma"][0],
                    color=ax.lines[-1].get_color(),
                    linestyle=":",
                    linewidth=1.2,
                    label=f"zero gamma ({model})",
                )
    marks = {}
    if spot is not None:
        marks["spot"] = spot
    if levels is not None and levels.height:
        marks["call_wall"] = levels["call_wall"][0]
        marks["put_wall"] = levels["put_wall"][0]
    _mark(ax, marks, None, legend=True)
    ax.axhline(0.0, color="#444444", linewidth=0.6)
    ax.set_title(
        f"{head['currency']} dealer gamma exposure by spot level, snapshot {head['snapshot_ts']:%Y-%m-%d %H:%M:%S} UTC "
        "(> 0: dealers long gamma, they sell rallies and buy dips)",
        fontsize=9,
    )
    ax.set_xlabel(spot_axis(head["currency"]))
    ax.set_ylabel(GEX_AXIS)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=8, loc="upper left", framealpha=0.8)
    _thousands(ax)
    save_figure(fig, path, "png")
    return path


def profile_chart(profile: pl.DataFrame, levels: pl.DataFrame | None, path: Path) -> Path:
    """One model's re-priced book for one snapshot: GEX (top) and hedge flow (bottom) per spot level, with
    spot, zero gamma and the call / put walls marked, into ``path`` (PNG)."""
    fig = _figure(10.0, 7.0)
    top, bottom = fig.subplots(2, 1, sharex=True)
    rows = profile.sort("price_level")
    head = rows.row(0, named=True)
    x = rows["price_level"].to_numpy()
    gex = rows["dealer_gex_usd"].to_numpy() / 1e6
    top.fill_between(x, gex, 0.0, where=gex >= 0, color="#1A9641", alpha=0.35, linewidth=0, label="dealers long gamma")
    top.fill_between(x, gex, 0.0, where=gex < 0, color="#D7191C", alpha=0.35, linewidth=0, label="dealers short gamma")
    top.plot(x, gex, color="#333333", linewidth=1.2)
    flow = rows["hedge_flow_coins"].to_numpy()
    bottom.plot(x, flow, color="#4C78A8", linewidth=1.6, label="hedge flow (coins, > 0 = dealers buy)")
    marks = (
        {"spot": float(rows.filter(pl.col("pct_from_spot") == 0.0)["price_level"][0])}
        if rows["pct_from_spot"].abs().min() == 0
        else {}
    )
    if levels is not None and levels.height:
        lv = levels.row(0, named=True)
        for key in ("zero_gamma", "call_wall", "put_wall"):
            if lv.get(key) is not None:
                marks[key] = lv[key]
    for ax, legend in ((top, True), (bottom, False)):
        _mark(ax, marks, None, legend=legend)
        ax.axhline(0.0, color="#444444", linewidth=0.6)
        ax.grid(True, alpha=0.25)
    # the stored profile is sticky-strike vol with forward delta; say so when the chart shows another convention
    conventions = [
        f"{head[col]} {what}"
        for col, default, what in (("vol_model", "sticky-strike", "vol"), ("delta_convention", "forward", "delta"))
        if head.get(col) not in (None, default)
    ]
    how = f" ({', '.join(conventions)})" if conventions else ""
    top.set_title(
        f"{head['currency']} {head['model']} dealer book re-priced by spot level{how}, snapshot "
        f"{head['snapshot_ts']:%Y-%m-%d %H:%M:%S} UTC",
        fontsize=10,
    )
    label_book_panels(top, bottom, head["currency"], f"hedge flow from spot ({head['currency']})")
    save_figure(fig, path)
    return path


__all__ = ["gex_profile_chart", "hedge_flow_chart", "profile_chart"]
