"""Key levels of the two recorded API snapshots, pinned in tests/golden/key_levels.json.

Regenerate on purpose only: ``GEXFLOW_REGEN_GOLDEN=1 pytest tests/unit/test_golden.py`` (then review the diff).
"""

from __future__ import annotations

import json
import math
import os

import polars as pl
import pytest

from tests.data_paths import GOLDEN, all_snapshot_chains
from transforms.gex.exposure import key_levels
from transforms.gex.positioning import dealer_positions

GOLDEN_FILE = GOLDEN / "key_levels.json"
PINNED = ("total_gex_usd", "zero_gamma", "call_wall", "put_wall")
RTOL = 1e-9


def _current() -> list[dict]:
    chain = all_snapshot_chains()
    positions = pl.concat([dealer_positions(chain, m) for m in ("naive", "customer_long")])
    levels = key_levels(chain, positions).sort("snapshot_ts", "currency", "model")
    return [
        {
            "currency": r["currency"],
            "snapshot_ts": r["snapshot_ts"].isoformat(timespec="milliseconds"),
            "model": r["model"],
            **{k: r[k] for k in PINNED},
        }
        for r in levels.iter_rows(named=True)
    ]


def test_key_levels_of_the_recorded_snapshots_match_the_golden_file():
    current = _current()
    if os.environ.get("GEXFLOW_REGEN_GOLDEN") == "1":  # noqa: TID251 -- tests may read the regen flag
        GOLDEN_FILE.write_text(json.dumps(current, indent=2) + "\n")
    if not GOLDEN_FILE.exists():
        pytest.fail(f"{GOLDEN_FILE} is missing: run with GEXFLOW_REGEN_GOLDEN=1 to create it")
    golden = json.loads(GOLDEN_FILE.read_text())
    assert len(current) == len(golden) == 8
    for now, pinned in zip(current, golden, strict=True):
        key = (pinned["currency"], pinned["snapshot_ts"], pinned["model"])
        assert (now["currency"], now["snapshot_ts"], now["model"]) == key
        for field in PINNED:
            a, b = now[field], pinned[field]
            if b is None:
                assert a is None, (key, field, a)
            else:
                assert a is not None and math.isclose(a, b, rel_tol=RTOL), (key, field, a, b)


def test_the_golden_file_covers_both_snapshots_currencies_and_models():
    golden = json.loads(GOLDEN_FILE.read_text())
    assert {(g["currency"], g["snapshot_ts"][:10], g["model"]) for g in golden} == {
        (c, d, m) for c in ("BTC", "ETH") for d in ("2026-01-05", "2026-07-31") for m in ("naive", "customer_long")
    }


def test_the_zero_gamma_of_each_recorded_snapshot_is_a_sign_change_of_the_scalar_reference_profile():
    from tests import reference as ref
    from tests.chains import reference_options

    chain = all_snapshot_chains()
    positions = dealer_positions(chain, "naive")
    levels = key_levels(chain, positions)
    for r in levels.iter_rows(named=True):
        one = chain.filter((pl.col("currency") == r["currency"]) & (pl.col("snapshot_ts") == r["snapshot_ts"]))
        options = reference_options(one, positions)
        for root in r["zero_gamma_roots"]:
            below = ref.profile_point(options, root / r["spot"] * (1 - 1e-9))[0]
            above = ref.profile_point(options, root / r["spot"] * (1 + 1e-9))[0]
            assert (below < 0) != (above < 0), (r["currency"], r["snapshot_ts"], root, below, above)
