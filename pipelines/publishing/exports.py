"""Published daily forecasts: ``<data-dir>/exports/flow_forecast/date=<YYYY-MM-DD>/``.

Per currency C (base coin):

    C_forecast.parquet|csv|json   FLOW_FORECAST rows (transforms/frames/schemas/forecast.py):
                                  one per (model, horizon, price level)
    C_summary.parquet|csv|json    FORECAST_SUMMARY rows: one per (model, horizon)
    C_rolloff.parquet|csv|json    EXPIRY_ROLLOFF rows: one per (model, upcoming expiry)
    C_flow_<horizon>.png          hedge flow per price level stacked by component (pipelines/publishing/charts.py)
    C_gex.png                     dealer GEX profile
    C_exposure_by_expiry.*, C_history.*, C_gex_by_expiry.png, C_gex_heatmap.png, C_vanna_by_strike.png,
    C_history.png                 depth tables and charts (pipelines/publishing/depth_exports.py)
and one ``index.html`` with the summary tables and the charts (relative links; no external CSS, JS or
fonts, so it reads offline).

CSV: header row, comma separated, timestamps ISO 8601 UTC with milliseconds and 'Z', dates YYYY-MM-DD,
empty cell = NULL. JSON: one array of row objects; timestamps ISO 8601 with '+00:00'. Read them back with
the schema dicts to get exact dtypes (``pl.read_csv(path, schema=FLOW_FORECAST)``). DuckDB reads the folder
name ``date=<D>`` as a hive partition and adds a ``date`` column unless told not to:
``select * from read_parquet('.../BTC_forecast.parquet', hive_partitioning = false)``.

Re-publishing a date replaces its folder: the whole folder is built in a hidden temp sibling
(``.date=<D>.<id>.tmp``), then the old folder is renamed away (``.date=<D>.<id>.old``), the new one
renamed in, and the old one deleted. Between the two renames (two rename(2) calls, microseconds apart)
``date=<D>`` does not exist: a reader opening a file in that window gets "not found" and must retry; a
reader that already has a file open keeps reading the old copy. If the process dies in that window the
date is missing until the next publish, which also removes leftover hidden siblings of that date. The
caller holds the writer lock (``forecast_cycle`` does), so two publishers never race.
"""

from __future__ import annotations

import html
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from pipelines.store.lake_tables import Table
from transforms.frames.schemas import EXPIRY_ROLLOFF, FLOW_FORECAST, FORECAST_SUMMARY, check

EXPORTS = Path("exports") / Table.FLOW_FORECAST
CSV_DATETIME = "%Y-%m-%dT%H:%M:%S%.3fZ"
DATA_FORMATS = ("parquet", "csv", "json")


@dataclass
class ForecastExport:
    folder: Path  # exports/flow_forecast/date=<D>
    index_html: Path
    data_files: list[Path] = field(default_factory=list)
    charts: list[Path] = field(default_factory=list)


def export_folder(data_dir: Path, forecast_date: date) -> Path:
    return Path(data_dir) / EXPORTS / f"date={forecast_date:%Y-%m-%d}"


# ---------------------------------------------------------------- files


def write_table(frame: pl.DataFrame, stem: Path) -> list[Path]:
    """``stem``.parquet, .csv and .json of ``frame``."""
    paths = [stem.with_suffix(f".{fmt}") for fmt in DATA_FORMATS]
    frame.write_parquet(paths[0], compression="zstd", statistics=True)
    frame.write_csv(paths[1], datetime_format=CSV_DATETIME)
    frame.write_json(paths[2])
    return paths


# ---------------------------------------------------------------- HTML

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 5px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 6px 0; }
.pos { color: #1a7f37; } .neg { color: #c62828; } .note { color: #555; font-size: 13px; max-width: 1100px; }
"""

_SUMMARY_COLUMNS = [
    ("model", "model", "text"),
    ("horizon", "horizon", "text"),
    ("horizon_hours", "hours", "num1"),
    ("sigma_atm", "ATM vol %", "num1"),
    ("sigma_move_pct", "1σ move %", "num2"),
    ("expected_flow_coins", "E[flow] coins", "flow"),
    ("expected_flow_usd", "E[flow] USD", "usd"),
    ("expected_abs_flow_coins", "E|flow| coins", "num0"),
    ("expected_abs_flow_usd", "E|flow| USD", "usdabs"),
    ("flow_minus_2sigma_coins", "−2σ coins", "flow"),
    ("flow_minus_1sigma_coins", "−1σ coins", "flow"),
    ("flow_at_spot_coins", "at spot coins", "flow"),
    ("flow_plus_1sigma_coins", "+1σ coins", "flow"),
    ("flow_plus_2sigma_coins", "+2σ coins", "flow"),
    ("charm_flow_coins", "charm coins", "flow"),
    ("expiry_flow_coins", "expiry coins", "flow"),
    ("zero_gamma", "zero gamma USD", "num0"),
]

_ROLLOFF_COLUMNS = [
    ("model", "model", "text"),
    ("expiration_ts", "expiry (UTC)", "ts"),
    ("hours_to_expiry", "hours", "num1"),
    ("open_interest", "open interest (contracts)", "num1"),
    ("dealer_gex_usd", "dealer GEX (USD per 1 %)", "usd"),
    ("dealer_delta_coins", "dealer delta coins", "flow"),
    ("dealer_charm_coins_per_day", "dealer charm coins/day", "flow"),
    ("unwind_flow_coins", "unwind flow coins", "flow"),
]


def _usd(value: float) -> str:
    size = abs(value)
    for cut, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= cut:
            return f"{value / cut:,.2f}{suffix}"
    return f"{value:,.0f}"


def _level(value) -> str:
    return "–" if value is None else f"{value:,.0f} USD"


def _cell(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<td>–</td>"
    if kind == "text":
        return f'<td class="text">{html.escape(str(value))}</td>'
    if kind == "ts":
        return f'<td class="text">{value:%Y-%m-%d %H:%M}</td>' if isinstance(value, datetime) else f"<td>{value}</td>"
    cls = ""
    if kind in ("flow", "usd"):
        cls = ' class="pos"' if value > 0 else ' class="neg"' if value < 0 else ""
    text = {
        "num0": lambda v: f"{v:,.0f}",
        "num1": lambda v: f"{v:,.1f}",
        "num2": lambda v: f"{v:,.2f}",
        "flow": lambda v: f"{v:+,.1f}",
        "usd": lambda v: ("+" if v > 0 else "") + _usd(v),
        "usdabs": _usd,
    }[kind](float(value))
    return f"<td{cls}>{text}</td>"


def _table(frame: pl.DataFrame, columns, css_id: str) -> str:
    head = "".join(
        f'<th class="{"text" if kind == "text" or kind == "ts" else ""}">{html.escape(label)}</th>'
        for _, label, kind in columns
    )
    body = "".join(
        "<tr>" + "".join(_cell(row[c], kind) for c, _, kind in columns) + "</tr>" for row in frame.iter_rows(named=True)
    )
    return f'<table id="{css_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def index_html(
    forecast_date: date,
    summary: pl.DataFrame,
    rolloff: pl.DataFrame | None,
    charts: dict[str, list[Path]],
    data_files: dict[str, list[Path]],
) -> str:
    """The offline page: per currency the summary table, the charts and the roll-off of the next expiries."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>gexflow flow forecast {forecast_date:%Y-%m-%d}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>gexflow daily dealer hedge-flow forecast — {forecast_date:%Y-%m-%d}</h1>",
        '<p class="note">Hedge flow = coins dealers must trade to stay delta-hedged between t0 and t0 + h if spot '
        "ends at the level; <b>positive = dealers buy</b>, negative = dealers sell. USD = coins × price level. "
        "Components: gamma (the price move at t0), charm (time decay at spot), expiry (unwinding the hedges of "
        "options that settle within the horizon), remainder (the cross term); they sum to the total. Expected "
        "values weight the levels by a log-normal distribution with the ATM implied vol to t0 + h; ±kσ = spot × "
        "exp(±k σ √(h/8760)). GEX in USD per 1 % move; &gt; 0 = dealers long gamma. Models: naive = dealers long "
        "calls, short puts; customer_long = dealers short every option.</p>",
        '<p class="note">Why E[flow] in coins and in USD can have opposite signs: the USD figure weights each '
        "level's coins by that level's price, E[flow × price], not E[flow] × spot. Long gamma, dealers buy at the "
        "low levels (cheap) and sell at the high ones (dear), so a small expected purchase in coins can be an "
        "expected sale in USD; short gamma, the other way round. Both are right: coins say how much of the "
        "underlying changes hands, USD how much money.</p>",
    ]
    for currency in summary["currency"].unique(maintain_order=True).to_list():
        rows = summary.filter(pl.col("currency") == currency).sort("model", "horizon_hours")
        head = rows.row(0, named=True)
        parts += [
            f'<h2 id="{html.escape(currency)}">{html.escape(currency)}</h2>',
            f'<p class="note">spot {head["spot"]:,.2f} USD; call wall {_level(head["call_wall"])}; put wall '
            f"{_level(head['put_wall'])}; t0 {head['t0']:%Y-%m-%d %H:%M:%S} UTC; snapshot "
            f"{head['snapshot_ts']:%Y-%m-%d %H:%M:%S} UTC.</p>",
            "<h3>Summary</h3>",
            _table(rows, _SUMMARY_COLUMNS, f"summary-{html.escape(currency)}"),
        ]
        for chart in charts.get(currency, []):
            name = html.escape(chart.name)
            from pipelines.publishing.chart_text import png_words

            alt = html.escape(png_words(chart).get("Title") or chart.name, quote=True)
            parts.append(f'<div><img src="{name}" alt="{alt}"></div>')
        if rolloff is not None:
            upcoming = (
                rolloff.filter(pl.col("currency") == currency)
                .filter(pl.col("expiration_ts").rank("dense").over("model") <= 5)
                .sort("model", "expiration_ts")
            )
            parts += [
                "<h3>Next expiries: what leaves the dealer book (greeks at the snapshot)</h3>",
                _table(upcoming, _ROLLOFF_COLUMNS, f"rolloff-{html.escape(currency)}"),
            ]
        links = " · ".join(
            f'<a href="{html.escape(p.name)}">{html.escape(p.name)}</a>' for p in data_files.get(currency, [])
        )
        parts.append(f'<p class="note">Data: {links}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------- publishing


# A build folder younger than this may belong to another forecast still rendering (builds run outside the
# writer lock); older ones are leftovers of a killed run.
LEFTOVER_AGE_S = 3600.0


def _clean_leftovers(root: Path, name: str, keep: Path) -> None:
    now = time.time()
    for stale in root.glob(f".{name}.*"):
        if stale == keep or not stale.is_dir() or stale.suffix not in (".tmp", ".old"):
            continue
        try:
            young = stale.suffix == ".tmp" and now - stale.stat().st_mtime < LEFTOVER_AGE_S
        except FileNotFoundError:
            continue
        if not young:
            shutil.rmtree(stale, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` (a directory) by ``tmp``: rename old away, rename new in, delete old."""
    old = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.old")
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class BuiltExport:
    """A complete export folder built under a hidden temporary name, not yet visible."""

    tmp: Path
    final: Path
    data: dict[str, list[Path]]
    pictures: dict[str, list[Path]]

    def swap_in(self) -> ForecastExport:
        """Replace ``exports/flow_forecast/date=<D>/`` by this build (two renames; run under the writer lock)."""
        try:
            _clean_leftovers(self.final.parent, self.final.name, keep=self.tmp)
            _swap_in(self.tmp, self.final)
        except BaseException:
            self.discard()
            raise
        moved = lambda p: self.final / p.name  # noqa: E731 - the built files now live in the final folder
        return ForecastExport(
            folder=self.final,
            index_html=self.final / "index.html",
            data_files=[moved(p) for paths in self.data.values() for p in paths],
            charts=[moved(p) for paths in self.pictures.values() for p in paths],
        )

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def build_forecast_exports(
    data_dir: Path,
    forecast_date: date,
    forecast: pl.DataFrame,
    summary: pl.DataFrame,
    *,
    rolloff: pl.DataFrame | None = None,
    profiles: pl.DataFrame | None = None,
    levels: pl.DataFrame | None = None,
    depth=None,
) -> BuiltExport:
    """Build the files of ``exports/flow_forecast/date=<D>/`` for every currency of ``forecast`` in a hidden
    temporary folder beside it (charts take seconds, so this runs before the writer lock is taken).

    ``forecast``/``summary``/``rolloff`` are FLOW_FORECAST / FORECAST_SUMMARY / EXPIRY_ROLLOFF frames;
    ``profiles`` (GEX_PROFILE) and ``levels`` (KEY_LEVELS) add the GEX chart; ``depth``
    (:class:`pipelines.publishing.depth_exports.DepthExport`) adds exposure by expiry, the 30-day history and
    their charts.
    """
    from pipelines.publishing import charts as charting

    check(forecast, FLOW_FORECAST, "export forecast")
    check(summary, FORECAST_SUMMARY, "export summary")
    if rolloff is not None:
        check(rolloff, EXPIRY_ROLLOFF, "export rolloff")
    final = export_folder(data_dir, forecast_date)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{final.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()
    try:
        data: dict[str, list[Path]] = {}
        pictures: dict[str, list[Path]] = {}
        for currency in forecast["currency"].unique(maintain_order=True).to_list():
            mine = pl.col("currency") == currency
            cf, cs = forecast.filter(mine), summary.filter(mine)
            data[currency] = _currency_tables(tmp, currency, cf, cs, rolloff)
            pictures[currency] = _currency_charts(tmp, currency, cf, cs)
            if profiles is not None and profiles.filter(mine).height:
                lv = levels.filter(mine) if levels is not None else None
                pictures[currency].append(
                    charting.gex_profile_chart(profiles.filter(mine), lv, tmp / f"{currency}_gex.png")
                )
            if depth is not None:
                more_data, more_charts = depth.write(tmp, currency)
                data[currency] += more_data
                pictures[currency] += more_charts
        page = index_html(forecast_date, summary, rolloff, pictures, data)
        (tmp / "index.html").write_text(page, encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuiltExport(tmp, final, data, pictures)


def _currency_tables(tmp: Path, currency: str, cf: pl.DataFrame, cs: pl.DataFrame, rolloff) -> list[Path]:
    """C_forecast, C_summary and (with ``rolloff``) C_rolloff in every data format."""
    paths = write_table(cf, tmp / f"{currency}_forecast") + write_table(cs, tmp / f"{currency}_summary")
    if rolloff is not None:
        paths += write_table(rolloff.filter(pl.col("currency") == currency), tmp / f"{currency}_rolloff")
    return paths


def _currency_charts(tmp: Path, currency: str, cf: pl.DataFrame, cs: pl.DataFrame) -> list[Path]:
    """C_flow_<horizon>.png per horizon, shortest first."""
    from pipelines.publishing import charts as charting

    return [
        charting.hedge_flow_chart(
            cf.filter(pl.col("horizon") == horizon),
            cs.filter(pl.col("horizon") == horizon),
            tmp / f"{currency}_flow_{horizon}.png",
        )
        for horizon in cf.sort("horizon_hours")["horizon"].unique(maintain_order=True).to_list()
    ]


def publish_forecast_exports(data_dir: Path, forecast_date: date, forecast: pl.DataFrame, summary: pl.DataFrame, **kw):
    """Build ``exports/flow_forecast/date=<D>/`` (see :func:`build_forecast_exports`) and swap it in."""
    return build_forecast_exports(data_dir, forecast_date, forecast, summary, **kw).swap_in()


__all__ = [
    "BuiltExport",
    "ForecastExport",
    "build_forecast_exports",
    "export_folder",
    "index_html",
    "publish_forecast_exports",
    "write_table",
]
