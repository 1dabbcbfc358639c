"""Forecast grading (issue 14): plan -> ensure forecasts -> realised prices -> grade -> stage -> commit -> report.

:func:`grade_cycle` is the table of contents; each step is a plain function. The math is in
``transforms.grading.forecasts`` (the forecast made at each snapshot), ``transforms.grading.scores`` (realised
moves and scores), ``transforms.grading.stats`` / ``transforms.grading.summary`` (intervals, regression,
out-of-sample test). Docs: docs/forecast-grading.md.

Lake tables, one file per (table, currency, UTC date of the snapshot), replaced by a re-run:

- ``forecast_history/currency=C/date=D/forecast.parquet``: the forecast made at every stored snapshot of D
  (t0 = snapshot_ts), from that snapshot alone; computed only for days whose snapshots changed.
- ``index_prices/currency=C/date=D/derivative_ticker.parquet``: ``<C>-PERPETUAL`` index rows recorded in
  Tardis derivative_ticker files (``--tardis DIR``), the last per minute.
- ``forecast_grades/currency=C/date=D/grades.parquet``: every forecast of D graded (or why not).

All staged files are published by one journaled commit under the writer lock, then the report is written
to ``exports/grades/`` (built in a hidden folder, swapped in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.errors import GexflowError
from pipelines.store import reads
from pipelines.store.lake_tables import Table
from transforms.frames.schemas import SchemaError
from transforms.grading.forecasts import history_forecasts
from transforms.grading.schemas import FORECAST_GRADE, FORECAST_HISTORY, INDEX_PRICE
from transforms.grading.scores import grade_forecasts as grade_rows
from transforms.grading.scores import index_observations
from warehouse import files, lake

GRADE_TABLES: dict[str, dict] = {
    Table.FORECAST_HISTORY: FORECAST_HISTORY,
    Table.INDEX_PRICES: INDEX_PRICE,
    Table.FORECAST_GRADES: FORECAST_GRADE,
}
HISTORY_FILE, INDEX_FILE, GRADES_FILE = "forecast", "derivative_ticker", "grades"
FORECAST_BATCH_DAYS = 16  # days of one currency forecast in one batch (~64 snapshots at four a day)
MAX_HORIZON = timedelta(days=8)  # realised prices are read this far past --until (next_expiry can be weekly)


@dataclass
class GradePlan:
    snapshots: pl.DataFrame  # (currency, snapshot_ts, date) stored in range
    stale_days: list[tuple[str, date]]  # (currency, date) whose forecast_history must be (re)computed


@dataclass
class GradeResult:
    plan: GradePlan
    grades: pl.DataFrame  # FORECAST_GRADE of the range
    computed_forecasts: int = 0  # snapshots forecast in this run
    ticker_rows: int = 0  # derivative_ticker rows imported in this run
    lake_files: list[Path] = field(default_factory=list)
    report_dir: Path | None = None


def _day_bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    lo = datetime.combine(since, datetime.min.time(), UTC) if since else None
    hi = datetime.combine(until, datetime.min.time(), UTC) + timedelta(days=1) if until else None
    return lo, hi


def _in_range(lo: datetime | None, hi: datetime | None, col: str = "snapshot_ts") -> pl.Expr:
    cond = pl.lit(True)
    if lo is not None:
        cond &= pl.col(col) >= lo
    if hi is not None:
        cond &= pl.col(col) < hi
    return cond


def plan(data_dir: Path, currencies, since: date | None, until: date | None) -> GradePlan:
    """Stored snapshots in range, and the (currency, day) whose stored forecast history does not cover
    exactly those snapshots. A GexflowError when there is nothing to grade."""
    lo, hi = _day_bounds(since, until)
    snaps = reads.snapshot_keys(data_dir, currencies, _in_range(lo, hi))
    if snaps is None:
        raise GexflowError(f"no option snapshots in {data_dir}: run `gexflow backfill` or `gexflow ingest` first")
    if snaps.is_empty():
        span = f" between {since or 'the start'} and {until or 'the end'}" if since or until else ""
        raise GexflowError(f"no {', '.join(currencies)} option snapshots{span} in {data_dir}")
    done = reads.forecast_history_keys(data_dir)
    have = pl.DataFrame(schema={"currency": pl.String, "snapshot_ts": snaps["snapshot_ts"].dtype})
    if done is not None:
        have = done.cast(have.schema)
    want = snaps.group_by("currency", "date").agg(pl.col("snapshot_ts").sort())
    got = have.with_columns(pl.col("snapshot_ts").dt.date().alias("date")).group_by("currency", "date")
    got = got.agg(pl.col("snapshot_ts").sort().alias("stored"))
    cmp = want.join(got, on=["currency", "date"], how="left")
    stale = cmp.filter(pl.col("stored").is_null() | (pl.col("stored") != pl.col("snapshot_ts")))
    return GradePlan(snaps, sorted(stale.select("currency", "date").iter_rows()))


def _batches(stale_days) -> list[tuple[str, list[date]]]:
    """The stale (currency, day)s as runs of up to FORECAST_BATCH_DAYS days of one currency, in order."""
    out: list[tuple[str, list[date]]] = []
    for currency, day in stale_days:
        if not out or out[-1][0] != currency or len(out[-1][1]) == FORECAST_BATCH_DAYS:
            out.append((currency, []))
        out[-1][1].append(day)
    return out


def ensure_forecasts(data_dir: Path, stale_days, progress=None) -> pl.DataFrame:
    """FORECAST_HISTORY of every stale (currency, day): the forecast made at each snapshot from it alone.
    Days are forecast in batches of up to FORECAST_BATCH_DAYS days of one currency (the result does not
    depend on the batching: every number of a row comes from its own snapshot).
    ``progress(done, total, currency, day start)`` is called after each day."""
    partitions = reads.snapshot_partitions(data_dir)
    frames, done = [], 0
    for currency, days in _batches(stale_days):
        dirs = [lake.partition_dir(data_dir, Table.OPTION_SNAPSHOTS, currency, day) for day in days]
        try:
            paths = [p for d in dirs for p in partitions.get(d, [])]
            frames.append(history_forecasts(reads.snapshots_on_days(currency, days, paths)))
        except (ValueError, SchemaError) as exc:
            span = f"{days[0]}" if len(days) == 1 else f"{days[0]}..{days[-1]}"
            raise GexflowError(f"forecast of {currency} {span} failed: {exc}") from None
        for day in days:
            done += 1
            if progress is not None:
                progress(done, len(stale_days), currency, _day_bounds(day, day)[0])
    return pl.concat(frames) if frames else pl.DataFrame(schema=FORECAST_HISTORY)


def read_ticker_index(tardis_dir: Path, currencies) -> pl.DataFrame:
    """INDEX_PRICE rows (source 'derivative_ticker') of every derivative_ticker file under ``tardis_dir``:
    the ``<C>-PERPETUAL`` index_price, the last recording of each minute (real recordings only)."""
    from pipelines.sources import tardis

    tardis_dir = Path(tardis_dir)
    paths = sorted(tardis_dir.glob("**/deribit_derivative_ticker_*_PERPETUALS.csv.gz"))
    if not paths:
        raise GexflowError(f"{tardis_dir}: no deribit_derivative_ticker_<day>_PERPETUALS.csv.gz files")
    frames = [tardis.read_index_prices(p, list(currencies)) for p in paths]
    rows = pl.concat(frames).with_columns(pl.from_epoch("index_ts_us", time_unit="us").dt.cast_time_unit("ms"))
    return (
        rows.with_columns(pl.col("index_ts_us").alias("index_ts"), pl.lit("derivative_ticker").alias("source"))
        .sort("currency", "index_ts")
        .group_by("currency", pl.col("index_ts").dt.truncate("1m").alias("_minute"), maintain_order=True)
        .last()
        .select([pl.col(c).cast(t) for c, t in INDEX_PRICE.items()])
    )


def load_prices(data_dir: Path, currencies, ticker: pl.DataFrame | None) -> pl.DataFrame:
    """Every recorded index price: stored snapshots' index_price, stored derivative_ticker rows, new rows.

    A Tardis snapshot is stamped with its grid time but priced with the index as of it, which may be up to the
    staleness window older: its price is not an observation at snapshot_ts. Those come from the
    derivative_ticker rows themselves, with their own times (``--tardis``)."""
    snap = reads.snapshot_index_prices(data_dir, currencies)
    stored = reads.stored_index_prices(data_dir, currencies)
    tickers = [] if stored is None else [stored]
    if ticker is not None:
        tickers.append(ticker)
    ticks = pl.concat([t.select(list(INDEX_PRICE)).cast(INDEX_PRICE) for t in tickers]) if tickers else None
    return index_observations(snap, ticks)


def load_history(data_dir: Path, plan_: GradePlan, fresh: pl.DataFrame) -> pl.DataFrame:
    """FORECAST_HISTORY of the planned snapshots: freshly computed days, the rest from the lake."""
    keys = plan_.snapshots.select("currency", "snapshot_ts")
    fresh_days = pl.DataFrame(plan_.stale_days, schema={"currency": pl.String, "date": pl.Date}, orient="row")
    old = reads.forecast_history_of(data_dir, keys)
    frames = [fresh]
    if old is not None:
        old = old.with_columns(pl.col("snapshot_ts").dt.date().alias("date"))
        frames.append(old.join(fresh_days, on=["currency", "date"], how="anti").drop("date").cast(FORECAST_HISTORY))
    return pl.concat([f.select(list(FORECAST_HISTORY)) for f in frames])


def stage(data_dir: Path, fresh: pl.DataFrame, ticker: pl.DataFrame | None, grades: pl.DataFrame) -> list[files.Staged]:
    """One file per (table, currency, UTC date), staged under temp names."""
    staged: list[files.Staged] = []
    parts = [
        (Table.FORECAST_HISTORY, fresh, HISTORY_FILE, "snapshot_ts"),
        (Table.FORECAST_GRADES, grades, GRADES_FILE, "snapshot_ts"),
    ]
    if ticker is not None:
        parts.append((Table.INDEX_PRICES, ticker, INDEX_FILE, "index_ts"))
    try:
        for table, frame, name, col in parts:
            staged += lake.stage_partitions(data_dir, table, frame, name=name, date_col=col)
    except BaseException:
        files.discard(staged)
        raise
    return staged


def publish(data_dir: Path, staged: list[files.Staged], lock_wait_s: float) -> list[Path]:
    """One journaled commit under the writer lock, then the schema files and views."""
    from pipelines.store.lake_tables import prepare_warehouse

    try:
        with files.writer_lock(data_dir, lock_wait_s):
            files.commit(data_dir, staged)
            prepare_warehouse(data_dir)
    except BaseException:
        files.discard(staged)
        raise
    return [s.final for s in staged]


def grade_cycle(
    data_dir: Path,
    *,
    currencies,
    since: date | None = None,
    until: date | None = None,
    fit_until: datetime | None = None,
    tardis_dir: Path | None = None,
    report: bool = True,
    lock_wait_s: float = 0.0,
    progress=None,
) -> GradeResult:
    """Grade every forecast of the stored snapshots in [since, until] (UTC days), store the grades, and
    (``report``) write ``exports/grades/``. Forecasts are made first where the lake has none."""
    data_dir = Path(data_dir)
    currencies = list(dict.fromkeys(c.strip().upper() for c in currencies))
    ticker = read_ticker_index(tardis_dir, currencies) if tardis_dir is not None else None
    the_plan = plan(data_dir, currencies, since, until)
    fresh = ensure_forecasts(data_dir, the_plan.stale_days, progress)
    history = load_history(data_dir, the_plan, fresh)
    grades = grade_rows(history, load_prices(data_dir, currencies, ticker))
    files.check_writable(data_dir)
    result = GradeResult(the_plan, grades, computed_forecasts=fresh.select("currency", "snapshot_ts").n_unique())
    result.ticker_rows = 0 if ticker is None else ticker.height
    result.lake_files = publish(data_dir, stage(data_dir, fresh, ticker, grades), lock_wait_s)
    if report:
        from pipelines.publishing.grade_report import write_report

        sources = {"tardis_dir": str(tardis_dir) if tardis_dir else None, "data_dir": str(data_dir)}
        result.report_dir = write_report(data_dir, grades, fit_until=fit_until, sources=sources)
    return result


__all__ = [
    "GRADE_TABLES",
    "GradePlan",
    "GradeResult",
    "ensure_forecasts",
    "grade_cycle",
    "load_history",
    "load_prices",
    "plan",
    "publish",
    "read_ticker_index",
    "stage",
]
