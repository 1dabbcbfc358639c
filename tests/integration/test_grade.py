"""`gexflow grade` end to end on four real days of tests/data/tardis: realised moves against a direct
reading of the derivative_ticker CSV, no look-ahead (truncate and shuffle after t), the report in Chromium,
idempotent re-runs, one-line errors."""

from __future__ import annotations

import csv
import gzip
import math
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from pipelines.cli.app import main
from pipelines.jobs.grade import grade_cycle
from tests.data_paths import TARDIS
from transforms.grading.summary import out_of_sample
from warehouse import lake

DAYS = ("2026-07-27", "2026-07-28", "2026-07-29", "2026-07-30")
FIT_UNTIL = datetime(2026, 7, 29, 12, tzinfo=UTC)  # two graded 24 h forecasts per model end by then
# the no-look-ahead cut t falls between two recordings (the next one is at 16:47:20): everything after it is
# truncated or shuffled, and every grade of a forecast whose horizon ended by t must stay the same
CUT = datetime(2026, 7, 30, 16, 40, tzinfo=UTC)


def _subset(dest: Path, days=DAYS) -> Path:
    for kind, pattern in (("options_chain", "deribit_options_chain_{}_OPTIONS.csv.gz"),
                          ("derivative_ticker", "deribit_derivative_ticker_{}_PERPETUALS.csv.gz")):  # fmt: skip
        (dest / kind).mkdir(parents=True)
        for day in days:
            (dest / kind / pattern.format(day)).symlink_to(TARDIS / kind / pattern.format(day))
    return dest


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grade")
    tardis = _subset(root / "tardis")
    data = root / "data"
    argv = ["backfill", "--tardis", str(tardis), "--no-compute", "--data-dir", str(data)]
    assert main(argv) == 0
    result = grade_cycle(data, currencies=("BTC", "ETH"), fit_until=FIT_UNTIL, tardis_dir=tardis)
    return data, tardis, result


def _ms(timestamp_us: str) -> datetime:
    """A Tardis microsecond timestamp at the lake's millisecond resolution (truncated, as stored)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(timestamp_us) // 1000)


def _ticker_rows(tardis: Path) -> dict[str, list[tuple[datetime, float]]]:
    """(timestamp, index_price) per currency, read with the csv module (not the project's reader)."""
    out: dict[str, list] = {"BTC": [], "ETH": []}
    for path in sorted((tardis / "derivative_ticker").iterdir()):
        with gzip.open(path, "rt", newline="") as fh:
            for row in csv.DictReader(fh):
                currency = row["symbol"].split("-")[0]
                if currency in out and row["index_price"]:
                    ts = _ms(row["timestamp"])
                    out[currency].append((ts, float(row["index_price"])))
    return {c: sorted(v) for c, v in out.items()}


def test_realised_moves_equal_a_direct_computation_from_derivative_ticker_index_prices(graded):
    data, tardis, result = graded
    ticks = _ticker_rows(tardis)
    g = result.grades.filter(pl.col("model") == "naive")
    checked = 0
    for row in g.iter_rows(named=True):
        series = ticks[row["currency"]]
        spot = [p for ts, p in series if ts <= row["snapshot_ts"]][-1]  # the index as of the snapshot
        assert row["spot"] == spot
        end = row["horizon_end_ts"]
        window = [(ts, p) for ts, p in series if end - timedelta(hours=1) <= ts <= end and ts > row["snapshot_ts"]]
        if not window:
            assert row["status"] == "no_price" and row["realised_log_move"] is None
            continue
        ts, price = window[-1]
        assert row["status"] == "graded" and row["realised_ts"] == ts
        assert row["realised_log_move"] == pytest.approx(math.log(price / spot), abs=1e-15)
        checked += 1
    assert checked >= 8  # several snapshots of both currencies are graded over these days
    assert set(g.filter(pl.col("status") == "graded")["currency"]) == {"BTC", "ETH"}


def test_grades_are_stored_once_per_grain_and_readable_through_the_view(graded):
    data, _, result = graded
    keys = ["currency", "snapshot_ts", "model", "horizon"]
    assert result.grades.select(keys).is_unique().all()
    assert set(result.grades["model"]) == {"naive", "customer_long"}
    assert set(result.grades["horizon"]) == {"1h", "24h", "next_expiry"}
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        n, graded_n = con.execute(
            "select count(*), count(*) filter (where status = 'graded') from forecast_grades"
        ).fetchone()
    assert (n, graded_n) == (result.grades.height, result.grades.filter(pl.col("status") == "graded").height)


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*.parquet"))}


def test_a_rerun_forecasts_nothing_again_and_leaves_the_same_lake(graded):
    data, tardis, _ = graded
    before = _tree(data / "lake")
    grades_before = pl.read_parquet(lake.data_files(data, "forecast_grades"))
    again = grade_cycle(data, currencies=("BTC", "ETH"), fit_until=FIT_UNTIL, tardis_dir=tardis, report=False)
    assert again.computed_forecasts == 0
    assert _tree(data / "lake") == before
    assert pl.read_parquet(lake.data_files(data, "forecast_grades")).equals(grades_before)


def _shuffle_after(src: Path, dest: Path, cut: datetime) -> None:
    """Copy derivative_ticker files with every index_price recorded after ``cut`` permuted among those rows."""
    rng = np.random.default_rng(7)
    dest.mkdir(parents=True)
    for path in sorted(src.iterdir()):
        with gzip.open(path, "rt", newline="") as fh:
            rows = list(csv.DictReader(fh))
        late = [i for i, r in enumerate(rows) if _ms(r["timestamp"]) > cut]
        prices = [rows[i]["index_price"] for i in late]
        for i, j in zip(late, rng.permutation(len(late)), strict=True):
            rows[i]["index_price"] = prices[j]
        with gzip.open(dest / path.name, "wt", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def test_no_look_ahead_truncating_and_shuffling_after_t_changes_nothing_that_ended_before_t(graded, tmp_path):
    data, tardis, result = graded
    cut_data = tmp_path / "data"
    shutil.copytree(data / "lake" / "option_snapshots", cut_data / "lake" / "option_snapshots")
    for path in lake.data_files(cut_data, "option_snapshots"):  # truncate: snapshots after t are gone
        if pl.read_parquet(path, columns=["snapshot_ts"])["snapshot_ts"].max() > CUT:
            path.unlink()
    cut_tardis = tmp_path / "tardis"
    _shuffle_after(tardis / "derivative_ticker", cut_tardis / "derivative_ticker", CUT)
    # BTC only, to halve the forecasts this test recomputes; the full run graded both currencies together
    cut = grade_cycle(cut_data, currencies=("BTC",), fit_until=FIT_UNTIL, tardis_dir=cut_tardis, report=False)
    kept = pl.read_parquet(lake.data_files(cut_data, "option_snapshots"), columns=["currency", "snapshot_ts"])
    kept = kept.filter(pl.col("currency") == "BTC")["snapshot_ts"].unique()
    assert cut.computed_forecasts == kept.len() and kept.max() <= CUT  # it really saw less data

    def before_t(frame):
        frame = frame.filter((pl.col("currency") == "BTC") & (pl.col("horizon_end_ts") <= CUT))
        return frame.sort("currency", "snapshot_ts", "model", "horizon")

    full, truncated = before_t(result.grades), before_t(cut.grades)
    assert full.height >= 40 and full.filter(pl.col("status") == "graded").height >= 8
    assert truncated.equals(full)  # every column of every grade, bit for bit
    fitted = ["currency", "model", "horizon", "n_fit", "gex_threshold_coins", "k_all", "k_high", "k_low", "n_high"]
    oos_full = out_of_sample(result.grades.filter(pl.col("currency") == "BTC"), FIT_UNTIL, min_fit=2)
    oos_cut = out_of_sample(cut.grades, FIT_UNTIL, min_fit=2)
    assert oos_full.height >= 2  # naive and customer_long at 24 h
    assert (
        oos_cut.select(fitted)
        .sort("currency", "model", "horizon")
        .equals(oos_full.select(fitted).sort("currency", "model", "horizon"))
    )


def test_report_has_every_file_the_numbers_and_says_which_data_it_used(graded):
    data, _, result = graded
    folder = result.report_dir
    assert folder == data / "exports" / "grades"
    names = {p.name for p in folder.iterdir()}
    for stem in ("forecast_grades", "ratio_by_regime", "calibration", "pit_histogram", "regression", "counts"):
        assert {f"{stem}.parquet", f"{stem}.csv"} <= names
    assert {"index.html", "ratio_by_regime.png", "pit.png", "out_of_sample.png", "summary.txt"} <= names
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".grades.")]  # no build folder left
    page = (folder / "index.html").read_text()
    assert "derivative_ticker" in page and "never intraday paths interpolated" in page
    words = (folder / "summary.txt").read_text()
    ratios = pl.read_parquet(folder / "ratio_by_regime.parquet")
    btc = ratios.filter((pl.col("currency") == "BTC") & (pl.col("model") == "naive") & (pl.col("horizon") == "24h"))
    assert f"= {btc.filter(pl.col('regime') == 'all')['ratio'][0]:.2f} (too few days for an interval)" in words
    assert pl.read_parquet(folder / "forecast_grades.parquet").equals(result.grades)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on PATH (CI installs the Debian package)")
def test_report_renders_in_headless_chromium(graded, tmp_path):
    from matplotlib import image

    shot = tmp_path / "grades.png"
    cmd = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,2000",
        (graded[2].report_dir / "index.html").as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    pixels = image.imread(shot)
    assert pixels.shape[:2] == (2000, 1400)
    assert len(np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200  # charts drawn


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["grade", "--fit-until", "30/04/2026"], "--fit-until must be YYYY-MM-DD"),
        (["grade", "--since", "2030-01-01"], "no BTC, ETH option snapshots between 2030-01-01"),
        (["grade", "--tardis", "/nonexistent/tardis"], "--tardis /nonexistent/tardis: not a directory"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(graded, capsys, argv, needle):
    data = graded[0]
    before = _tree(data / "lake")
    assert main([*argv, "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert _tree(data / "lake") == before


def test_grading_an_empty_data_dir_is_one_line(tmp_path, capsys):
    assert main(["grade", "--data-dir", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no option snapshots" in err, err
