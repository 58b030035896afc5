"""A store and its two tables: every read and write of the store's files goes through here.

A `Table` owns one table's files (msgtrace.store.files: day partitions, generations, deletes and
counts in the footers) on a `FileSystem` (msgtrace.store.fs): its days and current files, a scan
with superseded rows dropped, appends, compaction and footer counts. What differs between the
two tables is decided by which table it is, never by comparing schemas:

- `MessagesTable`: one row per (message, recipient). Rows are replaced when a message's state
  changes: each flush appends the new rows in one file whose footer lists the MessageTraceIds it
  supersedes, so a deferral delivered in a later run ends up Delivered in the message's own
  `date=` partition, with no duplicate row and nothing rewritten. Each file's rows per status
  are in its footer.
- `EventsTable`: one row per relevant log line, append-only.

Both are written by pyarrow with the table's per-column options (files.MESSAGE_OPTIONS,
EVENT_OPTIONS), appends and compactions alike; a compaction streams one row group at a time.

`Store` holds both tables and the small state files (`_state/`: checkpoints, the open messages'
events, the watcher's state). A store opened for a named writer (`Store(root, writer="mx2")`)
writes, compacts and scans only that writer's files and keeps its state in
`_state/writers/<name>/`; a reader's store (no writer) scans every writer's files.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePath
from typing import TypeVar

import polars as pl

from msgtrace.errors import MsgtraceError
from msgtrace.ingest.schema import EVENT_SCHEMA, EVENTS_DIR, MESSAGE_SCHEMA, MESSAGES_DIR, conform
from msgtrace.memory import release_unused
from msgtrace.store import files
from msgtrace.store.cache import ColumnCache, attached
from msgtrace.store.fs import FileSystem, LocalFileSystem, temp_target
from msgtrace.storepath import ObjectPath

STATE_DIR = "_state"
WRITERS_DIR = "writers"  # _state/writers/<name>/: each named writer's own state
# _state/default_writer: the name of the writer that owns the untagged files and the state in
# _state/ itself (a store written before writers had names): the first named writer to open
# such a store claims it, and carries on its checkpoints and open messages.
DEFAULT_WRITER_FILE = "default_writer"
SHARED_STATE = {"config.json", DEFAULT_WRITER_FILE}  # in _state/, written by every writer
LOCK_FILE = ".lock"  # msgtrace.store.lock: the default writer's lock, where older versions had it
DAMAGED_DIR = "_damaged"  # damaged files moved aside: <store>/_damaged/<table>/date=.../
REPORT_DIR = "_report_counts"  # msgtrace report's counts of whole days (ReportPartials)
# A day's counts are written in seconds: a temp file in REPORT_DIR this old has no writer any more.
STALE_REPORT_TEMP_SECONDS = 3600
# A partition file with fewer rows than this is small: many of them are worth merging (the
# watcher writes a few hundred rows a flush; a batch run up to a flush's 200,000 events).
SMALL_FILE_ROWS = 50_000
# A compaction reads its files this many rows at a time: a quarter of a row group held beside the
# group being gathered instead of a whole file's (the 4 events files of a day of 2 M Postfix lines:
# 320 MB peak instead of 470 for the same CPU).
COMPACTION_READ_ROWS = files.ROW_GROUP_SIZE // 4

Schema = dict[str, pl.DataType]
T = TypeVar("T")
REMOTE_DAYS_AT_ONCE = 8  # partitions listed (and footers read) at once on object storage


class StoreError(MsgtraceError):
    """The store cannot be used (locked, unwritable, corrupt)."""


class Table:
    """One table of a store: hive-partitioned by the UTC day of its time column."""

    name: str
    schema: Schema
    time_column: str
    keeps_deletes: bool  # whether its files may supersede rows of older ones (msgtrace.deletes)

    def __init__(
        self, root: PurePath, fs: FileSystem, tag: str | None = None, cache: ColumnCache | None = None
    ) -> None:
        self.fs = fs
        self.dir = root / self.name
        # the writer whose files this table reads and writes (its tag in file names; "": the
        # default writer's untagged files); None: a reader, which sees every writer's files and,
        # if it writes (tests, the library), writes as the default writer
        self.tag = tag
        self.write_tag = tag or ""
        self.guard: Callable[[], None] | None = None  # raises when this writer may not write (Store.guard)
        self.cache = cache  # decoded columns of local files (msgtrace web), msgtrace.store.cache

    # ---- what is there -------------------------------------------------------------------
    def days(self) -> list[dt.date]:
        """Every day that has a partition, sorted."""
        return files.partition_days(self.fs, self.dir)

    def partition(self, day: dt.date) -> PurePath:
        """The directory of one day's partition."""
        return files.partition_dir(self.dir, day)

    def current_files(self, day: dt.date) -> list[PurePath]:
        """The files a reader of this day must scan, oldest first (no newer file replaces them)."""
        return files.current_files(self.fs, self.partition(day), self.tag)

    def owns(self, path: PurePath) -> bool:
        """Whether a partition file is this table's writer's to move, rebuild or compact (a
        reader's table: every file)."""
        return self.tag is None or files.owner(path) == self.write_tag

    def files(self, days: list[dt.date] | None = None) -> list[PurePath]:
        """Current files of these days' partitions (every day when None); missing days are skipped."""
        return [f for found in self.per_day(self.days() if days is None else days, self.current_files) for f in found]

    def per_day(self, days: list[dt.date], step: Callable[[dt.date], T]) -> list[T]:
        """step(day) for each day, in order. On object storage each is a round trip or two (a LIST,
        a footer), so several days go at once: a 30-day count by status waits for ~4 round trips
        instead of 30. On disk, one after the other (no wait to hide)."""
        if self.fs.is_local or len(days) < 2:
            return [step(d) for d in days]
        with ThreadPoolExecutor(max_workers=min(REMOTE_DAYS_AT_ONCE, len(days))) as pool:
            return list(pool.map(step, days))

    # ---- reading -------------------------------------------------------------------------
    def scan(self, days: list[dt.date] | None = None) -> pl.LazyFrame | None:
        """Current rows of these days (every day when None), superseded rows dropped; None if no file."""
        found = self.files(days)
        return self.scan_files(found) if found else None

    def live_files(self, days: list[dt.date] | None = None) -> list[tuple[PurePath, frozenset[str]]]:
        """Current files of these days (every day when None), each with the MessageTraceIds whose rows
        in it a newer file of its partition supersedes (empty for most files): what a reader other
        than Polars (Spark, msgtrace.spark) applies to see each message once."""
        found = self.files(days)
        if not self.keeps_deletes:
            return [(f, frozenset()) for f in found]
        return [(f, frozenset(gone)) for f, gone in files.superseded_ids(self.fs, found).items()]

    def sql_view(self, name: str) -> str:
        """A DuckDB `CREATE OR REPLACE VIEW name` over this table's current rows, superseded rows
        dropped, which lists the partitions each time it is read (msgtrace.duckdb)."""
        return files.duckdb_view(name, self.dir, self.schema, self.keeps_deletes)

    def scan_files(self, paths: list[PurePath], **scan_options: object) -> pl.LazyFrame:
        """A lazy scan of current files listed before (`files`), in the table's schema, superseded
        rows dropped. `scan_options` go to pl.scan_parquet (e.g. glob=False)."""
        return files.scan_files(self.fs, paths, self.schema, self.keeps_deletes, **scan_options)

    def scan_columns(self, paths: list[PurePath], columns: list[str]) -> pl.LazyFrame:
        """scan_files of current files listed before, these columns only: from the store's column
        cache (msgtrace.store.cache) when it has one and the files span few partitions, else
        a Parquet scan. The same rows either way (in-memory order may differ: sort them)."""
        cache = self.cache
        if cache is None or not self.in_memory(paths):
            lf = self.scan_files(paths, glob=False, missing_columns="insert", extra_columns="ignore")
            return lf.select(columns)
        key = [*columns, *(["message_trace_id"] if self.keeps_deletes and "message_trace_id" not in columns else [])]
        gone_by_file = (
            files.superseded_ids(self.fs, paths, lambda f: cache.deletes(f, lambda g: files.deletes_of(self.fs, g)))
            if self.keeps_deletes
            else {f: set() for f in paths}
        )
        plain: list[pl.LazyFrame] = []
        filtered: list[pl.LazyFrame] = []
        for f, gone in gone_by_file.items():
            lf = cache.frame(f, key, self._read_columns).lazy()
            if gone:
                filtered.append(lf.filter(~pl.col("message_trace_id").is_in(sorted(gone))).select(columns))
            else:
                plain.append(lf.select(columns))
        parts = plain + filtered
        if not parts:
            return pl.LazyFrame(schema={c: self.schema[c] for c in columns})
        return parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")

    def in_memory(self, paths: list[PurePath]) -> bool:
        """Whether scan_columns of these files reads the column cache (not Parquet)."""
        return self.cache is not None and len({p.parent for p in paths}) <= self.cache.max_partitions

    def _read_columns(self, path: PurePath, columns: list[str]) -> pl.DataFrame:
        """These columns of one file, every row (as scan_files reads them: the table's schema, a
        column the file lacks as nulls)."""
        lf = pl.scan_parquet(
            str(path), schema=self.schema, hive_partitioning=False, missing_columns="insert", extra_columns="ignore"
        )
        return lf.select(columns).collect()

    def footer_rows(self, paths: list[PurePath]) -> int:
        """Rows of these files by their footers alone (deletes not applied); a file replaced by a
        compaction meanwhile (gone, or its footer unreadable) counts nothing."""
        rows = 0
        for f in paths:
            try:
                rows += files.footer_rows(self.fs, f)
            except (OSError, ValueError):
                continue
        return rows

    def rows(self, paths: list[PurePath]) -> int:
        """Rows a query sees in one partition's current files: the footers, unless a newer file
        supersedes rows of an older one (an uncompacted partition); then they are counted with
        deletes applied."""
        try:
            if not files.supersedes_rows(self.fs, paths):
                return self.footer_rows(paths)
            return int(self.scan_files(paths).select(pl.len()).collect().item())
        except (OSError, ValueError, pl.exceptions.PolarsError):
            return self.footer_rows(paths)  # a file replaced by a compaction meanwhile

    def has_deletes(self, day: dt.date) -> bool:
        """Whether a partition holds rows superseded by a newer file's deletes."""
        return self.keeps_deletes and files.supersedes_rows(self.fs, self.current_files(day))

    def has_small_files(self, day: dt.date, min_files: int) -> bool:
        """Whether a partition holds at least min_files current files averaging fewer than
        SMALL_FILE_ROWS rows each: what compaction is for. A batch run writes events files of up to
        a flush's events; merging a day of those would rewrite millions of rows to save a few
        footer reads (a one-day 2M-line Exchange log: 19 files, 5 s)."""
        found = self.current_files(day)
        if len(found) < min_files:
            return False
        lf = pl.scan_parquet([self.fs.uri(f) for f in found], storage_options=self.fs.storage_options())
        rows = lf.select(pl.len()).collect().item()  # footers only
        return rows < SMALL_FILE_ROWS * len(found)

    # ---- damage ---------------------------------------------------------------------------
    def damaged(self) -> list[tuple[dt.date, PurePath, str]]:
        """(day, file, why) of every current file whose footer cannot be read (cheap: a few KB a
        file); such a file breaks every read of its day."""
        out = []
        for day in self.days():
            for f in self.current_files(day):
                problem = files.footer_problem(self.fs, f)
                if problem is not None:
                    out.append((day, f, problem))
        return out

    def read_problem(self, path: PurePath) -> str | None:
        """Why one of the table's files cannot be read whole (footer or pages), or None: the
        thorough check, for a partition whose read failed although every footer is sound."""
        return files.read_problem(self.fs, path, self.schema)

    def move_aside(self, path: PurePath) -> PurePath:
        """Move a damaged file of this table into <store>/_damaged/<table>/date=.../ (never over an
        earlier one); returns where it went. The caller holds the store lock."""
        part = path.parent
        target = self.dir.parent / DAMAGED_DIR / self.name / part.name / path.name
        n = 0
        while self.fs.exists(target):
            n += 1
            target = target.with_name(f"{path.name}.{n}")
        self.fs.rename(path, target)
        return target

    # ---- writing (the caller holds the store lock) ---------------------------------------
    def append(self, frame: pl.DataFrame, deletes: dict[dt.date, list[str]] | None = None) -> int:
        """Add rows, one new file per UTC day of the time column; returns files written.

        `deletes`: per day, the MessageTraceIds whose rows in that day's older files the new file
        supersedes (a day with deletes and no rows gets a file with no rows).
        """
        if deletes and not self.keeps_deletes:
            raise ValueError(f"the {self.name} table keeps no deletes")
        release_unused()  # what the previous flush freed, before this one's files are encoded
        return self._append_days(self._by_day(conform(frame, self.schema)), deletes or {})

    def _by_day(self, frame: pl.DataFrame) -> dict[dt.date, pl.DataFrame]:
        """New rows split by the UTC day of the time column (their partition), each day's in the
        order they are written: slices of the frame ordered once, not a copy a day and another to
        order it (a flush across midnight held both beside the flush's own)."""
        if frame.get_column(self.time_column).has_nulls():
            return {day: self._ordered(part) for day, part in _split_days(frame, self.time_column).items()}
        return _slice_days(self._ordered(frame), self.time_column)

    def _append_days(self, by_day: dict[dt.date, pl.DataFrame], deletes: dict[dt.date, list[str]]) -> int:
        """Write each day's ordered rows (and each day with deletes only) as one new file."""
        written = 0
        for day in sorted(set(by_day) | {d for d, ids in deletes.items() if ids}):
            rows = by_day.get(day)
            self.write(day, rows if rows is not None else pl.DataFrame(schema=self.schema), deletes.get(day))
            written += 1
        return written

    def write(
        self, day: dt.date, frame: pl.DataFrame, deletes: list[str] | None = None, complete: bool = False
    ) -> PurePath:
        """Write one new file into a day's partition: an append (with the MessageTraceIds it
        supersedes in older files) or, `complete`, a file replacing every older one. Returns it.

        `frame` holds the table's columns (conform() it first) and only rows of this day."""
        if self.guard is not None:
            self.guard()
        path = files.next_file(self.fs, self.partition(day), complete, self.write_tag)
        metadata = {files.DELETES_KEY: " ".join(deletes)} if deletes else {}
        self._write_file(frame.select(list(self.schema)), path, metadata)
        release_unused()  # the writer's buffers and the rows' copies
        return path

    def compact(self, day: dt.date, min_files: int = 2) -> bool:
        """Merge this writer's current files of a partition into one complete file of its own; True
        if it did. Readers meanwhile see the old files or the new one: it appears whole (one rename,
        or one PUT) before the old ones are deleted, and its name says which it replaces."""
        if self.guard is not None:
            self.guard()
        part = self.partition(day)
        current = files.current_files(self.fs, part, self.write_tag)
        if len(current) < min_files:
            self._drop_superseded(part)
            return False
        release_unused(everything=True)  # a compaction is a run's peak: room for it first
        self._compact_into(current, files.next_file(self.fs, part, True, self.write_tag))
        release_unused(everything=True)  # the reader's and writer's buffers, before the next partition's
        self._drop_superseded(part)
        return True

    def _drop_superseded(self, part: PurePath) -> None:
        for p in files.superseded_files(self.fs, part, self.write_tag):
            self.fs.delete(p)

    def _write_file(self, df: pl.DataFrame, path: PurePath, metadata: dict[str, str]) -> None:
        files.write_with_pyarrow(self.fs, df, path, {**self._footer([self._summary(df)]), **metadata}, self.options)

    def _compact_into(self, current: list[PurePath], target: PurePath) -> None:
        """Merge a partition's current files into `target`, superseded rows dropped, one row group at
        a time: a busy day holds millions of rows, and memory must not grow with it.

        Written like the table's appends (its `options`), each row group in `_ordered` order; the
        footer's metadata, made from the row groups as they are written, goes in last.
        """
        summaries: list[pl.DataFrame | None] = []
        with self.fs.atomic_path(target, ".parquet") as tmp:
            writer = files.ParquetFileWriter(tmp, self.schema, self.options)
            try:
                for rows in self._row_groups(current):
                    rows = self._ordered(rows)
                    summaries.append(self._summary(rows))
                    writer.write(rows)
                    del rows  # not held while the next group is read
            finally:
                writer.close(self._footer(summaries))

    def _row_groups(self, current: list[PurePath]) -> Iterator[pl.DataFrame]:
        """The current rows of these files (superseded ones dropped) in frames of about
        ROW_GROUP_SIZE rows, in file order."""
        gone_by_file = (
            files.superseded_ids(self.fs, current) if self.keeps_deletes else {f: set[str]() for f in current}
        )
        group: list[pl.DataFrame] = []
        size = 0
        for f, gone in gone_by_file.items():
            # read by Polars a slice at a time (it reads only the row groups it needs): pyarrow's
            # reader would keep its own pool of decoded pages beside Polars'
            whole = pl.scan_parquet(
                self.fs.uri(f), schema=self.schema, hive_partitioning=False, storage_options=self.fs.storage_options()
            )
            total = whole.select(pl.len()).collect().item()
            for offset in range(0, total, COMPACTION_READ_ROWS):
                rows = whole.slice(offset, COMPACTION_READ_ROWS).collect()
                if gone:
                    rows = rows.filter(~pl.col("message_trace_id").is_in(sorted(gone)))
                group.append(rows)
                size += rows.height
                if size >= files.ROW_GROUP_SIZE:
                    yield _concat_clearing(group)  # the pieces let go: only the group written is held
                    size = 0
        if group:
            yield _concat_clearing(group)

    # ---- what differs between the tables -------------------------------------------------
    options: dict[str, object]  # pyarrow's writer options for the table's files

    def _ordered(self, rows: pl.DataFrame) -> pl.DataFrame:
        """One day's new rows (or a compaction's row group) in the order they are written."""
        raise NotImplementedError

    def _summary(self, rows: pl.DataFrame) -> pl.DataFrame | None:
        """What the footer records of some rows of a file (None: nothing)."""
        return None

    def _footer(self, summaries: list[pl.DataFrame | None]) -> dict[str, str]:
        """The key-value metadata a file records of its rows, from their pieces' _summary."""
        return {}


class MessagesTable(Table):
    """Message rows: replaced through deletes, counted by status in every file's footer."""

    name = MESSAGES_DIR
    schema = MESSAGE_SCHEMA
    time_column = "received"
    keeps_deletes = True

    def _ordered(self, rows: pl.DataFrame) -> pl.DataFrame:
        return rows.sort("received")

    options = files.MESSAGE_OPTIONS

    def _summary(self, rows: pl.DataFrame) -> pl.DataFrame | None:
        return rows.group_by("status").len()

    def _footer(self, summaries: list[pl.DataFrame | None]) -> dict[str, str]:
        # every messages file records its rows per status (files.STATUS_COUNTS_KEY)
        counts = [c for c in summaries if c is not None]
        if not counts:
            return files.status_counts_metadata(pl.DataFrame(schema={"status": pl.String, "len": pl.UInt32}))
        return files.status_counts_metadata(pl.concat(counts).group_by("status").agg(pl.col("len").sum()))

    def replace(self, rows: pl.DataFrame, stale: pl.Expr | pl.DataFrame, days: set[dt.date]) -> int:
        """Write message rows, superseding existing rows in the given days.

        `stale` says which stored rows the new ones supersede: an expression over the stored rows
        (they are scanned for it), or, when the caller knows them, a frame of their
        message_trace_id and received (nothing is scanned).

        Nothing is rewritten: each day gets one append file with the new rows, whose metadata lists
        the MessageTraceIds of the stale rows it supersedes, so a deferral delivered days later
        costs a small file, not a rewrite of its partition. Returns files written.
        """
        new_by_day = self._by_day(conform(rows, MESSAGE_SCHEMA))
        known = _split_days(stale, "received") if isinstance(stale, pl.DataFrame) else None
        deletes: dict[dt.date, list[str]] = {}
        for day in sorted(days | set(new_by_day)):
            if known is not None:
                gone = known[day].get_column("message_trace_id").unique().sort().to_list() if day in known else []
            else:
                current = self.scan([day])
                gone = (
                    current.filter(stale).select(pl.col("message_trace_id").unique()).collect().to_series().to_list()
                    if current is not None
                    else []
                )
            deletes[day] = gone
        return self._append_days(new_by_day, deletes)

    def day_status_counts(self, days: list[dt.date]) -> list[tuple[list[PurePath], Counter[str | None] | None]]:
        """For each day: its current files and their rows per status by the footers (status_counts),
        the days listed and counted at once on object storage (per_day)."""

        def count(day: dt.date) -> tuple[list[PurePath], Counter[str | None] | None]:
            found = self.current_files(day)
            return found, self.status_counts(found)

        return self.per_day(days, count)

    def status_counts(self, paths: list[PurePath]) -> Counter[str | None] | None:
        """One partition's rows per status from its current files' footers; None when they cannot
        tell (a file without counts, or a newer file superseding rows of an older one)."""
        total: Counter[str | None] = Counter()
        for group in files.by_writer(paths):
            for i, f in enumerate(group):
                meta = files.metadata_of(self.fs, f)
                counts = files.status_counts_of(meta)
                # a writer's oldest current file's deletes hit no current file (cf. has_deletes)
                if counts is None or (i > 0 and files.deletes_of(self.fs, f, meta)):
                    return None
                total.update(counts)
        return total


class EventsTable(Table):
    """Events: append-only, nothing superseded, no footer counts."""

    name = EVENTS_DIR
    schema = EVENT_SCHEMA
    time_column = "time"
    keeps_deletes = False  # append-only: nothing in it is ever superseded
    options = files.EVENT_OPTIONS

    def rows(self, paths: list[PurePath]) -> int:
        # events carry no deletes: the footers are exact (and reading each file's deletes costs)
        return self.footer_rows(paths)

    def _ordered(self, rows: pl.DataFrame) -> pl.DataFrame:
        # lines are mostly read in time order already
        return rows if rows.get_column("time").is_sorted() else rows.sort("time")

    def newest_by_source(self, window: dt.timedelta) -> dict[str, dt.datetime]:
        """Each source's newest event among the stored events within `window` of the newest day."""
        days = self.days()
        if not days:
            return {}
        recent = [d for d in days if d >= days[-1] - window - dt.timedelta(days=1)]
        lf = self.scan(recent)
        if lf is None:
            return {}
        df = lf.group_by("source").agg(pl.col("time").max()).collect()
        return {src: t for src, t in df.iter_rows() if t is not None}


class StateFiles:
    """A folder of small state files: JSON text and one-frame Parquet files (the store's shared
    `_state/`, or a writer's `_state/writers/<name>/`)."""

    def __init__(self, root: PurePath, fs: FileSystem, tag: str = "") -> None:
        self.fs = fs
        self.dir = root / STATE_DIR / WRITERS_DIR / tag if tag else root / STATE_DIR
        self.guard: Callable[[], None] | None = None  # raises when this writer may not write (Store.guard)

    def path(self, name: str) -> PurePath:
        """Where a state file lives (for messages that name it)."""
        return self.dir / name

    def read_text(self, name: str) -> str | None:
        """A state file's text, or None when there is none."""
        return self.fs.read_text(self.dir / name)

    def write_text(self, name: str, text: str) -> None:
        """Replace a state file's text atomically."""
        if self.guard is not None:
            self.guard()
        self.fs.write_text(self.dir / name, text)

    def read_frame(self, name: str, schema: Schema) -> pl.DataFrame | None:
        """A state frame in its schema, or None when there is none."""
        path = self.dir / name
        if not self.fs.exists(path):
            return None
        return conform(pl.read_parquet(self.fs.uri(path), storage_options=self.fs.storage_options()), schema)

    def write_frame(self, name: str, df: pl.DataFrame, schema: Schema) -> None:
        """Replace a state frame atomically (the explicit schema)."""
        if self.guard is not None:
            self.guard()
        files.write_state(self.fs, conform(df, schema), self.dir / name)


class ReportPartials:
    """Counts of whole partitions kept for `msgtrace report` (query.report_store), one file per
    UTC day in <store>/_report_counts/: derived data, written by compaction and replaced freely; each
    file's metadata says which current messages files (and which local domains) it counts, so a
    reader uses it only while they are still the partition's."""

    def __init__(self, root: PurePath, fs: FileSystem) -> None:
        self.fs = fs
        self.dir = root / REPORT_DIR

    def path(self, day: dt.date) -> PurePath:
        """Where the partial of one day lives."""
        return self.dir / f"{day.isoformat()}.parquet"

    def metadata(self, day: dt.date) -> dict[str, str] | None:
        """A day's partial's metadata (its footer alone); None when there is none."""
        if not self.fs.exists(self.path(day)):
            return None
        try:
            return files.metadata_of(self.fs, self.path(day))
        except (OSError, pl.exceptions.PolarsError):
            return None

    def read(self, day: dt.date, schema: Schema) -> pl.DataFrame | None:
        """A day's partial in its schema; None when there is none (or it cannot be read)."""
        try:
            frame = pl.read_parquet(self.fs.uri(self.path(day)), storage_options=self.fs.storage_options())
        except (OSError, pl.exceptions.PolarsError):
            return None  # absent, or replaced meanwhile: counted from the rows instead
        return conform(frame, schema)

    def write(self, day: dt.date, frame: pl.DataFrame, schema: Schema, metadata: dict[str, str]) -> None:
        """Replace a day's partial atomically (the explicit schema). The caller holds the store lock."""
        files.write_with_polars(self.fs, conform(frame, schema).select(list(schema)), self.path(day), metadata)

    def remove(self, day: dt.date) -> None:
        """Delete a day's partial (nothing happens when there is none)."""
        self.fs.delete(self.path(day))

    def remove_stale_temps(self, older_than: float = STALE_REPORT_TEMP_SECONDS) -> int:
        """Delete the temp files a killed compaction left here; returns how many. Every writer
        counts days, so a temp's name cannot tell whose it is (as a partition's can): one not
        modified for `older_than` seconds is one nobody is writing. Object storage has none (a
        file is written locally, then PUT whole)."""
        if not self.fs.is_local:
            return 0
        removed = 0
        for name in self.fs.list(self.dir):
            if temp_target(name) is None:
                continue
            try:
                if time.time() - os.stat(self.dir / name).st_mtime < older_than:
                    continue
            except FileNotFoundError:
                continue  # its writer finished (renamed it) meanwhile
            self.fs.delete(self.dir / name)
            removed += 1
        return removed


class Store:
    """The tables and state of one store (a local directory or an s3:// prefix).

    `writer`: the name of the writer this process is (msgtrace ingest/watch/compact --writer); its
    tables then read and write only its own files, and `state` is its own. None (a reader, the
    library's default): the tables read every writer's files, and writes go to the default
    writer's untagged files and `_state/`.

    `cache`: the column cache its tables read through (default: the one the current context
    reads this directory through, msgtrace.store.cache.reading_through, if any; local disk only).
    """

    def __init__(
        self,
        root: PurePath,
        fs: FileSystem | None = None,
        writer: str | None = None,
        cache: ColumnCache | None = None,
    ) -> None:
        self.root = root
        self.fs: FileSystem = fs or filesystem_for(root)
        self.shared = StateFiles(root, self.fs)  # store-wide: local domains, who the default writer is
        self.writer = writer
        self.tag: str | None = None if writer is None else self._tag_of(writer)
        # the cache keys files by their local inode and mtime: object storage reads Parquet
        self.cache = None if not self.fs.is_local else cache if cache is not None else attached(root)
        self.messages = MessagesTable(root, self.fs, self.tag, self.cache)
        self.events = EventsTable(root, self.fs, self.tag, self.cache)
        self.state = StateFiles(root, self.fs, self.tag or "")
        self.report = ReportPartials(root, self.fs)  # store-wide, derived from every writer's files

    def _tag_of(self, writer: str) -> str:
        """The writer's tag in file names: "" when it is the store's default writer (claiming an
        unclaimed store of an older version, whose untagged files and state it carries on)."""
        if not files.WRITER_NAME.match(writer):
            raise StoreError.naming(
                "{writer} {name!r}: a writer's name is 1 to 63 letters, digits, dots, hyphens and "
                "underscores, starting with a letter or digit",
                name=writer,
            )
        claimed = self.shared.read_text(DEFAULT_WRITER_FILE)
        if claimed is None and any(self.fs.exists(self.shared.path(n)) for n in UNNAMED_STATE):
            self.fs.create_text(self.shared.path(DEFAULT_WRITER_FILE), writer + "\n")  # one claim wins
            claimed = self.shared.read_text(DEFAULT_WRITER_FILE)
        return "" if claimed is not None and claimed.strip() == writer else writer

    @property
    def default_writer(self) -> str | None:
        """The name of the writer owning the untagged files and `_state/` (None: unclaimed)."""
        text = self.shared.read_text(DEFAULT_WRITER_FILE)
        return text.strip() if text else None

    def writers(self) -> list[tuple[str | None, StateFiles]]:
        """Every writer whose state the store holds: (name, its state), the default writer first
        (its name None when an older version wrote the store and no named writer claimed it)."""
        out: list[tuple[str | None, StateFiles]] = []
        default = self.default_writer
        if default is not None or any(self.fs.exists(self.shared.path(n)) for n in UNNAMED_STATE):
            out.append((default, self.shared))
        for name in sorted(self.fs.list_dirs(self.root / STATE_DIR / WRITERS_DIR)):
            if name != default and files.WRITER_NAME.match(name):
                out.append((name, StateFiles(self.root, self.fs, name)))
        return out

    @property
    def guard(self) -> Callable[[], None] | None:
        """Called before every write of this writer's files and state; raises when the writer's
        lease is lost (msgtrace.store.lock), so a writer that can no longer prove it is the only
        one stops instead of writing beside its successor."""
        return self.messages.guard

    @guard.setter
    def guard(self, check: Callable[[], None] | None) -> None:
        for holder in (self.messages, self.events, self.state):
            holder.guard = check

    @property
    def tables(self) -> tuple[MessagesTable, EventsTable]:
        """Both tables, messages first."""
        return self.messages, self.events

    def table(self, name: str) -> Table:
        """A table by its name (`messages` or `events`)."""
        for t in self.tables:
            if t.name == name:
                return t
        raise ValueError(f"no table {name!r} in a store")

    def exists(self) -> bool:
        """Whether the store directory exists (an object-store prefix: whether anything is under it)."""
        return self.fs.is_dir(self.root)

    def is_store(self) -> bool:
        """Whether the directory holds a msgtrace store: its tables or its state (a watcher that has
        not flushed yet)."""
        return any(
            self.fs.exists(p) for p in (self.messages.dir, self.events.dir, self.shared.dir, self.root / LOCK_FILE)
        )

    def days(self) -> list[dt.date]:
        """Every day either table has a partition of, sorted."""
        return sorted(set(self.messages.days()) | set(self.events.days()))

    def remove_stale_temps(self) -> int:
        """Delete the temp files a killed process of this writer left behind in its state folder and
        the tables' partitions; returns how many. Only this writer's lease holder may call this:
        temps of other writers (told by the name of the file each was to become) are left alone.
        On object storage there are none: a file is written locally, then PUT whole."""
        if not self.fs.is_local:
            return 0
        tag = self.tag or ""
        removed = 0
        for d in [self.state.dir, *(t.partition(day) for t in self.tables for day in t.days())]:
            for name in self.fs.list(d):
                target = temp_target(name)
                if target is None:
                    continue
                if d == self.state.dir:
                    mine = target not in SHARED_STATE
                else:
                    owner = _temp_owner(target)
                    mine = owner == tag or (owner is None and tag == "")
                if mine:
                    self.fs.delete(d / name)
                    removed += 1
        return removed


# state files a store of an older version has in _state/ (the default writer's)
UNNAMED_STATE = ("sources.json", "open_events.parquet")


def _temp_owner(target: str) -> str | None:
    """The writer tag of the partition file a temp was to become; None when it cannot tell (an
    older version's temp, named without its target: the default writer's)."""
    try:
        return files.owner(PurePath(target)) if target else None
    except ValueError:
        return None


def filesystem_for(root: PurePath) -> FileSystem:
    """The file system a store location lives on: the local disk, or an S3 bucket."""
    if isinstance(root, ObjectPath):
        from msgtrace.store.s3 import s3_filesystem  # here: a local store never loads the client

        return s3_filesystem(root.bucket)
    return LocalFileSystem()


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from first to last, both included (the partitions a time range can touch)."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _concat_clearing(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """The frames as one, the list emptied (its frames no longer held here)."""
    out = pl.concat(frames)
    frames.clear()
    return out


def _slice_days(df: pl.DataFrame, time_col: str) -> dict[dt.date, pl.DataFrame]:
    """Rows sorted by a time column without nulls, split by its UTC day: zero-copy slices."""
    if not df.height:
        return {}
    days = df.get_column(time_col).dt.date()
    first, last = days.first(), days.last()
    if first == last:
        return {first: df}  # type: ignore[dict-item]  # the usual flush: one day
    runs = days.rle().struct.unnest()
    out, at = {}, 0
    for n, day in runs.iter_rows():
        out[day] = df.slice(at, n)
        at += n
    return out


def _split_days(df: pl.DataFrame, time_col: str) -> dict[dt.date, pl.DataFrame]:
    """Rows split by the UTC day of a time column (their partition), in order."""
    if not df.height:
        return {}
    days = df.select(pl.col(time_col).dt.date().min().alias("lo"), pl.col(time_col).dt.date().max().alias("hi"))
    lo, hi = days.item(0, "lo"), days.item(0, "hi")
    if lo is not None and lo == hi and not df.get_column(time_col).has_nulls():
        return {lo: df}  # the usual flush: one day, no copy
    df = df.with_columns(pl.col(time_col).dt.date().alias("_day"))
    parts = df.partition_by("_day", as_dict=True, maintain_order=True)
    return {k[0]: v.drop("_day") for k, v in parts.items()}
