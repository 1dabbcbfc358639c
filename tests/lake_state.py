"""What a data dir's lake holds, in a form two runs can be compared by (fault-injection tests, benchmarks/chaos).

Data files compare by bytes (a snapshot always maps to the same file name and the Parquet writer is
deterministic); ``_state`` tables compare by their distinct rows without run ids and wall-clock times
(two runs of the same snapshot add two run records, which is history, not duplication).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from warehouse import atomic

VOLATILE = {"run_id", "started_ts", "finished_ts", "published_ts", "fetched_ts", "computed_ts", "message"}


def _state_digest(folder: Path) -> str:
    paths = sorted(p for p in folder.glob("currency=*/date=*/*.parquet"))
    if not paths:
        return "empty"
    frame = pl.concat([pl.read_parquet(p) for p in paths], how="diagonal_relaxed")
    frame = frame.drop([c for c in frame.columns if c in VOLATILE or c.endswith("_ms")]).unique()
    rows = sorted(map(repr, frame.rows()))
    return hashlib.sha256("\n".join([repr(frame.columns), *rows]).encode()).hexdigest()[:16]


def fingerprint(data_dir: Path) -> dict[str, str]:
    """{path under lake/: digest}; ``_state/<table>`` as one entry per table."""
    lake = Path(data_dir) / "lake"
    out: dict[str, str] = {}
    if not lake.is_dir():
        return out
    for path in sorted(lake.rglob("*.parquet")):
        rel = path.relative_to(lake)
        if path.name.startswith(".") or path.name == "_empty.parquet":
            continue  # temp files are leftovers (see leftovers()); schema files hold no rows and are rewritten
        if rel.parts[0] == "_state":
            key = "/".join(rel.parts[:2])
            if key not in out:
                out[key] = _state_digest(lake / rel.parts[0] / rel.parts[1])
            continue
        out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return out


def leftovers(data_dir: Path) -> list[str]:
    """Temp files and unfinished journals anywhere under the data dir."""
    root = Path(data_dir)
    temps = [str(p.relative_to(root)) for p in root.rglob("*.tmp") if p.is_file()]
    journals = [str(p.relative_to(root)) for p in (root / atomic.JOURNAL_DIR).glob("*.json")]
    return sorted(temps + journals)


def diff(got: dict[str, str], want: dict[str, str]) -> dict[str, list[str]]:
    """Files missing, extra, or with other contents than ``want``."""
    return {
        "missing": sorted(set(want) - set(got)),
        "extra": sorted(set(got) - set(want)),
        "changed": sorted(k for k in set(got) & set(want) if got[k] != want[k]),
    }
