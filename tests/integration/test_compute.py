"""Analytics over stored snapshots: compute, levels, profile, and taker_flow beside naive once trades exist."""

from __future__ import annotations

import hashlib
import json

import duckdb
import polars as pl
import pytest

from pipelines.cli.app import main
from tests.fake_deribit import SNAPSHOT_MS, SNAPSHOTS, TAPE, install_usdc_chain


def analytic_files(data_dir):
    return {
        str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for table in ("dealer_positions", "gex_by_strike", "gex_profile", "key_levels")
        for p in sorted((data_dir / "lake" / table).rglob("*.parquet"))
    }


def query(data_dir, sql):
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def sample_warehouse(tmp_path, fast_env, capsys):
    assert main(["run", "--source", "sample", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    return tmp_path


def test_run_computes_every_model_for_every_snapshot_and_prints_the_levels(tmp_path, fast_env, capsys):
    assert main(["run", "--source", "sample", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "zero_gamma" in out and "call_wall" in out
    rows = query(
        tmp_path, "select currency, count(distinct snapshot_ts), count(*) from key_levels group by 1 order by 1"
    )
    assert rows == [("BTC", 2, 4), ("ETH", 2, 4)]  # 2 snapshots x (naive, customer_long)
    grid = query(tmp_path, "select count(*) from gex_profile group by currency, snapshot_ts, model")
    assert {n for (n,) in grid} == {201}


def test_recomputing_leaves_the_same_analytic_files(sample_warehouse, capsys):
    before = analytic_files(sample_warehouse)
    assert main(["compute", "--data-dir", str(sample_warehouse)]) == 0
    assert analytic_files(sample_warehouse) == before
    assert main(["compute", "--data-dir", str(sample_warehouse), "--since", "2026-07-01", "--currency", "BTC"]) == 0
    assert analytic_files(sample_warehouse) == before
    assert "computed 1 snapshot(s)" in capsys.readouterr().out


def test_the_views_agree_with_the_transforms_and_their_units(sample_warehouse):
    (total, by_strike) = query(
        sample_warehouse,
        "select k.total_gex_usd, (select sum(net_gex_usd) from gex_by_strike g where g.currency = k.currency "
        "and g.snapshot_ts = k.snapshot_ts and g.model = k.model and g.expiration_ts is null) "
        "from key_levels k where currency = 'BTC' and model = 'naive' "
        "and snapshot_ts = (select max(snapshot_ts) from key_levels)",
    )[0]
    assert total == pytest.approx(by_strike, rel=1e-9)
    at_spot = query(
        sample_warehouse,
        "select p.dealer_gex_usd, p.hedge_flow_coins from gex_profile p "
        "join key_levels k using (currency, snapshot_ts, model) "
        "where p.currency = 'BTC' and p.model = 'naive' and p.price_level = k.spot",
    )
    assert len(at_spot) == 2 and all(flow == 0 for _, flow in at_spot)


def test_levels_prints_each_model_and_profile_draws_a_chart(sample_warehouse, capsys):
    assert main(["levels", "--currency", "BTC", "--data-dir", str(sample_warehouse)]) == 0
    out = capsys.readouterr().out
    assert "naive" in out and "customer_long" in out and "62,994.58" in out
    assert (
        main(
            [
                "levels",
                "--currency",
                "ETH",
                "--at",
                "2026-02-01",
                "--model",
                "naive",
                "--format",
                "json",
                "--data-dir",
                str(sample_warehouse),
            ]
        )
        == 0
    )
    levels = json.loads(capsys.readouterr().out)
    assert len(levels) == 1 and levels[0]["snapshot_ts"].startswith("2026-01-05T15:33:29")
    png = sample_warehouse / "btc.png"
    assert main(["profile", "--currency", "BTC", "--plot", str(png), "--data-dir", str(sample_warehouse)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert f"chart written to {png}" in capsys.readouterr().out
    assert main(["profile", "--currency", "BTC", "--format", "csv", "--data-dir", str(sample_warehouse)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 201  # header, one line per level


@pytest.mark.parametrize("flags", [["--vol", "sticky-moneyness"], ["--delta", "premium-adjusted"]])
def test_profile_reprices_the_stored_snapshot_with_another_vol_model_or_delta(sample_warehouse, capsys, flags):
    from tests.data_paths import snapshot_chain
    from transforms.gex.exposure import gex_profile
    from transforms.gex.positioning import dealer_positions

    args = ["profile", "--currency", "BTC", "--model", "customer_long", "--data-dir", str(sample_warehouse)]
    assert main([*args, "--format", "csv"]) == 0
    stored = pl.read_csv(capsys.readouterr().out.encode())
    assert main([*args, "--format", "csv", *flags]) == 0
    repriced = pl.read_csv(capsys.readouterr().out.encode())
    # the same numbers as the engine on the recorded chain, the latest sample snapshot (2026-07-31)
    chain = snapshot_chain("BTC", "20260731T113322Z")
    vol = flags[1].replace("-", "_") if flags[0] == "--vol" else "sticky_strike"
    delta = flags[1].replace("-", "_") if flags[0] == "--delta" else "forward"
    want = gex_profile(chain, dealer_positions(chain, "customer_long"), vol_model=vol, delta_convention=delta)
    assert repriced["dealer_gex_usd"].to_list() == pytest.approx(want["dealer_gex_usd"].to_list(), rel=1e-12)
    assert repriced["dealer_delta"].to_list() == pytest.approx(want["dealer_delta"].to_list(), rel=1e-12)
    assert repriced["price_level"].to_list() == stored["price_level"].to_list()
    spot = stored.filter(pl.col("pct_from_spot") == 0.0)
    at_spot = repriced.filter(pl.col("pct_from_spot") == 0.0)
    assert at_spot["dealer_gex_usd"][0] == pytest.approx(spot["dealer_gex_usd"][0], rel=1e-12)  # own IV at spot
    assert repriced["dealer_delta"].to_list() != stored["dealer_delta"].to_list()  # it did re-price
    conventions = repriced.select("vol_model", "delta_convention").unique().rows()
    assert conventions == [(vol.replace("_", "-"), delta.replace("_", "-"))]  # csv rows say how they were made
    assert main([*args, *flags]) == 0
    assert f"({flags[1] if flags[0] == '--vol' else 'sticky-strike'} vol" in capsys.readouterr().out


def test_levels_for_a_time_before_any_snapshot_is_one_line(sample_warehouse, capsys):
    assert main(["levels", "--currency", "BTC", "--at", "2020-01-01", "--data-dir", str(sample_warehouse)]) == 2
    err = capsys.readouterr().err
    assert "no key_levels" in err and len(err.strip().splitlines()) == 1


def test_compute_without_snapshots_is_one_line(tmp_path, capsys):
    assert main(["compute", "--data-dir", str(tmp_path)]) == 2
    assert "no stored snapshots" in capsys.readouterr().err


def test_a_custom_book_adds_the_custom_model(sample_warehouse, tmp_path, capsys):
    book = tmp_path / "book.csv"
    book.write_text("instrument_name,contracts\nBTC-14AUG26-60000-P,-500\nBTC-14AUG26-70000-C,250\n")
    assert main(["compute", "--book", str(book), "--currency", "BTC", "--data-dir", str(sample_warehouse)]) == 0
    rows = query(
        sample_warehouse,
        "select count(*), sum(abs(dealer_contracts)) from dealer_positions where model = 'custom' "
        "and dealer_contracts <> 0",
    )
    assert rows == [(2, 750.0)]  # the 14AUG26 weekly is listed only in the 2026-07-31 snapshot
    bad = tmp_path / "bad.csv"
    bad.write_text("name,qty\nx,1\n")
    assert main(["compute", "--book", str(bad), "--data-dir", str(sample_warehouse)]) == 2
    assert "book" in capsys.readouterr().err


def custom_rows(data_dir):
    """Every stored row of the custom model, per analytic table, in a fixed order."""
    return {
        table: query(data_dir, f"select * from {table} where model = 'custom' order by all")
        for table in ("dealer_positions", "gex_by_strike", "gex_profile", "key_levels")
    }


def write_book(path, lines):
    path.write_text("instrument_name,contracts\n" + "".join(f"{name},{n}\n" for name, n in lines))
    return path


def test_a_recompute_without_a_book_keeps_the_stored_custom_model_unchanged(sample_warehouse, tmp_path, capsys):
    # two lines summed into one; a zero line and a -0.0 line (stored as user_book rows, not dropped); a line
    # outside every chain; nothing for ETH, whose custom model is then all not_in_book
    book = write_book(
        tmp_path / "book.csv",
        [
            ("BTC-14AUG26-60000-P", -400),
            ("BTC-14AUG26-60000-P", -100),
            ("BTC-14AUG26-70000-C", 250),
            ("BTC-14AUG26-65000-C", 0),
            ("BTC-25DEC26-100000-C", "-0.0"),
            ("BTC-NOT-LISTED", 99),
        ],
    )
    data = ["--data-dir", str(sample_warehouse)]
    assert main(["compute", "--book", str(book), *data]) == 0
    with_book = analytic_files(sample_warehouse)
    custom = custom_rows(sample_warehouse)
    assert main(["compute", *data]) == 0
    assert analytic_files(sample_warehouse) == with_book  # every model, custom included, bit for bit
    assert custom_rows(sample_warehouse) == custom
    assert query(
        sample_warehouse,
        "select currency, count(*), count(distinct (snapshot_ts, instrument_name)), "
        "count(*) filter (where method = 'user_book') from dealer_positions where model = 'custom' "
        "group by 1 order by 1",
    ) == [("BTC", 628 + 854, 628 + 854, 1 + 4), ("ETH", 660 + 710, 660 + 710, 0)]
    assert query(
        sample_warehouse, "select currency, count(*) from key_levels where model = 'custom' group by 1 order by 1"
    ) == [("BTC", 2), ("ETH", 2)]
    minus_zero = query(
        sample_warehouse,
        "select signbit(dealer_contracts) from dealer_positions where model = 'custom' "
        "and instrument_name = 'BTC-25DEC26-100000-C'",
    )
    assert minus_zero == [(True,), (True,)]


def test_a_new_book_replaces_the_stored_one(sample_warehouse, tmp_path):
    from tests.data_paths import snapshot_chain
    from transforms.gex.exposure import key_levels
    from transforms.gex.positioning import dealer_positions

    book_a = write_book(tmp_path / "a.csv", [("BTC-14AUG26-60000-P", -500), ("BTC-14AUG26-70000-C", 250)])
    book_b = write_book(tmp_path / "b.csv", [("BTC-14AUG26-70000-C", 40), ("BTC-25DEC26-100000-C", -75)])
    data = ["--data-dir", str(sample_warehouse), "--currency", "BTC"]
    assert main(["compute", "--book", str(book_a), *data]) == 0
    assert main(["compute", "--book", str(book_b), *data]) == 0
    assert main(["compute", *data]) == 0  # and a recompute without a book keeps B
    held = query(
        sample_warehouse,
        "select strftime(snapshot_ts, '%Y-%m'), instrument_name, dealer_contracts from dealer_positions "
        "where model = 'custom' and method = 'user_book' order by all",
    )
    assert held == [
        ("2026-01", "BTC-25DEC26-100000-C", -75.0),
        ("2026-07", "BTC-14AUG26-70000-C", 40.0),
        ("2026-07", "BTC-25DEC26-100000-C", -75.0),
    ]
    chain = snapshot_chain("BTC", "20260731T113322Z")
    want = key_levels(chain, dealer_positions(chain, "custom", book=pl.read_csv(book_b))).row(0, named=True)
    (total, zero_gamma) = query(
        sample_warehouse,
        "select total_gex_usd, zero_gamma from key_levels where model = 'custom' "
        "and snapshot_ts = (select max(snapshot_ts) from key_levels)",
    )[0]
    assert total == pytest.approx(want["total_gex_usd"], rel=1e-12)
    assert zero_gamma == pytest.approx(want["zero_gamma"], rel=1e-12)


def _assert_taker_flow_from_tape(data_dir):
    """The taker_flow model of the recorded BTC snapshot, as TAPE implies it, beside naive and customer_long."""
    positions = dict(
        query(
            data_dir,
            "select instrument_name, dealer_contracts from dealer_positions where model = 'taker_flow' "
            "and method <> 'naive_fallback'",
        )
    )
    oi = {
        r["instrument_name"]: r["open_interest"]
        for r in json.loads((SNAPSHOTS / "get_book_summary_by_currency.BTC.20260731T113322Z.json").read_text())[
            "result"
        ]
    }
    # partial tape (listing time unknown): dealer = -OI * net / gross; the block leg is excluded and the
    # trade after the snapshot does not count
    assert positions["BTC-14AUG26-60000-P"] == pytest.approx(-oi["BTC-14AUG26-60000-P"] * 30 / 50)
    assert positions["BTC-14AUG26-70000-C"] == pytest.approx(-oi["BTC-14AUG26-70000-C"] * 5 / 5)
    models = query(
        data_dir, "select model, total_gex_vs_naive_usd is not null, zero_gamma_vs_naive from key_levels order by model"
    )
    assert [m for m, *_ in models] == ["customer_long", "naive", "taker_flow"]
    assert all(has_gap for _, has_gap, _ in models)
    flags = query(
        data_dir,
        "select liquidations, block_trades_excluded from dealer_positions where model = 'taker_flow' "
        "and instrument_name = 'BTC-14AUG26-70000-C'",
    )
    assert flags == [(1, 1)]


def test_taker_flow_sits_next_to_naive_once_trades_exist(fake_deribit, fast_env, tmp_path, capsys):
    fake_deribit.trades["BTC"] = TAPE
    base = ["--api-url", fake_deribit.url, "--data-dir", str(tmp_path), "--currency", "BTC"]
    assert main(["trades", *base, "--trades-since", "2026-07-31T00:00:00Z"]) == 0
    assert main(["run", *base]) == 0
    _assert_taker_flow_from_tape(tmp_path)
    assert "taker_flow" in capsys.readouterr().out


@pytest.mark.parametrize("setting", [None, "true"])
def test_the_recompute_after_new_trades_keeps_the_configured_block_trade_choice(
    fake_deribit, fast_env, tmp_path, monkeypatch, setting
):
    """GEXFLOW_INCLUDE_BLOCKS is the choice of every compute, the automatic re-compute a trades run starts too:
    TAPE's block sale of 25 on the 70000 call counts with it (net -25 + 5 of 30 traded) and not without."""
    if setting is not None:
        monkeypatch.setenv("GEXFLOW_INCLUDE_BLOCKS", setting)
    fake_deribit.trades["BTC"] = TAPE
    base = ["--api-url", fake_deribit.url, "--data-dir", str(tmp_path), "--currency", "BTC"]
    assert main(["ingest", *base]) == 0
    assert main(["compute", "--data-dir", str(tmp_path), "--currency", "BTC"]) == 0
    assert main(["trades", *base, "--trades-since", "2026-07-31T00:00:00Z"]) == 0
    [(contracts, excluded, oi)] = query(
        tmp_path,
        "select p.dealer_contracts, p.block_trades_excluded, s.open_interest from dealer_positions p "
        "join option_snapshots s using (currency, snapshot_ts, instrument_name) "
        "where p.model = 'taker_flow' and p.instrument_name = 'BTC-14AUG26-70000-C'",
    )
    if setting is None:
        assert (excluded, contracts) == (1, pytest.approx(-oi * 5 / 5))
    else:
        assert (excluded, contracts) == (0, pytest.approx(-oi * -20 / 30))


def test_a_bad_include_blocks_setting_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEXFLOW_INCLUDE_BLOCKS", "maybe")
    assert main(["compute", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "include_blocks must be true or false" in err and len(err.strip().splitlines()) == 1


def test_trades_that_arrive_after_a_snapshot_was_computed_recompute_it(fake_deribit, fast_env, tmp_path, capsys):
    """The snapshot is computed before the tape reaches it (no taker_flow then); the trades run that fills the
    tape up to it re-computes that snapshot, every model once, and a run with nothing new re-computes nothing."""
    fake_deribit.trades["BTC"] = TAPE
    base = ["--api-url", fake_deribit.url, "--data-dir", str(tmp_path), "--currency", "BTC"]
    assert main(["ingest", *base]) == 0
    assert main(["compute", "--data-dir", str(tmp_path), "--currency", "BTC"]) == 0
    naive_sql = "select total_gex_usd, zero_gamma, call_wall, put_wall from key_levels where model = 'naive'"
    naive = query(tmp_path, naive_sql)
    assert [m for (m,) in query(tmp_path, "select model from key_levels order by model")] == ["customer_long", "naive"]
    capsys.readouterr()
    assert main(["trades", *base, "--trades-since", "2026-07-31T00:00:00Z"]) == 0
    assert "re-computed 1 stored snapshot" in capsys.readouterr().out
    _assert_taker_flow_from_tape(tmp_path)
    assert query(tmp_path, naive_sql) == naive
    assert query(tmp_path, "select count(*), count(distinct model) from key_levels") == [(3, 3)]
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "lake" / "key_levels").rglob("*.parquet")}
    assert main(["trades", *base]) == 0  # continues from the watermark: nothing new
    assert "re-computed" not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "lake" / "key_levels").rglob("*.parquet")} == files


def test_trades_that_recompute_a_snapshot_keep_its_custom_model(fake_deribit, fast_env, tmp_path, capsys):
    fake_deribit.trades["BTC"] = TAPE
    base = ["--api-url", fake_deribit.url, "--data-dir", str(tmp_path), "--currency", "BTC"]
    book = write_book(tmp_path / "book.csv", [("BTC-14AUG26-60000-P", -500), ("BTC-14AUG26-70000-C", 250)])
    assert main(["ingest", *base]) == 0
    assert main(["compute", "--book", str(book), "--data-dir", str(tmp_path), "--currency", "BTC"]) == 0
    custom = custom_rows(tmp_path)
    assert len(custom["key_levels"]) == 1
    capsys.readouterr()
    assert main(["trades", *base, "--trades-since", "2026-07-31T00:00:00Z"]) == 0
    assert "re-computed 1 stored snapshot" in capsys.readouterr().out
    assert custom_rows(tmp_path) == custom
    models = query(tmp_path, "select model from key_levels order by model")
    assert [m for (m,) in models] == ["custom", "customer_long", "naive", "taker_flow"]


def test_stored_tables_match_their_contracts(sample_warehouse):
    from pipelines.store.lake_tables import LAKE_TABLES
    from warehouse import lake

    for table, schema in LAKE_TABLES.items():
        scan = lake.scan(sample_warehouse, table)
        if scan is not None:
            assert dict(scan.collect_schema()) == {k: v for k, v in schema.items()}, table
    assert pl.read_parquet_schema(sample_warehouse / "lake" / "key_levels" / "_empty.parquet")[
        "zero_gamma_roots"
    ] == pl.List(pl.Float64)


def test_forecast_publishes_the_files_and_prints_where_they_went(sample_warehouse, capsys):
    assert main(["forecast", "--date", "2026-07-31", "--data-dir", str(sample_warehouse)]) == 0
    out = capsys.readouterr().out
    folder = sample_warehouse / "exports" / "flow_forecast" / "date=2026-07-31"
    assert f"forecast published to {folder}" in out
    assert (folder / "index.html").exists()
    rows = query(
        sample_warehouse,
        "select currency, model, count(distinct horizon) from forecast_summary group by all order by all",
    )
    assert rows == [("BTC", "customer_long", 3), ("BTC", "naive", 3), ("ETH", "customer_long", 3), ("ETH", "naive", 3)]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--date", "2026-03-01"], "no BTC option snapshot dated 2026-03-01"),
        (["--date", "31/07/2026"], "--date must be YYYY-MM-DD"),
        (["--date", "2026-07-31", "--model", "taker_flow"], "taker_flow"),
        (["--date", "2026-07-31", "--currency", "USDT"], "USDT"),
    ],
)
def test_a_forecast_that_cannot_be_made_is_one_line_and_writes_no_files(sample_warehouse, capsys, args, needle):
    before = sorted(p for p in sample_warehouse.rglob("*") if "flow_forecast" in str(p) or "exports" in str(p))
    assert main(["forecast", *args, "--data-dir", str(sample_warehouse)]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    after = sorted(p for p in sample_warehouse.rglob("*") if "flow_forecast" in str(p) or "exports" in str(p))
    assert after == before


@pytest.mark.parametrize(
    "name, params",
    [
        ("latest_key_levels", ["currency=BTC"]),
        ("zero_gamma_history", ["currency=ETH", "since=2026-01-01"]),
        ("gex_by_expiry", ["currency=BTC"]),
        ("taker_flow_vs_naive", ["currency=BTC"]),
    ],
)
def test_the_query_library_runs_with_bound_parameters(sample_warehouse, capsys, name, params):
    args = ["sql", "--file", f"sql/queries/{name}.sql", "--format", "json", "--data-dir", str(sample_warehouse)]
    for p in params:
        args += ["--param", p]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    if name == "taker_flow_vs_naive":
        assert rows == []  # no trade tape in the sample
    else:
        assert rows and all(r.get("currency", params[0].split("=")[1]) == params[0].split("=")[1] for r in rows)


def test_backfill_from_tardis_lands_and_computes_the_days(tmp_path, capsys):
    from tests.data_paths import TARDIS

    args = [
        "backfill",
        "--tardis",
        str(TARDIS),
        "--since",
        "2026-07-31",
        "--until",
        "2026-07-31",
        "--currency",
        "BTC",
        "--data-dir",
        str(tmp_path),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "backfilled" in out and "computed" in out
    (n_snap, n_levels) = query(
        tmp_path,
        "select count(distinct o.snapshot_ts), (select count(distinct snapshot_ts) "
        "from key_levels) from option_snapshots o",
    )[0]
    assert n_snap >= 2 and n_levels == n_snap
    assert main(["backfill", "--tardis", str(TARDIS), "--since", "bad", "--data-dir", str(tmp_path)]) == 2
    assert "--since must be YYYY-MM-DD" in capsys.readouterr().err


def test_an_incremental_run_reconciles_the_new_snapshot_against_the_stored_one_before_it(
    fake_deribit, fast_env, tmp_path
):
    # BTC-25DEC26-100000-C is listed in both recordings: OI 20.3 on 2026-01-05, 3662.3 on 2026-07-31
    jan_ms = 1767627209748
    fake_deribit.trades["BTC"] = [
        {
            "trade_id": str(800000 + i),
            "trade_seq": i,
            "timestamp": ts,
            "instrument_name": "BTC-25DEC26-100000-C",
            "direction": "buy",
            "amount": amount,
            "price": 0.05,
            "iv": 50.0,
            "index_price": 90000.0,
            "tick_direction": 0,
        }
        for i, (ts, amount) in enumerate([(jan_ms - 1000, 20.3), (jan_ms + 86_400_000, 1000.0)])
    ]
    base = ["--api-url", fake_deribit.url, "--data-dir", str(tmp_path), "--currency", "BTC"]
    fake_deribit.stamp = "20260105T153329Z"
    assert main(["ingest", *base]) == 0
    assert main(["trades", *base, "--trades-since", "2026-01-01"]) == 0
    assert main(["compute", "--data-dir", str(tmp_path), "--currency", "BTC"]) == 0
    fake_deribit.stamp = "20260731T113322Z"
    assert main(["run", *base]) == 0  # computes only the new snapshot
    rows = query(
        tmp_path,
        "select prev_snapshot_ts, prev_open_interest, open_interest, traded_amount, is_violation "
        "from oi_reconciliation where instrument_name = 'BTC-25DEC26-100000-C'",
    )
    assert len(rows) == 1
    prev_ts, prev_oi, oi, traded, violation = rows[0]
    assert prev_ts.isoformat().startswith("2026-01-05T15:33:29") and (prev_oi, oi) == (20.3, 3662.3)
    assert traded == 1000.0 and violation  # OI grew by 3642 with only 1000 traded in between: a tape gap
    assert query(tmp_path, "select count(distinct snapshot_ts) from tape_coverage") == [(2,)]


USDC_TAPE = [  # a taker buys 4 of the SOL 150 put and sells 1 back; an XRP trade after the snapshot
    {"trade_id": f"91000{n}", "trade_seq": n, "timestamp": SNAPSHOT_MS + dt, "instrument_name": name,
     "direction": side, "amount": amount, "price": 5.0, "iv": 70.0, "index_price": 158.0, "tick_direction": 0}
    for n, (dt, name, side, amount) in enumerate(
        [
            (-3_600_000, "SOL_USDC-14AUG26-150-P", "buy", 4.0),
            (-1_800_000, "SOL_USDC-14AUG26-150-P", "sell", 1.0),
            (60_000, "XRP_USDC-14AUG26-2d5-C", "buy", 2.0),
        ],
        start=1,
    )
]  # fmt: skip


def _usdc_taker_flow(data_dir) -> dict:
    return {
        name: (coin, dealer, method)
        for coin, name, dealer, method in query(
            data_dir,
            "select currency, instrument_name, dealer_contracts, method from dealer_positions "
            "where model = 'taker_flow' order by 1, 2",
        )
    }


@pytest.mark.parametrize(
    "since, method, dealer", [("2026-07-20", "tape_full", -3.0), ("2026-07-30", "tape_partial", -11 * 3 / 5)]
)
def test_linear_options_take_their_taker_flow_from_the_usdc_tape(
    fake_deribit, fast_env, tmp_path, since, method, dealer
):
    """USDC-settled options are stored under their base coin (SOL, XRP) but their trades under USDC: taker_flow
    joins the two. The USDC tape's own start decides full (it began before the 07-25 listing: dealer = -net) or
    partial (it began after: dealer = -OI net / gross)."""
    install_usdc_chain(fake_deribit)
    fake_deribit.trades["USDC"] = USDC_TAPE
    base = ["--api-url", fake_deribit.url, "--data-dir", str(tmp_path), "--currency", "USDC"]
    assert main(["trades", *base, "--trades-since", f"{since}T00:00:00Z"]) == 0
    assert main(["run", *base]) == 0
    flows = _usdc_taker_flow(tmp_path)
    assert flows["SOL_USDC-14AUG26-150-P"] == ("SOL", pytest.approx(dealer), method)
    # no counted trade up to the snapshot: the naive fallback (+OI calls, -OI puts)
    assert flows["SOL_USDC-14AUG26-162d5-P"] == ("SOL", -13.0, "naive_fallback")
    assert flows["XRP_USDC-14AUG26-2d5-C"] == ("XRP", 14.0, "naive_fallback")
    coverage = query(tmp_path, "select currency, instruments_traded from tape_coverage order by 1")
    assert coverage == [("SOL", 1), ("XRP", 0)]


def test_new_usdc_trades_recompute_the_base_coin_snapshots_they_reach(fake_deribit, fast_env, tmp_path, capsys):
    install_usdc_chain(fake_deribit)
    base = ["--api-url", fake_deribit.url, "--data-dir", str(tmp_path), "--currency", "USDC"]
    assert main(["ingest", *base]) == 0 and main(["compute", "--data-dir", str(tmp_path), "--currency", "USDC"]) == 0
    assert _usdc_taker_flow(tmp_path) == {}  # no tape yet
    capsys.readouterr()
    fake_deribit.trades["USDC"] = USDC_TAPE
    assert main(["trades", *base, "--trades-since", "2026-07-30T00:00:00Z"]) == 0
    assert "re-computed 2 stored snapshot(s)" in capsys.readouterr().out  # SOL and XRP at the recorded time
    assert _usdc_taker_flow(tmp_path)["SOL_USDC-14AUG26-150-P"] == ("SOL", pytest.approx(-6.6), "tape_partial")


def test_computing_snapshots_in_chunks_writes_the_same_files_as_one_at_a_time(sample_warehouse, tmp_path, monkeypatch):
    """compute_cycle runs the analytics over up to CHUNK_SNAPSHOTS snapshots of a currency at once and splits the
    tables per snapshot. Chunks of one (the per-snapshot computation) give the same files bit for bit, including a
    custom model stored for one of the two BTC snapshots only (its book read back per snapshot in a chunk)."""
    from pipelines.jobs import compute

    data = ["--data-dir", str(sample_warehouse)]
    first = query(sample_warehouse, "select min(snapshot_ts) from option_snapshots")[0][0].isoformat()
    book = write_book(tmp_path / "book.csv", [("BTC-14AUG26-60000-P", -400), ("BTC-14AUG26-70000-C", 250)])
    assert main(["compute", "--book", str(book), "--currency", "BTC", "--until", first, *data]) == 0
    assert main(["compute", *data]) == 0
    chunked = analytic_files(sample_warehouse)
    assert query(sample_warehouse, "select count(distinct snapshot_ts) from key_levels where model = 'custom'") == [
        (1,)
    ]
    monkeypatch.setattr(compute, "CHUNK_SNAPSHOTS", 1)
    assert main(["compute", *data]) == 0
    assert analytic_files(sample_warehouse) == chunked


def test_status_shows_per_currency_what_is_stored_computed_and_how_current(fake_deribit, fast_env, tmp_path, capsys):
    base = ["--api-url", fake_deribit.url, "--data-dir", str(tmp_path), "--currency", "BTC"]
    status = ["status", "--format", "json", "--data-dir", str(tmp_path)]
    assert main(["ingest", *base]) == 0
    capsys.readouterr()
    assert main(status) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["currency"], row["snapshots"], row["computed_snapshots"], row["not_computed"]) == ("BTC", 1, 0, 1)
    assert row["last_ingest_ts"] and row["trades"] == 0 and row["watermark_ts"] is None
    fake_deribit.trades["BTC"] = TAPE
    assert main(["trades", *base, "--trades-since", "2026-07-31T00:00:00Z"]) == 0
    assert main(["compute", *base[2:]]) == 0
    capsys.readouterr()
    assert main(status) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["snapshots"], row["computed_snapshots"], row["not_computed"], row["trades"]) == (1, 1, 0, len(TAPE))
    assert row["watermark_ts"] is not None and row["last_trade_ts"].startswith("2026-07-31")


WHAT_IFS = ("scenario_profiles", "hedge_ladder", "hedge_ladder_volume")


def test_the_what_if_tables_are_stored_when_asked_and_a_recompute_without_them_removes_them(
    sample_warehouse, monkeypatch, capsys
):
    """By default compute stores no what-if tables (issue 15's budget); ``--what-ifs`` or GEXFLOW_WHAT_IFS stores
    them. A re-computation replaces all of a snapshot's analytics: when a table has no rows for a snapshot any more,
    the file an earlier run left is deleted in the same commit, so the views never mix the two runs."""

    def data_files(table):
        return sorted(p.name for p in (sample_warehouse / "lake" / table).rglob("*/*.parquet"))

    kept = analytic_files(sample_warehouse)
    assert [data_files(t) for t in WHAT_IFS] == [[], [], []]  # the run stored none
    for view in WHAT_IFS:
        assert query(sample_warehouse, f"select count(*) from {view}") == [(0,)]
    # ... and the CLI prices them on request
    at = ["--data-dir", str(sample_warehouse), "--currency", "ETH"]
    assert main(["profile", *at, "--scenario", "spot_vol"]) == 0
    assert main(["ladder", *at]) == 0
    out = capsys.readouterr().out
    assert "vanna_flow_coins" in out and "continuous_traded_coins" in out
    assert main(["compute", "--data-dir", str(sample_warehouse), "--what-ifs"]) == 0
    assert [len(data_files(t)) for t in WHAT_IFS] == [4, 4, 4]  # 2 snapshots x 2 coins
    assert analytic_files(sample_warehouse) == kept  # the other tables: the same files
    assert query(sample_warehouse, "select count(distinct (currency, snapshot_ts, model)) from scenario_profiles") == [
        (8,)
    ]
    monkeypatch.setenv("GEXFLOW_WHAT_IFS", "true")
    assert main(["compute", "--data-dir", str(sample_warehouse), "--currency", "BTC"]) == 0
    assert [len(data_files(t)) for t in WHAT_IFS] == [4, 4, 4]
    monkeypatch.setenv("GEXFLOW_WHAT_IFS", "false")
    assert main(["compute", "--data-dir", str(sample_warehouse), "--currency", "ETH"]) == 0
    assert [len(data_files(t)) for t in WHAT_IFS] == [2, 2, 2]  # ETH's recompute removed ETH's
    assert query(sample_warehouse, "select distinct currency from hedge_ladder_volume") == [("BTC",)]
    assert analytic_files(sample_warehouse) == kept
    assert query(sample_warehouse, "select count(distinct snapshot_ts) from exposure_by_expiry") == [(2,)]
