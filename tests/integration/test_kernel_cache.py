"""numba's cache shared by processes: kernels compiled by different processes load right in a third.

Found when two gexflow processes compiled into the package's numba cache at the same time: the kernel factories
that compile one body per value of a closure constant (``gauss_terms._accumulator``, ``kernel_batch._task_kernel``,
``kernels._general_accumulator``) made functions of one qualname, and numba names machine-code symbols by qualname
plus a counter unique only within a process. Two processes each compiling one variant gave both the same symbol; a
third that loaded both from the cache ran one variant's code for the other (a one-weighting profile priced by the
two-weighting loop, premium-adjusted delta by the forward one), and a caller compiled then kept the wrong code in
the cache. ``gauss_terms.njit_variant`` gives each variant its own
qualname. The first test failed before that; the second names the rule.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# prices with the variants named in argv[1] (comma-separated, in that order); prints one hex number per variant
CHILD = r"""
import sys
import numpy as np
from transforms.pricing.kernel_batch import ALL_EXPIRIES, OptionBatch
from transforms.pricing.kernels import profile_at_levels

rng = np.random.default_rng(3)
n, m = 40, 21
f = 60000 * np.exp(rng.normal(0, 0.02, n)); k = f * np.exp(rng.normal(0, 0.3, n))
sg = rng.uniform(0.2, 1.2, n); tau = rng.uniform(0.01, 1.0, n)
w = rng.normal(0, 50, n); p = np.where(rng.random(n) < 0.5, w, 0.0)
ratio = np.exp(np.linspace(-0.2, 0.2, m))
grid = np.ascontiguousarray(np.broadcast_to(sg[:, None], (n, m)))
expiry = (tau * 365 * 86_400_000).astype(np.int64)
two = OptionBatch(*(np.concatenate([a, a]) for a in (f, k, sg, expiry)), np.concatenate([w, 2 * w]),
                  np.concatenate([p, 2 * p]), np.ones(2 * n, dtype=bool))
one = np.zeros(1, dtype=np.int64)
window = np.full(1, ALL_EXPIRIES[0]), np.full(1, ALL_EXPIRIES[1])
out = []
for variant in filter(None, sys.argv[1].split(",")):
    if variant in ("forward", "adjusted"):
        adjusted = np.full(n, variant == "adjusted")
        r = profile_at_levels(f, k, sg, tau, w, p, ratio, sigma_grid=grid, premium_adjusted=adjusted)
    elif variant == "one":
        r = two.profiles(one, one + n, one, *window, ratio)
    else:
        r = two.profiles(one, one + n, one, *window, ratio, pair_lo=one + n)
    out.append(float(sum(np.abs(np.asarray(a)).sum() for a in r)).hex())
print(" ".join(out))
"""


def _price(variants: str, cache: Path) -> list[str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, variants], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


@pytest.mark.parametrize("first, second", [("forward", "adjusted"), ("one", "pair")])
def test_variants_compiled_by_two_processes_price_right_in_a_third(tmp_path, first, second):
    shared = tmp_path / "shared-cache"
    _price("", shared)  # compiles what importing compiles (greeks' ufunc), so A and B count their compiles alike
    _price(first, shared)  # process A compiles one variant (and what it calls) into the cache
    _price(second, shared)  # process B the other one
    expected = _price(f"{first},{second}", tmp_path / "own-cache")  # nothing from any other process
    assert expected[0] != expected[1]  # the two variants differ, so a mix-up cannot go unseen
    assert _price(f"{first},{second}", shared) == expected  # process C: both from the cache
    assert _price(f"{second},{first}", shared) == expected[::-1]


def test_no_two_kernels_share_a_qualified_name():
    """The rule behind the fix: numba's symbols and cache files are named by module and qualname."""
    from transforms.pricing import gauss_terms, greeks, kernel_batch, kernels

    kernels_seen = {id(v): v for m in (gauss_terms, greeks, kernel_batch, kernels) for v in vars(m).values()}
    names = [(d.py_func.__module__, d.py_func.__qualname__) for d in kernels_seen.values() if hasattr(d, "py_func")]
    assert len(names) >= 10
    assert len(set(names)) == len(names), sorted(names)
