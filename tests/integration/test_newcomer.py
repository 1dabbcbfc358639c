"""The rough edges a new user found (issue 13's list), each pinned by a test that failed before its fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import polars as pl
import pytest

from pipelines.cli.app import main
from pipelines.publishing import charts
from pipelines.publishing.tables import render

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("sample")
    assert main(["run", "--source", "sample", "--data-dir", str(data)]) == 0
    return data


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


# ---------------------------------------------------------------- currencies


def test_levels_takes_a_comma_list_of_currencies(sample_dir, capsys):
    capsys.readouterr()
    assert main(["levels", "--currency", "BTC,ETH", "--data-dir", str(sample_dir), "--format", "csv"]) == 0
    rows = pl.read_csv(capsys.readouterr().out.encode())
    assert sorted(rows["currency"].unique()) == ["BTC", "ETH"]


def test_levels_and_profile_follow_gexflow_currencies_without_a_currency_flag(sample_dir, capsys, monkeypatch):
    monkeypatch.setenv("GEXFLOW_CURRENCIES", "ETH")
    capsys.readouterr()
    assert main(["levels", "--data-dir", str(sample_dir), "--format", "csv"]) == 0
    assert pl.read_csv(capsys.readouterr().out.encode())["currency"].unique().to_list() == ["ETH"]
    assert main(["profile", "--data-dir", str(sample_dir), "--format", "csv"]) == 0
    assert pl.read_csv(capsys.readouterr().out.encode())["currency"].unique().to_list() == ["ETH"]


def test_levels_at_a_time_before_the_first_snapshot_says_which_snapshots_exist(sample_dir, capsys):
    assert main(["levels", "--currency", "BTC", "--at", "2025-01-01", "--data-dir", str(sample_dir)]) == 2
    err = _error(capsys)
    assert "2 snapshot(s) stored, from 2026-01-05T15:33:29Z to 2026-07-31T11:33:22Z" in err, err


# ---------------------------------------------------------------- messages that misled


def test_a_zero_horizon_is_refused_without_claiming_zero_is_allowed(sample_dir, capsys):
    assert main(["forecast", "--horizon", "0", "--data-dir", str(sample_dir)]) == 2
    assert "more than 0 and at most 2160 hours" in _error(capsys)


def test_an_impossible_date_is_called_that_not_a_format_error(sample_dir, capsys):
    assert main(["forecast", "--date", "2026-02-30", "--data-dir", str(sample_dir)]) == 2
    err = _error(capsys)
    assert "2026-02-30 is not a calendar date" in err and "YYYY-MM-DD" not in err, err


def test_a_data_dir_that_is_a_file_is_named_as_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["ingest", "--source", "sample", "--data-dir", str(afile)]) == 2
    assert f"--data-dir {afile} is a file, not a directory" in _error(capsys)


def test_forecast_without_a_snapshot_on_the_day_suggests_the_last_day_with_data(sample_dir, capsys):
    assert main(["forecast", "--date", "2026-08-15", "--data-dir", str(sample_dir)]) == 2
    assert "try --date 2026-07-31" in _error(capsys)


# ---------------------------------------------------------------- the command line as a Unix tool


def test_a_closed_pipe_ends_quietly(sample_dir):
    cmd = [sys.executable, "-m", "pipelines.cli", "sql", "select * from range(200000)", "--data-dir", str(sample_dir)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == "", err


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert re.fullmatch(r"gexflow \S+\n", capsys.readouterr().out)


# ---------------------------------------------------------------- plots, params, books


@pytest.mark.parametrize(("name", "magic"), [("p.svg", b"<?xml"), ("p.pdf", b"%PDF"), ("p.jpg", b"\xff\xd8\xff")])
def test_profile_plot_writes_the_format_its_extension_names(sample_dir, tmp_path, name, magic):
    out = tmp_path / name
    assert main(["profile", "--currency", "BTC", "--data-dir", str(sample_dir), "--plot", str(out)]) == 0
    assert out.read_bytes().startswith(magic)


def test_profile_plot_with_an_unknown_extension_is_refused_before_anything_is_written(sample_dir, tmp_path, capsys):
    out = tmp_path / "p.bmpx"
    assert main(["profile", "--currency", "BTC", "--data-dir", str(sample_dir), "--plot", str(out)]) == 2
    assert "unknown chart format 'bmpx'" in _error(capsys)
    assert not out.exists()


def test_a_repeated_sql_param_is_refused(sample_dir, capsys):
    argv = ["sql", "select $c as c", "--param", "c=BTC", "--param", "c=ETH", "--data-dir", str(sample_dir)]
    assert main(argv) == 2
    assert "--param c is given twice" in _error(capsys)


def test_a_book_with_padded_and_repeated_names_is_normalised_out_loud(sample_dir, tmp_path, capsys):
    stored = [p for p in (sample_dir / "lake" / "option_snapshots").rglob("*.parquet") if p.name != "_empty.parquet"]
    name = pl.read_parquet(stored[0])["instrument_name"][0]
    book = tmp_path / "book.csv"
    book.write_text(f"instrument_name,contracts\n {name} ,5\n{name},2\n")
    assert main(["compute", "--data-dir", str(sample_dir), "--book", str(book)]) == 0
    err = capsys.readouterr().err
    assert "surrounding spaces, removed" in err and "listed more than once; their contracts were summed" in err, err
    positions = pl.read_parquet(list((sample_dir / "lake" / "dealer_positions").rglob("*.parquet")))
    custom = positions.filter(pl.col("model") == "custom", pl.col("instrument_name") == name)
    assert custom.height and set(custom["dealer_contracts"]) == {7.0}


def test_a_book_with_a_header_only_is_refused(sample_dir, tmp_path, capsys):
    book = tmp_path / "empty.csv"
    book.write_text("instrument_name,contracts\n")
    assert main(["compute", "--data-dir", str(sample_dir), "--book", str(book)]) == 2
    assert "dealer book has no rows" in _error(capsys)


# ---------------------------------------------------------------- numbers and widths


def test_numbers_in_a_column_share_one_format():
    text = render(["flow"], [(-2.0,), (5.3,), (441.5,)])
    assert text.splitlines()[2:5] == [" -2.0", "  5.3", "441.5"]
    assert render(["wall"], [(70000.0,), (60000.0,)]).splitlines()[2:4] == ["70,000", "60,000"]


def test_status_fits_100_columns_and_wide_keeps_one_row_per_currency(sample_dir, capsys):
    capsys.readouterr()
    assert main(["status", "--data-dir", str(sample_dir)]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 100
    assert main(["status", "--wide", "--data-dir", str(sample_dir)]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:2] == ["currency", "snapshots"]


# ---------------------------------------------------------------- charts and the HTML page


def test_profile_chart_writes_key_levels_as_numbers_separates_thousands_and_names_the_convention(sample_dir, tmp_path):
    out = tmp_path / "profile.svg"
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # keep text as text, to read it back
        args = ["profile", "--currency", "BTC", "--data-dir", str(sample_dir), "--plot", str(out)]
        assert main([*args, "--vol", "sticky-moneyness"]) == 0
    svg = out.read_text()
    for text in ("zero gamma 62,995", "call wall 70,000", "put wall 60,000", "spot 63,803", "sticky-moneyness vol"):
        assert text in svg, text
    assert re.search(r">-?\d{1,3},\d{3}<", svg.replace("\u2212", "-")), "no tick label with a thousands separator"


def test_every_chart_axis_separates_thousands():
    fig = charts._figure(4, 3)
    ax = fig.subplots()
    charts._thousands(ax)
    assert ax.yaxis.get_major_formatter()(-60000.0, 0) == "-60,000"
    assert ax.xaxis.get_major_formatter()(1250.5, 0) == "1,250.5"


def test_the_forecast_page_explains_why_coins_and_usd_can_disagree_in_sign(sample_dir, capsys):
    assert main(["forecast", "--date", "2026-07-31", "--data-dir", str(sample_dir)]) == 0
    page = (sample_dir / "exports" / "flow_forecast" / "date=2026-07-31" / "index.html").read_text()
    assert "coins and in USD can have opposite signs" in page


# ---------------------------------------------------------------- the README tells the truth


def test_the_readme_quick_start_output_is_what_run_prints(tmp_path, capsys):
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```\n(currency  snapshot_ts.*?)```", readme, re.DOTALL)[1]
    capsys.readouterr()
    data = tmp_path / "data"
    assert main(["run", "--source", "sample", "--data-dir", str(data)]) == 0
    printed = capsys.readouterr().out
    timing = re.compile(r"\(\d+\.\d s\)")
    expected = timing.sub("(T s)", block.replace("data dir data", f"data dir {data}"))
    assert timing.sub("(T s)", printed) == expected
