"""Dealer positioning models: signs, the custom book, and the model-agnostic join contract."""

from __future__ import annotations

import polars as pl
import pytest

from tests.chains import chain_frame, option_row
from transforms.frames.schemas import DEALER_POSITION
from transforms.gex.exposure import gex_by_strike, gex_profile, key_levels
from transforms.gex.positioning import book_instruments_not_in_chain, dealer_positions, validated_book


def _chain() -> pl.DataFrame:
    return chain_frame(
        [
            option_row(strike=55_000.0, expiry_days=7.0, option_type="put", open_interest=300.0, name="P55"),
            option_row(strike=60_000.0, expiry_days=7.0, option_type="call", open_interest=200.0, name="C60"),
            option_row(strike=65_000.0, expiry_days=7.0, option_type="call", open_interest=0.0, name="C65"),
        ]
    )


def _by_name(frame: pl.DataFrame) -> dict[str, dict]:
    return {r["instrument_name"]: r for r in frame.iter_rows(named=True)}


def test_naive_dealers_are_long_call_open_interest_and_short_put_open_interest():
    pos = _by_name(dealer_positions(_chain(), "naive"))
    assert pos["C60"]["dealer_contracts"] == 200.0
    assert pos["P55"]["dealer_contracts"] == -300.0
    assert pos["C65"]["dealer_contracts"] == 0.0
    assert {r["method"] for r in pos.values()} == {"oi_sign_by_type"}


def test_customer_long_dealers_are_short_all_open_interest():
    pos = _by_name(dealer_positions(_chain(), "customer_long"))
    assert [pos[n]["dealer_contracts"] for n in ("C60", "P55", "C65")] == [-200.0, -300.0, 0.0]


def test_every_model_returns_the_declared_dealer_position_contract_with_one_row_per_option():
    chain = _chain()
    book = pl.DataFrame({"instrument_name": ["C60"], "contracts": [5.0]})
    for model, kwargs in [("naive", {}), ("customer_long", {}), ("custom", {"book": book})]:
        out = dealer_positions(chain, model, **kwargs)
        assert dict(out.schema) == DEALER_POSITION
        assert out.height == chain.height
        assert out["model"].unique().to_list() == [model]
        assert not out["is_fallback"].any()


def test_a_custom_book_sets_listed_instruments_zeroes_the_rest_and_counts_unknown_ones():
    chain = _chain()
    book = pl.DataFrame({"instrument_name": ["C60", "P55", "C60", "BTC-NOPE-1-C"], "contracts": [5.0, -2.5, 1.0, 9.0]})
    pos = _by_name(dealer_positions(chain, "custom", book=book))
    assert pos["C60"]["dealer_contracts"] == 6.0  # two book lines are summed
    assert pos["P55"]["dealer_contracts"] == -2.5
    assert pos["C65"]["dealer_contracts"] == 0.0
    assert pos["C65"]["method"] == "not_in_book"
    assert pos["C60"]["method"] == "user_book"
    unknown = book_instruments_not_in_chain(chain, book)
    assert unknown.height == 1 and unknown["instrument_name"][0] == "BTC-NOPE-1-C"


def test_a_book_with_numbers_written_as_text_is_accepted():
    out = validated_book(pl.DataFrame({"instrument_name": ["A"], "contracts": [" -3.5 "]}))
    assert out["contracts"].to_list() == [-3.5]


@pytest.mark.parametrize(
    ("book", "message"),
    [
        (pl.DataFrame({"instrument_name": ["A"]}), "lacks column"),
        (pl.DataFrame({"name": ["A"], "contracts": [1.0]}), "lacks column"),
        (pl.DataFrame({"instrument_name": ["A", "B"], "contracts": ["1", "ten"]}), "must be numbers"),
        (pl.DataFrame({"instrument_name": ["A"], "contracts": [True]}), "must be numbers"),
        (
            pl.DataFrame(
                {"instrument_name": ["A"], "contracts": [None]},
                schema={"instrument_name": pl.String, "contracts": pl.Float64},
            ),
            "without contracts",
        ),
        (pl.DataFrame({"instrument_name": ["A"], "contracts": [float("inf")]}), "finite"),
        (pl.DataFrame({"instrument_name": ["A", "B"], "contracts": [1.0, 1e300]}), "more than 1e[+]09 contracts"),
        (pl.DataFrame({"instrument_name": ["A", "A"], "contracts": [6e8, 6e8]}), "more than 1e[+]09 contracts"),
        (
            pl.DataFrame(
                {"instrument_name": [None], "contracts": [1.0]},
                schema={"instrument_name": pl.String, "contracts": pl.Float64},
            ),
            "without an instrument_name",
        ),
    ],
)
def test_a_bad_book_is_rejected_with_a_one_line_value_error(book, message):
    with pytest.raises(ValueError, match=message) as info:
        validated_book(book)
    assert "\n" not in str(info.value)


def test_unknown_models_and_misplaced_books_are_rejected():
    with pytest.raises(ValueError, match="unknown positioning model"):
        dealer_positions(_chain(), "taker_fl0w")
    with pytest.raises(ValueError, match="book is required"):
        dealer_positions(_chain(), "custom")
    with pytest.raises(ValueError, match="book is required"):
        dealer_positions(_chain(), "naive", book=pl.DataFrame({"instrument_name": ["A"], "contracts": [1.0]}))


def test_a_future_model_plugs_into_every_exposure_function_through_the_same_frame():
    """A taker_flow-style frame built elsewhere (here by hand, with a fallback row) needs no code change."""
    chain = _chain()
    naive = dealer_positions(chain, "naive")
    flow = naive.with_columns(
        pl.lit("taker_flow").alias("model"),
        (pl.col("dealer_contracts") * -0.5).alias("dealer_contracts"),
        pl.lit("mirror_of_taker_volume").alias("method"),
        (pl.col("instrument_name") == "C65").alias("is_fallback"),
    )
    both = pl.concat([naive, flow])
    by_strike = gex_by_strike(chain, both).filter(pl.col("expiration_ts").is_null()).sort("model", "strike")
    naive_net = by_strike.filter(pl.col("model") == "naive")["net_gex_usd"]
    flow_net = by_strike.filter(pl.col("model") == "taker_flow")["net_gex_usd"]
    assert (flow_net - naive_net * -0.5).abs().max() < 1e-9 * naive_net.abs().max()
    assert set(gex_profile(chain, both)["model"].unique()) == {"naive", "taker_flow"}
    assert key_levels(chain, both)["model"].to_list() == ["naive", "taker_flow"]
