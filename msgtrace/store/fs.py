"""The file system under a store: the few operations the tables and the state files need.

Everything msgtrace writes is a whole file that appears by one rename (readers see the old file
or the new one, never half of it), and nothing is modified in place; so a store needs only to
list a directory, read a file, write a file atomically, delete and rename. `LocalFileSystem` is
the local disk; another backend (object storage) implements the same protocol.

Only msgtrace.store uses this module (tests/test_store_boundary.py checks).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

# Temp files being written start so; a writer killed meanwhile leaves them (Store.remove_stale_temps).
TEMP_PREFIX = ".tmp-"


class FileSystem(Protocol):
    """What a store needs of the storage below it."""

    def list(self, directory: Path) -> list[str]:
        """Names in a directory; [] when it does not exist."""
        ...

    def is_dir(self, path: Path) -> bool:
        """Whether path is a directory."""
        ...

    def exists(self, path: Path) -> bool:
        """Whether path exists."""
        ...

    def read_text(self, path: Path) -> str | None:
        """A small text file's content, or None when it does not exist."""
        ...

    def atomic_path(self, path: Path, suffix: str) -> AbstractContextManager[str]:
        """A context giving a local temp file to write; on success it becomes `path` in one step."""
        ...

    def write_text(self, path: Path, text: str) -> None:
        """Write a small text file atomically."""
        ...

    def delete(self, path: Path) -> None:
        """Remove a file; nothing happens when it is gone already (or is a directory)."""
        ...

    def rename(self, src: Path, dst: Path) -> None:
        """Move a file in one step (replacing dst)."""
        ...


class LocalFileSystem:
    """The local disk: renames are atomic, and fsync makes files and renames durable."""

    def list(self, directory: Path) -> list[str]:
        try:
            return os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def exists(self, path: Path) -> bool:
        return path.exists()

    def read_text(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    @contextmanager
    def atomic_path(self, path: Path, suffix: str) -> Iterator[str]:
        """A temp file beside `path` to write; on success it is fsynced and renamed over `path`
        (then the directory entry is fsynced), on failure removed. Readers see old or new, never half."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp(path.parent, suffix)
        try:
            yield tmp
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        fsync_dir(path.parent)

    def write_text(self, path: Path, text: str) -> None:
        with self.atomic_path(path, path.suffix) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    def delete(self, path: Path) -> None:
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError):
            pass

    def rename(self, src: Path, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        fsync_dir(src.parent)
        if dst.parent != src.parent:
            fsync_dir(dst.parent)


def _new_temp(directory: Path, suffix: str) -> str:
    """Create an empty temp file with the modes the umask gives (tempfile.mkstemp would make it
    0600 whatever the umask, and the rename keeps that: query users in the store's group could
    not read the store)."""
    while True:
        tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}{suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return str(tmp)


def fsync_dir(path: Path) -> None:
    """Make a rename durable: fsync the directory entry."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
