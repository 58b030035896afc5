"""read -> parse -> correlate -> write -> checkpoint, in that order; batch ingest and the watcher share it.

Crash safety: a source's checkpoint (ingest.checkpoint) advances only after the events and
message rows its lines produced are durable. Lines read again after a crash are deduplicated by
their identity (source fingerprint, line number), and the messages they touch are recomputed
from all their stored events, so the store ends up as if the crash never happened.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl
from msgtrace.ingest import formats
from msgtrace.ingest.checkpoint import Checkpoints, SourceState, from_jsonable, jsonable
from msgtrace.ingest.correlate import correlate
from msgtrace.ingest.formats import ParseContext
from msgtrace.ingest.openset import OpenSet, orphans, queue_keys, related_events
from msgtrace.ingest.reader import (
    ReadError,
    discover,
    fingerprint_open,
    is_compressed,
    open_binary,
    read_open,
    sample_lines,
)
from msgtrace.ingest.schema import EVENT_KEY, EVENT_SCHEMA, conform, unique_events
from msgtrace.ingest.supersede import previous_rows, stale_rows

from msgtrace.defaults import CHUNK_BYTES, COMPACT_MIN_FILES, FLUSH_EVENTS, QUEUE_LIFETIME
from msgtrace.store import Store, days_between

SAMPLE_UNKNOWN = 3


class ParseError(Exception):
    """A batch of lines the parser failed on (a bug met by unusual input): where, and why."""


@dataclass
class IngestOptions:
    """How to read sources: the settings of `msgtrace ingest` / `watch`."""

    timezone: str = "UTC"
    year: int | None = None
    organization: str | None = None
    format: str = "auto"
    host: str | None = None
    queue_lifetime: dt.timedelta = QUEUE_LIFETIME  # how far apart events of one message may lie
    flush_events: int = FLUSH_EVENTS  # events per flush (tuning: memory against CPU)
    chunk_bytes: int = CHUNK_BYTES  # lines are read in chunks of about this many bytes
    compact_min_files: int = COMPACT_MIN_FILES  # a batch run merges a partition with this many files


@dataclass
class FileReport:
    """What happened to one input file."""

    path: str
    source: str | None = None  # the source id (fingerprint) the lines were read as
    start_offset: int = 0  # where reading started (the checkpoint)
    format: str | None = None
    lines: int = 0
    bytes: int = 0
    unknown: int = 0
    unknown_sample: list[str] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class IngestReport:
    """Totals of one run."""

    files: list[FileReport] = field(default_factory=list)
    messages: int = 0
    rows: int = 0
    events: int = 0
    seconds: float = 0.0

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def unknown(self) -> int:
        return sum(f.unknown for f in self.files)


Progress = Callable[[str, int, int], None]  # (path, lines so far in run, bytes so far in run)
SourceFor = Callable[[str, int], str]  # (fingerprint, file size) -> source id; see Pipeline.ingest_path


class Pipeline:
    """Ingests sources into one store; the caller holds the store lock."""

    def __init__(self, root: Path, options: IngestOptions, rejects: Path | None = None) -> None:
        self.store = Store(root)
        self.options = options
        self.checkpoints = Checkpoints(root)
        self.rejects = rejects.open("a", encoding="utf-8") if rejects else None
        self._buffer: list[pl.DataFrame] = []
        self._buffered = 0
        self._pending: dict[str, SourceState] = {}  # checkpoints to commit after the next flush
        self._contexts: dict[str, ParseContext] = {}
        self.report = IngestReport()
        self.open = OpenSet(self.store.state)
        self._verified: set[str] = set()  # sources already deduplicated against the store
        self.compact_as_you_go = False  # batch ingest compacts between flushes; the watcher schedules its own
        self._newest: dict[str, dt.datetime] | None = None  # per source: its newest stored event
        # Batch ingest writes one flush while the next chunks are parsed (see flush_in_background).
        self._writer: ThreadPoolExecutor | None = None
        self._writing: Future[None] | None = None
        self._inflight: dict[str, SourceState] = {}  # checkpoints of the flush being written
        self._store_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="msgtrace-store")

    def close(self) -> None:
        """Flush what is buffered and release files."""
        try:
            self.flush()
            self._wait()
        finally:
            if self._writer is not None:
                self._writer.shutdown()
            self._store_writer.shutdown()
            if self.rejects:
                self.rejects.close()

    def flush_in_background(self) -> None:
        """From now on a flush writes in a background thread while reading and parsing go on.

        Parsing needs no store state and the writes stay in order (one writer thread, each flush
        waits for the one before), so the store ends up the same; two cores work at once. For batch
        runs: the caller learns of a failed write at the next flush or at close.
        """
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="msgtrace-write")

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()
            self._inflight = {}

    def state(self, source: str) -> SourceState | None:
        """How far a source has been read, counting lines read but not yet flushed."""
        return self._pending.get(source) or self._inflight.get(source) or self.checkpoints.get(source)

    @property
    def dirty(self) -> bool:
        """Whether lines were read that are not yet written and checkpointed."""
        return bool(self._buffer or self._pending)

    # ---- reading -------------------------------------------------------------------------
    def ingest_path(
        self, path: Path, progress: Progress | None = None, source_for: SourceFor | None = None
    ) -> FileReport:
        """Read a file's unread lines (from its checkpoint on) into the buffer, flushing as it fills.

        `source_for` may map the file's fingerprint to another source id (the watcher does after a
        truncation that kept the first line). A plain file shorter than its checkpoint is skipped.
        """
        rep = FileReport(path=str(path))
        self.report.files.append(rep)
        try:
            f = open_binary(path)
        except OSError as e:
            rep.skipped = f"cannot read {path}: {e}"
            return rep
        # One open file for fingerprint, size and lines: a rotation meanwhile cannot swap them.
        with f:
            self._read_open(f, path, rep, progress, source_for)
        return rep

    def _read_open(
        self, f: BinaryIO, path: Path, rep: FileReport, progress: Progress | None, source_for: SourceFor | None
    ) -> None:
        try:
            fp = fingerprint_open(f)
        except ReadError as e:
            rep.skipped = str(e)
            return
        if fp is None:
            rep.skipped = "empty (no complete line yet)"
            return
        stat = os.fstat(f.fileno())
        if source_for is not None:
            fp = source_for(fp, stat.st_size)
        state = self.state(fp) or SourceState(fingerprint=fp)
        rep.source, rep.start_offset = fp, state.offset
        if not is_compressed(path) and stat.st_size < state.offset:
            rep.skipped = f"shorter ({stat.st_size} bytes) than what was read of it ({state.offset} bytes)"
            return
        fmt = (
            self.options.format
            if self.options.format != "auto"
            else (state.format or formats.detect(sample_lines(path)))
        )
        if fmt is None:
            rep.skipped = "not a known mail log format"
            return
        rep.format = fmt
        parser = formats.parser(fmt)
        ctx = self._context(fp, stat.st_mtime)
        for chunk in read_open(f, path, state.offset, state.line, self.options.chunk_bytes):
            try:
                parsed = parser.parse(chunk.lines, ctx)
            except pl.exceptions.PolarsError as e:  # a parser bug met by some line: say where, stop there
                first = chunk.end_line - chunk.lines.height + 1
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise ParseError(
                    f"{path}: lines {first:,}-{chunk.end_line:,} could not be parsed as {fmt} ({reason}); "
                    "everything before them is kept, and the next run starts there"
                ) from e
            rep.lines += chunk.lines.height
            rep.bytes += chunk.end_offset - state.offset
            self._note_unknown(rep, path, parsed.unknown)
            state = SourceState(
                fingerprint=fp,
                path=str(path),
                format=fmt,
                offset=chunk.end_offset,
                line=chunk.end_line,
                unknown=state.unknown + parsed.unknown.height,
                parser_state=jsonable(ctx.state),
            )
            self._pending[fp] = state
            if parsed.events.height:
                self._buffer.append(parsed.events)
                self._buffered += parsed.events.height
            if progress:
                progress(str(path), self.report.lines, sum(r.bytes for r in self.report.files))
            if self._buffered >= self.options.flush_events:
                self.flush()

    def _context(self, fp: str, mtime_s: float) -> ParseContext:
        ctx = self._contexts.get(fp)
        if ctx is None:
            saved = self.checkpoints.get(fp)
            mtime = dt.datetime.fromtimestamp(mtime_s, tz=dt.UTC)
            ctx = ParseContext(
                timezone=self.options.timezone,
                year=self.options.year,
                reference=mtime,
                organization=self.options.organization,
                source=fp,
                host=self.options.host,
                state=from_jsonable(saved.parser_state) if saved else {},
            )
            self._contexts[fp] = ctx
        return ctx

    def _note_unknown(self, rep: FileReport, path: Path, unknown: pl.DataFrame) -> None:
        if not unknown.height:
            return
        rep.unknown += unknown.height
        if len(rep.unknown_sample) < SAMPLE_UNKNOWN:
            rep.unknown_sample.extend(unknown.get_column("line").head(SAMPLE_UNKNOWN - len(rep.unknown_sample)))
        if self.rejects:
            for no, line in unknown.iter_rows():  # only unknown lines, written for the admin to read
                self.rejects.write(f"{path}:{no + 1}: {line}\n")

    # ---- writing -------------------------------------------------------------------------
    def flush(self) -> None:
        """Correlate buffered events with the stored events of the same messages, write, checkpoint."""
        if self._writer is not None:
            self._flush_in_background()
            return
        if self._buffer:
            self._write_buffer(self._buffer)  # on failure (disk full) buffer and checkpoints stay for a retry
            self._buffer, self._buffered = [], 0
        if self._pending:
            self.checkpoints.update(self._pending.values())
            self._pending = {}

    def _flush_in_background(self) -> None:
        assert self._writer is not None
        self._wait()  # one flush at a time, in order; raises the previous one's failure
        self._newest_by_source()  # loaded here, while no write is under way
        buffer, pending = self._buffer, self._pending
        self._buffer, self._buffered, self._pending, self._inflight = [], 0, {}, pending

        def write() -> None:
            if buffer:
                self._write_buffer(buffer)
            if pending:
                self.checkpoints.update(pending.values())

        self._writing = self._writer.submit(write)

    def _write_buffer(self, buffer: list[pl.DataFrame]) -> None:
        parsed = pl.concat(buffer, how="vertical_relaxed")
        try:
            self._write(parsed)
        except BaseException:
            # the failed write may have stored some events already: the retry must check again
            self._verified -= set(parsed.get_column("source").unique().to_list())
            raise

    def _write(self, parsed: pl.DataFrame) -> None:
        parsed = unique_events(conform(parsed, EVENT_SCHEMA))
        if not parsed.height:
            return
        new = self._unseen(parsed)
        # Everything the touched messages logged so far: the open messages' stored events plus
        # the new lines. Lines re-read after a crash are in both and count once.
        related = self.open.related(parsed)
        span = _span(parsed)
        in_order = not self._read_out_of_order(span)
        if in_order:
            search = orphans(parsed, related)  # only messages neither starting nor open
        else:
            # Lines older than what is stored: a log read out of order (a rotated file's tail
            # after the new file, files ingested newest first). Messages they touch may already
            # be stored complete, so search the events table over the queue lifetime around them.
            search = queue_keys(parsed)
        reread = new.height < parsed.height
        if reread:
            # Lines stored before a crash (or a failed flush) and read again: the open set saved
            # then may already have closed their messages, so their stored events are needed too.
            again = parsed.join(new.select(EVENT_KEY), on=EVENT_KEY, how="anti", nulls_equal=True)
            search = pl.concat([search, queue_keys(again)]).unique()
        if search.height:
            related = pl.concat([related, self._stored_related(search, parsed)], how="vertical_relaxed")
        everything = pl.concat([related, parsed], how="vertical_relaxed")
        if reread or search.height:
            # both sides unique, but a line can be on both: read again after a crash, or found
            # among stored events as well as open ones
            everything = unique_events(everything)
        # The store is written by a third thread while this one correlates and updates the open
        # set (in a batch run the writer thread is the slower half; neither step reads what the
        # other writes). Events first, then message rows, in order; both are complete before
        # compaction may merge their files and before the open set and checkpoints are saved.
        writing = [self._store_writer.submit(self.store.events.append, new)]
        open_before = self.open.events
        try:
            rows = correlate(everything, self.options.queue_lifetime)
            # a stored row of a touched message lies in the day of its first event, which is here
            days = set(everything.get_column("time").dt.date().unique().drop_nulls().to_list())
            stale = previous_rows(rows, related) if in_order and not reread else stale_rows(everything, rows)
            events_written = writing[0]

            def write_rows() -> None:
                # never rows without their events: a retry would not know which rows to supersede
                events_written.result()
                self.store.messages.replace(rows, stale, days)

            writing.append(self._store_writer.submit(write_rows))
            self.open.update(everything, rows, self.options.queue_lifetime)
            for w in writing:
                w.result()
        except BaseException:
            wait(writing)  # nothing may still be writing when the caller retries
            self.open.events = open_before  # the retry starts from the open set this flush found
            raise
        self.report.events += new.height
        for src, t in span.select("source", "newest").iter_rows():
            if t is not None and t > self._newest_by_source().get(src, t):
                self._newest[src] = t
            self._newest.setdefault(src, t)
        if self.compact_as_you_go:  # a long batch run: keep the partitions it writes to a few files each
            # ...except the newest day, which the next flushes still append to: compacting it every
            # few flushes would rewrite a big day again and again (tidy compacts it once at the end)
            for day in sorted(days)[:-1]:
                self.store.messages.compact(day, min_files=self.options.compact_min_files)
                _compact_events(self.store, day, self.options.compact_min_files)
        self.open.save()
        self.report.rows += rows.height
        self.report.messages += rows.get_column("message_trace_id").n_unique()

    def _read_out_of_order(self, span: pl.DataFrame) -> bool:
        """Whether a source's lines here (span: source, oldest) are no newer than what another
        source stored, even one read in this same flush (a rotated file's tail after the start of
        the next file). <=: a rotation splits a second."""
        newest = self._newest_by_source()
        for src, oldest in span.select("source", "oldest").iter_rows():
            if oldest is not None and any(oldest <= t for s, t in newest.items() if s != src and t is not None):
                return True
        return False

    def _newest_by_source(self) -> dict[str, dt.datetime]:
        """The newest stored event of each source seen within a queue lifetime of the newest one.

        Lines older than another source's newest were read out of order (a rotated file's tail
        after the new file): they may belong to messages already stored as complete.
        """
        if self._newest is None:
            self._newest = self.store.events.newest_by_source(self.options.queue_lifetime)
        return self._newest

    def _stored_related(self, keys: pl.DataFrame, parsed: pl.DataFrame) -> pl.DataFrame:
        lo, hi = parsed.get_column("time").min(), parsed.get_column("time").max()
        if lo is None or hi is None:
            return pl.DataFrame(schema=EVENT_SCHEMA)
        life = self.options.queue_lifetime
        stored = self.store.events.scan(_days(lo - life, hi + life))
        return pl.DataFrame(schema=EVENT_SCHEMA) if stored is None else related_events(stored, keys)

    def _unseen(self, parsed: pl.DataFrame) -> pl.DataFrame:
        """Parsed events not already stored. Only a source's first flush in this process can hold
        lines stored before (a crash after writing, before the checkpoint); later ones cannot."""
        fresh = set(parsed.get_column("source").unique().to_list()) - self._verified
        self._verified |= fresh
        if not fresh:
            return parsed
        check = parsed.filter(pl.col("source").is_in(list(fresh)))
        days = check.get_column("time").dt.date().unique().drop_nulls().to_list()
        stored = self.store.events.scan(days)
        if stored is None:
            return parsed
        ident = stored.filter(pl.col("source").is_in(list(fresh))).select(EVENT_KEY)
        return parsed.lazy().join(ident, on=EVENT_KEY, how="anti", nulls_equal=True).collect()


def _span(parsed: pl.DataFrame) -> pl.DataFrame:
    """Each source's oldest and newest event time: source, oldest, newest."""
    bounds = [pl.col("time").min().alias("oldest"), pl.col("time").max().alias("newest")]
    one = parsed.select(pl.col("source").min().alias("lo"), pl.col("source").max().alias("hi"))
    if one.item(0, "lo") == one.item(0, "hi"):  # the usual flush: one file (a scan, not a hash per row)
        return parsed.select(pl.col("source").first(), *bounds)
    return parsed.group_by("source").agg(*bounds)


def _days(lo: dt.datetime, hi: dt.datetime) -> list[dt.date]:
    return days_between(lo.date(), hi.date())


def ingest_paths(
    paths: list[str],
    root: Path,
    options: IngestOptions,
    rejects: Path | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Batch ingest of files, directories and globs into the store at root (caller holds the lock)."""
    started = time.perf_counter()
    files = discover(paths)
    pipe = Pipeline(root, options, rejects)
    pipe.compact_as_you_go = True
    pipe.flush_in_background()
    try:
        for path in files:
            pipe.ingest_path(path, progress)
    finally:
        pipe.close()
    tidy(pipe.store, options.compact_min_files)
    pipe.report.seconds = time.perf_counter() - started
    return pipe.report


def tidy(store: Store, min_files: int = COMPACT_MIN_FILES) -> None:
    """Compact partitions with many small files or superseded rows: after a batch ingest the store
    is clean Parquet for any reader, each message once (the watcher compacts as it goes).

    Partitions are independent, and one compaction keeps about one core busy: two at a time
    (it is the serial tail of every batch run)."""

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="msgtrace-tidy") as pool:
        done = [
            pool.submit(step, store, day, min_files)
            for day in store.days()
            for step in (_compact_messages, _compact_events)
        ]
    for d in done:
        d.result()  # a failure is raised after every other partition was tidied


def _compact_messages(store: Store, day: dt.date, min_files: int) -> None:
    """Merge a day's message rows when it has superseded rows or many files."""
    store.messages.compact(day, min_files=1 if store.messages.has_deletes(day) else min_files)


def _compact_events(store: Store, day: dt.date, min_files: int) -> None:
    """Merge a day's events when they are many small files (nothing in them is ever superseded)."""
    if store.events.has_small_files(day, min_files):
        store.events.compact(day, min_files=min_files)
