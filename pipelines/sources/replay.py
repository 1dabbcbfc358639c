"""Replay recorded Deribit responses as if they came from the API.

A replay directory holds files named ``<method>.<KEY>.<STAMP>.json`` (or ``.json.gz``), searched
recursively, where ``method`` is the short method name (``get_book_summary_by_currency``), ``KEY`` the
currency (``BTC``) or, for ``get_index_price``, the currency or index name (``btc_usd``), and ``STAMP``
a UTC time ``YYYYMMDDTHHMMSS[mmm]Z``. Every stamp with a book summary is one snapshot; it also needs
``get_instruments`` and ``get_index_price`` for that currency and stamp. ``<data-dir>/raw/deribit``
has exactly this layout, so landed raw bodies can be replayed. The bundled sample is such a directory.

Every file a run needs is checked before it starts (:meth:`ReplayDirectory.require`). A file that is
there but unusable (truncated JSON, no ``result``) is a :class:`SourceError` naming it, never a
transient error: unlike a body cut off by the network, a file on disk cannot heal on a retry.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from pipelines.errors import SourceError
from pipelines.sources.deribit import DeribitError, index_names, parse_body

BOOK_METHOD = "get_book_summary_by_currency"
INSTRUMENTS_METHOD = "get_instruments"
INDEX_METHOD = "get_index_price"

_FILE = re.compile(
    r"^(?P<method>get_[a-z_]+)\.(?P<key>[A-Za-z0-9_]+)\.(?P<stamp>\d{8}T\d{6}(?:\d{3})?Z)\.json(?:\.gz)?$"
)


def parse_stamp(stamp: str) -> datetime:
    fmt = "%Y%m%dT%H%M%S%fZ" if len(stamp) == 19 else "%Y%m%dT%H%M%SZ"
    value = stamp[:-4] + stamp[-4:-1] + "000Z" if len(stamp) == 19 else stamp
    return datetime.strptime(value, fmt).replace(tzinfo=UTC)


@dataclass
class ReplayDirectory:
    root: Path
    files: dict[tuple[str, str, str], Path] = field(default_factory=dict)  # (method, KEY, stamp) -> file

    @classmethod
    def open(cls, root: Path) -> ReplayDirectory:
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise SourceError(f"replay source {root} is a file; give the directory that holds the recorded bodies")
        if not root.is_dir():
            raise SourceError(f"replay directory {root} does not exist")
        found = {}
        for path in root.rglob("get_*.json*"):
            m = _FILE.match(path.name)
            if m:
                try:
                    parse_stamp(m["stamp"])
                except ValueError:
                    raise SourceError(f"replay file {path} has an impossible time in its name ({m['stamp']})") from None
                found[(m["method"], m["key"].upper(), m["stamp"])] = path
        if not found:
            raise SourceError(f"replay directory {root} has no <method>.<KEY>.<STAMP>.json[.gz] files")
        return cls(root, found)

    def snapshots(self, currencies) -> list[str]:
        """Sorted stamps that have a book summary for any of ``currencies``."""
        want = {c.upper() for c in currencies}
        stamps = sorted({s for (m, k, s) in self.files if m == BOOK_METHOD and k in want})
        if not stamps:
            raise SourceError(f"replay directory {self.root} has no book summary for {', '.join(sorted(want))}")
        return stamps

    def require(self, stamps, currencies) -> None:
        """Every file the snapshots at ``stamps`` need for ``currencies``, or one SourceError naming the first missing.

        Per (stamp, currency): ``get_instruments``, ``get_book_summary_by_currency`` and, per index the
        instruments are priced on, ``get_index_price`` keyed by the index name or its base coin. Reads
        only the instruments files (for their index names); nothing is written.
        """
        missing: list[str] = []
        for stamp in stamps:
            for currency in currencies:
                key = currency.upper()
                for method in (INSTRUMENTS_METHOD, BOOK_METHOD):
                    if not self.has(method, key, stamp):
                        missing.append(_name(method, key, stamp))
                if not self.has(INSTRUMENTS_METHOD, key, stamp):
                    continue
                instruments = self.result(INSTRUMENTS_METHOD, key, stamp)
                for index in index_names(currency, instruments if isinstance(instruments, list) else []):
                    base = index.split("_", 1)[0]
                    if not (self.has(INDEX_METHOD, index, stamp) or self.has(INDEX_METHOD, base, stamp)):
                        missing.append(
                            f"{_name(INDEX_METHOD, index, stamp)} (or {_name(INDEX_METHOD, base.upper(), stamp)})"
                        )
        if missing:
            more = f" and {len(missing) - 1} more file(s)" if len(missing) > 1 else ""
            raise SourceError(f"replay directory {self.root} lacks {missing[0]}{more}")

    def has(self, method: str, key: str, stamp: str) -> bool:
        return (method, key.upper(), stamp) in self.files

    def path(self, method: str, key: str, stamp: str) -> Path:
        path = self.files.get((method, key.upper(), stamp))
        if path is None:
            raise SourceError(f"replay directory {self.root} lacks {_name(method, key, stamp)}")
        return path

    def body(self, method: str, key: str, stamp: str) -> bytes:
        path = self.path(method, key, stamp)
        try:
            data = path.read_bytes()
            return gzip.decompress(data) if path.name.endswith(".gz") else data
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SourceError(f"cannot read replay file {path}: {exc}") from None

    def result(self, method: str, key: str, stamp: str):
        """The ``result`` of one recorded body; a SourceError naming the file if it has none."""
        return parse_file(self.path(method, key, stamp), method, self.body(method, key, stamp))


def _name(method: str, key: str, stamp: str) -> str:
    """A replay file's name as the layout documents it: the currency upper case, an index name lower case."""
    return f"{method}.{key.lower() if '_' in key else key.upper()}.{stamp}.json"


def parse_file(path: Path, method: str, body: bytes):
    """:func:`parse_body` for a recorded file: any failure is a one-line, never-transient SourceError naming it."""
    try:
        return parse_body(method, body, 200)
    except DeribitError as err:
        if not err.malformed:
            code = f"code {err.code} " if err.code is not None else ""
            what = f"records a failed call ({code}{err.message})"
        elif err.message.startswith("malformed JSON"):
            what = f"is truncated or not valid JSON ({len(body)} bytes)"
        else:
            what = err.message.replace("JSON body", "its JSON").replace("body has", "has")
        raise SourceError(f"replay file {path} {what}; it cannot be replayed") from None


class ReplayTransport:
    """The HTTP transport's interface, answered from a replay directory at one stamp.

    Its :meth:`parse` is the client's parser for these bodies: a bad file fails once, by name, and is
    never retried (neither by the client's backoff nor by a Prefect task retry).
    """

    def __init__(self, directory: ReplayDirectory, stamp: str):
        self.directory, self.stamp = directory, stamp
        self._served: Path | None = None  # the file behind the last body, for parse()

    def _key(self, short: str, params: dict) -> str:
        if short == INDEX_METHOD:
            index = params["index_name"]
            return index if self.directory.has(short, index, self.stamp) else index.split("_", 1)[0].upper()
        return params["currency"]

    def get(self, method: str, params: dict) -> tuple[int, bytes]:
        short = method.split("/", 1)[-1]
        key = self._key(short, params)
        self._served = self.directory.path(short, key, self.stamp)
        return 200, self.directory.body(short, key, self.stamp)

    def parse(self, method: str, body: bytes, http_status: int):
        return parse_file(self._served, method.split("/", 1)[-1], body)


def sample_directory() -> Path:
    """The bundled real sample (a replay directory shipped inside the package)."""
    return Path(str(resources.files("pipelines.sources") / "sample"))
