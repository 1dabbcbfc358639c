"""Threshold rebalancing (issue 15): the ladder of prices at which a band-hedging dealer re-hedges, and what the
band does to the volume traded over a move.

Pure. Model and assumptions: the dealer book's delta D(S) (coins, sticky-strike re-pricing of the stored book,
forwards moving with spot, no time passing) is hedged to zero at S0. The dealer does not re-hedge continuously but
only when the unhedged delta D(S) - D_r since the last re-hedge reaches the band b (coins), and then trades it back
to zero in one order at that price. D_r starts at D(S0) and moves one band per order, so the triggers are the
levels D(S0) + m b:

    rung k       S_k = the first price beyond S_{k-1} (moving away from S0) with D(S_k) = D_{k-1} +- b
    order k      -(D_k - D_{k-1}) = -+b coins exactly (> 0 = dealers buy), USD = coins x S_k

so every order is exactly b coins; its sign is that of -dD (long gamma: sell on the way up, buy on the way down).
A band can be given in coins or as a fraction of the dealer gamma at spot, |GEX(S0)| / S0 = the coins D changes by
for a 1 % move (``band_coins = fraction x |total GEX| / S0``). Prices move one way (a path that turns back inside
a band trades nothing more); the band is symmetric; orders fill at the trigger price (no slippage); rungs are
bracketed on a 0.05 % grid and refined by the Illinois method (two crossings inside one grid step are not seen);
a ladder stops after MAX_RUNGS rungs (``complete`` = false in the volume table).

Over a move from S0 to S_end the rungs crossed trade sum_k order_k = -(D_n - D(S0)), which differs from the
continuous hedge's -(D(S_end) - D(S0)) by less than b; as b -> 0 the ladder converges to the continuous flow, and
its traded volume (sum |order_k|) to the total variation of D along the path.

Stored per snapshot (compute): the bands BANDS_GAMMA of the gamma at spot, rungs up to +-MOVE_PCT %, and the
volume over the moves MOVES_PCT (:func:`ladder_tables`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from transforms.gex.book_batch import Books, Task
from transforms.gex.exposure import GROUP, _exposures, _Profile, _spot

LADDER_STEP = 0.0005  # the search grid, as a fraction of spot
BANDS_GAMMA = (0.25, 0.5, 1.0, 2.0)  # stored bands, as fractions of the dealer gamma at spot (coins per 1 % move)
STORED_BANDS = BANDS_GAMMA  # what compute stores per snapshot (benchmarks/bench_depth.py measures the cost)
MOVE_PCT = 5.0  # stored rungs reach +-5 % from spot
MOVES_PCT = (1.0, 2.0, 5.0)  # stored volume rows: moves of +-1, 2 and 5 %
MAX_RUNGS = 500  # per band and direction
_ITERATIONS = 60
FTOL = 1e-10  # a rung's price is refined until D there is within 1e-10 bands of its trigger level
_UTC_MS = pl.Datetime("ms", "UTC")

HEDGE_LADDER = {
    "currency": pl.String,
    "snapshot_ts": _UTC_MS,
    "model": pl.String,
    "band_gamma": pl.Float64,  # the band as a fraction of the gamma at spot; NULL when given in coins
    "band_coins": pl.Float64,
    "direction": pl.String,  # 'up' | 'down' from spot
    "rung": pl.Int64,  # 1, 2, ... moving away from spot
    "price_level": pl.Float64,  # S_k, USD
    "pct_from_spot": pl.Float64,
    "order_coins": pl.Float64,  # -(D_k - D_{k-1}), > 0 = dealers buy; |order| = band
    "order_usd": pl.Float64,  # order_coins x S_k
    "cumulative_coins": pl.Float64,  # sum of the orders so far
    "continuous_flow_coins": pl.Float64,  # -(D(S_k) - D(S0)): what a continuous hedger has traded by S_k
}

# One row per (currency, snapshot_ts, model, band, direction, move_pct).
LADDER_VOLUME = {
    "currency": pl.String,
    "snapshot_ts": _UTC_MS,
    "model": pl.String,
    "band_gamma": pl.Float64,
    "band_coins": pl.Float64,
    "direction": pl.String,  # 'up' | 'down'
    "move_pct": pl.Float64,  # the move, % of spot (> 0; the direction says which way)
    "rungs": pl.Int64,  # orders triggered over the move
    "traded_coins": pl.Float64,  # sum |order|
    "traded_usd": pl.Float64,  # sum |order| x S_k
    "net_coins": pl.Float64,  # sum order (> 0 = dealers bought)
    "continuous_net_coins": pl.Float64,  # -(D(S_end) - D(S0))
    "continuous_traded_coins": pl.Float64,  # total variation of D along the path (0.05 % grid)
    "complete": pl.Boolean,  # false when the ladder stopped at MAX_RUNGS before the move's end
}


def _travel(move: float, step: float) -> np.ndarray:
    """The grid ratios from 1 to 1 + move in the order of travel."""
    n = max(1, int(np.ceil(abs(move) / step - 1e-9)))
    return 1.0 + np.sign(move) * np.minimum(np.arange(n + 1) * step, abs(move))


def _scan(ratios: np.ndarray, values: np.ndarray, band: float) -> list[tuple[int, float]]:
    """The rungs on the grid, in the order of travel: (index j of the first grid level at or past the trigger,
    the trigger level D_k). The trigger lies between level j - 1 (or the previous rung, when that is in the same
    step) and level j."""
    rungs: list[tuple[int, float]] = []
    ref, i = float(values[0]), 1
    while i < ratios.size and len(rungs) < MAX_RUNGS:
        hit = np.flatnonzero(np.abs(values[i:] - ref) >= band)
        if hit.size == 0:
            break
        j = i + int(hit[0])
        ref = ref + band if values[j] > ref else ref - band
        rungs.append((j, ref))
        i = j
    return rungs


def _illinois(evaluate, groups: np.ndarray, a, b, fa, fb, target, ftol) -> tuple[np.ndarray, np.ndarray]:
    """The roots of D(r) = target in [a, b] (f = D - target of opposite signs at the ends), all at once: false
    position with the Illinois modification, until |f| <= ftol or the bracket is 1e-14 of S0 wide. Returns (roots,
    D at the roots)."""
    a, b, fa, fb = (np.array(v, dtype=np.float64) for v in (a, b, fa, fb))
    best = np.where(np.abs(fa) < np.abs(fb), a, b)
    best_f = np.minimum(np.abs(fa), np.abs(fb))
    best_d = np.where(np.abs(fa) < np.abs(fb), fa, fb) + target
    side = np.zeros(a.size, dtype=np.int8)
    todo = (best_f > ftol) & (b - a > 1e-14)
    for _ in range(_ITERATIONS):
        if not todo.any():
            break
        idx = np.flatnonzero(todo)
        c = b[idx] - fb[idx] * (b[idx] - a[idx]) / (fb[idx] - fa[idx])
        c = np.clip(c, a[idx], b[idx])
        fc = evaluate(groups[idx], c) - target[idx]
        better = np.abs(fc) < best_f[idx]
        best[idx[better]], best_f[idx[better]] = c[better], np.abs(fc[better])
        best_d[idx[better]] = fc[better] + target[idx[better]]
        right = (fc < 0.0) == (fb[idx] < 0.0)  # c replaces b
        left = ~right
        ir, il = idx[right], idx[left]
        fa[ir[side[ir] == -1]] *= 0.5
        b[ir], fb[ir], side[ir] = c[right], fc[right], -1
        fb[il[side[il] == 1]] *= 0.5
        a[il], fa[il], side[il] = c[left], fc[left], 1
        todo[idx] = (np.abs(fc) > ftol[idx]) & (b[idx] - a[idx] > 1e-14)
    return best, best_d


def _rungs(grid_of, evaluate, specs: list[tuple[int, float, float]]) -> list[list[tuple[float, float, float]]]:
    """Per spec (group, band coins, move): the ladder as [(ratio S_k/S0, order coins, D(S_k)), ...]. ``grid_of(g,
    move)`` gives (ratios in the order of travel, D there); ``evaluate(groups, ratios)`` D at one ratio per entry.
    Rungs whose bracket starts at the previous rung are refined in a later round, once that rung is known."""
    found = []
    for g, band, move in specs:
        ratios, values = grid_of(g, move)
        found.append([(g, ratios, values, j, level, band) for j, level in _scan(ratios, values, band)])
    flat = [(s, k, *rung) for s, rungs in enumerate(found) for k, rung in enumerate(rungs)]
    roots: dict[tuple[int, int], tuple[float, float]] = {}
    pending = flat
    while pending:
        ready, later = [], []
        for item in pending:
            s, k, g, ratios, values, j, level, band = item
            same_step = k > 0 and found[s][k - 1][3] == j
            if same_step and (s, k - 1) not in roots:
                later.append(item)
                continue
            prev_level = found[s][k - 1][4] if k > 0 else float(values[0])
            left, f_left = (
                (roots[(s, k - 1)][0], prev_level - level) if same_step else (ratios[j - 1], values[j - 1] - level)
            )
            ready.append((s, k, g, left, float(ratios[j]), f_left, float(values[j]) - level, level, band))
        lo, hi, f_lo, f_hi = zip(*[(min(r[3], r[4]), max(r[3], r[4]), *_ordered(r)) for r in ready], strict=True)
        groups = np.array([r[2] for r in ready], dtype=np.int64)
        targets = np.array([r[7] for r in ready])
        ftol = FTOL * np.array([r[8] for r in ready])
        at, d_at = _illinois(evaluate, groups, lo, hi, f_lo, f_hi, targets, ftol)
        for r, x, d in zip(ready, at, d_at, strict=True):
            roots[(r[0], r[1])] = (float(x), float(d))
        pending = later
    out = []
    for s, rungs in enumerate(found):
        levels = [float(rungs[0][2][0])] + [rung[4] for rung in rungs] if rungs else []
        out.append([(*roots[(s, k)][:1], -(levels[k + 1] - levels[k]), roots[(s, k)][1]) for k in range(len(rungs))])
    return out


def _ordered(ready: tuple) -> tuple[float, float]:
    """f at the lower and the upper end of a bracket given in the order of travel."""
    _, _, _, left, right, f_left, f_right, _, _ = ready
    return (f_left, f_right) if left <= right else (f_right, f_left)


def ladder(delta, band: float, move: float, step: float = LADDER_STEP) -> list[tuple[float, float]]:
    """[(ratio S_k/S0, order coins), ...] from spot to S0 (1 + move) (move < 0: downwards) for a dealer delta
    ``delta(ascending ratio array) -> coins`` and a band in coins."""
    if not band > 0.0:
        raise ValueError(f"band must be a positive number of coins, got {band!r}")

    def grid_of(_, mv):
        ratios = _travel(mv, step)
        return ratios, delta(ratios) if mv > 0 else delta(ratios[::-1])[::-1]

    def evaluate(_, ratios):
        unique, inverse = np.unique(ratios, return_inverse=True)
        return np.asarray(delta(unique))[inverse]

    return [(r, order) for r, order, _ in _rungs(grid_of, evaluate, [(0, band, move)])[0]]


class _BookDelta:
    """D(S'/S0) of every book of ``books`` on the two-sided ladder grid (one batched kernel call) and at any ratios
    (one kernel task per book, its ratios sorted and padded to the longest)."""

    def __init__(self, books: Books, move: float, step: float):
        self.books = books
        self.step = step
        self.n = max(1, int(np.ceil(abs(move) / step - 1e-9)))
        steps = np.minimum(np.arange(self.n + 1) * step, abs(move))
        self.grid = np.concatenate([(1.0 - steps)[::-1], (1.0 + steps)[1:]])
        self.values = books.profiles([Task(b, books.t0_ms[b]) for b in range(len(books))], self.grid)[1]

    def steps_of(self, move: float) -> int:
        return min(self.n, max(1, int(np.ceil(abs(move) / self.step - 1e-9))))

    def grid_of(self, book: int, move: float) -> tuple[np.ndarray, np.ndarray]:
        k = self.steps_of(move)
        part = slice(self.n, self.n + k + 1) if move > 0 else slice(self.n - k, self.n + 1)
        ratios, values = self.grid[part], self.values[book][part]
        return (ratios, values) if move > 0 else (ratios[::-1], values[::-1])

    def __call__(self, groups: np.ndarray, ratios: np.ndarray) -> np.ndarray:
        out = np.empty(ratios.size)
        order = np.lexsort((ratios, groups))
        by_book, at = groups[order], ratios[order]
        books, starts = np.unique(by_book, return_index=True)
        bounds = [*starts.tolist(), at.size]
        levels = []
        for s, e in zip(bounds[:-1], bounds[1:], strict=True):
            part = at[s:e]
            levels.append(part[np.concatenate([[True], part[1:] != part[:-1]])])
        width = max(lv.size for lv in levels)
        padded = np.array([np.concatenate([lv, np.full(width - lv.size, lv[-1])]) for lv in levels])
        values = self.books.at_levels([Task(int(b), self.books.t0_ms[int(b)]) for b in books], padded)[1]
        for s, e, lv, v in zip(bounds[:-1], bounds[1:], levels, values, strict=True):
            out[order[s:e]] = v[np.searchsorted(lv, at[s:e])]
        return out


def _bands(books: Books, x: pl.DataFrame, bands_gamma, band_coins) -> list[list[tuple[float | None, float]]]:
    """Per book: its (band as a fraction of the gamma at spot or None, band in coins) with a positive band."""
    if band_coins is not None:
        if not (isinstance(band_coins, int | float) and band_coins > 0.0 and np.isfinite(band_coins)):
            raise ValueError(f"band must be a positive number of coins, got {band_coins!r}")
        return [[(None, float(band_coins))] for _ in range(len(books))]
    gex = x.group_by(GROUP, maintain_order=True).agg(pl.col("gex_usd").sum())["gex_usd"].to_numpy()
    out = []
    for b in range(len(books)):
        coins = [(f, f * abs(float(gex[b])) / books.spot(b)) for f in bands_gamma]
        out.append([(f, c) for f, c in coins if c > 0.0 and np.isfinite(c)])
    return out


def ladder_tables(
    greeks, x, *, bands_gamma=BANDS_GAMMA, band_coins=None, move_pct: float = MOVE_PCT, moves_pct=MOVES_PCT
) -> dict[str, pl.DataFrame]:
    """hedge_ladder (HEDGE_LADDER: the rungs up to +-move_pct %) and hedge_ladder_volume (LADDER_VOLUME: per move of
    ``moves_pct`` up to move_pct) of every book of the greeks and position join ``x`` of transforms.gex.exposure,
    for the bands ``bands_gamma`` (fractions of the gamma at spot) or the one band ``band_coins``."""
    if not (np.isfinite(move_pct) and 0.0 < move_pct < 100.0):
        raise ValueError(f"move must be a percentage in (0, 100), got {move_pct!r}")
    if not bands_gamma and band_coins is None:  # no band: the empty tables, nothing priced
        return {
            "hedge_ladder": pl.DataFrame(schema=HEDGE_LADDER),
            "hedge_ladder_volume": pl.DataFrame(schema=LADDER_VOLUME),
        }
    books = Books(x)
    delta = _BookDelta(books, move_pct / 100.0, LADDER_STEP)
    bands = _bands(books, x, bands_gamma, band_coins)
    specs = [
        (b, coins, sign * move_pct / 100.0) for b in range(len(books)) for _, coins in bands[b] for sign in (1, -1)
    ]
    ladders = iter(_rungs(delta.grid_of, delta, specs))
    rungs, volume = [], []
    for b in range(len(books)):
        spot, d0 = books.spot(b), float(delta.values[b][delta.n])
        for fraction, coins in bands[b]:
            for direction in ("up", "down"):
                found = next(ladders)
                head = (*books.keys[b], fraction, coins, direction)
                total = 0.0
                for k, (r, order, d) in enumerate(found, start=1):
                    total += order
                    pct = (r - 1.0) * 100.0
                    rungs.append((*head, k, r * spot, pct, order, order * r * spot, total, -(d - d0)))
                sign = 1.0 if direction == "up" else -1.0
                for move in (m for m in moves_pct if m <= move_pct):
                    ratios, values = delta.grid_of(b, sign * move / 100.0)
                    crossed = [(r, o) for r, o, _ in found if abs(r - 1.0) <= move / 100.0 + 1e-12]
                    complete = len(found) < MAX_RUNGS or len(crossed) < len(found)
                    volume.append(
                        (*head, move, len(crossed), sum(abs(o) for _, o in crossed),
                         sum(abs(o) * r * spot for r, o in crossed), sum(o for _, o in crossed),
                         -(float(values[-1]) - d0), float(np.abs(np.diff(values)).sum()), complete)
                    )  # fmt: skip
    return {
        "hedge_ladder": pl.DataFrame(rungs, schema=HEDGE_LADDER, orient="row"),
        "hedge_ladder_volume": pl.DataFrame(volume, schema=LADDER_VOLUME, orient="row"),
    }


def _delta_of(group: pl.DataFrame, greeks: pl.DataFrame):
    """The dealer delta D(S'/S0) of one book (the gex_profile's re-pricing), for tests and single-book use."""
    profile = _Profile(group, greeks, "sticky_strike", "forward")
    return lambda ratios: profile(np.asarray(ratios, dtype=np.float64))[1]


def band_from_gamma(group: pl.DataFrame, fraction: float) -> float:
    """The band in coins for ``fraction`` of the dealer gamma at spot (|total GEX| / S0: coins per 1 % move)."""
    return fraction * abs(float(group["gex_usd"].sum())) / _spot(group)


def hedge_ladder(chain, positions, *, band_coins=None, band_gamma=None, move_pct: float = MOVE_PCT) -> pl.DataFrame:
    """The rungs up to +move_pct % and down to -move_pct % of every (currency, snapshot_ts, model) book (HEDGE_LADDER),
    with the band in coins or as a fraction of the gamma at spot (exactly one of the two)."""
    if (band_coins is None) == (band_gamma is None):
        raise ValueError("give the band either in coins or as a fraction of the gamma at spot")
    greeks, x = _exposures(chain, positions)
    bands = (band_gamma,) if band_gamma is not None else ()
    return ladder_tables(greeks, x, bands_gamma=bands, band_coins=band_coins, move_pct=move_pct)["hedge_ladder"]


def ladder_volume(chain, positions, *, bands_gamma=(0.05, 0.1, 0.25, 0.5, 1.0), move_pct: float = 5.0) -> pl.DataFrame:
    """Per book, band and direction: the rungs and coins a band hedger trades over a +-move_pct % move against the
    continuous hedger's net flow and traded volume (the total variation of D on the 0.05 % grid)."""
    greeks, x = _exposures(chain, positions)
    tables = ladder_tables(greeks, x, bands_gamma=bands_gamma, move_pct=move_pct, moves_pct=(move_pct,))
    return tables["hedge_ladder_volume"]


__all__ = [
    "BANDS_GAMMA",
    "HEDGE_LADDER",
    "LADDER_STEP",
    "LADDER_VOLUME",
    "MAX_RUNGS",
    "MOVES_PCT",
    "MOVE_PCT",
    "STORED_BANDS",
    "band_from_gamma",
    "hedge_ladder",
    "ladder",
    "ladder_tables",
    "ladder_volume",
]
