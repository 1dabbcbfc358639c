"""Atomic file writes, multi-file commits with a roll-forward journal, and the single-writer lock."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from warehouse import WarehouseError

JOURNAL_DIR = "_journal"
LOCK_NAME = ".gexflow.lock"


def temp_path(final: Path) -> Path:
    """A temp name in the same directory (same filesystem, so ``os.replace`` is atomic); never globbed as data."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(final: Path, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically (temp file in the same directory, fsync, rename)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)
    return final


@dataclass
class Staged:
    """A file written under a temp name, waiting for :func:`commit`."""

    tmp: Path
    final: Path


def commit(root: Path, staged: list[Staged], deletes: list[Path] = ()) -> None:
    """Publish staged files (and remove replaced ones) as one unit.

    A journal listing every rename is written first; if the process dies mid-way, the next writer
    rolls it forward (:func:`recover`), so readers see either none or all of the batch after recovery.
    """
    if not staged and not deletes:
        return
    jdir = root / JOURNAL_DIR
    journal = jdir / f"{uuid.uuid4().hex}.json"
    doc = {"renames": [[str(s.tmp), str(s.final)] for s in staged], "deletes": [str(p) for p in deletes]}
    write_atomic(journal, json.dumps(doc).encode())
    _apply(doc)
    journal.unlink(missing_ok=True)


def _apply(doc: dict) -> None:
    for tmp, final in doc["renames"]:
        if Path(tmp).exists():
            os.replace(tmp, final)
    for path in doc.get("deletes", ()):
        Path(path).unlink(missing_ok=True)
    for parent in {Path(f).parent for _, f in doc["renames"]}:
        _fsync_dir(parent)


def recover(root: Path) -> int:
    """Roll forward journals left by a writer that died mid-commit; returns how many were applied."""
    jdir = root / JOURNAL_DIR
    if not jdir.is_dir():
        return 0
    done = 0
    for journal in sorted(jdir.glob("*.json")):
        try:
            doc = json.loads(journal.read_text())
        except ValueError:
            journal.unlink(missing_ok=True)  # torn journal: its commit never started
            continue
        _apply(doc)
        journal.unlink(missing_ok=True)
        done += 1
    return done


def discard(staged: list[Staged]) -> None:
    for s in staged:
        s.tmp.unlink(missing_ok=True)


@contextmanager
def writer_lock(data_dir: Path, wait_s: float = 0.0):
    """Hold the single-writer lock of ``data_dir``.

    While another writer holds it, retry with backoff for up to ``wait_s`` seconds (scheduled flows
    collide by design: the hourly snapshot and the 10-minute trades run both fire at :00), then raise
    a one-line WarehouseError. ``wait_s=0`` fails at once (the CLI's default).
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WarehouseError(f"cannot write to data dir {data_dir}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + wait_s
        delay = 0.05
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() + delay > deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                    waited = f" after waiting {wait_s:g} s" if wait_s else ""
                    raise WarehouseError(
                        f"another gexflow writer holds {path} ({holder}){waited}; wait for it to finish or stop it"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)  # hosts share it on NFS
        recover(data_dir)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def check_writable(data_dir: Path) -> None:
    """Fail early with one line if ``data_dir`` cannot be created or written."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".probe.{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WarehouseError(f"cannot write to data dir {data_dir}: {exc.strerror or exc}") from None
