"""Chain snapshots as of a UTC time grid from tick-level Tardis rows (DESIGN section 2). Pure.

A chain snapshot at grid time T is, per option, its last update with exchange ``timestamp`` <= T,
left out when expired at T (``expiration`` <= T) or stale (last update older than the staleness
window); spot is the ``<C>-PERPETUAL`` index as of T, usable when no older than the index window.

Rows arrive in *buckets*: a row stamped t belongs to the bucket of the first grid time >= t
(:func:`bucket_expr`), and a reader keeps, per (bucket, option), only the row with the largest
timestamp. The chain as of T is then the latest row per option over every bucket <= T. Taking "the
latest row per option" is idempotent and order-free (:func:`latest`), so buckets read from several
day files -- a day's own, the previous day's end state, the next file's rows stamped before
midnight -- merge without double counting, and a verbatim duplicate row changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from transforms.frames.tardis import option_snapshot_frame

US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S

# Per option, its last update: the columns a snapshot needs.
OPTION_STATE = {
    "currency": pl.String,
    "symbol": pl.String,
    "timestamp": pl.Int64,
    "type": pl.String,
    "strike_price": pl.Float64,
    "expiration": pl.Int64,
    "open_interest": pl.Float64,
    "bid_price": pl.Float64,
    "ask_price": pl.Float64,
    "mark_price": pl.Float64,
    "mark_iv": pl.Float64,
    "underlying_index": pl.String,
    "underlying_price": pl.Float64,
}
# Per currency, its last ``<C>-PERPETUAL`` index price.
INDEX_STATE = {"currency": pl.String, "index_ts_us": pl.Int64, "index_price": pl.Float64}
BUCKET = {"bucket_us": pl.Int64}


def bucket_expr(ts: pl.Expr, every_us: int) -> pl.Expr:
    """The first grid time >= ``ts`` (microseconds; the grid is the multiples of ``every_us``)."""
    return ((ts + (every_us - 1)) // every_us) * every_us


def grid_times(day_start_us: int, every_us: int) -> list[int]:
    """The grid times of one UTC day: multiples of ``every_us`` counted from its 00:00."""
    return list(range(day_start_us, day_start_us + US_PER_DAY, every_us))


def latest(frames: list[pl.DataFrame], key: str, ts: str, schema: dict) -> pl.DataFrame:
    """Per ``key`` the row with the largest ``ts`` over ``frames`` (of equal timestamps the later frame
    wins), sorted by key: the order-free, idempotent merge of option or index states."""
    parts = [f.select(list(schema)) for f in frames if f.height]
    if not parts:
        return pl.DataFrame(schema=schema)
    both = pl.concat(parts).with_row_index("__n")
    return both.sort(ts, "__n").unique(key, keep="last").sort(key).drop("__n")


@dataclass(frozen=True)
class Carry:
    """State carried from one day to the next: per option and per currency the latest row so far."""

    options: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=OPTION_STATE))
    index: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=INDEX_STATE))


@dataclass(frozen=True)
class GridPoint:
    """One (currency, grid time): the chain as of it (empty when nothing is fresh) and what was left out."""

    currency: str
    snapshot_us: int
    options: pl.DataFrame  # OPTION_STATE rows, fresh and unexpired
    stale: int  # unexpired options whose last update is older than the staleness window
    index_price: float | None  # None when the index is missing or older than the index window
    index_age_us: int | None  # age of the latest index row at T (None: no index row yet)


def _upto(frame: pl.DataFrame, lo: int | None, hi: int) -> pl.DataFrame:
    cond = pl.col("bucket_us") <= hi
    if lo is not None:
        cond &= pl.col("bucket_us") > lo
    return frame.filter(cond)


def asof_day(
    carry: Carry,
    options: pl.DataFrame,
    index: pl.DataFrame,
    grid: list[int],
    currencies: tuple[str, ...],
    max_staleness_us: int,
    index_window_us: dict[str, int],
) -> tuple[list[GridPoint], Carry]:
    """The chain of each currency at each grid time, and the carry after the day.

    ``options``/``index`` are bucketed rows (``bucket_us`` + OPTION_STATE / INDEX_STATE) of the day's own
    file and of the next file's rows stamped before the day ends. The returned carry holds every row
    seen (minus options expired by the day's end), so the next day starts from it.
    """
    points: list[GridPoint] = []
    opts, idx, lo = carry.options, carry.index, None
    for t in grid:
        opts = latest([opts, _upto(options, lo, t)], "symbol", "timestamp", OPTION_STATE)
        idx = latest([idx, _upto(index, lo, t)], "currency", "index_ts_us", INDEX_STATE)
        lo = t
        for currency in currencies:
            points.append(_point(opts, idx, currency, t, max_staleness_us, index_window_us.get(currency, 0)))
    end = grid[0] + US_PER_DAY
    opts = latest([opts, options], "symbol", "timestamp", OPTION_STATE).filter(pl.col("expiration") > end)
    idx = latest([idx, index], "currency", "index_ts_us", INDEX_STATE)
    return points, Carry(opts, idx)


def _point(
    opts: pl.DataFrame, idx: pl.DataFrame, currency: str, t: int, max_staleness_us: int, index_window_us: int
) -> GridPoint:
    live = opts.filter((pl.col("currency") == currency) & (pl.col("expiration") > t) & (pl.col("timestamp") <= t))
    fresh = live.filter(pl.col("timestamp") >= t - max_staleness_us)
    row = idx.filter((pl.col("currency") == currency) & (pl.col("index_ts_us") <= t))
    age = t - int(row["index_ts_us"][0]) if row.height else None
    price = float(row["index_price"][0]) if row.height and age <= index_window_us else None
    return GridPoint(currency, t, fresh, live.height - fresh.height, price, age)


def snapshot_frame(point: GridPoint, source: str = "tardis") -> pl.DataFrame:
    """OPTION_SNAPSHOT rows of a grid point with an index price: ``snapshot_ts`` = the grid time, time
    to expiry measured from it (the chain's own update times are not kept)."""
    chain = point.options.with_columns(pl.lit(point.snapshot_us, pl.Int64).alias("timestamp"))
    index = pl.DataFrame(
        {"currency": [point.currency], "timestamp": [point.snapshot_us], "index_price": [point.index_price]},
        schema={"currency": pl.String, "timestamp": pl.Int64, "index_price": pl.Float64},
    )
    return option_snapshot_frame(chain, index, source)


__all__ = [
    "BUCKET",
    "INDEX_STATE",
    "OPTION_STATE",
    "US_PER_DAY",
    "US_PER_S",
    "Carry",
    "GridPoint",
    "asof_day",
    "bucket_expr",
    "grid_times",
    "latest",
    "snapshot_frame",
]
