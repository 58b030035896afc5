"""Get-MessageTraceDetail: the events behind one message's status for one recipient, oldest first.

The message row (found by MessageTraceId, pruned to its day) names its host and every queue id
it passed through; the events table holds the lines. Message-level lines (connection, queueing,
removal) are shown for every recipient; recipient lines only for that recipient or the alias it
was expanded from.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from msgtrace.ingest.schema import EVENT_SCHEMA
from msgtrace.query import engine
from msgtrace.query.filters import QueryError, TraceFilter

from msgtrace.defaults import QUEUE_LIFETIME
from msgtrace.store import Store, days_between

DETAIL_COLUMNS = ["Date", "Event", "Action", "Detail", "Data", "MessageTraceId", "RecipientAddress"]
_DATA_FIELDS = [
    "program",
    "queue_id",
    "relay",
    "to_ip",
    "client_host",
    "client_ip",
    "dsn",
    "delay",
    "size",
    "next_queue_id",
]


def message_trace_detail(
    store: Path, flt: TraceFilter, recipient: str, queue_lifetime: dt.timedelta = QUEUE_LIFETIME
) -> pl.DataFrame:
    """The detail rows of one message (flt carries its MessageTraceId) for one recipient.

    The message's lines lie within `queue_lifetime` of its Received time (the ingest's
    --max-queue-lifetime plus a day)."""
    rows = engine.scan(store, flt).collect()
    if not rows.height:
        return pl.DataFrame(schema={c: pl.String for c in DETAIL_COLUMNS})
    msg = rows.row(0, named=True)
    rcpt = recipient.lower()
    events = _message_events(Store(store), msg, queue_lifetime)
    mine = events.filter(
        pl.col("recipient").is_null()
        | (pl.col("recipient").str.to_lowercase() == rcpt)
        | (pl.col("orig_recipient").str.to_lowercase() == rcpt)
        | (rcpt == "")
    )
    return _describe(mine.sort("time", "source", "line_no"), msg["message_trace_id"], recipient)


def _message_events(store: Store, msg: dict, span: dt.timedelta) -> pl.DataFrame:
    received: dt.datetime = msg["received"]
    stored = store.events.scan(days_between(received.date(), (received + span).date()))
    if stored is None:
        return pl.DataFrame(schema=EVENT_SCHEMA)
    lf = stored.filter(
        (pl.col("host") == msg["host"]) & (pl.col("time") >= received) & (pl.col("time") <= received + span)
    )
    if msg["queue_ids"]:
        lf = lf.filter(pl.col("queue_id").is_in(msg["queue_ids"].split(" ")))
        ev = lf.collect()
        return _this_instance(ev, received)
    # a message of its own line (NOQUEUE reject): the line at its Received time
    return lf.filter(pl.col("queue_id").is_null() & (pl.col("time") == received)).collect()


def _this_instance(ev: pl.DataFrame, received: dt.datetime) -> pl.DataFrame:
    """Drop a later message that reused the queue id: nothing after its first `removed` past the last outcome."""
    removed = ev.filter(pl.col("kind") == "removed").sort("time").get_column("time")
    if removed.len() == 0:
        return ev
    outcomes = ev.filter(pl.col("status").is_not_null()).get_column("time")
    last = outcomes.max() if outcomes.len() else received
    after = removed.filter(removed >= last)
    return ev if after.len() == 0 else ev.filter(pl.col("time") <= after[0])


def _describe(ev: pl.DataFrame, trace_id: str, recipient: str) -> pl.DataFrame:
    """Date, Event, Action, Detail, Data for each event."""
    local = pl.col("relay").is_in(["local", "virtual", "dovecot", "pipe"]) | pl.col("to_ip").is_null()
    event = (
        pl.when(pl.col("kind").is_in(["client", "receive", "msgid", "subject"]))
        .then(pl.lit("Receive"))
        .when(pl.col("kind") == "handoff")
        .then(pl.lit("Transfer"))
        .when(pl.col("kind") == "expand")
        .then(pl.lit("Expand"))
        .when(pl.col("kind") == "bounce")
        .then(pl.lit("DSN"))
        .when(pl.col("kind") == "removed")
        .then(pl.lit("Complete"))
        .when(pl.col("status") == "Pending")
        .then(pl.lit("Defer"))
        .when(pl.col("status") == "Failed")
        .then(pl.lit("Fail"))
        .when(pl.col("status") == "Quarantined")
        .then(pl.lit("Quarantine"))
        .when(pl.col("status") == "FilteredAsSpam")
        .then(pl.lit("Spam"))
        .when(pl.col("status") == "None")
        .then(pl.lit("Drop"))
        .when((pl.col("status") == "Delivered") & local)
        .then(pl.lit("Deliver"))
        .when(pl.col("status") == "Delivered")
        .then(pl.lit("Send"))
        .otherwise(pl.lit("Info"))
    )
    detail = (
        pl.when(pl.col("kind") == "client")
        .then(
            pl.format("Connection from {}[{}]", pl.col("client_host").fill_null(""), pl.col("client_ip").fill_null(""))
        )
        .when(pl.col("kind") == "receive")
        .then(
            pl.format(
                "Queued from <{}>, {} bytes",
                pl.col("sender").fill_null(""),
                pl.col("size").cast(pl.String).fill_null("?"),
            )
        )
        .when(pl.col("kind") == "msgid")
        .then(pl.format("Message-ID {}", pl.col("message_id").fill_null("")))
        .when(pl.col("kind") == "subject")
        .then(pl.format("Subject: {}", pl.col("subject").fill_null("")))
        .when(pl.col("kind") == "removed")
        .then(pl.lit("Removed from the queue"))
        .when(pl.col("recipient").is_not_null())
        .then(
            pl.format(
                "{} via {}: {}", pl.col("recipient"), pl.col("relay").fill_null("-"), pl.col("detail").fill_null("")
            )
        )
        .otherwise(pl.col("detail").fill_null(""))
    )
    data = pl.struct([pl.col(c) for c in _DATA_FIELDS])
    out = ev.select(
        pl.col("time").alias("Date"),
        event.alias("Event"),
        pl.col("status").fill_null(pl.col("kind")).alias("Action"),
        detail.alias("Detail"),
        data.struct.json_encode().alias("Data"),
    )
    return out.with_columns(pl.lit(trace_id).alias("MessageTraceId"), pl.lit(recipient).alias("RecipientAddress"))


def check_recipient(value: str | None) -> str:
    """The recipient of a detail query (required, as in Exchange)."""
    if not value or not value.strip():
        raise QueryError("--recipient-address is required: the detail is per message and recipient")
    return value.strip()
