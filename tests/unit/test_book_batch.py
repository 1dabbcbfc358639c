"""The batched pricing behind the depth tables (transforms/gex/book_batch.py) equals one book at a time bit for bit
on the real snapshots: every task against ``profile_at_levels`` of exactly that book's options, and the zero-gamma
brackets refined together against ``grid_roots`` on each book alone. So scenario_profiles and key_levels_by_tenor
kept their numbers when they moved to the batch."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.data_paths import all_snapshot_chains
from transforms.gex.book_batch import MIN_SIGMA, Books, Task, all_roots
from transforms.gex.exposure import GROUP, _exposures, _grid_steps
from transforms.gex.positioning import dealer_positions
from transforms.gex.scenarios import grid_roots
from transforms.pricing.greeks import MS_PER_YEAR
from transforms.pricing.kernels import profile_at_levels

DAY_MS = 86_400_000
SHIFTS = (-10.0, 5.0)


@pytest.fixture(scope="module")
def real():
    chain = all_snapshot_chains()
    positions = pl.concat([dealer_positions(chain, m) for m in ("naive", "customer_long")])
    _, x = _exposures(chain, positions)
    return x, Books(x, SHIFTS)


def _one_book(group: pl.DataFrame, task: Task):
    """(GEX, D) at any ratios of the task's options, priced alone: the pre-batch path of the scenarios."""
    live = group.filter(pl.col("is_priced") & (pl.col("weight_coins") != 0.0))
    expiry = live["expiration_ts"].dt.epoch("ms").to_numpy()
    keep = (expiry > task.window[0]) & (expiry <= task.window[1])
    sigma = live["mark_iv"].to_numpy() / 100.0
    if task.copy:
        sigma = np.maximum(sigma + SHIFTS[task.copy - 1] / 100.0, MIN_SIGMA)
    weight = live["weight_coins"].to_numpy()
    put = np.where((live["option_type"] == "put").to_numpy(), weight, 0.0)
    tau = (expiry - task.at_ms).astype(np.float64) / MS_PER_YEAR
    arrays = [
        a[keep] for a in (live["underlying_price"].to_numpy(), live["strike"].to_numpy(), sigma, tau, weight, put)
    ]

    def at(ratio):
        ratio = np.asarray(ratio, dtype=np.float64)
        if arrays[0].size == 0:
            return np.zeros(ratio.size), np.zeros(ratio.size)
        return profile_at_levels(*arrays, ratio)

    return at


def _tasks(books: Books) -> list[Task]:
    tasks = []
    for b in range(len(books)):
        t0 = books.t0_ms[b]
        tasks += [
            Task(b, t0),
            Task(b, t0 + DAY_MS),
            Task(b, t0, 1),
            Task(b, t0, 2),
            Task(b, t0, 0, (t0, t0 + 7 * DAY_MS)),
        ]
        tasks += [Task(b, t0, 0, (t0 + DAY_MS, t0 + 30 * DAY_MS))]
        if books.expiries(b):
            tasks.append(Task(b, books.expiries(b)[0]))
    return tasks


def test_every_task_equals_its_book_priced_alone_bit_for_bit(real):
    x, books = real
    groups = x.partition_by(GROUP, as_dict=True, maintain_order=True)
    assert list(groups) == books.keys
    ratio = 1.0 + _grid_steps(0.25, 0.0025)
    tasks = _tasks(books)
    gex, delta = books.profiles(tasks, ratio)
    for task, g, d in zip(tasks, gex, delta, strict=True):
        expected = _one_book(groups[books.keys[task.book]], task)(ratio)
        assert np.array_equal(g, expected[0]) and np.array_equal(d, expected[1]), task
    assert len(tasks) > 50 and float(np.abs(gex).max()) > 0.0


def test_roots_refined_together_equal_grid_roots_on_each_book_alone(real):
    x, books = real
    groups = x.partition_by(GROUP, as_dict=True, maintain_order=True)
    ratio = 1.0 + _grid_steps(0.25, 0.01)
    tasks = _tasks(books)
    gex, _ = books.profiles(tasks, ratio)
    together = all_roots(books, ratio, list(zip(tasks, gex, strict=True)))
    found = 0
    for task, g, roots in zip(tasks, gex, together, strict=True):
        alone = grid_roots(_one_book(groups[books.keys[task.book]], task), ratio, g)
        assert roots == alone, task
        found += len(roots)
    assert found >= 10  # the real books do change sign within +-25 %


def test_a_snapshot_with_two_index_prices_is_refused():
    chain = all_snapshot_chains().filter(pl.col("currency") == "BTC")
    positions = dealer_positions(chain, "naive")
    _, x = _exposures(chain, positions)
    broken = x.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(1.0).otherwise(pl.col("index_price")).alias("index_price")
    )
    books = Books(broken)
    with pytest.raises(ValueError, match="need exactly one index_price per snapshot"):
        books.spot(0)
