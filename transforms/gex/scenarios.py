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
from transforms.gex.exposure import GROUP, _exposures, _grid_steps, _Profile, _spot
from transforms.pricing.greeks import MS_PER_YEAR
from transforms.pricing.kernels import profile_at_levels

IV_SHIFTS = {"iv_minus_10": -10.0, "iv_minus_5": -5.0, "iv_plus_5": 5.0, "iv_plus_10": 10.0}
SCENARIOS = ("rolloff_next", "rolloff_monthly", *IV_SHIFTS, "spot_vol", "time_24h")
MIN_SIGMA = 0.01  # a vol shift never takes an option below 1 vol point
STORED_SCENARIOS = SCENARIOS  # what compute stores per snapshot (benchmarks/bench_depth.py measures the cost)
SCENARIO_STEP = 0.01  # the stored scenario grid: +-25 % in 1 % steps (the CLI re-prices any grid on the fly)
_DAY_MS = 86_400_000


def is_monthly(expiry: datetime) -> bool:
    """Deribit's monthly expiries are the last Friday of the month."""
    return expiry.weekday() == 4 and (expiry + timedelta(days=7)).month != expiry.month


class _Book:
    """One group's priced options as arrays, re-priced at any spot ratio, time and vols."""

    def __init__(self, group: pl.DataFrame, greeks: pl.DataFrame):
        self.group = group
        self.greeks = greeks
        live = group.filter(pl.col("is_priced") & (pl.col("weight_coins") != 0.0))
        self.t0_ms = int(group["snapshot_ts"][0].timestamp() * 1000)
        self.expiry_ms = live["expiration_ts"].dt.epoch("ms").to_numpy()
        self.forward = live["underlying_price"].to_numpy()
        self.strike = live["strike"].to_numpy()
        self.sigma = live["mark_iv"].to_numpy() / 100.0
        self.weight = live["weight_coins"].to_numpy()
        self.put_weight = np.where((live["option_type"] == "put").to_numpy(), self.weight, 0.0)
        self.expiries = sorted({int(e) for e in self.expiry_ms if e > self.t0_ms})

    def within(self, lo: float, hi: float) -> _Book:
        """The same book restricted to the options with lo < tau <= hi (years) at the snapshot."""
        tau = self.tau(self.t0_ms)
        keep = (tau > lo) & (tau <= hi)
        part = object.__new__(_Book)
        part.__dict__.update(self.__dict__)
        for name in ("expiry_ms", "forward", "strike", "sigma", "weight", "put_weight"):
            setattr(part, name, getattr(self, name)[keep])
        return part

    def tau(self, at_ms: int) -> np.ndarray:
        return (self.expiry_ms - at_ms).astype(np.float64) / MS_PER_YEAR

    def __call__(self, ratio, at_ms: int, sigma=None, sigma_grid=None) -> tuple[np.ndarray, np.ndarray]:
        ratio = np.asarray(ratio, dtype=np.float64)
        if self.weight.size == 0:
            return np.zeros(ratio.size), np.zeros(ratio.size)
        return profile_at_levels(
            self.forward,
            self.strike,
            self.sigma if sigma is None else sigma,
            self.tau(at_ms),
            self.weight,
            self.put_weight,
            ratio,
            sigma_grid=sigma_grid,
        )

    def horizon(self, scenario: str) -> int | None:
        """t1 in epoch ms, or None when the scenario does not apply (no expiry to roll off)."""
        if scenario == "rolloff_next":
            return self.expiries[0] if self.expiries else None
        if scenario == "rolloff_monthly":
            monthly = [e for e in self.expiries if is_monthly(datetime.fromtimestamp(e / 1000, UTC))]
            return monthly[0] if monthly else None
        if scenario == "time_24h":
            return self.t0_ms + _DAY_MS
        return self.t0_ms


SUBGRID = 32  # levels per refinement stage of grid_roots
STAGES = 4  # a 1 % bracket / 31^4 = 1e-8 of spot, then linear: ~1e-15 for a smooth profile


def grid_roots(at, ratio: np.ndarray, gex: np.ndarray) -> list[float]:
    """The ratios where GEX(S') changes sign between grid levels, each refined in STAGES stages of SUBGRID levels
    evaluated in one kernel call each, then linearly inside the last sub-step (well below 1e-12 of spot for a
    smooth profile; fewer kernel evaluations than single-level Brent steps). Same brackets as
    transforms.gex.levels.zero_gamma_roots."""
    nonzero = np.flatnonzero(gex != 0.0)
    roots = []
    for j, k in zip(nonzero[:-1], nonzero[1:], strict=True):
        if (gex[j] < 0.0) == (gex[k] < 0.0):
            continue
        if k != j + 1:
            roots.append(float(ratio[(j + k) // 2]))
            continue
        a, b, fa, fb = float(ratio[j]), float(ratio[k]), float(gex[j]), float(gex[k])
        for _ in range(STAGES):
            sub = np.linspace(a, b, SUBGRID)
            values = at(sub[1:-1])[0]
            xs, fs = sub, np.concatenate([[fa], values, [fb]])
            i = int(np.flatnonzero((fs[:-1] < 0.0) != (fs[1:] < 0.0))[0])
            a, b, fa, fb = float(xs[i]), float(xs[i + 1]), float(fs[i]), float(fs[i + 1])
        roots.append(b if fb == 0.0 else a - fa * (b - a) / (fb - fa))
    return roots


def _scenario_state(book: _Book, scenario: str, t1: int, ratio: np.ndarray, moved: tuple):
    """(GEX, D) of the scenario book on the grid, and a callable giving them at any ratio (for the roots).
    ``moved`` = (GEX, D) at t1 with the old vols, which is the scenario book itself when the vols stay."""
    if scenario in IV_SHIFTS:
        sigma = np.maximum(book.sigma + IV_SHIFTS[scenario] / 100.0, MIN_SIGMA)

        def at(r):
            return book(r, t1, sigma=sigma)
    elif scenario == "spot_vol":
        smile = _Profile(book.group, book.greeks, "sticky_moneyness", "forward")

        def at(r):
            return smile(r)
    else:

        def at(r):
            return book(r, t1)

        return moved[0], moved[1], lambda r: at(np.asarray(r, dtype=np.float64))
    gex, delta = at(ratio)
    return gex, delta, lambda r: at(np.asarray(r, dtype=np.float64))


def _scenario_columns(book: _Book, scenario: str, ratio: np.ndarray, base: tuple, spot: float) -> dict | None:
    """The scenario's columns as numpy arrays (the frame is built once for all groups: polars per-frame overhead
    would cost more than the pricing)."""
    t1 = book.horizon(scenario)
    if t1 is None:
        return None
    centre = int(np.flatnonzero(ratio == 1.0)[0])
    d0 = base[1][centre]  # D(S0, sigma0, t0)
    moved = book(ratio, t1) if t1 != book.t0_ms else base  # D(S', sigma0, t1)
    gex, delta, at = _scenario_state(book, scenario, t1, ratio, moved)
    total = -(delta - d0)
    roots = [r * spot for r in grid_roots(at, ratio, gex)]
    zero = min(roots, key=lambda r: (abs(r - spot), r)) if roots else np.nan
    levels = spot * ratio
    n = ratio.size
    return {
        "scenario": [scenario] * n,
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
    if not parts:
        return pl.DataFrame(schema=SCENARIO_PROFILE)
    keys = [key for key, cols in parts for _ in range(cols["price_level"].size)]
    data = {
        "currency": [k[0] for k in keys],
        "snapshot_ts": [k[1] for k in keys],
        "model": [k[2] for k in keys],
    }
    for name in parts[0][1]:
        values = [cols[name] for _, cols in parts]
        data[name] = sum(values, []) if name == "scenario" else np.concatenate(values)
    ts = SCENARIO_PROFILE["horizon_ts"]
    return (
        pl.DataFrame(data)
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


def scenario_tables(greeks, x, *, scenarios=SCENARIOS, half_width: float = 0.25, step: float = 0.01) -> pl.DataFrame:
    """:func:`scenario_profiles` from the greeks and position join of transforms.gex.exposure (``x``)."""
    ratio = 1.0 + _grid_steps(half_width, step)
    parts = []
    for key, group in x.partition_by(GROUP, as_dict=True, maintain_order=True).items():
        spot = _spot(group)
        book = _Book(group, greeks)
        base = book(ratio, book.t0_ms)
        for scenario in scenarios:
            cols = _scenario_columns(book, scenario, ratio, base, spot)
            if cols is not None:
                parts.append((key, cols))
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
