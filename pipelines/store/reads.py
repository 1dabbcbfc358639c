"""Reads of lake tables for the jobs, the CLI and the publishers: one place that knows which table holds what."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from warehouse import lake


def load_chain(
    data_dir: Path, currencies, since: datetime | None = None, until: datetime | None = None
) -> pl.DataFrame:
    """Stored option snapshots of ``currencies`` with ``since <= snapshot_ts <= until`` (either open)."""
    scan = lake.scan(data_dir, "option_snapshots")
    if scan is None:
        return pl.DataFrame()
    cond = pl.col("currency").is_in(list(currencies))
    if since is not None:
        cond &= pl.col("snapshot_ts") >= since
    if until is not None:
        cond &= pl.col("snapshot_ts") <= until
    return scan.filter(cond).collect()
