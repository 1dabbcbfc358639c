"""Validation that cannot be fooled (issue 11 item 4), end to end: edited copies of the bundled real sample
replayed through the real CLI (``gexflow run --source replay:DIR``) or Tardis files through ``gexflow
backfill``, into a real lake. Every bad value ends quarantined (or, for a type error, refused by name)
and never as a published number; docs/data-quality.md states the rules."""

from __future__ import annotations

import gzip
import json
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pipelines.cli.app import main
from pipelines.sources.replay import sample_directory
from tests.data_paths import TARDIS
from warehouse import lake

STAMP = "20260731T113322Z"
LATER = "20260731T123322Z"  # one hour after STAMP
BOOK = f"get_book_summary_by_currency.BTC.{STAMP}.json.gz"
INSTRUMENTS = f"get_instruments.BTC.{STAMP}.json.gz"
INDEX = f"get_index_price.BTC.{STAMP}.json.gz"
VICTIM = "BTC-14AUG26-60000-C"  # a real, near-the-money call of the 2026-07-31 BTC chain (OI > 0)


def read_body(path: Path) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))


def write_body(path: Path, body: dict) -> None:
    # allow_nan: JSON NaN / Infinity are what a broken feed sends (Python's json reads them back)
    path.write_bytes(gzip.compress(json.dumps(body, allow_nan=True).encode()))


Edit = Callable[[list], None]


def replay_dir(
    root: Path,
    book: Edit | None = None,
    instruments: Edit | None = None,
    index: Callable[[dict], None] | None = None,
    stamp: str = STAMP,
) -> Path:
    """A copy of the sample's BTC snapshot at STAMP (filed under ``stamp``) with edits applied to the results."""
    root.mkdir(parents=True, exist_ok=True)
    shift_ms = (int(stamp[9:11]) - int(STAMP[9:11])) * 3_600_000
    for name, edit in ((BOOK, book), (INSTRUMENTS, instruments), (INDEX, index)):
        body = read_body(sample_directory() / name)
        if name == BOOK and shift_ms:
            for row in body["result"]:
                row["creation_timestamp"] += shift_ms
        if edit is not None:
            edit(body["result"])
        write_body(root / name.replace(STAMP, stamp), body)
    return root


def set_field(field: str, value, name: str = VICTIM) -> Edit:
    def edit(rows: list) -> None:
        row = next(r for r in rows if r["instrument_name"] == name)
        row[field] = value

    return edit


def run(data: Path, source: Path, capsys) -> tuple[int, str]:
    code = main(["run", "--source", f"replay:{source}", "--data-dir", str(data), "--currency", "BTC"])
    return code, capsys.readouterr().err


def published(data: Path, table: str) -> pl.DataFrame:
    files = lake.data_files(data, table)
    return pl.read_parquet(files) if files else pl.DataFrame()


def assert_refused(data: Path, err: str, *needles: str) -> None:
    """Exit 2 was seen by the caller: one line, no traceback, nothing published, the raw body kept."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gexflow: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    for table in ("option_snapshots", "instruments", "key_levels", "gex_profile", "gex_by_strike"):
        assert published(data, table).is_empty(), table
    assert list((data / "raw").rglob("get_book_summary_by_currency.*.json.gz")), "the raw body was not kept"


def quarantine_report(data: Path) -> list[dict]:
    reports = sorted((data / "quarantine").rglob("report.json"))
    assert len(reports) == 1
    assert (reports[0].parent / "option_snapshots.parquet").exists()
    return json.loads(reports[0].read_text())


def assert_finite_levels(data: Path) -> pl.DataFrame:
    levels = published(data, "key_levels")
    assert not levels.is_empty()
    for col, dtype in levels.schema.items():
        if dtype == pl.Float64:
            values = levels[col].drop_nulls()
            assert values.is_finite().all(), (col, values.to_list())
    for col in ("spot", "total_gex_usd", "call_wall", "put_wall", "abs_gamma_strike"):
        assert levels[col].null_count() == 0, col
    profile = published(data, "gex_profile")
    for col, dtype in profile.schema.items():
        if dtype == pl.Float64:
            assert profile[col].null_count() == 0 and profile[col].is_finite().all(), col
    return levels


# ---------------------------------------------------------------- each bad value of item 4


def test_the_untouched_sample_snapshot_passes_and_publishes_finite_levels(tmp_path, capsys):
    code, err = run(tmp_path / "data", replay_dir(tmp_path / "replay"), capsys)
    assert code == 0, err
    assert published(tmp_path / "data", "option_snapshots").height == 854
    assert_finite_levels(tmp_path / "data")


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("open_interest", 1e300, "open_interest <= 1e7"),  # was: total GEX 9.6e302, a NaN/inf profile
        ("open_interest", math.inf, "open_interest finite (not NaN/inf)"),  # was: +-inf GEX, a moved call wall
        ("open_interest", -math.inf, "open_interest finite (not NaN/inf)"),
        ("open_interest", math.nan, "open_interest finite (not NaN/inf)"),
        ("open_interest", None, "open_interest not null"),  # was: silently 0 contracts
        ("mark_iv", None, "mark_iv not null"),  # was: the option silently dropped (GEX 15.7 M -> 10.7 M)
        ("mark_iv", math.nan, "mark_iv finite (not NaN/inf)"),  # GE reads NaN as null: was dropped too
        ("mark_iv", 0.0, "mark_iv in [1, 1000]"),
        ("underlying_price", None, "underlying_price not null"),  # was: silently dropped
        ("underlying_price", math.nan, "underlying_price finite (not NaN/inf)"),
        ("underlying_price", 1e300, "underlying_price in (0, 1e9]"),
        ("mark_price", math.nan, "mark_price finite (not NaN/inf)"),  # nullable, so GE alone let NaN through
        ("bid_price", math.inf, "bid_price finite (not NaN/inf)"),
    ],
    ids=lambda v: str(v),
)
def test_a_bad_value_in_the_book_quarantines_the_snapshot_and_publishes_nothing(tmp_path, capsys, field, value, check):
    data = tmp_path / "data"
    code, err = run(data, replay_dir(tmp_path / "replay", book=set_field(field, value)), capsys)
    assert code == 2, err
    assert_refused(data, err, f"{check}: 1 row fails ({VICTIM})", "quarantined in")
    failures = [f for r in quarantine_report(data) for f in r["failures"]]
    assert f"{check}: 1 row fails ({VICTIM})" in failures


@pytest.mark.parametrize("value", ["12,5", "12.5", True, {"value": 1}])
def test_a_value_of_the_wrong_type_is_one_line_naming_the_file_the_option_and_the_field(tmp_path, capsys, value):
    data, source = tmp_path / "data", replay_dir(tmp_path / "replay", book=set_field("open_interest", value))
    code, err = run(data, source, capsys)
    assert code == 2, err
    assert_refused(data, err, str(source / BOOK), VICTIM, "open_interest is not a number", repr(value)[:20])


def test_a_string_strike_in_get_instruments_names_that_file(tmp_path, capsys):
    data, source = tmp_path / "data", replay_dir(tmp_path / "replay", instruments=set_field("strike", "60000"))
    code, err = run(data, source, capsys)
    assert code == 2, err
    assert_refused(data, err, str(source / INSTRUMENTS), VICTIM, "strike is not a number")


@pytest.mark.parametrize(
    ("value", "needle"),
    [(1e300, "index_price in (0, 1e9]"), (math.nan, "index_price finite"), ("63803", "index_price is not a number")],
    ids=str,
)
def test_a_bad_index_price_is_refused(tmp_path, capsys, value, needle):
    data = tmp_path / "data"
    source = replay_dir(tmp_path / "replay", index=lambda result: result.update(index_price=value))
    code, err = run(data, source, capsys)
    assert code == 2, err
    assert_refused(data, err, needle)


def test_a_forward_far_from_the_index_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    code, err = run(data, replay_dir(tmp_path / "replay", book=set_field("underlying_price", 6.4e6)), capsys)
    assert code == 2, err
    assert_refused(data, err, f"underlying_price / index_price in [0.5, 2]: 1 row fails ({VICTIM})")


# ---------------------------------------------------------------- coverage


def keep_every(n: int) -> Edit:
    def edit(rows: list) -> None:
        rows[:] = rows[::n]

    return edit


def test_a_first_snapshot_missing_most_listed_options_is_refused_against_the_listing(tmp_path, capsys):
    data = tmp_path / "data"  # an empty lake: the only neighbour is get_instruments' own listing (854)
    code, err = run(data, replay_dir(tmp_path / "replay", book=keep_every(3)), capsys)
    assert code == 2, err
    assert_refused(
        data,
        err,
        "options >= 50% of the neighbours' median and of the listing: 1 chain fails",
        "285 options vs 854 listed",
    )


def test_a_snapshot_far_smaller_than_the_published_one_before_it_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    code, err = run(data, replay_dir(tmp_path / "first"), capsys)
    assert code == 0, err
    before = published(data, "key_levels")
    # the next hour's book and listing both shrank to a third: only the published neighbour can tell
    source = replay_dir(tmp_path / "second", book=keep_every(3), instruments=keep_every(3), stamp=LATER)
    code, err = run(data, source, capsys)
    assert code == 2, err
    assert (
        "options >= 50% of the neighbours' median and of the listing: 1 chain fails" in err
        and "285 options vs median 854 of 1 neighbour and 285 listed" in err
    )
    assert published(data, "option_snapshots").height == 854  # the first snapshot only
    assert published(data, "key_levels").equals(before)


def test_a_snapshot_that_lost_a_few_options_to_an_expiry_still_lands(tmp_path, capsys):
    data = tmp_path / "data"
    assert run(data, replay_dir(tmp_path / "first"), capsys)[0] == 0

    def drop_nearest_expiry(rows: list) -> None:  # 08:00 settlement removes a whole expiry
        rows[:] = [r for r in rows if "-1AUG26-" not in r["instrument_name"]]

    source = replay_dir(tmp_path / "second", book=drop_nearest_expiry, instruments=drop_nearest_expiry, stamp=LATER)
    code, err = run(data, source, capsys)
    assert code == 0, err
    assert published(data, "option_snapshots")["snapshot_ts"].n_unique() == 2


# ---------------------------------------------------------------- the Tardis path shares the gate


def tardis_days(root: Path, days: list[str], edit: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> Path:
    for day in days:
        for kind, suffix in (("options_chain", "OPTIONS"), ("derivative_ticker", "PERPETUALS")):
            name = f"deribit_{kind}_{day}_{suffix}.csv.gz"
            (root / kind).mkdir(parents=True, exist_ok=True)
            if kind == "options_chain" and edit is not None and day == days[-1]:
                frame = edit(pl.read_csv(TARDIS / kind / name, infer_schema_length=0))
                (root / kind / name).write_bytes(gzip.compress(frame.write_csv().encode()))
            else:
                shutil.copy(TARDIS / kind / name, root / kind / name)
    return root


def backfill(data: Path, tardis: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["backfill", "--tardis", str(tardis), "--data-dir", str(data), "--currency", "BTC", *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def tardis_day() -> tuple[str, pl.DataFrame]:
    day = "2026-07-30"
    frame = pl.read_csv(TARDIS / "options_chain" / f"deribit_options_chain_{day}_OPTIONS.csv.gz", infer_schema_length=0)
    return day, frame


def test_a_tardis_open_interest_of_1e300_quarantines_its_snapshot_and_the_others_publish_finite_levels(
    tmp_path, capsys, tardis_day
):
    day, frame = tardis_day
    stamps = sorted(frame["timestamp"].unique().to_list())
    bad = stamps[1]
    victim = frame.filter((pl.col("timestamp") == bad) & pl.col("symbol").str.starts_with("BTC-"))["symbol"][0]

    def spoil(f: pl.DataFrame) -> pl.DataFrame:
        hit = (pl.col("timestamp") == bad) & (pl.col("symbol") == victim)
        return f.with_columns(
            pl.when(hit).then(pl.lit("1e300")).otherwise(pl.col("open_interest")).alias("open_interest")
        )

    data = tmp_path / "data"
    code, out = backfill(data, tardis_days(tmp_path / "tardis", [day], spoil), capsys)
    assert code == 1, out
    assert f"open_interest <= 1e7: 1 row fails ({victim})" in out
    levels = assert_finite_levels(data)
    hour_ms = 3_600_000
    bad_ms = -(-(int(bad) // 1000) // hour_ms) * hour_ms  # the grid time (next full hour) the recording becomes
    assert bad_ms not in levels["snapshot_ts"].dt.epoch("ms").to_list()
    assert levels.filter(pl.col("model") == "naive").height == len(stamps) - 1
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        status = con.execute("select status from ingest_runs where epoch_ms(snapshot_ts) = ?", [bad_ms]).fetchall()
    finally:
        con.close()
    assert status == [("failed",)]


def stray_row(frame: pl.DataFrame, which: int = 1) -> tuple[pl.DataFrame, int]:
    """One BTC row of the ``which``-th snapshot moved 5 ms later: a one-option "snapshot" of its own when each
    timestamp is read as a snapshot (``--each-timestamp``); the as-of grid folds it into its hour."""
    stamps = sorted(frame["timestamp"].unique().to_list())
    victim = frame.filter((pl.col("timestamp") == stamps[which]) & pl.col("symbol").str.starts_with("BTC-")).row(
        0, named=True
    )
    moved = str(int(stamps[which]) + 5_000)
    hit = (pl.col("timestamp") == stamps[which]) & (pl.col("symbol") == victim["symbol"])
    out = frame.with_columns(pl.when(hit).then(pl.lit(moved)).otherwise(pl.col("timestamp")).alias("timestamp"))
    return out, int(moved) // 1000


def test_a_stray_tardis_row_after_a_published_day_is_refused_as_a_one_option_snapshot(tmp_path, capsys, tardis_day):
    day, frame = tardis_day
    data = tmp_path / "data"
    code, out = backfill(data, tardis_days(tmp_path / "first", ["2026-07-29"]), capsys, "--each-timestamp")
    assert code == 0, out
    holder: dict = {}

    def spoil(f: pl.DataFrame) -> pl.DataFrame:
        out, holder["ms"] = stray_row(f)
        return out

    code, out = backfill(data, tardis_days(tmp_path / "second", [day], spoil), capsys, "--each-timestamp")
    assert code == 1, out
    assert (
        "options >= 50% of the neighbours' median and of the listing: 1 chain fails" in out
        and "1 option vs median" in out
    )
    levels = assert_finite_levels(data)
    assert holder["ms"] not in levels["snapshot_ts"].dt.epoch("ms").to_list()


def test_a_stray_tardis_row_in_the_first_day_of_an_empty_lake_is_refused(tmp_path, capsys, tardis_day):
    day, frame = tardis_day
    data = tmp_path / "data"
    code, out = backfill(
        data, tardis_days(tmp_path / "tardis", [day], lambda f: stray_row(f)[0]), capsys, "--each-timestamp"
    )
    assert code == 1, out
    assert "options >= 50% of the neighbours' median" in out


# ---------------------------------------------------------------- property: random corruptions


VALUES = [None, math.nan, math.inf, -math.inf, 1e300, 10**400, -1.0, 0.0, "12,5", True]
BOOK_FIELDS = ["open_interest", "mark_iv", "underlying_price", "mark_price", "bid_price", "ask_price"]
SAMPLE_BOOK = read_body(sample_directory() / BOOK)["result"]
NAMES = [r["instrument_name"] for r in SAMPLE_BOOK]


def harmless(field: str, value) -> bool:
    """The corruptions that leave a valid chain: a missing or zero price nobody computes with, zero open interest."""
    if isinstance(value, bool) or not (value is None or isinstance(value, int | float)):
        return False
    if value is None:
        return field in ("mark_price", "bid_price", "ask_price")
    return value == 0.0 and field in ("open_interest", "mark_price", "bid_price", "ask_price")


any_corruption = st.tuples(st.sampled_from(NAMES), st.sampled_from(BOOK_FIELDS), st.sampled_from(VALUES))
# drawn as often as any other, so that published runs (and their key levels) are checked too
harmless_corruption = st.tuples(
    st.sampled_from(NAMES), st.sampled_from(["mark_price", "bid_price", "ask_price"]), st.sampled_from([None, 0.0])
) | st.tuples(st.sampled_from(NAMES), st.just("open_interest"), st.just(0.0))
corruption = any_corruption | harmless_corruption


@settings(max_examples=20, deadline=None)
@given(corruptions=st.lists(corruption, min_size=1, max_size=3), keep=st.sampled_from([1, 1, 1, 3, 5]))
def test_random_corruptions_of_a_real_snapshot_never_publish_a_non_finite_or_shrunken_chain(corruptions, keep):
    """Whatever the corruption: either nothing is published (exit 2) or the whole chain is, with every option
    in it, every pricing input finite and every key level finite; and exactly the harmful ones are refused."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)

        def edit(rows: list) -> None:
            by_name = {r["instrument_name"]: r for r in rows}
            for name, field, value in corruptions:
                by_name[name][field] = value
            rows[:] = rows[::keep]

        data = tmp_path / "data"
        code = main(
            [
                "run",
                "--source",
                f"replay:{replay_dir(tmp_path / 'replay', book=edit)}",
                "--data-dir",
                str(data),
                "--currency",
                "BTC",
            ]
        )
        survivors = {n for n in NAMES[::keep]}
        final = {(n, f): v for n, f, v in corruptions}  # a later corruption of the same field wins
        must_refuse = keep > 1 or any(n in survivors and not harmless(f, v) for (n, f), v in final.items())
        assert code in (0, 2)  # never an internal error
        event(f"exit {code}, {'must refuse' if must_refuse else 'harmless'}")
        chain = published(data, "option_snapshots")
        if code == 2:
            assert must_refuse, corruptions  # and never refused for a harmless one
            assert chain.is_empty() and published(data, "key_levels").is_empty()
            return
        assert not must_refuse, corruptions
        assert chain.height == len(SAMPLE_BOOK)  # not one option left out
        for col in ("open_interest", "mark_iv", "underlying_price", "index_price", "strike"):
            assert chain[col].null_count() == 0 and chain[col].is_finite().all(), col
        assert_finite_levels(data)


def test_on_the_as_of_grid_a_stray_row_stays_in_its_hours_chain(tmp_path, capsys, tardis_day):
    day, frame = tardis_day
    data = tmp_path / "data"
    code, out = backfill(data, tardis_days(tmp_path / "tardis", [day], lambda f: stray_row(f)[0]), capsys)
    assert code == 0, out
    chains = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        sizes = chains.execute(
            "select snapshot_ts, count(*) from option_snapshots where currency = 'BTC' group by 1 order by 1"
        ).fetchall()
    finally:
        chains.close()
    recorded = frame.filter(pl.col("symbol").str.starts_with("BTC-")).group_by("timestamp").len().sort("timestamp")
    assert [n for _, n in sizes] == recorded["len"].to_list()  # every chain whole, none of one option
