"""Paging one currency's trade tape: plan the windows from the watermarks, page the API, land every page.

The paging state (where the next page starts, the newest trade seen, the previous page's ids) is kept
apart from the HTTP loop in :class:`Paging`; the stop rules are those of :mod:`pipelines.jobs.trades`'s
docstring. Moved out of ``pipelines.jobs.trades`` (issue 13).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from pipelines.config import ConfigError, Settings
from pipelines.jobs.ingest import land_malformed
from pipelines.sources.deribit import DeribitClient, RawResponse
from pipelines.store import reads
from transforms.frames.trades import flatten_legs, page_trades
from warehouse import raw

METHOD = "public/get_last_trades_by_currency_and_time"
MAX_COUNT = 1000  # Deribit's largest page
DEFAULT_LOOKBACK = timedelta(hours=24)
WATERMARK_FILE = "watermark.parquet"


@dataclass
class TradeWindow:
    """What one currency's run asks for: ``[start_ms, end_ms]`` (both inclusive, epoch ms)."""

    currency: str
    start_ms: int
    end_ms: int
    previous_watermark_ms: int | None
    warnings: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return self.start_ms > self.end_ms


@dataclass
class FetchedTrades:
    """The pages of one currency: trades as received (overlaps included) and where the next run starts."""

    window: TradeWindow
    trades: list[dict] = field(default_factory=list)
    pages: int = 0
    raw_paths: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    watermark_ms: int | None = None  # None: leave the stored watermark as it is
    last_trade_id: str | None = None

    @property
    def currency(self) -> str:
        return self.window.currency


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(ts: datetime) -> int:
    """Epoch milliseconds (exact integer arithmetic; sub-millisecond parts are dropped)."""
    return (ts - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def as_utc(ts: datetime, what: str) -> datetime:
    """UTC; a naive datetime is taken to be UTC."""
    if not isinstance(ts, datetime):
        raise ConfigError(f"{what} must be a datetime, got {ts!r}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _at(ms: int) -> str:
    return f"{from_epoch_ms(ms):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


# ---------------------------------------------------------------- plan


def read_watermarks(data_dir: Path) -> dict[str, int]:
    """{currency: watermark (epoch ms)} from ``lake/_state/trade_watermarks``."""
    latest = reads.latest_watermarks(data_dir, WATERMARK_FILE)
    if latest is None:
        return {}
    return {c: epoch_ms(ts) for c, ts in latest.iter_rows() if ts is not None}


def plan_windows(data_dir: Path, currencies, now: datetime, trades_since: datetime | None = None) -> list[TradeWindow]:
    """Per currency: start at the watermark if there is one, else at ``trades_since`` (default now - 24 h)."""
    now = as_utc(now, "now")
    since = as_utc(trades_since, "trades_since") if trades_since is not None else now - DEFAULT_LOOKBACK
    if since > now:
        raise ConfigError(
            f"--trades-since {since:%Y-%m-%dT%H:%M:%SZ} is after the run's end time {now:%Y-%m-%dT%H:%M:%SZ}"
        )
    marks = read_watermarks(data_dir)
    end_ms = epoch_ms(now)
    windows = []
    for currency in currencies:
        mark = marks.get(currency)
        window = TradeWindow(currency, mark if mark is not None else epoch_ms(since), end_ms, mark)
        if mark is not None and trades_since is not None:
            window.warnings.append(f"{currency}: trades_since ignored, continuing from the watermark {_at(mark)}")
        if window.is_empty:
            window.warnings.append(f"{currency}: watermark is after the run's end time; nothing fetched")
        windows.append(window)
    return windows


# ---------------------------------------------------------------- fetch


def open_client(settings: Settings) -> DeribitClient:
    """A live client. Its clock stamps raw pages with their receipt time; a page that arrives malformed
    (truncated JSON) is kept under raw/_malformed/ (:func:`pipelines.jobs.ingest.land_malformed`) before any retry."""
    return DeribitClient.from_settings(settings, on_malformed=partial(land_malformed, settings.data_dir))


def land_page(data_dir: Path, currency: str, response: RawResponse) -> Path:
    """Land one page body under raw/, stamped with its receipt time, never overwriting an earlier page."""
    stamp = response.received_at.astimezone(UTC)
    stamp = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
    while raw.raw_path(data_dir, METHOD, currency, currency, stamp).exists():
        stamp += timedelta(milliseconds=1)
    return raw.land_raw(data_dir, METHOD, currency, currency, stamp, response.body)


@dataclass
class Paging:
    """Where one currency's paging stands: the next page's ``start`` (epoch ms), the window's ``end``, the page
    size, the newest trade time seen (the next watermark) and the previous page's trade ids."""

    start: int
    end: int
    count: int
    newest: int
    previous_ids: list | None = None

    def advance(self, out: FetchedTrades, trades: list[dict], has_more: bool, stamps: list[int]) -> bool:
        """Take one page into the state (and ``out``'s newest trade id); True when the next page should be
        fetched, False to stop (with a warning in ``out`` when the page could not move forward)."""
        where = f"{out.currency}: page {out.pages} (start {_at(self.start)})"
        if not trades:
            if has_more:
                out.warnings.append(f"{where}: empty page claims has_more; stopped")
            return False
        first, last = min(stamps), max(stamps)
        if last >= self.newest:
            self.newest = last
            out.last_trade_id = str(trades[len(stamps) - 1 - stamps[::-1].index(last)].get("trade_id"))
        ids = [t.get("trade_id") for t in trades]
        if not has_more:
            return False
        stuck = self._stuck(where, len(trades), first, last, ids)
        if stuck is not None:
            out.warnings.append(stuck)
            return False
        self.start, self.previous_ids = last, ids
        return True

    def _stuck(self, where: str, n: int, first: int, last: int, ids: list) -> str | None:
        """Why a page with more to come cannot move the paging forward (None when it can)."""
        if last <= self.start and first == last and n >= self.count:
            self.newest = max(self.newest, self.start + 1)
            return (
                f"{where}: more than {self.count} trades at {_at(self.start)}; Deribit cannot page past one "
                f"millisecond, the rest of it is skipped"
            )
        if ids == self.previous_ids:
            return f"{where}: page identical to the previous one; stopped"
        if last <= self.start:
            return f"{where}: last trade timestamp {_at(last)} does not advance; stopped"
        if last > self.end:
            return f"{where}: trades after end_timestamp {_at(self.end)}; stopped"
        return None


def fetch_trades(client: DeribitClient, window: TradeWindow, data_dir: Path, count: int = MAX_COUNT) -> FetchedTrades:
    """Page one currency's tape over ``window``; every page body lands under raw/ as it arrives."""
    out = FetchedTrades(window)
    if window.is_empty:
        return out
    currency = window.currency
    paging = Paging(window.start_ms, window.end_ms, count, newest=window.start_ms)
    while True:
        result, response = client.get_trades(currency, paging.start, paging.end, count=count)
        out.raw_paths.append(land_page(data_dir, currency, response))
        out.pages += 1
        trades, has_more, stamps = page_trades(currency, result)
        out.trades.extend(flatten_legs(trades))
        if not paging.advance(out, trades, has_more, stamps):
            break
    out.watermark_ms = paging.newest  # >= start >= the previous watermark: it never moves back
    return out
