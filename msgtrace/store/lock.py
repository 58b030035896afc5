"""One writer per store: an exclusive lock on <store>/.lock, held for the life of an ingest or watch.

Queries take no lock: they read only files that appear by one atomic rename (msgtrace.store.files).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from msgtrace.store.table import LOCK_FILE, StoreError


class StoreLock:
    """An exclusive lock on a store, held for the life of an ingest or watch."""

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> StoreLock:
        try:
            return self._acquire()
        except OSError as e:  # no such folder and none can be made, no permission, read-only file system
            raise StoreError(
                f"--store {self.path.parent}: cannot open its lock file {self.path.name} ({e.strerror or e}); "
                "run as a user who may write the store, or fix its permissions"
            ) from None

    def _acquire(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"store {self.path.parent} is in use by msgtrace process {holder}; "
                "stop it first (only one ingest or watch may write a store)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_holder(root: Path) -> int | None:
    """The pid of the process holding the store lock, or None when no process does."""
    path = root / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
