"""Compile the kernels a compute cycle uses, by pricing a one-option book through the same entry points.

numba compiles a kernel for each signature it is called with; these calls use the types the compute path passes
(C-contiguous, writable float64/int64/bool arrays: :class:`~transforms.pricing.kernel_batch.OptionBatch` and
:func:`~transforms.pricing.kernels.profile_at_levels` make every input so), so afterwards a compute finds every
kernel compiled (or loaded from numba's cache). ``pipelines.jobs.precompile`` runs this on a background thread
while a first run fetches and validates its snapshot. The results are thrown away; no number depends on it.
"""

from __future__ import annotations

import numpy as np

from transforms.pricing.kernel_batch import ALL_EXPIRIES, OptionBatch
from transforms.pricing.kernels import profile_at_levels


def compile_compute_kernels(*, what_ifs: bool = False) -> None:
    """The single-weighting task kernels (``OptionBatch.profiles`` and ``.profile``), and with ``what_ifs`` the
    general kernel with forward delta (the sticky-moneyness scenario): what ``gexflow compute`` prices with. Not the
    forecast's two-weighting kernel, nor the fused sticky-strike kernel of one-off profiles."""
    forward, strike, sigma, weight, put_weight = (np.array([v]) for v in (100.0, 100.0, 0.5, 1.0, 0.0))
    expiry = np.array([86_400_000], dtype=np.int64)
    ratio = np.array([0.9, 1.0, 1.1])
    one = np.zeros(1, dtype=np.int64)
    batch = OptionBatch(forward, strike, sigma, expiry, weight, put_weight, np.ones(1, dtype=np.bool_))
    window = np.full(1, ALL_EXPIRIES[0]), np.full(1, ALL_EXPIRIES[1])
    batch.profiles(one, one + 1, one, *window, ratio)
    batch.profile(0, 1, 0, ratio)
    if not what_ifs:
        return
    tau = np.array([0.1])
    profile_at_levels(forward, strike, sigma, tau, weight, put_weight, ratio, sigma_grid=np.full((1, 3), 0.5))


__all__ = ["compile_compute_kernels"]
