"""What-if profiles of the dealer book (issue 15): expiry roll-off, implied-vol shifts, a spot-vol move along the
smile, and time passing, each with its hedge flow per price level split into gamma, vanna and charm parts.

Pure. For one (currency, snapshot_ts, model) book at t0 with spot S0, IVs sigma0, and a scenario that moves the
book to time t1 and vols sigma1(S') (sticky-strike unless stated), D(S', sigma, t) is the dealer delta (coins)
with every forward moved to F S'/S0 and every option aged to t (tau = (expiry - t) / 365 days; an option with
tau <= 0 has settled: it and its hedge are gone). Flows are coins dealers trade to stay hedged from (S0, t0) to
the scenario at S' (> 0 = dealers buy), split along the path time -> price -> vol:

    charm  = -(D(S0, sigma0, t1)  - D(S0, sigma0, t0))      time passing at spot (includes settled options' unwind)
    gamma  = -(D(S', sigma0, t1)  - D(S0, sigma0, t1))      the price move, at t1 and the old vols
    vanna  = -(D(S', sigma1, t1)  - D(S', sigma0, t1))      the vol change, at S'
    total  = -(D(S', sigma1, t1)  - D(S0, sigma0, t0))      = charm + gamma + vanna (telescoping)

Scenarios (``SCENARIOS``):
    rolloff_next      t1 = the next expiry after the snapshot: those options settle, the rest are re-priced then
    rolloff_monthly   t1 = the next monthly expiry (last Friday of a month): every option to then settles
    iv_minus_10 ... iv_plus_10    sigma1 = sigma0 + k vol points (k = -10, -5, +5, +10), floored at 1 vol point
    spot_vol          sigma1(S') = sticky-moneyness: each option moves along its expiry's recorded smile as spot
                      moves (transforms.pricing.kernels.sticky_moneyness_sigma_grid); the vanna part is the flow
                      from that vol move alone
    time_24h          t1 = t0 + 24 h, no price or vol change: the charm flow (and the unwind of what settles)
dealer_gex_usd and zero_gamma are those of the scenario book, GEX(S') = sum q c gamma(F', sigma1, t1) F'^2 0.01.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from transforms.frames.schemas import SCENARIO_PROFILE, check
from transforms.gex.book_batch import MIN_SIGMA, STAGES, SUBGRID, Books, Task, all_roots, sign_brackets
from transforms.gex.exposure import _exposures, _grid_steps
from transforms.pricing.kernels import profile_at_levels

IV_SHIFTS = {"iv_minus_10": -10.0, "iv_minus_5": -5.0, "iv_plus_5": 5.0, "iv_plus_10": 10.0}
SCENARIOS = ("rolloff_next", "rolloff_monthly", *IV_SHIFTS, "spot_vol", "time_24h")
STORED_SCENARIOS = SCENARIOS  # what compute stores per snapshot (benchmarks/bench_depth.py measures the cost)
SCENARIO_STEP = 0.01  # the stored scenario grid: +-25 % in 1 % steps (the CLI re-prices any grid on the fly)
_DAY_MS = 86_400_000


def is_monthly(expiry: datetime) -> bool:
    """Deribit's monthly expiries are the last Friday of the month."""
    return expiry.weekday() == 4 and (expiry + timedelta(days=7)).month != expiry.month


def grid_roots(at, ratio: np.ndarray, gex: np.ndarray) -> list[float]:
    """The ratios where GEX(S') changes sign between grid levels, each refined in STAGES stages of SUBGRID levels
    evaluated in one kernel call each, then linearly inside the last sub-step (well below 1e-12 of spot for a
    smooth profile; fewer kernel evaluations than single-level Brent steps). Same brackets as
    transforms.gex.levels.zero_gamma_roots. transforms.gex.book_batch.all_roots does the same for many profiles
    at once."""
    roots, brackets = sign_brackets(ratio, gex)
    refined = iter([_refine(at, *bracket) for bracket in brackets])
    return [root if root is not None else next(refined) for root in roots]


def _refine(at, a: float, b: float, fa: float, fb: float) -> float:
    """One sign-change bracket of :func:`grid_roots` refined in STAGES sub-grids, then linearly."""
    for _ in range(STAGES):
        sub = np.linspace(a, b, SUBGRID)
        values = at(sub[1:-1])[0]
        xs, fs = sub, np.concatenate([[fa], values, [fb]])
        i = int(np.flatnonzero((fs[:-1] < 0.0) != (fs[1:] < 0.0))[0])
        a, b, fa, fb = float(xs[i]), float(xs[i + 1]), float(fs[i]), float(fs[i + 1])
    return b if fb == 0.0 else a - fa * (b - a) / (fb - fa)


class _Smile:
    """A book's sticky-moneyness profile (spot_vol): ``_Profile(group, greeks, "sticky_moneyness", "forward")`` on the
    book's arrays, with the smile nodes of its snapshot. Each expiry's smile (its nodes averaged per log-moneyness) and
    its value at the options' own moneyness are prepared once; each call then does what
    ``sticky_moneyness_sigma_grid`` does at the levels asked for, the same operations on the same numbers."""

    def __init__(self, books: Books, book: int, nodes: pl.DataFrame):
        part = books.options(book)
        self.arrays = [
            a[part]
            for a in (books.forward, books.strike, books.profile_sigma, books.tau_years, books.weight, books.put_weight)
        ]
        group, x, sigma = books.expiry_ms[part], np.log(self.arrays[1] / self.arrays[0]), self.arrays[2]
        node_group = nodes["expiration_ts"].dt.epoch("ms").to_numpy()
        node_x = np.log(nodes["strike"].to_numpy() / nodes["underlying_price"].to_numpy())
        node_sigma = nodes["mark_iv"].to_numpy() / 100.0
        self.pieces = []
        for g in np.unique(group):
            at = node_group == g
            if at.sum() < 2:
                continue
            ux, inverse = np.unique(node_x[at], return_inverse=True)
            us = np.bincount(inverse, weights=node_sigma[at]) / np.bincount(inverse)
            rows = group == g
            self.pieces.append((rows, x[rows], ux, us, sigma[rows, None], np.interp(x[rows], ux, us)[:, None]))

    def __call__(self, ratio) -> tuple[np.ndarray, np.ndarray]:
        ratio = np.asarray(ratio, dtype=np.float64)
        if self.arrays[0].size == 0:
            return np.zeros(ratio.size), np.zeros(ratio.size)
        s = np.log(ratio)
        grid = np.broadcast_to(self.arrays[2][:, None], (self.arrays[2].size, s.size)).copy()
        for rows, xi, ux, us, own, base in self.pieces:
            grid[rows] = own + np.interp(xi[:, None] - s[None, :], ux, us) - base
        return profile_at_levels(*self.arrays, ratio, sigma_grid=grid, premium_adjusted=None)


def _horizon(books: Books, book: int, scenario: str, monthly: dict) -> int | None:
    """t1 in epoch ms, or None when the scenario does not apply (no expiry to roll off)."""
    t0 = books.t0_ms[book]
    if scenario == "rolloff_next":
        expiries = books.expiries(book)
        return expiries[0] if expiries else None
    if scenario == "rolloff_monthly":
        for e in books.expiries(book):
            if monthly.setdefault(e, is_monthly(datetime.fromtimestamp(e / 1000, UTC))):
                return e
        return None
    if scenario == "time_24h":
        return t0 + _DAY_MS
    return t0


def _columns(scenario: str, t1: int, ratio: np.ndarray, spot: float, state: tuple, roots: list[float]) -> dict:
    """The scenario's columns as numpy arrays from (D at S0 and t0, (GEX, D) at t1 with the old vols, the scenario
    book's (GEX, D)) on the grid (the frame is built once for all groups: polars per-frame overhead would cost more
    than the pricing)."""
    d0, moved, (gex, delta) = state
    centre = int(np.flatnonzero(ratio == 1.0)[0])
    total = -(delta - d0)
    roots = [r * spot for r in roots]
    zero = min(roots, key=lambda r: (abs(r - spot), r)) if roots else np.nan
    levels = spot * ratio
    n = ratio.size
    return {
        "scenario": scenario,
        "horizon_ts": np.full(n, t1, dtype=np.int64),
        "price_level": levels,
        "pct_from_spot": (ratio - 1.0) * 100.0,
        "dealer_gex_usd": gex,
        "dealer_delta": delta,
        "hedge_flow_coins": total,
        "gamma_flow_coins": -(moved[1] - moved[1][centre]),
        "vanna_flow_coins": -(delta - moved[1]),
        "charm_flow_coins": np.full(n, -(moved[1][centre] - d0)),
        "hedge_flow_usd": total * levels,
        "zero_gamma": np.full(n, zero),
    }


def _frame(parts: list[tuple[tuple, dict]]) -> pl.DataFrame:
    """One frame of every part's columns; the per-part keys (currency, snapshot_ts, model, scenario) are a row per
    part repeated by index, not a Python object per row."""
    if not parts:
        return pl.DataFrame(schema=SCENARIO_PROFILE)
    heads = pl.DataFrame(
        {
            "currency": [key[0] for key, _ in parts],
            "snapshot_ts": [key[1] for key, _ in parts],
            "model": [key[2] for key, _ in parts],
            "scenario": [cols["scenario"] for _, cols in parts],
        }
    )
    repeat = np.repeat(np.arange(len(parts)), [cols["price_level"].size for _, cols in parts])
    data = {name: np.concatenate([cols[name] for _, cols in parts]) for name in parts[0][1] if name != "scenario"}
    ts = SCENARIO_PROFILE["horizon_ts"]
    return (
        heads[repeat]
        .hstack(pl.DataFrame(data))
        .with_columns(
            pl.col("snapshot_ts").cast(ts),
            pl.col("horizon_ts").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"),
            pl.col("zero_gamma").fill_nan(None),
        )
        .select(list(SCENARIO_PROFILE))
    )


def scenario_profiles(
    chain,
    positions,
    *,
    scenarios=SCENARIOS,
    half_width: float = 0.25,
    step: float = 0.01,
) -> pl.DataFrame:
    """Every scenario's profile and flow split per (currency, snapshot_ts, model, scenario, price_level)
    (SCENARIO_PROFILE). The grid is S0 (1 + k step) as in the GEX profile, by default in 1 % steps."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(unknown)}; scenarios: {', '.join(SCENARIOS)}")
    greeks, x = _exposures(chain, positions)
    return scenario_tables(greeks, x, scenarios=scenarios, half_width=half_width, step=step)


def _plan(books: Books, scenarios, copies: dict) -> tuple[list, list[Task]]:
    """Per applicable (book, scenario): (book, scenario, t1, the task at t1 with the old vols, the scenario book's
    task or None for spot_vol); and every distinct task to price on the grid (each book's base first)."""
    plan, tasks, monthly = [], {}, {}
    for book in range(len(books)):
        t0 = books.t0_ms[book]
        tasks.setdefault(Task(book, t0), None)
        for scenario in scenarios:
            t1 = _horizon(books, book, scenario, monthly)
            if t1 is None:
                continue
            moved = Task(book, t1)
            state = Task(book, t0, copies[scenario]) if scenario in copies else moved
            state = None if scenario == "spot_vol" else state
            tasks.setdefault(moved, None)
            if state is not None:
                tasks.setdefault(state, None)
            plan.append((book, scenario, t1, moved, state))
    return plan, list(tasks)


def scenario_tables(greeks, x, *, scenarios=SCENARIOS, half_width: float = 0.25, step: float = 0.01) -> pl.DataFrame:
    """:func:`scenario_profiles` from the greeks and position join of transforms.gex.exposure (``x``): every book's
    scenarios priced in one batched kernel call on the grid, their zero-gamma brackets refined together (no
    scenarios: the empty table, nothing priced)."""
    if not scenarios:
        return _frame([])
    ratio = 1.0 + _grid_steps(half_width, step)
    centre = int(np.flatnonzero(ratio == 1.0)[0])
    shifted = [s for s in scenarios if s in IV_SHIFTS]
    books = Books(x, tuple(IV_SHIFTS[s] for s in shifted))
    plan, tasks = _plan(books, scenarios, {s: i + 1 for i, s in enumerate(shifted)})
    gex, delta = books.profiles(tasks, ratio)
    row = {task: i for i, task in enumerate(tasks)}
    nodes = {}
    if "spot_vol" in scenarios:
        priced = greeks.filter(pl.col("is_priced"))
        nodes = priced.partition_by("currency", "snapshot_ts", as_dict=True, maintain_order=True)
    states, smiles = [], {}
    for book, _, _, _, state in plan:
        if state is None:
            smile = smiles[book] = _Smile(books, book, nodes.get(books.keys[book][:2], priced.clear()))
            states.append(smile(ratio))
        else:
            states.append((gex[row[state]], delta[row[state]]))
    strike_roots = all_roots(
        books, ratio, [(state, gex[row[state]]) for (_, _, _, _, state) in plan if state is not None]
    )
    parts = []
    for (book, scenario, t1, moved, state), scenario_state in zip(plan, states, strict=True):
        if state is None:
            roots = grid_roots(lambda r, s=smiles[book]: s(np.asarray(r, dtype=np.float64)), ratio, scenario_state[0])
        else:
            roots = strike_roots.pop(0)
        base = delta[row[Task(book, books.t0_ms[book])]]
        triple = (base[centre], (gex[row[moved]], delta[row[moved]]), scenario_state)
        parts.append((books.keys[book], _columns(scenario, t1, ratio, books.spot(book), triple, roots)))
    out = _frame(parts)
    check(out, SCENARIO_PROFILE, "scenario_profiles")
    return out


__all__ = [
    "IV_SHIFTS",
    "MIN_SIGMA",
    "SCENARIOS",
    "SCENARIO_STEP",
    "STORED_SCENARIOS",
    "is_monthly",
    "scenario_profiles",
    "scenario_tables",
]
