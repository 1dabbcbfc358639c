"""The report's plain-words paragraph, generated from the numbers (never written by hand).

An effect is called measurable only when its 95 % interval excludes zero; otherwise the sentence says
"no measurable effect" (or "no measurable improvement" for the out-of-sample scores)."""

from __future__ import annotations

import math

import polars as pl

HEADLINE_HORIZON = "24h"


def _ci(lo: float, hi: float, fmt: str = "{:+.2f}") -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "interval not available"
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
    word = "smaller" if row["ci_high"] < 1.0 else "larger" if row["ci_low"] > 1.0 else "about as large as"
    than = "" if word.startswith("about") else " than"
    return (
        f"{currency}: over {horizon} ({row['n']} forecasts on {row['days']} days), realised moves were {word}{than} "
        f"the moves ATM implied volatility priced: realised/implied = {row['ratio']:.2f} "
        f"({_ci(row['ci_low'], row['ci_high'], '{:.2f}')})."
    )


def _one_sign(currency: str, model: str, ratios: pl.DataFrame, horizon: str) -> str | None:
    signs = ratios.filter(
        (pl.col("currency") == currency) & (pl.col("model") == model) & (pl.col("horizon") == horizon)
    ).filter(pl.col("regime_kind") == "gex_sign")
    if signs.height != 1:
        return None
    return (
        f"With {model} positioning total dealer GEX was {signs['regime'][0]} at every graded forecast, so the "
        "effect of its sign cannot be measured here."
    )


def _gamma_sentence(currency: str, model: str, tables: dict[str, pl.DataFrame], horizon: str) -> str | None:
    d = _pick(tables.get("sign_difference", pl.DataFrame()), currency=currency, model=model, horizon=horizon)
    reg = tables.get("regression", pl.DataFrame())
    b = _pick(reg, currency=currency, model=model, horizon=horizon, term="gex_positive")
    if d is None:
        return _one_sign(currency, model, tables["ratio_by_regime"], horizon)
    if _contains_zero(d["ci_low"], d["ci_high"]):
        verdict = "no measurable effect of the sign of dealer gamma"
    elif d["ci_high"] < 0:
        verdict = "moves were smaller under positive dealer gamma, as the pinning story claims"
    else:
        verdict = "moves were larger under positive dealer gamma, against the pinning story"
    text = (
        f"With {model} positioning the ratio under positive minus negative GEX is {d['difference']:+.2f} "
        f"({_ci(d['ci_low'], d['ci_high'])}; {d['n_pos']} vs {d['n_neg']} forecasts): {verdict}."
    )
    if b is not None:
        extra = "no measurable effect" if _contains_zero(b["ci_low"], b["ci_high"]) else "a measurable effect"
        text += (
            f" Holding the implied move fixed, positive GEX changes the absolute log move by "
            f"{b['coef'] * 100:+.2f} percentage points ({_ci(b['ci_low'] * 100, b['ci_high'] * 100)}, "
            f"Newey-West): {extra}."
        )
    return text


def _oos_sentence(currency: str, model: str, oos: pl.DataFrame, horizon: str) -> str | None:
    row = _pick(oos, currency=currency, model=model, horizon=horizon)
    if row is None:
        return None
    parts = []
    for other, label in (("const", "a single fitted scale (no GEX)"), ("plain", "plain ATM IV")):
        key = f"crps_gex_minus_{other}"
        lo, hi = row[f"{key}_low"], row[f"{key}_high"]
        if _contains_zero(lo, hi):
            verdict = "no measurable improvement"
        else:
            verdict = "better" if hi < 0 else "worse"
        parts.append(
            f"against {label} {row[key] * 1e4:+.1f} bp of CRPS ({_ci(lo * 1e4, hi * 1e4, '{:+.1f}')}): {verdict}"
        )
    return (
        f"Out of sample ({row['n_test']} {model} forecasts after {row['fit_until']:%Y-%m-%d}, scales fitted on "
        f"{row['n_fit']}: k+ = {row['k_pos']:.2f}, k- = {row['k_neg']:.2f}, k = {row['k_all']:.2f}), the "
        f"GEX-conditioned distribution scored " + "; ".join(parts) + "."
    )


def paragraph(tables: dict[str, pl.DataFrame], horizon: str = HEADLINE_HORIZON) -> str:
    """One paragraph per currency from the report tables (ratio_by_regime, sign_difference, regression,
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
    return "\n\n".join(p for p in out if p)


__all__ = ["HEADLINE_HORIZON", "paragraph"]
