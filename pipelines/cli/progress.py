"""Progress on stderr for long commands: a one-line counter (compute, grade) and per-day backfill progress."""

from __future__ import annotations

import sys


def counter(label: str):
    """A one-line progress counter on stderr for long runs (silent when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(done, total, currency, ts):
        end = "\n" if done == total else "\r"
        print(f"{label} {done}/{total} {currency} {ts:%Y-%m-%d %H:%M}", end=end, file=sys.stderr, flush=True)

    return show


class DayProgress:
    """Backfill progress per day: on a terminal a rich bar per day file (fraction read, rows read, then the
    snapshots built); piped, one line per day on stderr as each is published."""

    def __enter__(self):
        self.bar, self.tasks = None, {}
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.fields[day]}"),
                BarColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
        return self

    def _task(self, day):
        if day not in self.tasks:
            self.tasks[day] = self.bar.add_task("", total=1.0, day=str(day))
        return self.tasks[day]

    def read(self, day, fraction, rows) -> None:
        if self.bar is not None:
            self.bar.update(self._task(day), completed=fraction, description=f"{rows:,} rows read")

    def done(self, done, total, day) -> None:
        if self.bar is None:
            print(f"backfill {done}/{total} {day.line()}", file=sys.stderr, flush=True)
            return
        text = "already published" if day.resumed else f"{day.rows_read:,} rows read, {day.snapshots} snapshots built"
        self.bar.update(self._task(day.day), completed=1.0, description=text)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
