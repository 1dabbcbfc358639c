"""Replay recorded Deribit responses as if they came from the API.

A replay directory holds files named ``<method>.<KEY>.<STAMP>.json`` (or ``.json.gz``), searched
recursively, where ``method`` is the short method name (``get_book_summary_by_currency``), ``KEY`` the
currency (``BTC``) or, for ``get_index_price``, the currency or index name (``btc_usd``), and ``STAMP``
a UTC time ``YYYYMMDDTHHMMSS[mmm]Z``. Every stamp with a book summary is one snapshot; it also needs
``get_instruments`` and ``get_index_price`` for that currency and stamp. ``<data-dir>/raw/deribit``
has exactly this layout, so landed raw bodies can be replayed. The bundled sample is such a directory.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from pipelines.errors import SourceError

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
        if not root.is_dir():
            raise SourceError(f"replay directory {root} does not exist")
        found = {}
        for path in root.rglob("get_*.json*"):
            m = _FILE.match(path.name)
            if m:
                found[(m["method"], m["key"].upper(), m["stamp"])] = path
        if not found:
            raise SourceError(f"replay directory {root} has no <method>.<KEY>.<STAMP>.json[.gz] files")
        return cls(root, found)

    def snapshots(self, currencies) -> list[str]:
        """Sorted stamps that have a book summary for any of ``currencies``."""
        want = {c.upper() for c in currencies}
        stamps = sorted({s for (m, k, s) in self.files if m == "get_book_summary_by_currency" and k in want})
        if not stamps:
            raise SourceError(f"replay directory {self.root} has no book summary for {', '.join(sorted(want))}")
        return stamps

    def has(self, method: str, key: str, stamp: str) -> bool:
        return (method, key.upper(), stamp) in self.files

    def body(self, method: str, key: str, stamp: str) -> bytes:
        path = self.files.get((method, key.upper(), stamp))
        if path is None:
            raise SourceError(f"replay directory {self.root} lacks {method}.{key}.{stamp}.json")
        try:
            data = path.read_bytes()
            return gzip.decompress(data) if path.name.endswith(".gz") else data
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SourceError(f"cannot read replay file {path}: {exc}") from None


class ReplayTransport:
    """The HTTP transport's interface, answered from a replay directory at one stamp."""

    def __init__(self, directory: ReplayDirectory, stamp: str):
        self.directory, self.stamp = directory, stamp

    def get(self, method: str, params: dict) -> tuple[int, bytes]:
        short = method.split("/", 1)[-1]
        if short == "get_index_price":
            index = params["index_name"]
            base = index.split("_", 1)[0]
            key = index if self.directory.has(short, index, self.stamp) else base
        else:
            key = params["currency"]
        return 200, self.directory.body(short, key, self.stamp)


def sample_directory() -> Path:
    """The bundled real sample (a replay directory shipped inside the package)."""
    return Path(str(resources.files("pipelines.sources") / "sample"))
