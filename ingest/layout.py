"""Files inside a partition: which are current, how new ones are named, atomic writes.

A partition directory holds files named ``g<generation>-<a|c>.parquet``:

- ``-a`` (append) files add rows;
- a ``-c`` (complete) file holds every current row of the partition as of its generation:
  it supersedes every file with a lower generation.

A reader takes the newest ``-c`` file and every file with a higher generation. A rewrite
(compaction, or replacing the rows of messages whose state changed) writes a new ``-c`` file
and only then deletes what it superseded, so a query that lists the directory at any instant
sees every row exactly once, and a crash between the two steps leaves only garbage that the
next rewrite removes. Generations only grow; one writer per store (see ingest.lock).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from ingest.schema import PARTITION_KEY

_FILE = re.compile(r"^g(\d{6,})-([ac])\.parquet$")


def partition_dir(table_dir: Path, day: dt.date) -> Path:
    """The directory of one day's partition."""
    return table_dir / f"{PARTITION_KEY}={day.isoformat()}"


def partition_days(table_dir: Path) -> list[dt.date]:
    """Every day that has a partition directory, sorted."""
    if not table_dir.is_dir():
        return []
    days = []
    for p in table_dir.iterdir():
        name = p.name
        if p.is_dir() and name.startswith(PARTITION_KEY + "="):
            try:
                days.append(dt.date.fromisoformat(name.split("=", 1)[1]))
            except ValueError:
                continue
    return sorted(days)


def _generations(part: Path) -> list[tuple[int, str, Path]]:
    out = []
    try:
        names = os.listdir(part)
    except FileNotFoundError:
        return []
    for name in names:
        m = _FILE.match(name)
        if m:
            out.append((int(m.group(1)), m.group(2), part / name))
    out.sort()
    return out


def current_files(part: Path) -> list[Path]:
    """The files a reader must scan: the newest complete file and everything after it."""
    gens = _generations(part)
    start = 0
    for i, (_, kind, _) in enumerate(gens):
        if kind == "c":
            start = i
    return [p for _, _, p in gens[start:]]


def superseded_files(part: Path) -> list[Path]:
    """Files that a newer complete file made obsolete (safe to delete)."""
    gens = _generations(part)
    current = set(current_files(part))
    return [p for _, _, p in gens if p not in current]


def next_file(part: Path, complete: bool) -> Path:
    """The name for the next file written into this partition."""
    gens = _generations(part)
    gen = gens[-1][0] + 1 if gens else 1
    return part / f"g{gen:06d}-{'c' if complete else 'a'}.parquet"


def files_for_days(table_dir: Path, days: Iterable[dt.date]) -> list[Path]:
    """Current files of the given days' partitions (missing days are skipped)."""
    files: list[Path] = []
    for day in days:
        files.extend(current_files(partition_dir(table_dir, day)))
    return files


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


def write_parquet_atomic(df: pl.DataFrame, path: Path, schema: dict[str, pl.DataType]) -> None:
    """Write df (already in schema) to path via temp file + fsync + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
    os.close(fd)
    try:
        table = df.select(list(schema)).to_arrow()
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            row_group_size=256_000,
            write_statistics=True,
        )
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


def write_json_atomic(text: str, path: Path) -> None:
    """Write a small text file via temp file + fsync + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
