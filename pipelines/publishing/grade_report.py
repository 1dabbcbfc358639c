"""The grading report ``<data-dir>/exports/grades/``: index.html, PNG charts, Parquet + CSV of every table.

Built in a hidden sibling folder and swapped in with two renames, so readers see the old report or the new
one, never half of one. The numbers come from ``transforms.grading.summary``; the paragraph from
``transforms.grading.words``.
"""

from __future__ import annotations

import html
import math
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.store.lake_tables import Table
from transforms.grading import summary as gs
from transforms.grading.scores import PATH_MAX_GAP_MS, TOLERANCE_MS
from transforms.grading.words import HEADLINE_HORIZON, paragraph

CSV_DATETIME = "%Y-%m-%dT%H:%M:%S%.3fZ"
_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 5px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } img { max-width: 100%; border: 1px solid #eee; margin: 6px 0; }
p.words { font-size: 15px; max-width: 1100px; line-height: 1.45; } .note { color: #555; font-size: 13px; }
"""


def report_tables(grades: pl.DataFrame, fit_until: datetime | None) -> dict[str, pl.DataFrame]:
    return {
        "counts": gs.counts(grades),
        "ratio_by_regime": gs.ratio_by_regime(grades),
        "regime_difference": gs.regime_difference(grades),
        "calibration": gs.calibration(grades),
        "pit_histogram": gs.pit_histogram(grades),
        "regression": gs.regression(grades),
        "out_of_sample": gs.out_of_sample(grades, fit_until),
    }


# ---------------------------------------------------------------- charts


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


_MODEL_COLOURS = {"naive": "#4C78A8", "customer_long": "#F58518"}
_PANELS = (
    ("GEX sign, distance to zero gamma", ("all", "gex_sign", "zero_gamma_distance")),
    ("GEX quintile (coins per 1 %)", ("gex_quintile",)),
)


def _ratio_panel(ax, part: pl.DataFrame, title: str) -> None:
    part = part.unique(["regime_kind", "regime", "model"], keep="first", maintain_order=True)
    part = part.filter((pl.col("regime_kind") != "all") | (pl.col("model") == part["model"].min()))
    labels = ["all" if k == "all" else str(r) for k, r in part.select("regime_kind", "regime").iter_rows()]
    y = part["ratio"].to_numpy()
    err = np.abs(np.vstack([y - part["ci_low"].to_numpy(), part["ci_high"].to_numpy() - y]))
    colours = [
        "#999999" if k == "all" else _MODEL_COLOURS.get(m, "#54A24B")
        for m, k in part.select("model", "regime_kind").iter_rows()
    ]
    ax.bar(range(len(y)), y, yerr=np.nan_to_num(err), color=colours, capsize=3)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=m) for m, c in _MODEL_COLOURS.items()], fontsize=7, loc="lower right")
    ax.axhline(1.0, color="#222", ls="--", lw=1)
    ax.set_xticks(range(len(y)), labels, fontsize=7)
    ax.set_title(title, fontsize=10)


def ratio_chart(ratios: pl.DataFrame, path: Path) -> Path:
    """Realised/implied move ratio by regime (GEX sign, distance to zero gamma; GEX quintiles), per currency
    and model (naive blue, customer_long orange), 95 % intervals as error bars."""
    rows = ratios.filter(pl.col("horizon") == HEADLINE_HORIZON) if not ratios.is_empty() else ratios
    currencies = sorted(rows["currency"].unique().to_list()) if not rows.is_empty() else []
    fig = _figure(13, 3.6 * max(1, len(currencies)))
    for i, currency in enumerate(currencies):
        for j, (name, kinds) in enumerate(_PANELS):
            part = rows.filter((pl.col("currency") == currency) & pl.col("regime_kind").is_in(list(kinds)))
            part = part.sort("regime_kind", "model", "regime")
            ax = fig.add_subplot(len(currencies), len(_PANELS), i * len(_PANELS) + j + 1)
            _ratio_panel(ax, part, f"{currency}: realised / implied move, {HEADLINE_HORIZON}, by {name}")
    fig.savefig(path)
    return path


def pit_chart(pit: pl.DataFrame, path: Path) -> Path:
    """PIT histograms (naive rows: the implied distribution is the same for every model), per currency and horizon."""
    rows = pit.filter(pl.col("model") == "naive") if not pit.is_empty() else pit
    keys = sorted(set(rows.select("currency", "horizon").iter_rows())) if not rows.is_empty() else []
    fig = _figure(11, 3.2 * max(1, math.ceil(len(keys) / 3)))
    for i, (currency, horizon) in enumerate(keys):
        ax = fig.add_subplot(max(1, math.ceil(len(keys) / 3)), 3, i + 1)
        part = rows.filter((pl.col("currency") == currency) & (pl.col("horizon") == horizon)).sort("bin")
        n = part["count"].sum()
        ax.bar(
            part["bin_low"].to_numpy() + 0.05,
            part["count"].to_numpy() / max(n, 1) * 10,
            width=0.1,
            color="#F58518",
            edgecolor="white",
        )
        ax.axhline(1.0, color="#222", ls="--", lw=1)
        ax.set_xlim(0, 1)
        ax.set_title(f"{currency} {horizon}: PIT density (n={n})", fontsize=10)
    fig.savefig(path)
    return path


def oos_chart(oos: pl.DataFrame, path: Path) -> Path:
    """Mean CRPS difference (basis points of log return, < 0 = better) with 95 % intervals."""
    fig = _figure(11, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    if not oos.is_empty():
        rows = oos.sort("currency", "model", "horizon")
        labels, y, lo, hi = [], [], [], []
        for r in rows.iter_rows(named=True):
            for other in ("const", "plain"):
                key = f"crps_gex_minus_{other}"
                labels.append(f"{r['currency']} {r['model']}\n{r['horizon']} vs {other}")
                y.append(r[key] * 1e4)
                lo.append(r[f"{key}_low"] * 1e4)
                hi.append(r[f"{key}_high"] * 1e4)
        y, lo, hi = np.array(y), np.array(lo), np.array(hi)
        ax.errorbar(range(len(y)), y, yerr=np.nan_to_num(np.abs(np.vstack([y - lo, hi - y]))), fmt="o", capsize=4)
        ax.set_xticks(range(len(y)), labels, fontsize=7)
    ax.axhline(0.0, color="#222", ls="--", lw=1)
    ax.set_ylabel("CRPS, GEX-scaled minus other (bp)")
    ax.set_title("Out of sample: GEX-conditioned scale against a constant scale and plain ATM IV")
    fig.savefig(path)
    return path


# ---------------------------------------------------------------- HTML


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, datetime):
        return f"{v:%Y-%m-%d %H:%M}"
    return html.escape(str(v))


def _table(frame: pl.DataFrame, limit: int = 200) -> str:
    if frame.is_empty():
        return "<p class='note'>(nothing to show)</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in frame.head(limit).iter_rows()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _data_note(grades: pl.DataFrame, sources: dict) -> str:
    used = grades.filter(pl.col("status") == "graded")["realised_source"].value_counts().sort("realised_source")
    by = ", ".join(f"{s}: {n}" for s, n in used.iter_rows()) or "none"
    ungraded = grades.filter(pl.col("status") != "graded").group_by("horizon").len().sort("horizon")
    missing = ", ".join(f"{h}: {n}" for h, n in ungraded.iter_rows()) or "none"
    tardis = sources.get("tardis_dir") or "not given (stored derivative_ticker rows, if any, were used)"
    return (
        f"<p class='note'>Data: stored option snapshots (their index_price) and recorded Tardis derivative_ticker "
        f"index rows (from {html.escape(str(tardis))}) under {html.escape(str(sources.get('data_dir')))}. "
        f"Real recordings only; never intraday paths interpolated between recordings. Realised price = the latest "
        f"recording at or before t0 + h within {TOLERANCE_MS // 60000} min (after t0). Graded forecasts by price "
        f"source: {by}. Not graded (no recording in the window), by horizon: {missing}. "
        f"Wall touches need recordings at most {PATH_MAX_GAP_MS // 60000} min apart over the horizon.</p>"
    )


def index_html(
    tables: dict[str, pl.DataFrame], grades: pl.DataFrame, sources: dict, charts: list[str], fit_until
) -> str:
    words = "".join(f"<p class='words'>{html.escape(p)}</p>" for p in paragraph(tables).split("\n\n"))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>gexflow forecast grades</title>",
        f"<style>{_CSS}</style></head><body><h1>How good are the flow forecasts?</h1>",
        f"<h2>In plain words</h2>{words}",
        _data_note(grades, sources),
        f"<p class='note'>Out-of-sample split: fitted on forecasts whose horizon ended by "
        f"{fit_until or '(no --fit-until given)'}, scored on forecasts made after it.</p>",
        *[f"<img src='{c}' alt='{c}'>" for c in charts],
    ]
    for name, frame in tables.items():
        parts.append(f"<h2>{name.replace('_', ' ')}</h2>{_table(frame)}")
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------- files


def _write(frame: pl.DataFrame, stem: Path) -> None:
    frame.write_parquet(stem.with_suffix(".parquet"), compression="zstd")
    frame.write_csv(stem.with_suffix(".csv"), datetime_format=CSV_DATETIME)


def _swap_in(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.old")
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def write_report(data_dir: Path, grades: pl.DataFrame, *, fit_until: datetime | None, sources: dict) -> Path:
    """Build and publish ``exports/grades/``; returns the folder."""
    final = Path(data_dir) / "exports" / "grades"
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".grades.{uuid.uuid4().hex[:12]}.tmp")
    tmp.mkdir()
    try:
        tables = report_tables(grades, fit_until)
        _write(grades, tmp / Table.FORECAST_GRADES)
        for name, frame in tables.items():
            _write(frame, tmp / name)
        charts = [
            ratio_chart(tables["ratio_by_regime"], tmp / "ratio_by_regime.png").name,
            pit_chart(tables["pit_histogram"], tmp / "pit.png").name,
            oos_chart(tables["out_of_sample"], tmp / "out_of_sample.png").name,
        ]
        (tmp / "summary.txt").write_text(paragraph(tables) + "\n")
        (tmp / "index.html").write_text(index_html(tables, grades, sources, charts, fit_until))
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


__all__ = ["report_tables", "write_report"]
