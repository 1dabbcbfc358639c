"""The batched key levels and profiles (transforms/gex/levels_batch.py) equal the per-group code bit for bit.

``compute`` stores every sticky-strike gex_profile and key_levels row through the batch; the per-group path
(``exposure._per_group``) is what ``key_levels`` and ``gex_profile`` run for one-off calls. The recorded API
snapshots, all four (two currencies, two timestamps), two positioning models, in one call.
"""

from __future__ import annotations

import polars as pl

from tests.data_paths import all_snapshot_chains
from transforms.gex.exposure import _exposures, _per_group
from transforms.gex.levels import _levels_table
from transforms.gex.levels_batch import key_levels_of, profiles_and_levels_of
from transforms.gex.positioning import dealer_positions


def test_batched_profiles_and_levels_equal_the_per_group_ones_bit_for_bit():
    chain = all_snapshot_chains()
    positions = pl.concat([dealer_positions(chain, m) for m in ("naive", "customer_long")])
    greeks, x = _exposures(chain, positions)
    frames, rows = _per_group(greeks, x, 0.25, 0.0025, "sticky_strike", "forward", profiles=True, levels=True)
    batch_frames, batch_rows = profiles_and_levels_of(greeks, x, 0.25, 0.0025)
    assert len(frames) == len(batch_frames) == 8  # 2 currencies x 2 snapshots x 2 models
    assert all(a.equals(b) for a, b in zip(frames, batch_frames, strict=True))  # every column, every bit
    want = _levels_table(rows, greeks)
    assert _levels_table(batch_rows, greeks).equals(want)
    assert key_levels_of(greeks, x).equals(want)
    assert want["zero_gamma"].null_count() < want.height  # levels were found, not all NULL on both sides
