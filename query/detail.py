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

from msgtrace.ingest import layout
from msgtrace.ingest.schema import EVENT_SCHEMA, EVENTS_DIR
from msgtrace.query import engine
from msgtrace.query.filters import QueryError, TraceFilter

DETAIL_COLUMNS = ["Date", "Event", "Action", "Detail", "Data", "MessageTraceId", "RecipientAddress"]
# A message's lines lie within this of its Received time (longer than any queue lifetime).
SPAN = dt.timedelta(days=7)
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


def message_trace_detail(store: Path, flt: TraceFilter, recipient: str) -> pl.DataFrame:
    """The detail rows of one message (flt carries its MessageTraceId) for one recipient."""
    rows = engine.scan(store, flt).collect()
    if not rows.height:
        return pl.DataFrame(schema={c: pl.String for c in DETAIL_COLUMNS})
    msg = rows.row(0, named=True)
    rcpt = recipient.lower()
    events = _message_events(store, msg)
    mine = events.filter(
        pl.col("recipient").is_null()
        | (pl.col("recipient").str.to_lowercase() == rcpt)
        | (pl.col("orig_recipient").str.to_lowercase() == rcpt)
        | (rcpt == "")
    )
    return _describe(mine.sort("time", "source", "line_no"), msg["message_trace_id"], recipient)


def _message_events(store: Path, msg: dict) -> pl.DataFrame:
    received: dt.datetime = msg["received"]
    lf = scan_events(store, received, received + SPAN).filter(pl.col("host") == msg["host"])
    if msg["queue_ids"]:
        lf = lf.filter(pl.col("queue_id").is_in(msg["queue_ids"].split(" ")))
        ev = lf.collect()
        return _this_instance(ev, received)
    # a message of its own line (NOQUEUE reject): the line at its Received time
    return lf.filter(pl.col("queue_id").is_null() & (pl.col("time") == received)).collect()


def scan_events(store: Path, first: dt.datetime, last: dt.datetime) -> pl.LazyFrame:
    """The events logged in [first, last], lazily, from the current files of those days only."""
    files = layout.files_for_days(store / EVENTS_DIR, layout.days_between(first.date(), last.date()))
    if not files:
        return pl.LazyFrame(schema=EVENT_SCHEMA)
    lf = pl.scan_parquet(files, schema=EVENT_SCHEMA, hive_partitioning=False)
    return lf.filter(pl.col("time").is_between(first, last))


def _this_instance(ev: pl.DataFrame, received: dt.datetime) -> pl.DataFrame:
    """Drop a later message that reused the queue id: nothing after its first `removed` past the last outcome."""
    removed = ev.filter(pl.col("kind") == "removed").sort("time").get_column("time")
    if removed.len() == 0:
        return ev
    outcomes = ev.filter(pl.col("status").is_not_null()).get_column("time")
    last = outcomes.max() if outcomes.len() else received
    after = removed.filter(removed >= last)
    return ev if after.len() == 0 else ev.filter(pl.col("time") <= after[0])


def event_expr() -> pl.Expr:
    """The Get-MessageTraceDetail Event of each event row: Receive, Transfer, Defer, Deliver, Send, Fail..."""
    local = pl.col("relay").is_in(["local", "virtual", "dovecot", "pipe"]) | pl.col("to_ip").is_null()
    return (
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


def _describe(ev: pl.DataFrame, trace_id: str, recipient: str) -> pl.DataFrame:
    """Date, Event, Action, Detail, Data for each event."""
    event = event_expr()
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


def events_for_messages(store: Path, rows: pl.DataFrame) -> pl.DataFrame:
    """The events behind many trace rows at once (a MessageTraceDetail report), oldest first.

    rows: message rows (MESSAGE_SCHEMA columns). Each event gets the `message_trace_id` of the
    message it belongs to: the latest message of its host and queue id received at or before it
    (a queue id is reused over time), cut at that message's `removed` after its last outcome, as
    message_trace_detail cuts one message. Message-level events (no recipient) are kept once per
    message; a recipient's events only when that recipient (or the alias it came from) is among
    the rows. Rejects without a queue id are their message's one line.
    """
    out_schema = {**EVENT_SCHEMA, "message_trace_id": pl.String}
    if not rows.height:
        return pl.DataFrame(schema=out_schema)
    first, last = rows["received"].min(), rows["received"].max()
    assert isinstance(first, dt.datetime) and isinstance(last, dt.datetime)
    messages = rows.unique("message_trace_id").select("message_trace_id", "host", "received", "queue_ids")
    hosts = messages["host"].drop_nulls().unique().to_list()
    events = scan_events(store, first, last + SPAN).filter(pl.col("host").is_in(hosts)).collect()
    queued = _queued_events(events, messages)
    noqueue = events.filter(pl.col("queue_id").is_null()).join(
        messages.filter(pl.col("queue_ids").fill_null("") == "").select(
            "message_trace_id", "host", pl.col("received").alias("time")
        ),
        on=["host", "time"],
    )
    ev = pl.concat([queued, noqueue.select(list(out_schema))], how="vertical")
    wanted = rows.select(pl.concat_str("message_trace_id", pl.lit("|"), pl.col("recipient_lower").fill_null("")))
    key = wanted.to_series().unique()

    def mine(col: str) -> pl.Expr:
        return pl.concat_str("message_trace_id", pl.lit("|"), pl.col(col).str.to_lowercase()).is_in(key.implode())

    ev = ev.filter(pl.col("recipient").is_null() | mine("recipient") | mine("orig_recipient").fill_null(False))
    return ev.sort("time", "source", "line_no")


def _queued_events(events: pl.DataFrame, messages: pl.DataFrame) -> pl.DataFrame:
    """Events with a queue id, each tied to its message instance (join_asof on time by host and queue id)."""
    instances = (
        messages.filter(pl.col("queue_ids").fill_null("") != "")
        .with_columns(pl.col("queue_ids").str.split(" ").alias("queue_id"))
        .explode("queue_id")
        .select("host", "queue_id", "received", "message_trace_id")
        .sort("received")
    )
    ev = (
        events.filter(pl.col("queue_id").is_not_null())
        .sort("time")
        .join_asof(
            instances,
            left_on="time",
            right_on="received",
            by=["host", "queue_id"],
            strategy="backward",
            check_sortedness=False,
        )
        .filter(pl.col("message_trace_id").is_not_null() & (pl.col("time") <= pl.col("received") + SPAN))
    )
    # this instance ends at its first `removed` after its last outcome (the queue id may be reused)
    outcome = pl.col("time").filter(pl.col("status").is_not_null()).max().over("message_trace_id")
    last_outcome = pl.coalesce(outcome, pl.col("received"))
    ev = ev.with_columns(last_outcome.alias("_last")).with_columns(
        pl.col("time")
        .filter((pl.col("kind") == "removed") & (pl.col("time") >= pl.col("_last")))
        .min()
        .over("message_trace_id")
        .alias("_end")
    )
    ev = ev.filter(pl.col("_end").is_null() | (pl.col("time") <= pl.col("_end")))
    return ev.select([*EVENT_SCHEMA, "message_trace_id"])
