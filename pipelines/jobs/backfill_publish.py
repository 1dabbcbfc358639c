"""What both readings of a Tardis backfill share to publish a day: the day's validation and the writer lock.

:func:`validate_batches` checks the day's snapshots as one frame and falls back to snapshot by snapshot
(quarantining the failing ones) only when that fails; :func:`waiting_writer_lock` waits for another writer
for up to the backfill's ``lock_wait_s``. Used by :func:`pipelines.jobs.backfill.backfill_day` (one batch per
timestamp) and :func:`pipelines.jobs.backfill_grid.publish_day` (the as-of grid).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.jobs import ingest
from pipelines.jobs.backfill_report import FailedSnapshot
from warehouse import files, raw


def validate_batches(batches: list[ingest.Batch], data_dir: Path, path: Path) -> list[FailedSnapshot]:
    """Validate every batch as :func:`pipelines.jobs.ingest.validate` does; failing ones are quarantined and returned.

    Fast path: the day's batches concatenated pass (every option_snapshots check is per row or keyed by
    (currency, snapshot_ts, instrument_name); the derived instruments repeat those columns, keyed per
    snapshot) -> all pass. Otherwise each batch goes through ``ingest.validate``.
    """
    from pipelines.validation import polars_checks, quality

    if not batches:
        return []
    if len(batches) > 1:
        day_snapshots = pl.concat([b.snapshots for b in batches])
        day_instruments = pl.concat([b.instruments for b in batches]).unique(
            ["currency", "instrument_name"], keep="last", maintain_order=True
        )
        # coverage: each chain against the published chains nearest in time (the day's own are in the frame)
        published = polars_checks.published_chain_sizes(data_dir, quality.chain_sizes(day_snapshots))
        if (
            quality.validate_option_snapshots(day_snapshots, neighbours=published).success
            and quality.validate_instruments(day_instruments).success
        ):
            return []
    failed = []
    for batch in batches:
        try:
            ingest.validate(batch, data_dir, None, 0, neighbours=batches)
        except ingest.QualityError as exc:
            stamp = raw.stamp_of(batch.cycle_stamp)
            folder = data_dir / "quarantine" / f"date={batch.cycle_stamp:%Y-%m-%d}" / stamp
            currencies = tuple(sorted(batch.snapshots["currency"].unique().to_list()))
            failed.append(FailedSnapshot(batch.cycle_stamp, currencies, path, " ".join(str(exc).split()), folder))
    return failed


def waiting_writer_lock(data_dir: Path, wait_s: float):
    """:func:`warehouse.files.writer_lock` waiting up to ``wait_s`` for another writer; an unwritable data dir
    fails at once instead of after ``wait_s``."""
    files.check_writable(data_dir)
    return files.writer_lock(data_dir, wait_s)
