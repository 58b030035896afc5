"""The Polars joins that rust/src/keyset.rs (ingest/keyset.py) replaced in the flush's bookkeeping,
kept as the test reference (tests/test_keyset_rust.py): the open set's related events, a flush's
orphans, the open set's update (kept, re-opened, essentials, expiry) and unique_events."""

from __future__ import annotations

import datetime as dt

import polars as pl

from msgtrace.ingest import openset
from msgtrace.ingest.openset import START_KINDS, _in_line_order, queue_keys
from msgtrace.ingest.schema import EVENT_KEY, EVENT_SCHEMA, conform
from msgtrace.ingest.traceid import message_trace_ids

KEY = ["host", "queue_id"]


def unique_events(ev: pl.DataFrame) -> pl.DataFrame:
    """The events without repeats of an EVENT_KEY, the first of each kept, in order."""
    return ev.unique(EVENT_KEY, keep="first", maintain_order=True)


def related_events(events: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """The events of the keys, two hops of links more: openset.related_events, the Polars search
    that still serves scans of the stored events, over a frame in memory."""
    return openset.related_events(events.lazy(), keys)


def orphans(parsed: pl.DataFrame, related: pl.DataFrame) -> pl.DataFrame:
    """(host, queue_id) of parsed messages that neither start here nor are open."""
    ev = parsed.select("host", "queue_id", "kind", "time", "source", "line_no").drop_nulls("queue_id")
    if _in_line_order(ev):
        firsts = ev.unique(KEY, keep="first").select("host", "queue_id", "kind")
    else:
        firsts = ev.group_by(KEY).agg(pl.col("kind").sort_by("time", "source", "line_no").first())
    firsts = firsts.filter(~pl.col("kind").is_in(START_KINDS)).select(KEY)
    return firsts.join(queue_keys(related), on=KEY, how="anti")


def essentials(ev: pl.DataFrame) -> pl.DataFrame:
    """openset._essentials as it was: window functions over the sorted events."""
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
        .then(last)
        .otherwise(True)
    )
    return ev.filter(keep)


def expire(events: pl.DataFrame, lifetime: dt.timedelta) -> pl.DataFrame:
    """The events of queue ids that logged within `lifetime` of the newest event."""
    newest = events.get_column("time").max()
    if newest is None:
        return events
    last = events.group_by(KEY).agg(pl.col("time").max().alias("_last"))
    alive = last.filter(pl.col("_last") >= newest - lifetime).select(KEY)  # type: ignore[operator]
    return events.join(alive, on=KEY, how="semi")


def update(
    open_events: pl.DataFrame, everything: pl.DataFrame, rows: pl.DataFrame, lifetime: dt.timedelta
) -> pl.DataFrame:
    """OpenSet.update as it was: the open events after a flush."""
    touched = queue_keys(everything)
    still_open = (
        rows.select("host", "queue_ids", "incomplete")
        .filter(pl.col("incomplete") & (pl.col("queue_ids") != ""))
        .select("host", pl.col("queue_ids").str.split(" ").alias("queue_id"))
        .explode("queue_id")
        .unique()
    )
    kept = open_events.join(touched, on=KEY, how="anti")
    reopened = everything.join(still_open, on=KEY, how="semi")
    events = pl.concat([kept, conform(essentials(reopened), EVENT_SCHEMA)], how="vertical_relaxed")
    return expire(events, lifetime)


def previous_rows(rows: pl.DataFrame, related: pl.DataFrame) -> pl.DataFrame:
    """supersede.previous_rows as it was: every row's queue ids split and exploded."""
    earlier = queue_keys(related)
    if not earlier.height or not rows.height:
        return rows.select("message_trace_id", "received").clear()
    kept = (
        rows.filter(pl.col("queue_ids") != "")
        .select("message_trace_id", "received", "host", pl.col("queue_ids").str.split(" ").alias("queue_id"))
        .explode("queue_id")
        .join(earlier, on=KEY, how="semi")
        .select("message_trace_id", "received")
    )
    own = (
        related.filter(pl.col("queue_id").is_not_null())
        .group_by(KEY)
        .agg(pl.col("time").min().alias("received"))
        .join(rows.select(KEY), on=KEY, how="anti")
    )
    if own.height:
        key = own.select(pl.concat_str(KEY, separator="|")).to_series()
        ids = message_trace_ids(key, own.get_column("received"))
        kept = pl.concat([kept, own.select(ids.alias("message_trace_id"), "received")])
    return kept.unique()
