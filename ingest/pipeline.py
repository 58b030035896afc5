"""read -> parse -> correlate -> write -> checkpoint, in that order; batch ingest and the watcher share it.

Crash safety: a source's checkpoint (ingest.checkpoint) advances only after the events and
message rows its lines produced are durable. Lines read again after a crash are deduplicated by
their identity (source fingerprint, line number), and the messages they touch are recomputed
from all their stored events, so the store ends up as if the crash never happened.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ingest import formats
from ingest.checkpoint import Checkpoints, SourceState
from ingest.correlate import correlate
from ingest.formats import ParseContext
from ingest.reader import ReadError, discover, fingerprint, read_chunks, sample_lines
from ingest.schema import EVENT_SCHEMA, EVENTS_DIR, conform
from ingest.store import Store

# Events of one message may lie this far apart (Postfix maximal_queue_lifetime is 5 days).
QUEUE_LIFETIME = dt.timedelta(days=6)
FLUSH_EVENTS = 1_500_000
SAMPLE_UNKNOWN = 3


@dataclass
class IngestOptions:
    """How to read sources: the settings of `msgtrace ingest` / `watch`."""

    timezone: str = "UTC"
    year: int | None = None
    organization: str | None = None
    format: str = "auto"
    host: str | None = None


@dataclass
class FileReport:
    """What happened to one input file."""

    path: str
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

    def close(self) -> None:
        """Flush what is buffered and release files."""
        self.flush()
        if self.rejects:
            self.rejects.close()

    # ---- reading -------------------------------------------------------------------------
    def ingest_path(self, path: Path, progress: Progress | None = None) -> FileReport:
        """Read a file's unread lines (from its checkpoint on) into the buffer, flushing as it fills."""
        rep = FileReport(path=str(path))
        self.report.files.append(rep)
        try:
            fp = fingerprint(path)
        except ReadError as e:
            rep.skipped = str(e)
            return rep
        if fp is None:
            rep.skipped = "empty (no complete line yet)"
            return rep
        state = self._pending.get(fp) or self.checkpoints.get(fp) or SourceState(fingerprint=fp)
        fmt = (
            self.options.format
            if self.options.format != "auto"
            else (state.format or formats.detect(sample_lines(path)))
        )
        if fmt is None:
            rep.skipped = "not a known mail log format"
            return rep
        rep.format = fmt
        parser = formats.parser(fmt)
        ctx = self._context(fp, path)
        for chunk in read_chunks(path, state.offset, state.line):
            parsed = parser.parse(chunk.lines, ctx)
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
                parser_state=_jsonable(ctx.state),
            )
            self._pending[fp] = state
            if parsed.events.height:
                self._buffer.append(parsed.events)
                self._buffered += parsed.events.height
            if progress:
                progress(str(path), self.report.lines, sum(f.bytes for f in self.report.files))
            if self._buffered >= FLUSH_EVENTS:
                self.flush()
        return rep

    def _context(self, fp: str, path: Path) -> ParseContext:
        ctx = self._contexts.get(fp)
        if ctx is None:
            saved = self.checkpoints.get(fp)
            mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
            ctx = ParseContext(
                timezone=self.options.timezone,
                year=self.options.year,
                reference=mtime,
                organization=self.options.organization,
                source=fp,
                host=self.options.host,
                state=_from_jsonable(saved.parser_state) if saved else {},
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
        if self._buffer:
            parsed = pl.concat(self._buffer, how="vertical_relaxed")
            self._write(parsed)  # on failure (disk full) the buffer and checkpoints stay for a retry
            self._buffer, self._buffered = [], 0
        if self._pending:
            self.checkpoints.update(self._pending.values())
            self._pending = {}

    def _write(self, parsed: pl.DataFrame) -> None:
        parsed = conform(parsed, EVENT_SCHEMA).unique(["source", "line_no"], keep="first", maintain_order=True)
        lo, hi = parsed.get_column("time").min(), parsed.get_column("time").max()
        if lo is None or hi is None:
            return
        days = _days(lo - QUEUE_LIFETIME, hi + QUEUE_LIFETIME)
        stored = self.store.scan(EVENTS_DIR, [d for d in days])
        new = parsed
        related = pl.DataFrame(schema=EVENT_SCHEMA)
        if stored is not None:
            ident = stored.select("source", "line_no")
            new = parsed.lazy().join(ident, on=["source", "line_no"], how="anti").collect()
            related = _related(stored, parsed)
        everything = pl.concat([related, parsed], how="vertical_relaxed").unique(["source", "line_no"], keep="first")
        rows = correlate(everything)
        self.store.append_events(new)
        self.report.events += new.height
        touched = (
            everything.filter(pl.col("queue_id").is_not_null())
            .select(pl.concat_str(["host", "queue_id"], separator="|").unique())
            .to_series()
        )
        standalone = rows.filter(pl.col("queue_id") == "").get_column("message_trace_id")
        stale = (
            (pl.col("queue_id") != "") & pl.concat_str(["host", "queue_id"], separator="|").is_in(touched.implode())
        ) | pl.col("message_trace_id").is_in(standalone.implode())
        self.store.replace_messages(rows, stale, set(days))
        self.report.rows += rows.height
        self.report.messages += rows.get_column("message_trace_id").n_unique()


def _related(stored: pl.LazyFrame, parsed: pl.DataFrame) -> pl.DataFrame:
    """Stored events of the messages the parsed events touch, following content-filter links."""
    keys = _keys(parsed)
    found = pl.DataFrame(schema=EVENT_SCHEMA)
    for _ in range(2):  # second pass: the other side of hand-offs found in the first
        by_qid = stored.join(keys.lazy(), on=["host", "queue_id"], how="semi")
        by_next = stored.join(
            keys.lazy().rename({"queue_id": "next_queue_id"}), on=["host", "next_queue_id"], how="semi"
        )
        found = pl.concat([by_qid, by_next]).unique(["source", "line_no"]).collect()
        more = pl.concat([keys, _keys(found)]).unique()
        if more.height == keys.height:
            break
        keys = more
    return found


def _keys(ev: pl.DataFrame) -> pl.DataFrame:
    a = ev.filter(pl.col("queue_id").is_not_null()).select("host", "queue_id")
    b = ev.filter(pl.col("next_queue_id").is_not_null()).select("host", pl.col("next_queue_id").alias("queue_id"))
    return pl.concat([a, b]).unique()


def _days(lo: dt.datetime, hi: dt.datetime) -> list[dt.date]:
    d, end = lo.date(), hi.date()
    out = []
    while d <= end:
        out.append(d)
        d += dt.timedelta(days=1)
    return out


def _jsonable(state: dict) -> dict:
    """Parser state for the checkpoint file (datetimes as ISO strings)."""
    out: dict = {}
    for k, v in state.items():
        if isinstance(v, dict):
            out[k] = _jsonable(v)
        elif isinstance(v, dt.datetime):
            out[k] = {"__dt__": v.isoformat()}
        else:
            out[k] = v
    return out


def _from_jsonable(state: dict) -> dict:
    out: dict = {}
    for k, v in state.items():
        if isinstance(v, dict) and "__dt__" in v:
            out[k] = dt.datetime.fromisoformat(v["__dt__"])
        elif isinstance(v, dict):
            out[k] = _from_jsonable(v)
        else:
            out[k] = v
    return out


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
    try:
        for path in files:
            pipe.ingest_path(path, progress)
    finally:
        pipe.close()
    for day in _all_days(pipe.store):
        pipe.store.compact("messages", day, min_files=8)
        pipe.store.compact(EVENTS_DIR, day, min_files=8)
    pipe.report.seconds = time.perf_counter() - started
    return pipe.report


def _all_days(store: Store) -> list[dt.date]:
    from ingest.layout import partition_days

    return sorted(set(partition_days(store.messages)) | set(partition_days(store.events)))
