"""Snapshot ingestion end to end: the CLI against a real HTTP server speaking Deribit's wire format."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import subprocess
import sys

import duckdb
import pytest

from pipelines.cli.app import main
from tests.data_paths import TRADES
from tests.fake_deribit import SNAPSHOTS, STAMPS, install_usdc_chain

BOOK = "get_book_summary_by_currency.{}.{}.json"
RECORDED = {  # stamp -> {currency: (options, open interest)} straight from the recordings
    stamp: {
        c: (
            len(rows := json.loads((SNAPSHOTS / BOOK.format(c, stamp)).read_text())["result"]),
            sum(r["open_interest"] for r in rows),
        )
        for c in ("BTC", "ETH")
    }
    for stamp in STAMPS
}


def lake_state(data_dir):
    """Every published lake file with its content hash (temp files excluded), plus the view counts."""
    files = (
        {
            str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((data_dir / "lake").rglob("*.parquet"))
            if "_state" not in p.parts
        }
        if (data_dir / "lake").exists()
        else {}
    )
    counts = None
    if (data_dir / "warehouse.duckdb").exists():
        con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
        counts = con.execute(
            "select currency, count(*), sum(open_interest) from option_snapshots group by 1 order by 1"
        ).fetchall()
        con.close()
    return files, counts


def run(fake, data_dir, *extra, command="run"):
    return main([command, "--api-url", fake.url, "--data-dir", str(data_dir), *extra])


def view_counts(data_dir):
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return {
            c: (n, oi)
            for c, n, oi in con.execute(
                "select currency, count(*), sum(open_interest) from option_snapshots group by 1"
            ).fetchall()
        }
    finally:
        con.close()


@pytest.mark.parametrize("stamp", STAMPS)
def test_a_live_run_stores_exactly_the_recorded_chain(fake_deribit, fast_env, tmp_path, stamp, capsys):
    fake_deribit.stamp = stamp
    assert run(fake_deribit, tmp_path) == 0
    counts = view_counts(tmp_path)
    for currency, (options, oi) in RECORDED[stamp].items():
        assert counts[currency][0] == options
        assert counts[currency][1] == pytest.approx(oi, rel=1e-12)
    out = capsys.readouterr().out
    assert "BTC" in out and "ETH" in out and str(RECORDED[stamp]["BTC"][0]) in out


def test_the_recorded_counts_are_the_documented_ones():
    assert RECORDED["20260105T153329Z"]["BTC"][0] == 628 and RECORDED["20260105T153329Z"]["ETH"][0] == 660
    assert RECORDED["20260731T113322Z"]["BTC"][0] == 854 and RECORDED["20260731T113322Z"]["ETH"][0] == 710


def test_rerunning_a_snapshot_leaves_one_copy_of_each_row(fake_deribit, fast_env, tmp_path):
    assert run(fake_deribit, tmp_path) == 0
    first = lake_state(tmp_path)
    assert run(fake_deribit, tmp_path) == 0
    assert lake_state(tmp_path) == first
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    dupes = con.execute(
        "select count(*) from (select currency, snapshot_ts, instrument_name from option_snapshots "
        "group by all having count(*) > 1)"
    ).fetchone()[0]
    instruments = con.execute("select count(*) from instruments").fetchone()[0]
    runs = con.execute("select count(distinct run_id) from ingest_runs").fetchone()[0]
    con.close()
    assert dupes == 0
    assert instruments == 854 + 710
    assert runs == 2


def test_the_views_store_instrument_attributes_and_nullable_prices(fake_deribit, fast_env, tmp_path):
    assert run(fake_deribit, tmp_path) == 0
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    row = con.execute(
        "select strike, option_type, contract_size, expiration_ts, snapshot_ts, underlying_price, mark_iv "
        "from option_snapshots where instrument_name = 'BTC-14AUG26-50000-C'"
    ).fetchone()
    null_bids = con.execute(
        "select count(*) from option_snapshots where bid_price is null and currency = 'BTC'"
    ).fetchone()[0]
    types = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns where table_name = 'option_snapshots'"
        ).fetchall()
    )
    con.close()
    assert row[0] == 50000.0 and row[1] == "call" and row[2] == 1.0
    assert row[3].isoformat().startswith("2026-08-14T08:00:00")
    assert row[4].isoformat().startswith("2026-07-31T11:33:22.630")
    assert row[5] == 63921.11 and row[6] == 57.62
    recorded_null_bids = sum(
        1
        for r in json.loads((SNAPSHOTS / "get_book_summary_by_currency.BTC.20260731T113322Z.json").read_text())[
            "result"
        ]
        if r["bid_price"] is None
    )
    assert null_bids == recorded_null_bids == 60
    assert types["snapshot_ts"] == "TIMESTAMP WITH TIME ZONE"


@pytest.mark.parametrize(
    "method, faults",
    [
        ("get_book_summary_by_currency", ["429"]),
        ("get_book_summary_by_currency", ["rpc10028", "429"]),
        ("get_instruments", ["503"]),
        ("get_index_price", ["500", "502"]),
        ("get_book_summary_by_currency", ["html"]),
        ("get_book_summary_by_currency", ["truncated"]),
        ("get_book_summary_by_currency", ["timeout"]),
        ("get_index_price", ["drop"]),
    ],
)
def test_transient_faults_are_retried_until_the_snapshot_lands(fake_deribit, fast_env, tmp_path, method, faults):
    fake_deribit.fail(method, *faults)
    assert run(fake_deribit, tmp_path, "--currency", "BTC") == 0
    assert fake_deribit.calls(method) == len(faults) + 1
    assert view_counts(tmp_path)["BTC"][0] == 854


def test_invalid_params_is_not_retried_and_says_which_method_and_why(fake_deribit, fast_env, tmp_path, capsys):
    fake_deribit.fail("get_book_summary_by_currency", "invalid_params")
    assert run(fake_deribit, tmp_path, "--currency", "BTC") == 2
    err = capsys.readouterr().err.strip()
    assert fake_deribit.calls("get_book_summary_by_currency") == 1
    assert len(err.splitlines()) == 1
    assert "get_book_summary_by_currency" in err and "-32602" in err and "wrong format" in err


@pytest.mark.parametrize(
    "method, faults",
    [
        ("get_book_summary_by_currency:BTC", ["invalid_params"]),
        ("get_book_summary_by_currency:BTC", ["truncated"] * 4),
        ("get_index_price:btc_usd", ["timeout"] * 4),
        ("get_index_price:btc_usd", ["503"] * 4),
    ],
)
def test_a_failed_run_leaves_the_lake_and_views_as_they_were_and_keeps_arrived_raw_bodies(
    fake_deribit, fast_env, tmp_path, method, faults, capsys
):
    fake_deribit.stamp = STAMPS[0]
    assert run(fake_deribit, tmp_path) == 0
    before = lake_state(tmp_path)
    raw = tmp_path / "raw" / "deribit"
    raw_before = set(raw.rglob("*.json.gz"))
    fake_deribit.stamp = STAMPS[1]
    fake_deribit.fail(method, *faults)
    assert run(fake_deribit, tmp_path, "--currency", "ETH", "--currency", "BTC") == 2
    assert lake_state(tmp_path) == before
    assert not list((tmp_path / "lake").rglob("*.tmp"))
    # ETH was fetched completely before BTC failed: its bodies are kept, as is BTC's instruments list
    arrived = {p.name.split(".")[0] + "." + p.name.split(".")[1]: p for p in set(raw.rglob("*.json.gz")) - raw_before}
    assert {
        "get_instruments.ETH",
        "get_book_summary_by_currency.ETH",
        "get_index_price.eth_usd",
        "get_instruments.BTC",
    } <= set(arrived)
    recorded = (SNAPSHOTS / "get_book_summary_by_currency.ETH.20260731T113322Z.json").read_bytes()
    assert gzip.decompress(arrived["get_book_summary_by_currency.ETH"].read_bytes()) == recorded
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_sql_prints_the_counts_and_any_duckdb_client_sees_the_same_views(fake_deribit, fast_env, tmp_path, capsys):
    assert run(fake_deribit, tmp_path) == 0
    capsys.readouterr()
    query = "select currency, count(*) from option_snapshots group by 1 order by 1"
    assert main(["sql", query, "--data-dir", str(tmp_path), "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["currency,count_star()", "BTC,854", "ETH,710"]
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute(query).fetchall() == [("BTC", 854), ("ETH", 710)]
    con.close()


def test_sql_binds_parameters_and_rejects_writes(fake_deribit, fast_env, tmp_path, capsys):
    assert run(fake_deribit, tmp_path) == 0
    capsys.readouterr()
    q = "select count(*) as n from option_snapshots where currency = $currency"
    assert main(["sql", q, "--param", "currency=ETH", "--data-dir", str(tmp_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 710}]
    assert main(["sql", "create table x as select 1", "--data-dir", str(tmp_path)]) == 2
    assert "read-only" in capsys.readouterr().err.lower()
    # a read-only DuckDB connection still runs COPY ... TO / EXPORT / ATTACH, which write files (into the lake, too)
    target = tmp_path / "lake" / "key_levels" / "x.parquet"
    for statement in (
        f"copy (select 1 as one) to '{target}' (format parquet)",
        "select 1; copy (select 1) to 'out.csv'",
        f"export database '{tmp_path / 'dump'}'",
        f"attach '{tmp_path / 'other.duckdb'}' as other",
    ):
        assert main(["sql", statement, "--data-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "read-only" in err and len(err.strip().splitlines()) == 1
    assert not target.exists() and not (tmp_path / "dump").exists() and not (tmp_path / "other.duckdb").exists()
    assert main(["sql", "explain select 1", "--data-dir", str(tmp_path)]) == 0


def test_a_copied_or_moved_data_dir_reads_its_own_lake(fake_deribit, fast_env, tmp_path, capsys):
    import shutil

    first, copy, moved = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert run(fake_deribit, first) == 0
    shutil.copytree(first, copy)
    for f in (first / "lake" / "option_snapshots" / "currency=ETH").rglob("*.parquet"):
        f.unlink()  # the original's lake moves on; the copy must not see it
    query = "select currency, count(*) from option_snapshots group by 1 order by 1"
    capsys.readouterr()
    assert main(["sql", query, "--data-dir", str(copy), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["BTC,854", "ETH,710"]
    shutil.move(copy, moved)
    assert main(["sql", query, "--data-dir", str(moved), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["BTC,854", "ETH,710"]
    con = duckdb.connect(str(moved / "warehouse.duckdb"), read_only=True)  # any client: re-pointed in the file
    assert con.execute(query).fetchall() == [("BTC", 854), ("ETH", 710)]
    con.close()


def test_a_second_writer_is_told_another_one_holds_the_lock(fake_deribit, fast_env, tmp_path, capsys):
    from warehouse.files import writer_lock

    with writer_lock(tmp_path):
        assert run(fake_deribit, tmp_path) == 2
    err = capsys.readouterr().err
    assert "another gexflow writer" in err and len(err.strip().splitlines()) == 1
    assert f"(pid {os.getpid()} on {socket.gethostname()})" in err  # which process, on which host (shared dirs)
    assert run(fake_deribit, tmp_path) == 0


def test_usdc_options_are_split_by_base_coin_with_their_own_contract_size(fake_deribit, fast_env, tmp_path):
    install_usdc_chain(fake_deribit)
    assert run(fake_deribit, tmp_path, "--currency", "USDC") == 0
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    rows = con.execute(
        "select currency, count(*), max(contract_size), max(strike), min(index_price), bool_and(is_linear) "
        "from option_snapshots group by 1 order by 1"
    ).fetchall()
    con.close()
    assert rows == [("SOL", 4, 1.0, 162.5, 158.0, True), ("XRP", 1, 1000.0, 2.5, 2.55, True)]


@pytest.mark.parametrize(
    "args, needle, starts",
    [
        (["--currency", "DOGE"], "unknown currency 'DOGE'", False),
        (["--api-url", "http://127.0.0.1:9/api/v2"], "cannot connect", True),
        (["--api-url", "not a url"], "--api-url must be", False),
        (["--source", "replay:/nonexistent/dir"], "does not exist", False),
        (["--source", "bogus"], "--source must be", False),
    ],
)
def test_bad_input_gets_one_line_and_a_non_zero_exit(fast_env, tmp_path, args, needle, starts, capsys):
    monkey_args = ["run", "--data-dir", str(tmp_path / "d"), *args]
    assert main(monkey_args) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if not starts:  # rejected before the run starts: the data dir is not even created
        assert not (tmp_path / "d").exists()


def test_compute_on_a_missing_data_dir_is_one_line_and_does_not_create_it(tmp_path, capsys):
    assert main(["compute", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "no stored snapshots" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_an_unwritable_data_dir_is_one_line(fake_deribit, fast_env, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert run(fake_deribit, blocker / "data") == 2
    err = capsys.readouterr().err
    assert "cannot write to data dir" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("layout", ["empty", "bad_json", "no_index", "bad_stamp", "a_file", "empty_book"])
def test_a_malformed_replay_directory_is_one_line_and_writes_nothing(fast_env, tmp_path, layout, capsys):
    replay = tmp_path / "replay"
    replay.mkdir()
    stamp = STAMPS[1]
    if layout == "bad_stamp":  # month 13, hour 99
        (replay / "get_instruments.BTC.20261399T999999Z.json").write_text('{"result": []}')
    if layout != "empty":
        for method in ("get_instruments", "get_book_summary_by_currency", "get_index_price"):
            if layout == "no_index" and method == "get_index_price":
                continue
            (replay / f"{method}.BTC.{stamp}.json").write_bytes((SNAPSHOTS / f"{method}.BTC.{stamp}.json").read_bytes())
    if layout == "bad_json":
        (replay / f"get_book_summary_by_currency.BTC.{stamp}.json").write_text('{"jsonrpc": "2.0", "result": [')
    if layout == "empty_book":  # the exchange listed no options: fail, never report an empty run as done
        (replay / f"get_book_summary_by_currency.BTC.{stamp}.json").write_text('{"jsonrpc": "2.0", "result": []}')
    if layout == "a_file":
        replay = tmp_path / "book.csv"
        replay.write_text("instrument_name,contracts\n")
    data = tmp_path / "data"
    assert main(["run", "--source", f"replay:{replay}", "--currency", "BTC", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "internal error" not in err
    expected = {"bad_stamp": "impossible time", "a_file": "is a file", "empty_book": "no options for BTC"}
    assert expected.get(layout, "") in err
    assert not list(data.rglob("lake/option_snapshots/currency=*/**/*.parquet"))


def replay_dir(tmp_path, *, without=(), truncate=()):
    """A replay directory holding every recorded file except ``without``; ``truncate``: files cut in half."""
    replay = tmp_path / "replay"
    replay.mkdir()
    for path in SNAPSHOTS.glob("get_*.json"):
        if path.name not in without:
            body = path.read_bytes()
            (replay / path.name).write_bytes(body[: len(body) // 2] if path.name in truncate else body)
    return replay


def test_a_truncated_replay_file_is_one_line_naming_it(fast_env, tmp_path, capsys):
    book = f"get_book_summary_by_currency.BTC.{STAMPS[1]}.json"
    replay = replay_dir(tmp_path, truncate=[book])
    args = ["ingest", "--source", f"replay:{replay}", "--engine", "direct", "--data-dir", str(tmp_path / "data")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"replay file {replay / book} is truncated or not valid JSON" in err
    assert lake_state(tmp_path / "data") == ({}, None)


@pytest.mark.parametrize(
    "missing, named",
    [
        (
            f"get_index_price.BTC.{STAMPS[1]}.json",
            f"get_index_price.btc_usd.{STAMPS[1]}.json (or get_index_price.BTC.{STAMPS[1]}.json)",
        ),
        (f"get_instruments.ETH.{STAMPS[0]}.json", f"get_instruments.ETH.{STAMPS[0]}.json"),
        (f"get_book_summary_by_currency.ETH.{STAMPS[1]}.json", f"get_book_summary_by_currency.ETH.{STAMPS[1]}.json"),
    ],
)
def test_a_replay_missing_a_file_any_snapshot_needs_is_named_before_anything_is_written(
    fast_env, tmp_path, missing, named, capsys
):
    replay = replay_dir(tmp_path, without=[missing])
    data = tmp_path / "data"
    assert main(["ingest", "--source", f"replay:{replay}", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"gexflow: error: replay directory {replay} lacks {named}"
    assert not data.exists()  # checked before the data dir, the lock or any raw body


def test_a_replay_index_price_may_be_keyed_by_the_index_name(fast_env, tmp_path):
    replay = replay_dir(tmp_path, without=[f"get_index_price.BTC.{s}.json" for s in STAMPS])
    for stamp in STAMPS:
        body = (SNAPSHOTS / f"get_index_price.BTC.{stamp}.json").read_bytes()
        (replay / f"get_index_price.btc_usd.{stamp}.json").write_bytes(body)
    assert main(["ingest", "--source", f"replay:{replay}", "--data-dir", str(tmp_path / "data")]) == 0
    assert {c: n for c, (n, _) in view_counts(tmp_path / "data").items()} == {"BTC": 628 + 854, "ETH": 660 + 710}


def malformed_files(data_dir):
    return sorted((data_dir / "raw" / "_malformed").rglob("*"), key=str) if (data_dir / "raw").exists() else []


def test_truncated_bodies_are_kept_under_raw_malformed_and_replays_ignore_them(fake_deribit, fast_env, tmp_path):
    live = tmp_path / "live"
    fake_deribit.fail("get_book_summary_by_currency:BTC", "truncated", "truncated")
    assert run(fake_deribit, live) == 0
    kept = [p for p in malformed_files(live) if p.is_file()]
    folder = live / "raw" / "_malformed" / "deribit" / "get_book_summary_by_currency" / "currency=BTC"
    assert [p.parent.parent for p in kept] == [folder, folder]
    assert [p.name.rsplit(".", 3)[1:] for p in kept] == [
        ["attempt1", "malformed", "gz"],
        ["attempt2", "malformed", "gz"],
    ]
    recorded = (SNAPSHOTS / f"get_book_summary_by_currency.BTC.{STAMPS[1]}.json").read_bytes()
    assert [gzip.decompress(p.read_bytes()) for p in kept] == [recorded[: len(recorded) // 2]] * 2
    # the good body landed as usual; a replay of raw/deribit, or of all of raw/, reads only good bodies
    for source in (live / "raw" / "deribit", live / "raw"):
        replayed = tmp_path / f"replayed-{source.name}"
        assert main(["ingest", "--source", f"replay:{source}", "--data-dir", str(replayed)]) == 0
        assert view_counts(replayed) == view_counts(live)
    replayed = tmp_path / "backfilled"
    assert main(["backfill", "--replay", str(live / "raw"), "--no-compute", "--data-dir", str(replayed)]) == 0
    assert view_counts(replayed) == view_counts(live)


def test_a_body_still_truncated_after_the_last_retry_is_kept_every_attempt(fake_deribit, fast_env, tmp_path, capsys):
    fake_deribit.fail("get_book_summary_by_currency:BTC", *["truncated"] * 4)  # GEXFLOW_MAX_RETRIES=3: 4 attempts
    assert run(fake_deribit, tmp_path, "--currency", "BTC") == 2
    assert "malformed JSON body" in capsys.readouterr().err
    kept = [p for p in malformed_files(tmp_path) if p.is_file()]
    assert [p.name.split(".")[3] for p in kept] == ["attempt1", "attempt2", "attempt3", "attempt4"]
    recorded = (SNAPSHOTS / f"get_book_summary_by_currency.BTC.{STAMPS[1]}.json").read_bytes()
    assert {gzip.decompress(p.read_bytes()) for p in kept} == {recorded[: len(recorded) // 2]}
    # a re-run that fails the same way keeps the earlier bodies and adds its own
    fake_deribit.fail("get_book_summary_by_currency:BTC", *["truncated"] * 4)
    assert run(fake_deribit, tmp_path, "--currency", "BTC") == 2
    assert len([p for p in malformed_files(tmp_path) if p.is_file()]) == 8


def test_landed_raw_bodies_replay_to_the_same_lake(fake_deribit, fast_env, tmp_path):
    live = tmp_path / "live"
    assert run(fake_deribit, live) == 0
    replayed = tmp_path / "replayed"
    assert main(["ingest", "--source", f"replay:{live / 'raw' / 'deribit'}", "--data-dir", str(replayed)]) == 0
    assert view_counts(replayed) == view_counts(live)


def test_the_installed_command_fails_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "ingest", "--currency", "XYZ", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gexflow: error: unknown currency 'XYZ' (Deribit options: BTC, ETH, USDC, USDT)"


def test_the_trades_command_ingests_the_tape_and_prints_what_it_added(fake_deribit, fast_env, tmp_path, capsys):
    lines = TRADES.read_text().splitlines()
    fake_deribit.trades["BTC"] = [json.loads(line) for line in lines if line.strip()]
    args = ["--currency", "BTC", "--trades-since", "2020-02-20"]
    assert run(fake_deribit, tmp_path, *args, command="trades") == 0
    assert run(fake_deribit, tmp_path, *args, command="trades") == 0
    out = capsys.readouterr().out
    assert "463" in out
    assert main(["trades", "--trades-since", "yesterday", "--data-dir", str(tmp_path)]) == 2
    assert "--trades-since must be an ISO date" in capsys.readouterr().err
