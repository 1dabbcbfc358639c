"""Orphaned temp files: what a writer killed before journaling leaves behind, removed under the writer lock.

A temp file is named ``.<final>.<pid>@<host>.<hex>.tmp`` (:func:`warehouse.atomic.temp_path`), and a process
marks ``_journal/stagers/<pid>@<host>`` before its first one (removed when it exits normally), so the next
writer walks the data dir only when a process that staged files is gone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from warehouse.atomic import FOREIGN_TEMP_AGE_S, HOST, JOURNAL_DIR, STAGERS, TEMP_RE


def pending_temps(root: Path) -> set[str]:
    """Temp files named by journals still waiting to be applied."""
    out: set[str] = set()
    for journal in sorted((root / JOURNAL_DIR).glob("*.json")) if (root / JOURNAL_DIR).is_dir() else ():
        try:
            out.update(tmp for tmp, _ in json.loads(journal.read_text()).get("renames", ()))
        except (OSError, ValueError):
            continue
    return out


def _writer_gone(pid: int, host: str, path: Path, now: float) -> bool:
    if host != HOST:
        try:
            return now - path.stat().st_mtime > FOREIGN_TEMP_AGE_S
        except OSError:
            return False
    if pid == os.getpid():
        return False  # this process's own staging (another thread of a backfill)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _gone_stagers(data_dir: Path) -> list[Path]:
    folder = data_dir / JOURNAL_DIR / STAGERS
    if not folder.is_dir():
        return []
    now, gone = time.time(), []
    for mark in folder.iterdir():
        pid, _, host = mark.name.partition("@")
        if pid.isdigit() and _writer_gone(int(pid), host, mark, now):
            gone.append(mark)
    return gone


def sweep_orphans(root: Path) -> int:
    """Remove temp files whose writer died before journaling them (call under the writer lock, after
    :func:`recover`); files a pending journal names and files of live writers are kept. Returns the count."""
    keep = pending_temps(root)
    now = time.time()
    removed = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            m = TEMP_RE.match(name) if name.endswith((".tmp", ".tmp.wal")) else None
            path = Path(folder) / name
            if m is None or str(path) in keep or not _writer_gone(int(m.group(1)), m.group(2), path, now):
                continue
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def sweep_if_needed(data_dir: Path) -> int:
    """Sweep (call under the writer lock, after recovery) when a stager is gone; returns temp files removed."""
    gone = _gone_stagers(data_dir)
    if not gone:  # a full walk of the data dir is not free (a stat per file; a long history has tens of thousands)
        return 0
    removed = sweep_orphans(data_dir)
    for mark in gone:
        mark.unlink(missing_ok=True)
    return removed
