"""Exposure beyond the gamma total: per expiry, per tenor bucket, and the vanna and charm of the dealer book.

Pure: frames in, frames out (issue 15; conventions in docs/methodology.md, "Depth"). For dealer position q_i
(contracts, + = long), contract size c_i (coins), the option's forward F_i (USD) and its Black-76 greeks
(transforms/pricing/greeks.py), summed over the options of an expiry or a tenor bucket:

    gex_usd              = sum q c gamma F^2 0.01        USD per 1 % move (> 0 = dealers long gamma)
    dealer_delta_coins   = sum q c delta                 DEX, coins; dealers hold -DEX as hedge
    vanna_coins_per_vol  = sum q c vanna / 100           change of dealer delta for IV +1 vol point, coins;
                                                         > 0: dealers must SELL that many coins to stay hedged
    charm_coins_per_day  = sum q c charm_per_day         change of dealer delta per day passing (F, IV held);
                                                         > 0: dealers must SELL that many coins per day
    *_usd                = the coins times each option's own forward F (the conversion GEX uses)

Tenor buckets are cumulative: '1d', '7d', '30d' hold the options with tau <= 1, 7, 30 days (365-day years,
tau from the snapshot); 'all' holds every option and equals key_levels row for row (same code). Each bucket
has its own re-priced GEX(S') on the key-levels grid and its own zero gamma (the root nearest spot, Brent
refined, NULL when none in range) and walls (open interest, so model-independent).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from transforms.frames.schemas import EXPOSURE_BY_EXPIRY, KEY_LEVELS, KEY_LEVELS_BY_TENOR, UTC_TS, check
from transforms.gex.book_batch import Books, Task, all_roots
from transforms.gex.exposure import (
    GROUP,
    _check_options,
    _exposures,
    _grid_steps,
    _Profile,
    _spot,
)
from transforms.gex.levels import _walls

WHAT_IF_TABLES = ("scenario_profiles", "hedge_ladder", "hedge_ladder_volume")  # stored only with what_ifs
DEPTH_TABLES = (
    "exposure_by_expiry",
    "key_levels_by_tenor",
    "scenario_profiles",
    "hedge_ladder",
    "hedge_ladder_volume",
)
TENORS = (("1d", 1.0), ("7d", 7.0), ("30d", 30.0))
_SNAPSHOT = ["currency", "snapshot_ts"]
_MS_PER_HOUR = 3_600_000.0
_DAYS_PER_YEAR = 365.0
_DAY_MS = 86_400_000
_SUMMED = ("gex_usd", "delta_coins", "vanna_coins_per_vol", "charm_coins_per_day")


def _sums() -> list[pl.Expr]:
    forward = pl.col("underlying_price")
    return [
        pl.col("gex_usd").sum(),
        pl.col("delta_coins").sum().alias("dealer_delta_coins"),
        (pl.col("delta_coins") * forward).sum().alias("dealer_delta_usd"),
        pl.col("vanna_coins_per_vol").sum(),
        (pl.col("vanna_coins_per_vol") * forward).sum().alias("vanna_usd_per_vol"),
        pl.col("charm_coins_per_day").sum(),
        (pl.col("charm_coins_per_day") * forward).sum().alias("charm_usd_per_day"),
    ]


def _by_expiry(x: pl.DataFrame) -> pl.DataFrame:
    is_call = pl.col("option_type") == "call"
    oi = pl.col("open_interest").fill_null(0.0)
    out = (
        x.group_by(*GROUP, "expiration_ts")
        .agg(
            pl.len().cast(pl.Int64).alias("options"),
            *_sums(),
            oi.sum().alias("open_interest"),
            oi.filter(is_call).sum().alias("call_open_interest"),
            oi.filter(~is_call).sum().alias("put_open_interest"),
        )
        .with_columns(
            (
                (pl.col("expiration_ts") - pl.col("snapshot_ts")).dt.total_milliseconds().cast(pl.Float64)
                / _MS_PER_HOUR
            ).alias("hours_to_expiry")
        )
        .select(list(EXPOSURE_BY_EXPIRY))
        .sort(*GROUP, "expiration_ts")
    )
    check(out, EXPOSURE_BY_EXPIRY, "exposure_by_expiry")
    return out


def _nearest(roots: list[float], spot: float) -> float | None:
    return min(roots, key=lambda r: (abs(r - spot), r)) if roots else None


def _bucket(group: pl.DataFrame, greeks: pl.DataFrame, lo: float, hi: float, vol_model: str):
    """The re-priced (GEX, D) of the options with lo < tau <= hi as a function of S'/S0."""
    tau = group["tau_years"]
    piece = group.filter((tau > lo) & (tau <= hi))
    if not piece.filter(pl.col("is_priced") & (pl.col("weight_coins") != 0.0)).height:
        return None
    return _Profile(piece, greeks, vol_model, "forward")


def _tenor_rows(key, group: pl.DataFrame, greeks: pl.DataFrame, ratio: np.ndarray, vol_model: str) -> list[dict]:
    """The '1d', '7d', '30d' rows of one (currency, snapshot_ts, model) group with vol model ``vol_model`` (the
    sticky-strike rows of every group at once: :func:`_strike_tenor_rows`, the same numbers)."""
    from transforms.gex.scenarios import grid_roots

    spot = _spot(group)
    tau = group["tau_years"].to_numpy()
    expiry = group["expiration_ts"].dt.epoch("ms").to_numpy()
    sums = {c: group[c].to_numpy() for c in _SUMMED}
    rows, gex, lower, any_piece = [], np.zeros(ratio.size), 0.0, False
    for tenor, days in TENORS:
        cut = days / _DAYS_PER_YEAR
        piece = _bucket(group, greeks, lower, cut, vol_model)
        if piece is not None:
            gex = gex + piece(ratio)[0]
            any_piece = True
        lower = cut
        inside = (tau > 0.0) & (tau <= cut)
        roots = []
        if any_piece and bool(np.any(gex > 0.0)) and bool(np.any(gex < 0.0)):
            roots = [r * spot for r in grid_roots(_bucket(group, greeks, 0.0, cut, vol_model), ratio, gex)]
        rows.append(_row(key, tenor, days, spot, {c: v[inside] for c, v in sums.items()}, expiry[inside], roots))
    return rows


def _strike_profiles(books: Books, ratio: np.ndarray) -> list[tuple[int, int, Task | None, np.ndarray | None]]:
    """Per (book, tenor): the bucket's sticky-strike GEX on the grid as the sum of the disjoint pieces (0, 1], (1, 7],
    (7, 30] days (every piece of every book priced in one batched call), and the task of the whole bucket to refine
    its roots on when that GEX changes sign. Expiry windows in epoch ms equal the tau cuts of _bucket exactly."""
    pieces = []
    for book in range(len(books)):
        t0, expiry, lower = books.t0_ms[book], books.expiry_ms[books.options(book)], 0
        for _, days in TENORS:
            cut = int(days) * _DAY_MS
            live = bool(np.any((expiry > t0 + lower) & (expiry <= t0 + cut)))
            pieces.append(Task(book, t0, 0, (t0 + lower, t0 + cut)) if live else None)
            lower = cut
    priced = [p for p in pieces if p is not None]
    gex_of = dict(zip(priced, books.profiles(priced, ratio)[0], strict=True))
    out = []
    for book in range(len(books)):
        gex, any_piece = np.zeros(ratio.size), False
        for k, (_, days) in enumerate(TENORS):
            piece = pieces[book * len(TENORS) + k]
            if piece is not None:
                gex = gex + gex_of[piece]
                any_piece = True
            bucket = Task(book, books.t0_ms[book], 0, (books.t0_ms[book], books.t0_ms[book] + int(days) * _DAY_MS))
            sign_change = any_piece and bool(np.any(gex > 0.0)) and bool(np.any(gex < 0.0))
            out.append((book, k, bucket if sign_change else None, gex))
    return out


def _strike_tenor_rows(x: pl.DataFrame, ratio: np.ndarray) -> list[dict]:
    """The '1d', '7d', '30d' rows of every group of ``x``, sticky-strike (as :func:`_tenor_rows`, bit for bit)."""
    books = Books(x)
    tau = x["tau_years"].to_numpy()
    expiry = x["expiration_ts"].dt.epoch("ms").to_numpy()
    sums = {c: x[c].to_numpy() for c in _SUMMED}
    profiles = _strike_profiles(books, ratio)
    roots = iter(all_roots(books, ratio, [(task, gex) for _, _, task, gex in profiles if task is not None]))
    rows = []
    for book, k, task, _ in profiles:
        tenor, days = TENORS[k]
        spot = books.spot(book)
        rows_of = slice(int(books.row_start[book]), int(books.row_start[book + 1]))
        found = [r * spot for r in next(roots)] if task is not None else []
        inside = (tau[rows_of] > 0.0) & (tau[rows_of] <= days / _DAYS_PER_YEAR)
        part = {c: v[rows_of][inside] for c, v in sums.items()}
        rows.append(_row(books.keys[book], tenor, days, spot, part, expiry[rows_of][inside], found))
    return rows


def _row(
    key, tenor: str, days: float | None, spot: float, sums: dict, expiries: np.ndarray, roots: list[float]
) -> dict:
    return {
        "currency": key[0],
        "snapshot_ts": key[1],
        "model": key[2],
        "tenor": tenor,
        "max_days": days,
        "spot": spot,
        "expiries": int(np.unique(expiries).size),
        "total_gex_usd": float(sums["gex_usd"].sum()),
        "dealer_delta_coins": float(sums["delta_coins"].sum()),
        "vanna_coins_per_vol": float(sums["vanna_coins_per_vol"].sum()),
        "charm_coins_per_day": float(sums["charm_coins_per_day"].sum()),
        "zero_gamma": _nearest(roots, spot),
        "zero_gamma_roots": roots,
    }


def _all_rows(x: pl.DataFrame, levels: pl.DataFrame) -> list[dict]:
    """The 'all' row of every group: key_levels itself, with the sums over the options not yet expired."""
    stored = {(r["currency"], r["snapshot_ts"], r["model"]): r for r in levels.iter_rows(named=True)}
    sizes = x.group_by(GROUP, maintain_order=True).len()
    bounds = np.concatenate([[0], np.cumsum(sizes["len"].to_numpy())])
    tau = x["tau_years"].to_numpy()
    expiry = x["expiration_ts"].dt.epoch("ms").to_numpy()
    sums = {c: x[c].to_numpy() for c in _SUMMED}
    rows = []
    for i, key in enumerate(sizes.select(GROUP).iter_rows()):
        level = stored[key]
        rows_of = slice(int(bounds[i]), int(bounds[i + 1]))
        alive = tau[rows_of] > 0.0
        part = {c: v[rows_of][alive] for c, v in sums.items()}
        row = _row(key, "all", None, level["spot"], part, expiry[rows_of][alive], level["zero_gamma_roots"])
        row.update(total_gex_usd=level["total_gex_usd"], zero_gamma=level["zero_gamma"])
        rows.append(row)
    return rows


def _by_tenor(greeks: pl.DataFrame, x: pl.DataFrame, levels: pl.DataFrame, ratio: np.ndarray, vol_model: str):
    if vol_model == "sticky_strike":
        rows = _strike_tenor_rows(x, ratio)
    else:
        rows = []
        for key, group in x.partition_by(GROUP, as_dict=True, maintain_order=True).items():
            rows += _tenor_rows(key, group, greeks, ratio, vol_model)
    rows += _all_rows(x, levels)
    head = [c for c in KEY_LEVELS_BY_TENOR if c not in ("call_wall", "put_wall", "abs_gamma_strike")]
    schema = {c: KEY_LEVELS_BY_TENOR[c] for c in head}
    table = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    walls = [
        _walls(
            greeks.filter((pl.col("tau_years") > 0.0) & (pl.col("tau_years") <= days / _DAYS_PER_YEAR))
        ).with_columns(pl.lit(tenor).alias("tenor"))
        for tenor, days in TENORS
    ]
    walls.append(
        levels.select(*_SNAPSHOT, "call_wall", "put_wall", "abs_gamma_strike")
        .unique(_SNAPSHOT)
        .with_columns(pl.lit("all").alias("tenor"))
    )
    wall_cols = [*_SNAPSHOT, "tenor", "call_wall", "put_wall", "abs_gamma_strike"]
    out = (
        table.join(pl.concat([w.select(wall_cols) for w in walls]), on=[*_SNAPSHOT, "tenor"], how="left")
        .select(list(KEY_LEVELS_BY_TENOR))
        .sort(*GROUP, "max_days", nulls_last=True)
    )
    check(out, KEY_LEVELS_BY_TENOR, "key_levels_by_tenor")
    return out


def depth_tables(
    greeks: pl.DataFrame,
    x: pl.DataFrame,
    levels: pl.DataFrame,
    *,
    half_width: float = 0.25,
    step: float = 0.0025,
    vol_model: str = "sticky_strike",
    what_ifs: bool = False,
) -> dict[str, pl.DataFrame]:
    """exposure_by_expiry and key_levels_by_tenor from the greeks and position join of
    :func:`transforms.gex.analytic_tables.exposure_tables` (``x``) and its key levels (``levels``, KEY_LEVELS); and
    the what-if tables, empty unless ``what_ifs``: scenario_profiles (every scenario of
    :data:`transforms.gex.scenarios.STORED_SCENARIOS`, on the grid in steps of at least SCENARIO_STEP), hedge_ladder
    and hedge_ladder_volume (the bands :data:`transforms.gex.hedge_ladder.STORED_BANDS`). Empty, they price nothing
    (and a re-computation that stores them empty removes what an earlier one stored for the snapshot)."""
    from transforms.gex import hedge_ladder
    from transforms.gex.scenarios import SCENARIO_STEP, STORED_SCENARIOS, scenario_tables

    check(levels, KEY_LEVELS, "key levels")
    ratio = 1.0 + _grid_steps(half_width, step)
    scenarios = STORED_SCENARIOS if what_ifs else ()
    return {
        "exposure_by_expiry": _by_expiry(x),
        "key_levels_by_tenor": _by_tenor(greeks, x, levels, ratio, vol_model),
        "scenario_profiles": scenario_tables(
            greeks, x, scenarios=scenarios, half_width=half_width, step=max(step, SCENARIO_STEP)
        ),
        **hedge_ladder.ladder_tables(greeks, x, bands_gamma=hedge_ladder.STORED_BANDS if what_ifs else ()),
    }


def exposure_by_expiry(chain, positions) -> pl.DataFrame:
    """Dealer GEX, DEX, vanna and charm exposure and open interest per expiry (EXPOSURE_BY_EXPIRY)."""
    _, x = _exposures(chain, positions)
    return _by_expiry(x)


def key_levels_by_tenor(
    chain, positions, *, half_width: float = 0.25, step: float = 0.0025, vol_model: str = "sticky_strike"
) -> pl.DataFrame:
    """Totals, zero gamma and walls of the '1d', '7d', '30d' and 'all' buckets (KEY_LEVELS_BY_TENOR)."""
    from transforms.gex.exposure import key_levels

    _check_options(vol_model, "forward")
    greeks, x = _exposures(chain, positions)
    levels = key_levels(chain, positions, half_width=half_width, step=step, vol_model=vol_model)
    return _by_tenor(greeks, x, levels, 1.0 + _grid_steps(half_width, step), vol_model)


__all__ = [
    "DEPTH_TABLES",
    "TENORS",
    "WHAT_IF_TABLES",
    "depth_tables",
    "exposure_by_expiry",
    "key_levels_by_tenor",
    "UTC_TS",
]
