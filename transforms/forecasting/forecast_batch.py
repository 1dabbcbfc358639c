"""The forecast made AT each of many snapshots (t0 = snapshot_ts), summarised, in one batch.

Pure: frames in, frames out. For every (currency, snapshot_ts) of the chain the result equals

    forecast_summary(flow_forecast(snapshot, positions, t0=snapshot_ts, horizons_hours=...))

of ``transforms.forecasting.forecast`` (same grid, implied distribution, flow components and summary numbers, with
zero_gamma and the walls NULL), number for number: the arithmetic is that module's (``flow_components``,
``summary_numbers``, ``atm_vol_to``, ``lognormal_bin_weights``), only the bookkeeping is batched:

- greeks, the position join, spots, next expiries and the ATM term structures of all snapshots are computed
  by a few polars queries over the whole chain instead of per snapshot;
- every dealer delta profile D(S', t) the forecasts need is one task of a single
  ``transforms.pricing.kernel_batch.delta_profiles`` call (the fused kernel, summed in the same order as one book
  per call, so bit for bit the same);
- a profile is computed once per (book, as-of time, set of options kept) and reused across horizons: the
  1 h forecast's D_surv(S', t0) is usually the whole book at t0, and the 24 h and next-expiry forecasts
  usually split the book the same way (the next daily expiry settles within both), so they share
  D_surv(S', t0) and D_exp(S', t0). A typical book needs 6 profiles instead of 9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from transforms.forecasting.forecast import _joined, flow_components
from transforms.forecasting.horizons import (
    MS_PER_HOUR,
    _epoch_ms,
    _from_ms,
    _grid,
    _horizons,
    atm_vol_to,
    lognormal_bin_weights,
)
from transforms.forecasting.summary import summary_numbers
from transforms.frames.schemas import FORECAST_SUMMARY, check
from transforms.pricing.greeks import MS_PER_YEAR
from transforms.pricing.kernel_batch import ALL_EXPIRIES, OptionBatch

_SNAPSHOT = ["currency", "snapshot_ts"]
_GROUP = ["currency", "snapshot_ts", "model"]
_WALLS = ("zero_gamma", "call_wall", "put_wall")
_BASE = {c: t for c, t in FORECAST_SUMMARY.items() if c not in _WALLS}


# --- per snapshot: spot, expiries, ATM term structure ------------------------------------------------------


def _snapshots(greeks: pl.DataFrame) -> pl.DataFrame:
    """One row per (currency, snapshot_ts) in order of appearance: how many distinct index prices it has and
    one of them, and its earliest expiry after the snapshot (NULL if none)."""
    spots = pl.col("index_price").drop_nulls()
    expiry = pl.col("expiration_ts")
    return greeks.group_by(_SNAPSHOT, maintain_order=True).agg(
        spots.n_unique().alias("spots"),
        spots.first().alias("spot"),
        expiry.filter(expiry > pl.col("snapshot_ts")).min().dt.epoch("ms").alias("next_expiry_ms"),
    )


def spot_of(currency: str, snapshot_ts, spots: int, spot: float) -> float:
    """The snapshot's index price (transforms.forecasting.forecast._spot's check and message)."""
    if spots != 1:
        raise ValueError(f"need exactly one index_price per snapshot, {currency} {snapshot_ts} has {spots}")
    return float(spot)


def _term_structures(greeks: pl.DataFrame) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """``transforms.forecasting.horizons.atm_term_structure(snapshot, snapshot_ts)`` of every snapshot, keyed by
    (currency, snapshot_ts): the same smile nodes (one polars query for all), the same interpolation."""
    by = [*_SNAPSHOT, "expiration_ts"]
    nodes = (
        greeks.lazy()
        .filter(pl.col("is_priced"))
        .with_columns(pl.col("underlying_price").median().over(by).alias("_forward"))
        .group_by(*by, "strike")
        .agg(pl.col("mark_iv").mean(), pl.col("_forward").first())
        .with_columns((pl.col("strike") / pl.col("_forward")).log().alias("_x"), pl.col("expiration_ts").dt.epoch("ms"))
        .sort(*by, "_x")
        .collect()
    )
    x, iv = nodes["_x"].to_numpy(), nodes["mark_iv"].to_numpy()
    expiry = nodes["expiration_ts"].to_numpy()
    smile = nodes.select(pl.struct(*by).rle_id()).to_series().to_numpy()  # one id per (snapshot, expiry)
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(smile)) + 1, [nodes.height]))
    starts = nodes[bounds[:-1]]
    keys = starts.select(*_SNAPSHOT).rows()  # one (currency, snapshot_ts) per smile: few datetimes to convert
    t0s = starts["snapshot_ts"].dt.epoch("ms").to_list()
    out: dict[tuple, tuple[list, list]] = {}
    for n, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        key = keys[n]
        taus, sigmas = out.setdefault(key, ([], []))
        tau = (int(expiry[a]) - t0s[n]) / MS_PER_YEAR
        if tau <= 0.0:
            continue
        taus.append(tau)
        sigmas.append(float(np.interp(0.0, x[a:b], iv[a:b])) / 100.0)
    return {k: (np.array(t), np.array(s)) for k, (t, s) in out.items()}


# --- the books and their delta profiles --------------------------------------------------------------------


@dataclass
class _Books:
    """Every (currency, snapshot_ts, model) book of the join, as contiguous slices of option arrays."""

    arrays: dict[str, np.ndarray]
    groups: pl.DataFrame  # currency, snapshot_ts, model, lo, hi (slices of the arrays)
    options: OptionBatch

    @classmethod
    def of(cls, joined: pl.DataFrame) -> _Books:
        live = (pl.col("is_priced") & (pl.col("weight_coins") != 0.0)).fill_null(False)
        cols = joined.select(
            pl.col("underlying_price").alias("forward"),
            "strike",
            (pl.col("mark_iv") / 100.0).alias("sigma"),
            pl.col("expiration_ts").dt.epoch("ms").alias("expiry_ms"),
            pl.col("weight_coins").alias("weight"),
            pl.when(pl.col("option_type") == "put").then(pl.col("weight_coins")).otherwise(0.0).alias("put_weight"),
            live.alias("live"),
        )
        arrays = {c: cols[c].to_numpy() for c in cols.columns}
        groups = (
            joined.select(_GROUP)
            .with_row_index("_i")
            .group_by(_GROUP, maintain_order=True)
            .agg(pl.col("_i").min().alias("lo"), (pl.col("_i").max() + 1).alias("hi"))
        )
        return cls(arrays, groups, OptionBatch(*(arrays[c] for c in cols.columns)))


class _Tasks:
    """The distinct delta profiles asked for: (book slice, as-of time, kept expiries) -> (task, weighting).

    Two books of a snapshot holding the same options with other weights (naive and customer_long: every
    option with open interest, signed differently) are :meth:`pair`-ed: their profiles are one task each,
    whose second weighting is the paired book (each bit for bit its own one-book profile)."""

    def __init__(self, books: _Books):
        self.books = books
        self.index: dict[tuple, int] = {}
        self.rows: list[tuple[int, int, int, int, int, int]] = []  # lo, hi, paired lo (or -1), at, after, until
        self.paired: dict[int, int] = {}  # book lo -> lo of the book it rides along with, and back
        self.partner: dict[int, int] = {}

    def pair(self, lo: int, hi: int, lo2: int) -> None:
        """Price the book at ``lo2`` with the one at [lo, hi) when they hold the same options (else nothing)."""
        if lo not in self.partner and lo2 not in self.paired and self.books.options.same_options(lo, hi, lo2):
            self.partner[lo] = lo2
            self.paired[lo2] = lo

    def ask(self, lo: int, hi: int, expiries: np.ndarray, at: int, after: int, until: int) -> tuple | None:
        """(task, weighting) of D over the live options of [lo, hi) expiring in (after, until], aged to ``at``;
        None when no live option expires in that window (D = 0, as ``_Book.delta`` returns)."""
        i0 = int(np.searchsorted(expiries, after, side="right"))
        i1 = int(np.searchsorted(expiries, until, side="right"))
        if i0 == i1:
            return None
        which = 0
        if lo in self.paired:
            lo, hi, which = self.paired[lo], self.paired[lo] + hi - lo, 1
        key = (lo, at, i0, i1)
        if key not in self.index:
            self.index[key] = len(self.rows)
            self.rows.append((lo, hi, self.partner.get(lo, -1), at, after, until))
        return self.index[key], which

    def run(self, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(D of the first weighting, D of the second) per task, tasks x levels."""
        t = np.array(self.rows, dtype=np.int64).reshape(-1, 6)
        out = self.books.options.profiles(t[:, 0], t[:, 1], t[:, 3], t[:, 4], t[:, 5], ratio, pair_lo=t[:, 2])
        return out[1], out[3]


# --- the batch ---------------------------------------------------------------------------------------------


@dataclass
class _Forecast:
    """One (snapshot, model, horizon) forecast waiting for its delta profiles."""

    head: dict  # currency, forecast_date, model, horizon, horizon_hours, t0, snapshot_ts, horizon_end_ts, spot
    sigma: float
    weight: np.ndarray
    tasks: tuple  # (task, weighting) or None of D_surv(S', t0), D_exp(S', t0), D_surv(S', t0 + h)


def _horizon_weights(levels, spot, t0_ms, horizons, term) -> dict[str, tuple[float, np.ndarray]]:
    out = {}
    for label, end_ms in horizons:
        tau_h = (end_ms - t0_ms) / MS_PER_YEAR
        sigma = atm_vol_to(tau_h, *term)
        out[label] = (sigma, lognormal_bin_weights(levels, spot, sigma * sigma * tau_h))
    return out


def _plan(greeks, books: _Books, tasks: _Tasks, ratio, horizons_hours, include_next_expiry) -> list[_Forecast]:
    """Every forecast of every snapshot, in flow_forecast's order, with the profiles it needs asked for."""
    terms = _term_structures(greeks)
    by_snapshot: dict[tuple, list] = {}
    for row in books.groups.iter_rows():
        by_snapshot.setdefault(row[:2], []).append(row[2:])
    a = books.arrays
    out = []
    for currency, snapshot_ts, spots, spot, next_expiry in _snapshots(greeks).iter_rows():
        spot = spot_of(currency, snapshot_ts, spots, spot)
        t0_ms = _epoch_ms(snapshot_ts)
        levels = spot * ratio
        term = terms.get((currency, snapshot_ts), (np.array([]), np.array([])))
        expiries = np.array([] if next_expiry is None else [next_expiry], dtype=np.int64)  # all _horizons uses
        horizons = _horizons(horizons_hours, include_next_expiry, t0_ms, expiries)
        weights = _horizon_weights(levels, spot, t0_ms, horizons, term)
        head = {"currency": currency, "forecast_date": _from_ms(t0_ms).date(), "t0": _from_ms(t0_ms)}
        head |= {"snapshot_ts": snapshot_ts, "spot": spot}
        snapshot_books = by_snapshot.get((currency, snapshot_ts), [])
        if len(snapshot_books) > 1:  # the first two books share their tasks when they hold the same options
            tasks.pair(snapshot_books[0][1], snapshot_books[0][2], snapshot_books[1][1])
        for model, lo, hi in snapshot_books:
            live = a["live"][lo:hi]
            book_expiries = np.unique(a["expiry_ms"][lo:hi][live])
            for label, end_ms in horizons:
                sigma, weight = weights[label]
                needs = (
                    tasks.ask(lo, hi, book_expiries, t0_ms, end_ms, ALL_EXPIRIES[1]),
                    tasks.ask(lo, hi, book_expiries, t0_ms, t0_ms, end_ms),
                    tasks.ask(lo, hi, book_expiries, end_ms, end_ms, ALL_EXPIRIES[1]),
                )
                h = {"model": model, "horizon": label, "horizon_hours": (end_ms - t0_ms) / MS_PER_HOUR}
                out.append(_Forecast(head | h | {"horizon_end_ts": _from_ms(end_ms)}, sigma, weight, needs))
    return out


def _row(f: _Forecast, deltas: tuple, ratio: np.ndarray, centre: int) -> dict:
    zero = np.zeros(ratio.size)
    surv_t0, exp_t0, surv_end = (zero if t is None else deltas[t[1]][t[0]] for t in f.tasks)
    parts = flow_components(surv_t0, exp_t0, surv_end, centre)
    levels = f.head["spot"] * ratio
    coins = parts["hedge_flow_coins"]
    sigma_atm = f.sigma * 100.0
    numbers = summary_numbers(
        levels,
        coins,
        coins * levels,
        f.weight,
        spot=f.head["spot"],
        hours=f.head["horizon_hours"],
        sigma_atm=sigma_atm,
        charm=float(parts["charm_flow_coins"][0]),
        expiry=float(parts["expiry_flow_coins"][0]),
    )
    return f.head | {"sigma_atm": sigma_atm} | numbers


def forecast_summaries(
    chain: pl.DataFrame | pl.LazyFrame,
    positions: pl.DataFrame | pl.LazyFrame,
    *,
    horizons_hours=(1, 24),
    include_next_expiry: bool = True,
    half_width: float = 0.25,
    step: float = 0.0025,
) -> pl.DataFrame:
    """FORECAST_SUMMARY rows (zero_gamma, call_wall, put_wall NULL) of the forecast made at every
    (currency, snapshot_ts) of ``chain`` from that snapshot alone, t0 = snapshot_ts, for every model of
    ``positions``: the module docstring's equality with the one-snapshot-at-a-time functions."""
    greeks, joined = _joined(chain, positions)
    return summaries_of(greeks, joined, horizons_hours, include_next_expiry, half_width, step)


def summaries_of(
    greeks: pl.DataFrame,
    joined: pl.DataFrame,
    horizons_hours=(1, 24),
    include_next_expiry: bool = True,
    half_width: float = 0.25,
    step: float = 0.0025,
) -> pl.DataFrame:
    """:func:`forecast_summaries` from the greeks of the chain and the position join, one row per
    (currency, snapshot_ts, model, instrument_name) sorted by those keys, with ``weight_coins`` (as
    ``transforms.forecasting.forecast._joined`` or ``transforms.gex.exposure._exposures`` make them)."""
    steps = _grid(half_width, step)
    ratio = 1.0 + steps
    centre = int(np.flatnonzero(steps == 0.0)[0])
    books = _Books.of(joined)
    tasks = _Tasks(books)
    planned = _plan(greeks, books, tasks, ratio, horizons_hours, include_next_expiry)
    deltas = tasks.run(ratio) if tasks.rows else (np.zeros((0, ratio.size)),) * 2
    rows = [_row(f, deltas, ratio, centre) for f in planned]
    out = pl.DataFrame(rows, schema=_BASE, orient="row") if rows else pl.DataFrame(schema=_BASE)
    out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in _WALLS).select(list(FORECAST_SUMMARY))
    check(out, FORECAST_SUMMARY, "forecast summaries")
    return out


__all__ = ["forecast_summaries", "spot_of", "summaries_of"]
