"""The events of messages still open: the state carried between flushes, runs and restarts.

A message is open while its row is `incomplete`: received but not finished (no `removed`, an
outcome still pending), or seen without its start (the file with its first lines not ingested
yet). When new lines arrive, only their queue ids' open events are needed to recompute the
messages they touch, so a flush never scans the events table. Open state expires once the newest
event seen is more than the queue lifetime past it, so memory stays flat over weeks.

Saved as one Parquet file (explicit schema, atomic), after the data it describes is durable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

from msgtrace.ingest.keyset import Keys, alive, essentials_keep
from msgtrace.ingest.schema import EVENT_SCHEMA, conform, unique_events
from msgtrace.store import StateFiles

OPEN_FILE = "open_events.parquet"


class OpenSet:
    """Open messages' events for one store, in memory, saved with each flush."""

    def __init__(self, state: StateFiles) -> None:
        self.state = state
        saved = state.read_frame(OPEN_FILE, EVENT_SCHEMA)
        self.events = saved if saved is not None else pl.DataFrame(schema=EVENT_SCHEMA)

    def related(self, parsed: pl.DataFrame, keys: Keys | None = None) -> pl.DataFrame:
        """Open events of the messages the parsed events touch, following content-filter links
        (`keys`: Keys(parsed), when the caller has them already)."""
        if not self.events.height:
            return self.events
        return unique_events((Keys(parsed) if keys is None else keys).related(self.events))

    def update(
        self,
        everything: pl.DataFrame,
        rows: pl.DataFrame,
        lifetime: dt.timedelta,
        touched: Sequence[Keys] | None = None,
    ) -> None:
        """Replace the touched messages' open events by those still open after this flush, then expire.

        `touched`: Keys of the frames that, one after the other, hold everything's events (a
        flush's related and parsed events, whose keys it has already: hashing every key of 200,000
        events again cost more than the rest of the update); a frame's repeats of an event
        dropped from everything (lines read again after a crash) are allowed."""
        if touched is None:
            touched = [Keys(everything)]
        still_open = queue_id_rows(rows, [], where=pl.col("incomplete"))
        kept = self.events
        if kept.height and touched:
            named = touched[0].named_by(kept)
            for keys in touched[1:]:
                named |= keys.named_by(kept)
            kept = kept.filter(~named)
        reopened = everything.filter(_rows_named(everything, touched, still_open))
        events = pl.concat([kept, conform(_essentials(reopened), EVENT_SCHEMA)], how="vertical_relaxed")
        newest = events.get_column("time").max()
        if newest is not None:
            events = events.filter(alive(events, newest - lifetime))
        self.events = events

    def save(self) -> None:
        """Write the open set atomically (call after the data it covers is durable)."""
        self.state.write_frame(OPEN_FILE, self.events, EVENT_SCHEMA)
        # Read back what was written: the frame in memory was cut from every chunk its events came
        # from and keeps those chunks' string buffers alive (Polars string views share buffers),
        # so over a long run it would pin hundreds of MB for a few thousand open events.
        saved = self.state.read_frame(OPEN_FILE, EVENT_SCHEMA)
        assert saved is not None  # just written
        self.events = saved

    @property
    def messages(self) -> int:
        """How many queue ids are open."""
        return self.events.select(pl.struct("host", "queue_id").n_unique()).item() if self.events.height else 0


def _rows_named(everything: pl.DataFrame, parts: Sequence[Keys], keys: pl.DataFrame) -> pl.Series:
    """Whether each event of everything has one of the (host, queue_id) keys as queue id (a null
    one matches nothing): from the parts' keys when everything is the parts one after the other."""
    if not keys.height:
        return pl.repeat(False, everything.height, eager=True)
    if sum(p.height for p in parts) == everything.height:
        return pl.concat([p.rows_named(keys) for p in parts])
    with_next = keys.with_columns(pl.lit(None, pl.String).alias("next_queue_id"))
    return Keys(with_next).named_by(everything)


def _essentials(ev: pl.DataFrame) -> pl.DataFrame:
    """The events that decide an open message's row, without the repetition of its retries.

    A deferred message is retried for days, logging a queue line and a deferral per recipient
    each time; keeping them all would grow the open state with every retry. The row needs the
    first and last queue (receive) lines, each recipient's latest outcome (and latest "no outcome
    yet"), the latest other line, and every line of the other kinds; the events table keeps the
    full history.
    """
    if not ev.height:
        return ev
    # decided in time order, kept in the frame's own: sorting the row numbers, not the rows (a
    # gather of every column, 27 ms a flush of the Exchange bench's 2 M lines)
    order = ev.select(pl.arg_sort_by("time", "source", "line_no", maintain_order=True)).to_series()
    return ev.filter(essentials_keep(ev, order))


def queue_id_rows(rows: pl.DataFrame, columns: list[str], where: pl.Expr | None = None) -> pl.DataFrame:
    """The message rows' `columns`, host and queue_id, once for each queue id in queue_ids (rows
    with none, NOQUEUE rejects, left out; `where`: of the rows for which it holds). Only the few
    rows of a message that passed a content filter name several, and only those are split."""
    keep = pl.col("queue_ids") != ""
    narrow = rows.select(*columns, "host", "queue_ids", *([] if where is None else [where.alias("_where")]))
    narrow = narrow.filter(keep if where is None else keep & pl.col("_where")).select(*columns, "host", "queue_ids")
    several = pl.col("queue_ids").str.contains(" ", literal=True)
    one = narrow.filter(~several)
    many = narrow.filter(several).with_columns(pl.col("queue_ids").str.split(" ")).explode("queue_ids")
    return pl.concat([one, many]).rename({"queue_ids": "queue_id"})


def queue_keys(ev: pl.DataFrame) -> pl.DataFrame:
    """(host, queue_id) of every queue id the events name, hand-off targets included."""
    keys = ev.select("host", "queue_id", "next_queue_id")  # narrowed first: a filter copies every column
    a = keys.select("host", "queue_id").drop_nulls("queue_id")
    b = keys.select("host", pl.col("next_queue_id").alias("queue_id")).drop_nulls("queue_id")
    return pl.concat([a, b]).unique()


# Kinds that can open a message: its first line. Anything else first seen without its message
# being open means earlier lines of it were stored before (or never seen).
START_KINDS = ["client", "receive", "msgid"]


def orphans(parsed: pl.DataFrame, related: pl.DataFrame, keys: Keys | None = None) -> pl.DataFrame:
    """(host, queue_id) of parsed messages that neither start here nor are open (`keys`:
    Keys(parsed), when the caller has them)."""
    ev = parsed.select("host", "queue_id", "kind", "time", "source", "line_no")
    not_start = ~pl.col("kind").is_in(START_KINDS)
    if keys is not None and _in_line_order(ev) and not ev.get_column("host").null_count():
        # the usual flush: one file's lines in order, so each queue id's first row is its first
        # event, which the keys know already (a null host, matching nothing, is not a key); a
        # filter, not a gather of those rows (which copies string views slowly)
        first = np.zeros(ev.height, dtype=np.bool_)
        first[keys.first_rows().to_numpy()] = True
        firsts = ev.filter(pl.Series(first) & not_start)
    else:
        ev = ev.drop_nulls("queue_id")
        if _in_line_order(ev):  # no sort per group is needed (most of this function's cost otherwise)
            firsts = ev.unique(["host", "queue_id"], keep="first").select("host", "queue_id", "kind")
        else:
            firsts = ev.group_by("host", "queue_id").agg(pl.col("kind").sort_by("time", "source", "line_no").first())
        firsts = firsts.filter(not_start)
    return firsts.select("host", "queue_id").join(queue_keys(related), on=["host", "queue_id"], how="anti")


def _in_line_order(ev: pl.DataFrame) -> bool:
    """Whether the rows are sorted by (time, source, line_no): one source, time and line_no both
    ascending (a cheap check, each column scanned once)."""
    if ev.height < 2:
        return True
    checks = ev.select(
        (pl.col("source").min() == pl.col("source").max()).alias("one"),
        (pl.col("time").null_count() == 0).alias("times"),
    ).row(0)
    return all(checks) and ev.get_column("time").is_sorted() and ev.get_column("line_no").is_sorted()


def related_events(events: pl.LazyFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """The events (open ones in memory, or a scan of stored ones) of the given queue ids,
    following content-filter links.

    The queue ids are a plain filter, which a scan pushes into the Parquet reader, so only
    matching rows are materialised: a search over a week of events for a few orphans reads two
    columns, not every column of millions of rows (which a join would). The exact (host, queue
    id) match follows. Later passes search only the queue ids the links found that were not
    searched yet: a flush's keys are many, the links a handful.
    """
    found = _events_of(events, keys)
    searched = keys
    for _ in range(2):  # the other side of hand-offs found so far (chains are short)
        linked = queue_keys(found).join(searched, on=["host", "queue_id"], how="anti")
        if not linked.height:
            break
        found = unique_events(pl.concat([found, _events_of(events, linked)]))
        searched = pl.concat([searched, linked])
    return found


def _events_of(events: pl.LazyFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """The events naming one of the (host, queue_id) keys as their queue id or hand-off target."""
    qids = keys.get_column("queue_id").unique().implode()
    candidates = events.filter(pl.col("queue_id").is_in(qids) | pl.col("next_queue_id").is_in(qids)).collect()
    by_qid = candidates.join(keys, on=["host", "queue_id"], how="semi")
    by_next = candidates.join(keys.rename({"queue_id": "next_queue_id"}), on=["host", "next_queue_id"], how="semi")
    return unique_events(pl.concat([by_qid, by_next]))
