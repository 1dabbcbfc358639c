"""Multi-file commits with a roll-forward journal, and the single-writer lock (one file: :mod:`warehouse.atomic`).

The commit protocol (docs/reliability.md):

1. every file of a run is written under a temp name in its final directory (:func:`stage_bytes`);
2. a journal listing every rename (and every file's size and SHA-256) is written atomically and fsynced:
   from this moment the commit is decided and is only ever rolled *forward*;
3. the temp files are renamed over their final names, the manifest entry is written, the journal removed.

A failure before step 2 discards the temp files (nothing was published); a failure after it never
discards: the same process finishes the renames at once (:class:`Transaction`), and whatever a kill
left is finished by the next writer when it takes the lock (:func:`recover`). Temp files nobody will
ever publish (their writer died before journaling) are removed under the lock (:mod:`warehouse.orphans`).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from warehouse import WarehouseError
from warehouse.atomic import (
    JOURNAL_DIR,
    MANIFEST_DIR,
    data_dir_of,
    disk_error,
    fsync_dir,
    mark_stager,
    temp_path,
    write_atomic,
    write_durable,
)
from warehouse.manifest import compact
from warehouse.orphans import sweep_if_needed

LOCK_NAME = ".gexflow.lock"


@dataclass
class Staged:
    """A file written under a temp name, waiting to be published by a :class:`Transaction`."""

    tmp: Path
    final: Path
    size: int | None = None
    sha256: str | None = None
    journaled: bool = False  # set once a durable journal names it: from then on it is never discarded


def stage_bytes(final: Path, data: bytes) -> Staged:
    """Write ``data`` under a temp name beside ``final``; a disk error names ``final``."""
    try:
        mark_stager(data_dir_of(final))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(final)
        # not fsynced one by one (a disk flush per file, and a commit has hundreds): a kill keeps the page cache; the
        # journal and the directories are fsynced, and the manifest lets `gexflow check` find a power-loss casualty
        write_durable(tmp, data, fsync=False)
    except OSError as exc:
        raise disk_error(final, exc, " (nothing was published)") from None
    return Staged(tmp, final, len(data), hashlib.sha256(data).hexdigest())


def _rename(src: str, dst: str) -> None:
    """One publishing rename (a single seam, so tests can inject faults between renames)."""
    os.replace(src, dst)


class Transaction:
    """The staged files of one run, published together or not at all.

    Use as ``with files.transaction(data_dir) as tx: tx.add(staged); ...; tx.commit()``; leaving the
    block normally commits what was added, leaving it by an exception discards the temp files unless
    the journal was already durable, in which case the commit is finished (rolled forward) before the
    exception propagates. Nothing that a journal names is ever deleted.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.staged: list[Staged] = []
        self.deletes: list[Path] = []
        self.committed = False
        self._journal: Path | None = None

    def add(self, staged: Staged | Iterable[Staged]) -> None:
        if self.committed:
            raise WarehouseError("transaction already committed")
        self.staged.extend([staged] if isinstance(staged, Staged) else staged)

    def delete(self, path: Path) -> None:
        self.deletes.append(Path(path))

    def commit(self) -> None:
        try:
            self._commit()
        except BaseException:
            self._finish_or_discard()
            raise

    def _commit(self) -> None:
        if self.committed:
            return
        self.committed = True
        if not self.staged and not self.deletes:
            return
        jdir = self.root / JOURNAL_DIR
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        self._journal = jdir / f"{name}.json"
        doc = _journal_doc(self.root, name, self.staged, self.deletes)
        try:
            write_atomic(self._journal, json.dumps(doc).encode())
        except WarehouseError:
            if not self._journal.exists():
                self.committed = False
                raise
        for s in self.staged:
            s.journaled = True
        _apply(self.root, doc)
        self._journal.unlink(missing_ok=True)

    def _finish_or_discard(self) -> None:
        """After an exception: roll a durable commit forward, or delete temp files no journal names."""
        if self._journal is not None and self._journal.exists():
            for s in self.staged:
                s.journaled = True
            try:
                recover_one(self.root, self._journal)
            except BaseException:  # noqa: BLE001 - the next writer finishes it under the lock
                pass
            return
        discard(self.staged)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()  # finishes or discards itself when interrupted
        else:
            self._finish_or_discard()
        return False


def transaction(root: Path) -> Transaction:
    return Transaction(root)


def commit(root: Path, staged: list[Staged], deletes: Iterable[Path] = ()) -> None:
    """Publish staged files (and remove replaced ones) as one unit (a one-shot :class:`Transaction`)."""
    with Transaction(root) as tx:
        tx.add(staged)
        for path in deletes:
            tx.delete(path)


def _rel(root: Path, path: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _journal_doc(root: Path, name: str, staged: list[Staged], deletes: list[Path]) -> dict:
    return {
        "name": name,
        "renames": [[str(s.tmp), str(s.final)] for s in staged],
        "deletes": [str(p) for p in deletes],
        "manifest": {_rel(root, s.final): [s.size, s.sha256] for s in staged if s.sha256},
        "removed": [_rel(root, p) for p in deletes],
    }


def _apply(root: Path, doc: dict) -> None:
    """Perform (or finish) a journaled commit; idempotent, so it may be repeated after any interruption."""
    for tmp, final in doc["renames"]:
        if os.path.exists(tmp):
            _rename(tmp, final)
    for path in doc.get("deletes", ()):
        Path(path).unlink(missing_ok=True)
    for parent in {Path(f).parent for _, f in doc["renames"]}:
        fsync_dir(parent)
    if doc.get("manifest") or doc.get("removed"):
        entry = {"files": doc.get("manifest", {}), "removed": doc.get("removed", [])}
        write_atomic(root / MANIFEST_DIR / f"{doc['name']}.json", json.dumps(entry).encode())


def recover_one(root: Path, journal: Path) -> bool:
    try:
        doc = json.loads(journal.read_text())
    except FileNotFoundError:
        return False
    except ValueError:
        journal.unlink(missing_ok=True)  # torn journal: its commit never started (journals are written atomically)
        return False
    doc.setdefault("name", journal.stem)
    _apply(root, doc)
    journal.unlink(missing_ok=True)
    return True


def recover(root: Path) -> int:
    """Roll forward journals left by a writer that died mid-commit; returns how many were applied."""
    jdir = root / JOURNAL_DIR
    if not jdir.is_dir():
        return 0
    return sum(recover_one(root, journal) for journal in sorted(jdir.glob("*.json")))


def discard(staged: list[Staged]) -> None:
    """Delete the temp files of staged files no durable journal names (journaled ones are never deleted)."""
    for s in staged:
        if not s.journaled:
            s.tmp.unlink(missing_ok=True)


@contextmanager
def writer_lock(data_dir: Path, wait_s: float = 0.0):
    """Hold the single-writer lock of ``data_dir``.

    While another writer holds it, retry with backoff for up to ``wait_s`` seconds (scheduled flows
    collide by design: the hourly snapshot and the 10-minute trades run both fire at :00), then raise
    a one-line WarehouseError. ``wait_s=0`` fails at once (the CLI's default). Once held, commits a
    dead writer left half done are rolled forward and its orphaned temp files removed.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WarehouseError(f"cannot write to data dir {data_dir}: {exc.strerror or exc}") from None
    try:
        _acquire(fd, path, wait_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)  # hosts share it on NFS
        recover(data_dir)
        sweep_if_needed(data_dir)
        compact(data_dir)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _acquire(fd: int, path: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
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


def check_writable(data_dir: Path) -> None:
    """Fail early with one line if ``data_dir`` cannot be created or written."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".probe.{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WarehouseError(f"cannot write to data dir {data_dir}: {exc.strerror or exc}") from None
