"""The batched forecast history (issue 14, fast path) against the one-snapshot-at-a-time forecast, on real
recorded chains of tests/data/tardis, and the batched kernel against the one-book kernel call."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from pipelines.cli.app import main
from pipelines.errors import GexflowError
from pipelines.jobs.grade import FORECAST_BATCH_DAYS, ensure_forecasts
from tests.data_paths import TARDIS
from transforms.frames.schemas import OPTION_SNAPSHOT
from transforms.grading.forecasts import history_forecasts, history_forecasts_per_snapshot
from transforms.grading.schemas import FORECAST_HISTORY
from transforms.pricing.kernel_batch import ALL_EXPIRIES, OptionBatch
from transforms.pricing.kernels import profile_at_levels
from warehouse import lake

# a month-end expiry (Fri 2026-05-29 08:00) with recordings at 07:00, so the 1 h horizon settles it there,
# and a weekend after it
DAYS = ("2026-05-28", "2026-05-29", "2026-05-30")
KEYS = ["currency", "snapshot_ts", "model", "horizon"]


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("grade_batch")
    for kind, pattern in (("options_chain", "deribit_options_chain_{}_OPTIONS.csv.gz"),
                          ("derivative_ticker", "deribit_derivative_ticker_{}_PERPETUALS.csv.gz")):  # fmt: skip
        (root / "tardis" / kind).mkdir(parents=True)
        for day in DAYS:
            (root / "tardis" / kind / pattern.format(day)).symlink_to(TARDIS / kind / pattern.format(day))
    data = root / "data"
    assert main(["backfill", "--tardis", str(root / "tardis"), "--no-compute", "--data-dir", str(data)]) == 0
    return data


@pytest.fixture(scope="module")
def chain(lake_dir) -> pl.DataFrame:
    scan = lake.scan(lake_dir, "option_snapshots")
    return scan.select([pl.col(c).cast(t) for c, t in OPTION_SNAPSHOT.items()]).collect()


def _assert_close(batched: pl.DataFrame, reference: pl.DataFrame, rel: float = 1e-12) -> None:
    """Same rows and keys, every number within ``rel`` relative (NULL where the reference has NULL)."""
    assert batched.schema == reference.schema
    assert batched.select(KEYS).equals(reference.select(KEYS))
    for col, dtype in FORECAST_HISTORY.items():
        a, b = batched[col], reference[col]
        assert a.is_null().equals(b.is_null()), col
        if dtype == pl.Float64:
            x, y = a.drop_nulls().to_numpy(), b.drop_nulls().to_numpy()
            np.testing.assert_allclose(x, y, rtol=rel, atol=0.0, err_msg=col)
        else:
            assert a.equals(b), col


def test_batched_history_equals_the_per_snapshot_forecast_on_real_days(chain):
    reference = history_forecasts_per_snapshot(chain)
    batched = history_forecasts(chain)
    _assert_close(batched, reference)
    # the cases the batch shares work between are all there: 24 snapshots x 2 models x 3 horizons, a 1 h
    # horizon that settles an expiry (07:00 recordings on an 08:00 expiry) and 24 h / next-expiry forecasts
    snapshots = chain.select("currency", "snapshot_ts").n_unique()
    assert snapshots >= 12 and batched.height == snapshots * 2 * 3
    one_hour = batched.filter(pl.col("horizon") == "1h")
    assert (one_hour["expiry_flow_coins"] != 0.0).any() and (one_hour["expiry_flow_coins"] == 0.0).any()
    assert batched["zero_gamma"].is_not_null().any()


def test_the_batch_does_not_depend_on_how_snapshots_are_grouped(chain):
    whole = history_forecasts(chain)
    one_at_a_time = pl.concat(
        history_forecasts(snapshot) for _, snapshot in chain.group_by("currency", "snapshot_ts", maintain_order=True)
    ).sort(KEYS)
    _assert_close(one_at_a_time, whole, rel=0.0)


def test_ensure_forecasts_in_batches_equals_forecasting_day_by_day(lake_dir, chain, monkeypatch):
    stale = [(c, date.fromisoformat(d)) for c in ("BTC", "ETH") for d in DAYS]
    progress = []
    monkeypatch.setattr("pipelines.jobs.grade.FORECAST_BATCH_DAYS", 2)  # BTC: 2 days + 1 day, ETH likewise
    batched = ensure_forecasts(lake_dir, stale, progress=lambda *a: progress.append(a[:3])).sort(KEYS)
    assert FORECAST_BATCH_DAYS >= 2
    assert progress == [(i + 1, len(stale), c) for i, (c, _) in enumerate(stale)]
    _assert_close(batched, history_forecasts(chain).sort(KEYS), rel=0.0)


def _book(rng, n):
    forward = 60_000.0 * (1.0 + 0.01 * rng.standard_normal(n))
    strike = forward * np.exp(0.4 * rng.standard_normal(n))
    sigma = rng.uniform(0.2, 1.5, n)
    expiry = 1_780_000_000_000 + rng.integers(1, 90 * 86_400_000, n)
    weight = rng.normal(0.0, 50.0, n)
    put = np.where(rng.random(n) < 0.5, weight, 0.0)
    return forward, strike, sigma, expiry, weight, put


def test_option_batch_equals_the_one_book_kernel_call_bit_for_bit():
    rng = np.random.default_rng(14)
    books = [_book(rng, n) for n in (300, 1, 57, 0, 800)]
    arrays = [np.concatenate([b[k] for b in books]) for k in range(6)]
    arrays[0][5] = np.nan  # a non-finite input contributes nothing, as in profile_at_levels
    arrays[2][7] = np.inf
    live = rng.random(arrays[0].size) < 0.9
    batch = OptionBatch(*arrays, live)
    ratio = 1.0 + np.arange(-100, 101) * 0.0025
    at = 1_780_000_000_000
    bounds = np.cumsum([0] + [b[0].size for b in books])
    tasks, expected = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        e = arrays[3][lo:hi]
        cut = int(np.median(e)) if hi > lo else at
        for t, after, until in ((at, ALL_EXPIRIES[0], ALL_EXPIRIES[1]), (at, cut, ALL_EXPIRIES[1]),
                                (at, at, cut), (cut + 3_600_000, cut, ALL_EXPIRIES[1])):  # fmt: skip
            keep = live[lo:hi] & (e > after) & (e <= until)
            tau = (e[keep] - t) / (365 * 86_400_000)
            f, k, s, w, p = (a[lo:hi][keep] for a in (arrays[0], arrays[1], arrays[2], arrays[4], arrays[5]))
            expected.append(profile_at_levels(f, k, s, tau, w, p, ratio))
            tasks.append((lo, hi, t, after, until))
    t = np.array(tasks, dtype=np.int64)
    gex, delta = batch.profiles(t[:, 0], t[:, 1], t[:, 2], t[:, 3], t[:, 4], ratio)
    for i, (g, d) in enumerate(expected):
        assert np.array_equal(gex[i], g) and np.array_equal(delta[i], d), i
        one = batch.profile(int(t[i, 0]), int(t[i, 1]), int(t[i, 2]), ratio, window=(int(t[i, 3]), int(t[i, 4])))
        assert np.array_equal(one[0], g) and np.array_equal(one[1], d), i
    assert np.any(delta != 0.0) and np.any(gex != 0.0)


def test_two_weightings_of_the_same_options_share_a_task_and_each_equals_its_own_profile():
    rng = np.random.default_rng(3)
    f, k, s, e, w, p = _book(rng, 400)
    w2 = -np.abs(w) * 1.7  # the same options, other weights (as customer_long beside naive)
    p2 = np.where(p != 0.0, w2, 0.0)
    live = rng.random(f.size) < 0.95
    batch = OptionBatch(np.tile(f, 2), np.tile(k, 2), np.tile(s, 2), np.tile(e, 2), np.r_[w, w2], np.r_[p, p2],
                        np.tile(live, 2))  # fmt: skip
    n, at, cut = f.size, 1_780_000_000_000, int(np.median(e))
    ratio = 1.0 + np.arange(-100, 101) * 0.0025
    windows = [(ALL_EXPIRIES[0], ALL_EXPIRIES[1]), (cut, ALL_EXPIRIES[1]), (at, cut)]
    t = np.array([(0, n, at, a, b) for a, b in windows], dtype=np.int64)
    gex, delta, gex2, delta2 = batch.profiles(*t.T, ratio, pair_lo=np.full(len(windows), n))
    for i, (after, until) in enumerate(windows):
        keep = live & (e > after) & (e <= until)
        tau = (e[keep] - at) / (365 * 86_400_000)
        for weights, g_got, d_got in (((w, p), gex[i], delta[i]), ((w2, p2), gex2[i], delta2[i])):
            g, d = profile_at_levels(f[keep], k[keep], s[keep], tau, weights[0][keep], weights[1][keep], ratio)
            assert np.array_equal(g_got, g) and np.array_equal(d_got, d), i
    assert batch.same_options(0, n, n) and not batch.same_options(0, n, 1)
    with pytest.raises(ValueError, match="cannot share a task"):
        batch.profiles([0], [n], [at], [0], [ALL_EXPIRIES[1]], ratio, pair_lo=[1])


def test_option_batch_with_fixed_taus_and_bad_arguments():
    rng = np.random.default_rng(7)
    f, k, s, e, w, p = _book(rng, 120)
    tau = rng.uniform(1e-4, 1.0, f.size)
    batch = OptionBatch(f, k, s, e, w, p, np.ones(f.size, dtype=bool), tau=tau)
    ratio = np.array([0.8, 1.0, 1.1])
    got, want = batch.profile(0, f.size, 0, ratio), profile_at_levels(f, k, s, tau, w, p, ratio)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    with pytest.raises(ValueError, match="equal length"):
        OptionBatch(f, k[:-1], s, e, w, p, np.ones(f.size, dtype=bool))
    with pytest.raises(ValueError, match="within the option arrays"):
        batch.profiles([0], [f.size + 1], [0], [0], [0], ratio)
    with pytest.raises(ValueError, match="strictly increasing"):
        batch.profile(0, 1, 0, np.array([1.0, 1.0]))


def test_a_batch_with_a_bad_snapshot_names_the_currency_and_the_days(lake_dir, tmp_path):
    bad = tmp_path / "data"
    src = lake.partition_dir(lake_dir, "option_snapshots", "BTC", date(2026, 5, 29))
    path = sorted(src.glob("*.parquet"))[0]
    frame = pl.read_parquet(path)
    first_row = pl.int_range(pl.len()) == 0
    frame = frame.with_columns(pl.when(first_row).then(1.0).otherwise(pl.col("index_price")).alias("index_price"))
    dest = lake.partition_dir(bad, "option_snapshots", "BTC", date(2026, 5, 29))
    dest.mkdir(parents=True)
    frame.write_parquet(dest / path.name)
    with pytest.raises(
        GexflowError, match=r"forecast of BTC 2026-05-28\.\.2026-05-29 failed: need exactly one index_pr"
    ):
        ensure_forecasts(bad, [("BTC", date(2026, 5, 28)), ("BTC", date(2026, 5, 29))])
