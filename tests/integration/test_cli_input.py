"""Bad command-line input: one line on stderr, exit 2, nothing created. Cases an adversarial pass found."""

from __future__ import annotations

import pytest

from pipelines.cli.app import main


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("sample")
    assert main(["run", "--source", "sample", "--data-dir", str(data)]) == 0
    return data


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["profile", "--every", "0"], ["--every", "positive whole number"]),
        (["profile", "--every", "-3"], ["--every", "positive whole number"]),
        (["profile", "--every", "abc"], ["--every", "positive whole number"]),
        (["profile", "--vol", "sticky"], ["--vol", "invalid choice"]),
        (["levels", "--model", "bogus"], ["unknown model 'bogus'", "naive, customer_long, taker_flow, custom"]),
        (["levels", "--model", "NAIVE"], ["unknown model 'NAIVE'"]),
        (["levels", "--format", "xml"], ["--format"]),
        (["levels", "--bogus-flag"], ["unrecognized arguments: --bogus-flag"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ],
)
def test_argument_errors_are_one_line(sample_dir, capsys, argv, needles):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--data-dir", str(sample_dir)])
    assert exit_.value.code == 2
    _one_line_error(capsys, "gexflow", "error:", "--help", *needles)


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["levels", "--at", "9999-12-31T23:59:59-14:00"], ["--at"]),  # overflowed converting to UTC
        (["levels", "--at", "1900-01-01"], ["--at", "2000 and 2200"]),
        (["compute", "--until", "9999-12-31T23:59:59-05:00"], ["--until"]),
        (["forecast", "--date", "9999-12-31"], ["--date", "2000 and 2200"]),
        (["compute", "--since", "2026-08-01", "--until", "2026-01-01"], ["--since", "is after --until"]),
    ],
)
def test_out_of_range_and_inverted_times_are_one_line_config_errors(sample_dir, capsys, argv, needles):
    assert main([*argv, "--data-dir", str(sample_dir)]) == 2
    _one_line_error(capsys, *needles)


def test_an_empty_data_dir_is_refused_rather_than_meaning_the_current_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--source", "sample", "--data-dir", ""]) == 2
    _one_line_error(capsys, "--data-dir must not be empty")
    assert list(tmp_path.iterdir()) == []


def test_a_future_trades_since_creates_nothing(tmp_path, capsys):
    data = tmp_path / "data"
    argv = ["trades", "--trades-since", "2099-01-01", "--api-url", "http://127.0.0.1:9/api/v2", "--data-dir", str(data)]
    assert main(argv) == 2
    _one_line_error(capsys, "--trades-since", "in the future")
    assert not data.exists()


def test_a_book_of_absurd_size_is_refused_before_anything_is_computed(sample_dir, tmp_path, capsys):
    book = tmp_path / "book.csv"
    book.write_text("instrument_name,contracts\nBTC-14AUG26-60000-P,1e300\n")
    assert main(["compute", "--data-dir", str(sample_dir), "--book", str(book)]) == 2
    _one_line_error(capsys, "more than 1e+09 contracts")


def test_a_damaged_lake_file_is_a_one_line_storage_error(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["run", "--source", "sample", "--data-dir", str(data), "--currency", "BTC"]) == 0
    victim = sorted((data / "lake" / "option_snapshots").glob("currency=BTC/date=*/*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # cut in half, as a full disk would
    capsys.readouterr()
    assert main(["compute", "--data-dir", str(data), "--currency", "BTC"]) == 2
    _one_line_error(capsys, "Parquet file under the data dir is unreadable")


def test_a_damaged_warehouse_file_is_rebuilt_from_the_lake_not_reported_as_open_in_another_process(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["run", "--source", "sample", "--data-dir", str(data), "--currency", "BTC"]) == 0
    (data / "warehouse.duckdb").write_bytes(b"not a duckdb file" * 300)
    (data / "warehouse.catalog.json").unlink()  # the views must be rebuilt
    capsys.readouterr()
    assert main(["compute", "--data-dir", str(data), "--currency", "BTC"]) == 0  # it holds only views: rebuilt
    assert "another process" not in capsys.readouterr().err
    (data / "warehouse.duckdb").write_bytes(b"not a duckdb file" * 300)  # damaged again, catalog state intact
    assert main(["sql", "select count(*) from key_levels", "--data-dir", str(data), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "4"


def test_book_instruments_in_no_snapshot_are_reported(sample_dir, tmp_path, capsys):
    book = tmp_path / "book.csv"
    book.write_text("instrument_name,contracts\nBTC-14AUG26-60000-P,10\nBTC-1JAN99-1-C,5\n")
    assert main(["compute", "--data-dir", str(sample_dir), "--currency", "BTC", "--book", str(book)]) == 0
    _one_line_error(capsys, "warning: 1 of 2 book instrument(s)", "BTC-1JAN99-1-C")


def test_levels_takes_several_currencies_and_profile_refuses_them(sample_dir, capsys):
    """`--currency BTC --currency ETH` used to show ETH alone, silently."""
    assert (
        main(["levels", "--currency", "BTC", "--currency", "eth", "--format", "csv", "--data-dir", str(sample_dir)])
        == 0
    )
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert sorted({r.split(",")[0] for r in rows}) == ["BTC", "ETH"]
    assert main(["profile", "--currency", "BTC", "--currency", "ETH", "--data-dir", str(sample_dir)]) == 2
    _one_line_error(capsys, "profile shows one currency at a time, got BTC, ETH")
