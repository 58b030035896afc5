"""read -> parse -> correlate -> write -> checkpoint, in that order; batch ingest and the watcher share it.

Crash safety: a source's checkpoint (ingest.checkpoint) advances only after the events and
message rows its lines produced are durable. Lines read again after a crash are deduplicated by
their identity (source fingerprint, line number), and the messages they touch are recomputed
from all their stored events, so the store ends up as if the crash never happened.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import ModuleType
from typing import BinaryIO

import polars as pl

from msgtrace.defaults import CHUNK_BYTES, COMPACT_MIN_FILES, FLUSH_EVENTS, QUEUE_LIFETIME
from msgtrace.ingest import formats
from msgtrace.ingest.checkpoint import Checkpoints, SourceState, from_jsonable, jsonable
from msgtrace.ingest.correlate import correlate
from msgtrace.ingest.currentrows import CurrentRows
from msgtrace.ingest.formats import ParseContext
from msgtrace.ingest.keyset import Keys
from msgtrace.ingest.openset import OpenSet, orphans, queue_keys, related_events
from msgtrace.ingest.reader import (
    Damaged,
    Marks,
    ReadError,
    digest,
    discover,
    fingerprint_open,
    is_compressed,
    open_binary,
    read_open,
    read_prefix,
    sample_lines,
)
from msgtrace.ingest.schema import EVENT_KEY, EVENT_SCHEMA, conform, unique_events
from msgtrace.ingest.sourceid import SourceId, family_of, in_family, is_derived, next_in_family
from msgtrace.ingest.supersede import previous_rows, stale_rows
from msgtrace.memory import release_unused
from msgtrace.store import Store, days_between

SAMPLE_UNKNOWN = 3
# A parser failing on a chunk is retried on its halves until the lines it fails on are alone; past
# this many such lines in a file it fails on everything, and whole failing halves are rejected.
MAX_FAILED_LINES = 1000
WARN_FAILED = 5  # warnings naming a failing line, per file; the rest are counted
# A batch run merges a day still written to (within a queue lifetime of the newest event) only at
# this many times the files it merges a day behind at (see Pipeline._compact_behind).
ACTIVE_FILES_FACTOR = 4
NOT_A_SOURCE = "not a source read before"  # FileReport.skipped, see Pipeline.ingest_path(new_sources=False)


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
    damage: list[str] = field(default_factory=list)  # what could not be stored (lines rejected, an archive cut short)
    failed: int = 0  # lines the parser failed on (rejected)
    failed_said: bool = False  # past WARN_FAILED such lines, the one warning about the rest was given


@dataclass
class IngestReport:
    """Totals of one run."""

    files: list[FileReport] = field(default_factory=list)
    messages: int = 0  # messages recomputed and written, summed over flushes (a message open
    rows: int = 0  # across flushes is written, and counted, once per flush that touched it)
    events: int = 0
    seconds: float = 0.0
    # This run's rows that are still current at its end, one per (message, recipient): what a
    # trace over all days returns of them (a row superseded by a later flush is not counted).
    current_rows: CurrentRows = field(default_factory=CurrentRows)

    @property
    def current_by_day(self) -> dict[dt.date, pl.DataFrame]:
        return self.current_rows.by_day()

    @property
    def current(self) -> pl.DataFrame:
        return self.current_rows.frame()

    @property
    def stored_rows(self) -> int:
        return self.current_rows.rows

    @property
    def stored_messages(self) -> int:
        return self.current_rows.messages

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def unknown(self) -> int:
        return sum(f.unknown for f in self.files)

    @property
    def damage(self) -> list[str]:
        """Every warning about data that could not be stored, in the order met."""
        return [d for f in self.files for d in f.damage]


Progress = Callable[[str, int, int], None]  # (path, lines so far in run, bytes so far in run)
SourceFor = Callable[[str, int], str]  # (fingerprint, file size) -> source id; see Pipeline.ingest_path


@dataclass(frozen=True)
class _FlushPlan:
    """What a flush starts from: its unique events, those not stored yet, each source's time span,
    and whether they were read in order (no older than what other sources stored)."""

    parsed: pl.DataFrame
    new: pl.DataFrame
    span: pl.DataFrame
    in_order: bool
    keys: Keys  # Keys(parsed): every step that needs them shares one hashing of them

    @property
    def reread(self) -> bool:
        """Whether some lines were stored before (a crash or failed flush after writing them)."""
        return self.new.height < self.parsed.height


@dataclass(frozen=True)
class _Written:
    """What a flush wrote: the message rows, the stored rows they supersede, the days touched."""

    rows: pl.DataFrame
    stale: pl.Expr | pl.DataFrame
    days: set[dt.date]


class Pipeline:
    """Ingests sources into one store; the caller holds the store lock."""

    def __init__(
        self, root: PurePath, options: IngestOptions, rejects: Path | None = None, store: Store | None = None
    ) -> None:
        self.store = store if store is not None else Store(root)  # the watcher shares its own
        self.options = options
        self.checkpoints = Checkpoints(self.store, expire_after=options.queue_lifetime)
        # what a killed writer left half written (the caller holds the lock: nobody writes now)
        self.store.remove_stale_temps()
        self.rejects_path = rejects
        self.rejects = rejects.open("a", encoding="utf-8") if rejects else None
        self._buffer: list[pl.DataFrame] = []
        self._buffered = 0
        self._pending: dict[str, SourceState] = {}  # checkpoints to commit after the next flush
        self._contexts: dict[str, ParseContext] = {}
        self.report = IngestReport()
        self.open = OpenSet(self.store.state)
        self._verified: set[str] = set()  # sources already deduplicated against the store
        self.compact_as_you_go = False  # batch ingest compacts between flushes; the watcher schedules its own
        self.count_current = False  # batch ingest reports the rows it leaves current (report.current)
        self._newest: dict[str, dt.datetime] | None = None  # per source: its newest stored event
        self._unsettled: set[dt.date] = set()  # days written to and not compacted for good (_compact_behind)
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
            if self.checkpoints.unsaved:  # sources only seen this run: keep them from expiring
                self.checkpoints.save()
        finally:
            if self._writer is not None:
                self._writer.shutdown()
            self._store_writer.shutdown()
            self.release()

    def release(self) -> None:
        """Close the rejects file (without flushing: a watcher that could not flush stops anyway)."""
        if self.rejects:
            self.rejects.close()
            self.rejects = None

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

    def saw(self, source: str) -> None:
        """Note that a source's file is still there (its checkpoint must not expire)."""
        self.checkpoints.saw(source)

    def sources(self) -> list[SourceState]:
        """Every saved checkpoint."""
        return list(self.checkpoints.all())

    @property
    def unsaved(self) -> bool:
        """Whether checkpoints changed (marks, last seen) that a flush has not saved yet."""
        return bool(self.checkpoints.unsaved)

    def state(self, source: str) -> SourceState | None:
        """How far a source has been read, counting lines read but not yet flushed."""
        return self._pending.get(source) or self._inflight.get(source) or self.checkpoints.get(source)

    @property
    def dirty(self) -> bool:
        """Whether lines were read that are not yet written and checkpointed."""
        return bool(self._buffer or self._pending)

    # ---- reading -------------------------------------------------------------------------
    def ingest_path(
        self,
        path: Path,
        progress: Progress | None = None,
        source_for: SourceFor | None = None,
        salvage: bool = True,
        new_sources: bool = True,
    ) -> FileReport:
        """Read a file's unread lines (from its checkpoint on) into the buffer, flushing as it fills.

        `source_for` may map the file's fingerprint to another source id (the watcher does after a
        truncation that kept the first line). A plain file shorter than its checkpoint is skipped.
        A damaged archive's readable lines are read and the damage reported in the FileReport;
        with `salvage` False (an archive that may still be being written) it raises ReadError instead.
        `new_sources` False: a file that is no source read before is skipped (the watcher's rotated
        siblings of a file argument).
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
            self._read_open(f, path, rep, progress, source_for, salvage, new_sources)
        return rep

    def _read_open(
        self,
        f: BinaryIO,
        path: Path,
        rep: FileReport,
        progress: Progress | None,
        source_for: SourceFor | None,
        salvage: bool,
        new_sources: bool,
    ) -> None:
        try:
            fp = fingerprint_open(f, path, salvage)
        except Damaged as e:  # an archive of which not even a line can be read
            rep.damage.append(str(e))
            rep.skipped = "damaged"
            return
        except ReadError as e:
            rep.skipped = str(e)
            return
        if fp is None:
            rep.skipped = "empty (no complete line yet)"
            return
        stat = os.fstat(f.fileno())
        if source_for is not None:
            fp = source_for(fp, stat.st_size)
        fp, state, marks = self._identify(f, path, fp, stat.st_size)
        if state is not None and marks is None:
            rep.source, rep.start_offset = fp, state.offset
            size = "" if is_compressed(path) else f" ({stat.st_size} bytes)"
            rep.skipped = f"shorter{size} than what was read of it ({state.offset} bytes)"
            return
        if state is None and not new_sources:
            rep.skipped = NOT_A_SOURCE
            return
        if state is not None and not state.tail and state.offset and marks is not None:
            # an old checkpoint that held: add its marks now, or it is counted again every run
            self._pending.setdefault(fp, dataclasses.replace(state, **_marks(marks)))
        state = state or SourceState(fingerprint=fp)
        rep.source, rep.start_offset = fp, state.offset
        fmt = (
            self.options.format
            if self.options.format != "auto"
            else (state.format or formats.detect(sample_lines(path, salvage=salvage)))
        )
        if fmt is None:
            rep.skipped = "not a known mail log format"
            return
        rep.format = fmt
        parser = formats.parser(fmt)
        ctx = self._context(fp, stat.st_mtime)
        damaged_at = state.damaged_at
        chunks = read_open(f, path, state.offset, state.line, self.options.chunk_bytes, marks=marks, salvage=salvage)
        while True:
            try:
                chunk = next(chunks, None)
            except Damaged as e:  # an archive cut short: what it held before is read, say so once
                if e.offset != damaged_at:
                    rep.damage.append(str(e))
                    # remembered, so the next run does not report it again (and exits 0)
                    self._pending[fp] = dataclasses.replace(self._pending.get(fp) or state, damaged_at=e.offset)
                break
            if chunk is None:
                break
            parsed = self._parse(parser, chunk.lines, ctx, path, fmt, rep)
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
                damaged_at=damaged_at,
                **_marks(chunk.marks),
            )
            self._pending[fp] = state
            if parsed.events.height:
                self._buffer.append(parsed.events)
                self._buffered += parsed.events.height
            if progress:
                progress(str(path), self.report.lines, sum(r.bytes for r in self.report.files))
            if self._buffered >= self.options.flush_events:
                self.flush()

    # ---- which source a file is ----------------------------------------------------------
    def identify(self, path: Path) -> tuple[str | None, SourceState | None]:
        """The source a plain file is and how far it was read (None: a file not read before)."""
        try:
            with open_binary(path) as f:
                fp = fingerprint_open(f, path)
                if fp is None:
                    return None, None
                sid, state, _ = self._identify(f, path, fp, os.fstat(f.fileno()).st_size)
        except OSError as e:
            raise ReadError(f"cannot read {path}: {e}") from e
        return sid, state

    def family(self, fp: str) -> list[SourceState]:
        """The states of every source whose file began with the line of fingerprint `fp`."""
        return [st for s in sorted(self._family(family_of(fp))) if (st := self.state(s)) is not None]

    def _identify(self, f: BinaryIO, path: Path, fp: str, size: int) -> tuple[str, SourceState | None, Marks | None]:
        """The source a file is, its state and the marks of what was read of it (f is left at the
        state's offset); (id, None, None) for a file not read before.

        The first line only names candidates: the source itself, then the others of its family
        (`fp~n`: files that began with the same line but held other lines). A candidate is the
        file when the file's bytes before the candidate's offset are the bytes read then. No
        candidate: a new source, read from the start. (id, state, None): the same file, now
        shorter than what was read of it (a copy that missed the last lines)."""
        family = family_of(fp)
        if is_derived(fp) and self.state(fp) is None:
            return fp, None, None  # a new source the caller derived (the watcher, after a truncation)
        candidates = [fp, *sorted(self._family(family) - {fp}, key=lambda s: self._rank(s, path))]
        known = [(s, st) for s in candidates if (st := self.state(s)) is not None]
        if not known:
            return fp, None, None
        shorter = None
        for sid, st in known:
            verdict = self._matches(f, path, st, size)
            if isinstance(verdict, Marks):
                self.checkpoints.saw(sid)
                return sid, st, verdict
            if verdict is None and shorter is None:
                shorter = (sid, st)
        f.seek(0)
        if shorter is not None:
            self.checkpoints.saw(shorter[0])
            return shorter[0], shorter[1], None
        return self.new_source_id(family), None, None

    def _matches(self, f: BinaryIO, path: Path, st: SourceState, size: int) -> Marks | None | bool:
        """The marks of `f` up to st.offset when it is the file st was read from (f is left there);
        None when it is that file but shorter now; False when it is another file."""
        if st.offset == 0:
            f.seek(0)
            return Marks(head=b"", recent=b"")
        legacy = not st.tail  # a checkpoint of version 1: no marks, check by line count
        if not is_compressed(path) and size < st.offset:
            if legacy:
                return None  # as msgtrace always did: the same file, cut short
            f.seek(0)
            return None if size >= st.head_len and digest(f.read(st.head_len)) == st.head else False
        marks = read_prefix(f, path, st.offset, count_lines=legacy)
        if not marks.complete:
            if legacy:
                return None
            if len(marks.head) < st.head_len and marks.broken:
                return None  # an unfinished archive too short to compare yet: not a new file before it is
            return None if len(marks.head) >= st.head_len and digest(marks.head[: st.head_len]) == st.head else False
        if legacy:
            same = marks.newlines == st.line and marks.recent.endswith(b"\n")
        else:
            same = digest(marks.head) == st.head and digest(marks.recent) == st.tail
        return marks if same else False

    def _family(self, family: str) -> set[str]:
        """Every source id known (saved or being read) that is `family` or derived from it."""
        ids = {s.fingerprint for s in self.checkpoints.all()} | set(self._pending) | set(self._inflight)
        ids |= set(self._contexts)
        return {s for s in ids if in_family(s, family)}

    def _rank(self, source: str, path: Path) -> tuple[bool, int]:
        st = self.state(source)
        return (st is None or st.path != str(path), -(st.offset if st else 0))

    def new_source_id(self, family: str, also: Iterable[str] = ()) -> SourceId:
        """A source id for a new file whose first line is that of `family`'s (`family~n`)."""
        return next_in_family(family, self._family(family) | set(also))

    # ---- parsing -------------------------------------------------------------------------
    def _parse(
        self, parser: ModuleType, lines: pl.DataFrame, ctx: ParseContext, path: Path, fmt: str, rep: FileReport
    ) -> formats.Parsed:
        """Parse a chunk; should the parser fail (a bug met by some line), split the chunk in halves
        until the failing lines are alone, reject those (with a warning naming file and line) and
        keep the rest: one bad line must not block its file for good."""
        saved = copy.deepcopy(ctx.state)
        try:
            return parser.parse(lines, ctx)
        except (pl.exceptions.PolarsError, formats.ParserFailed) as e:
            ctx.state = saved  # the failed call may have changed it half way
            # one line, or a parser failing on everything: splitting further would parse line by line
            if lines.height == 1 or rep.failed >= MAX_FAILED_LINES:
                self._reject(path, fmt, lines, e, rep)
                return formats.Parsed(events=pl.DataFrame(schema=EVENT_SCHEMA), unknown=lines.clear())
        half = lines.height // 2
        first = self._parse(parser, lines.slice(0, half), ctx, path, fmt, rep)
        second = self._parse(parser, lines.slice(half), ctx, path, fmt, rep)
        return formats.Parsed(
            events=pl.concat([first.events, second.events], how="vertical_relaxed"),
            unknown=pl.concat([first.unknown, second.unknown]),
        )

    def _reject(self, path: Path, fmt: str, lines: pl.DataFrame, e: Exception, rep: FileReport) -> None:
        """Lines the parser failed on: a warning (a few per file), and the lines to the rejects."""
        first, last = lines.item(0, "line_no") + 1, lines.item(-1, "line_no") + 1
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if rep.failed < WARN_FAILED:
            span, which = (f"{first}", "the line was") if first == last else (f"{first}-{last}", "the lines were")
            where = (
                f"{which} written to {self.rejects_path}" if self.rejects else "add --rejects FILE to keep such lines"
            )
            rep.damage.append(f"{path}:{span} could not be parsed as {fmt} ({reason}); {where}")
        elif not rep.failed_said:  # once, then only counted
            rep.failed_said = True
            where = f"they are written to {self.rejects_path}" if self.rejects else "add --rejects FILE to keep them"
            rep.damage.append(f"{path}: more lines could not be parsed as {fmt}, from line {first} on; {where}")
        rep.failed += lines.height
        if self.rejects:
            for no, text in lines.iter_rows():  # only lines the parser failed on
                self.rejects.write(f"{path}:{no + 1}: {text}\n")

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
        elif self.checkpoints.unsaved:  # sources only seen (a watcher idle for hours): keep them from expiring
            self.checkpoints.save()

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
        # One chunk per column: the chunks' constant columns (host, format, source...) concatenate
        # to a single chunk while the others keep one per batch, and Polars realigns a frame of
        # such columns, a copy of every column, before each operation on it (13 ms a time on a
        # flush of 237,000 events, some 20 times a flush); once here, then never again.
        parsed = pl.concat(buffer, how="vertical_relaxed", rechunk=True)
        try:
            self._write(parsed)
        except BaseException:
            # the failed write may have stored some events already: the retry must check again
            self._verified -= set(parsed.get_column("source").unique().to_list())
            raise

    def _write(self, parsed: pl.DataFrame) -> None:
        """One flush, in the steps DESIGN.md names: plan, gather related events, correlate and
        write, commit."""
        plan = self._plan(parsed)
        if plan is None:
            return
        related, everything = self._gather(plan)
        written = self._correlate_and_write(plan, related, everything)
        self._commit(plan, written)

    def _plan(self, parsed: pl.DataFrame) -> _FlushPlan | None:
        """Step 1: the flush's unique events, those not stored yet, and how they were read."""
        parsed = unique_events(conform(parsed, EVENT_SCHEMA))
        if not parsed.height:
            return None
        new = self._unseen(parsed)
        span = _span(parsed)
        return _FlushPlan(parsed, new, span, in_order=not self._read_out_of_order(span), keys=Keys(parsed))

    def _gather(self, plan: _FlushPlan) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Step 2: everything the touched messages logged so far (the open messages' events, plus
        stored events where the open set cannot know them), and that with the new lines."""
        parsed = plan.parsed
        # Lines re-read after a crash are in both the open set and the new lines, and count once.
        related = self.open.related(parsed, plan.keys)
        if plan.in_order:
            search = orphans(parsed, related, plan.keys)  # only messages neither starting nor open
        else:
            # Lines older than what is stored: a log read out of order (a rotated file's tail
            # after the new file, files ingested newest first). Messages they touch may already
            # be stored complete, so search the events table over the queue lifetime around them.
            search = queue_keys(parsed)
        if plan.reread:
            # Lines stored before a crash (or a failed flush) and read again: the open set saved
            # then may already have closed their messages, so their stored events are needed too.
            again = parsed.join(plan.new.select(EVENT_KEY), on=EVENT_KEY, how="anti", nulls_equal=True)
            search = pl.concat([search, queue_keys(again)]).unique()
        if search.height:
            related = pl.concat([related, self._stored_related(search, parsed)], how="vertical_relaxed")
        if plan.reread:  # both sides unique, but a line read again after a crash can be on both
            return related, unique_events(pl.concat([related, parsed], how="vertical_relaxed"))
        if search.height:
            # a line found among stored events as well as open ones; none of them is a parsed one
            # (those are stored by this flush), so only the few related events need the check
            related = unique_events(related)
        return related, pl.concat([related, parsed], how="vertical_relaxed")

    def _correlate_and_write(self, plan: _FlushPlan, related: pl.DataFrame, everything: pl.DataFrame) -> _Written:
        """Step 3: message rows from the events; new events and rows written, the open set updated.

        The store is written by a third thread while this one correlates and updates the open
        set (in a batch run the writer thread is the slower half; neither step reads what the
        other writes). Events first, then message rows, in order; both are complete before
        compaction may merge their files and before the open set and checkpoints are saved.
        """
        writing = [self._store_writer.submit(self.store.events.append, plan.new)]
        open_before = self.open.events
        try:
            rows = correlate(everything, self.options.queue_lifetime)
            # a stored row of a touched message lies in the day of its first event, which is here
            days = set(everything.get_column("time").dt.date().unique().drop_nulls().to_list())
            in_order_first_read = plan.in_order and not plan.reread
            stale = previous_rows(rows, related) if in_order_first_read else stale_rows(everything, rows)
            events_written = writing[0]

            def write_rows() -> None:
                # never rows without their events: a retry would not know which rows to supersede
                events_written.result()
                self.store.messages.replace(rows, stale, days)

            writing.append(self._store_writer.submit(write_rows))
            # everything is related then parsed events: its keys are theirs (related ones are few)
            self.open.update(everything, rows, self.options.queue_lifetime, [Keys(related), plan.keys])
            for w in writing:
                w.result()
        except BaseException:
            wait(writing)  # nothing may still be writing when the caller retries
            self.open.events = open_before  # the retry starts from the open set this flush found
            raise
        return _Written(rows, stale, days)

    def _commit(self, plan: _FlushPlan, written: _Written) -> None:
        """Step 4: with both tables durable, the open set is saved (the caller then advances the
        checkpoints), the run's counts and each source's newest time move on, and a long batch
        run compacts the days it has left behind."""
        rows, days = written.rows, written.days
        self.report.events += plan.new.height
        for src, t in plan.span.select("source", "newest").iter_rows():
            if t is not None and t > self._newest_by_source().get(src, t):
                self._newest[src] = t
            self._newest.setdefault(src, t)
        if self.compact_as_you_go:  # a long batch run: keep the partitions it writes to a few files each
            self._compact_behind(days, plan.span.get_column("newest").max())
        self.open.save()
        self.report.rows += rows.height
        self.report.messages += rows.get_column("message_trace_id").n_unique()
        if self.count_current:
            self.report.current_rows.after(rows, written.stale)

    def _compact_behind(self, days: set[dt.date], newest: object) -> None:
        """Compact the days a batch run has left behind, each about once.

        Never the newest day, which the next flushes still append to. A day within a queue
        lifetime of the newest event is still written to by nearly every flush (each deferred
        message's retry rewrites its row in the day it was received), so it is merged only once
        it has ACTIVE_FILES_FACTOR times the usual number of files; once it lies further back,
        lines read in order touch it no more and it is merged for good. Merging such a day
        every few flushes rewrote it again and again (10 M lines: 2.7 CPU-s per 2 M lines).
        """
        self._unsettled |= days
        if not isinstance(newest, dt.datetime) or not self._unsettled:
            return
        settled_before = (newest - self.options.queue_lifetime).date()
        last = max(self._unsettled)
        for day in sorted(self._unsettled):
            if day == last:
                continue
            settled = day < settled_before
            if not settled and day not in days:
                continue
            factor = 1 if settled else ACTIVE_FILES_FACTOR
            self.store.messages.compact(day, min_files=factor * self.options.compact_min_files)
            _compact_events(self.store, day, factor * self.options.compact_min_files)
            if settled:
                self._unsettled.discard(day)

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


def _marks(marks: Marks | None) -> dict[str, object]:
    """A checkpoint's identity fields for the marks of what it covers."""
    if marks is None:
        return {}
    return {
        "head": digest(marks.head),
        "head_len": len(marks.head),
        "tail": digest(marks.recent),
        "tail_len": len(marks.recent),
    }


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
    root: PurePath,
    options: IngestOptions,
    rejects: Path | None = None,
    progress: Progress | None = None,
    store: Store | None = None,
) -> IngestReport:
    """Batch ingest of files, directories and globs into the store at root (caller holds the
    lease; `store`: the writer's own Store, else the default writer's)."""
    started = time.perf_counter()
    files = discover(paths)
    pipe = Pipeline(root, options, rejects, store=store)
    pipe.compact_as_you_go = True
    pipe.count_current = True
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
    (it is the serial tail of every batch run), the messages partitions one after the other in
    one thread, the events in the other. Two messages compactions at once held two days' rows
    and their Arrow copies (~300 MB a day of 180,000 rows): the peak memory of a whole run."""

    def each(step: Callable[[Store, dt.date, int], None], days: list[dt.date]) -> list[BaseException]:
        failed = []
        for day in days:
            try:
                step(store, day, min_files)
            except Exception as e:  # the other partitions are still tidied
                failed.append(e)
        return failed

    release_unused(everything=True)  # what the flushes freed: compaction allocates through Polars and Arrow
    days = store.days()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="msgtrace-tidy") as pool:
        done = [pool.submit(each, step, days) for step in (_compact_messages, _compact_events)]
    for d in done:
        for e in d.result():
            raise e  # a failure is raised after every other partition was tidied


def _compact_messages(store: Store, day: dt.date, min_files: int) -> None:
    """Merge a day's message rows when it has superseded rows or many files."""
    store.messages.compact(day, min_files=1 if store.messages.has_deletes(day) else min_files)


def _compact_events(store: Store, day: dt.date, min_files: int) -> None:
    """Merge a day's events when they are many small files (nothing in them is ever superseded)."""
    if store.events.has_small_files(day, min_files):
        store.events.compact(day, min_files=min_files)
