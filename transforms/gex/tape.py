"""A coin's trade tape as the taker_flow model reads it (moved here from ``pipelines.jobs.compute``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl


@dataclass(frozen=True)
class Tape:
    """Every stored trade of one coin's options and where the tapes that hold them start."""

    trades: pl.DataFrame  # the coin's own tape plus its linear options' trades from the USDC/USDT tapes
    start: datetime | None  # the first trades run's window start of the coin's own tape (inverse options)
    linear_start: datetime | None  # the same for the USDC/USDT tape (the later of the two if both exist)
