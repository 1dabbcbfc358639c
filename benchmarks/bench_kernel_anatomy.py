"""Benchmark: where the fused profile kernel's cycles go (the table in the README's Performance section).

    python -m benchmarks.bench_kernel_anatomy

Builds variants of ``transforms/pricing/kernels.py`` in temporary modules (the per-element code of
``transforms/pricing/gauss_terms.py`` cut down in a copy the kernel copy imports; never imported by the
product) and times each on one thread and on two, on the synthetic
1,000 x 400 case of ``bench_profile``:

    shipped      the kernel as it is
    no N()       exp(-d1^2/2) only: the delta term is E * w / 2 (no Mills ratio, no division)
    skeleton     neither exp nor N(): d1, its square, the two accumulations
    poly N()     N() from a degree-7 polynomial instead of the rational (no division; timing only, wrong values)

plus a stream of ``vdivpd`` alone. Cycles per 4 evaluations assume the clock this benchmark measures with a chain of
dependent FMAs (latency 4 cycles on Zen 3). Results go to benchmarks/results/ only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PRICING = Path(__file__).resolve().parents[1] / "transforms" / "pricing"
KERNELS = PRICING / "kernels.py"
TERMS = PRICING / "gauss_terms.py"

ROUNDS = 5
_N_START = "    db = np.float64(d).view(np.int64)\n    sd = db & sign_i  # sign bit of d1\n"
_RETURN = "    return big, base + (big * ws) * (num / den)\n"
_EXP_START = "    nf = s * nlog2e + magic\n"

VARIANTS = {
    "no N()": lambda src: _cut(src, _N_START, _RETURN, "    return big, big * hw\n"),
    "skeleton": lambda src: _cut(src, _EXP_START, _RETURN, "    return s, d\n"),
    "poly N()": lambda src: _cut(
        src,
        _N_START,
        _RETURN,
        _N_START
        + "    pol = ((((((p7 * d + p6) * d + p5) * d + p4) * d + p3) * d + p2) * d + p1) * d + p0\n"
        + "    ws = np.int64(np.float64(ws_keep).view(np.int64) ^ sd).view(np.float64)\n"
        + "    base = hwm + np.int64(np.float64(hw).view(np.int64) ^ sd).view(np.float64)\n"
        + "    return big, base + (big * ws) * pol\n",
    ),
}


def _cut(src: str, start: str, end: str, replacement: str) -> str:
    """Replace src[start .. end] (inclusive) in _terms; fail loudly if the kernel no longer has these lines."""
    a = src.find(start)
    b = src.find(end)
    if a < 0 or b < a:
        raise SystemExit(f"bench_kernel_anatomy: gauss_terms.py changed, no {start.strip()!r} .. {end.strip()!r}")
    return src[:a] + replacement + src[b + len(end) :]


def _load(path: Path, source: str):
    path.write_text(source.replace("cache=True", "cache=False"))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def load_variant(name: str, terms_source: str, folder: Path):
    """The kernel module over a modified copy of gauss_terms (``terms_source``), both in ``folder``."""
    n = len(list(folder.iterdir()))
    terms = _load(folder / f"terms_variant_{n}.py", terms_source)
    kernel_source = KERNELS.read_text().replace("transforms.pricing.gauss_terms import", f"{terms.__name__} import")
    return _load(folder / f"kernel_variant_{n}.py", kernel_source)


@numba.njit(fastmath={"contract"})
def _fma_chain(n, x):
    a = x
    for _ in range(n):
        a = a * 1.0000001 + 1e-9
    return a


@numba.njit(fastmath={"contract"})
def _divisions(a, b, out, reps):
    for _ in range(reps):
        for j in range(a.size):
            out[j] += a[j] / b[j]


def clock_hz() -> float:
    _fma_chain(10, 1.0)
    n = 100_000_000
    best = min(_timed(lambda: _fma_chain(n, 1.0)) for _ in range(3))
    return n * 4 / best  # one dependent FMA (4 cycles) per iteration


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def division_cycles(hz: float) -> float:
    a, b, out = np.random.default_rng(1).random(400) + 1.0, np.random.default_rng(2).random(400) + 1.0, np.zeros(400)
    _divisions(a, b, out, 1)
    reps = 100_000
    seconds = min(_timed(lambda: _divisions(a, b, out, reps)) for _ in range(3))
    return seconds * hz / (reps * a.size / 4)


def main() -> int:
    from benchmarks.bench_profile import median_seconds, synthetic_case
    from transforms.pricing import kernels

    case = synthetic_case()
    vectors = case.evals / 4
    hz = clock_hz()
    source = TERMS.read_text()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, tmp)
        modules = {"shipped": kernels} | {n: load_variant(n, make(source), Path(tmp)) for n, make in VARIANTS.items()}
        best: dict[tuple[str, int], float] = {}
        for _ in range(ROUNDS):  # interleaved rounds, best median kept: this shared machine is noisy
            for name, module in modules.items():
                for blocks in (1, 2):

                    def run(module=module, blocks=blocks):
                        return module.gamma_delta_profile(
                            case.forward, case.strike, case.sigma, case.tau, case.weight, case.put_weight, case.ratio,
                            blocks,
                        )  # fmt: skip

                    # blocks=1: one block, so one thread does all the work
                    ms = median_seconds(run, repeats=300, warmup=20) * 1e3
                    best[name, blocks] = min(ms, best.get((name, blocks), ms))
        for name in modules:
            row = {"variant": name}
            for blocks in (1, 2):
                row[f"ms_{blocks}"] = best[name, blocks]
                row[f"cycles_per_4_{blocks}"] = best[name, blocks] * 1e-3 * hz * blocks / vectors
            rows.append(row)
    div = division_cycles(hz)
    lines = [
        f"# Kernel anatomy (synthetic 1,000 x 400; clock ~{hz / 1e9:.2f} GHz from a dependent FMA chain; "
        f"load average {os.getloadavg()[0]:.2f})",
        "",
        "| variant | 1 thread ms | cycles / 4 evals | 2 threads ms | G evals/s (2 threads) |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['variant']} | {r['ms_1']:.3f} | {r['cycles_per_4_1']:.1f} | {r['ms_2']:.3f} | "
        f"{case.evals / r['ms_2'] / 1e6:.2f} |"
        for r in rows
    ]
    lines += ["", f"A stream of divisions alone (`a[j] / b[j]`, 4 lanes per `vdivpd`): {div:.1f} cycles per 4 lanes."]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_kernel_anatomy.md").write_text(text + "\n")
    (RESULTS / "bench_kernel_anatomy.json").write_text(json.dumps({"clock_hz": hz, "rows": rows, "div": div}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
