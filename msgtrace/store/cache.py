"""Decoded columns of store files, kept in memory between the queries of a long-lived reader.

`msgtrace web` answers the same few recent days again and again (a help desk searching today's
mail): reading a day's trace columns from Parquet costs ~20 ms of decompression and decoding per
request, filtering the same columns in memory ~1 ms. A `ColumnCache` keeps the columns a query
read, per file, within a byte budget (least recently used out first).

It cannot serve stale rows: a store's files never change once renamed into place (a rewrite is a
new file under a new name, msgtrace.store.files), and an entry is keyed by the file's identity
(path, inode, size, modification time), so a file replaced under the same name is a new entry.
Which files are current is still decided by listing the partitions on every query, so a file a
watcher adds is read by the very next query.

Only the tables use it (msgtrace.store.table): they know how to read a file's columns.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import PurePath

import polars as pl

FileKey = tuple[str, int, int, int]


def file_key(path: PurePath) -> FileKey:
    """What identifies one version of a file: a new file under an old name gets a new key."""
    st = os.stat(path)
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class _Entry:
    columns: dict[str, pl.Series] = field(default_factory=dict)
    deletes: list[str] | None = None
    size: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


# Entries holding only a footer's deletes weigh nothing; bound their number all the same, since
# compaction keeps retiring files (a watched store's small files) and their keys never come back.
MAX_ENTRIES = 4096
# A query over more partitions than this reads Parquet as usual (and uses what is cached): a
# month-long search would otherwise push out the recent days for columns it reads once.
MAX_PARTITIONS = 3


class ColumnCache:
    """Columns of files by file identity, at most `max_bytes` of them (estimated in-memory size)."""

    def __init__(self, max_bytes: int, max_partitions: int = MAX_PARTITIONS) -> None:
        self.max_bytes = max_bytes
        self.max_partitions = max_partitions
        self._lock = threading.Lock()
        self._entries: OrderedDict[FileKey, _Entry] = OrderedDict()
        self._size = 0

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._size

    def _entry(self, key: FileKey) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            self._entries.move_to_end(key)
            return entry

    def frame(
        self, path: PurePath, columns: Sequence[str], read: Callable[[PurePath, list[str]], pl.DataFrame]
    ) -> pl.DataFrame:
        """These columns of the file, the missing ones read by `read(path, names)` (which must give
        them in the file's row order). Concurrent misses of one file wait for a single read."""
        key = file_key(path)
        entry = self._entry(key)
        with entry.lock:
            missing = [c for c in columns if c not in entry.columns]
            if missing:
                got = read(path, missing)
                added = 0
                for c in missing:
                    entry.columns[c] = got.get_column(c)
                    added += int(entry.columns[c].estimated_size())
                with self._lock:  # with the total, so an eviction meanwhile subtracts what was added
                    entry.size += added
                    if self._entries.get(key) is entry:  # not dropped meanwhile
                        self._size += added
                self._evict(key)
            return pl.DataFrame([entry.columns[c] for c in columns])

    def deletes(self, path: PurePath, read: Callable[[PurePath], list[str]]) -> list[str]:
        """The file's deletes (msgtrace.deletes), its footer read once."""
        entry = self._entry(file_key(path))
        with entry.lock:
            if entry.deletes is None:
                entry.deletes = read(path)
            return entry.deletes

    def _evict(self, keep: FileKey) -> None:
        """Drop the least recently used entries until the budget holds; `keep` (just read) goes
        only when it alone is larger than the budget."""
        with self._lock:
            while (self._size > self.max_bytes or len(self._entries) > MAX_ENTRIES) and self._entries:
                key = next(iter(self._entries))
                if key == keep and len(self._entries) > 1:
                    self._entries.move_to_end(key)
                    continue
                self._size -= self._entries.pop(key).size


# The cache the current context reads one store directory through: set by `reading_through`
# around the work of a long-lived reader (msgtrace web sets it for each request, and threads that
# Starlette runs a handler in inherit it); other code of the same process reads Parquet as usual.
_ACTIVE: ContextVar[tuple[str, ColumnCache] | None] = ContextVar("msgtrace_column_cache", default=None)


@contextmanager
def reading_through(root: PurePath, cache: ColumnCache | None) -> Iterator[None]:
    """Within this block (and tasks and threads started from its context), every Store of this
    directory reads through `cache` (None: no cache)."""
    token = _ACTIVE.set(None if cache is None else (_real(str(root)), cache))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def attached(root: PurePath) -> ColumnCache | None:
    """The cache the current context reads this store directory through, if any."""
    active = _ACTIVE.get()
    if active is None or _real(str(root)) != active[0]:
        return None
    return active[1]


@functools.lru_cache(maxsize=64)
def _real(path: str) -> str:
    """A store directory's real path, resolved once per process (a query opens its Store several
    times, and resolving walks every component of the path)."""
    return os.path.realpath(path)
