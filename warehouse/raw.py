"""Raw API bodies, exactly as received, gzipped: ``raw/deribit/<method>/currency=<C>/date=<D>/...``.

File names are ``<method>.<key>.<stamp>.json.gz`` (key: currency or index name; stamp: the fetch
cycle's UTC time), the same pattern a replay directory uses, so ``raw/deribit`` can be replayed.
"""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path

from warehouse.atomic import write_atomic


def stamp_of(ts: datetime) -> str:
    """UTC datetime -> ``20260731T113322630Z`` (milliseconds, sortable, filesystem-safe)."""
    return ts.strftime("%Y%m%dT%H%M%S") + f"{ts.microsecond // 1000:03d}Z"


def raw_path(data_dir: Path, method: str, currency: str, key: str, stamp_ts: datetime) -> Path:
    short = method.split("/", 1)[-1]
    return (
        data_dir
        / "raw"
        / "deribit"
        / short
        / f"currency={currency}"
        / f"date={stamp_ts:%Y-%m-%d}"
        / f"{short}.{key}.{stamp_of(stamp_ts)}.json.gz"
    )


def land_raw(data_dir: Path, method: str, currency: str, key: str, stamp_ts: datetime, body: bytes) -> Path:
    """Write one response body (gzip, deterministic mtime so re-landing is byte-identical)."""
    path = raw_path(data_dir, method, currency, key, stamp_ts)
    return write_atomic(path, gzip.compress(body, compresslevel=6, mtime=0))
