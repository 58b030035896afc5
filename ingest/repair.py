"""Damaged Parquet files in a store: finding them, saying so in one line, and repairing them.

A partition file can be damaged under msgtrace (a disk error, a copy cut short, a file zeroed by
a crash of the file system below the atomic rename). Such a file breaks every read of its day.

- `find_damaged` asks each table for the current files whose footer cannot be read
  (msgtrace.store.Table.damaged); `msgtrace status` lists what it finds and a query that fails
  names the file (query.engine).
- `repair` (run by `msgtrace compact`) moves damaged files aside into `<store>/_damaged/` and
  rebuilds a damaged messages partition from the events table, the source of truth: that day's
  events plus the related events around it (the same queue ids within the queue lifetime, as
  the pipeline gathers for lines read out of order) go through ingest.correlate, and the rows
  received that day are written as one complete file, which replaces every older file of the
  partition. A damaged events file cannot be rebuilt: the report says which sources (and about
  which lines) its events came from, so they can be read again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import PurePath

import polars as pl

from msgtrace.defaults import QUEUE_LIFETIME
from msgtrace.ingest.schema import EVENT_SCHEMA, EVENTS_DIR, MESSAGES_DIR
from msgtrace.ingest.terminal import neutralize
from msgtrace.store import DAMAGED_DIR, Store, days_between
from msgtrace.storepath import location


@dataclass
class Damaged:
    """One damaged partition file: where, why, and (events files) what it held, as far as known."""

    path: str
    table: str  # "messages" or "events"
    day: str
    reason: str
    sources: list[str] | None = None  # events files: "path (lines N-M)" of the sources it likely held

    def sentence(self, store: PurePath) -> str:
        """One line: the file, the reason and what to do."""
        if self.table == MESSAGES_DIR:
            what = f"run `msgtrace compact --store {store}` to rebuild it from the events table"
        else:
            held = "; ".join(self.sources) if self.sources else "sources unknown"
            what = (
                f"its events of {self.day} are lost (from {held}); `msgtrace compact --store {store}` "
                "moves it aside so the day can be read again"
            )
        return f"damaged store file {self.path} ({self.reason}): {what}"


def find_damaged(store: StoreLike, tables: tuple[str, ...] = (MESSAGES_DIR, EVENTS_DIR)) -> list[Damaged]:
    """Every current partition file of the tables whose footer cannot be read."""
    s = _store(store)
    out = [Damaged(str(f), name, day.isoformat(), why) for name in tables for day, f, why in s.table(name).damaged()]
    for d in out:
        if d.table == EVENTS_DIR:
            d.sources = lost_sources(store, dt.date.fromisoformat(d.day), {x.path for x in out})
    return out


def read_problems(store: StoreLike, table: str, day: dt.date) -> list[Damaged]:
    """The files of a partition that cannot be read whole (damage past the footer), the thorough check."""
    t = _store(store).table(table)
    bad = [Damaged(str(f), table, day.isoformat(), p) for f in t.current_files(day) if (p := t.read_problem(f))]
    for d in bad:
        if table == EVENTS_DIR:
            d.sources = lost_sources(store, day, {x.path for x in bad})
    return bad


def lost_sources(store: StoreLike, day: dt.date, damaged: set[str]) -> list[str]:
    """The sources a lost events file of `day` probably held, with the lines between what the
    readable events of the day before and the day after hold of them ("path (lines N-M)")."""
    events = _store(store).events
    around = [day - dt.timedelta(days=1), day, day + dt.timedelta(days=1)]
    files = [f for f in events.files(around) if str(f) not in damaged]
    if not files:
        return []
    first = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    try:
        spans = (
            events.scan_files(files)
            .group_by("source")
            .agg(
                pl.col("line_no").filter(pl.col("time") < first).max().alias("before"),
                pl.col("line_no").filter(pl.col("time") >= first + dt.timedelta(days=1)).min().alias("after"),
            )
            .sort("source")
            .collect()
        )
    except (OSError, pl.exceptions.PolarsError):
        return []
    paths = _source_paths(store)
    out = []
    for source, before, after in spans.iter_rows():
        # line_no counts from 0: the lost lines are those after `before` and before `after`
        lo = 1 if before is None else before + 2
        if after is not None and after < lo:
            continue  # nothing of this source can lie in the lost day
        hi = "its end" if after is None else f"{after:,}"
        out.append(f"{neutralize(paths.get(source, source))} (lines {lo:,}-{hi})")
    return out


def _source_paths(store: StoreLike) -> dict[str, str]:
    from msgtrace.ingest.checkpoint import Checkpoints

    try:  # every writer's sources: a day's events file may hold any of them
        every = [s for _, state in _store(store).writers() for s in Checkpoints(state).all()]
        return {s.fingerprint: s.path for s in every if s.path}
    except (OSError, ValueError, TypeError):  # a damaged sources.json: fingerprints will do
        return {}


def rebuild_messages(store: StoreLike, day: dt.date) -> int | None:
    """Recompute a day's message rows from the events table and write them as one complete file
    (replacing every older file of the partition, damaged ones included); returns the rows.

    The day's events name the messages; the events of the same queue ids from a queue lifetime
    before to a queue lifetime after (hand-offs followed) complete them, as the pipeline does for
    lines read out of order; ingest.correlate turns them into rows; those received this day stay.
    """
    from msgtrace.ingest.correlate import correlate
    from msgtrace.ingest.openset import queue_keys, related_events

    s = _store(store)
    own = s.events.scan([day])
    events = pl.DataFrame(schema=EVENT_SCHEMA) if own is None else own.collect()
    if events.height:
        around = s.events.scan(days_between(day - QUEUE_LIFETIME, day + QUEUE_LIFETIME))
        assert around is not None
        related = related_events(around, queue_keys(events))
        events = pl.concat([events, related], how="vertical_relaxed")
    else:
        return None  # nothing to rebuild from: the partition's readable files keep their rows
    rows = correlate(events).filter(pl.col("received").dt.date() == day).sort("received")
    s.messages.write(day, rows, complete=True)
    return rows.height


def repair(store: StoreLike, damaged: list[Damaged]) -> list[str]:
    """Move damaged files aside and rebuild the messages partitions among them; one sentence each.

    Events files go first: a messages partition is rebuilt from the events that are left.
    """
    s = _store(store)
    said: list[str] = []
    for d in sorted(damaged, key=lambda d: d.table != EVENTS_DIR):
        moved = s.table(d.table).move_aside(location(d.path))
        if d.table == EVENTS_DIR:
            held = "; ".join(d.sources) if d.sources else "sources unknown"
            said.append(
                f"Moved damaged events file {d.path} ({d.reason}) to {moved}: its events of {d.day} are lost; "
                f"to restore them, ingest a file holding just those lines of {held}."
            )
    for day in sorted({d.day for d in damaged if d.table == MESSAGES_DIR}):
        files = [d for d in damaged if d.table == MESSAGES_DIR and d.day == day]
        rows = rebuild_messages(store, dt.date.fromisoformat(day))
        names = ", ".join(f"{d.path} ({d.reason})" for d in files)
        where = s.root / DAMAGED_DIR / MESSAGES_DIR
        if rows is None:
            said.append(
                f"Moved damaged {names} to {where}; the events table holds nothing of {day}, so its rows "
                "cannot be rebuilt: ingest the logs of that day again to restore them."
            )
        else:
            said.append(
                f"Rebuilt {rows:,} message rows of {day} from the events table; moved damaged {names} to {where}."
            )
    return said


StoreLike = PurePath | Store  # a store's location (its default writer), or a writer's own Store


def _store(store: StoreLike) -> Store:
    return store if isinstance(store, Store) else Store(store)
