"""Tardis backfill on tick-level files: chain snapshots as of a UTC grid (DESIGN section 2).

The oracle is the tick-file tool's own truth (``tests/tools/tardis_ticks.py --truth``, a verbatim copy of
../shared/tools/tardis_ticks.py, run on the tests/data Tardis days: per option its
last row with ``timestamp`` <= the grid time, computed with polars' join_asof over every row it wrote),
the recorded snapshot-grouped files it was made from, and small hand-written tick files for the edges.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.config import Settings
from pipelines.errors import SourceError
from pipelines.jobs.backfill import backfill_cycle
from pipelines.jobs.backfill_grid import INDEX_TICK_WINDOW_US, Grid
from pipelines.sources.tardis_stream import read_day
from tests.data_paths import TARDIS
from tests.data_paths import TICK_TOOL as TOOL
from transforms.frames.asof import Carry, asof_day
from warehouse import lake

DAYS = (date(2026, 7, 30), date(2026, 7, 31))
US = 1_000_000
HOUR_US = 3600 * US


def us_of(day: date, hours: float = 0.0) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * US + int(hours * HOUR_US)


def ts_of(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def lake_files(data_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((data_dir / "lake").rglob("*.parquet"))
        if "ingest_runs" not in p.parts and p.name != lake.EMPTY_NAME
    }


def stored(data_dir: Path) -> pl.DataFrame:
    scan = lake.scan(data_dir, "option_snapshots")
    return scan.collect() if scan is not None else pl.DataFrame()


def grid_state(data_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(data_dir / "lake" / "_state" / "tardis_backfill" / "**" / "grid.parquet")


# ---------------------------------------------------------------- files made by the tool, with truth


@pytest.fixture(scope="session")
def ticks(tmp_path_factory) -> Path:
    """Two tick-level days (07-30, 07-31) at --rate 0.5 with the tool's truth, made once per session."""
    out = tmp_path_factory.mktemp("ticks")
    cmd = [sys.executable, str(TOOL), str(TARDIS), str(out), "--since", str(DAYS[0])]
    subprocess.run([*cmd, "--until", str(DAYS[1]), "--rate", "0.5", "--truth"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def landed(ticks, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("grid")
    lines: list[str] = []
    result = backfill_cycle(Settings(data_dir=data_dir), tardis_dir=ticks, progress=lambda *a: lines.append(a))
    return data_dir, result, lines


def truth_options(ticks: Path, staleness_us: int = HOUR_US) -> pl.DataFrame:
    truth = pl.read_parquet(ticks / "truth" / "options_asof.parquet")
    fresh = truth.filter(pl.col("snapshot_us") - pl.col("timestamp") <= staleness_us)
    return fresh.with_columns(pl.from_epoch("snapshot_us", "us").dt.replace_time_zone("UTC").alias("t"))


def with_spot(truth: pl.DataFrame, ticks: Path) -> pl.DataFrame:
    """The truth's rows at the grid points a snapshot can be published at: where the tool's own index truth has a
    PERPETUAL index row no older than a minute (INDEX_TICK_WINDOW_US). Without that, the first grid time of the
    first day has option rows whenever an update stamped just before midnight reached the file after it (the
    tool's latency), and no snapshot is published there (no spot yet)."""
    index = pl.read_parquet(ticks / "truth" / "index_asof.parquet").filter(
        pl.col("snapshot_us") - pl.col("timestamp") <= INDEX_TICK_WINDOW_US
    )
    spot = index.select(pl.col("symbol").str.replace("-PERPETUAL", "").alias("currency"), "snapshot_us")
    currency = pl.col("symbol").str.split("-").list.first().alias("currency")
    return truth.with_columns(currency).join(spot, on=["currency", "snapshot_us"], how="semi").drop("currency")


def test_every_published_snapshot_is_the_truth_as_of_its_grid_time_row_for_row(ticks, landed):
    data_dir, result, _ = landed
    got = stored(data_dir).with_columns(pl.col("snapshot_ts").dt.cast_time_unit("us").alias("t"))
    truth = with_spot(truth_options(ticks), ticks).rename({"symbol": "instrument_name"})
    key = ["t", "instrument_name"]
    assert got.height == truth.height and got.select(key).is_duplicated().sum() == 0
    both = got.join(truth, on=key, how="full", coalesce=True)
    assert both["currency"].null_count() == 0 and both["timestamp"].null_count() == 0  # same rows exactly
    for mine, theirs in [
        ("open_interest", "open_interest_right"),
        ("mark_iv", "mark_iv_right"),
        ("underlying_price", "underlying_price_right"),
        ("strike", "strike_price"),
        ("mark_price", "mark_price_right"),
        ("bid_price", "bid_price_right"),
        ("option_type", "type"),
    ]:
        assert both.filter(pl.col(mine).ne_missing(pl.col(theirs))).is_empty(), mine
    expiry = pl.from_epoch("expiration", "us").dt.replace_time_zone("UTC").dt.cast_time_unit("ms")
    assert both.filter(pl.col("expiration_ts") != expiry).is_empty()
    # spot: the PERPETUAL index as of the grid time
    index = pl.read_parquet(ticks / "truth" / "index_asof.parquet").select(
        pl.col("symbol").str.replace("-PERPETUAL", "").alias("currency"),
        pl.from_epoch("snapshot_us", "us").dt.replace_time_zone("UTC").alias("t"),
        pl.col("index_price").alias("truth_index"),
    )
    spots = got.select("currency", "t", "index_price").unique().join(index, on=["currency", "t"], how="left")
    assert spots.height == result.snapshots == 94 and (spots["index_price"] == spots["truth_index"]).all()


def test_the_first_grid_time_has_no_data_and_is_reported_not_published(landed):
    data_dir, result, progress = landed
    first = datetime(2026, 7, 30, tzinfo=UTC)
    assert {(f.snapshot_ts, f.currencies) for f in result.empty} == {(first, ("BTC",)), (first, ("ETH",))}
    assert result.failed == [] and result.exit_code == 0
    assert any("no data BTC 2026-07-30 00:00 (1 grid time(s))" in line for line in result.lines())
    state = grid_state(data_dir)
    assert state.group_by("status").len().sort("status").rows() == [("no_data", 2), ("published", 94)]
    assert [(done, total, day.day) for done, total, day in progress] == [(1, 2, DAYS[0]), (2, 2, DAYS[1])]
    assert all(day.rows_read > 1_000_000 for _, _, day in progress)


def test_stale_options_are_left_out_and_counted_per_snapshot(ticks, landed):
    data_dir, _, _ = landed
    truth = pl.read_parquet(ticks / "truth" / "options_asof.parquet")
    stale = truth.filter(pl.col("snapshot_us") - pl.col("timestamp") > HOUR_US).with_columns(
        pl.col("symbol").str.split("-").list.first().alias("currency")
    )
    assert stale.height > 0  # the tool's far-from-the-money options update rarely enough
    expected = stale.group_by("currency", "snapshot_us").len()
    state = grid_state(data_dir).with_columns(pl.col("snapshot_ts").dt.epoch("us").alias("snapshot_us"))
    counted = state.filter(pl.col("stale") > 0).select("currency", "snapshot_us", pl.col("stale").cast(pl.UInt32))
    assert counted.sort(pl.all()).rows() == expected.rename({"len": "stale"}).sort(pl.all()).rows()


def test_an_option_listed_mid_day_appears_from_the_first_grid_time_after_its_first_update(ticks, landed):
    data_dir, _, _ = landed
    truth = pl.read_parquet(ticks / "truth" / "options_asof.parquet")
    first_seen = (
        truth.group_by("symbol").agg(pl.col("snapshot_us").min()).filter(pl.col("snapshot_us") > us_of(DAYS[0], 1))
    )
    assert first_seen.height > 0
    symbol, first = first_seen.sort("snapshot_us").row(0)
    times = stored(data_dir).filter(pl.col("instrument_name") == symbol)["snapshot_ts"].dt.epoch("us")
    assert times.min() == first and (first - HOUR_US) not in times.to_list()


def test_an_option_expiring_at_0800_is_gone_from_the_0800_snapshot_on(landed):
    data_dir, _, _ = landed
    rows = stored(data_dir).filter(pl.col("expiration_ts") == datetime(2026, 7, 31, 8, tzinfo=UTC))
    times = set(rows["snapshot_ts"].to_list())
    assert datetime(2026, 7, 31, 7, tzinfo=UTC) in times
    assert max(times) == datetime(2026, 7, 31, 7, tzinfo=UTC)


def test_at_a_recorded_time_the_chain_read_from_ticks_is_the_recording(ticks):
    """The tool's files equal the recording as of each recorded time; read at every microsecond (every_us=1)."""
    recorded = pl.read_csv(
        TARDIS / "options_chain" / f"deribit_options_chain_{DAYS[0]}_OPTIONS.csv.gz",
        infer_schema_length=0,
    ).with_columns(pl.col("timestamp").cast(pl.Int64))
    at = sorted(set(recorded.filter(pl.col("symbol").str.starts_with("BTC-"))["timestamp"]))[1]  # mid-day
    read = read_day(ticks / "options_chain" / f"deribit_options_chain_{DAYS[0]}_OPTIONS.csv.gz", 1, ("BTC",))
    points, _ = asof_day(Carry(), read.options, read.index, [at], ("BTC",), 10**15, {"BTC": 60 * US})
    chain = points[0].options.sort("symbol")
    want = recorded.filter((pl.col("timestamp") == at) & pl.col("symbol").str.starts_with("BTC-")).sort("symbol")
    assert chain["symbol"].to_list() == want["symbol"].to_list() and chain.height > 500
    for col in ("open_interest", "mark_iv", "underlying_price", "mark_price", "strike_price"):
        assert chain[col].to_list() == want[col].cast(pl.Float64).to_list(), col


def test_key_levels_at_a_grid_time_equal_those_computed_from_the_truth_rows(ticks, landed, tmp_path):
    from pipelines.jobs.compute import compute_cycle
    from transforms.frames.schemas import OPTION_SNAPSHOT
    from transforms.gex.analytic_tables import exposure_tables
    from transforms.gex.positioning import dealer_positions

    data_dir, _, _ = landed
    at = datetime(2026, 7, 31, 12, tzinfo=UTC)
    compute_cycle(data_dir, ["BTC"], since=at, until=at)
    got = (
        lake.scan(data_dir, "key_levels").collect().filter((pl.col("snapshot_ts") == at) & (pl.col("model") == "naive"))
    )
    truth = truth_options(ticks).filter((pl.col("t") == at) & pl.col("symbol").str.starts_with("BTC-"))
    spot = pl.read_parquet(ticks / "truth" / "index_asof.parquet").filter(
        (pl.col("symbol") == "BTC-PERPETUAL") & (pl.col("snapshot_us") == int(at.timestamp()) * US)
    )["index_price"][0]
    chain = truth.select(
        pl.lit("BTC").alias("currency"),
        pl.lit(at).alias("snapshot_ts"),
        pl.col("symbol").alias("instrument_name"),
        pl.col("type").alias("option_type"),
        pl.col("strike_price").alias("strike"),
        pl.from_epoch("expiration", "us").dt.replace_time_zone("UTC").alias("expiration_ts"),
        pl.lit(1.0).alias("contract_size"),
        pl.lit(False).alias("is_linear"),
        "open_interest",
        "mark_iv",
        "mark_price",
        "bid_price",
        "ask_price",
        "underlying_price",
        "underlying_index",
        pl.lit(spot).alias("index_price"),
        pl.lit("tardis").alias("source"),
    ).cast(OPTION_SNAPSHOT)
    want = exposure_tables(chain, dealer_positions(chain, "naive"))["key_levels"]
    cols = ["spot", "total_gex_usd", "zero_gamma", "call_wall", "put_wall", "abs_gamma_strike", "max_pain"]
    assert got.height == 1 and got.select(cols).rows() == want.select(cols).rows()


# ---------------------------------------------------------------- hand-written tick files for the edges

CHAIN = (
    "exchange symbol timestamp local_timestamp type strike_price expiration open_interest last_price bid_price "
    "bid_amount bid_iv ask_price ask_amount ask_iv mark_price mark_iv underlying_index underlying_price delta gamma "
    "vega theta rho"
).split()
TICKER = (
    "exchange symbol timestamp local_timestamp funding_timestamp funding_rate predicted_funding_rate open_interest "
    "last_price index_price mark_price"
).split()
D0 = date(2026, 3, 2)
EXPIRY = us_of(date(2026, 3, 27), 8)


def option(symbol: str, ts: int, oi: float, *, expiration: int = EXPIRY, lag: int = 3000) -> dict:
    strike = float(symbol.split("-")[2])
    return {
        "exchange": "deribit", "symbol": symbol, "timestamp": ts, "local_timestamp": ts + lag,
        "type": "call" if symbol.endswith("-C") else "put", "strike_price": strike, "expiration": expiration,
        "open_interest": oi, "bid_price": 0.01, "ask_price": 0.02, "mark_price": 0.015, "mark_iv": 50.0,
        "underlying_index": "BTC-27MAR26", "underlying_price": 60000.0,
    }  # fmt: skip


def write_gz(path: Path, columns: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r["local_timestamp"])
    with gzip.open(path, "wt", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)


def write_day(root: Path, day: date, options: list[dict], *, gap: tuple[float, float] | None = None) -> None:
    """One day's files: ``options`` rows plus a BTC-PERPETUAL index every 30 s (none in ``gap`` hours)."""
    index = []
    for k in range(0, 86_400, 30):
        if gap and gap[0] * 3600 <= k < gap[1] * 3600:
            continue
        ts = us_of(day) + k * US
        index.append({"exchange": "deribit", "symbol": "BTC-PERPETUAL", "timestamp": ts, "local_timestamp": ts + 500,
                      "index_price": 60000.0 + k / 100})  # fmt: skip
    write_gz(root / "options_chain" / f"deribit_options_chain_{day}_OPTIONS.csv.gz", CHAIN, options)
    write_gz(root / "derivative_ticker" / f"deribit_derivative_ticker_{day}_PERPETUALS.csv.gz", TICKER, index)


def hourly(symbol: str, day: date, oi: float, *, minute: int = 10, hours=range(24), **kw) -> list[dict]:
    return [option(symbol, us_of(day, h + minute / 60), oi + h, **kw) for h in hours]


def run(root: Path, data_dir: Path, **kw):
    return backfill_cycle(Settings(data_dir=data_dir, currencies=("BTC",)), tardis_dir=root, **kw)


def chain_at(data_dir: Path, day: date, hour: int) -> dict[str, float]:
    rows = stored(data_dir).filter(pl.col("snapshot_ts") == ts_of(us_of(day, hour)))
    return dict(rows.select("instrument_name", "open_interest").rows())


def test_a_row_stamped_235959999_in_the_next_days_file_is_in_that_days_0000_snapshot(tmp_path):
    root = tmp_path / "t"
    late = option("BTC-27MAR26-70000-C", us_of(D0, 24) - 1000, 99.0, lag=5000)  # 23:59:59.999, arrives 00:00:00.004
    write_day(root, D0, hourly("BTC-27MAR26-70000-C", D0, 1.0))
    write_day(root, D0 + timedelta(days=1), [late, *hourly("BTC-27MAR26-70000-C", D0 + timedelta(days=1), 50.0)])
    result = run(root, tmp_path / "d")
    assert chain_at(tmp_path / "d", D0 + timedelta(days=1), 0) == {"BTC-27MAR26-70000-C": 99.0}
    assert chain_at(tmp_path / "d", D0, 23) == {"BTC-27MAR26-70000-C": 23.0}  # 23:10's row; the late one is later
    assert result.exit_code == 0


def test_verbatim_duplicate_rows_change_nothing(tmp_path):
    rows = hourly("BTC-27MAR26-70000-C", D0, 1.0) + hourly("BTC-27MAR26-60000-P", D0, 5.0, minute=20)
    write_day(tmp_path / "once", D0, rows)
    write_day(tmp_path / "twice", D0, rows + rows[::3])
    run(tmp_path / "once", tmp_path / "a")
    run(tmp_path / "twice", tmp_path / "b")
    assert lake_files(tmp_path / "a") == lake_files(tmp_path / "b") and stored(tmp_path / "a").height == 2 * 23


def test_a_stale_option_is_left_out_and_counted_and_an_expired_one_is_gone(tmp_path):
    once = [option("BTC-27MAR26-80000-C", us_of(D0, 8 + 10 / 60), 7.0)]  # one update at 08:10
    expiring = hourly("BTC-2MAR26-50000-P", D0, 3.0, hours=range(8), expiration=us_of(D0, 8))
    write_day(tmp_path / "t", D0, hourly("BTC-27MAR26-70000-C", D0, 1.0) + once + expiring)
    run(tmp_path / "t", tmp_path / "d")
    assert "BTC-27MAR26-80000-C" in chain_at(tmp_path / "d", D0, 9)  # 50 min old
    assert "BTC-27MAR26-80000-C" not in chain_at(tmp_path / "d", D0, 10)  # 110 min old: stale
    assert "BTC-2MAR26-50000-P" in chain_at(tmp_path / "d", D0, 7)
    assert "BTC-2MAR26-50000-P" not in chain_at(tmp_path / "d", D0, 8)  # expires at 08:00
    stale = grid_state(tmp_path / "d").filter(pl.col("snapshot_ts") >= ts_of(us_of(D0, 10)))["stale"]
    assert stale.to_list() == [1] * 14
    tight = run(tmp_path / "t", tmp_path / "e", grid=Grid(3600, 30 * 60))  # 30 min: every :10 row is stale at :00
    assert stored(tmp_path / "e").is_empty() and len(tight.empty) == 24 and tight.exit_code == 0
    assert "(2 stale)" in grid_state(tmp_path / "e").filter(pl.col("snapshot_ts") == ts_of(us_of(D0, 9)))["reason"][0]


def test_a_stretch_without_index_rows_skips_those_snapshots_with_a_reason(tmp_path):
    write_day(tmp_path / "t", D0, hourly("BTC-27MAR26-70000-C", D0, 1.0), gap=(10.5, 12.5))
    result = run(tmp_path / "t", tmp_path / "d")
    skipped = [(f.snapshot_ts.hour, f.currencies) for f in result.failed]
    assert skipped == [(11, ("BTC",)), (12, ("BTC",))] and result.exit_code == 1
    assert "no BTC-PERPETUAL index_price within 60 s" in result.failed[0].reason
    assert "the latest is 1,830 s old" in result.failed[0].reason  # 10:29:30
    assert sorted({t.hour for t in stored(tmp_path / "d")["snapshot_ts"]}) == [
        h for h in range(1, 24) if h not in (11, 12)
    ]


def _three_days(root: Path) -> list[date]:
    days = [D0 + timedelta(days=k) for k in range(3)]
    for k, day in enumerate(days):
        write_day(root, day, hourly("BTC-27MAR26-70000-C", day, 10.0 * k) + hourly("BTC-27MAR26-60000-P", day, 1.0))
    return days


def test_a_truncated_gz_is_one_line_naming_it_and_earlier_days_stay_published(tmp_path):
    days = _three_days(tmp_path / "t")
    bad = tmp_path / "t" / "options_chain" / f"deribit_options_chain_{days[2]}_OPTIONS.csv.gz"
    whole = bad.read_bytes()
    bad.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError) as exc:
        run(tmp_path / "t", tmp_path / "d")
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value)
    assert {t.date() for t in stored(tmp_path / "d")["snapshot_ts"]} == {days[0], days[1]}
    # fixed, the re-run carries on from the third day and ends as an uninterrupted run
    bad.write_bytes(whole)
    again = run(tmp_path / "t", tmp_path / "d")
    assert [d.resumed for d in again.days] == [True, True, False]
    run(tmp_path / "t", tmp_path / "whole")
    assert lake_files(tmp_path / "d") == lake_files(tmp_path / "whole")


def test_a_rerun_skips_published_days_and_equals_an_uninterrupted_run(tmp_path):
    days = _three_days(tmp_path / "t")
    run(tmp_path / "t", tmp_path / "whole")
    run(tmp_path / "t", tmp_path / "d", until=days[0])
    second = run(tmp_path / "t", tmp_path / "d")
    assert [d.resumed for d in second.days] == [True, False, False] and "skipped" in "\n".join(second.lines())
    assert lake_files(tmp_path / "d") == lake_files(tmp_path / "whole")
    other = run(tmp_path / "t", tmp_path / "d", grid=Grid(1800, 3600))  # another grid is not "published"
    assert not any(d.resumed for d in other.days)


def test_a_day_missing_in_the_middle_is_reported_and_the_state_carries_over(tmp_path):
    days = [D0, D0 + timedelta(days=2)]
    write_day(tmp_path / "t", days[0], hourly("BTC-27MAR26-70000-C", days[0], 1.0, minute=59))
    write_day(tmp_path / "t", days[1], [option("BTC-27MAR26-60000-P", us_of(days[1], 0.5), 4.0)])
    result = run(tmp_path / "t", tmp_path / "d", grid=Grid(3600, 3 * 86_400))  # staleness wide: the carry shows
    assert result.missing == [D0 + timedelta(days=1)]
    assert f"  missing {D0 + timedelta(days=1)}: no options_chain file (the state carries over)" in result.lines()
    assert chain_at(tmp_path / "d", days[1], 1) == {"BTC-27MAR26-70000-C": 24.0, "BTC-27MAR26-60000-P": 4.0}


def test_each_timestamp_refuses_tick_files_and_the_grid_is_checked(tmp_path):
    write_day(tmp_path / "t", D0, [option("BTC-27MAR26-70000-C", us_of(D0) + k * 60 * US, 1.0) for k in range(200)])
    with pytest.raises(SourceError, match="not snapshot-grouped"):
        run(tmp_path / "t", tmp_path / "d", each_timestamp=True)
    from pipelines.config import ConfigError

    with pytest.raises(ConfigError, match="--every must divide a day"):
        run(tmp_path / "t", tmp_path / "d", grid=Grid(7 * 60, 3600))


def test_the_cli_takes_the_grid_and_reports_one_line_per_day_when_piped(tmp_path, capsys):
    from pipelines.cli.app import main

    write_day(tmp_path / "t", D0, hourly("BTC-27MAR26-70000-C", D0, 1.0, minute=50))
    args = ["backfill", "--tardis", str(tmp_path / "t"), "--data-dir", str(tmp_path / "d"), "--currency", "BTC"]
    assert main([*args, "--no-compute", "--every", "30m", "--max-staleness", "30m"]) == 0
    out, err = capsys.readouterr()
    # updates at :50; at :00 the last is 10 min old, at :30 40 min (stale); 00:00 and 00:30 have none yet
    assert f"backfill 1/1 {D0}: 24 rows read, 23 snapshot(s), 23 options, 0 stale left out, 25 without data" in err
    assert "backfilled 23 snapshot(s)" in out
    times = sorted({t.strftime("%H:%M") for t in stored(tmp_path / "d")["snapshot_ts"]})
    assert times[:3] == ["01:00", "02:00", "03:00"] and len(times) == 23
    for flag, value, needle in [
        ("--every", "7m", "--every must divide a day"),
        ("--every", "soon", "--every must be a duration like 1h"),
        ("--max-staleness", "0s", "--max-staleness must be whole seconds between 1 s and 10 days"),
    ]:
        assert main([*args, flag, value]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1


def test_the_tick_tool_in_the_repo_is_the_teams_tool():
    from tests.data_paths import SHARED

    original = SHARED / "tools" / "tardis_ticks.py"
    if not original.is_file():
        pytest.skip(f"{original} (../shared) is absent: nothing to compare the copy with")
    assert TOOL.read_bytes() == original.read_bytes()
