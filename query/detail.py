"""Get-MessageTraceDetail: the events behind one message's status for one recipient, oldest first.

The message row (found by MessageTraceId, pruned to its day) names its host and every queue id
it passed through; the events table holds the lines. Message-level lines (connection, queueing,
removal) are shown for every recipient; recipient lines only for that recipient, the alias it
was expanded from, or the address it was rewritten from on an earlier hop (a content filter, a
local forward). The message's own instances of its queue ids are told apart as ingest does
(ingest.correlate.message_events), so a later message reusing a queue id is not mixed in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import polars as pl

from msgtrace.defaults import QUEUE_LIFETIME
from msgtrace.ingest.correlate import events_of_messages, message_events
from msgtrace.ingest.schema import EVENT_SCHEMA
from msgtrace.query import engine
from msgtrace.query.filters import QueryError, TraceFilter
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
    store: Path, flt: TraceFilter, recipient: str | None, queue_lifetime: dt.timedelta = QUEUE_LIFETIME
) -> pl.DataFrame:
    """The detail rows of one message (flt carries its MessageTraceId) for one recipient, or for
    every recipient when recipient is None (RecipientAddress then names each event's recipient).

    The message's lines lie within `queue_lifetime` of its Received time (the ingest's
    --max-queue-lifetime plus a day), split into messages with that same lifetime."""
    return engine.reading(store, lambda: _detail(store, flt, recipient, queue_lifetime))


def _detail(store: Path, flt: TraceFilter, recipient: str | None, queue_lifetime: dt.timedelta) -> pl.DataFrame:
    rows = engine.scan(store, flt).collect()
    later = _later_hops(store, flt, rows, recipient)
    if not rows.height and later.height:  # the recipient is a later hop's (an alias expanded there)
        rows = engine.scan(store, replace(flt, recipients=())).collect()
    if not rows.height:
        return pl.DataFrame(schema={c: pl.String for c in DETAIL_COLUMNS})
    msg = rows.row(0, named=True)
    events = _message_events(Store(store), msg, queue_lifetime)
    # the message's way on through the store's other MTAs (query.follow): each hop's own lines
    hops = [_message_events(Store(store), hop, queue_lifetime) for hop in later.unique("message_trace_id").to_dicts()]
    events = pl.concat([events, *hops], how="vertical") if hops else events
    if recipient is not None:
        rcpt = recipient.lower()
        # the recipient's own lines, and those of the address it was rewritten from (a forward or a
        # filter hop logged under the original address: how the mail got to this recipient)
        to, orig = pl.col("recipient").str.to_lowercase(), pl.col("orig_recipient").str.to_lowercase()
        addresses = pl.concat([pl.Series([rcpt]), events.filter(to == rcpt).select(orig.drop_nulls()).to_series()])
        events = events.filter(
            pl.col("recipient").is_null() | to.is_in(addresses.implode()) | (orig == rcpt) | (rcpt == "")
        )
    return _describe(events.sort("time", "source", "line_no"), msg["message_trace_id"], recipient)


def _later_hops(store: Path, flt: TraceFilter, rows: pl.DataFrame, recipient: str | None) -> pl.DataFrame:
    """The rows that continue the message (rows: its rows the filter found) on the store's other
    hosts; for a recipient no row of the first hop names, the later hops' rows of the message
    that do name it."""
    from msgtrace.query.follow import hops_of, store_rows

    if rows.height:
        return hops_of(rows, store_rows(store))
    if recipient is None or not flt.recipients:
        return rows
    every = engine.scan(store, replace(flt, recipients=())).collect()
    later = hops_of(every, store_rows(store))
    rcpt = recipient.lower()
    named = later.filter(
        (pl.col("recipient_lower") == rcpt) | (pl.col("orig_recipient").str.to_lowercase() == rcpt)
    ).select("message_trace_id")
    return later.join(named, on="message_trace_id", how="semi")


def _message_events(store: Store, msg: dict, span: dt.timedelta) -> pl.DataFrame:
    received: dt.datetime = msg["received"]
    stored = store.events.scan(days_between(received.date(), (received + span).date()))
    if stored is None:
        return pl.DataFrame(schema=EVENT_SCHEMA)
    lf = stored.filter(
        (pl.col("host") == msg["host"]) & (pl.col("time") >= received) & (pl.col("time") <= received + span)
    )
    if msg["queue_ids"]:
        # every instance of its queue ids in the window, split into messages as ingest split them
        # (a later message may reuse a queue id): only this message's own events
        ev = lf.filter(pl.col("queue_id").is_in(msg["queue_ids"].split(" "))).collect()
        return message_events(ev, msg["host"], msg["queue_id"], received, span)
    # a message of its own line (NOQUEUE reject): that line, known by its own fields, not every
    # reject logged in the same second
    row = pl.struct(
        pl.lit(msg["sender_address"], pl.String).alias("sender"),
        pl.lit(msg["recipient_address"], pl.String).alias("recipient"),
        pl.lit(msg["from_ip"] or None, pl.String).alias("client_ip"),
        pl.lit(msg["detail"], pl.String).alias("detail"),
    )
    line = pl.struct("sender", pl.col("recipient").fill_null(""), "client_ip", "detail")
    return lf.filter(
        pl.col("queue_id").is_null()
        & (pl.col("time") == received)
        & (pl.col("kind") == "reject")
        & line.eq_missing(row)
    ).collect()


def scan_events(store: Path, first: dt.datetime, last: dt.datetime) -> pl.LazyFrame:
    """The events logged in [first, last], lazily, from the current files of those days only."""
    stored = Store(store).events.scan(days_between(first.date(), last.date()))
    if stored is None:
        return pl.LazyFrame(schema=EVENT_SCHEMA)
    return stored.filter(pl.col("time").is_between(first, last))


def _retry(by: list[str]) -> pl.Expr:
    # Postfix's qmgr logs `from=..., nrcpt=N (queue active)` each time a queue id enters the active
    # queue: the first time after it was received, then at every retry of a deferred message.
    qmgr = (pl.col("kind") == "receive") & pl.col("program").fill_null("").str.ends_with("qmgr")
    return qmgr & (qmgr.cast(pl.Int32).cum_sum().over(by) > 1)


def event_expr(by: list[str] | None = None) -> pl.Expr:
    """The Get-MessageTraceDetail Event of each event row (sorted oldest first): Receive, Retry,
    Transfer, Defer, Deliver, Send, Fail...; `by`: the columns that tell one message's queue ids apart."""
    local = pl.col("relay").is_in(["local", "virtual", "dovecot", "pipe"]) | pl.col("to_ip").is_null()
    return (
        pl.when(_retry(by or ["queue_id"]))
        .then(pl.lit("Retry"))
        .when(pl.col("kind").is_in(["client", "receive", "msgid", "subject"]))
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


def _describe(ev: pl.DataFrame, trace_id: str, recipient: str | None) -> pl.DataFrame:
    """Date, Event, Action, Detail, Data for each event (ev sorted oldest first)."""
    retry = _retry(["queue_id"])
    pickup = (pl.col("kind") == "receive") & pl.col("program").fill_null("").str.ends_with("pickup")
    size = pl.when(pl.col("size").is_not_null()).then(pl.format(", {} bytes", pl.col("size"))).otherwise(pl.lit(""))
    event = event_expr()
    detail = (
        pl.when(pl.col("kind") == "client")
        .then(
            pl.format("Connection from {}[{}]", pl.col("client_host").fill_null(""), pl.col("client_ip").fill_null(""))
        )
        .when(retry)
        .then(pl.lit("Back in the active queue: another delivery attempt"))
        .when(pickup)
        .then(pl.format("Picked up from <{}> (local submission)", pl.col("sender").fill_null("")))
        .when(pl.col("kind") == "receive")
        .then(pl.format("Queued from <{}>{}", pl.col("sender").fill_null(""), size))
        # a content filter's verdict line (amavis) may name the Message-ID and no Subject
        .when((pl.col("kind") == "msgid") | ((pl.col("kind") == "subject") & pl.col("subject").is_null()))
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
    # a message followed across the store's MTAs: each event says which host logged it
    fields = ["host", *_DATA_FIELDS] if ev.get_column("host").n_unique() > 1 else _DATA_FIELDS
    data = pl.struct([pl.col(c) for c in fields])
    out = ev.select(
        pl.col("time").alias("Date"),
        event.alias("Event"),
        pl.when(retry).then(pl.lit("retry")).otherwise(pl.col("status").fill_null(pl.col("kind"))).alias("Action"),
        detail.alias("Detail"),
        data.struct.json_encode().alias("Data"),
        pl.lit(trace_id).alias("MessageTraceId"),
        (pl.lit(recipient) if recipient is not None else pl.col("recipient").fill_null("")).alias("RecipientAddress"),
    )
    return out


def check_recipient(value: str | None) -> str | None:
    """The recipient of a detail query: None (every recipient) when not given; blank is an error."""
    if value is None:
        return None
    if not value.strip():
        raise QueryError.naming(
            "{recipient_address} {value!r} has no value in it: give the recipient, "
            "or leave the option out to see every recipient's events",
            value=value,
        )
    return value.strip()


def events_for_messages(store: Path, rows: pl.DataFrame, queue_lifetime: dt.timedelta = QUEUE_LIFETIME) -> pl.DataFrame:
    """The events behind many trace rows at once (a MessageTraceDetail report), oldest first.

    rows: message rows (MESSAGE_SCHEMA columns). Each event gets the `message_trace_id` of its
    message, the messages split exactly as ingest splits them (ingest.correlate.events_of_messages,
    as message_trace_detail does for one). Message-level events (no recipient) are kept once per
    message; a recipient's events when that recipient (or the alias or address it came from) is
    among the rows. A reject without a queue id is its message's one line.
    """
    out_schema = {**EVENT_SCHEMA, "message_trace_id": pl.String}
    if not rows.height:
        return pl.DataFrame(schema=out_schema)
    first, last = rows["received"].min(), rows["received"].max()
    assert isinstance(first, dt.datetime) and isinstance(last, dt.datetime)
    messages = rows.unique("message_trace_id")
    hosts = messages["host"].drop_nulls().unique().to_list()
    events = scan_events(store, first, last + queue_lifetime).filter(pl.col("host").is_in(hosts)).collect()
    queued_messages = messages.filter(pl.col("queue_ids").fill_null("") != "")
    queued = events_of_messages(
        events.filter(pl.col("queue_id").is_not_null()),
        queued_messages.select("host", "queue_id", "received", "message_trace_id"),
        queue_lifetime,
    )
    # NOQUEUE rejects: the line at Received with the row's own fields (as _message_events)
    line = pl.struct("host", "time", "sender", pl.col("recipient").fill_null(""), "client_ip", "detail")
    own = messages.filter(pl.col("queue_ids").fill_null("") == "").select(
        "message_trace_id",
        pl.struct(
            "host",
            pl.col("received").alias("time"),
            pl.col("sender_address").alias("sender"),
            pl.col("recipient_address").fill_null("").alias("recipient"),
            pl.when(pl.col("from_ip") == "").then(None).otherwise(pl.col("from_ip")).alias("client_ip"),
            "detail",
        )
        .hash()
        .alias("_line"),
    )
    noqueue = (
        events.filter(pl.col("queue_id").is_null() & (pl.col("kind") == "reject"))
        .with_columns(line.hash().alias("_line"))
        .join(own, on="_line")
        .select(list(out_schema))
    )
    ev = pl.concat([queued, noqueue], how="vertical")
    wanted = rows.select(pl.concat_str("message_trace_id", pl.lit("|"), pl.col("recipient_lower").fill_null("")))
    key = wanted.to_series().unique().implode()

    def mine(col: str) -> pl.Expr:
        return (
            pl.concat_str("message_trace_id", pl.lit("|"), pl.col(col).str.to_lowercase()).is_in(key).fill_null(False)
        )

    # a recipient's own lines, and those of the address it was rewritten from on an earlier hop
    mine_orig = (
        ev.filter(mine("recipient") & pl.col("orig_recipient").is_not_null())
        .select(pl.concat_str("message_trace_id", pl.lit("|"), pl.col("orig_recipient").str.to_lowercase()))
        .to_series()
        .unique()
        .implode()
    )
    by_orig = pl.concat_str("message_trace_id", pl.lit("|"), pl.col("recipient").str.to_lowercase()).is_in(mine_orig)
    ev = ev.filter(
        pl.col("recipient").is_null() | mine("recipient") | mine("orig_recipient") | by_orig.fill_null(False)
    )
    return ev.sort("time", "source", "line_no")
