"""The contract between ingest and query: column names, dtypes, statuses and the store layout.

Two tables live in a store, both hive-partitioned by the UTC date of their time column:

    <store>/messages/date=YYYY-MM-DD/g000001-c.parquet   one row per (message, recipient)
    <store>/events/date=YYYY-MM-DD/g000002-a.parquet     one row per relevant log line

Every file is written with the explicit schema below, so an all-null column never becomes type Null.
See ``msgtrace.store`` for how files inside a partition are named and which ones are current.
"""

from __future__ import annotations

import polars as pl

UTC = "UTC"
TIME = pl.Datetime("us", UTC)

# The eight statuses of Get-MessageTrace, in the order the contract lists them.
STATUSES: tuple[str, ...] = (
    "GettingStatus",
    "Pending",
    "Delivered",
    "Failed",
    "Expanded",
    "Quarantined",
    "FilteredAsSpam",
    "None",
)

# What a format parser emits: one row per relevant log line, whatever the mail server.
# `kind` says what the line contributes to its message (see KINDS); the correlator
# (ingest.correlate) only ever reads this table, so it is format-agnostic.
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "time": TIME,  # UTC
    "host": pl.String,  # the mail host that logged the line
    "organization": pl.String,  # from --organization, else derived from host
    "format": pl.String,  # postfix | exim | sendmail | exchange
    "program": pl.String,  # smtpd, qmgr, smtp, exim, sm-mta, RECEIVE ...
    "queue_id": pl.String,  # per-server message key (Postfix/Sendmail queue id, Exim id, Exchange internal id); null for NOQUEUE
    "kind": pl.String,  # see KINDS
    "status": pl.String,  # one of STATUSES when the line decides a recipient's status, else null
    "sender": pl.String,  # envelope sender as logged, without <>; "" for the null sender
    "recipient": pl.String,  # envelope recipient, as logged
    "orig_recipient": pl.String,  # the address before alias/forward rewriting (Postfix orig_to=, Exim "final <orig>")
    "message_id": pl.String,  # Message-ID header with its angle brackets
    "subject": pl.String,
    "client_host": pl.String,
    "client_ip": pl.String,  # FromIP
    "relay": pl.String,  # next hop name (or transport) for deliveries
    "to_ip": pl.String,  # ToIP
    "size": pl.Int64,
    "nrcpt": pl.Int64,
    "delay": pl.Float64,  # seconds
    "dsn": pl.String,  # e.g. 2.0.0
    "detail": pl.String,  # human text: response, reject reason (truncated)
    "next_queue_id": pl.String,  # kind=handoff/bounce: the queue id the message continues under; deliver: the
    # queue id the receiving server named ("queued as"), a hand-off when it is this host's own
    "source": pl.String,  # fingerprint of the source file (see ingest.reader)
    "line_no": pl.Int64,  # 0-based line number in that source: (source, line_no) identifies the event
}

# What identifies an event: its line, and which of the line's events it is (a Sendmail `to=<a>,<b>`
# or an Exchange `a;b` line gives one event per recipient). Re-read lines dedupe on this.
EVENT_KEY: list[str] = ["source", "line_no", "kind", "recipient"]

# Event kinds understood by the correlator.
KINDS: dict[str, str] = {
    "client": "connection that submitted the message: client_host, client_ip (Postfix smtpd client=)",
    "receive": "the message was accepted: any of sender, size, nrcpt, message_id, subject, client_ip "
    "(Postfix pickup/qmgr from=, Exim <=, Sendmail from=, Exchange RECEIVE)",
    "msgid": "the Message-ID header (Postfix cleanup message-id=)",
    "subject": "the Subject header, and maybe the Message-ID (Postfix header_checks WARN/INFO, amavis Passed/Blocked)",
    "deliver": "an outcome for one recipient: status plus relay, to_ip, dsn, delay, detail",
    "handoff": "delivery to a content filter (or a local forward) that re-queued the message as next_queue_id: "
    "no row of its own",
    "nodata": "the session that gave this queue id ended without DATA (a probe): no message",
    "bounce": "this message caused a DSN queued as next_queue_id (informational)",
    "expand": "recipient is a group/alias whose members are listed by other deliver events (orig_recipient)",
    "hold": "the whole message was held (Quarantined) or discarded (FilteredAsSpam); status says which",
    "reject": "a rejection; with queue_id null it is a message of its own (NOQUEUE), status None or FilteredAsSpam",
    "removed": "the queue id is finished (Postfix removed, Exim Completed): the next event with it is a new message",
    "info": "anything else worth showing in the detail view",
}

# One row per (message, recipient): the columns of Get-MessageTrace first, then ours.
MESSAGE_SCHEMA: dict[str, pl.DataType] = {
    "organization": pl.String,
    "message_id": pl.String,
    "received": TIME,
    "sender_address": pl.String,  # "" for the null sender <>; null when no line names it (Postfix: unknown)
    "recipient_address": pl.String,
    "subject": pl.String,
    "status": pl.String,
    "to_ip": pl.String,
    "from_ip": pl.String,
    "size": pl.Int64,
    "message_trace_id": pl.String,
    # --- beyond the contract's columns ---
    "sender_lower": pl.String,  # for case-insensitive matching without lowering at query time
    "recipient_lower": pl.String,
    "host": pl.String,
    "queue_id": pl.String,  # the first queue id of the message
    "queue_ids": pl.String,  # every queue id the message passed through, space-separated (content filters)
    "format": pl.String,
    "orig_recipient": pl.String,
    "relay": pl.String,
    "dsn": pl.String,
    "detail": pl.String,  # last response / reason
    "delay": pl.Float64,
    "last_event": TIME,  # time of the event that set the status
    "incomplete": pl.Boolean,  # the message's start or end lies outside the logs ingested so far
}

# Output column names, in the contract's order (StartDate, EndDate and Index are added by the query).
CONTRACT_COLUMNS: dict[str, str] = {
    "organization": "Organization",
    "message_id": "MessageId",
    "received": "Received",
    "sender_address": "SenderAddress",
    "recipient_address": "RecipientAddress",
    "subject": "Subject",
    "status": "Status",
    "to_ip": "ToIP",
    "from_ip": "FromIP",
    "size": "Size",
    "message_trace_id": "MessageTraceId",
}

MESSAGES_DIR = "messages"
EVENTS_DIR = "events"
PARTITION_KEY = "date"


def unique_events(ev: pl.DataFrame) -> pl.DataFrame:
    """The events without repeats of an EVENT_KEY, the first of each kept, in order.

    Repeats are rare (lines read twice after a crash), and a unique over the key costs a hash and
    a copy of every column. A flush's parsed lines of one file come in line order, so only the
    events of one line can repeat a key, and those few are checked. Otherwise: equal keys have
    equal hashes, so when no two keys share a 64-bit hash there is nothing to remove, and only
    the hash was paid for.
    """
    if ev.height < 2 or _unique_in_line_order(ev):
        return ev
    if not ev.select(_key_hash(EVENT_KEY).is_duplicated().any()).item():
        return ev
    return ev.unique(EVENT_KEY, keep="first", maintain_order=True)


def _key_hash(columns: list[str]) -> pl.Expr:
    # one hash per key column, seeded apart and combined: cheaper than hashing a struct
    return pl.reduce(lambda a, b: a ^ b, [pl.col(c).hash(seed=i + 1) for i, c in enumerate(columns)])


def _unique_in_line_order(ev: pl.DataFrame) -> bool:
    """Whether the events are of one source, in line order, and no two events of one line share
    kind and recipient (False: not known, check otherwise)."""
    source, line_no = ev.get_column("source"), ev.get_column("line_no")
    if source.null_count() or line_no.null_count() or not line_no.is_sorted():
        return False
    if source.min() != source.max():
        return False
    step = pl.col("line_no").diff().fill_null(1)
    shared = (step == 0) | (step.shift(-1) == 0)  # the events of lines with more than one
    # narrowed first: a filter copies every column it keeps (most of them, where lines have
    # several events: Exchange's recipients)
    lines = ev.select("line_no", "kind", "recipient").filter(shared)
    return not lines.height or not lines.select(_key_hash(lines.columns).is_duplicated().any()).item()


def empty_events() -> pl.DataFrame:
    """An events frame with no rows and the full schema."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


def conform(df: pl.DataFrame | pl.LazyFrame, schema: dict[str, pl.DataType]):
    """Select exactly the schema's columns, in order, cast; missing ones become typed nulls."""
    names = set(df.collect_schema().names())
    return df.select([(pl.col(c).cast(t) if c in names else pl.lit(None, dtype=t)).alias(c) for c, t in schema.items()])
