"""The checks of the validation gate, as data: one :class:`Check` per Great Expectations expectation, and the
bounds they use (docs/data-quality.md says why each bound is what it is). :mod:`pipelines.validation.quality`
runs them; :mod:`pipelines.validation.ge_run` turns them into GE suites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FRESH_PARAM = "oldest_allowed_snapshot_ts"


@dataclass(frozen=True)
class Check:
    """One named expectation: ``kind`` is a ``gx.expectations`` class name, ``columns`` those it reads."""

    label: str
    kind: str
    columns: tuple[str, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()


def _not_null(col: str) -> Check:
    return Check(f"{col} not null", "ExpectColumnValuesToNotBeNull", (col,), (("column", col),))


def _between(label: str, col: str, **kw: Any) -> Check:
    """Nulls pass a between-check; pair it with :func:`_not_null` where the column is required."""
    return Check(label, "ExpectColumnValuesToBeBetween", (col,), (("column", col), *kw.items()))


@dataclass(frozen=True)
class Param:
    """A suite parameter, filled in per validation (GE's ``{"$PARAMETER": name}``)."""

    name: str


def _in_set(col: str, values: tuple[str, ...]) -> Check:
    label = f"{col} in {{{', '.join(values)}}}"
    return Check(label, "ExpectColumnValuesToBeInSet", (col,), (("column", col), ("value_set", values)))


def unique(cols: tuple[str, ...]) -> Check:
    label = f"unique ({', '.join(cols)})"
    if len(cols) == 1:
        return Check(label, "ExpectColumnValuesToBeUnique", cols, (("column", cols[0]),))
    return Check(label, "ExpectCompoundColumnsToBeUnique", cols, (("column_list", cols),))


FRESHNESS = _between("snapshot_ts >= now - max_age", "snapshot_ts", min_value=Param(FRESH_PARAM))

# Bounds (docs/data-quality.md says why each is what it is): generous enough that 7 months of real chains
# sit far inside them, tight enough that every product the analytics form (q c gamma F^2) stays finite.
MAX_OPEN_INTEREST = 1e7  # contracts of one option; the largest recorded is 82,738 (ETH)
MIN_IV, MAX_IV = 1.0, 1000.0  # mark_iv, percent; recorded 10.6 .. 348.8
MAX_USD = 1e9  # strike, forward, index (USD); no underlying is within a factor of 100 of it
MAX_CONTRACT_SIZE = 1e6  # coins per contract; Deribit uses 1 (BTC, ETH), 10 or 1000 (small coins)
FORWARD_TO_INDEX = (0.5, 2.0)  # underlying_price / index_price; recorded 0.989 .. 1.050
STRIKE_TO_INDEX = (0.01, 100.0)  # strike / index_price; recorded 0.148 .. 10.4


def _g(x: float) -> str:
    """1e7 -> '1e7', 0.5 -> '0.5' (labels of the bounds)."""
    return f"{x:g}".replace("e+0", "e").replace("e+", "e")


def _range(col: str, low: float, high: float, *, open_low: bool = False, label: str | None = None) -> Check:
    """``col in [low, high]`` (``(low, high]`` when ``open_low``); nulls pass, so pair it with a not-null check."""
    text = f"{label or col} in {'(' if open_low else '['}{_g(low)}, {_g(high)}]"
    return _between(text, col, min_value=low, max_value=high, strict_min=open_low)


# Derived columns the suite checks (computed in polars, never stored).
RATIOS = {
    "forward_to_index": ("underlying_price", "index_price"),
    "strike_to_index": ("strike", "index_price"),
}

OPTION_SNAPSHOT_CHECKS = (
    *(_not_null(c) for c in ("currency", "snapshot_ts", "instrument_name", "strike", "contract_size")),
    # Null policy: an option without open interest, IV or forward cannot be counted, and dropping it would
    # shrink the chain silently -- the snapshot is quarantined instead (docs/data-quality.md).
    _not_null("open_interest"),
    _between("open_interest >= 0", "open_interest", min_value=0),
    _between(f"open_interest <= {_g(MAX_OPEN_INTEREST)}", "open_interest", max_value=MAX_OPEN_INTEREST),
    _not_null("mark_iv"),
    _range("mark_iv", MIN_IV, MAX_IV),
    _range("strike", 0, MAX_USD, open_low=True),
    _range("contract_size", 0, MAX_CONTRACT_SIZE, open_low=True),
    # ignore_row_if="neither": a null expiry (or snapshot) fails instead of being skipped.
    Check(
        "expiration_ts > snapshot_ts",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        ("expiration_ts", "snapshot_ts"),
        (("column_A", "expiration_ts"), ("column_B", "snapshot_ts"), ("or_equal", False), ("ignore_row_if", "neither")),
    ),
    _not_null("option_type"),
    _in_set("option_type", ("call", "put")),
    unique(("currency", "snapshot_ts", "instrument_name")),
    _not_null("underlying_price"),
    _range("underlying_price", 0, MAX_USD, open_low=True),
    _not_null("index_price"),
    _range("index_price", 0, MAX_USD, open_low=True),
    _range("forward_to_index", *FORWARD_TO_INDEX, label="underlying_price / index_price"),
    _range("strike_to_index", *STRIKE_TO_INDEX, label="strike / index_price"),
    *(_range(c, 0, MAX_USD, label=f"{c} null or") for c in ("mark_price", "bid_price", "ask_price")),
)

INSTRUMENT_CHECKS = (
    *(_not_null(c) for c in ("currency", "instrument_name", "strike", "contract_size", "option_type")),
    unique(("currency", "instrument_name")),
    _range("strike", 0, MAX_USD, open_low=True),
    _range("contract_size", 0, MAX_CONTRACT_SIZE, open_low=True),
    _in_set("option_type", ("call", "put")),
)

TRADE_CHECKS = (
    _not_null("trade_id"),
    _not_null("ts"),
    _not_null("amount"),
    _between("amount > 0", "amount", min_value=0, strict_min=True),
    _between("price >= 0", "price", min_value=0),
    _not_null("direction"),
    _in_set("direction", ("buy", "sell")),
)
