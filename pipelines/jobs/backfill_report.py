"""What a Tardis backfill did: per day and per run, and its ``ingest_runs`` records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from pipelines.jobs import ingest
from transforms.frames.schemas import INGEST_RUN


@dataclass(frozen=True)
class FailedSnapshot:
    """A snapshot (one time, one or both currencies) that did not land, or a grid time with no data."""

    snapshot_ts: datetime
    currencies: tuple[str, ...]
    file: Path  # the options_chain file it came from
    reason: str  # one line
    quarantined: Path | None = None  # quarantine/date=D/<stamp>/ with report.json, when validation failed

    def line(self) -> str:
        when = self.snapshot_ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return f"{','.join(self.currencies)} {when}: {self.reason}"


@dataclass
class DayResult:
    day: date
    path: Path
    landed: pl.DataFrame  # one row per (currency, snapshot_ts) published: options, open_interest, index_price, expiries
    failed: list[FailedSnapshot] = field(default_factory=list)
    empty: list[FailedSnapshot] = field(default_factory=list)  # grid times with no fresh option: not published
    rows: int = 0  # option_snapshots rows published
    files: int = 0  # lake files published (option_snapshots + instruments + state)
    seconds: float = 0.0
    rows_read: int = 0  # option rows in the file (tick level: every update)
    stale: int = 0  # options left out as stale, summed over the published snapshots
    resumed: bool = False  # published by an earlier run: skipped

    @property
    def snapshots(self) -> int:
        """(currency, snapshot_ts) chains published."""
        return self.landed.height

    def line(self) -> str:
        """One line per day, for logs and piped output."""
        if self.resumed:
            return f"{self.day}: already published, skipped"
        text = f"{self.day}: {self.rows_read:,} rows read, {self.snapshots} snapshot(s), {self.rows:,} options"
        text += f", {self.stale:,} stale left out, {len(self.empty)} without data, {len(self.failed)} failed"
        return text + f" ({self.seconds:.1f} s)"


@dataclass
class BackfillResult:
    run_id: str
    source: str  # 'tardis' | 'replay'
    days: list[DayResult] = field(default_factory=list)
    ingest: ingest.IngestResult | None = None  # replays only
    seconds: float = 0.0
    missing: list[date] = field(default_factory=list)  # days without a file between the first and the last

    def summary(self) -> pl.DataFrame:
        """One row per (currency, snapshot_ts) landed: options, open_interest, index_price, expiries."""
        if self.ingest is not None:
            return self.ingest.summary()
        frames = [d.landed for d in self.days]
        return pl.concat(frames) if frames else summary([])

    @property
    def rows(self) -> int:
        return int(self.summary()["options"].sum() or 0)

    @property
    def snapshots(self) -> int:
        return self.summary().height

    @property
    def failed(self) -> list[FailedSnapshot]:
        return [f for d in self.days for f in d.failed]

    @property
    def empty(self) -> list[FailedSnapshot]:
        return [f for d in self.days for f in d.empty]

    @property
    def exit_code(self) -> int:
        """0 when every snapshot with data landed, 1 when some were skipped (they are in ``failed``)."""
        return 1 if self.failed else 0

    def lines(self) -> list[str]:
        """Human report: a totals line, then one line per failed snapshot, grid times without data, gaps."""
        head = f"backfilled {self.snapshots} snapshot(s), {self.rows} rows"
        if self.source == "tardis":
            head += f" from {len(self.days)} day file(s)"
        head += f" in {self.seconds:.1f} s"
        if self.failed:
            head += f"; {len(self.failed)} snapshot(s) failed"
        # a day file with no option rows for the asked currencies (e.g. only a header) lands nothing: say so
        empty = [d for d in self.days if d.rows == 0 and not d.failed and not d.resumed]
        return [
            head,
            *(f"  failed {f.line()}" for f in self.failed),
            *_no_data_lines(self.empty),
            *(f"  missing {d}: no options_chain file (the state carries over)" for d in self.missing),
            *(f"  skipped {d.day}: already published" for d in self.days if d.resumed),
            *(f"  empty {d.day}: {d.path.name} has no option rows for these currencies" for d in empty),
        ]


def _no_data_lines(points: list[FailedSnapshot]) -> list[str]:
    """Grid times without data, one line per (day, currency, reason kind), the times listed."""
    groups: dict[tuple, list[datetime]] = {}
    for p in points:
        kind = p.reason.split(" (")[0]
        groups.setdefault((p.snapshot_ts.date(), p.currencies, kind), []).append(p.snapshot_ts)
    out = []
    for (day, currencies, kind), times in groups.items():
        shown = ", ".join(f"{t:%H:%M}" for t in times[:6]) + (" ..." if len(times) > 6 else "")
        out.append(f"  no data {','.join(currencies)} {day} {shown} ({len(times)} grid time(s)): {kind}")
    return out


_SUMMARY = {
    "currency": pl.String,
    "snapshot_ts": INGEST_RUN["snapshot_ts"],
    "options": pl.UInt32,
    "open_interest": pl.Float64,
    "index_price": pl.Float64,
    "expiries": pl.UInt32,
}


def summary(batches: list[ingest.Batch]) -> pl.DataFrame:
    """IngestResult.summary() of the batches, with every column also when nothing landed."""
    if not any(b.snapshots.height for b in batches):
        return pl.DataFrame(schema=_SUMMARY)
    return ingest.IngestResult(run_id="", batches=batches).summary().cast(_SUMMARY)


def run_record(
    run_id: str, started: datetime, batches: list[ingest.Batch], failed: list[FailedSnapshot], source: str
) -> pl.DataFrame:
    """ingest_runs rows: 'ok' per landed (currency, snapshot_ts), 'failed' with the reason per failed one."""
    finished = datetime.now(UTC)
    quarantined = {f.snapshot_ts: f for f in failed if f.quarantined is not None}
    ok = [b for b in batches if b.cycle_stamp not in quarantined]
    frames = [ingest.run_record(run_id, started, finished, ok, "ok", "")]
    for batch in batches:
        if batch.cycle_stamp in quarantined:
            reason = quarantined[batch.cycle_stamp].reason
            frames.append(ingest.run_record(run_id, started, finished, [batch], "failed", reason))
    for f in failed:
        if f.quarantined is None:  # no index price: nothing of it was normalised into a batch
            for currency in f.currencies:
                frames.append(
                    pl.DataFrame(
                        [(run_id, started, finished, source, currency, f.snapshot_ts, 0, 0.0, "failed", f.reason)],
                        schema=INGEST_RUN,
                        orient="row",
                    )
                )
    return pl.concat(frames)


__all__ = ["BackfillResult", "DayResult", "FailedSnapshot", "run_record", "summary"]
