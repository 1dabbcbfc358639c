"""Trade-tape ingestion end to end: ``trades_cycle`` against a real HTTP server speaking Deribit's wire format."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import threading
from datetime import UTC, datetime

import duckdb
import pytest

from pipelines.config import ConfigError, load_settings
from pipelines.jobs.ingest import QualityError
from pipelines.jobs.trades import trades_cycle
from pipelines.sources.deribit import DeribitError
from tests.data_paths import COMBO_TRADES, TRADES
from warehouse import WarehouseError
from warehouse.files import writer_lock

RECORDING = TRADES
COMBO = COMBO_TRADES
METHOD = "get_last_trades_by_currency_and_time"
SINCE = datetime(2020, 2, 21, tzinfo=UTC)  # before the recording (2020-02-21T14:31Z .. 02-22T10:02Z)
NOW = datetime(2020, 2, 23, tzinfo=UTC)  # after it
LAST_MS, LAST_ID = 1582365749452, "62602601"  # the recording's latest trade


@pytest.fixture
def recording() -> list[dict]:
    return [json.loads(line) for line in RECORDING.read_text().splitlines() if line.strip()]


def settings(fake, data_dir, currencies=("BTC",), **extra):
    env = {
        "GEXFLOW_BACKOFF_BASE_S": "0.01",
        "GEXFLOW_BACKOFF_CAP_S": "0.05",
        "GEXFLOW_READ_TIMEOUT_S": "1",
        "GEXFLOW_MAX_RETRIES": "3",
    }
    return load_settings({"data_dir": str(data_dir), "api_url": fake.url, "currencies": currencies, **extra}, env=env)


def cycle(fake, data_dir, *, now=NOW, since=SINCE, count=50, **kw):
    return trades_cycle(settings(fake, data_dir, **kw), now=now, trades_since=since, count=count)


def query(data_dir, sql, params=None):
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def lake_state(data_dir):
    """Hash of every published trades file and the watermark view (what a failed run must not change)."""
    files = {
        str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((data_dir / "lake" / "trades").rglob("*.parquet"))
    }
    return files, query(data_dir, "select * from trade_watermarks order by currency")


def row(summary, currency="BTC") -> dict:
    return summary.filter(currency=currency).to_dicts()[0]


def bounded(fn, seconds=30.0):
    """Run ``fn`` in a thread; fail the test (instead of hanging) if it has not returned in ``seconds``."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not terminate within {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def new_trade(trade_id: str, ts_ms: int, **fields) -> dict:
    base = {
        "trade_seq": 1,
        "trade_id": trade_id,
        "timestamp": ts_ms,
        "tick_direction": 0,
        "price": 0.01,
        "iv": 55.0,
        "instrument_name": "BTC-27MAR20-10000-C",
        "index_price": 9700.0,
        "direction": "buy",
        "amount": 1.0,
    }
    return {**base, **fields}


# ---------------------------------------------------------------- the recorded tape


def test_the_recorded_tape_pages_with_overlaps_and_stores_each_trade_id_once(fake_deribit, tmp_path, recording):
    fake_deribit.trades["BTC"] = recording
    result = cycle(fake_deribit, tmp_path)
    s = row(result.summary())
    assert s["pages"] > 1 and fake_deribit.calls(METHOD) == s["pages"]
    assert s["new"] == 463 and s["fetched"] == s["new"] + s["duplicates"] and s["duplicates"] >= 20
    assert s["warnings"] == "" and result.warnings == []
    assert query(tmp_path, "select count(*), count(distinct trade_id) from trades") == [(463, 463)]
    assert {r[0] for r in query(tmp_path, "select trade_id from trades")} == {t["trade_id"] for t in recording}
    starts = [int(p["start_timestamp"]) for m, p in fake_deribit.requests if m == METHOD]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(
        p["count"] == "50" and p["sorting"] == "asc" and p["kind"] == "option"
        for m, p in fake_deribit.requests
        if m == METHOD
    )


def test_stored_trades_keep_the_recorded_values_and_optional_fields_are_null(fake_deribit, tmp_path, recording):
    fake_deribit.trades["BTC"] = recording
    cycle(fake_deribit, tmp_path)
    got = query(
        tmp_path,
        "select currency, ts, instrument_name, direction, amount, price, iv, index_price, trade_seq, tick_direction, "
        "mark_price, contracts, liquidation, block_trade_id, combo_id, is_block, is_combo, is_liquidation "
        "from trades where trade_id = '62529287'",
    )[0]
    assert got[0] == "BTC" and got[1].isoformat().startswith("2020-02-21T14:56:18.501")
    assert got[2:10] == ("BTC-28FEB20-9750-C", "sell", 0.2, 0.0255, 49.69, 9688.27, 60, 2)
    assert got[10:] == (None, None, None, None, None, False, False, False)
    types = dict(
        query(tmp_path, "select column_name, data_type from information_schema.columns where table_name = 'trades'")
    )
    assert types["ts"] == "TIMESTAMP WITH TIME ZONE" and types["trade_id"] == "VARCHAR"
    partitions = sorted(p.parent.name for p in (tmp_path / "lake" / "trades").rglob("trades.parquet"))
    assert partitions == ["date=2020-02-21", "date=2020-02-22"]
    assert query(tmp_path, "select count(*) from trades where ts::date = '2020-02-21'") == [(233,)]


def test_a_second_run_adds_nothing_and_leaves_the_lake_files_as_they_were(fake_deribit, tmp_path, recording):
    fake_deribit.trades["BTC"] = recording
    cycle(fake_deribit, tmp_path)
    before = lake_state(tmp_path)
    again = row(cycle(fake_deribit, tmp_path).summary())
    assert again["new"] == 0 and again["fetched"] >= 1  # restarts at the watermark: its own trade comes back
    assert lake_state(tmp_path)[0] == before[0]
    assert query(tmp_path, "select count(*) from trades") == [(463,)]
    assert query(tmp_path, "select count(*) from trade_runs") == [(2,)]


def test_the_watermark_is_the_latest_trade_and_the_next_run_starts_there(fake_deribit, tmp_path, recording):
    fake_deribit.trades["BTC"] = recording
    cycle(fake_deribit, tmp_path)
    ((currency, watermark, last_id, until),) = query(
        tmp_path, "select currency, epoch_ms(watermark_ts), last_trade_id, fetched_until_ts from trade_watermarks"
    )
    assert (currency, watermark, last_id) == ("BTC", LAST_MS, LAST_ID) and until == NOW
    fake_deribit.requests.clear()
    result = cycle(fake_deribit, tmp_path, since=None)
    assert int(fake_deribit.requests[0][1]["start_timestamp"]) == LAST_MS
    assert result.warnings == []


def test_trades_appended_to_the_server_are_exactly_what_the_next_run_adds(fake_deribit, tmp_path, recording):
    fake_deribit.trades["BTC"] = list(recording)
    cycle(fake_deribit, tmp_path)
    later = [new_trade("70000001", LAST_MS)]  # same millisecond as the watermark: the inclusive start finds it
    later += [new_trade(str(70000002 + i), LAST_MS + 60_000 * (i + 1), direction="sell") for i in range(60)]
    later += [new_trade("70000100", 1582416000000 + 5)]  # 2020-02-23, a new date partition
    fake_deribit.trades["BTC"] += later
    s = row(cycle(fake_deribit, tmp_path, now=datetime(2020, 2, 24, tzinfo=UTC)).summary())
    assert s["new"] == len(later) == 62
    ids = {r[0] for r in query(tmp_path, "select trade_id from trades")}
    assert ids == {t["trade_id"] for t in recording + later}
    assert query(tmp_path, "select count(*) from trades") == [(463 + 62,)]
    assert query(tmp_path, "select epoch_ms(watermark_ts) from trade_watermarks") == [(1582416000005,)]


def test_every_page_lands_raw_and_pages_never_overwrite_each_other(fake_deribit, tmp_path, recording):
    fake_deribit.trades["BTC"] = recording
    first = row(cycle(fake_deribit, tmp_path).summary())
    second = row(cycle(fake_deribit, tmp_path).summary())  # same `now`: the stamps are receipt times
    landed = sorted((tmp_path / "raw" / "deribit" / METHOD / "currency=BTC").rglob("*.json.gz"))
    assert len(landed) == first["pages"] + second["pages"]
    assert all(p.name.startswith(f"{METHOD}.BTC.") for p in landed)
    served = set()
    for path in landed:
        body = json.loads(gzip.decompress(path.read_bytes()))
        served |= {t["trade_id"] for t in body["result"]["trades"]}
    assert served == {t["trade_id"] for t in recording}


def test_block_combo_and_liquidation_fields_are_stored_with_their_flags(fake_deribit, tmp_path):
    combo = json.loads(COMBO.read_text())["result"]["trades"][0]  # a recorded combo trade with its two legs
    block = [
        new_trade(
            f"9100{i}",
            1582300000000,
            block_trade_id="BLOCK-154",
            block_trade_leg_count=2,
            block_rfq_id=4321,
            mark_price=0.011,
            contracts=1.0,
            direction=d,
        )
        for i, d in enumerate(("buy", "sell"))
    ]
    liquidation = new_trade("91100", 1582300001000, liquidation="T")
    leg = copy.deepcopy(combo["legs"][0])  # kind=option pages list legs on their own too
    fake_deribit.trades["BTC"] = [*block, liquidation, leg, combo]
    s = row(
        cycle(
            fake_deribit, tmp_path, since=datetime(2020, 1, 1, tzinfo=UTC), now=datetime(2026, 6, 1, tzinfo=UTC)
        ).summary()
    )
    assert s["new"] == 5  # 2 block legs, 1 liquidation, 2 combo legs (the combo itself is not an option)
    got = {
        r[0]: r[1:]
        for r in query(
            tmp_path,
            "select trade_id, is_block, is_combo, is_liquidation, block_trade_id, block_trade_leg_count, block_rfq_id, "
            "combo_id, combo_trade_id, liquidation, contracts, mark_price from trades",
        )
    }
    assert got["91000"] == (True, False, False, "BLOCK-154", 2, "4321", None, None, None, 1.0, 0.011)
    assert got["91100"] == (False, False, True, None, None, None, None, None, "T", None, None)
    assert got["244365195"] == (
        False,
        True,
        False,
        None,
        None,
        None,
        "BTC-CS-19MAY26-70000_75000",
        "244365193",
        None,
        0.1,
        0.01733488,
    )
    assert set(got) == {"91000", "91001", "91100", "244365194", "244365195"}


# ---------------------------------------------------------------- pathological pagination


def test_an_empty_page_that_claims_more_stops_paging(fake_deribit, tmp_path):
    fake_deribit.trade_pager = lambda params: {"trades": [], "has_more": True}
    result = bounded(lambda: cycle(fake_deribit, tmp_path))
    s = row(result.summary())
    assert s["pages"] == 1 and s["new"] == 0 and "empty page claims has_more" in s["warnings"]
    assert query(tmp_path, "select count(*) from trades") == [(0,)]


def test_a_page_identical_to_the_previous_one_stops_paging(fake_deribit, tmp_path):
    page = [new_trade(str(800 + i), 1582300000000 + 1000 * i) for i in range(3)]
    fake_deribit.trade_pager = lambda params: {"trades": page, "has_more": True}  # ignores start_timestamp
    s = row(bounded(lambda: cycle(fake_deribit, tmp_path)).summary())
    assert s["pages"] == 2 and s["new"] == 3 and s["duplicates"] == 3
    assert "identical to the previous one" in s["warnings"]


def test_a_page_whose_last_timestamp_does_not_advance_stops_paging(fake_deribit, tmp_path):
    old = [new_trade(str(700 + i), 1582200000000 + i) for i in range(3)]  # all before the requested start
    fake_deribit.trade_pager = lambda params: {"trades": old, "has_more": True}
    s = row(bounded(lambda: cycle(fake_deribit, tmp_path)).summary())
    assert s["pages"] == 1 and s["new"] == 3 and "does not advance" in s["warnings"]
    assert s["watermark_ts"] == SINCE  # the watermark never moves back


def test_more_trades_in_one_millisecond_than_a_page_holds_stops_and_the_next_run_moves_past(fake_deribit, tmp_path):
    crowded_ms = 1582300000000
    before = [new_trade(str(1000 + i), crowded_ms - 1000 + i) for i in range(5)]
    crowded = [new_trade(str(2000 + i), crowded_ms) for i in range(120)]
    after = [new_trade(str(3000 + i), crowded_ms + 5000 + i) for i in range(5)]
    fake_deribit.trades["BTC"] = before + crowded + after
    s = row(bounded(lambda: cycle(fake_deribit, tmp_path)).summary())
    assert "more than 50 trades at 2020-02-21T15:46:40.000Z" in s["warnings"]
    assert s["new"] == 5 + 50  # the page at the crowded millisecond holds 50 of its 120 trades
    assert query(tmp_path, "select epoch_ms(watermark_ts) from trade_watermarks") == [(crowded_ms + 1,)]
    s = row(bounded(lambda: cycle(fake_deribit, tmp_path, since=None)).summary())
    assert s["new"] == 5 and s["warnings"] == ""
    assert query(tmp_path, "select count(*) from trades") == [(5 + 50 + 5,)]  # 70 of the crowded ms are out of reach


# ---------------------------------------------------------------- faults


def test_a_429_mid_pagination_is_retried_and_nothing_is_lost_or_duplicated(fake_deribit, tmp_path, recording):
    fake_deribit.trades["BTC"] = recording
    fake_deribit.fail(METHOD, None, None, "429", None, "rpc10028", "503")
    s = row(cycle(fake_deribit, tmp_path).summary())
    assert fake_deribit.calls(METHOD) == s["pages"] + 3
    assert s["new"] == 463
    assert query(tmp_path, "select count(*), count(distinct trade_id) from trades") == [(463, 463)]


@pytest.mark.parametrize("faults", [[None, "invalid_params"], [None, None, "503", "503", "503", "503"]])
def test_a_failed_run_leaves_lake_and_watermark_unchanged_and_keeps_arrived_pages(
    fake_deribit, tmp_path, recording, faults
):
    fake_deribit.trades["BTC"] = list(recording)
    cycle(fake_deribit, tmp_path)
    before = lake_state(tmp_path)
    runs_before = query(tmp_path, "select count(*) from trade_runs")
    raw_before = set((tmp_path / "raw").rglob("*.json.gz"))
    fake_deribit.trades["BTC"] += [new_trade(str(80000000 + i), LAST_MS + 1000 * i) for i in range(200)]
    fake_deribit.fail(METHOD, *faults)
    with pytest.raises(DeribitError) as err:
        cycle(fake_deribit, tmp_path)
    assert METHOD in str(err.value) and len(str(err.value).splitlines()) == 1
    assert lake_state(tmp_path) == before
    assert query(tmp_path, "select count(*) from trade_runs") == runs_before
    assert not list((tmp_path / "lake").rglob("*.tmp"))
    assert len(set((tmp_path / "raw").rglob("*.json.gz")) - raw_before) == faults.count(None)


def kept_malformed(data_dir) -> list:
    """(attempt, body) of every page kept under raw/_malformed/, in the order they arrived."""
    folder = data_dir / "raw" / "_malformed" / "deribit" / METHOD / "currency=BTC"
    paths = sorted(folder.rglob(f"{METHOD}.BTC.*.malformed.gz")) if folder.exists() else []
    return [(p.name.split(".")[3], gzip.decompress(p.read_bytes())) for p in paths]


def truncated_pages(fake) -> list[bytes]:
    """What the fake sent for each truncated request: the first half of the page it answers those params with."""
    return [
        (page := fake.trades_page(params))[: len(page) // 2]
        for method, params, fault in fake.faults_served
        if method == METHOD and fault == "truncated"
    ]


def test_a_truncated_page_is_kept_under_raw_malformed_and_the_retry_lands_the_good_one(
    fake_deribit, tmp_path, recording
):
    fake_deribit.trades["BTC"] = recording
    fake_deribit.fail(METHOD, None, "truncated", "truncated")
    s = row(cycle(fake_deribit, tmp_path).summary())
    assert s["new"] == 463 and fake_deribit.calls(METHOD) == s["pages"] + 2
    kept = kept_malformed(tmp_path)
    assert [attempt for attempt, _ in kept] == ["attempt1", "attempt2"]
    assert [body for _, body in kept] == truncated_pages(fake_deribit)
    assert len(list((tmp_path / "raw" / "deribit").rglob("*.json.gz"))) == s["pages"]  # good pages only


def test_a_page_still_truncated_after_the_last_retry_fails_the_run_and_keeps_every_attempt(
    fake_deribit, tmp_path, recording
):
    fake_deribit.trades["BTC"] = recording
    fake_deribit.fail(METHOD, None, *["truncated"] * 4)  # max_retries 3: four attempts at page 2
    with pytest.raises(DeribitError, match="malformed JSON body.*gave up after 4 attempts"):
        cycle(fake_deribit, tmp_path)
    kept = kept_malformed(tmp_path)
    assert [attempt for attempt, _ in kept] == ["attempt1", "attempt2", "attempt3", "attempt4"]
    assert [body for _, body in kept] == truncated_pages(fake_deribit)
    assert len(list((tmp_path / "raw" / "deribit").rglob("*.json.gz"))) == 1  # page 1


def test_a_batch_failing_validation_is_quarantined_and_nothing_is_published(fake_deribit, tmp_path):
    fake_deribit.trades["BTC"] = [new_trade("1", 1582300000000), new_trade("2", 1582300000001, direction="hold")]
    with pytest.raises(QualityError) as err:
        cycle(fake_deribit, tmp_path)
    assert "direction" in str(err.value)
    assert list((tmp_path / "quarantine" / "trades").rglob("report.json"))
    assert not list((tmp_path / "lake" / "trades").rglob("trades.parquet"))
    assert not (tmp_path / "lake" / "_state" / "trade_watermarks" / "currency=BTC").exists()


# ---------------------------------------------------------------- the cycle around it


def test_currencies_are_paged_separately_and_published_together(fake_deribit, tmp_path, recording):
    fake_deribit.trades["BTC"] = recording
    fake_deribit.trades["ETH"] = [new_trade("5", 1582300000000, instrument_name="ETH-28FEB20-250-C")]
    summary = cycle(fake_deribit, tmp_path, currencies=("BTC", "ETH")).summary()
    assert dict(summary.select("currency", "new").iter_rows()) == {"BTC": 463, "ETH": 1}
    assert query(tmp_path, "select currency, count(*) from trades group by 1 order by 1") == [("BTC", 463), ("ETH", 1)]
    assert [r[0] for r in query(tmp_path, "select currency from trade_watermarks order by 1")] == ["BTC", "ETH"]


def test_the_first_run_defaults_to_a_24_hour_lookback(fake_deribit, tmp_path, recording):
    fake_deribit.trades["BTC"] = recording
    now = datetime(2020, 2, 22, 12, tzinfo=UTC)
    cycle(fake_deribit, tmp_path, now=now, since=None)
    first = fake_deribit.requests[0][1]
    assert int(first["start_timestamp"]) == int(now.timestamp() * 1000) - 86_400_000
    assert int(first["end_timestamp"]) == int(now.timestamp() * 1000)


def test_a_trades_since_after_now_is_a_one_line_config_error(fake_deribit, tmp_path):
    with pytest.raises(ConfigError, match="is after the run's end time"):
        cycle(fake_deribit, tmp_path, since=datetime(2020, 3, 1, tzinfo=UTC))


def test_a_second_writer_is_refused(fake_deribit, tmp_path):
    with writer_lock(tmp_path), pytest.raises(WarehouseError, match="another gexflow writer"):
        cycle(fake_deribit, tmp_path)


def test_a_source_without_a_tape_fetches_nothing_but_the_views_bind(tmp_path):
    result = trades_cycle(load_settings({"data_dir": str(tmp_path), "source": "sample"}, env={}), now=NOW)
    assert all("no trade tape" in w for w in result.warnings) and len(result.warnings) == 2
    assert query(tmp_path, "select count(*) from trades") == [(0,)]
    assert query(tmp_path, "select count(*) from trade_watermarks") == [(0,)]
