"""The validation gate (pipelines.validation.quality) against the recorded Deribit chains in tests/data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache

import polars as pl
import pytest

from pipelines.validation.quality import (
    CHAIN_SIZE,
    ValidationReport,
    short_chains,
    validate_instruments,
    validate_option_snapshots,
    validate_trades,
)
from tests.data_paths import SNAPSHOTS as SNAPSHOT_DIR
from tests.data_paths import TRADES
from transforms.frames.normalise import instruments_frame, option_snapshot_frame, snapshot_ts_of
from transforms.frames.schemas import OPTION_SNAPSHOT, UTC_TS, empty

SNAPSHOTS = [(c, s) for c in ("BTC", "ETH") for s in ("20260105T153329Z", "20260731T113322Z")]
VICTIM = "BTC-14AUG26-50000-C"  # a real row of the 2026-07-31 BTC chain that the broken variants break


def _result(name: str):
    with open(SNAPSHOT_DIR / name) as f:
        return json.load(f)["result"]


@cache
def recorded(currency: str, stamp: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(instruments, chain) of one recorded snapshot, normalised as the pipeline does."""
    book = _result(f"get_book_summary_by_currency.{currency}.{stamp}.json")
    inst = instruments_frame(_result(f"get_instruments.{currency}.{stamp}.json"), snapshot_ts_of(book))
    index = _result(f"get_index_price.{currency}.{stamp}.json")["index_price"]
    return inst, option_snapshot_frame(book, inst, {f"{currency.lower()}_usd": index}, "sample")


def btc_chain() -> pl.DataFrame:
    return recorded("BTC", "20260731T113322Z")[1]


def snapshot_time() -> datetime:
    return btc_chain()["snapshot_ts"][0]


def with_victim(**columns) -> pl.DataFrame:
    """The real chain with the given columns set to the given values on the VICTIM row only."""
    is_victim = pl.col("instrument_name") == VICTIM
    return btc_chain().with_columns(
        pl.when(is_victim).then(value).otherwise(pl.col(name)).alias(name) for name, value in columns.items()
    )


def recorded_trades() -> pl.DataFrame:
    """The 483 verbatim production BTC option trades (463 distinct trade_id: pages overlapped)."""
    with open(TRADES) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return pl.DataFrame(rows).select(
        pl.lit("BTC").alias("currency"),
        "trade_id",
        pl.from_epoch("timestamp", time_unit="ms").dt.replace_time_zone("UTC").cast(UTC_TS).alias("ts"),
        "instrument_name",
        "direction",
        pl.col("amount").cast(pl.Float64),
        pl.col("price").cast(pl.Float64),
    )


def only_failure(report: ValidationReport) -> str:
    assert not report.success, report.summary()
    assert len(report.failures) == 1, report.failures
    return report.failures[0]


# --- real data passes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "stamp"), SNAPSHOTS)
def test_the_recorded_chains_pass(currency, stamp):
    chain = recorded(currency, stamp)[1]
    report = validate_option_snapshots(chain)
    assert report.success, report.summary()
    assert report.failures == []
    assert report.checked_rows == chain.height > 600
    assert report.summary() == f"option_snapshots: ok ({chain.height} rows)"


@pytest.mark.parametrize(("currency", "stamp"), SNAPSHOTS)
def test_the_recorded_instruments_pass(currency, stamp):
    inst = recorded(currency, stamp)[0]
    report = validate_instruments(inst)
    assert report.success, report.summary()
    assert report.checked_rows == inst.height


def test_a_chain_taken_within_max_age_of_now_is_fresh():
    now = snapshot_time() + timedelta(minutes=4)
    assert validate_option_snapshots(btc_chain(), now=now, max_age=timedelta(minutes=5)).success


def test_without_now_freshness_is_not_checked_so_replays_of_old_snapshots_pass():
    report = validate_option_snapshots(btc_chain(), max_age=timedelta(minutes=5))
    assert report.success
    assert all("max_age" not in r["check"] for r in report.details["results"])


def test_a_missing_mark_price_is_allowed_it_is_not_an_input_of_the_exposure():
    report = validate_option_snapshots(with_victim(mark_price=None, bid_price=None, ask_price=None))
    assert report.success, report.summary()


@pytest.mark.parametrize("column", ["mark_iv", "underlying_price", "open_interest"])
def test_a_missing_pricing_input_fails_the_snapshot_instead_of_dropping_the_option(column):
    # null policy (docs/data-quality.md): an option that cannot be priced is not silently left out
    line = only_failure(validate_option_snapshots(with_victim(**{column: pl.lit(None, pl.Float64)})))
    assert line == f"{column} not null: 1 row fails ({VICTIM})"


# --- each broken variant fails with a line naming its check --------------------------------------------


@pytest.mark.parametrize(
    ("broken", "check"),
    [
        ({"open_interest": pl.lit(-3.0)}, "open_interest >= 0"),
        ({"open_interest": pl.lit(1e300)}, "open_interest <= 1e7"),
        ({"open_interest": pl.lit(None, pl.Float64)}, "open_interest not null"),
        ({"mark_iv": pl.lit(0.0)}, "mark_iv in [1, 1000]"),
        ({"mark_iv": pl.lit(0.5)}, "mark_iv in [1, 1000]"),
        ({"mark_iv": pl.lit(5000.0)}, "mark_iv in [1, 1000]"),
        ({"strike": pl.lit(400.0)}, "strike / index_price in [0.01, 100]"),
        ({"strike": pl.lit(7e6)}, "strike / index_price in [0.01, 100]"),
        ({"contract_size": pl.lit(0.0)}, "contract_size in (0, 1e6]"),
        ({"contract_size": pl.lit(1e7)}, "contract_size in (0, 1e6]"),
        ({"expiration_ts": pl.col("snapshot_ts") - pl.duration(days=1)}, "expiration_ts > snapshot_ts"),
        ({"expiration_ts": pl.col("snapshot_ts")}, "expiration_ts > snapshot_ts"),
        ({"expiration_ts": pl.lit(None, UTC_TS)}, "expiration_ts > snapshot_ts"),
        ({"option_type": pl.lit("CALL")}, "option_type in {call, put}"),
        ({"underlying_price": pl.lit(20000.0)}, "underlying_price / index_price in [0.5, 2]"),
        ({"underlying_price": pl.lit(200000.0)}, "underlying_price / index_price in [0.5, 2]"),
        ({"mark_price": pl.lit(-0.01)}, "mark_price null or in [0, 1e9]"),
        ({"mark_price": pl.lit(float("nan"))}, "mark_price finite (not NaN/inf)"),
        ({"bid_price": pl.lit(float("nan"))}, "bid_price finite (not NaN/inf)"),
        ({"ask_price": pl.lit(-1.0)}, "ask_price null or in [0, 1e9]"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_chain_with_one_broken_row_fails_naming_the_check_and_the_row(broken, check):
    report = validate_option_snapshots(with_victim(**broken))
    line = only_failure(report)
    assert line == f"{check}: 1 row fails ({VICTIM})"
    assert report.summary() == f"option_snapshots: 1 check failed: {line}"


@pytest.mark.parametrize(
    ("broken", "checks"),
    [
        # NaN: GE reads it as null, so only the finiteness check (in polars) can tell it from a missing value
        ({"open_interest": pl.lit(float("nan"))}, ["open_interest finite (not NaN/inf)", "open_interest not null"]),
        ({"mark_iv": pl.lit(float("nan"))}, ["mark_iv finite (not NaN/inf)", "mark_iv not null"]),
        (
            {"underlying_price": pl.lit(float("inf"))},
            [
                "underlying_price finite (not NaN/inf)",
                "underlying_price in (0, 1e9]",
                "underlying_price / index_price in [0.5, 2]",
            ],
        ),
        ({"open_interest": pl.lit(float("-inf"))}, ["open_interest finite (not NaN/inf)", "open_interest >= 0"]),
        (
            {"index_price": pl.lit(0.0)},
            [
                "index_price in (0, 1e9]",
                "underlying_price / index_price in [0.5, 2]",
                "strike / index_price in [0.01, 100]",
            ],
        ),
        (
            {"strike": pl.lit(0.0)},
            ["strike in (0, 1e9]", "strike / index_price in [0.01, 100]"],
        ),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, dict) else None,
)
def test_a_non_finite_or_zero_value_fails_every_check_it_breaks(broken, checks):
    report = validate_option_snapshots(with_victim(**broken))
    assert report.failures == [f"{c}: 1 row fails ({VICTIM})" for c in checks]


def test_a_duplicated_instrument_fails_the_unique_key():
    chain = btc_chain()
    twice = pl.concat([chain, chain.filter(pl.col("instrument_name") == VICTIM)])
    line = only_failure(validate_option_snapshots(twice))
    assert line == f"unique (currency, snapshot_ts, instrument_name): 2 rows fail ({VICTIM})"


def test_a_stale_snapshot_fails_freshness_when_now_and_max_age_are_given():
    chain = btc_chain()
    report = validate_option_snapshots(chain, now=snapshot_time() + timedelta(hours=2), max_age=timedelta(minutes=15))
    line = only_failure(report)
    assert line.startswith("snapshot_ts >= now - max_age (2026-07-31T13:18:22Z): ")
    assert f"{chain.height} rows fail" in line


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_option_snapshots(btc_chain(), now=datetime(2026, 7, 31, 12), max_age=timedelta(minutes=5))


def test_several_broken_checks_are_each_reported():
    report = validate_option_snapshots(with_victim(open_interest=pl.lit(-1.0), mark_iv=pl.lit(0.0)))
    assert [f.split(":")[0] for f in report.failures] == ["open_interest >= 0", "mark_iv in [1, 1000]"]
    assert report.summary().startswith("option_snapshots: 2 checks failed: open_interest >= 0: 1 row fails")


def test_a_failure_line_quotes_three_rows_then_an_ellipsis():
    report = validate_option_snapshots(btc_chain().with_columns(open_interest=pl.lit(-1.0)))
    line = only_failure(report)
    assert line.startswith(f"open_interest >= 0: {btc_chain().height} rows fail (")
    assert line.endswith(", ...)") and line.split(" (", 1)[1].count(", ") == 3


# --- schema ----------------------------------------------------------------------------------------------


def test_an_empty_chain_with_the_contract_columns_is_valid():
    report = validate_option_snapshots(empty(OPTION_SNAPSHOT))
    assert report.success and report.checked_rows == 0
    assert report.summary() == "option_snapshots: ok (0 rows)"


def test_an_empty_frame_without_the_contract_columns_fails_the_schema():
    line = only_failure(validate_option_snapshots(empty(OPTION_SNAPSHOT).drop("open_interest")))
    assert line == "schema: missing open_interest"


def test_missing_and_mistyped_columns_fail_the_schema_and_skip_their_checks():
    frame = btc_chain().drop("strike").with_columns(pl.col("open_interest").cast(pl.String))
    report = validate_option_snapshots(frame)
    assert only_failure(report) == "schema: missing strike; open_interest is String, expected Float64"
    assert "strike in (0, 1e9]" in report.details["skipped_checks"]
    assert "strike / index_price in [0.01, 100]" in report.details["skipped_checks"]
    assert "open_interest >= 0" in report.details["skipped_checks"]


def test_a_naive_snapshot_timestamp_breaks_the_contract():
    frame = btc_chain().with_columns(pl.col("snapshot_ts").dt.replace_time_zone(None))
    assert only_failure(validate_option_snapshots(frame)).startswith("schema: snapshot_ts is Datetime(time_unit='ms'")


# --- instruments and trades --------------------------------------------------------------------------


def test_a_duplicated_instrument_listing_fails():
    inst = recorded("ETH", "20260731T113322Z")[0]
    line = only_failure(validate_instruments(pl.concat([inst, inst.head(1)])))
    assert line.startswith("unique (currency, instrument_name): 2 rows fail (")


def test_an_instrument_with_a_bad_strike_or_type_fails():
    inst = recorded("ETH", "20260731T113322Z")[0].with_row_index()
    broken = inst.with_columns(
        strike=pl.when(pl.col("index") == 0).then(0.0).otherwise(pl.col("strike")),
        option_type=pl.when(pl.col("index") == 1).then(pl.lit("straddle")).otherwise(pl.col("option_type")),
    ).drop("index")
    report = validate_instruments(broken)
    assert [f.split(":")[0] for f in report.failures] == ["strike in (0, 1e9]", "option_type in {call, put}"]


def test_the_recorded_trade_tape_fails_on_its_duplicated_trade_ids():
    trades = recorded_trades()
    line = only_failure(validate_trades(trades))
    duplicated = trades.filter(pl.col("trade_id").is_duplicated()).height
    assert line.startswith(f"unique (currency, trade_id): {duplicated} rows fail (")


def test_the_recorded_trade_tape_passes_once_deduplicated():
    trades = recorded_trades().unique(["currency", "trade_id"], keep="first")
    report = validate_trades(trades)
    assert report.success, report.summary()
    assert report.checked_rows == 463


def test_bad_trades_fail_on_amount_price_direction_and_ts():
    trades = recorded_trades().unique(["currency", "trade_id"], keep="first").sort("trade_id").with_row_index()
    broken = trades.with_columns(
        amount=pl.when(pl.col("index") == 0).then(0.0).otherwise(pl.col("amount")),
        price=pl.when(pl.col("index") == 1).then(-0.5).otherwise(pl.col("price")),
        direction=pl.when(pl.col("index") == 2).then(pl.lit("short")).otherwise(pl.col("direction")),
        ts=pl.when(pl.col("index") == 3).then(None).otherwise(pl.col("ts")),
    ).drop("index")
    report = validate_trades(broken)
    assert sorted(f.split(":")[0] for f in report.failures) == [
        "amount > 0",
        "direction in {buy, sell}",
        "price >= 0",
        "ts not null",
    ]


def test_trades_are_checked_on_the_columns_they_have_but_need_a_trade_id():
    trades = recorded_trades().unique("trade_id").select("trade_id", "amount")
    report = validate_trades(trades)
    assert report.success
    assert "unique (trade_id)" in [r["check"] for r in report.details["results"]]
    assert only_failure(validate_trades(trades.drop("trade_id"))) == "schema: missing trade_id"


def test_a_check_ge_cannot_evaluate_fails_and_says_so():
    trades = recorded_trades().unique("trade_id").with_columns(pl.col("amount").cast(pl.String))
    line = only_failure(validate_trades(trades))
    assert line.startswith("amount > 0: could not be evaluated (")


# --- the report and the process ------------------------------------------------------------------------


def test_the_details_are_json_for_the_quarantine_report():
    report = validate_option_snapshots(with_victim(open_interest=pl.lit(None, pl.Float64), mark_iv=pl.lit(5000.0)))
    details = json.loads(json.dumps(report.details, allow_nan=False))
    failed = {r["check"]: r for r in details["results"] if not r["success"]}
    assert set(failed) == {"open_interest not null", "mark_iv in [1, 1000]"}
    assert failed["mark_iv in [1, 1000]"]["partial_unexpected_list"] == [5000.0]
    assert failed["mark_iv in [1, 1000]"]["row_ids"] == [VICTIM]
    assert details["statistics"]["unsuccessful_expectations"] == 2
    # the passing checks of a failing batch are reported with their counts too (the whole suite ran again)
    passed = [r for r in details["results"] if r["success"]]
    assert passed and all(
        r["unexpected_count"] == 0 for r in passed if r["expectation"] != "ExpectCompoundColumnsToBeUnique"
    )


def test_a_passing_batch_carries_the_verdicts_only():
    report = validate_option_snapshots(btc_chain())
    assert report.success, report.failures
    results = report.details["results"]
    assert len(results) == report.details["statistics"]["evaluated_expectations"] > 20
    assert all(r["success"] for r in results)
    assert all(r["unexpected_count"] is None and r["partial_unexpected_list"] is None for r in results)


# --- coverage: a chain far smaller than its neighbours ---------------------------------------------------


def one_hour_later(chain: pl.DataFrame, hours: int = 1) -> pl.DataFrame:
    return chain.with_columns(pl.col("snapshot_ts") + pl.duration(hours=hours))


def test_a_chain_with_a_fraction_of_its_neighbours_options_fails_coverage():
    full = btc_chain()
    stray = one_hour_later(full).head(1)  # e.g. one Tardis row a few ms off its snapshot
    report = validate_option_snapshots(pl.concat([full, one_hour_later(full, 2), stray]))
    line = only_failure(report)
    assert line == (
        "options >= 50% of the neighbours' median and of the listing: 1 chain fails "
        f"(BTC 2026-07-31T12:33:22.630Z: 1 option vs median {full.height} of 2 neighbours)"
    )


def test_a_chain_alone_is_judged_against_the_listing_it_is_given():
    chain = btc_chain()
    listed = pl.DataFrame(
        {"currency": ["BTC"], "snapshot_ts": [snapshot_time()], "options": [2 * chain.height + 1]},
        schema=CHAIN_SIZE,
    )
    assert validate_option_snapshots(chain).success  # nothing to compare with
    assert only_failure(validate_option_snapshots(chain, listed=listed)) == (
        "options >= 50% of the neighbours' median and of the listing: 1 chain fails "
        f"(BTC 2026-07-31T11:33:22.630Z: 854 options vs {2 * chain.height + 1} listed)"
    )
    listed = listed.with_columns(options=pl.lit(2 * chain.height, pl.Int64))  # exactly half: still enough
    assert validate_option_snapshots(chain, listed=listed).success
    # a listing at another time, or of another currency, is not this chain's
    assert validate_option_snapshots(
        chain, listed=listed.with_columns(currency=pl.lit("ETH"), options=pl.lit(10**6))
    ).success


def test_neighbours_are_the_five_nearest_in_time_and_the_reference_is_their_median():
    t0 = datetime(2026, 7, 31, tzinfo=UTC)
    far = [(t0 - timedelta(hours=100 + h), 1000) for h in range(5)]  # a bigger chain long ago
    near = [(t0 + timedelta(hours=h), 150) for h in (-2, -1, 1, 2, 3)]  # the 5 nearest: median 150

    def sizes(options: int) -> pl.DataFrame:
        rows = [(t0, options), *far, *near]
        return pl.DataFrame([("BTC", t, n) for t, n in rows], schema=CHAIN_SIZE, orient="row")

    assert short_chains(sizes(75)).is_empty()  # 75 = 50 % of 150 (over all ten neighbours it would fail)
    short = short_chains(sizes(74))
    assert short.rows() == [("BTC", t0, 74, 150.0, 5, None)]
    assert short_chains(sizes(74).filter(pl.col("currency") == "ETH")).is_empty()
