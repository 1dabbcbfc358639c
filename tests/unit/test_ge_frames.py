"""The frame Great Expectations validates: sent as Arrow IPC (pipelines.validation.ge_worker.frame_ipc) and read
back without polars (pipelines.validation.ge_run.pandas_frame), it is exactly the pandas frame polars' own
``to_pandas`` gives, which GE validated before: same dtypes, same values, nulls, NaN and infinities included."""

from __future__ import annotations

import sys

import pandas as pd
import polars as pl
import pytest

from pipelines.validation.ge_run import pandas_frame
from pipelines.validation.ge_worker import frame_ipc
from tests.unit.test_quality import btc_chain, recorded, recorded_trades
from transforms.frames.schemas import INSTRUMENT, OPTION_SNAPSHOT, TRADE, empty


def _with_holes(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with a null in every column on row 1, and NaN, +inf and -inf in every float column on rows 2-4."""
    row = pl.int_range(pl.len())
    holes = []
    for name, dtype in frame.schema.items():
        column = pl.when(row == 1).then(None).otherwise(pl.col(name))
        if dtype.is_float():
            for i, value in ((2, float("nan")), (3, float("inf")), (4, float("-inf"))):
                column = pl.when(row == i).then(pl.lit(value, dtype)).otherwise(column)
        holes.append(column.alias(name))
    return frame.with_columns(holes)


FRAMES = {
    "option_snapshots": lambda: _with_holes(btc_chain()),
    "instruments": lambda: _with_holes(recorded("ETH", "20260105T153329Z")[0]),
    "trades": lambda: _with_holes(recorded_trades()),
    "empty option_snapshots": lambda: empty(OPTION_SNAPSHOT),
    "empty instruments": lambda: empty(INSTRUMENT),
    "empty trades": lambda: empty(TRADE),
}


@pytest.mark.parametrize("name", FRAMES)
def test_the_frame_ge_reads_is_the_one_polars_to_pandas_gives(name):
    frame = FRAMES[name]()
    expected = frame.to_pandas()
    got = pandas_frame(frame_ipc(frame))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.dtypes) == list(expected.dtypes)
    if frame.height:
        assert got.isna().iloc[1].all()  # the nulls stay missing
        floats = [n for n, d in frame.schema.items() if d.is_float()]
        assert got[floats].iloc[3].tolist() == [float("inf")] * len(floats)


def test_reading_the_frame_back_does_not_import_polars():
    import subprocess

    code = (
        "import sys; from pipelines.validation.ge_run import pandas_frame; "
        "frame = pandas_frame(sys.stdin.buffer.read()); "
        "print(frame.shape, 'polars' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=frame_ipc(btc_chain()), capture_output=True, check=True
    ).stdout.decode()
    assert out.split() == [f"({btc_chain().height},", f"{btc_chain().width})", "False"]
