"""The file system under a store: the few operations the tables and the state files need.

Everything msgtrace writes is a whole file that appears by one rename (readers see the old file
or the new one, never half of it), and nothing is modified in place; so a store needs only to
list a directory, read a file, write a file atomically, delete and rename, and (for the writers'
leases and the default writer's claim) create a file only if it is absent. `LocalFileSystem` is
the local disk; `msgtrace.store.s3.S3FileSystem` is an S3 bucket (an object appears whole on PUT).
Locations are `PurePath`s: a `Path` here, an `ObjectPath` (msgtrace.storepath) there.

Only msgtrace.store uses this module (tests/test_store_boundary.py checks).
"""

from __future__ import annotations

import builtins
import os
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePath
from typing import Protocol

# Temp files being written start so, then a random part and the name of the file they become
# (`.tmp-<hex>.<name>`): a writer killed meanwhile leaves them, and only their writer removes
# them (Store.remove_stale_temps tells its own by the name).
TEMP_PREFIX = ".tmp-"


def temp_target(name: str) -> str | None:
    """The name of the file a temp file was to become, or None when `name` is no temp file."""
    if not name.startswith(TEMP_PREFIX):
        return None
    rest = name[len(TEMP_PREFIX) :]
    return rest[17:] if len(rest) > 17 and rest[16] == "." else ""  # "": an older version's temp


class FileSystem(Protocol):
    """What a store needs of the storage below it."""

    is_local: bool  # local disk (a Path), or object storage (an ObjectPath)

    def list(self, directory: PurePath) -> list[str]:
        """Names of the files directly in a directory; [] when it does not exist."""
        ...

    def list_dirs(self, directory: PurePath) -> builtins.list[str]:
        """Names of the directories directly in a directory (on object storage: key prefixes)."""
        ...

    def is_dir(self, path: PurePath) -> bool:
        """Whether path is a directory (on object storage: whether any key lies below it)."""
        ...

    def exists(self, path: PurePath) -> bool:
        """Whether path exists."""
        ...

    def size(self, path: PurePath) -> int:
        """A file's size in bytes (FileNotFoundError when it is gone)."""
        ...

    def read_text(self, path: PurePath) -> str | None:
        """A small text file's content, or None when it does not exist."""
        ...

    def atomic_path(self, path: PurePath, suffix: str) -> AbstractContextManager[str]:
        """A context giving a local temp file to write; on success it becomes `path` in one step."""
        ...

    def write_text(self, path: PurePath, text: str) -> None:
        """Write a small text file atomically."""
        ...

    def create_text(self, path: PurePath, text: str) -> bool:
        """Write a small text file only if none exists there, in one step; False when one did."""
        ...

    def delete(self, path: PurePath) -> None:
        """Remove a file; nothing happens when it is gone already (or is a directory)."""
        ...

    def rename(self, src: PurePath, dst: PurePath) -> None:
        """Move a file (replacing dst): one step on disk; a copy then a delete on object storage."""
        ...

    def uri(self, path: PurePath) -> str:
        """What Polars and pyarrow are given to read the file."""
        ...

    def storage_options(self) -> dict[str, str] | None:
        """Polars' storage_options for reading these files (None on local disk)."""
        ...


class LocalFileSystem:
    """The local disk: renames are atomic, and fsync makes files and renames durable."""

    is_local = True

    def list(self, directory: PurePath) -> list[str]:
        try:
            with os.scandir(directory) as entries:
                return [e.name for e in entries if not e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list_dirs(self, directory: PurePath) -> builtins.list[str]:
        try:
            with os.scandir(directory) as entries:
                return [e.name for e in entries if e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def is_dir(self, path: PurePath) -> bool:
        path = _local(path)
        return path.is_dir()

    def exists(self, path: PurePath) -> bool:
        path = _local(path)
        return path.exists()

    def size(self, path: PurePath) -> int:
        path = _local(path)
        return path.stat().st_size

    def uri(self, path: PurePath) -> str:
        return str(path)

    def storage_options(self) -> dict[str, str] | None:
        return None

    def read_text(self, path: PurePath) -> str | None:
        path = _local(path)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    @contextmanager
    def atomic_path(self, path: PurePath, suffix: str) -> Iterator[str]:
        """A temp file beside `path` to write; on success it is fsynced and renamed over `path`
        (then the directory entry is fsynced), on failure removed. Readers see old or new, never half."""
        path = _local(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp(path.parent, path.name)
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

    def write_text(self, path: PurePath, text: str) -> None:
        with self.atomic_path(path, path.suffix) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    def create_text(self, path: PurePath, text: str) -> bool:
        """The whole file is written aside, then hard-linked into place: link() fails when the
        name exists, so of two writers exactly one creates it, and nobody sees it half written."""
        path = _local(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp(path.parent, path.name)
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        fsync_dir(path.parent)
        return True

    def delete(self, path: PurePath) -> None:
        path = _local(path)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError):
            pass

    def rename(self, src: PurePath, dst: PurePath) -> None:
        src, dst = _local(src), _local(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        fsync_dir(src.parent)
        if dst.parent != src.parent:
            fsync_dir(dst.parent)


def _local(path: PurePath) -> Path:
    """A location on the local disk (an object-store location here is a bug, not a file to make)."""
    if not isinstance(path, Path):
        raise TypeError(f"{path} is not on the local disk")
    return path


def _new_temp(directory: Path, target: str) -> str:
    """Create an empty temp file with the modes the umask gives (tempfile.mkstemp would make it
    0600 whatever the umask, and the rename keeps that: query users in the store's group could
    not read the store). Its name ends with the name of the file it becomes (temp_target)."""
    while True:
        tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}.{target}"
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
