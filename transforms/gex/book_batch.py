"""Every (currency, snapshot_ts, model) dealer book of a position join as slices of one set of option arrays, priced
in batched kernel calls (issue 15: the depth tables' cost per snapshot).

Pure. ``Books(x)`` takes the greeks and position join of ``transforms.gex.exposure._exposures`` (sorted by
currency, snapshot_ts, model, instrument), keeps each book's live options (priced, nonzero weight) in that order
-- the arrays the scenarios priced each group with before they were batched -- and prices many (book, as-of time, expiry
window, vol copy) tasks at once through ``transforms.pricing.kernel_batch``, whose per-level sums equal the
one-book ``profile_at_levels`` call bit for bit. Vol copies are the book's IVs shifted by k vol points (floored
at ``MIN_SIGMA``), stored as further copies of the option arrays, so a vol scenario is just another task.

:func:`refine_roots` is ``transforms.gex.scenarios.grid_roots`` for many brackets at once: the same SUBGRID
levels per stage, the same bracket choice and the same final linear step, with every bracket's levels of a
stage priced in one kernel call, so the roots are the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from transforms.gex.exposure import GROUP
from transforms.pricing.kernel_batch import ALL_EXPIRIES, OptionBatch, run_tasks

MIN_SIGMA = 0.01  # a vol shift never takes an option below 1 vol point
SUBGRID = 32  # levels per refinement stage of grid_roots
STAGES = 4  # a 1 % bracket / 31^4 = 1e-8 of spot, then linear: ~1e-15 for a smooth profile


@dataclass(frozen=True)
class Task:
    """One book priced at one as-of time (epoch ms), over the expiries in (after, until], with vol copy ``copy``."""

    book: int
    at_ms: int
    copy: int = 0
    window: tuple[int, int] = ALL_EXPIRIES


class Books:
    """The books of ``x`` (keys, spot, t0 in epoch ms, slice of live options) and their batched pricing."""

    def __init__(self, x: pl.DataFrame, shifts: tuple[float, ...] = ()):
        sizes = x.group_by(GROUP, maintain_order=True).agg(
            pl.len().alias("rows"),
            pl.col("index_price").drop_nulls().unique().alias("spots"),
            (pl.col("is_priced") & (pl.col("weight_coins") != 0.0)).sum().alias("live"),
        )
        self.keys = [tuple(k) for k in sizes.select(GROUP).iter_rows()]
        self.spots = sizes["spots"].to_list()
        self.t0_ms = [int(k[1].timestamp() * 1000) for k in self.keys]  # the t0 the scenarios always had
        self.row_start = np.concatenate([[0], np.cumsum(sizes["rows"].to_numpy())]).astype(np.int64)
        self.start = np.concatenate([[0], np.cumsum(sizes["live"].to_numpy())]).astype(np.int64)
        live = x.filter(pl.col("is_priced") & (pl.col("weight_coins") != 0.0))
        self.expiry_ms = live["expiration_ts"].dt.epoch("ms").to_numpy()
        self.forward = live["underlying_price"].to_numpy()
        self.strike = live["strike"].to_numpy()
        self.sigma = live["mark_iv"].to_numpy() / 100.0
        self.tau_years = live["tau_years"].to_numpy()
        # _Profile's sigma, divided by polars (which multiplies by the reciprocal: not the same last bit as numpy)
        self.profile_sigma = live.select(pl.col("mark_iv") / 100.0).to_series().to_numpy()
        self.weight = live["weight_coins"].to_numpy()
        self.put_weight = np.where((live["option_type"] == "put").to_numpy(), self.weight, 0.0)
        self.shifts = (0.0, *shifts)
        sigmas = [self.sigma] + [np.maximum(self.sigma + k / 100.0, MIN_SIGMA) for k in shifts]
        n = self.sigma.size
        tile = len(sigmas)
        self.copy_size = n
        self.batch = OptionBatch(
            np.tile(self.forward, tile),
            np.tile(self.strike, tile),
            np.concatenate(sigmas),
            np.tile(self.expiry_ms, tile),
            np.tile(self.weight, tile),
            np.tile(self.put_weight, tile),
            np.ones(n * tile, dtype=np.bool_),
        )

    def __len__(self) -> int:
        return len(self.keys)

    def spot(self, book: int) -> float:
        spots = self.spots[book]
        if len(spots) != 1:
            key = f"{self.keys[book][0]} {self.keys[book][1]}"
            raise ValueError(f"need exactly one index_price per snapshot, {key} has {len(spots)}")
        return float(spots[0])

    def options(self, book: int) -> slice:
        return slice(int(self.start[book]), int(self.start[book + 1]))

    def expiries(self, book: int) -> list[int]:
        """The book's live expiries after its snapshot, ascending (epoch ms)."""
        expiries = np.unique(self.expiry_ms[self.options(book)])
        return expiries[expiries > self.t0_ms[book]].tolist()

    def _arrays(self, tasks: list[Task]) -> list[np.ndarray]:
        lo = np.array([self.start[t.book] + t.copy * self.copy_size for t in tasks], dtype=np.int64)
        hi = lo + np.array([self.start[t.book + 1] - self.start[t.book] for t in tasks], dtype=np.int64)
        at = np.array([t.at_ms for t in tasks], dtype=np.int64)
        after = np.array([t.window[0] for t in tasks], dtype=np.int64)
        until = np.array([t.window[1] for t in tasks], dtype=np.int64)
        return [lo, hi, at, after, until]

    def profiles(self, tasks: list[Task], ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gex_usd, delta_coins), tasks x levels, every task at the same ascending ratios S'/S0."""
        if not tasks:
            return np.zeros((0, ratio.size)), np.zeros((0, ratio.size))
        return self.batch.profiles(*self._arrays(tasks), ratio)

    def at_levels(self, tasks: list[Task], levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gex_usd, delta_coins), tasks x levels, task t at its own ascending ratios ``levels[t]``."""
        levels = np.ascontiguousarray(levels, dtype=np.float64)
        if not tasks:
            return np.zeros(levels.shape), np.zeros(levels.shape)
        lo, hi, at, after, until = self._arrays(tasks)
        out = run_tasks(self.batch.arrays, lo, hi, np.full(lo.size, -1, dtype=np.int64), at, after, until, levels)
        return out[:, 0], out[:, 1]


def sign_brackets(ratio: np.ndarray, gex: np.ndarray) -> tuple[list[float], list[tuple[float, float, float, float]]]:
    """grid_roots' first pass over one profile: (roots at a middle level between exact zeros, in grid order with
    None where a bracket is to be refined; the brackets (a, b, f(a), f(b)) to refine). The sign changes are found
    with array operations (consecutive nonzero levels of opposite sign, as transforms.gex.levels.zero_gamma_roots
    finds them); only the few changes are visited in Python."""
    nonzero = np.flatnonzero(gex != 0.0)
    negative = gex[nonzero] < 0.0
    change = np.flatnonzero(negative[:-1] != negative[1:])
    roots: list = []
    brackets = []
    for j, k in zip(nonzero[change].tolist(), nonzero[change + 1].tolist(), strict=True):
        if k != j + 1:
            roots.append(float(ratio[(j + k) // 2]))
            continue
        roots.append(None)
        brackets.append((float(ratio[j]), float(ratio[k]), float(gex[j]), float(gex[k])))
    return roots, brackets


def refine_roots(books: Books, tasks: list[Task], brackets: list[tuple[float, float, float, float]]) -> list[float]:
    """The root of GEX in each bracket (a, b, f(a), f(b)) of ``tasks[i]``'s profile, as grid_roots refines it."""
    state = [list(b) for b in brackets]
    inner = np.arange(1, SUBGRID - 1)
    for _ in range(STAGES):
        if not state:
            break
        subs = np.array([np.linspace(a, b, SUBGRID) for a, b, _, _ in state])
        values = books.at_levels(tasks, subs[:, inner])[0]
        for s, (sub, value) in enumerate(zip(subs, values, strict=True)):
            fs = np.concatenate([[state[s][2]], value, [state[s][3]]])
            i = int(np.flatnonzero((fs[:-1] < 0.0) != (fs[1:] < 0.0))[0])
            state[s] = [float(sub[i]), float(sub[i + 1]), float(fs[i]), float(fs[i + 1])]
    return [b if fb == 0.0 else a - fa * (b - a) / (fb - fa) for a, b, fa, fb in state]


def all_roots(books: Books, ratio: np.ndarray, profiles: list[tuple[Task, np.ndarray]]) -> list[list[float]]:
    """grid_roots (as ratios S'/S0) of each (task, GEX on ``ratio``) profile, every bracket refined together."""
    found, tasks, brackets = [], [], []
    for task, gex in profiles:
        roots, pending = sign_brackets(ratio, gex)
        found.append(roots)
        tasks += [task] * len(pending)
        brackets += pending
    refined = iter(refine_roots(books, tasks, brackets))
    return [[next(refined) if r is None else r for r in roots] for roots in found]


__all__ = ["Books", "MIN_SIGMA", "STAGES", "SUBGRID", "Task", "all_roots", "refine_roots", "sign_brackets"]
