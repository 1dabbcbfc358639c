"""forecast_cycle end to end on the real chains: lake tables and views, exports, the HTML page, re-publishing,
input errors, and the SQL query library."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from pipelines.config import ANALYTICS_VERSION
from pipelines.errors import GexflowError
from pipelines.jobs.forecast import FORECAST_TABLES, forecast_cycle, pick_snapshots
from pipelines.publishing.exports import export_folder, publish_forecast_exports
from tests.data_paths import SNAPSHOT_STAMPS, snapshot_chain
from transforms.forecasting.forecast import forecast_start
from transforms.frames.schemas import EXPIRY_ROLLOFF, FLOW_FORECAST, FORECAST_SUMMARY
from transforms.gex.exposure import gex_by_strike, key_levels
from transforms.gex.positioning import dealer_positions
from warehouse import WarehouseError, atomic, files, lake, raw
from warehouse.catalog import connect_readonly, read_sql, refresh_views, view_sql

DAY = date(2026, 7, 31)
NOW = datetime(2026, 7, 31, 12, 0, tzinfo=UTC)
CURRENCIES = ["BTC", "ETH"]
SCHEMAS = {"forecast": FLOW_FORECAST, "summary": FORECAST_SUMMARY, "rolloff": EXPIRY_ROLLOFF}


def land_snapshots(data_dir: Path, chains: pl.DataFrame) -> None:
    """option_snapshots lake files as ingestion writes them (one per currency and snapshot)."""
    staged = []
    for (_currency, ts), part in chains.group_by("currency", "snapshot_ts", maintain_order=True):
        staged += lake.stage_partitions(
            data_dir, "option_snapshots", part, name=raw.stamp_of(ts), date_col="snapshot_ts"
        )
    files.commit(data_dir, staged)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with (size, mtime_ns): to prove nothing was written."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def chains() -> pl.DataFrame:
    return pl.concat([snapshot_chain(c, s) for s in SNAPSHOT_STAMPS for c in CURRENCIES])


@pytest.fixture(scope="module")
def published(tmp_path_factory, chains):
    data_dir = tmp_path_factory.mktemp("forecast") / "data"
    land_snapshots(data_dir, chains)
    result = forecast_cycle(data_dir, forecast_date=DAY, currencies=CURRENCIES, now=NOW)
    return data_dir, result


# ---------------------------------------------------------------- the lake and the views


def test_forecast_cycle_picks_the_days_snapshot_and_stores_one_file_per_table_and_currency(published):
    data_dir, result = published
    ts = datetime(2026, 7, 31, 11, 33, 22, 630000, tzinfo=UTC)
    assert result.snapshots == {"BTC": ts, "ETH": ts} and result.t0 == {"BTC": ts, "ETH": ts}
    stored = sorted(
        str(p.relative_to(data_dir / "lake")) for t in FORECAST_TABLES for p in lake.data_files(data_dir, t)
    )
    assert stored == sorted(
        f"{t}/currency={c}/date=2026-07-31/forecast.parquet" for t in FORECAST_TABLES for c in CURRENCIES
    )
    assert sorted(result.lake_files) == sorted(data_dir / "lake" / s for s in stored)


def test_views_serve_the_stored_forecast(published):
    data_dir, result = published
    con = connect_readonly(data_dir)
    try:
        for view, frame, schema in (
            ("flow_forecast", result.frames.forecast, FLOW_FORECAST),
            ("forecast_summary", result.frames.summary, FORECAST_SUMMARY),
            ("expiry_rolloff", result.frames.rolloff, EXPIRY_ROLLOFF),
        ):
            cur = con.execute(f"select * from {view}")  # view names are constants of this test
            assert [d[0] for d in cur.description] == list(schema)
            assert len(cur.fetchall()) == frame.height > 0
        expected = con.execute(
            "select sum(hedge_flow_coins * probability_weight) from flow_forecast "
            "where currency = $c and model = $m and horizon = $h",
            {"c": "BTC", "m": "naive", "h": "24h"},
        ).fetchone()[0]
    finally:
        con.close()
    row = result.frames.summary.filter(
        (pl.col("currency") == "BTC") & (pl.col("model") == "naive") & (pl.col("horizon") == "24h")
    )
    assert expected == pytest.approx(row["expected_flow_coins"][0], rel=1e-12)


def test_rerunning_the_forecast_replaces_the_lake_files(published, chains):
    data_dir, result = published
    before = {t: lake.data_files(data_dir, t) for t in FORECAST_TABLES}
    again = forecast_cycle(data_dir, forecast_date=DAY, currencies=CURRENCIES, now=NOW, export=False)
    assert {t: lake.data_files(data_dir, t) for t in FORECAST_TABLES} == before
    stored = pl.read_parquet([str(p) for p in before["flow_forecast"]])
    assert stored.sort("currency", "model", "horizon", "price_level").equals(
        again.frames.forecast.sort("currency", "model", "horizon", "price_level")
    )
    assert not list((data_dir / atomic.JOURNAL_DIR).glob("*.json"))


# ---------------------------------------------------------------- exports


def test_export_files_load_back_in_polars_and_duckdb_with_the_documented_columns(published):
    data_dir, result = published
    folder = export_folder(data_dir, DAY)
    assert result.exports.folder == folder
    frames = {"forecast": result.frames.forecast, "summary": result.frames.summary, "rolloff": result.frames.rolloff}
    con = duckdb.connect()
    try:
        for currency in CURRENCIES:
            for kind, schema in SCHEMAS.items():
                expected = frames[kind].filter(pl.col("currency") == currency)
                stem = folder / f"{currency}_{kind}"
                assert pl.read_parquet(stem.with_suffix(".parquet")).equals(expected)
                from_csv = pl.read_csv(stem.with_suffix(".csv"), schema=schema)
                assert from_csv.equals(expected), f"{stem}.csv"
                rows = json.loads(stem.with_suffix(".json").read_text())
                assert len(rows) == expected.height and list(rows[0]) == list(schema)
                for fmt in ("parquet", "csv", "json"):
                    path = str(stem.with_suffix(f".{fmt}"))
                    # the folder name date=... looks like a hive partition to DuckDB: without
                    # hive_partitioning = false it adds a 'date' column (documented in pipelines/publishing/exports.py)
                    cur = con.execute("select * from read_" + fmt + "(?, hive_partitioning = false)", [path])
                    assert [d[0] for d in cur.description] == list(schema), path
                    assert len(cur.fetchall()) == expected.height, path
    finally:
        con.close()
    assert sorted(result.exports.data_files) == sorted(
        folder / f"{c}_{k}.{f}"
        for c in CURRENCIES
        for k in (*SCHEMAS, "exposure_by_expiry")  # no stored key levels here, so no C_history files
        for f in ("parquet", "csv", "json")
    )


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables, self.links, self.external = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        elif tag == "table":
            self.tables.append(a.get("id"))
        elif tag == "a":
            self.links.append(a["href"])
        if tag in ("script", "link") or "://" in (a.get("src") or a.get("href") or ""):
            self.external.append((tag, a))


def test_index_html_has_the_summary_tables_and_charts_that_exist(published):
    data_dir, result = published
    folder = export_folder(data_dir, DAY)
    page = _Page()
    page.feed((folder / "index.html").read_text(encoding="utf-8"))
    assert {"summary-BTC", "summary-ETH", "rolloff-BTC", "rolloff-ETH"} <= set(page.tables)
    kinds = ("flow_1h", "flow_24h", "flow_next_expiry", "gex", "gex_by_expiry", "gex_heatmap", "vanna_by_strike")
    expected_charts = {f"{c}_{k}.png" for c in CURRENCIES for k in kinds}  # no history: nothing computed here
    assert set(page.images) == expected_charts == {p.name for p in result.exports.charts}
    for name in page.images + page.links:
        assert (folder / name).is_file() and "/" not in name
    assert page.external == []  # readable offline: no scripts, stylesheets or remote resources
    for chart in result.exports.charts:
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 20_000


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on PATH (CI installs the Debian package)")
def test_index_html_renders_in_headless_chromium(published, tmp_path):
    from matplotlib import image

    data_dir, _ = published
    shot = tmp_path / "index.png"
    cmd = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,2000",
        (export_folder(data_dir, DAY) / "index.html").as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    assert shot.stat().st_size > 50_000
    pixels = image.imread(shot)
    assert pixels.shape[:2] == (2000, 1400)
    assert float(pixels[..., :3].std()) > 0.05  # not a blank page
    # the first chart is drawn: many distinct colours, not only text on white
    assert len(np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200


def test_republishing_a_date_leaves_exactly_one_folder_with_the_new_content(published, tmp_path):
    _, result = published
    f, s, r = result.frames.forecast, result.frames.summary, result.frames.rolloff

    def only(frame, currency):
        return frame.filter((pl.col("currency") == currency) & (pl.col("model") == "naive"))

    first = publish_forecast_exports(tmp_path, DAY, only(f, "BTC"), only(s, "BTC"), rolloff=only(r, "BTC"))
    (first.folder / "stale-marker.txt").write_text("from the first publication")
    second = publish_forecast_exports(tmp_path, DAY, only(f, "ETH"), only(s, "ETH"), rolloff=only(r, "ETH"))
    root = export_folder(tmp_path, DAY).parent
    assert [p.name for p in root.iterdir()] == ["date=2026-07-31"]  # no temp or old sibling left
    names = {p.name for p in second.folder.iterdir()}
    assert second.folder == first.folder and "stale-marker.txt" not in names
    assert not any(n.startswith("BTC_") for n in names) and "ETH_forecast.parquet" in names
    assert pl.read_parquet(second.folder / "ETH_summary.parquet")["currency"].unique().to_list() == ["ETH"]


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {k: v for k, v in tree(root).items() if (root / k).is_file()}


def test_charts_render_before_the_writer_lock_is_taken(tmp_path, chains):
    """While another writer holds the lock, the export folder is already built (hidden); the forecast then only
    waits to commit. After the release: the lake files and the export folder, no build folder left over."""
    data_dir = tmp_path / "data"
    land_snapshots(data_dir, chains.filter(pl.col("currency") == "BTC"))
    root = export_folder(data_dir, DAY).parent
    outcome: dict = {}
    with files.writer_lock(data_dir):

        def run():
            try:
                outcome["result"] = forecast_cycle(
                    data_dir, forecast_date=DAY, currencies=["BTC"], now=NOW, lock_wait_s=120
                )
            except BaseException as exc:  # surfaced by the assertion below
                outcome["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 90
        built: list[Path] = []
        while not built and worker.is_alive() and time.monotonic() < deadline:
            built = [p for p in root.glob(".date=*.tmp") if (p / "index.html").exists()] if root.exists() else []
            time.sleep(0.05)
        assert built, f"no finished build folder while the lock was held: {outcome}"
        assert len(list(built[0].glob("*.png"))) >= 3  # flow charts for 1 h and 24 h, the GEX chart
        assert not export_folder(data_dir, DAY).exists()  # nothing visible yet
        assert worker.is_alive()  # still waiting for the lock
    worker.join(120)
    assert "error" not in outcome, outcome.get("error")
    assert [p.name for p in root.iterdir()] == ["date=2026-07-31"]
    assert (export_folder(data_dir, DAY) / "index.html").exists()
    assert outcome["result"].lake_files


def test_a_busy_writer_lock_fails_in_one_line_and_leaves_no_files(tmp_path, chains):
    data_dir = tmp_path / "data"
    land_snapshots(data_dir, chains.filter(pl.col("currency") == "BTC"))
    with files.writer_lock(data_dir):
        before = _files(data_dir)
        with pytest.raises(WarehouseError, match="another gexflow writer") as err:
            forecast_cycle(data_dir, forecast_date=DAY, currencies=["BTC"], now=NOW)
        assert "\n" not in str(err.value)
        assert _files(data_dir) == before  # the rendered build was discarded, no lake file was staged


# ---------------------------------------------------------------- bad input: one line, nothing written


def _one_line_error(data_dir: Path, **kwargs) -> str:
    before = tree(data_dir)
    args = {"forecast_date": DAY, "currencies": CURRENCIES, "now": NOW} | kwargs
    with pytest.raises(GexflowError) as err:
        forecast_cycle(data_dir, **args)
    message = str(err.value)
    assert "\n" not in message
    assert tree(data_dir) == before
    return message


def test_a_date_without_a_snapshot_is_a_one_line_error_and_writes_nothing(published):
    data_dir, _ = published
    message = _one_line_error(data_dir, forecast_date=date(2026, 8, 1))
    assert "2026-08-01" in message and "BTC" in message and "ETH" in message


def test_a_currency_without_data_is_a_one_line_error_and_writes_nothing(published):
    data_dir, _ = published
    assert "no option snapshots for SOL" in _one_line_error(data_dir, currencies=["BTC", "SOL"])


def test_an_unknown_model_is_a_one_line_error_and_writes_nothing(published):
    data_dir, _ = published
    assert "unknown positioning model" in _one_line_error(data_dir, models=("naive", "bogus"))


def test_an_empty_data_dir_is_a_one_line_error_and_is_not_created(tmp_path):
    missing = tmp_path / "nothing-here"
    assert "run `gexflow ingest` first" in _one_line_error(missing)
    assert not missing.exists()


def test_the_first_snapshot_after_0800_wins_else_the_last_before(tmp_path, chains):
    btc = chains.filter(pl.col("currency") == "BTC", pl.col("snapshot_ts").dt.date() == DAY)

    def at(hour: int, minute: int = 0) -> pl.DataFrame:
        return btc.with_columns(
            pl.lit(datetime(2026, 7, 31, hour, minute, tzinfo=UTC)).cast(btc["snapshot_ts"].dtype).alias("snapshot_ts")
        )

    land_snapshots(tmp_path, pl.concat([at(5), at(7, 59), at(8), at(9, 30), at(15)]))
    assert pick_snapshots(tmp_path, DAY, ["BTC"]) == {"BTC": datetime(2026, 7, 31, 9, 30, tzinfo=UTC)}
    other = tmp_path / "before-only"
    land_snapshots(other, pl.concat([at(5), at(7, 59), at(8)]))
    ts = pick_snapshots(other, DAY, ["BTC"])["BTC"]
    assert ts == datetime(2026, 7, 31, 8, tzinfo=UTC)  # at or before 08:00: the latest
    assert forecast_start(DAY, datetime(2026, 7, 31, 7, 59, tzinfo=UTC)) == datetime(2026, 7, 31, 8, tzinfo=UTC)
    with pytest.raises(GexflowError, match="no BTC option snapshot dated 2026-07-30"):
        pick_snapshots(other, DAY - timedelta(days=1), ["BTC"])


# ---------------------------------------------------------------- the query library

QUERIES = {
    "latest_key_levels": {"currency": "BTC"},
    "zero_gamma_history": {"currency": "BTC", "since": "2026-01-01"},
    "gex_by_expiry": {"currency": "BTC"},
    "largest_hedge_flow_levels": {"currency": "BTC", "top_n": 3},
    "taker_flow_vs_naive": {"currency": "BTC"},
    "data_status": {"analytics_version": ANALYTICS_VERSION},
    "key_levels_history": {"currency": "BTC", "model": "naive", "since": "2026-01-01", "until": "2026-12-31"},
}
LEAD_VIEWS = {"key_levels", "gex_by_strike"}


@pytest.fixture(scope="module")
def warehouse(published, chains):
    """The published forecast plus key_levels and gex_by_strike lake tables from the transforms on the real chains.

    There is no trade tape for these snapshots, so the 'taker_flow' rows are a stand-in: the customer_long book
    relabelled, enough to exercise taker_flow_vs_naive.sql.
    """
    if not LEAD_VIEWS <= set(view_sql()):
        pytest.skip("the key_levels / gex_by_strike views are not in sql/views yet")
    data_dir, _ = published
    positions = pl.concat(
        [dealer_positions(chains, "naive"), dealer_positions(chains, "customer_long")]
        + [dealer_positions(chains, "customer_long").with_columns(pl.lit("taker_flow").alias("model"))]
    )
    levels, strikes = key_levels(chains, positions), gex_by_strike(chains, positions)
    staged = lake.stage_partitions(data_dir, "key_levels", levels, name="test", date_col="snapshot_ts")
    staged += lake.stage_partitions(data_dir, "gex_by_strike", strikes, name="test", date_col="snapshot_ts")
    files.commit(data_dir, staged)
    refresh_views(data_dir)
    return data_dir, levels


def run_query(data_dir: Path, name: str, params: dict) -> pl.DataFrame:
    con = connect_readonly(data_dir)
    try:
        cur = con.execute(read_sql(f"queries/{name}.sql"), params)
        columns = [d[0] for d in cur.description]
        return pl.DataFrame(cur.fetchall(), schema=columns, orient="row")
    finally:
        con.close()


def test_every_query_states_its_grain_and_takes_only_parameters():
    for name, params in QUERIES.items():
        text = read_sql(f"queries/{name}.sql")
        assert text.startswith("-- one row per "), name
        assert all(f"${p}" in text for p in params), name
        assert "{" not in text and "%s" not in text, name


def test_queries_bind_against_empty_views(tmp_path):
    """Each query prepares against views built from the zero-row schema files alone."""
    from pipelines.store.lake_tables import prepare_warehouse

    for table, schema in FORECAST_TABLES.items():
        lake.ensure_empty_file(tmp_path, table, schema)
    prepare_warehouse(tmp_path)
    for name, params in QUERIES.items():
        if not LEAD_VIEWS <= set(view_sql()) and name in (
            "latest_key_levels",
            "zero_gamma_history",
            "gex_by_expiry",
            "taker_flow_vs_naive",
        ):
            continue
        assert run_query(tmp_path, name, params).height == 0, name


def test_latest_key_levels_and_zero_gamma_history(warehouse):
    data_dir, levels = warehouse
    latest = run_query(data_dir, "latest_key_levels", QUERIES["latest_key_levels"])
    assert latest["model"].to_list() == ["customer_long", "naive", "taker_flow"]
    assert latest["snapshot_ts"].unique().to_list() == [datetime(2026, 7, 31, 11, 33, 22, 630000, tzinfo=UTC)]
    naive = latest.filter(pl.col("model") == "naive").row(0, named=True)
    assert naive["zero_gamma"] == pytest.approx(62994.58, abs=0.01)
    assert naive["zero_gamma_pct_from_spot"] == pytest.approx((62994.58 / 63803.33 - 1) * 100, abs=1e-4)
    history = run_query(data_dir, "zero_gamma_history", QUERIES["zero_gamma_history"])
    assert history.height == 2 * 3 and history["snapshot_ts"].n_unique() == 2
    later = run_query(data_dir, "zero_gamma_history", {"currency": "BTC", "since": "2026-07-01"})
    assert later.height == 3


def test_gex_by_expiry_sums_to_the_total_gex(warehouse):
    data_dir, levels = warehouse
    out = run_query(data_dir, "gex_by_expiry", QUERIES["gex_by_expiry"])
    latest = levels.filter(pl.col("currency") == "BTC").filter(pl.col("snapshot_ts") == pl.col("snapshot_ts").max())
    for model in ("naive", "customer_long"):
        mine = out.filter(pl.col("model") == model)
        total = latest.filter(pl.col("model") == model)["total_gex_usd"][0]
        assert mine["net_gex_usd"].sum() == pytest.approx(total, rel=1e-9)
        assert mine["share_of_abs_gex"].sum() == pytest.approx(1.0, rel=1e-12)
        assert mine["hours_to_expiry"].min() == pytest.approx(20.44, abs=0.01)


def test_largest_hedge_flow_levels_ranks_the_probability_weighted_flow(warehouse):
    data_dir, _ = warehouse
    out = run_query(data_dir, "largest_hedge_flow_levels", QUERIES["largest_hedge_flow_levels"])
    assert out.group_by("model", "horizon").len()["len"].to_list() == [3] * 6
    for (_m, _h), group in out.group_by("model", "horizon"):
        weighted = group.sort("rank")["weighted_abs_flow_usd"].to_list()
        assert weighted == sorted(weighted, reverse=True)
        assert np.allclose(group["weighted_abs_flow_usd"], group["probability_weight"] * group["hedge_flow_usd"].abs())


def test_taker_flow_vs_naive_lines_up_the_two_models(warehouse):
    data_dir, levels = warehouse
    out = run_query(data_dir, "taker_flow_vs_naive", QUERIES["taker_flow_vs_naive"])
    assert out.height == 2
    btc = levels.filter(pl.col("currency") == "BTC")
    for row in out.iter_rows(named=True):
        at = btc.filter(pl.col("snapshot_ts") == row["snapshot_ts"])
        naive = at.filter(pl.col("model") == "naive")["total_gex_usd"][0]
        taker = at.filter(pl.col("model") == "taker_flow")["total_gex_usd"][0]
        assert row["total_gex_diff_usd"] == pytest.approx(taker - naive, rel=1e-12)
        assert row["is_same_gamma_sign"] is False  # the stand-in (customer_long) is short gamma, naive long
