"""The report's plain-words paragraph, generated from the numbers (never written by hand).

An effect is called measurable only when its 95 % interval excludes zero; otherwise the sentence says
"no measurable effect" (or "no measurable improvement" for the out-of-sample scores)."""

from __future__ import annotations

import math

import polars as pl

from transforms.grading.summary import GEX_HIGH_LOW, GEX_SIGN

HEADLINE_HORIZON = "24h"


def _known(lo: float, hi: float) -> bool:
    return math.isfinite(lo) and math.isfinite(hi)


def _ci(lo: float, hi: float, fmt: str = "{:+.2f}") -> str:
    if not _known(lo, hi):
        return "too few days for an interval"
    return f"95 % interval {fmt.format(lo)} to {fmt.format(hi)}"


def _contains_zero(lo: float, hi: float) -> bool:
    return not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0.0 <= hi


def _pick(frame: pl.DataFrame, **eq) -> dict | None:
    if frame.is_empty():
        return None
    for k, v in eq.items():
        frame = frame.filter(pl.col(k) == v)
    return frame.row(0, named=True) if frame.height else None


def _calibration_sentence(currency: str, ratios: pl.DataFrame, horizon: str) -> str | None:
    # the implied distribution is the same for every model: one model's rows tell it (naive when present)
    rows = ratios.filter((pl.col("currency") == currency) & (pl.col("horizon") == horizon))
    row = _pick(rows.sort(pl.col("model") != "naive", "model"), regime_kind="all")
    if row is None:
        return None
    head = f"{currency}: over {horizon} ({row['n']} forecasts on {row['days']} days), "
    if not _known(row["ci_low"], row["ci_high"]):
        return head + f"realised/implied move = {row['ratio']:.2f} (too few days for an interval)."
    if row["ci_high"] < 1.0:
        word = "smaller than"
    else:
        word = "larger than" if row["ci_low"] > 1.0 else "about as large as"
    return head + (
        f"realised moves were {word} the moves ATM implied volatility priced: realised/implied = {row['ratio']:.2f} "
        f"({_ci(row['ci_low'], row['ci_high'], '{:.2f}')})."
    )


def _verdict(d: dict, what: str) -> str:
    if not _known(d["ci_low"], d["ci_high"]):
        return f"too little data to tell the effect of {what}"
    if _contains_zero(d["ci_low"], d["ci_high"]):
        return f"no measurable effect of {what}"
    if d["ci_high"] < 0:
        return "moves were smaller when dealers held more gamma, as the pinning story claims"
    return "moves were larger when dealers held more gamma, against the pinning story"


def _difference(d: dict, label: str, what: str) -> str:
    return (
        f"realised/implied {label} differs by {d['difference']:+.2f} ({_ci(d['ci_low'], d['ci_high'])}; "
        f"{d['n_a']} vs {d['n_b']} forecasts): {_verdict(d, what)}"
    )


def _one_sign(ratios: pl.DataFrame) -> str | None:
    signs = ratios.filter(pl.col("regime_kind") == "gex_sign")
    return f"total dealer GEX was {signs['regime'][0]} at every graded forecast" if signs.height == 1 else None


def _gamma_sentence(currency: str, model: str, tables: dict[str, pl.DataFrame], horizon: str) -> str | None:
    key = {"currency": currency, "model": model, "horizon": horizon}
    diffs = tables.get("regime_difference", pl.DataFrame())
    size = _pick(diffs, **key, comparison=GEX_HIGH_LOW)
    sign = _pick(diffs, **key, comparison=GEX_SIGN)
    parts = []
    if size is not None:
        parts.append(_difference(size, "above minus below the median GEX (coins per 1 % move)", "the size of GEX"))
    if sign is not None:
        parts.append(_difference(sign, "under positive minus negative GEX", "the sign of dealer gamma"))
    else:
        ratios = tables["ratio_by_regime"].filter(
            (pl.col("currency") == currency) & (pl.col("model") == model) & (pl.col("horizon") == horizon)
        )
        parts.append(_one_sign(ratios))
    parts = [p for p in parts if p]
    if not parts:
        return None
    text = f"With {model} positioning, " + "; ".join(parts) + "."
    b = _pick(tables.get("regression", pl.DataFrame()), **key, term="gex_kcoins")
    if b is not None:
        extra = "no measurable effect" if _contains_zero(b["ci_low"], b["ci_high"]) else "a measurable effect"
        interval = _ci(b["ci_low"] * 100, b["ci_high"] * 100, "{:+.3f}")
        text += (
            f" Holding the implied move fixed, 1,000 more coins of dealer GEX per 1 % move change the absolute "
            f"log move by {b['coef'] * 100:+.3f} percentage points ({interval}, Newey-West): {extra}."
        )
    return text


def _score_part(row: dict, score: str, other: str, label: str, scale: float, unit: str) -> str:
    key = f"{score}_gex_minus_{other}"
    lo, hi = row[f"{key}_low"], row[f"{key}_high"]
    if not _known(lo, hi):
        verdict = "too few days to tell"
    elif _contains_zero(lo, hi):
        verdict = "no measurable improvement"
    else:
        verdict = "better" if hi < 0 else "worse"
    interval = _ci(lo * scale, hi * scale, "{:+.1f}" if scale > 1 else "{:+.3f}")
    value = f"{row[key] * scale:+.1f}" if scale > 1 else f"{row[key]:+.3f}"
    return f"against {label} {value}{unit} ({interval}): {verdict}"


def _oos_sentence(currency: str, model: str, oos: pl.DataFrame, horizon: str) -> str | None:
    row = _pick(oos, currency=currency, model=model, horizon=horizon)
    if row is None:
        return None
    parts = [
        _score_part(row, "crps", "const", "a single fitted scale (no GEX)", 1e4, " bp of CRPS"),
        _score_part(row, "crps", "plain", "plain ATM IV", 1e4, " bp of CRPS"),
        _score_part(row, "log_score", "const", "the single scale", 1.0, " in log score"),
    ]
    return (
        f"Out of sample ({row['n_test']} {model} forecasts after {row['fit_until']:%Y-%m-%d}, scales fitted on "
        f"{row['n_fit']}: k = {row['k_high']:.2f} above and {row['k_low']:.2f} below the in-sample median GEX, "
        f"{row['k_all']:.2f} for all), the GEX-scaled distribution scored " + "; ".join(parts) + "."
    )


def _intervals(tables: dict[str, pl.DataFrame], horizon: str) -> list[tuple[float, float]]:
    """The (low, high) of every effect the paragraph states at ``horizon``."""
    out = []
    diffs = tables.get("regime_difference", pl.DataFrame())
    reg = tables.get("regression", pl.DataFrame())
    oos = tables.get("out_of_sample", pl.DataFrame())
    if not diffs.is_empty():
        out += diffs.filter(pl.col("horizon") == horizon).select("ci_low", "ci_high").rows()
    if not reg.is_empty():
        out += (
            reg.filter((pl.col("horizon") == horizon) & (pl.col("term") == "gex_kcoins"))
            .select("ci_low", "ci_high")
            .rows()
        )
    if not oos.is_empty():
        for key in ("crps_gex_minus_const", "crps_gex_minus_plain", "log_score_gex_minus_const"):
            out += oos.filter(pl.col("horizon") == horizon).select(f"{key}_low", f"{key}_high").rows()
    return [(lo, hi) for lo, hi in out if _known(lo, hi)]


def multiple_comparisons(tables: dict[str, pl.DataFrame], horizon: str = HEADLINE_HORIZON) -> str | None:
    """How many of the stated effects have an interval excluding zero, against what chance alone gives."""
    found = _intervals(tables, horizon)
    if not found:
        return None
    hits = sum(not _contains_zero(lo, hi) for lo, hi in found)
    return (
        f"Of the {len(found)} effects of dealer gamma stated above, {hits} have a 95 % interval that excludes "
        f"zero; about {len(found) / 20:.1f} would by chance alone, so read single hits with care."
    )


def paragraph(tables: dict[str, pl.DataFrame], horizon: str = HEADLINE_HORIZON) -> str:
    """One paragraph per currency from the report tables (ratio_by_regime, regime_difference, regression,
    out_of_sample), for ``horizon``; empty tables give a sentence saying so."""
    ratios = tables.get("ratio_by_regime", pl.DataFrame())
    if ratios.is_empty():
        return "No forecast could be graded: no recorded index price followed any forecast within its tolerance."
    out = []
    for currency in sorted(ratios["currency"].unique().to_list()):
        sentences = [_calibration_sentence(currency, ratios, horizon)]
        for model in sorted(ratios.filter(pl.col("currency") == currency)["model"].unique().to_list()):
            sentences.append(_gamma_sentence(currency, model, tables, horizon))
            sentences.append(_oos_sentence(currency, model, tables.get("out_of_sample", pl.DataFrame()), horizon))
        out.append(" ".join(s for s in sentences if s))
    out.append(multiple_comparisons(tables, horizon) or "")
    return "\n\n".join(p for p in out if p)


__all__ = ["HEADLINE_HORIZON", "multiple_comparisons", "paragraph"]
