"""Plain-text rendering of small result tables for the terminal (table, csv, json)."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if abs(value) >= 1e6:
            return f"{value:,.0f}"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.4g}"
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if value.tzinfo else "")
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


def _column_cells(values: list) -> list[str]:
    """One format for every float of a column: as many decimals as its largest value warrants (0 from a
    million, 2 from 100, else 4), then the trailing zeros all cells share dropped (-2.0, 5.3, 441.5, not
    -2, 5.3, 441.50). A column of only tiny values (< 1e-3) is written in 4 significant digits."""
    floats = [v for v in values if isinstance(v, float) and math.isfinite(v)]
    if not floats:
        return [_cell(v) for v in values]
    biggest = max(abs(v) for v in floats)
    if 0 < biggest < 1e-3:
        return [f"{v:.4g}" if isinstance(v, float) and math.isfinite(v) else _cell(v) for v in values]
    decimals = 0 if biggest >= 1e6 else 2 if biggest >= 100 else 4
    fixed = {i: f"{v:,.{decimals}f}" for i, v in enumerate(values) if isinstance(v, float) and math.isfinite(v)}
    if decimals:
        spare = min(len(t) - len(t.rstrip("0")) for t in fixed.values())
        keep = decimals - min(spare, decimals)
        fixed = {i: f"{values[i]:,.{keep}f}" for i in fixed}
    return [fixed.get(i, _cell(v)) for i, v in enumerate(values)]


def render(columns: list[str], rows: list[tuple], fmt: str = "table") -> str:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                ["" if v is None else (v.isoformat() if isinstance(v, (datetime, date)) else v) for v in row]
            )
        return buf.getvalue().rstrip("\n")
    if fmt == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=_json_default, indent=1)
    by_column = [_column_cells([row[i] for row in rows]) for i in range(len(columns))]
    text = [[by_column[i][r] for i in range(len(columns))] for r in range(len(rows))]
    widths = [max([len(c)] + [len(r[i]) for r in text]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and rows for i in range(len(columns))
    ]

    def line(cells):
        return "  ".join(
            c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in text]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _json_default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def render_frame(frame, fmt: str = "table") -> str:
    return render(frame.columns, frame.rows(), fmt)


def render_transposed(frame, key: str) -> str:
    """One column per value of ``key`` (e.g. model), one row per other column: for a few wide rows."""
    heads = [str(v) for v in frame[key].to_list()]
    rows = [(col, *_column_cells(frame[col].to_list())) for col in frame.columns if col != key]
    return render([key, *heads], rows)
