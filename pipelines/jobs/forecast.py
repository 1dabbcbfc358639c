"""Daily flow forecast: pick snapshots -> read chains -> position -> forecast -> publish to the lake -> export.

:func:`forecast_cycle` is the table of contents; each step is a plain function (the lead's Prefect flow can
wrap them as tasks). All the math is in :mod:`transforms.forecasting.forecast`.

Which snapshot, per currency, for forecast date D (UTC), with T = D 08:00 UTC (the day's settlement):

1. the FIRST snapshot on D strictly after T, when there is one: the book right after the day's expiry
   left it, as published once a day after 08:00 UTC;
2. otherwise the LATEST snapshot on D at or before T; its book is aged to T, so options settling at T
   have already left it;
3. otherwise (no snapshot of that currency dated D, or none of that currency at all) a one-line
   :class:`GexflowError`, raised before anything is written.

The forecast starts at t0 = max(T, snapshot_ts). Each table is written to
``lake/<table>/currency=<C>/date=<D>/forecast.parquet`` (one file per currency and date, replaced by a
re-run) for the tables flow_forecast, forecast_summary and expiry_rolloff, all in one journaled commit
under the writer lock; then the views are refreshed and the exports published (``pipelines.publishing.exports``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from pipelines.errors import GexflowError
from pipelines.jobs.threads import chosen_threads
from pipelines.store import reads
from pipelines.store.lake_tables import Table
from transforms.forecasting.forecast import expiry_rolloff, flow_forecast, forecast_start, forecast_summary
from transforms.frames.schemas import (
    DEALER_POSITION,
    EXPIRY_ROLLOFF,
    FLOW_FORECAST,
    FORECAST_SUMMARY,
    SchemaError,
)
from transforms.gex.analytic_tables import exposure_tables
from transforms.gex.analytic_tables import positions_for as books
from warehouse import files, lake

if TYPE_CHECKING:
    from pipelines.publishing.exports import ForecastExport

# lake table -> schema dict of transforms.frames.schemas (for pipelines/store/lake_tables.py's registry)
FORECAST_TABLES: dict[str, dict] = {
    Table.FLOW_FORECAST: FLOW_FORECAST,
    Table.FORECAST_SUMMARY: FORECAST_SUMMARY,
    Table.EXPIRY_ROLLOFF: EXPIRY_ROLLOFF,
}
FILE_NAME = "forecast"
DEFAULT_MODELS = ("naive", "customer_long")  # always available; taker_flow joins them once trades exist


@dataclass
class ForecastFrames:
    forecast: pl.DataFrame  # FLOW_FORECAST
    summary: pl.DataFrame  # FORECAST_SUMMARY
    rolloff: pl.DataFrame  # EXPIRY_ROLLOFF
    levels: pl.DataFrame  # KEY_LEVELS at each snapshot
    profiles: pl.DataFrame  # GEX_PROFILE at each snapshot (for the charts)
    by_expiry: pl.DataFrame | None = None  # EXPOSURE_BY_EXPIRY at each snapshot (depth charts)
    by_strike: pl.DataFrame | None = None  # GEX_BY_STRIKE at each snapshot (depth charts)


@dataclass
class ForecastResult:
    forecast_date: date
    snapshots: dict[str, datetime]  # currency -> snapshot_ts used
    t0: dict[str, datetime]  # currency -> forecast start
    frames: ForecastFrames
    lake_files: list[Path] = field(default_factory=list)
    exports: ForecastExport | None = None  # the published folder and files, when exported


# ---------------------------------------------------------------- steps


def settlement_time(forecast_date: date) -> datetime:
    """08:00 UTC of ``forecast_date``: the daily expiry."""
    return datetime.combine(forecast_date, time(8), UTC)


def _fmt(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pick_snapshots(data_dir: Path, forecast_date: date, currencies) -> dict[str, datetime]:
    """{currency: snapshot_ts} chosen as the module docstring says, or one GexflowError naming every gap."""
    day = datetime.combine(forecast_date, time(0), UTC)
    stamps = reads.snapshot_times_on(data_dir, currencies, day, settlement_time(forecast_date))
    if stamps is None:
        raise GexflowError(f"no option snapshots in {data_dir}: run `gexflow ingest` first")
    found = {row["currency"]: row for row in stamps.iter_rows(named=True)}
    picks, problems = {}, []
    for currency in currencies:
        row = found.get(currency)
        if row is None:
            problems.append(f"no option snapshots for {currency}")
        elif row["after"] is None and row["before"] is None:
            span = f"{_fmt(row['first'])} .. {_fmt(row['last'])}"
            problems.append(f"no {currency} option snapshot dated {forecast_date} ({currency} has {span})")
        else:
            picks[currency] = row["after"] or row["before"]
    if problems:
        latest = max((row["last"] for row in found.values()), default=None)
        hint = (
            f"; the latest stored snapshot is dated {latest:%Y-%m-%d}: try --date {latest:%Y-%m-%d}" if latest else ""
        )
        raise GexflowError(f"cannot forecast {forecast_date}: {'; '.join(problems)} in {data_dir}{hint}")
    return picks


def read_chains(data_dir: Path, picks: dict[str, datetime]) -> pl.DataFrame:
    """The picked snapshots' OPTION_SNAPSHOT rows."""
    return reads.load_snapshots(data_dir, picks)


def positions_for(data_dir: Path, chain: pl.DataFrame, models) -> pl.DataFrame:
    """The dealer books ``gexflow compute`` stores (taker_flow once the tape has trades), limited to ``models``;
    ``models=None`` means every model available. Asking for an unavailable model is a GexflowError."""
    listed = reads.listed_times(data_dir)
    frames = []
    for currency in chain["currency"].unique(maintain_order=True).to_list():
        frames.append(
            books(chain.filter(pl.col("currency") == currency), tape=reads.load_tape(data_dir, currency), listed=listed)
        )
    positions = pl.concat(frames).select(list(DEALER_POSITION))
    available = set(positions["model"].unique().to_list())
    if models is None:
        return positions
    unknown = [m for m in models if m not in ("naive", "customer_long", "custom", "taker_flow")]
    if unknown:
        raise GexflowError(
            f"unknown positioning model {', '.join(map(repr, unknown))} (naive, customer_long, custom, taker_flow)"
        )
    missing = [m for m in models if m not in available]
    if missing:
        raise GexflowError(
            f"model {', '.join(missing)} not available (have {', '.join(sorted(available))}; "
            "taker_flow needs `gexflow trades` first)"
        )
    return positions.filter(pl.col("model").is_in(list(models)))


def compute(
    chain: pl.DataFrame,
    positions: pl.DataFrame,
    t0: dict[str, datetime],
    horizons_hours,
    include_next_expiry: bool,
) -> ForecastFrames:
    """Every frame of the forecast (pure transforms), one currency at a time for the forecast itself; the
    profile kernels get the cores other processes leave idle (pipelines.jobs.threads)."""
    with chosen_threads():
        return _compute(chain, positions, t0, horizons_hours, include_next_expiry)


def _compute(chain, positions, t0, horizons_hours, include_next_expiry) -> ForecastFrames:
    try:
        forecast = pl.concat(
            [
                flow_forecast(
                    chain.filter(pl.col("currency") == currency),
                    positions.filter(pl.col("currency") == currency),
                    t0=start,
                    horizons_hours=horizons_hours,
                    include_next_expiry=include_next_expiry,
                )
                for currency, start in t0.items()
            ]
        )
        tables = exposure_tables(chain, positions)
        return ForecastFrames(
            forecast=forecast,
            summary=forecast_summary(forecast, tables[Table.KEY_LEVELS]),
            rolloff=expiry_rolloff(chain, positions),
            levels=tables[Table.KEY_LEVELS],
            profiles=tables[Table.GEX_PROFILE],
            by_expiry=tables[Table.EXPOSURE_BY_EXPIRY],
            by_strike=tables[Table.GEX_BY_STRIKE],
        )
    except (ValueError, SchemaError) as exc:
        raise GexflowError(f"forecast failed: {exc}") from None


def stage(data_dir: Path, forecast_date: date, frames: ForecastFrames, currencies) -> list[files.Staged]:
    """One ``forecast.parquet`` per (table, currency) under date=<forecast_date>, staged under temp names."""
    tables = {
        Table.FLOW_FORECAST: frames.forecast,
        Table.FORECAST_SUMMARY: frames.summary,
        Table.EXPIRY_ROLLOFF: frames.rolloff,
    }
    staged: list[files.Staged] = []
    try:
        for table, frame in tables.items():
            for currency in currencies:
                path = lake.partition_dir(data_dir, table, currency, forecast_date) / f"{FILE_NAME}.parquet"
                staged.append(lake.stage_file(path, frame.filter(pl.col("currency") == currency)))
    except BaseException:
        files.discard(staged)
        raise
    return staged


def publish(data_dir: Path, staged: list[files.Staged]) -> list[Path]:
    """Make the staged files visible together (one journaled commit), then refresh the views."""
    from pipelines.store.lake_tables import prepare_warehouse

    files.commit(data_dir, staged)  # a one-shot transaction: discards on failure unless journaled
    for table, schema in FORECAST_TABLES.items():
        lake.ensure_empty_file(data_dir, table, schema)
    prepare_warehouse(data_dir)  # the other tables' schema files, then the views (a no-op when unchanged)
    return [s.final for s in staged]


# ---------------------------------------------------------------- the cycle


def forecast_cycle(
    data_dir: Path,
    *,
    forecast_date: date | None,
    currencies,
    models=None,
    horizons_hours=(1, 24),
    now: datetime,
    include_next_expiry: bool = True,
    export: bool = True,
    lock_wait_s: float = 0.0,
) -> ForecastResult:
    """Forecast ``forecast_date`` (default: the UTC date of ``now``) for every currency and model, store it in
    the lake and (``export``) publish ``exports/flow_forecast/date=<D>/``.

    Every input problem (no snapshot for the date, a currency without data, an unknown model) is a
    one-line GexflowError raised before any file is written.
    """
    data_dir = Path(data_dir)
    forecast_date = forecast_date or now.astimezone(UTC).date()
    currencies = _checked_request(currencies, models)
    # plan: which snapshot per currency
    picks = pick_snapshots(data_dir, forecast_date, currencies)
    chain = read_chains(data_dir, picks)
    positions = positions_for(data_dir, chain, models)
    # compute: pure transforms
    t0 = {c: forecast_start(forecast_date, ts) for c, ts in picks.items()}
    frames = compute(chain, positions, t0, horizons_hours, include_next_expiry)
    result = ForecastResult(forecast_date, picks, t0, frames)
    files.check_writable(data_dir)
    # charts take seconds: render them before taking the writer lock, so a concurrent ingest is not shut out
    built = build_exports(data_dir, forecast_date, frames, positions, picks) if export else None
    # stage and publish: one journaled commit under the writer lock, then the exports swapped in
    try:
        with files.writer_lock(data_dir, lock_wait_s):
            result.lake_files = publish(data_dir, stage(data_dir, forecast_date, frames, currencies))
            if built is not None:
                result.exports = built.swap_in()
    except BaseException:
        if built is not None:
            built.discard()
        raise
    return result


def _checked_request(currencies, models) -> list[str]:
    """The requested currencies, upper-cased and de-duplicated; a GexflowError for no currency or no model."""
    currencies = list(dict.fromkeys(c.strip().upper() for c in currencies))
    if not currencies:
        raise GexflowError("no currency to forecast")
    if models is not None and not models:
        raise GexflowError("no positioning model to forecast")
    return currencies


def build_exports(data_dir: Path, forecast_date: date, frames: ForecastFrames, positions: pl.DataFrame, picks):
    """The forecast's export folder (files and charts), built aside; swapped in by the caller once the lake
    commit is done (``pipelines.publishing.exports``)."""
    from pipelines.publishing.depth_exports import DepthExport, recent_history
    from pipelines.publishing.exports import build_forecast_exports

    models_used = positions["model"].unique(maintain_order=True).to_list()
    depth = DepthExport(frames.by_expiry, frames.by_strike, frames.levels, recent_history(data_dir, picks, models_used))
    return build_forecast_exports(
        data_dir,
        forecast_date,
        frames.forecast,
        frames.summary,
        rolloff=frames.rolloff,
        profiles=frames.profiles,
        levels=frames.levels,
        depth=depth,
    )


__all__ = [
    "DEFAULT_MODELS",
    "FORECAST_TABLES",
    "ForecastFrames",
    "ForecastResult",
    "compute",
    "forecast_cycle",
    "pick_snapshots",
    "positions_for",
    "publish",
    "read_chains",
    "settlement_time",
    "stage",
]
