"""What the validation gate costs per snapshot (docs/data-quality.md).

Run: ``python -m benchmarks.bench_validation [--repeats N]``. On the bundled real BTC chain (854 options)
it times, in one warm process (Great Expectations already imported and its suite built):

  finite      the polars check for NaN/inf in every float column
  coverage    chain sizes + the neighbour/listing comparison (pure polars)
  lake        the published neighbours' sizes read from a lake of 200 published snapshots (file footers)
  suite       the whole ``validate_option_snapshots`` (finite + GE suite + coverage)
  ingest      ``ingest.validate`` as a cycle calls it: instruments + option_snapshots + lake lookup
  day         one Tardis-style day validated as one frame (4 snapshots, as backfill's fast path does)

Medians of ``--repeats`` runs, wall and CPU milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import polars as pl


def median_ms(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds (CPU time is what a loaded shared machine does not inflate)."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def sample_batch():
    from pipelines.config import Settings
    from pipelines.jobs.ingest import PLAIN_STEPS

    settings = Settings(source="sample", currencies=("BTC",), data_dir=Path(tempfile.mkdtemp()))
    cycle = PLAIN_STEPS.open_cycles(settings, None)[-1]
    chain = PLAIN_STEPS.fetch_chain(cycle, "BTC", settings.data_dir)
    return PLAIN_STEPS.normalise(cycle, [chain])


def lake_of(batch, n: int) -> Path:
    """A data dir with ``n`` published hourly copies of the batch's chain before it."""
    from pipelines.jobs.ingest import stage
    from warehouse import files

    data_dir = Path(tempfile.mkdtemp())
    for i in range(1, n + 1):
        earlier = batch.snapshots.with_columns(pl.col("snapshot_ts") - timedelta(hours=i))
        copy = type(batch)(batch.cycle_stamp - timedelta(hours=i), batch.source, batch.instruments, earlier)
        files.commit(data_dir, stage(copy, data_dir))
    return data_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    from pipelines.jobs import ingest
    from pipelines.validation import polars_checks, quality

    batch = sample_batch()
    chain = batch.snapshots
    data_dir = lake_of(batch, 200)
    sizes = polars_checks.chain_sizes(chain)
    around, listed = ingest.coverage_references(batch, data_dir)
    day = pl.concat([chain.with_columns(pl.col("snapshot_ts") - timedelta(hours=6 * i)) for i in range(4)])
    quality.validate_option_snapshots(chain)  # import GE and build the suite once
    quality.validate_instruments(batch.instruments)
    rows = {
        "finite": lambda: polars_checks.non_finite_failures(chain, "instrument_name"),
        "coverage": lambda: polars_checks.short_chains(polars_checks.chain_sizes(chain), around, listed),
        "lake": lambda: polars_checks.published_chain_sizes(data_dir, sizes),
        "suite": lambda: quality.validate_option_snapshots(chain, neighbours=around, listed=listed),
        "ingest": lambda: ingest.validate(batch, data_dir, None, 0),
        "day": lambda: quality.validate_option_snapshots(day),
    }
    print(f"BTC chain of {chain.height} options; lake of 200 published snapshots; median of {args.repeats} runs")
    for name, fn in rows.items():
        wall, cpu = median_ms(fn, args.repeats)
        print(f"  {name:<9} {wall:8.1f} ms wall {cpu:8.1f} ms cpu")


if __name__ == "__main__":
    main()
