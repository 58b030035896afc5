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

import polars as pl

from msgtrace.ingest.schema import EVENT_SCHEMA, conform, unique_events
from msgtrace.store import StateFiles

OPEN_FILE = "open_events.parquet"


class OpenSet:
    """Open messages' events for one store, in memory, saved with each flush."""

    def __init__(self, state: StateFiles) -> None:
        self.state = state
        saved = state.read_frame(OPEN_FILE, EVENT_SCHEMA)
        self.events = saved if saved is not None else pl.DataFrame(schema=EVENT_SCHEMA)

    def related(self, parsed: pl.DataFrame, keys: pl.DataFrame | None = None) -> pl.DataFrame:
        """Open events of the messages the parsed events touch, following content-filter links
        (`keys`: queue_keys(parsed), when the caller has them already)."""
        if not self.events.height:
            return self.events
        return related_events(self.events.lazy(), queue_keys(parsed) if keys is None else keys)

    def update(
        self,
        everything: pl.DataFrame,
        rows: pl.DataFrame,
        lifetime: dt.timedelta,
        touched: pl.DataFrame | None = None,
    ) -> None:
        """Replace the touched messages' open events by those still open after this flush, then expire.

        `touched`: the (host, queue_id) keys everything names (queue_keys(everything), repeats
        allowed), when the caller has them: a flush knows its parsed events' keys already, and
        hashing every key of 200,000 events again costs more than the rest of the update."""
        if touched is None:
            touched = queue_keys(everything)
        still_open = (
            rows.select("host", "queue_ids", "incomplete")
            .filter(pl.col("incomplete") & (pl.col("queue_ids") != ""))
            .select("host", pl.col("queue_ids").str.split(" ").alias("queue_id"))
            .explode("queue_id")
            .unique()
        )
        kept = self.events.join(touched, on=["host", "queue_id"], how="anti")
        # (a null queue id matches nothing)
        reopened = everything.join(still_open, on=["host", "queue_id"], how="semi")
        events = pl.concat([kept, conform(_essentials(reopened), EVENT_SCHEMA)], how="vertical_relaxed")
        newest = events.get_column("time").max()
        if newest is not None:
            last = events.group_by("host", "queue_id").agg(pl.col("time").max().alias("_last"))
            alive = last.filter(pl.col("_last") >= newest - lifetime).select("host", "queue_id")
            events = events.join(alive, on=["host", "queue_id"], how="semi")
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
    ev = ev.sort("time", "source", "line_no")
    key = [pl.col("host"), pl.col("queue_id")]
    outcome = pl.col("kind").is_in(["deliver", "reject"]) & pl.col("recipient").is_not_null()
    per_recipient = [*key, pl.col("kind"), pl.col("recipient").str.to_lowercase(), pl.col("status").eq("GettingStatus")]
    last_outcome = pl.int_range(pl.len()).over(per_recipient) == pl.len().over(per_recipient) - 1
    nth = pl.int_range(pl.len()).over([*key, pl.col("kind")])
    last = nth == pl.len().over([*key, pl.col("kind")]) - 1
    keep = (
        pl.when(outcome)
        .then(last_outcome)
        .when(pl.col("kind") == "receive")
        .then((nth == 0) | last)
        .when(pl.col("kind") == "info")
        .then(last)  # only its time matters to the row (the message's latest line)
        .otherwise(True)
    )
    return ev.filter(keep)


def queue_keys(ev: pl.DataFrame) -> pl.DataFrame:
    """(host, queue_id) of every queue id the events name, hand-off targets included."""
    keys = ev.select("host", "queue_id", "next_queue_id")  # narrowed first: a filter copies every column
    a = keys.select("host", "queue_id").drop_nulls("queue_id")
    b = keys.select("host", pl.col("next_queue_id").alias("queue_id")).drop_nulls("queue_id")
    return pl.concat([a, b]).unique()


# Kinds that can open a message: its first line. Anything else first seen without its message
# being open means earlier lines of it were stored before (or never seen).
START_KINDS = ["client", "receive", "msgid"]


def orphans(parsed: pl.DataFrame, related: pl.DataFrame) -> pl.DataFrame:
    """(host, queue_id) of parsed messages that neither start here nor are open."""
    ev = parsed.select("host", "queue_id", "kind", "time", "source", "line_no").drop_nulls("queue_id")
    if _in_line_order(ev):
        # the usual flush: one file's lines in order, so each queue id's first row is its first
        # event, and no sort per group is needed (most of this function's cost otherwise)
        firsts = ev.unique(["host", "queue_id"], keep="first").select("host", "queue_id", "kind")
    else:
        firsts = ev.group_by("host", "queue_id").agg(pl.col("kind").sort_by("time", "source", "line_no").first())
    firsts = firsts.filter(~pl.col("kind").is_in(START_KINDS)).select("host", "queue_id")
    return firsts.join(queue_keys(related), on=["host", "queue_id"], how="anti")


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
