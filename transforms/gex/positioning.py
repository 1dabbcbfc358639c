"""Dealer positioning models (DESIGN.md 4.2): chain -> DEALER_POSITION frame.

Every model returns the same contract -- one row per (currency, snapshot_ts, model, instrument_name)
with ``dealer_contracts`` (signed, + = dealers long), ``method`` (the rule behind the row) and
``is_fallback`` -- and the exposure functions only ever join that frame to the chain on
(currency, snapshot_ts, instrument_name). They never look at the model name, so a later
``taker_flow`` model (built from the trade tape by its own function) plugs in unchanged, and frames of
several models can be concatenated and processed in one call.

    naive          +OI on calls, -OI on puts (the SqueezeMetrics convention: dealers long calls, short puts)
    customer_long  -OI on everything (customers hold every option long)
    custom         a user book (instrument_name, contracts); chain instruments not in the book get 0,
                   book instruments not in the chain are ignored (see book_instruments_not_in_chain)
"""

from __future__ import annotations

import polars as pl

from transforms.frames.schemas import DEALER_BOOK, DEALER_POSITION, OPTION_SNAPSHOT, check

MODELS = ("naive", "customer_long", "custom")
_KEYS = ["currency", "snapshot_ts", "instrument_name"]


MAX_BOOK_CONTRACTS = 1e9


def validated_book(book: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """A user book as a DEALER_BOOK frame, or ValueError with a one-line message.

    Needs columns ``instrument_name`` and ``contracts`` (numbers, or strings that parse as numbers;
    signed, + = dealers long); other columns are ignored. Several rows for one instrument are summed
    (a book may list trades or sub-books).
    """
    if isinstance(book, pl.LazyFrame):
        book = book.collect()
    if not isinstance(book, pl.DataFrame):
        raise ValueError(f"dealer book must be a polars DataFrame, got {type(book).__name__}")
    missing = [c for c in DEALER_BOOK if c not in book.columns]
    if missing:
        raise ValueError(f"dealer book lacks column(s): {', '.join(missing)} (needs instrument_name, contracts)")
    names = book["instrument_name"]
    if names.dtype != pl.String:
        raise ValueError(f"dealer book instrument_name must be text, got {names.dtype}")
    if names.null_count():
        raise ValueError(f"dealer book has {names.null_count()} row(s) without an instrument_name")
    names = names.str.strip_chars()  # ' BTC-31JUL26-60000-C ' is that instrument (book_notes says so)
    if (names == "").any():
        raise ValueError(f"dealer book has {(names == '').sum()} row(s) with an empty instrument_name")
    contracts = book["contracts"]
    if contracts.dtype == pl.String:
        parsed = contracts.str.strip_chars().cast(pl.Float64, strict=False)
        bad = contracts.filter(parsed.is_null() & contracts.is_not_null())
        if bad.len():
            raise ValueError(f"dealer book contracts must be numbers; {bad.len()} row(s) are not, e.g. {bad[0]!r}")
        contracts = parsed
    elif not contracts.dtype.is_numeric():
        raise ValueError(f"dealer book contracts must be numbers, got {contracts.dtype}")
    contracts = contracts.cast(pl.Float64)
    if contracts.null_count():
        raise ValueError(f"dealer book has {contracts.null_count()} row(s) without contracts")
    if not contracts.is_finite().all():
        raise ValueError("dealer book contracts must be finite numbers")
    out = (
        pl.DataFrame({"instrument_name": names, "contracts": contracts})
        .group_by("instrument_name", maintain_order=True)
        .agg(pl.col("contracts").sum())
    )
    # finite but absurd sizes (1e300) overflow GEX to inf/NaN; 1e9 contracts is ~50x all bitcoin there is
    huge = out.filter(pl.col("contracts").abs() > MAX_BOOK_CONTRACTS)
    if huge.height:
        raise ValueError(
            f"dealer book holds more than {MAX_BOOK_CONTRACTS:.0e} contracts of {huge.height} instrument(s), "
            f"e.g. {huge['instrument_name'][0]}: {huge['contracts'][0]:g}"
        )
    check(out, DEALER_BOOK, "dealer book")
    return out


def book_notes(book: pl.DataFrame) -> list[str]:
    """What :func:`validated_book` normalised in ``book`` (names padded with spaces, instruments listed more
    than once and summed), one line each, for the user to see; [] when it took the book as it was."""
    if "instrument_name" not in book.columns or book["instrument_name"].dtype != pl.String:
        return []
    names = book["instrument_name"].drop_nulls()
    notes = []
    padded = names.filter(names != names.str.strip_chars())
    if padded.len():
        notes.append(f"{padded.len()} instrument name(s) had surrounding spaces, removed (e.g. {padded[0]!r})")
    counts = names.str.strip_chars().value_counts()
    repeated = counts.filter(pl.col("count") > 1).sort("instrument_name")
    if repeated.height:
        first = repeated.row(0, named=True)
        notes.append(
            f"{repeated.height} instrument(s) are listed more than once; their contracts were summed "
            f"(e.g. {first['instrument_name']} x{first['count']})"
        )
    return notes


def book_instruments_not_in_chain(chain: pl.DataFrame | pl.LazyFrame, book: pl.DataFrame) -> pl.DataFrame:
    """Book rows (DEALER_BOOK) whose instrument is in no snapshot of ``chain``: ignored by the custom model."""
    names = chain.lazy().select("instrument_name").unique().collect()
    return validated_book(book).join(names, on="instrument_name", how="anti", maintain_order="left")


def dealer_positions(
    chain: pl.DataFrame | pl.LazyFrame, model: str, *, book: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Dealer positions implied by ``model`` for every option row of ``chain`` (DEALER_POSITION frame).

    ``book`` is required for (and only allowed with) ``model='custom'``. The count of book instruments
    that match nothing in the chain is ``book_instruments_not_in_chain(chain, book).height``.
    """
    check(chain, OPTION_SNAPSHOT, "dealer_positions input")
    if model not in MODELS:
        raise ValueError(f"unknown positioning model {model!r}; expected one of {', '.join(MODELS)}")
    if (model == "custom") != (book is not None):
        raise ValueError("a dealer book is required for model 'custom' and only for it")
    rows = chain.lazy().select(*_KEYS, "option_type", "open_interest")
    oi = pl.col("open_interest").fill_null(0.0)
    if model == "naive":
        rows = rows.with_columns(
            pl.when(pl.col("option_type") == "call").then(oi).otherwise(0.0 - oi).alias("dealer_contracts"),
            pl.lit("oi_sign_by_type").alias("method"),
        )
    elif model == "customer_long":
        rows = rows.with_columns((0.0 - oi).alias("dealer_contracts"), pl.lit("minus_oi").alias("method"))
    else:
        held = validated_book(book).lazy()
        rows = rows.join(held, on="instrument_name", how="left", maintain_order="left").with_columns(
            pl.col("contracts").fill_null(0.0).alias("dealer_contracts"),
            pl.when(pl.col("contracts").is_null())
            .then(pl.lit("not_in_book"))
            .otherwise(pl.lit("user_book"))
            .alias("method"),
        )
    out = (
        rows.with_columns(pl.lit(model).alias("model"), pl.lit(False).alias("is_fallback"))
        .select(list(DEALER_POSITION))
        .sort("currency", "snapshot_ts", "instrument_name")
        .collect()
    )
    check(out, DEALER_POSITION, "dealer_positions")
    return out


__all__ = ["MODELS", "book_instruments_not_in_chain", "dealer_positions", "validated_book"]
