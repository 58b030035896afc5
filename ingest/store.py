"""Reading and writing the store's two tables; one writer at a time (a lock file).

Events are append-only. Message rows are replaced when a message's state changes: the
partitions holding superseded rows are rewritten as one complete file (ingest.layout), so a
deferral delivered in a later run ends up Delivered in the message's own `date=` partition,
with no duplicate row and nothing to merge at query time.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from pathlib import Path

import polars as pl

from msgtrace.ingest import layout
from msgtrace.ingest.schema import EVENT_SCHEMA, EVENTS_DIR, MESSAGE_SCHEMA, MESSAGES_DIR, conform

# A partition file with fewer rows than this is small: many of them are worth merging (the
# watcher writes a few hundred rows a flush; a batch run up to a flush's 200,000 events).
SMALL_FILE_ROWS = 50_000


class StoreError(Exception):
    """The store cannot be used (locked, unwritable, corrupt)."""


class StoreLock:
    """An exclusive lock on a store, held for the life of an ingest or watch."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
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


class Store:
    """The tables of one store directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.messages = root / MESSAGES_DIR
        self.events = root / EVENTS_DIR

    def scan(self, table: str, days: list[dt.date] | None = None) -> pl.LazyFrame | None:
        """Current rows of a table for the given days (all days when None), or None if there are none."""
        table_dir = self.events if table == EVENTS_DIR else self.messages
        schema = EVENT_SCHEMA if table == EVENTS_DIR else MESSAGE_SCHEMA
        wanted = layout.partition_days(table_dir) if days is None else days
        return layout.scan_days(table_dir, wanted, schema)

    def newest_by_source(self, window: dt.timedelta) -> dict[str, dt.datetime]:
        """Each source's newest event among the stored events within `window` of the newest day."""
        days = layout.partition_days(self.events)
        if not days:
            return {}
        recent = [d for d in days if d >= days[-1] - window - dt.timedelta(days=1)]
        lf = self.scan(EVENTS_DIR, recent)
        if lf is None:
            return {}
        df = lf.group_by("source").agg(pl.col("time").max()).collect()
        return {src: t for src, t in df.iter_rows() if t is not None}

    def append_events(self, events: pl.DataFrame) -> int:
        """Add new events, one file per UTC day; returns files written."""
        return self._append(self.events, conform(events, EVENT_SCHEMA), "time", EVENT_SCHEMA)

    def _append(self, table_dir: Path, df: pl.DataFrame, time_col: str, schema: dict) -> int:
        if not df.height:
            return 0
        written = 0
        for day, part in _split_days(df, time_col).items():
            pdir = layout.partition_dir(table_dir, day)
            if not part.get_column(time_col).is_sorted():  # lines are mostly read in time order already
                part = part.sort(time_col)
            layout.write_parquet_atomic(part, layout.next_file(pdir, complete=False), schema)
            written += 1
        return written

    def replace_messages(self, rows: pl.DataFrame, stale: pl.Expr | pl.DataFrame, days: set[dt.date]) -> int:
        """Write message rows, superseding existing rows in the given days.

        `stale` says which stored rows the new ones supersede: an expression over the stored rows
        (they are scanned for it), or, when the caller knows them, a frame of their
        message_trace_id and received (nothing is scanned).

        Nothing is rewritten: each day gets one append file with the new rows, whose metadata lists
        the MessageTraceIds of the stale rows it supersedes (ingest.layout), so a deferral delivered
        days later costs a small file, not a rewrite of its partition. Returns files written.
        """
        rows = conform(rows, MESSAGE_SCHEMA)
        new_by_day = _split_days(rows, "received")
        known = _split_days(stale, "received") if isinstance(stale, pl.DataFrame) else None
        written = 0
        for day in sorted(days | set(new_by_day)):
            pdir = layout.partition_dir(self.messages, day)
            new = new_by_day.get(day)
            if known is not None:
                gone = known[day].get_column("message_trace_id").unique().sort().to_list() if day in known else []
            else:
                current = layout.scan_days(self.messages, [day], MESSAGE_SCHEMA)
                gone = (
                    current.filter(stale).select(pl.col("message_trace_id").unique()).collect().to_series().to_list()
                    if current is not None
                    else []
                )
            if gone or (new is not None and new.height):
                body = new.sort("received") if new is not None else pl.DataFrame(schema=MESSAGE_SCHEMA)
                layout.write_parquet_atomic(body, layout.next_file(pdir, complete=False), MESSAGE_SCHEMA, gone)
                written += 1
        return written

    def has_deletes(self, day: dt.date) -> bool:
        """Whether a messages partition holds rows superseded by a newer file's deletes."""
        return layout.supersedes_rows(layout.current_files(layout.partition_dir(self.messages, day)))

    def has_small_files(self, table: str, day: dt.date, min_files: int) -> bool:
        """Whether a partition holds at least min_files current files averaging fewer than
        SMALL_FILE_ROWS rows each: what compaction is for. A batch run writes events files of up to
        a flush's events; merging a day of those would rewrite millions of rows to save a few
        footer reads (a one-day 2M-line Exchange log: 19 files, 5 s)."""
        table_dir = self.events if table == EVENTS_DIR else self.messages
        files = layout.current_files(layout.partition_dir(table_dir, day))
        if len(files) < min_files:
            return False
        rows = pl.scan_parquet(files).select(pl.len()).collect().item()  # footers only
        return rows < SMALL_FILE_ROWS * len(files)

    def compact(self, table: str, day: dt.date, min_files: int = 2) -> bool:
        """Merge a partition's current files into one complete file; True if it did."""
        table_dir = self.events if table == EVENTS_DIR else self.messages
        schema = EVENT_SCHEMA if table == EVENTS_DIR else MESSAGE_SCHEMA
        pdir = layout.partition_dir(table_dir, day)
        files = layout.current_files(pdir)
        if len(files) < min_files:
            self._drop_superseded(pdir)
            return False
        target = layout.next_file(pdir, complete=True)
        if table == EVENTS_DIR:
            # events need no order and a day can hold millions: streamed, memory stays flat
            lf = layout.scan_files(files, schema)
            with layout.atomic_path(target, ".parquet") as tmp:
                lf.select(list(schema)).sink_parquet(tmp, compression="zstd", row_group_size=layout.ROW_GROUP_SIZE)
        else:
            _compact_messages(files, target)
        self._drop_superseded(pdir)
        return True

    def _drop_superseded(self, pdir: Path) -> None:
        for p in layout.superseded_files(pdir):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


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


def _compact_messages(files: list[Path], target: Path) -> None:
    """Merge a messages partition's current files into `target`, superseded rows dropped, one row
    group at a time: a busy day holds millions of rows, and memory must not grow with it.

    Written by pyarrow like every messages file (layout.write_parquet_atomic says why), each row
    group sorted by Received; the status counts go in the footer, so they are counted first.
    """
    import pyarrow.parquet as pq  # here, not at the top: `msgtrace trace` never writes

    counts = layout.scan_files(files, MESSAGE_SCHEMA).group_by("status").len().collect()
    schema = pl.DataFrame(schema=MESSAGE_SCHEMA).to_arrow().schema
    schema = schema.with_metadata(layout.status_counts_metadata(counts))
    with layout.atomic_path(target, ".parquet") as tmp:
        writer = pq.ParquetWriter(tmp, schema, compression="zstd", write_statistics=True)
        group: list[pl.DataFrame] = []
        size = 0

        def write_group() -> None:
            if group:
                rows = pl.concat(group).sort("received")
                writer.write_table(rows.to_arrow().cast(schema), row_group_size=layout.ROW_GROUP_SIZE)
                group.clear()

        try:
            for f, gone in layout.superseded_ids(files).items():
                # read by Polars a row group's worth at a time (a slice reads only the row groups it
                # needs): pyarrow's reader would keep its own pool of decoded pages beside Polars'
                whole = pl.scan_parquet(f, schema=MESSAGE_SCHEMA, hive_partitioning=False)
                total = whole.select(pl.len()).collect().item()
                for offset in range(0, total, layout.ROW_GROUP_SIZE):
                    rows = whole.slice(offset, layout.ROW_GROUP_SIZE).collect()
                    if gone:
                        rows = rows.filter(~pl.col("message_trace_id").is_in(sorted(gone)))
                    group.append(rows)
                    size += rows.height
                    if size >= layout.ROW_GROUP_SIZE:
                        write_group()
                        size = 0
            write_group()
        finally:
            writer.close()
