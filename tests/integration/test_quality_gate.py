"""The validation gate (pipelines.validation.quality) as a process sees it, and over the 7-month Tardis history in
../shared/data; its rules on the recorded chains are tests/unit/test_quality.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import polars as pl
import pytest

from pipelines.validation.quality import short_chains
from tests.data_paths import REPO_ROOT as REPO


def test_importing_the_quality_module_does_not_import_great_expectations():
    code = "import sys, pipelines.validation.quality; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_validating_prints_nothing_even_with_debug_logging_and_all_warnings_on():
    code = textwrap.dedent(
        """
        import logging, sys, warnings
        logging.basicConfig(level=logging.DEBUG)
        warnings.simplefilter("always")
        from tests.unit.test_quality import btc_chain, with_victim
        chain, broken = btc_chain(), with_victim(mark_iv=__import__("polars").lit(0.0))
        from pipelines.validation.quality import validate_option_snapshots
        assert validate_option_snapshots(chain).success
        assert not validate_option_snapshots(broken).success
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (out.stdout, out.stderr) == ("", "")


def test_no_recorded_tardis_chain_falls_below_the_coverage_threshold(shared_data):
    # 7 months of real chains (1,692): the threshold has ample room for listings and expiries
    days = sorted((shared_data / "tardis" / "options_chain").glob("*.csv.gz"))
    frames = [pl.read_csv(p, columns=["symbol", "timestamp"], schema_overrides={"timestamp": pl.Int64}) for p in days]
    sizes = (
        pl.concat(frames)
        .group_by(pl.col("symbol").str.extract(r"^([A-Z]+)-").alias("currency"), "timestamp")
        .agg(pl.len().alias("options"))
        .select(
            "currency",
            pl.from_epoch("timestamp", time_unit="us").dt.replace_time_zone("UTC").alias("snapshot_ts"),
            "options",
        )
    )
    assert sizes.height > 1600
    assert short_chains(sizes).is_empty()


def test_validating_leaves_the_modules_ge_imports_but_never_uses_unexecuted_until_used():
    """GE's top level imports scipy.stats and altair (~1 s of its import) for expectations and renderers the
    gate does not use: they are deferred, the verdict is the same, and a later use gets the whole module."""
    code = textwrap.dedent(
        """
        import sys
        from tests.unit.test_quality import btc_chain, with_victim
        from pipelines.validation.quality import validate_option_snapshots
        chain, broken = btc_chain(), with_victim(mark_iv=__import__("polars").lit(5000.0))
        assert validate_option_snapshots(chain).success
        print(validate_option_snapshots(broken).failures)
        print(sorted(n for n in ("scipy.stats", "altair") if type(sys.modules[n]) is not type(sys)))
        import gc
        print(gc.get_freeze_count() > 100_000)  # GE's objects are left out of every later collection
        from scipy.stats import norm
        import scipy.stats
        print(round(float(norm.cdf(0.0)), 3), scipy.stats.norm is norm, type(sys.modules["scipy.stats"]) is type(sys))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "['mark_iv in [1, 1000]: 1 row fails (BTC-14AUG26-50000-C)']",
        "['altair', 'scipy.stats']",
        "True",
        "0.5 True True",
    ]
