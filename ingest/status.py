"""What a store holds and how far its sources have been read: the report of `msgtrace status`.

Also the watcher's small state file (<store>/_state/watch.json: last flush, whether store writes
are failing), so `status` can tell without talking to the process.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath

import polars as pl

from msgtrace.ingest.checkpoint import Checkpoints
from msgtrace.ingest.reader import ReadError, digest, fingerprint, is_compressed
from msgtrace.ingest.repair import Damaged, find_damaged
from msgtrace.ingest.sourceid import family_of
from msgtrace.store import StateFiles, Store, lock_holder, writer_holder
from msgtrace.storepath import location

WATCH_FILE = "watch.json"
_ROTATION_SUFFIX = re.compile(r"(?:\.\d+|-\d{8,10})?(?:\.(?:gz|bz2|xz))?$")
OPEN_STATUSES = ("GettingStatus", "Pending")


@dataclass
class Totals:
    """What a watcher did, since it started or in the last summary period."""

    lines: int = 0
    rows: int = 0
    events: int = 0
    flushes: int = 0
    slowest: float = 0.0
    compactions: int = 0


class WatchState:
    """A running watcher's counters, last flush and failures, saved to <store>/_state/watch.json."""

    def __init__(self, where: PurePath | Store) -> None:
        store = where if isinstance(where, Store) else Store(where)
        self.root, self.total, self.period = store.root, Totals(), Totals()
        self.state = store.state
        self.started, self.last_flush, self.failing_since, self.error = _now(), None, None, ""
        self._period_start, self._saved = time.monotonic(), 0.0

    def flushed(self, lines: int, rows: int, events: int, secs: float) -> None:
        """Count one successful flush."""
        for t in (self.total, self.period):
            t.lines, t.rows, t.events, t.flushes = t.lines + lines, t.rows + rows, t.events + events, t.flushes + 1
            t.slowest = max(t.slowest, secs)
        self.last_flush = _now()

    def compacted(self) -> None:
        """Count one compaction."""
        self.total.compactions += 1
        self.period.compactions += 1

    def summary(self, interval: float) -> str | None:
        """Once per interval: a sentence on what was done in it (None when idle or not yet due)."""
        secs = time.monotonic() - self._period_start
        if secs < interval:
            return None
        p, self.period, self._period_start = self.period, Totals(), time.monotonic()
        if not (p.flushes or p.compactions):
            return None
        return (
            f"In the last {secs:.0f} s: read {p.lines} lines, wrote {p.rows} message rows and {p.events} events "
            f"in {p.flushes} flushes (slowest {p.slowest:.2f} s), compacted {p.compactions} partitions."
        )

    def save(self, force: bool = False, stopped: bool = False) -> None:
        """Write watch.json (at most every 5 s unless forced); a failure here is not an error."""
        if not force and time.monotonic() - self._saved < 5:
            return
        self._saved = time.monotonic()
        body = {
            "pid": os.getpid(),
            "started": self.started,
            "stopped": _now() if stopped else None,
            "last_flush": self.last_flush,
            "failing_since": self.failing_since,
            "last_error": self.error or None,
            **{k: getattr(self.total, k) for k in ("lines", "rows", "events", "compactions")},
        }
        try:
            self.state.write_text(WATCH_FILE, json.dumps(body, indent=1, sort_keys=True))
        except OSError:
            pass  # informational only (and the disk may be full): the store itself is what matters


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def read_watch_state(root: PurePath | StateFiles) -> dict | None:
    """A watcher's last saved state (the default writer's, or that of a writer's state folder), or None."""
    state = root if isinstance(root, StateFiles) else Store(root).state
    try:
        text = state.read_text(WATCH_FILE)
        return None if text is None else json.loads(text)
    except (OSError, ValueError):
        return None


@dataclass
class SourceStatus:
    """One log source (known by fingerprint) and how far it has been read."""

    fingerprint: str
    path: str  # where it was last read
    format: str | None
    offset: int
    lines: int
    unknown: int
    updated: str
    found_at: str | None = None  # where the source is now (it may have been rotated)
    size: int | None = None  # decompressed size where known
    lag: int | None = None  # bytes not read yet


@dataclass
class PartitionStatus:
    """Rows and files of one day in both tables."""

    day: str
    message_rows: int = 0
    message_files: int = 0
    event_rows: int = 0
    event_files: int = 0


@dataclass
class WriterStatus:
    """One writer of the store (one MTA's ingest or watch): who holds it, its sources, lag, last flush."""

    name: str | None  # None: the default writer of a store an older version wrote
    holder: str | None  # the process holding its lease now ("1234", or "1234 on mx2"), if any
    last_flush: str | None
    watch: dict | None  # its watcher's state file
    sources: list[SourceStatus] = field(default_factory=list)
    lag: int | None = None  # bytes not read yet over its sources (None: some source's lag is unknown)


@dataclass
class StoreStatus:
    """The whole report."""

    store: str
    watcher_pid: int | None  # the process holding the default writer's lock on a local store, if any
    watch: dict | None  # the default writer's watcher state file
    last_flush: str | None  # the newest of every writer's
    sources: list[SourceStatus] = field(default_factory=list)  # every writer's
    partitions: list[PartitionStatus] = field(default_factory=list)
    open_messages: int = 0
    unknown: int = 0
    damaged: list[Damaged] = field(default_factory=list)  # partition files whose footer cannot be read
    writers: list[WriterStatus] = field(default_factory=list)


def status(root: PurePath) -> StoreStatus:
    """Collect the report for the store at root (reads only; safe while writers run)."""
    store = Store(root)
    writers = [_writer(store, name, state) for name, state in store.writers()]
    default = next((w for w in writers if w.name is None or w.name == store.default_writer), None)
    sources = [s for w in writers for s in w.sources]
    sources.sort(key=lambda s: s.updated, reverse=True)
    last_flush = max((w.last_flush for w in writers if w.last_flush), default=None)
    damaged = find_damaged(root)
    skip = {str(d.path) for d in damaged}  # counted as what they are, not read (they cannot be)
    return StoreStatus(
        store=str(root),
        watcher_pid=lock_holder(root),
        watch=default.watch if default else None,
        last_flush=last_flush,
        sources=sources,
        partitions=_partitions(store, skip),
        open_messages=_open_messages(store, skip),
        unknown=sum(s.unknown for s in sources),
        damaged=damaged,
        writers=writers,
    )


def _writer(store: Store, name: str | None, state: StateFiles) -> WriterStatus:
    watch = read_watch_state(state)
    sources = [_source(s) for s in Checkpoints(state).all()]
    sources.sort(key=lambda s: s.updated, reverse=True)
    updated = max((s.updated for s in sources), default=None)
    lags = [s.lag for s in sources]
    return WriterStatus(
        name=name,
        holder=writer_holder(store, state),
        last_flush=(watch or {}).get("last_flush") or updated,
        watch=watch,
        sources=sources,
        lag=None if None in lags else sum(lag for lag in lags if lag is not None),
    )


def _source(s) -> SourceStatus:  # type: ignore[no-untyped-def]
    out = SourceStatus(s.fingerprint, s.path, s.format, s.offset, s.line, s.unknown, s.updated)
    where = _locate(Path(s.path), s) if s.path else None
    if where is not None:
        out.found_at = str(where)
        out.size = uncompressed_size(where)
        out.lag = None if out.size is None else max(out.size - s.offset, 0)
    return out


def _locate(path: Path, s) -> Path | None:  # type: ignore[no-untyped-def]
    """The file holding a source now: its last path, else a rotated sibling with the same first line
    (and, for a plain file, the same bytes before the offset: files may share a first line)."""
    fp = family_of(s.fingerprint)
    base = _ROTATION_SUFFIX.sub("", path.name) or path.name
    series = sorted(Path(p) for p in glob.glob(glob.escape(str(path.parent / base)) + "*"))
    for p in [path, *(p for p in series if p != path)]:
        try:
            if p.is_file() and fingerprint(p) == fp and _same_tail(p, s):
                return p
        except (ReadError, OSError):
            continue
    return None


def _same_tail(path: Path, s) -> bool:  # type: ignore[no-untyped-def]
    """Whether a plain file holds the bytes a source's checkpoint ends with (archives: not checked)."""
    if is_compressed(path) or not s.tail:
        return True
    with open(path, "rb") as f:
        f.seek(max(s.offset - s.tail_len, 0))
        return digest(f.read(s.tail_len)) == s.tail


def uncompressed_size(path: Path) -> int | None:
    """Bytes of a file's content: its size, or a complete .gz's recorded size; None when unknown."""
    try:
        if not is_compressed(path):
            return path.stat().st_size
        if path.suffix != ".gz":
            return None
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)  # gzip's trailer: ISIZE, the content size modulo 2**32
            return int.from_bytes(f.read(4), "little")
    except OSError:
        return None


def _partitions(store: Store, skip: set[str]) -> list[PartitionStatus]:
    """Rows a query sees (Table.rows: footers where they tell) and current files per day and table;
    the files in `skip` (damaged) are neither read nor counted."""
    days: dict[dt.date, PartitionStatus] = {}
    for table, prefix in ((store.messages, "message"), (store.events, "event")):
        for day in table.days():
            files = [f for f in table.current_files(day) if str(f) not in skip]
            p = days.setdefault(day, PartitionStatus(day.isoformat()))
            setattr(p, f"{prefix}_rows", table.rows(files))
            setattr(p, f"{prefix}_files", len(files))
    return [days[d] for d in sorted(days)]


def _open_messages(store: Store, skip: set[str]) -> int:
    files = [f for f in store.messages.files() if str(f) not in skip]
    if not files:
        return 0
    try:
        lf = store.messages.scan_files(files)
        return int(lf.filter(pl.col("status").is_in(OPEN_STATUSES)).select(pl.len()).collect().item())
    except (OSError, pl.exceptions.PolarsError):
        return 0  # a file replaced by a compaction while reading; the next call will see the new one


def to_json(st: StoreStatus) -> str:
    """The report as JSON, for machines."""
    return json.dumps(asdict(st), indent=1)


def format_text(st: StoreStatus, now: dt.datetime | None = None) -> str:
    """The report as text, for people."""
    now = now or dt.datetime.now(dt.UTC)
    out = [f"Store {st.store}"]
    w = st.watch or {}
    flushed = f"last flush {st.last_flush} ({_ago(st.last_flush, now)})" if st.last_flush else "never flushed"
    named = [wr for wr in st.writers if wr.name is not None]
    if named:  # several MTAs (or one named writer): one line each
        out.append(f"Writers ({len(st.writers)}):")
        out.extend(f"  {_writer_line(wr, now)}" for wr in st.writers)
    elif st.watcher_pid is not None:
        out.append(f"Watcher: running (pid {st.watcher_pid}), {flushed}.")
    else:
        out.append(f"Watcher: not running; {flushed}.")
    if w.get("failing_since") and st.watcher_pid is not None:
        out.append(
            f"Store writes failing since {w['failing_since']}: {w.get('last_error')}; checkpoints are not advancing."
        )
    out.append(f"\nSources ({len(st.sources)}):")
    for s in st.sources:
        lag = "lag unknown" if s.lag is None else f"lag {s.lag:,} bytes"
        where = s.found_at or "(file no longer found)"
        if s.found_at and s.found_at != s.path:
            where = f"{s.path} -> {s.found_at}"
        out.append(
            f"  {where}  {s.format or '?'}  offset {s.offset:,}  {lag}  lines {s.lines:,}  "
            f"unknown {s.unknown:,}  updated {s.updated}"
        )
    out.append(f"\nPartitions ({len(st.partitions)}):")
    out.append(f"  {'date':<10}  {'message rows':>12}  {'files':>5}  {'event rows':>12}  {'files':>5}")
    for p in st.partitions:
        out.append(
            f"  {p.day:<10}  {p.message_rows:>12,}  {p.message_files:>5}  {p.event_rows:>12,}  {p.event_files:>5}"
        )
    if st.damaged:
        out.append(f"\nDamaged files ({len(st.damaged)}; their rows are not counted above):")
        out.extend(f"  {d.sentence(location(st.store))}" for d in st.damaged)
    out.append(f"\nOpen messages (GettingStatus or Pending): {st.open_messages:,}.")
    out.append(f"Unknown lines: {st.unknown:,}.")
    return "\n".join(out)


def _writer_line(wr: WriterStatus, now: dt.datetime) -> str:
    """One writer: its name, who runs it, its last flush, sources and lag."""
    name = wr.name or "(default)"
    running = f"running (pid {wr.holder})" if wr.holder else "not running"
    flushed = f"last flush {wr.last_flush} ({_ago(wr.last_flush, now)})" if wr.last_flush else "never flushed"
    lag = "lag unknown" if wr.lag is None else f"lag {wr.lag:,} bytes"
    failing = ""
    if (wr.watch or {}).get("failing_since") and wr.holder:
        failing = f"; store writes failing since {wr.watch['failing_since']}"  # type: ignore[index]
    return f"{name}: {running}, {flushed}, {len(wr.sources)} sources, {lag}{failing}"


def _ago(stamp: str, now: dt.datetime) -> str:
    try:
        then = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return "?"
    secs = int((now - then).total_seconds())
    if secs < 120:
        return f"{secs} s ago"
    if secs < 7200:
        return f"{secs // 60} min ago"
    return f"{secs // 3600} h ago"
