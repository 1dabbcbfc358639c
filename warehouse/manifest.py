"""The manifest of published lake files, and the check of the lake against it (``gexflow check``).

Every journaled commit (:mod:`warehouse.files`) records each file it publishes (path under the data dir,
size, SHA-256) and each file it removes, as ``_manifest/<commit>.json``; commit names sort in commit
order, so replaying them gives what the lake must hold. Files published before manifests existed
(and the ``_empty.parquet`` schema files) are checked for being readable Parquet instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from warehouse.atomic import MANIFEST_DIR, write_atomic

COMPACT_AFTER = 512  # entries; older ones are merged into one file under the writer lock


@dataclass(frozen=True)
class Problem:
    path: str  # relative to the data dir
    what: str  # "missing", "size 12 (manifest: 40)", "content differs from the manifest", "unreadable: ..."

    def line(self) -> str:
        return f"{self.path}: {self.what}"


def entries(data_dir: Path) -> list[Path]:
    folder = Path(data_dir) / MANIFEST_DIR
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def expected(data_dir: Path) -> dict[str, tuple[int, str]]:
    """{path relative to the data dir: (size, sha256)} of every file the commits say is published."""
    out: dict[str, tuple[int, str]] = {}
    for entry in entries(data_dir):
        try:
            doc = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue  # written atomically; unreadable means damaged: its files are still checked as Parquet
        for path in doc.get("removed", ()):
            out.pop(path, None)
        for path, (size, digest) in doc.get("files", {}).items():
            out[path] = (size, digest)
    return out


def compact(data_dir: Path) -> bool:
    """Merge the manifest entries into one (call under the writer lock). The merged file sorts right after
    the last entry it replaces, so a reader replaying old and merged files in order still gets the same map."""
    olds = entries(data_dir)
    if len(olds) <= COMPACT_AFTER:
        return False
    merged = {"files": {k: list(v) for k, v in expected(data_dir).items()}, "removed": []}
    write_atomic(olds[-1].with_name(f"{olds[-1].stem}~merged.json"), json.dumps(merged).encode())
    for old in olds:
        old.unlink(missing_ok=True)
    return True


def parquet_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable Parquet file, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(-4, 2)
            tail = fh.read(4)
        if head != b"PAR1" or tail != b"PAR1":
            return "unreadable: not a complete Parquet file (truncated or overwritten)"
        pl.read_parquet_schema(path)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - any reader error is the finding
        return f"unreadable: {str(exc).splitlines()[0][:120]}"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(data_dir: Path) -> tuple[int, list[Problem]]:
    """Check every lake file: against the manifest when it lists it, else as Parquet.

    Returns (files checked, problems)."""
    data_dir = Path(data_dir)
    want = expected(data_dir)
    problems: list[Problem] = []
    for rel, (size, digest) in sorted(want.items()):
        path = data_dir / rel
        if not path.is_file():
            problems.append(Problem(rel, "missing (published by a commit, no longer there)"))
        elif path.stat().st_size != size:
            problems.append(Problem(rel, f"size {path.stat().st_size} bytes, published with {size}"))
        elif _sha256(path) != digest:
            problems.append(Problem(rel, "content differs from what was published (SHA-256 mismatch)"))
    lake = data_dir / "lake"
    others = [p for p in lake.rglob("*.parquet") if not p.name.startswith(".")] if lake.is_dir() else []
    unlisted = [p for p in others if str(p.relative_to(data_dir)) not in want]
    for path in sorted(unlisted):
        why = parquet_problem(path)
        if why:
            problems.append(Problem(str(path.relative_to(data_dir)), why))
    return len(want) + len(unlisted), problems


def unreadable(data_dir: Path, limit: int = 5) -> list[str]:
    """Lake files that are not readable Parquet (for naming them in a reader's error), at most ``limit``."""
    lake = Path(data_dir) / "lake"
    bad = []
    for path in sorted(lake.rglob("*.parquet")) if lake.is_dir() else ():
        if not path.name.startswith(".") and parquet_problem(path):
            bad.append(str(path))
            if len(bad) >= limit:
                break
    return bad
