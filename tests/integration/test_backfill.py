"""Tardis backfill end to end on the real recorded (snapshot-grouped) CSV files: every row lands once, per
day, re-runnable.

These files hold about four recordings a day, all rows of one sharing a timestamp. Read by the as-of rule
(DESIGN section 2: hourly grid, one hour of staleness), a recording at 11:33 is the 12:00 snapshot and
the other grid times have no fresh option. The oracle is the CSV itself, read with the standard
library's csv module (not the reader under test), and the recorded API snapshots of the same recorder.
Tick-level files are tested in tests/integration/test_tardis_ticks.py.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.config import ConfigError, Settings
from pipelines.errors import SourceError
from pipelines.jobs.backfill import backfill_cycle, backfill_day, plan_backfill, refresh_warehouse
from tests.data_paths import SNAPSHOTS as API_SNAPSHOTS
from tests.data_paths import TARDIS
from transforms.frames.tardis import settlement_period, snapshot_index_prices
from warehouse import atomic, files, lake

DAYS = (date(2026, 7, 29), date(2026, 7, 30), date(2026, 7, 31))


def chain_file(day: date, root: Path = TARDIS) -> Path:
    return root / "options_chain" / f"deribit_options_chain_{day}_OPTIONS.csv.gz"


def ticker_file(day: date, root: Path = TARDIS) -> Path:
    return root / "derivative_ticker" / f"deribit_derivative_ticker_{day}_PERPETUALS.csv.gz"


def read_csv_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def write_csv_gz(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


HOUR_US = 3_600_000_000


def grid_ms(ts_us: int | str) -> int:
    """The hourly grid time (ms) a recording stamped ``ts_us`` is published at: the first full hour >= it."""
    return -(-int(ts_us) // HOUR_US) * HOUR_US // 1000


def csv_chains(days, grid: bool = True) -> dict[tuple[str, int], tuple[int, float]]:
    """{(currency, snapshot ms): (rows, open interest sum)} straight from the options_chain CSVs, at the grid
    time each recording is published at (``grid=False``: at the recording's own timestamp)."""
    out: dict[tuple[str, int], list] = {}
    for day in days:
        for row in read_csv_gz(chain_file(day)):
            ms = grid_ms(row["timestamp"]) if grid else int(row["timestamp"]) // 1000
            key = (row["symbol"].split("-")[0], ms)
            acc = out.setdefault(key, [0, 0.0])
            acc[0] += 1
            acc[1] += float(row["open_interest"])
    return {k: (n, oi) for k, (n, oi) in out.items()}


def csv_index(days) -> dict[tuple[str, int], float]:
    """{(currency, grid ms): index_price} of the PERPETUAL rows of the derivative_ticker CSVs."""
    return {
        (row["symbol"].split("-")[0], grid_ms(row["timestamp"])): float(row["index_price"])
        for day in days
        for row in read_csv_gz(ticker_file(day))
    }


def view_rows(data_dir: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def view_chains(data_dir: Path) -> dict[tuple[str, int], tuple[int, float]]:
    rows = view_rows(
        data_dir,
        "select currency, epoch_ms(snapshot_ts), count(*), sum(open_interest) from option_snapshots group by 1, 2",
    )
    return {(c, ms): (n, oi) for c, ms, n, oi in rows}


def lake_files(data_dir: Path) -> dict[str, str]:
    """Every published lake file (state tables excluded) with its content hash."""
    return {
        str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((data_dir / "lake").rglob("*.parquet"))
        if "_state" not in p.parts and p.name != lake.EMPTY_NAME
    }


def copy_days(root: Path, days) -> Path:
    for day in days:
        for src, dst in ((chain_file(day), chain_file(day, root)), (ticker_file(day), ticker_file(day, root))):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    return root


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """Three real days backfilled into a fresh data dir (shared by the read-only tests below)."""
    data_dir = tmp_path_factory.mktemp("backfill")
    calls = []
    result = backfill_cycle(
        Settings(data_dir=data_dir),
        tardis_dir=TARDIS,
        since=DAYS[0],
        until=DAYS[-1],
        progress=lambda *args: calls.append(args),
    )
    return data_dir, result, calls


# ---------------------------------------------------------------- the happy path


def test_every_csv_row_lands_once_per_snapshot_with_the_csv_open_interest(landed):
    data_dir, result, _ = landed
    expected = csv_chains(DAYS)
    got = view_chains(data_dir)
    assert set(got) == set(expected) and len(expected) == 24  # 4 snapshots a day x 2 currencies x 3 days
    for key, (rows, oi) in expected.items():
        assert got[key][0] == rows, key
        assert got[key][1] == pytest.approx(oi, rel=1e-12), key
    assert result.snapshots == 24 and result.rows == sum(n for n, _ in expected.values())
    assert result.failed == [] and result.exit_code == 0
    assert [d.day for d in result.days] == list(DAYS)
    dupes = view_rows(
        data_dir,
        "select count(*) from (select 1 from option_snapshots "
        "group by currency, snapshot_ts, instrument_name having count(*) > 1)",
    )
    assert dupes == [(0,)]


def test_the_index_price_is_the_perpetual_tickers_index_of_the_recording(landed):
    data_dir, _, _ = landed
    rows = view_rows(data_dir, "select distinct currency, epoch_ms(snapshot_ts), index_price from option_snapshots")
    assert len(rows) == 24
    index = csv_index(DAYS)
    assert {(c, ms): px for c, ms, px in rows} == {k: index[k] for k in csv_chains(DAYS)}


def test_the_views_show_tardis_snapshots_with_instruments_and_run_records(landed):
    data_dir, result, calls = landed
    row = view_rows(
        data_dir,
        "select option_type, strike, expiration_ts, contract_size, is_linear, mark_iv, underlying_price, source "
        "from option_snapshots where instrument_name = 'BTC-14AUG26-50000-C' and snapshot_ts = $ts",
        {"ts": datetime(2026, 7, 31, 12, tzinfo=UTC)},  # recorded at 11:33:22.630
    )
    assert row == [("call", 50000.0, datetime(2026, 8, 14, 8, tzinfo=UTC), 1.0, False, 57.62, 63921.11, "tardis")]
    periods = dict(view_rows(data_dir, "select settlement_period, count(*) from instruments group by 1"))
    assert set(periods) == {"day", "week", "month"}
    runs = view_rows(data_dir, "select run_id, status, count(*) from ingest_runs group by all")
    assert runs == [(result.run_id, "ok", 24)]
    assert [(done, total, day.day, day.snapshots) for done, total, day in calls] == [
        (1, 3, DAYS[0], 8),
        (2, 3, DAYS[1], 8),
        (3, 3, DAYS[2], 8),
    ]
    assert len(result.empty) == 3 * 2 * 20  # the other 20 grid times of a day: no option updated within 1h


def test_rerunning_a_backfill_skips_the_published_days_and_leaves_identical_lake_files(landed):
    data_dir, _, _ = landed
    before, chains = lake_files(data_dir), view_chains(data_dir)
    assert len(before) == 2 * 24  # one option_snapshots and one instruments file per (currency, snapshot)
    again = backfill_cycle(Settings(data_dir=data_dir), tardis_dir=TARDIS, since=DAYS[0], until=DAYS[-1])
    assert [d.resumed for d in again.days] == [True, True, True]
    assert lake_files(data_dir) == before
    assert view_chains(data_dir) == chains
    runs = view_rows(data_dir, "select count(distinct run_id), count(*) from ingest_runs")
    assert runs == [(1, 24)] and again.exit_code == 0
    assert not list((data_dir / "lake").rglob("*.tmp")) and not list((data_dir / atomic.JOURNAL_DIR).glob("*.json"))


def test_the_1200_snapshot_is_the_recorded_api_snapshot_of_1133(tmp_path):
    """Same recorder: the API snapshot 2026-07-31T11:33:22Z is the Tardis recording at 11:33:22.630409, which
    the as-of rule publishes as the 12:00 snapshot, every value equal."""
    api = backfill_cycle(Settings(data_dir=tmp_path), replay_dir=API_SNAPSHOTS)
    api_rows = lake.scan(tmp_path, "option_snapshots").collect()
    instant = datetime(2026, 7, 31, 11, 33, 22, 630000, tzinfo=UTC)
    assert api.source == "replay" and instant in api_rows["snapshot_ts"].to_list()

    tardis = backfill_cycle(Settings(data_dir=tmp_path), tardis_dir=TARDIS, since=DAYS[2], until=DAYS[2])
    stamps = sorted({ms for _, ms in csv_chains([DAYS[2]], grid=False)})
    nearest = min(stamps, key=lambda ms: abs(ms - int(instant.timestamp() * 1000)))
    assert nearest == int(instant.timestamp() * 1000)  # the same millisecond

    noon = datetime(2026, 7, 31, 12, tzinfo=UTC)
    stored = lake.scan(tmp_path, "option_snapshots").collect().filter(pl.col("snapshot_ts") == noon)
    counts = dict(stored.group_by("currency").agg(pl.len()).rows())
    assert counts == {"BTC": 854, "ETH": 710}  # the API's 854/710 options
    assert stored["source"].unique().to_list() == ["tardis"]
    key = ["currency", "instrument_name"]
    api_at = api_rows.filter(pl.col("snapshot_ts") == instant).drop("source", "snapshot_ts").sort(key)
    assert stored.drop("source", "snapshot_ts").sort(key).equals(api_at)  # every value, OI and index price included
    sql = "select count(*) from option_snapshots where snapshot_ts = $ts"
    assert view_rows(tmp_path, sql, {"ts": noon}) == [(854 + 710,)]
    assert tardis.snapshots == 8


def test_settlement_period_follows_the_recorded_get_instruments():
    for path in sorted(API_SNAPSHOTS.glob("get_instruments.*.json")):
        result = json.loads(path.read_text())["result"]
        frame = pl.DataFrame(
            {
                "expiration_ts": [r["expiration_timestamp"] for r in result],
                "recorded": [r["settlement_period"] for r in result],
            }
        ).with_columns(pl.from_epoch("expiration_ts", "ms").dt.replace_time_zone("UTC"))
        derived = frame.select(settlement_period(pl.col("expiration_ts")))["literal"]
        assert derived.to_list() == frame["recorded"].to_list(), path.name


def test_a_currency_filter_keeps_only_that_currency(tmp_path):
    settings = Settings(data_dir=tmp_path, currencies=("BTC",))
    result = backfill_cycle(settings, tardis_dir=TARDIS, since=DAYS[2], until=DAYS[2])
    assert {c for c, _ in view_chains(tmp_path)} == {"BTC"} and result.snapshots == 4


# ---------------------------------------------------------------- bad snapshots: skip and report


def test_a_snapshot_failing_validation_is_quarantined_and_the_others_land(tmp_path):
    root = copy_days(tmp_path / "tardis", [DAYS[1]])
    rows = read_csv_gz(chain_file(DAYS[1], root))
    stamps = sorted({r["timestamp"] for r in rows})
    bad_ts = stamps[1]
    victim = next(r for r in rows if r["timestamp"] == bad_ts and r["symbol"].startswith("BTC-"))
    victim["open_interest"] = "-5.0"
    write_csv_gz(chain_file(DAYS[1], root), rows)

    data_dir = tmp_path / "data"
    result = backfill_cycle(Settings(data_dir=data_dir), tardis_dir=root)
    assert result.exit_code == 1 and len(result.failed) == 1
    failed = result.failed[0]
    assert failed.currencies == ("BTC", "ETH") and int(failed.snapshot_ts.timestamp() * 1000) == grid_ms(bad_ts)
    assert "open_interest >= 0" in failed.reason and victim["symbol"] in failed.reason
    report = json.loads((failed.quarantined / "report.json").read_text())
    assert report[0]["table"] == "option_snapshots"
    expected = {k: v for k, v in csv_chains([DAYS[1]]).items() if k[1] != grid_ms(bad_ts)}
    assert set(view_chains(data_dir)) == set(expected) and len(expected) == 6
    sql = "select status, currency, epoch_ms(snapshot_ts) from ingest_runs where status <> 'ok'"
    statuses = view_rows(data_dir, sql)
    assert sorted(statuses) == [("failed", "BTC", grid_ms(bad_ts)), ("failed", "ETH", grid_ms(bad_ts))]
    assert any("failed" in line and "open_interest" in line for line in result.lines())


def test_a_chain_without_an_index_price_within_the_staleness_window_is_skipped_and_one_within_is_priced(tmp_path):
    """On these grouped files the index is as old as the recording, so it obeys the options' staleness window
    (DESIGN section 2): 30 min older still prices the snapshot; without its own row the index is 6 h old."""
    root = copy_days(tmp_path / "tardis", [DAYS[0]])
    ticks = read_csv_gz(ticker_file(DAYS[0], root))
    stamps = sorted({r["timestamp"] for r in ticks})
    near, far = stamps[1], stamps[2]
    for r in ticks:
        if r["symbol"] == "BTC-PERPETUAL" and r["timestamp"] == near:
            r["timestamp"] = str(int(near) - 1_800_000_000)  # 30 min earlier: still prices the snapshot
            near_px = float(r["index_price"])
    ticks = [r for r in ticks if not (r["symbol"] == "BTC-PERPETUAL" and r["timestamp"] == far)]
    write_csv_gz(ticker_file(DAYS[0], root), ticks)

    data_dir = tmp_path / "data"
    result = backfill_cycle(Settings(data_dir=data_dir), tardis_dir=root)
    failed = [(f.currencies, int(f.snapshot_ts.timestamp() * 1000)) for f in result.failed]
    assert failed == [(("BTC",), grid_ms(far))]
    assert "within 3,600 s" in result.failed[0].reason and "s old" in result.failed[0].reason
    got = view_chains(data_dir)
    assert ("BTC", grid_ms(far)) not in got and ("ETH", grid_ms(far)) in got and len(got) == 7
    sql = "select distinct index_price from option_snapshots where currency = 'BTC' and epoch_ms(snapshot_ts) = $ms"
    px = view_rows(data_dir, sql, {"ms": grid_ms(near)})
    assert px == [(near_px,)]


def test_a_day_file_with_only_a_header_lands_nothing_and_fails_nothing(tmp_path):
    root = copy_days(tmp_path / "tardis", [DAYS[0]])
    path = chain_file(DAYS[0], root)
    header = gzip.decompress(path.read_bytes()).decode().splitlines()[0]
    path.write_bytes(gzip.compress((header + "\n").encode()))
    result = backfill_cycle(Settings(data_dir=tmp_path / "data"), tardis_dir=root)
    assert (result.snapshots, result.rows, result.failed, result.exit_code) == (0, 0, [], 0)
    assert view_chains(tmp_path / "data") == {}
    assert f"  empty {DAYS[0]}: {path.name} has no option rows for these currencies" in result.lines()


def test_snapshot_index_prices_prefers_the_exact_timestamp_then_the_nearest_within_tolerance():
    chain = pl.DataFrame(
        {"currency": ["BTC", "BTC", "BTC", "ETH"], "timestamp": [1_000, 100_000_000, 500_000_000, 1_000]}
    )
    index = pl.DataFrame(
        {"currency": ["BTC", "BTC", "BTC"], "index_ts_us": [0, 1_000, 159_000_000], "index_price": [1.0, 2.0, 3.0]}
    )
    out = snapshot_index_prices(chain, index).sort("currency", "timestamp")
    assert out["index_price"].to_list() == [2.0, 3.0, None, None]
    assert out["index_gap_us"].to_list() == [0, 59_000_000, 341_000_000, None]


# ---------------------------------------------------------------- bad input: one line, nothing written


def _corrupt_header(root):
    path = chain_file(DAYS[1], root)
    text = gzip.decompress(path.read_bytes()).decode().replace("open_interest", "oi", 1)
    path.write_bytes(gzip.compress(text.encode()))
    return path, "header lacks open_interest"


def _non_numeric(root):
    rows = read_csv_gz(chain_file(DAYS[1], root))
    rows[2]["mark_iv"] = "n/a"
    write_csv_gz(chain_file(DAYS[1], root), rows)
    return chain_file(DAYS[1], root), "invalid value 'n/a'"


def _not_finite(root):
    rows = read_csv_gz(chain_file(DAYS[1], root))
    rows[2]["mark_iv"] = "inf"
    write_csv_gz(chain_file(DAYS[1], root), rows)
    return chain_file(DAYS[1], root), "line 4: mark_iv inf is not a finite number"


def _truncated(root):
    path = chain_file(DAYS[1], root)
    path.write_bytes(path.read_bytes()[:20_000])
    return path, "cannot read gzip CSV"


def _no_ticker(root):
    ticker_file(DAYS[1], root).unlink()
    return chain_file(DAYS[1], root), "no derivative_ticker file"


@pytest.mark.parametrize("spoil", [_corrupt_header, _non_numeric, _not_finite, _truncated, _no_ticker])
def test_a_malformed_day_file_is_a_one_line_source_error_naming_it_and_writes_nothing(tmp_path, spoil):
    root = copy_days(tmp_path / "tardis", [DAYS[1]])
    path, needle = spoil(root)
    with pytest.raises(SourceError) as exc:
        backfill_cycle(Settings(data_dir=tmp_path / "data"), tardis_dir=root)
    text = one_line(exc)
    assert str(path) in text and needle in text
    assert lake_files(tmp_path / "data") == {}


def test_a_bad_header_anywhere_in_the_range_stops_the_run_before_any_day_lands(tmp_path):
    root = copy_days(tmp_path / "tardis", DAYS[:2])
    path, _ = _corrupt_header(root)
    with pytest.raises(SourceError, match="header lacks open_interest"):
        backfill_cycle(Settings(data_dir=tmp_path / "data"), tardis_dir=root)
    assert not (tmp_path / "data" / "lake").exists()


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"tardis_dir": Path("/nonexistent/tardis")}, "Tardis directory /nonexistent/tardis does not exist"),
        ({"tardis_dir": TARDIS, "since": date(2030, 1, 1)}, "_OPTIONS.csv.gz files in 2030-01-01 .. ..."),
        ({"tardis_dir": TARDIS, "since": date(2026, 7, 31), "until": date(2026, 7, 1)}, "--since 2026-07-31 is after"),
        ({}, "exactly one of --tardis DIR or --replay DIR"),
        ({"tardis_dir": TARDIS, "replay_dir": API_SNAPSHOTS}, "exactly one of"),
        ({"replay_dir": API_SNAPSHOTS, "since": date(2026, 1, 1)}, "--since/--until apply to --tardis only"),
        ({"replay_dir": Path("/nonexistent/replay")}, "does not exist"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, kwargs, needle):
    with pytest.raises((SourceError, ConfigError)) as exc:
        backfill_cycle(Settings(data_dir=tmp_path), **kwargs)
    assert needle in one_line(exc)
    assert not (tmp_path / "lake").exists()


def test_usdc_is_refused_for_tardis_backfills(tmp_path):
    with pytest.raises(ConfigError, match="BTC and ETH options only, not USDC"):
        backfill_cycle(Settings(data_dir=tmp_path, currencies=("USDC",)), tardis_dir=TARDIS, since=DAYS[0])


# ---------------------------------------------------------------- fan-out


def test_day_steps_run_concurrently_and_wait_for_the_writer_lock(tmp_path, landed):
    """The Prefect fan-out shape of --each-timestamp: plan, map backfill_day over a pool, refresh the views once."""
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    paths = plan_backfill(TARDIS, since=DAYS[0], until=DAYS[-1])
    assert paths == [chain_file(d) for d in DAYS]
    release = threading.Event()

    def hold_lock():
        with files.writer_lock(data_dir):
            release.wait(5)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    time.sleep(0.1)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(backfill_day, settings, p, lock_wait_s=30) for p in paths]
        time.sleep(0.5)
        assert not any(f.done() for f in futures)  # all waiting for the lock
        release.set()
        days = [f.result() for f in futures]
    holder.join()
    refresh_warehouse(settings)
    assert [d.snapshots for d in days] == [8, 8, 8]
    assert view_chains(data_dir) == csv_chains(DAYS, grid=False)  # --each-timestamp: at the recordings' stamps


def test_each_timestamp_is_the_old_reading_of_grouped_files(tmp_path):
    result = backfill_cycle(
        Settings(data_dir=tmp_path), tardis_dir=TARDIS, since=DAYS[2], until=DAYS[2], each_timestamp=True
    )
    assert result.snapshots == 8 and view_chains(tmp_path) == csv_chains([DAYS[2]], grid=False)
