"""Files inside a partition: which are current, how new ones are named, atomic writes.

A partition directory holds immutable files named ``g<generation>-<kind>.parquet``:

- ``g000007-a``: appends rows; its Parquet key-value metadata may carry ``msgtrace.deletes``,
  the MessageTraceIds whose rows in files of *lower* generations are superseded (a message whose
  state changed is re-written whole in this file, and its old rows are dropped in the same
  atomic step: one rename);
- ``g000009-r000005``: replaces the files of generations 5 to 8 (read, no longer written);
- ``g000012-c``: holds every current row as of its generation, deletes applied: replaces
  everything below it (compaction).

Every messages file also records its rows per status (``msgtrace.status_counts``, JSON), so a
count by status over whole days sums file footers (query.summary); a file without the key
is counted by reading its rows.

A reader keeps every file that no newer file replaces. A rewrite writes its new file first
and deletes the replaced ones after, so a query that lists the directory at any instant sees
every row exactly once, and a crash between the two steps leaves only garbage that the next
write removes. Generations only grow; one writer per store (see ingest.store.StoreLock).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from msgtrace.ingest.schema import MESSAGE_SCHEMA, PARTITION_KEY

DELETES_KEY = "msgtrace.deletes"
ROW_GROUP_SIZE = 256_000  # rows: a day's sender lookup reads a few groups, statistics prune the rest
# Messages files only: {status: rows} of the rows in the file itself (deletes not applied), so a
# count by status over whole days reads file footers instead of rows (query.summary).
STATUS_COUNTS_KEY = "msgtrace.status_counts"
_FILE = re.compile(r"^g(\d{6,})-(a|c|r(\d{6,}))\.parquet$")


def partition_dir(table_dir: Path, day: dt.date) -> Path:
    """The directory of one day's partition."""
    return table_dir / f"{PARTITION_KEY}={day.isoformat()}"


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from first to last, both included."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


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


def _generations(part: Path) -> list[tuple[int, int, Path]]:
    """(generation, lowest generation it replaces, path), oldest first; `-a` files replace nothing."""
    out = []
    try:
        names = os.listdir(part)
    except FileNotFoundError:
        return []
    for name in names:
        m = _FILE.match(name)
        if m:
            gen = int(m.group(1))
            kind = m.group(2)
            low = gen if kind == "a" else (0 if kind == "c" else int(m.group(3)))
            out.append((gen, low, part / name))
    out.sort()
    return out


def current_files(part: Path) -> list[Path]:
    """The files a reader must scan: those no newer file replaces, oldest first."""
    gens = _generations(part)
    current: list[Path] = []
    covered_from = None  # generations >= this (and below the replacing file) are replaced
    for gen, low, path in reversed(gens):
        if covered_from is not None and gen >= covered_from:
            continue
        current.append(path)
        if low < gen:
            covered_from = low if covered_from is None else min(covered_from, low)
    return current[::-1]


def superseded_files(part: Path) -> list[Path]:
    """Files that a newer file made obsolete (safe to delete)."""
    current = set(current_files(part))
    return [p for _, _, p in _generations(part) if p not in current]


def next_file(part: Path, complete: bool) -> Path:
    """The name for the next file written into this partition: an append or a complete file."""
    gens = _generations(part)
    gen = gens[-1][0] + 1 if gens else 1
    return part / f"g{gen:06d}-{'c' if complete else 'a'}.parquet"


def generation(path: Path) -> int:
    """The generation number in a partition file's name."""
    m = _FILE.match(path.name)
    if not m:
        raise ValueError(f"not a partition file: {path}")
    return int(m.group(1))


def files_for_days(table_dir: Path, days: Iterable[dt.date]) -> list[Path]:
    """Current files of the given days' partitions (missing days are skipped)."""
    files: list[Path] = []
    for day in days:
        files.extend(current_files(partition_dir(table_dir, day)))
    return files


def deletes_of(path: Path, metadata: dict[str, str] | None = None) -> list[str]:
    """The MessageTraceIds an append file supersedes in older files (none for other files).

    `metadata`: the file's key-value metadata when the caller has already read it.
    """
    if not path.name.endswith("-a.parquet"):
        return []
    text = (metadata if metadata is not None else pl.read_parquet_metadata(path)).get(DELETES_KEY, "")
    return text.split() if text else []


def status_counts_metadata(counts: pl.DataFrame) -> dict[str, str]:
    """The key-value metadata that records a messages file's row count per status.

    `counts` has one row per status: the columns `status` and `len`, as `rows.group_by("status").len()`
    gives. write_parquet_atomic adds it by itself; a file written piece by piece needs the counts
    before its first piece, since they go in the schema's metadata (see ingest.store's messages
    compaction).

    Returns {} (no key: readers count the file's rows instead) when a status is null, because
    a JSON object cannot have a null key.
    """
    pairs = dict(zip(counts.get_column("status").to_list(), counts.get_column("len").to_list(), strict=True))
    if None in pairs:
        return {}
    return {STATUS_COUNTS_KEY: json.dumps({k: int(v) for k, v in pairs.items()}, separators=(",", ":"), sort_keys=True)}


def status_counts_of(metadata: dict[str, str]) -> dict[str, int] | None:
    """The per-status row counts recorded in a file's metadata; None when absent or malformed."""
    text = metadata.get(STATUS_COUNTS_KEY)
    if text is None:
        return None
    try:
        counts = json.loads(text)
    except ValueError:
        return None
    if not isinstance(counts, dict) or not all(type(n) is int and n >= 0 for n in counts.values()):
        return None
    return counts


def supersedes_rows(files: list[Path]) -> bool:
    """Whether some of a partition's current files (oldest first) drop rows of older ones: readers
    then filter, and footer row counts overstate what a query sees. The oldest file's deletes hit
    nothing current."""
    return any(deletes_of(f) for f in files[1:])


def scan_days(table_dir: Path, days: Iterable[dt.date], schema: dict[str, pl.DataType]) -> pl.LazyFrame | None:
    """Every current row of the given days' partitions, superseded rows dropped; None if no file."""
    files = files_for_days(table_dir, days)
    return scan_files(files, schema) if files else None


def superseded_ids(files: list[Path]) -> dict[Path, set[str]]:
    """For each current file, the MessageTraceIds whose rows in it newer files of its partition
    supersede (empty for most files; always empty for a partition's newest file)."""
    out: dict[Path, set[str]] = {}
    by_part: dict[Path, list[Path]] = {}
    for f in files:
        by_part.setdefault(f.parent, []).append(f)
    for part_files in by_part.values():
        newer: set[str] = set()
        for f in sorted(part_files, key=generation, reverse=True):
            out[f] = set(newer)
            newer.update(deletes_of(f))
    return out


def scan_files(files: list[Path], schema: dict[str, pl.DataType], **scan_options: object) -> pl.LazyFrame:
    """A lazy scan of current partition files with superseded rows dropped.

    A file's rows are dropped when a newer file of its partition lists their MessageTraceId in
    its deletes, so readers see each message once, whether or not the partition is compacted.
    Files without such deletes (the usual case after compaction) are scanned together.
    """
    options = {"schema": schema, "hive_partitioning": False, **scan_options}
    plain: list[Path] = []
    filtered: list[pl.LazyFrame] = []
    for f, gone in superseded_ids(files).items():
        if gone:
            lf = pl.scan_parquet(f, **options)  # type: ignore[arg-type]
            filtered.append(lf.filter(~pl.col("message_trace_id").is_in(sorted(gone))))
        else:
            plain.append(f)
    parts = [pl.scan_parquet([str(f) for f in plain], **options)] if plain else []  # type: ignore[arg-type]
    parts += filtered
    if not parts:
        return pl.LazyFrame(schema=schema)
    return parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")


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


@contextmanager
def atomic_path(path: Path, suffix: str) -> Iterator[str]:
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


TEMP_PREFIX = ".tmp-"


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


def remove_stale_temps(root: Path, table_dirs: Iterable[Path]) -> int:
    """Delete temp files a killed writer left behind in `root` and the tables' partitions; returns
    how many. Only the lock holder may call this: nobody else writes temp files into a store."""
    dirs = [root, *(p for t in table_dirs if t.is_dir() for p in t.iterdir() if p.is_dir())]
    removed = 0
    for d in dirs:
        for tmp in d.glob(TEMP_PREFIX + "*"):
            try:
                tmp.unlink()
                removed += 1
            except (FileNotFoundError, IsADirectoryError):
                pass
    return removed


def write_parquet_atomic(
    df: pl.DataFrame, path: Path, schema: dict[str, pl.DataType], deletes: list[str] | None = None
) -> None:
    """Write df (already in schema) to path atomically, zstd, with statistics (and deletes, see above).

    Messages files also get their status counts (STATUS_COUNTS_KEY); events have a status column
    too, but nothing counts them, so they are not worth the group_by.
    """
    extra: dict[str, str] = {}
    if schema == MESSAGE_SCHEMA:
        extra.update(status_counts_metadata(df.group_by("status").len()))
    if deletes:
        extra[DELETES_KEY] = " ".join(deletes)
    df = df.select(list(schema))
    with atomic_path(path, ".parquet") as tmp:
        if schema == MESSAGE_SCHEMA:
            # Message rows are what every trace reads: pyarrow's files answer a filtered scan
            # ~25% faster in Polars than Polars' own (measured: 30 days + recipient, 107 vs 172 ms
            # over 8 days), so they are worth its slower write.
            import pyarrow.parquet as pq  # here, not at the top: `msgtrace trace` never writes

            table = df.to_arrow()
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
            pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_SIZE, write_statistics=True)
        else:
            # events and state: Polars' writer, about twice as fast as pyarrow's for these frames
            df.write_parquet(
                tmp, compression="zstd", row_group_size=ROW_GROUP_SIZE, statistics=True, metadata=extra or None
            )


def write_json_atomic(text: str, path: Path) -> None:
    """Write a small text file atomically."""
    with atomic_path(path, ".json") as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
