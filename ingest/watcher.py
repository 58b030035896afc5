"""`msgtrace watch`: a loop around the ingest pipeline that follows growing, rotated and compressed logs.

File-system events (watchdog) only wake the loop: every cycle expands the paths again, so the rescan
catches what events miss. A cycle reads what changed, each rotated series oldest file first (the
tail of `mail.log.1` before the new `mail.log`), flushes (Parquet first, then checkpoints) and
compacts at most one partition. Files are known by fingerprint (ingest.reader), so a rename, a
copytruncate or a later compression to .gz never makes a line be read twice or skipped, and a
SIGKILL at any instant only means re-reading lines that the pipeline deduplicates.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath

from watchdog.events import (
    DirCreatedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from msgtrace.defaults import COMPACT_MIN_FILES
from msgtrace.ingest.pipeline import NOT_A_SOURCE, FileReport, IngestOptions, IngestReport, Pipeline
from msgtrace.ingest.reader import ReadError, files_under, fingerprint, is_compressed, is_glob, matches, order_series
from msgtrace.ingest.sourceid import family_of, in_family, is_derived, variant
from msgtrace.ingest.status import Totals, WatchState, uncompressed_size
from msgtrace.store import Store

log = logging.getLogger("msgtrace.watch")
_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent, DirCreatedEvent]
# An archive changed this recently that cannot be fully decompressed is taken to be still being
# written (logrotate compressing): it is read when complete; only after this long is it damaged.
ARCHIVE_SETTLE_S = 60.0


@dataclass
class WatchOptions:
    """Timing of the loop; the defaults make a line queryable within about two seconds."""

    flush_interval: float = 1.0  # at most one read-and-flush cycle per interval
    rescan_interval: float = 2.0  # a cycle at least this often, even without file-system events
    compact_interval: float = 10.0  # how often to look for partitions with many small files
    compact_files: int = COMPACT_MIN_FILES  # compact a partition once it has this many current files
    retry_max: float = 30.0  # longest wait between retries while the store cannot be written
    summary_interval: float = 60.0  # how often to log what was done (INFO)
    # Between cycles, store `msgtrace report`'s counts of one past day lacking them: called with the
    # store and a day, returns whether it counted (`msgtrace watch` passes
    # query.report_store.store_partials; None: the watcher counts nothing).
    count_days: Callable[[Path, list[dt.date]], int] | None = None


@dataclass
class _Seen:
    key: tuple[int, int, int, int]  # device, inode, size, mtime when last looked at
    source: str | None  # source id last read at this path
    reset: bool = False  # the file shrank since that source was read (truncated)


class _Stopped(Exception):
    """A stop was requested in the middle of a long read."""


class _StoreDown(Exception):
    """A flush failed in the middle of a long read."""


class _Wake(FileSystemEventHandler):
    """Any change outside the store wakes the loop (what changed is found by looking)."""

    def __init__(self, wake: threading.Event, ignore: str) -> None:
        self.wake, self.ignore = wake, ignore

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [os.fsdecode(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        if any(not p.startswith(self.ignore) for p in paths):
            self.wake.set()


class Watcher:
    """Follows log files into one store until request_stop(); the caller holds the store lock."""

    def __init__(
        self,
        root: PurePath,
        paths: list[str],
        options: IngestOptions,
        wopts: WatchOptions | None = None,
        rejects: Path | None = None,
        store: Store | None = None,
    ) -> None:
        self.root, self.paths, self.wopts = root, paths, wopts or WatchOptions()
        # the watcher compacts the store the pipeline writes (`store`: its writer's own)
        self.store = store if store is not None else Store(root)
        self.pipe = Pipeline(root, options, rejects, store=self.store)
        self.state = WatchState(self.store)
        self.stop_event, self.wake = threading.Event(), threading.Event()
        # the store's own files are never log files to follow (an object store holds none here)
        self._store_prefix = str(Path(root).resolve()) + os.sep if isinstance(root, Path) else "\0"
        self._seen: dict[Path, _Seen] = {}
        self._where: dict[str, Path] = {}  # source -> where it was last seen, to tell of rotations
        self._by_inode: dict[tuple[int, int], str] = {}  # files read under a derived source id
        self._announced: set[str] = set()
        self._said: set[tuple[str, str]] = set()
        self._failures, self._retry_at = 0, 0.0
        self._compact_todo: list[tuple[str, dt.date]] = []
        self._compact_after: dict[tuple[str, dt.date], float] = {}  # a big partition waits longer
        self._next_compact, self._flushed_at, self._next_count = 0.0, 0.0, 0.0
        self._counted = (0, 0, 0)  # lines, rows, events of pipe.report already counted

    @property
    def total(self) -> Totals:
        """Counters since the start."""
        return self.state.total

    def request_stop(self) -> None:
        """Ask the loop to flush and return (safe from a signal handler or another thread)."""
        self.stop_event.set()
        self.wake.set()

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Cycle until a stop is requested, then flush what was read."""
        observer = self._observe()
        log.info(
            "Watching %s into %s; flushing every %.1f s.", ", ".join(self.paths), self.root, self.wopts.flush_interval
        )
        self.state.save(force=True)
        last, first = -1e9, True
        self.wake.set()  # the first cycle reads at once
        try:
            while not self.stop_event.is_set():
                self.wake.wait(self._timeout())
                delay = last + self.wopts.flush_interval - time.monotonic()
                if (delay > 0 and self.stop_event.wait(delay)) or self.stop_event.is_set():
                    break
                self.wake.clear()
                last = time.monotonic()
                self.cycle()
                if first and self.state.failing_since is None and not self.stop_event.is_set():
                    first = False
                    log.info(
                        "Caught up in %.1f s: read %d lines, wrote %d message rows.",
                        time.monotonic() - last,
                        self.total.lines,
                        self.total.rows,
                    )
        finally:
            observer.stop()
            self._shutdown()
            observer.join(timeout=5)

    def cycle(self) -> None:
        """Read what changed, flush, compact one partition; while the store fails, only retry."""
        if self.state.failing_since is not None and (time.monotonic() < self._retry_at or not self._flush()):
            return
        try:
            self._read_all()
        except (_Stopped, _StoreDown):
            pass
        except OSError as e:  # the pipeline flushes by itself during a very long read: the store failed
            self._failed(e)
        if self.state.failing_since is None and self._flush():
            self.pipe.report, self._counted = IngestReport(), (0, 0, 0)  # flat memory over weeks
            self._compact_one()
            self._count_one()
        summary = self.state.summary(self.wopts.summary_interval)
        if summary:
            log.info(summary)

    def _timeout(self) -> float:
        if self.state.failing_since is not None:
            return max(self._retry_at - time.monotonic(), 0.05)
        return self.wopts.rescan_interval

    # ---- finding and reading files -------------------------------------------------------
    def _candidates(self) -> tuple[list[Path], set[Path]]:
        """Files to look at, oldest of each series first, and the rotated siblings of file arguments."""
        found: list[Path] = []
        follow: set[Path] = set()
        for arg in self.paths:
            named = matches(arg)
            if not named:
                self._say_once(arg, "missing", logging.WARNING, "No file matches %s yet; waiting for it.", arg)
            for p in named:
                if p.is_dir():
                    found.extend(q for q in files_under(p) if not self._in_store(q))
                elif p.is_file():
                    found.append(p)
                    if not is_glob(arg):  # a rotated sibling is read only to finish a source already known
                        follow.update(Path(s) for s in glob.glob(glob.escape(str(p)) + "[.-]*"))
        follow -= set(found)
        return order_series(found + sorted(follow)), follow

    def _in_store(self, p: Path) -> bool:
        """Whether a file lies inside the store (a store kept below a watched log directory)."""
        return str(p.resolve()).startswith(self._store_prefix)

    def _read_all(self) -> None:
        files, follow = self._candidates()
        for path in files:
            if self.stop_event.is_set():
                raise _Stopped
            self._read(path, path in follow)
            self._flush_if_due()  # also between the files of a long catch-up, so a crash loses little
        for gone in set(self._seen) - set(files):
            del self._seen[gone]

    def _read(self, path: Path, follow: bool) -> None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        seen = self._seen.get(path)
        if seen is not None and seen.key == key:
            if seen.source is not None:
                self.pipe.saw(seen.source)  # still there: its checkpoint must not expire
            return
        same_file = seen is not None and seen.key[:2] == key[:2]
        if seen is not None and same_file and key[2] < seen.key[2] and not is_compressed(path):
            log.info("%s was truncated from %d to %d bytes.", path, seen.key[2], key[2])
            seen.reset = seen.source is not None
        prior = seen if same_file else None
        old_source = seen.source if seen else None
        settled = not is_compressed(path) or time.time() - st.st_mtime >= ARCHIVE_SETTLE_S
        try:
            if (follow or is_compressed(path)) and not self._worth_reading(path, follow, key[2]):
                self._seen[path] = _Seen(key, old_source)
                return
            rep = self.pipe.ingest_path(
                path, self._progress, self._resolver(path, key, prior), salvage=settled, new_sources=not follow
            )
        except ReadError as e:  # e.g. a .gz still being written: try again when it changes, or settles
            log.debug("%s is not readable yet (%s); will try again.", path, e)
            if settled:
                self._seen[path] = _Seen(key, old_source)
            return
        if rep.skipped and not settled:  # an archive still being compressed: not a problem yet
            log.debug("%s is not complete yet (%s); will try again.", path, rep.skipped)
            return
        for damage in rep.damage:
            self._say_once(str(path), damage, logging.WARNING, "%s.", damage)
        done = rep.source is not None and rep.skipped is None
        reset = bool(prior and prior.reset and not done)
        self._seen[path] = _Seen(key, rep.source if done else old_source, reset)
        self._after(path, rep)

    def _worth_reading(self, path: Path, follow: bool, size: int) -> bool:
        """Whether a compressed file or rotated sibling may hold unread lines (cheap checks only).

        Files that begin with the same line are told apart by the pipeline (Pipeline.identify)."""
        fp = fingerprint(path)
        family = self.pipe.family(fp) if fp else []
        if not family:  # unknown: a whole archive among the paths is read; a stray sibling is not
            return fp is not None and not follow
        if not is_compressed(path):
            source, state = self.pipe.identify(path)
            if state is None or source is None:  # another file with the same first line
                return not follow
            self._moved(source, path)
            return size > state.offset
        content = uncompressed_size(path)  # a .gz records its size (mod 2**32): no need to decompress
        done = next((s for s in family if content is not None and content == s.offset % 2**32), None)
        if done is not None:
            self.pipe.saw(done.fingerprint)
            self._moved(done.fingerprint, path)
        return done is None

    def _resolver(self, path: Path, key: tuple[int, int, int, int], prior: _Seen | None):  # type: ignore[no-untyped-def]
        """Map a file's fingerprint to its source id: a new id after a truncation that kept the first line."""

        def resolve(fp: str, size: int) -> str:
            known = self._by_inode.get(key[:2])
            if known is not None and family_of(known) == fp:
                return known
            if prior is not None and prior.reset and family_of(prior.source or "") == fp:
                log.warning("%s was truncated but starts with the same line as before; reading it as new.", path)
                self._by_inode[key[:2]] = self.pipe.new_source_id(fp, also=self._by_inode.values())
                return self._by_inode[key[:2]]
            state = self.pipe.state(fp)
            if state is not None and state.offset > size and not is_compressed(path):
                # after a restart: the newest source derived for this path that fits the file
                fits = [
                    s.fingerprint
                    for s in self.pipe.sources()
                    if is_derived(s.fingerprint)
                    and in_family(s.fingerprint, fp)
                    and s.path == str(path)
                    and s.offset <= size
                ]
                if fits:
                    self._by_inode[key[:2]] = max(fits, key=variant)
                    return self._by_inode[key[:2]]
            return fp

        return resolve

    def _progress(self, path: str, lines: int, nbytes: int) -> None:
        if self.stop_event.is_set():
            raise _Stopped
        self._flush_if_due()

    def _after(self, path: Path, rep: FileReport) -> None:
        if rep.skipped:
            if not rep.skipped.startswith("empty") and rep.skipped not in (NOT_A_SOURCE, "damaged"):
                self._say_once(str(path), rep.skipped, logging.WARNING, "Skipping %s: %s.", path, rep.skipped)
            return
        assert rep.source is not None
        self._moved(rep.source, path)
        if rep.source not in self._announced:
            self._announced.add(rep.source)
            if rep.start_offset:
                log.info("Resumed %s at offset %d.", path, rep.start_offset)
            else:
                log.info("Reading %s from the start (%s).", path, rep.format)
        if rep.unknown:
            log.debug("%s: %d lines of unknown shape, e.g. %r.", path, rep.unknown, rep.unknown_sample[:1])

    def _moved(self, source: str, path: Path) -> None:
        prev = self._where.get(source)
        if prev is not None and prev != path:
            how = "compressed" if str(path).startswith(str(prev) + ".") and is_compressed(path) else "rotated"
            log.info("%s was %s to %s.", prev, how, path)
        self._where[source] = path

    def _say_once(self, what: str, reason: str, level: int, msg: str, *args: object) -> None:
        if (what, reason) not in self._said:
            self._said.add((what, reason))
            log.log(level, msg, *args)

    # ---- writing -------------------------------------------------------------------------
    def _flush_if_due(self) -> None:
        if self.pipe.dirty and time.monotonic() - self._flushed_at >= self.wopts.flush_interval:
            if not self._flush():
                raise _StoreDown

    def _flush(self) -> bool:
        """Write and checkpoint what was read; False when the store cannot be written."""
        if not self.pipe.dirty and not self.pipe.unsaved:
            return True
        started = time.monotonic()
        try:
            self.pipe.flush()
        except OSError as e:
            self._failed(e)
            return False
        self._flushed_at = time.monotonic()
        r = self.pipe.report
        lines, rows, events = r.lines - self._counted[0], r.rows - self._counted[1], r.events - self._counted[2]
        self._counted = (r.lines, r.rows, r.events)
        log.debug(
            "Flushed %d message rows and %d events from %d lines in %.2f s.",
            rows,
            events,
            lines,
            self._flushed_at - started,
        )
        self.state.flushed(lines, rows, events, self._flushed_at - started)
        recovered = self.state.failing_since is not None
        if recovered:
            log.warning("The store is writable again after %d failed attempts; flushed %d rows.", self._failures, rows)
            self._failures, self.state.failing_since, self.state.error = 0, None, ""
        self.state.save(force=recovered)
        return True

    def _failed(self, e: OSError) -> None:
        self._failures += 1
        self.state.error = f"{e.strerror or e}"
        if self.state.failing_since is None:
            self.state.failing_since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            log.warning(
                "Cannot write the store %s (%s); checkpoints are not advancing and nothing read is lost; retrying.",
                self.root,
                self.state.error,
            )
            self.state.save(force=True)
        else:
            log.debug("Attempt %d to write the store failed: %s.", self._failures, self.state.error)
        self._retry_at = time.monotonic() + min(self.wopts.retry_max, 0.25 * 2 ** min(self._failures, 10))

    def _compact_one(self) -> None:
        """Merge one partition's small files (a bounded pause, so flushes stay frequent)."""
        now = time.monotonic()
        if not self._compact_todo and now >= self._next_compact:
            self._next_compact = now + self.wopts.compact_interval
            for t in self.store.tables:
                for day in t.days():
                    if now < self._compact_after.get((t.name, day), 0):
                        continue
                    if len(t.current_files(day)) >= self.wopts.compact_files:
                        self._compact_todo.append((t.name, day))
        if not self._compact_todo:
            return
        table, day = self._compact_todo.pop(0)
        try:
            merged = self.store.table(table).compact(day, min_files=self.wopts.compact_files)
        except OSError as e:
            log.warning("Could not compact the %s of %s (%s); will try again.", table, day, e.strerror or e)
            return
        if merged:
            secs = time.monotonic() - now
            log.debug("Compacted the %s of %s in %.2f s.", table, day, secs)
            self.state.compacted()
            # Compacting rewrites the whole partition: the bigger it is, the longer its small files
            # may pile up first, so compaction takes at most about a tenth of the time.
            self._compact_after[(table, day)] = time.monotonic() + 9 * secs

    def _count_one(self) -> None:
        """Count one past day for `msgtrace report` (wopts.count_days), the most recent first: a
        bounded pause per cycle, after compaction's, and never the newest partition, which every
        flush changes (its counts would be out of date at once)."""
        count, now = self.wopts.count_days, time.monotonic()
        if count is None or self._compact_todo or now < self._next_count:
            return
        self._next_count = now + self.wopts.compact_interval
        for day in reversed(self.store.messages.days()[:-1]):
            try:
                if count(self.root, [day]):
                    log.debug("Counted %s for msgtrace report in %.2f s.", day, time.monotonic() - now)
                    return
            except Exception as e:  # derived data: a failure (a full disk, a damaged file) must not stop the watcher
                log.warning("Could not count %s for msgtrace report (%s); will try again.", day, e)
                return

    def _shutdown(self) -> None:
        if self._flush():
            log.info(
                "Stopped: read %d lines and wrote %d message rows since starting.", self.total.lines, self.total.rows
            )
        else:
            log.error(
                "Could not flush before stopping (%s); those lines will be read again at the next start.",
                self.state.error,
            )
        self.pipe.release()
        self.state.save(force=True, stopped=True)

    # ---- file-system events --------------------------------------------------------------
    def _observe(self):  # type: ignore[no-untyped-def]
        observer = Observer()
        handler = _Wake(self.wake, self._store_prefix)
        dirs: dict[str, bool] = {}
        for arg in self.paths:
            parts = Path(arg).parts
            if is_glob(arg):
                fixed = next(i for i, s in enumerate(parts) if is_glob(s))
                base, recursive = str(Path(*parts[:fixed])) if fixed else ".", fixed < len(parts) - 1
            elif os.path.isdir(arg):
                base, recursive = arg, True
            else:
                base, recursive = os.path.dirname(arg) or ".", False
            dirs[base] = dirs.get(base, False) or recursive
        observer.start()  # before scheduling, so a directory that cannot be watched fails alone
        for d, recursive in dirs.items():
            try:
                observer.schedule(handler, d, recursive=recursive, event_filter=_EVENTS)
            except OSError as e:
                log.warning(
                    "Cannot watch %s for changes (%s); relying on a rescan every %.0f s.",
                    d,
                    e.strerror or e,
                    self.wopts.rescan_interval,
                )
        return observer
