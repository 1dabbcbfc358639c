"""Validation checks Great Expectations cannot make on a pandas batch (docs/data-quality.md).

- **Finite numbers.** pandas stores a missing float as NaN, so GE reads NaN as null (a nullable column
  passes it) and a between-check with an open side lets inf through. :func:`non_finite_failures` checks
  every float column in polars, where NaN, +-inf and null are distinct.
- **Coverage.** A chain far smaller than its neighbours in time or than the exchange's listing is refused
  (:func:`short_chains`); the neighbours already published are read from the lake's Parquet footers
  (:func:`published_chain_sizes`).

Pure polars apart from :func:`published_chain_sizes`; :mod:`pipelines.validation.quality` puts the failure lines
into its report.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import polars as pl

from pipelines.sources.replay import parse_stamp
from pipelines.store.lake_tables import Table
from transforms.frames.schemas import UTC_TS
from warehouse import lake, raw

PARTIAL = 20  # failing rows looked at per check
EXAMPLES = 3  # row ids quoted in a failure line

# Coverage: a chain with fewer options than COVERAGE_SHARE of the median of its COVERAGE_NEIGHBOURS nearest
# neighbours (other chains of that currency, published or in the same batch), or of the options the exchange
# lists at that time, is refused. Recorded chains never fall below 0.88 of the median of the 5 before them.
COVERAGE_SHARE = 0.5
COVERAGE_NEIGHBOURS = 5
COVERAGE_LABEL = f"options >= {COVERAGE_SHARE:.0%} of the neighbours' median and of the listing"


def non_finite_failures(frame: pl.DataFrame, id_column: str | None, skip: tuple[str, ...] = ()) -> list[str]:
    """One line per float column holding NaN or +-inf: GE reads NaN as null (a nullable column would pass)
    and a between-check with one open side lets inf through, so finiteness is checked here, in polars."""
    floats = [c for c, t in frame.schema.items() if t in (pl.Float32, pl.Float64) and c not in skip]
    if not floats or frame.is_empty():
        return []
    bad = frame.select(pl.col(c).is_nan() | pl.col(c).is_infinite() for c in floats)
    lines = []
    for col in floats:
        mask = bad[col].fill_null(False)
        n = int(mask.sum())
        if n:
            line = f"{col} finite (not NaN/inf): {n} row{'s fail' if n != 1 else ' fails'}"
            if id_column:
                ids = list(dict.fromkeys(frame.filter(mask)[id_column].head(PARTIAL).to_list()))
                more = ", ..." if len(ids) > EXAMPLES or n > len(ids) else ""
                line += " (" + ", ".join(str(i) for i in ids[:EXAMPLES]) + more + ")"
            lines.append(line)
    return lines


CHAIN_SIZE = {"currency": pl.String, "snapshot_ts": UTC_TS, "options": pl.Int64}


def chain_sizes(frame: pl.DataFrame) -> pl.DataFrame:
    """(currency, snapshot_ts, options): one row per chain of an OPTION_SNAPSHOT frame."""
    if frame.schema.get("currency") != pl.String or frame.schema.get("snapshot_ts") != UTC_TS:
        return pl.DataFrame(schema=CHAIN_SIZE)
    return (
        frame.group_by("currency", "snapshot_ts")
        .agg(pl.len().alias("options"))
        .drop_nulls()
        .cast(CHAIN_SIZE)
        .sort("currency", "snapshot_ts")
    )


def short_chains(
    chains: pl.DataFrame, neighbours: pl.DataFrame | None = None, listed: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The chains with fewer options than COVERAGE_SHARE of their neighbours' median or of their listing.

    All frames are (currency, snapshot_ts, options). A chain's neighbours are the COVERAGE_NEIGHBOURS rows of
    that currency nearest to it in time, before or after, among the other ``chains`` and ``neighbours``;
    its listing is the ``listed`` row of the same (currency, snapshot_ts). With neither, a chain passes.
    Returns (currency, snapshot_ts, options, reference, neighbours, listed): reference is the neighbours'
    median (null without neighbours).
    """
    keys = ["currency", "snapshot_ts", "options"]
    own = chains.select(keys).cast(CHAIN_SIZE).with_columns(pl.lit(True).alias("_own"))
    others = neighbours if neighbours is not None else pl.DataFrame(schema=CHAIN_SIZE)
    rows = pl.concat([own, others.select(keys).cast(CHAIN_SIZE).with_columns(pl.lit(False).alias("_own"))])
    rows = rows.sort("currency", "snapshot_ts", "_own")
    # the k nearest rows in time are among the k before and the k after in sorted order
    long = pl.concat(
        rows.select(
            *keys,
            "_own",
            (pl.col("snapshot_ts").shift(offset).over("currency") - pl.col("snapshot_ts")).abs().alias("_dist"),
            pl.col("options").shift(offset).over("currency").alias("_n"),
        )
        for offset in range(-COVERAGE_NEIGHBOURS, COVERAGE_NEIGHBOURS + 1)
        if offset
    ).filter(pl.col("_own") & pl.col("_n").is_not_null())
    nearest = long.sort("_dist", maintain_order=True).group_by(keys, maintain_order=True).head(COVERAGE_NEIGHBOURS)
    reference = nearest.group_by(keys).agg(
        pl.col("_n").median().alias("reference"), pl.len().cast(pl.Int64).alias("neighbours")
    )
    listing = (listed if listed is not None else pl.DataFrame(schema=CHAIN_SIZE)).select(keys).cast(CHAIN_SIZE)
    judged = (
        own.drop("_own")
        .join(reference, on=keys, how="left")
        .join(listing.rename({"options": "listed"}), on=["currency", "snapshot_ts"], how="left")
    )
    short = (pl.col("options") < COVERAGE_SHARE * pl.col("reference")).fill_null(False) | (
        pl.col("options") < COVERAGE_SHARE * pl.col("listed")
    ).fill_null(False)
    return judged.filter(short).with_columns(pl.col("neighbours").fill_null(0)).sort("currency", "snapshot_ts")


def coverage_failures(
    chains: pl.DataFrame, neighbours: pl.DataFrame | None = None, listed: pl.DataFrame | None = None
) -> list[str]:
    """The failure line of :func:`short_chains` (none when every chain passes)."""
    short = short_chains(chains, neighbours, listed)
    if short.is_empty():
        return []
    examples = []
    for cur, ts, k, ref, m, n_listed in short.head(EXAMPLES).iter_rows():
        against = []
        if ref is not None:
            against.append(f"median {ref:g} of {m} neighbour{'s' if m != 1 else ''}")
        if n_listed is not None:
            against.append(f"{n_listed} listed")
        when = f"{ts:%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z"
        examples.append(f"{cur} {when}: {k} option{'s' if k != 1 else ''} vs {' and '.join(against)}")
    n, more = short.height, ", ..." if short.height > EXAMPLES else ""
    return [f"{COVERAGE_LABEL}: {n} chain{'s fail' if n != 1 else ' fails'} ({', '.join(examples)}{more})"]


def published_chain_sizes(data_dir: Path, chains: pl.DataFrame, k: int = COVERAGE_NEIGHBOURS) -> pl.DataFrame:
    """(currency, snapshot_ts, options) of the published option_snapshots nearest in time (up to ``k`` before and
    ``k`` after) to each of ``chains``; a chain's own stamp (a re-run replacing it) is left out. Reads file
    footers only; an unreadable file is no reference and is skipped."""
    rows = []
    for (currency,), part in chains.group_by("currency"):
        paths = lake.currency_files(data_dir, Table.OPTION_SNAPSHOTS, currency)
        stamps = [p.stem for p in paths]  # snapshot stamps, in time order
        own = {raw.stamp_of(ts) for ts in part["snapshot_ts"]}
        wanted: set[int] = set()
        for stamp in sorted(own):
            at = bisect.bisect_left(stamps, stamp)
            wanted.update(i for i in range(max(0, at - k), min(len(stamps), at + k + 1)) if stamps[i] not in own)
        for i in sorted(wanted):
            try:
                rows.append((currency, parse_stamp(stamps[i]), lake.row_count(paths[i])))
            except ValueError:  # not a snapshot file name
                continue
            except (OSError, pl.exceptions.PolarsError):  # damaged: no reference (`gexflow status` is its judge)
                continue
    return pl.DataFrame(rows, schema=CHAIN_SIZE, orient="row")
