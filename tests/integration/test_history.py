"""Key levels over time (issue 15): the key_levels_history view's 1 h / 24 h changes on hand-placed snapshots,
``gexflow history`` and its chart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines.cli.app import main
from pipelines.publishing.history import load_history
from pipelines.store.lake_tables import prepare_warehouse
from transforms.frames.schemas import KEY_LEVELS_STORED
from warehouse import files, lake

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
# (offset from T0, spot, zero gamma, call wall, put wall, total GEX): 1 h after T0 (2 min late), 6 h, 24 h (+10 min)
POINTS = [
    (timedelta(0), 60_000.0, 58_000.0, 65_000.0, 55_000.0, 2.0e8),
    (timedelta(hours=1, minutes=2), 60_500.0, 58_400.0, 65_000.0, 56_000.0, 1.5e8),
    (timedelta(hours=6), 59_000.0, None, 64_000.0, 55_000.0, -1.0e8),
    (timedelta(hours=24, minutes=10), 62_000.0, 60_000.0, 70_000.0, 60_000.0, 3.0e8),
]


def _levels(currency: str = "BTC", model: str = "naive") -> pl.DataFrame:
    rows = []
    for offset, spot, zero, call, put, gex in POINTS:
        row = dict.fromkeys(KEY_LEVELS_STORED)
        row.update(
            currency=currency,
            snapshot_ts=T0 + offset,
            model=model,
            spot=spot,
            zero_gamma=zero,
            zero_gamma_roots=[zero] if zero else [],
            call_wall=call,
            put_wall=put,
            total_gex_usd=gex,
        )
        rows.append(row)
    return pl.DataFrame(rows, schema=KEY_LEVELS_STORED, orient="row")


@pytest.fixture
def history_dir(tmp_path):
    frame = pl.concat([_levels(), _levels("ETH"), _levels(model="customer_long")])
    staged = []
    for (ts,), part in frame.partition_by("snapshot_ts", as_dict=True).items():
        staged += lake.stage_partitions(
            tmp_path, "key_levels", part, name=f"{ts:%Y%m%dT%H%M%S}", date_col="snapshot_ts"
        )
    files.commit(tmp_path, staged)
    prepare_warehouse(tmp_path)
    return tmp_path


def test_changes_compare_with_the_snapshot_closest_to_1h_and_24h_before(history_dir):
    h = load_history(history_dir, "BTC", "naive")
    assert h.height == 4
    assert h["snapshot_ts"].to_list() == [T0 + p[0] for p in POINTS]
    first, one_hour, six_hours, next_day = h.iter_rows(named=True)
    assert first["ts_1h_ago"] is None and first["spot_change_1h"] is None and first["ts_24h_ago"] is None
    assert one_hour["ts_1h_ago"] == T0  # 62 min before: within 1 h +- 15 min
    assert one_hour["spot_change_1h"] == 500.0 and one_hour["zero_gamma_change_1h"] == 400.0
    assert one_hour["put_wall_change_1h"] == 1_000.0 and one_hour["total_gex_change_1h"] == -0.5e8
    assert six_hours["ts_1h_ago"] is None  # 4 h 58 min after the previous one: no 1 h comparison
    assert six_hours["zero_gamma"] is None and six_hours["zero_gamma_pct_from_spot"] is None
    assert six_hours["is_long_gamma"] is False
    # 24 h 10 min after T0 and 23 h 8 min after the second (both within 24 h +- 6 h): the closer to 24 h wins
    assert next_day["ts_24h_ago"] == T0
    assert next_day["spot_change_24h"] == 2_000.0 and next_day["call_wall_change_24h"] == 5_000.0
    assert next_day["ts_1h_ago"] is None and one_hour["ts_24h_ago"] is None
    assert next_day["zero_gamma_pct_from_spot"] == pytest.approx((60_000 / 62_000 - 1) * 100, rel=1e-12)
    # a window selects; other currencies and models never leak in
    assert load_history(history_dir, "BTC", "naive", T0 + timedelta(hours=1), T0 + timedelta(hours=6)).height == 2
    assert load_history(history_dir, "ETH", "naive")["spot_change_24h"].to_list()[-1] == 2_000.0


def test_gexflow_history_prints_the_levels_and_draws_the_chart(history_dir, tmp_path, capsys):
    png = tmp_path / "history.png"
    args = ["history", "--currency", "btc", "--data-dir", str(history_dir), "--plot", str(png)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "zero_gamma" in out and "62,000" in out.replace("62000", "62,000") and f"chart written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["history", "--data-dir", str(history_dir), "--format", "json", "--model", "customer_long"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and {r["model"] for r in rows} == {"customer_long"}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--since", "2026-03-02", "--until", "2026-03-01"], "is after --until"),
        (["--since", "2027-01-01"], "no key levels for BTC model naive"),
        (["--plot", "x.gif"], "unknown chart format"),
        (["--model", "nope"], "unknown model"),
    ],
)
def test_bad_history_requests_are_one_line(history_dir, capsys, args, needle):
    try:
        code = main(["history", "--data-dir", str(history_dir), *args])
    except SystemExit as exc:  # argparse refusals exit from inside main
        code = exc.code
    err = capsys.readouterr().err
    assert code != 0 and needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_history_without_a_warehouse_is_one_line(tmp_path, capsys):
    assert main(["history", "--data-dir", str(tmp_path)]) != 0
    assert "no warehouse" in capsys.readouterr().err
