"""Atomic writes of single files, and the names every writer of a data dir shares.

A file is written under a temp name beside its final name (same filesystem, so the rename is atomic):
``.<final name>.<pid>@<host>.<hex>.tmp`` (:func:`temp_path`), fsynced, then renamed over it
(:func:`write_atomic`). Before its first temp file in a data dir, a process marks itself in
``_journal/stagers/`` (:func:`mark_stager`), so a writer finding the mark of a dead process knows to sweep
its temp files (:mod:`warehouse.orphans`). Journaled multi-file commits build on this (:mod:`warehouse.files`).
"""

from __future__ import annotations

import atexit
import os
import re
import socket
import uuid
from pathlib import Path

from warehouse import WarehouseError

JOURNAL_DIR = "_journal"
MANIFEST_DIR = "_manifest"
STAGERS = "stagers"  # <data dir>/_journal/stagers/<pid>@<host>: processes that may have left temp files
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
# .<final name>.<pid>@<host>.<hex>.tmp: the writer is named so a sweep can tell a dead writer's temp files
TEMP_RE = re.compile(r"^\..+\.(\d+)@([A-Za-z0-9-]+)\.[0-9a-f]{8,}\.tmp(\.wal)?$")
FOREIGN_TEMP_AGE_S = 24 * 3600  # temp files of another host (shared data dir) are left alone this long


def temp_path(final: Path) -> Path:
    """A temp name in the same directory (same filesystem, so ``os.replace`` is atomic); never globbed as data."""
    return final.with_name(f".{final.name}.{os.getpid()}@{HOST}.{uuid.uuid4().hex[:12]}.tmp")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_error(path: Path, exc: OSError, note: str = "") -> WarehouseError:
    return WarehouseError(f"cannot write {path}: {exc.strerror or exc}{note}")


def write_durable(tmp: Path, data: bytes, fsync: bool = True) -> None:
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(final: Path, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically (temp file in the same directory, fsync, rename)."""
    tmp = temp_path(final)
    try:
        mark_stager(data_dir_of(final))
        final.parent.mkdir(parents=True, exist_ok=True)
        write_durable(tmp, data)
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise disk_error(final, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)
    return final


_marked: set[Path] = set()


_TOP_FOLDERS = {"lake", "raw", "quarantine", JOURNAL_DIR, MANIFEST_DIR}


def data_dir_of(final: Path) -> Path | None:
    for parent in final.parents:
        if parent.name in _TOP_FOLDERS:
            return parent.parent
    return None  # not under a data dir's folders (the top-level warehouse files mark themselves)


def mark_stager(data_dir: Path | None) -> None:
    """Record (once per process and data dir, before its first temp file) that this process stages files there.
    A clean exit removes the mark; one left by a process that is gone tells the next writer to sweep."""
    if data_dir is None:
        return
    mark = data_dir / JOURNAL_DIR / STAGERS / f"{os.getpid()}@{HOST}"
    if data_dir in _marked and mark.exists():
        return
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.touch()
    if data_dir not in _marked:
        _marked.add(data_dir)
        atexit.register(mark.unlink, missing_ok=True)
