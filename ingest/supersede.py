"""Which stored message rows a flush's new rows supersede.

A flush recomputes every message its events touch; the rows stored for those messages before
must be dropped (msgtrace.store.MessagesTable.replace lists their MessageTraceIds as deletes).
Read in order, they are known from the messages' ids; otherwise the partitions are searched.
"""

from __future__ import annotations

import polars as pl

from msgtrace.ingest.openset import queue_id_rows, queue_keys
from msgtrace.ingest.traceid import message_trace_ids


def message_key(t: pl.Expr) -> pl.Expr:
    """host|queue id|time in microseconds: a message's identity in the messages table."""
    return pl.concat_str(["host", "queue_id", t.dt.epoch("us").cast(pl.String)], separator="|")


def previous_rows(rows: pl.DataFrame, related: pl.DataFrame) -> pl.DataFrame:
    """The stored rows the new rows supersede, when lines are read in order and for the first time.

    Then only messages with events stored before this flush (open, or found as orphans: both in
    `related`) have rows already, and a message keeps its MessageTraceId (host, first queue id,
    Received) as events are added; so the stale rows are the new rows of those messages, plus the
    row a re-queued message had of its own before the hand-off naming it arrived (keyed by its
    own queue id and first event), all found without reading the partition.
    """
    earlier = queue_keys(related)
    if not earlier.height or not rows.height:
        return rows.select("message_trace_id", "received").clear()
    kept = (
        queue_id_rows(rows, ["message_trace_id", "received"])
        .join(earlier, on=["host", "queue_id"], how="semi")
        .select("message_trace_id", "received")
    )
    own = (
        related.filter(pl.col("queue_id").is_not_null())
        .group_by("host", "queue_id")
        .agg(pl.col("time").min().alias("received"))
        .join(rows.select("host", "queue_id"), on=["host", "queue_id"], how="anti")  # not a root now
    )
    if own.height:
        key = own.select(pl.concat_str(["host", "queue_id"], separator="|")).to_series()
        ids = message_trace_ids(key, own.get_column("received"))
        kept = pl.concat([kept, own.select(ids.alias("message_trace_id"), "received")])
    return kept.unique()


def stale_rows(everything: pl.DataFrame, rows: pl.DataFrame) -> pl.Expr:
    """Which stored rows the new rows supersede, as a filter to scan the partitions with.

    A stored row was recomputed here when its queue id and Received (its first event's time) are
    those of an event here; an earlier message under a reused queue id, complete and not loaded,
    keeps its row. A NOQUEUE row is matched by its MessageTraceId.
    """
    touched = (
        everything.filter(pl.col("queue_id").is_not_null()).select(message_key(pl.col("time")).unique()).to_series()
    )
    standalone = rows.filter(pl.col("queue_id") == "").get_column("message_trace_id")
    return ((pl.col("queue_id") != "") & message_key(pl.col("received")).is_in(touched.implode())) | pl.col(
        "message_trace_id"
    ).is_in(standalone.implode())
