"""Benchmark: the fused GEX/delta profile kernel against peer-style implementations.

    python -m benchmarks.bench_profile            # everything (a few minutes, most of it compiling)
    python -m benchmarks.bench_profile --quick    # skip the fastmath-flag and cold-process sections

One run times, for the real 2026-07-31 BTC chain (854 options x 201 levels) and a synthetic
1,000 x 400 chain (all inputs distinct, every weight non-zero):

    ours     transforms.pricing.kernels.gamma_delta_profile (numba, float64, the only dtype: the engine is
             tested against a scalar reference to 1e-12 relative, which float32 cannot meet)
    (a)      a peer-style Python loop calling scipy.stats.norm.cdf / .pdf per option per level (timed on
             a subset of options and extrapolated linearly: the full run would take minutes)
    (b)      vectorised numpy + scipy.special.ndtr over the (options x levels) matrix
    (c)      py_vollib_vectorized (if installed: ``pip install -e .[bench]``), its Black-Scholes greeks
             with r = 0 on the moved forward (= Black-76; its model='black' greeks raise TypeError)

Timings are the median of many repeats after a warm-up. Results go to benchmarks/results/ only
(including the numba cache this process uses), never elsewhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numba

RESULTS = Path(__file__).resolve().parent / "results"
RESULTS.mkdir(parents=True, exist_ok=True)
# Keep this process's compiled-kernel cache inside benchmarks/results/ (set before transforms is imported).
numba.config.CACHE_DIR = str(RESULTS / "numba_cache")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from tests.data_paths import REPO_ROOT, snapshot_chain  # noqa: E402
from transforms.gex.exposure import _exposures, _Profile, gex_profile  # noqa: E402
from transforms.gex.positioning import dealer_positions  # noqa: E402
from transforms.pricing import kernels  # noqa: E402


def median_seconds(fn, *, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- inputs -------------------------------------------------------------------------------------------------


class Case:
    """Per-option arrays of one profile problem (every priced option, as a peer script would loop over)."""

    def __init__(self, name, forward, strike, sigma, tau, weight, is_put, ratio):
        self.name = name
        self.forward, self.strike, self.sigma, self.tau, self.weight = forward, strike, sigma, tau, weight
        self.is_put = is_put
        self.put_weight = np.where(is_put, weight, 0.0)
        self.ratio = ratio
        self.evals = forward.size * ratio.size


def real_case() -> tuple[Case, pl.DataFrame, pl.DataFrame]:
    chain = snapshot_chain("BTC", "20260731T113322Z")
    positions = dealer_positions(chain, "naive")
    greeks, x = _exposures(chain, positions)
    live = x.filter(pl.col("is_priced"))
    ratio = 1.0 + np.arange(-100, 101) * 0.0025
    case = Case(
        "real BTC 2026-07-31 (854 x 201)",
        live["underlying_price"].to_numpy(),
        live["strike"].to_numpy(),
        live["mark_iv"].to_numpy() / 100.0,
        live["tau_years"].to_numpy(),
        live["weight_coins"].to_numpy(),
        (live["option_type"] == "put").to_numpy(),
        ratio,
    )
    return case, chain, positions


def synthetic_case(n: int = 1_000, levels: int = 400, seed: int = 7) -> Case:
    """A Deribit-like chain: expiries from a day to a year, strikes +-3 sd, a skewed smile, random OI."""
    rng = np.random.default_rng(seed)
    spot = 64_000.0
    days = rng.choice([1, 2, 3, 7, 14, 21, 28, 56, 91, 119, 182, 245, 329], n).astype(float)
    tau = days / 365.0 - rng.uniform(0.0, 0.5 / 365.0, n)
    atm = rng.uniform(0.35, 0.65, n)
    z = rng.normal(0.0, 1.0, n)
    strike = np.round(spot * np.exp(z * atm * np.sqrt(tau) * 1.5) / 100.0) * 100.0
    sigma = atm * (1.0 + 0.15 * z * z - 0.05 * z) + rng.uniform(0.0, 0.01, n)  # all distinct
    forward = spot * (1.0 + 0.05 * tau)
    weight = rng.lognormal(4.0, 1.5, n) * rng.choice([-1.0, 1.0], n)
    ratio = 1.0 + np.linspace(-0.25, 0.25, levels)
    return Case(f"synthetic ({n} x {levels})", forward, strike, sigma, tau, weight, rng.random(n) < 0.5, ratio)


# --- implementations ------------------------------------------------------------------------------------------


def ours(case: Case, n_blocks: int):
    return kernels.gamma_delta_profile(
        case.forward, case.strike, case.sigma, case.tau, case.weight, case.put_weight, case.ratio, n_blocks
    )


def peer_loop(case: Case, n_options: int):
    """What public GEX scripts do: a Python double loop with scipy.stats.norm per option per level."""
    from scipy.stats import norm

    gex = np.zeros(case.ratio.size)
    delta = np.zeros(case.ratio.size)
    for j, m in enumerate(case.ratio):
        for i in range(n_options):
            f = case.forward[i] * m
            vs = case.sigma[i] * math.sqrt(case.tau[i])
            d1 = (math.log(f / case.strike[i]) + 0.5 * vs * vs) / vs
            gex[j] += case.weight[i] * norm.pdf(d1) / (f * vs) * f * f * 0.01
            delta[j] += case.weight[i] * (norm.cdf(d1) - (1.0 if case.is_put[i] else 0.0))
    return gex, delta


def numpy_ndtr(case: Case):
    from scipy.special import ndtr

    f = case.forward[:, None] * case.ratio[None, :]
    vs = (case.sigma * np.sqrt(case.tau))[:, None]
    d1 = (np.log(f / case.strike[:, None]) + 0.5 * vs * vs) / vs
    pdf = np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    gex = (case.weight[:, None] * pdf * f / vs * 0.01).sum(axis=0)
    delta = (case.weight[:, None] * ndtr(d1) - case.put_weight[:, None]).sum(axis=0)
    return gex, delta


def vollib(case: Case):
    from py_vollib_vectorized import vectorized_delta, vectorized_gamma

    f = (case.forward[:, None] * case.ratio[None, :]).ravel()
    k = np.repeat(case.strike, case.ratio.size)
    t = np.repeat(case.tau, case.ratio.size)
    s = np.repeat(case.sigma, case.ratio.size)
    flag = np.where(np.repeat(case.is_put, case.ratio.size), "p", "c")
    # model='black' raises TypeError in 0.1.1; Black-Scholes with r = 0 on the forward is Black-76
    d = vectorized_delta(flag, f, k, t, 0.0, s, model="black_scholes", return_as="numpy").reshape(-1, case.ratio.size)
    g = vectorized_gamma(flag, f, k, t, 0.0, s, model="black_scholes", return_as="numpy").reshape(-1, case.ratio.size)
    fm = f.reshape(-1, case.ratio.size)
    return (case.weight[:, None] * g * fm * fm * 0.01).sum(axis=0), (case.weight[:, None] * d).sum(axis=0)


def vollib_available() -> str | None:
    try:
        import py_vollib_vectorized  # noqa: F401

        one = np.array([1.0])
        vollib(Case("probe", one * 6e4, one * 6e4, one * 0.5, one * 0.1, one, np.array([False]), one))
    except Exception as exc:  # report why it is skipped rather than fail the run
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return None


def max_rel_diff(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# --- sections -------------------------------------------------------------------------------------------------


def bench_case(case: Case, threads: int, *, peer_subset: int, include_vollib: bool) -> list[dict]:
    rows = []
    reference = ours(case, threads)

    def row(label, seconds, evals=case.evals, result=None, note=""):
        rows.append(
            {
                "case": case.name,
                "implementation": label,
                "ms_per_profile": seconds * 1e3,
                "evals_per_s": evals / seconds,
                "max_rel_diff_gex": None if result is None else max_rel_diff(result[0], reference[0]),
                "max_rel_diff_delta": None if result is None else max_rel_diff(result[1], reference[1]),
                "note": note,
            }
        )

    skipped = int(np.sum(case.weight == 0.0))
    numba.set_num_threads(threads)
    row(
        f"ours, numba kernel, {threads} threads",
        median_seconds(lambda: ours(case, threads), repeats=300),
        result=reference,
        note=f"same inputs as the peers; {skipped} zero-weight options skipped inside" if skipped else "",
    )
    numba.set_num_threads(1)
    row("ours, numba kernel, 1 thread", median_seconds(lambda: ours(case, 1), repeats=200), result=ours(case, 1))
    numba.set_num_threads(threads)
    grid = np.ascontiguousarray(np.repeat(case.sigma[:, None], case.ratio.size, axis=1))
    pa = np.zeros(case.forward.size, dtype=np.bool_)

    def general():
        return kernels.gamma_delta_profile_general(
            case.forward, case.strike, grid, case.tau, case.weight, case.put_weight, pa, case.ratio, threads
        )

    row(
        f"ours, general kernel (sigma per level), {threads} threads",
        median_seconds(general, repeats=50),
        result=general(),
        note="path for sticky-moneyness / premium-adjusted",
    )
    sub = min(peer_subset, case.forward.size)
    t_sub = median_seconds(lambda: peer_loop(case, sub), repeats=1, warmup=1)
    row(
        "(a) Python loop + scipy.stats.norm",
        t_sub * case.forward.size / sub,
        note=f"timed on {sub} of {case.forward.size} options x all levels ({t_sub:.2f} s), extrapolated",
    )
    row("(b) numpy + scipy.special.ndtr", median_seconds(lambda: numpy_ndtr(case), repeats=20), result=numpy_ndtr(case))
    if include_vollib:
        row(
            "(c) py_vollib_vectorized",
            median_seconds(lambda: vollib(case), repeats=3, warmup=1),
            result=vollib(case),
            note="its gamma is a finite difference of prices",
        )
    return rows


def bench_engine(chain: pl.DataFrame, positions: pl.DataFrame, threads: int) -> list[dict]:
    """What gex_profile actually runs: zero-OI options dropped, identical call/put inputs merged."""
    _, x = _exposures(chain, positions)
    greeks = None
    profile = _Profile(x, greeks, "sticky_strike", "forward")
    ratio = 1.0 + np.arange(-100, 101) * 0.0025
    effective = chain.height * ratio.size
    t_kernel = median_seconds(lambda: profile(ratio), repeats=300)
    t_e2e = median_seconds(lambda: gex_profile(chain, positions), repeats=30)
    return [
        {
            "case": f"real BTC 2026-07-31 (854 x 201) via gex_profile's engine ({profile.n_options} kernel rows)",
            "implementation": f"ours, engine path, {threads} threads",
            "ms_per_profile": t_kernel * 1e3,
            "evals_per_s": effective / t_kernel,
            "max_rel_diff_gex": None,
            "max_rel_diff_delta": None,
            "note": f"854 x 201 counted; {profile.n_options} x 201 computed (zero OI dropped, C/P merged)",
        },
        {
            "case": "real BTC 2026-07-31 (854 x 201), end to end",
            "implementation": "gex_profile(chain, positions): greeks + join + kernel + frame",
            "ms_per_profile": t_e2e * 1e3,
            "evals_per_s": effective / t_e2e,
            "max_rel_diff_gex": None,
            "max_rel_diff_delta": None,
            "note": "polars work dominates",
        },
    ]


FLAG_VARIANTS = {
    "False (no fast-math)": "False",
    "{'contract'} (shipped)": '{"contract"}',
    "{'nsz','contract','arcp'}": '{"nsz", "contract", "arcp"}',
    "{'nnan','ninf','nsz','contract','arcp'}": '{"nnan", "ninf", "nsz", "contract", "arcp"}',
    "True (all, incl. reassoc, afn)": "True",
}


def bench_flags(case: Case, threads: int) -> list[dict]:
    """Recompile the kernel module with each fast-math setting (no cache) and time it."""
    source = (REPO_ROOT / "transforms" / "pricing" / "kernels.py").read_text().replace("cache=True", "cache=False")
    shipped = 'FASTMATH = {"contract"}'
    assert shipped in source
    rows = []
    for label, flags in FLAG_VARIANTS.items():
        module = types.ModuleType("kernels_variant")
        exec(compile(source.replace(shipped, f"FASTMATH = {flags}"), "kernels_variant", "exec"), module.__dict__)

        def run(n_blocks, module=module):
            return module.gamma_delta_profile(
                case.forward, case.strike, case.sigma, case.tau, case.weight, case.put_weight, case.ratio, n_blocks
            )

        numba.set_num_threads(1)
        serial = median_seconds(lambda run=run: run(1), repeats=60)
        numba.set_num_threads(threads)
        parallel = median_seconds(lambda run=run: run(threads), repeats=120)
        rows.append(
            {
                "fastmath": label,
                "serial_ms": serial * 1e3,
                "serial_evals_per_s": case.evals / serial,
                "parallel_ms": parallel * 1e3,
                "parallel_evals_per_s": case.evals / parallel,
                "max_rel_diff_gex": max_rel_diff(run(threads)[0], ours(case, threads)[0]),
            }
        )
    return rows


COLD = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import numba
    numba.config.CACHE_DIR = {cache!r}
    import numpy as np
    from transforms.pricing.kernels import profile_at_levels
    t1 = time.perf_counter()
    r = 1.0 + np.arange(-100, 101) * 0.0025
    profile_at_levels([6e4] * 854, [6.2e4] * 854, [0.5] * 854, [0.1] * 854, [1.0] * 854, [0.0] * 854, r)
    t2 = time.perf_counter()
    print(json.dumps({{"import_s": t1 - t0, "first_call_s": t2 - t1}}))
    """
)


def bench_cold() -> list[dict]:
    """Fresh processes: the first profile with an empty numba cache (compiles) and with it filled."""
    import shutil

    cache = RESULTS / "numba_cache_cold"
    shutil.rmtree(cache, ignore_errors=True)
    rows = []
    for label in ("cold process, empty numba cache (compiles)", "cold process, numba cache filled (cache=True)"):
        out = subprocess.run(
            [sys.executable, "-c", COLD.format(cache=str(cache))],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=True,
        )
        rows.append({"run": label, **json.loads(out.stdout.strip().splitlines()[-1])})
    shutil.rmtree(cache, ignore_errors=True)
    return rows


# --- report ---------------------------------------------------------------------------------------------------


def fmt_rate(x: float) -> str:
    return f"{x / 1e9:.3f} G/s" if x >= 1e8 else f"{x / 1e6:.2f} M/s"


def table(rows: list[dict], baseline: dict[str, float]) -> str:
    lines = [
        "| case | implementation | ms / profile | evaluations / s | time vs shipped kernel "
        "| max rel diff GEX / delta | note |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        base = baseline.get(r["case"])
        speedup = "" if base is None else f"{r['ms_per_profile'] / base:,.1f}x"
        diff = "" if r["max_rel_diff_gex"] is None else f"{r['max_rel_diff_gex']:.1e} / {r['max_rel_diff_delta']:.1e}"
        lines.append(
            f"| {r['case']} | {r['implementation']} | {r['ms_per_profile']:.3f} | {fmt_rate(r['evals_per_s'])} "
            f"| {speedup} | {diff} | {r['note']} |"
        )
    return "\n".join(lines)


def report_text(env: dict, why_not: str | None, rows: list[dict], baseline: dict, flags: list, cold: list) -> str:
    """The Markdown report: environment, the main table, then the fast-math and cold-process sections if run."""
    report = ["# GEX profile benchmark", "", "```", json.dumps(env, indent=1), "```", ""]
    if why_not:
        report += [f"py_vollib_vectorized skipped: {why_not}", ""]
    report += [table(rows, baseline), ""]
    if flags:
        report += [
            "## fast-math flags (synthetic case, kernel recompiled per setting)",
            "",
            "| fastmath | serial ms | serial eval/s | parallel ms | parallel eval/s | max rel diff GEX vs shipped |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        report += [
            f"| {f['fastmath']} | {f['serial_ms']:.3f} | {fmt_rate(f['serial_evals_per_s'])} | {f['parallel_ms']:.3f} "
            f"| {fmt_rate(f['parallel_evals_per_s'])} | {f['max_rel_diff_gex']:.1e} |"
            for f in flags
        ]
        report.append("")
    if cold:
        report += [
            "## cold process (import + first 854 x 201 profile)",
            "",
            "| run | import s | first call s |",
            "|---|---:|---:|",
        ]
        report += [f"| {c['run']} | {c['import_s']:.2f} | {c['first_call_s']:.3f} |" for c in cold]
        report.append("")
    return "\n".join(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the fast-math flags and cold-process sections")
    parser.add_argument("--peer-subset", type=int, default=20, help="options timed in the scipy.stats loop")
    args = parser.parse_args(argv)

    threads = numba.get_num_threads()
    load_before = os.getloadavg()
    real, chain, positions = real_case()
    synth = synthetic_case()
    why_not = vollib_available()
    ours(real, threads)  # compile / load from cache before timing
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "polars": pl.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores_numba_threads": threads,
        "threading_layer": None,
        "svml": bool(getattr(numba.config, "USING_SVML", False)),
        "fastmath_shipped": sorted(kernels.FASTMATH),
        "dtype": "float64",
        "load_average_before": load_before,
    }
    rows = []
    for case in (real, synth):
        rows += bench_case(case, threads, peer_subset=args.peer_subset, include_vollib=why_not is None)
    env["threading_layer"] = numba.threading_layer()
    rows += bench_engine(chain, positions, threads)
    flags = [] if args.quick else bench_flags(synth, threads)
    cold = [] if args.quick else bench_cold()
    env["load_average_after"] = os.getloadavg()

    baseline = {
        r["case"]: r["ms_per_profile"]
        for r in rows
        if r["implementation"].startswith("ours, numba kernel, " + str(threads))
    }
    text = report_text(env, why_not, rows, baseline, flags, cold)
    print(text)
    (RESULTS / "bench_profile.md").write_text(text + "\n")
    (RESULTS / "bench_profile.json").write_text(
        json.dumps({"env": env, "rows": rows, "flags": flags, "cold": cold}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
