"""Events of any format -> one row per (message, recipient), by the compiled correlator
(msgtrace._core, rust/src/correlate.rs): hash maps and per-message passes, never a loop per line here.

The input must hold every event of the messages it touches (the pipeline loads earlier events
of the same queue ids from the store), so this is a pure function: the same events always give
the same rows, whatever order the files were ingested in.

1. Instances: a queue id is reused over time; a new message starts after `removed`, or after a
   silence longer than any queue lifetime.
2. Chains: a content filter hand-off (`queued as NEWQID` on the loopback) makes NEWQID's instance
   a continuation of the parent; the root of a chain is the message a trace shows.
3. Message fields come from the chain (Received, FromIP and size from the root); each
   recipient's status is its latest outcome; aliases get Expanded (several members) or None
   (one-to-one rewrite) rows; holds override; a message with no outcome yet is GettingStatus.

Python hands the Rust side the columns it compares (host, queue id and source as Arrow string
views, kind and status as small codes, flags, times, and the few rows with a next queue id, a
client IP or a recipient) and gets back, per row, the index of the event that supplies each
field; the strings are gathered here with Polars, so none is copied per row. NOQUEUE rejects (a
message per line) and the trace ids stay in Polars. Its rules are those of the Polars correlator
it replaced, kept as the reference in tests/polars_correlate.py and compared with it there.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from msgtrace import _core
from msgtrace.defaults import QUEUE_LIFETIME
from msgtrace.ingest.corebuffers import frame, views
from msgtrace.ingest.schema import EVENT_SCHEMA, MESSAGE_SCHEMA, TIME, conform
from msgtrace.ingest.traceid import message_trace_ids

# How far a re-queued message's first line may lie from the hand-off line that names it.
HANDOFF_WINDOW = dt.timedelta(hours=1)
# a hold/discard naming a recipient (Postfix milter-hold ...; to=<b>) is that recipient's outcome too
_OUTCOME_KINDS = ["deliver", "handoff", "reject", "expand", "hold"]
# Event order: by second, then by position in the log. Within one second the log's own order
# wins: RFC 3164 stamps have no fraction, and a file mixing them with RFC 3339 ones would
# otherwise put a "removed" logged after a delivery before it.
_ORDER = ["_sec", "source", "line_no"]

# the codes rust/src/correlate.rs reads (K_*, S_*): 0 null, 1 any other value
_KIND_CODES = {
    "client": 2,
    "receive": 3,
    "msgid": 4,
    "subject": 5,
    "deliver": 6,
    "handoff": 7,
    "nodata": 8,
    "bounce": 9,
    "expand": 10,
    "hold": 11,
    "reject": 12,
    "removed": 13,
    "info": 14,
}
_FINAL_OTHER = 6  # final, and neither Failed nor Quarantined
_STATUS_CODES = {
    "GettingStatus": 2,
    "Pending": 3,
    "Failed": 4,
    "Quarantined": 5,
    "Delivered": _FINAL_OTHER,
    "Expanded": _FINAL_OTHER,
    "None": _FINAL_OTHER,
    "FilteredAsSpam": _FINAL_OTHER,
}
_US = dt.timedelta(microseconds=1)


def correlate(events: pl.DataFrame, queue_lifetime: dt.timedelta = QUEUE_LIFETIME) -> pl.DataFrame:
    """Message rows (MESSAGE_SCHEMA) for every message the events belong to.

    A queue id silent for longer than `queue_lifetime` is a new message even without `removed`
    (lost lines)."""
    events = conform(events, EVENT_SCHEMA)
    standalone = events.filter(pl.col("queue_id").is_null() & pl.col("kind").eq("reject"))
    parts = [_standalone_rows(standalone.with_columns(pl.col("time").dt.truncate("1s").alias("_sec")))]
    if events.get_column("queue_id").null_count() < events.height:
        out = _run(events, queue_lifetime, split=False)
        parts.append(_queued_rows(events, frame(out["rows"])))
    rows = pl.concat(parts, how="diagonal_relaxed")
    return _finish(rows)


def message_events(
    events: pl.DataFrame,
    host: str,
    queue_id: str,
    received: dt.datetime,
    queue_lifetime: dt.timedelta = QUEUE_LIFETIME,
) -> pl.DataFrame:
    """The events of one message (its root's host, first queue id and Received): the lines of its
    own instances along its chain, without a later message that reused a queue id. The detail
    view reads these, so it splits messages exactly as correlate() does (with the same queue
    lifetime and the same compiled instance and chain assignment)."""
    ev, insts = _split(events, queue_lifetime)
    if not ev.height:
        return ev.select(list(EVENT_SCHEMA))
    mine = insts.filter(
        (pl.col("host") == host) & (pl.col("queue_id") == queue_id) & (pl.col("inst_start") == received)
    ).get_column("root")
    return ev.filter(pl.col("root").is_in(mine.implode())).select(list(EVENT_SCHEMA))


def events_of_messages(
    events: pl.DataFrame, messages: pl.DataFrame, queue_lifetime: dt.timedelta = QUEUE_LIFETIME
) -> pl.DataFrame:
    """message_events for many messages at once: `messages` has host, queue_id (the first),
    received and message_trace_id; each event of theirs comes back with its message_trace_id
    (a historical search's detail report reads these)."""
    out = [*EVENT_SCHEMA, "message_trace_id"]
    ev, insts = _split(events, queue_lifetime)
    if not ev.height or not messages.height:
        return ev.select(list(EVENT_SCHEMA)).with_columns(pl.lit(None, pl.String).alias("message_trace_id")).head(0)
    keys = messages.select("host", "queue_id", pl.col("received").alias("inst_start"), "message_trace_id")
    roots = insts.join(keys, on=["host", "queue_id", "inst_start"]).select("root", "message_trace_id").unique("root")
    return ev.join(roots, on="root").select(out)


def _split(events: pl.DataFrame, queue_lifetime: dt.timedelta) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The events with a queue id, each with its `root` (the instance of its message's first
    queue id), and one row per instance: host, queue_id, inst_start, root. An event repeats
    where the Polars correlator's join on (instance, next queue id) repeated it (a parent that
    handed the same queue id to two of its instances), so the detail view lists the same lines."""
    ev = conform(events, EVENT_SCHEMA)
    if ev.get_column("queue_id").null_count() == ev.height:
        return ev.clear().with_columns(pl.lit(None, pl.Int64).alias("root")), pl.DataFrame(
            schema={"host": pl.String, "queue_id": pl.String, "inst_start": TIME, "root": pl.Int64}
        )
    split = _run(ev, queue_lifetime, split=True)["split"]
    inst, copies, first, start, root = (
        frame([split[k]]).to_series() for k in ("inst", "copies", "first", "inst_start", "root")
    )
    insts = pl.DataFrame(
        {
            "host": ev.get_column("host").gather(first),
            "queue_id": ev.get_column("queue_id").gather(first),
            "inst_start": _time(start),
            "root": root,
        }
    )
    rows = pl.Series(np.repeat(np.arange(ev.height, dtype=np.int64), copies.to_numpy()))
    ev = ev[rows].with_columns(root.gather(inst.gather(rows)).alias("root"))
    return ev, insts


def _time(micros: pl.Series) -> pl.Series:
    return micros.cast(pl.Datetime("us")).dt.replace_time_zone("UTC").cast(TIME)


def _sparse(events: pl.DataFrame, where: pl.Series, cols: list[str]) -> tuple[bytes, list[Any]]:
    """The rows (int64) where `where` holds, and those rows of some string columns."""
    rows = where.arg_true()
    return rows.cast(pl.Int64).to_numpy().tobytes(), [views(events.get_column(c).gather(rows)) for c in cols]


def _run(events: pl.DataFrame, queue_lifetime: dt.timedelta, split: bool) -> dict[str, Any]:
    """The compiled correlator over conformed events."""
    return _core.correlate_events(_inputs(events), queue_lifetime // _US, HANDOFF_WINDOW // _US, split)


def _inputs(events: pl.DataFrame) -> dict[str, Any]:
    """The columns the compiled correlator reads (rust/src/correlate_py.rs), from conformed events."""
    time = events.get_column("time")
    if time.null_count():
        raise ValueError("correlate: events without a time (every parser gives one)")
    kind, status, sender = pl.col("kind"), pl.col("status"), pl.col("sender")
    queued = pl.col("queue_id").is_not_null()
    bit = lambda cond, b: cond.fill_null(False).cast(pl.UInt8) * b  # noqa: E731
    codes = events.select(
        _code(kind, _KIND_CODES).alias("kind"),
        _code(status, _STATUS_CODES).alias("status"),
        # one byte of flags a row (rust/src/correlate.rs F_*)
        (
            bit(pl.col("message_id").is_not_null(), 1)
            + bit(pl.col("subject").is_not_null(), 2)
            + bit(pl.col("size").is_not_null(), 4)
            + bit(pl.col("program").str.ends_with("cleanup"), 8)
            + bit(sender.is_not_null(), 16)
            # a bare local part: no "@" and not the null sender ""
            + bit(~(sender.str.contains("@", literal=True) | (sender == "")), 32)
            + bit(pl.col("nrcpt").is_not_null(), 64)
            + bit(pl.col("line_no").is_not_null(), 128)
        ).alias("flags"),
        pl.col("line_no").fill_null(0),
        pl.col("nrcpt").fill_null(0),
        # the rows of the three sparse subsets, found in the same pass
        (queued & pl.col("next_queue_id").is_not_null()).alias("_hand"),
        (queued & kind.is_in(["client", "receive"]) & pl.col("client_ip").is_not_null()).alias("_client"),
        (queued & kind.is_in(_OUTCOME_KINDS) & pl.col("recipient").is_not_null()).alias("_rcpt"),
    )
    return {
        "time": time.to_physical().to_numpy().tobytes(),
        "line_no": codes.get_column("line_no").to_numpy().tobytes(),
        "nrcpt": codes.get_column("nrcpt").to_numpy().tobytes(),
        "kind": codes.get_column("kind").to_numpy().tobytes(),
        "status": codes.get_column("status").to_numpy().tobytes(),
        "flags": codes.get_column("flags").to_numpy().tobytes(),
        "host": views(events.get_column("host")),
        "queue_id": views(events.get_column("queue_id")),
        "source": views(events.get_column("source")),
        "hand": _sparse(events, codes.get_column("_hand"), ["next_queue_id", "to_ip"]),
        "client": _sparse(events, codes.get_column("_client"), ["client_ip"]),
        "rcpt": _sparse(events, codes.get_column("_rcpt"), ["recipient", "orig_recipient"]),
    }


def _code(col: pl.Expr, codes: dict[str, int]) -> pl.Expr:
    """A string column as its code: 0 null, 1 a value not in `codes` (replace_strict's default
    would catch nulls too)."""
    return pl.when(col.is_null()).then(0).otherwise(col.replace_strict(codes, default=1)).cast(pl.UInt8)


def _queued_rows(events: pl.DataFrame, out: pl.DataFrame) -> pl.DataFrame:
    """The rows of the messages with a queue id, their fields gathered from the events the Rust
    side named (a null index: a null field)."""

    def take(col: str, idx: str) -> pl.Series:
        return events.get_column(col).gather(out.get_column(idx))

    s = out.get_column
    rows = pl.DataFrame(
        {
            "received": _time(s("received")),
            # hashed in the correlator, once a message (its key: host|queue id)
            "message_trace_id": s("message_trace_id"),
            "host": take("host", "msg"),
            "queue_id": take("queue_id", "msg"),
            "format": take("format", "msg"),
            "organization": take("organization", "msg"),
            "queue_ids": s("queue_ids").cast(pl.String),
            "from_ip": take("client_ip", "from_ip"),
            "size": take("size", "size"),
            "sender_address": take("sender", "sender"),
            "message_id": take("message_id", "message_id"),
            "subject": take("subject", "subject"),
            # a recipient's latest outcome, or an alias (its first orig_to=), or none yet
            "recipient_address": pl.select(
                pl.coalesce(take("recipient", "recipient"), take("orig_recipient", "member_orig"), pl.lit(""))
            ).to_series(),
            # the outcome event (a hold that caught the row, else the latest outcome), an
            # alias's own status and detail, or no outcome yet
            "status": pl.select(
                pl.coalesce(take("status", "outcome"), s("status_text").cast(pl.String), pl.lit("GettingStatus"))
            ).to_series(),
            "detail": pl.select(pl.coalesce(take("detail", "outcome"), s("detail_text").cast(pl.String))).to_series(),
            "to_ip": take("to_ip", "latest"),
            "relay": take("relay", "latest"),
            "dsn": take("dsn", "latest"),
            "delay": take("delay", "latest"),
            "orig_recipient": take("orig_recipient", "orig"),
            "last_event": _time(s("last_event")),
            "incomplete": s("incomplete"),
        }
    )
    return rows


def _standalone_rows(ev: pl.DataFrame) -> pl.DataFrame:
    """NOQUEUE-style rejects: each line is a message of its own."""
    rows = ev.sort(_ORDER).select(
        pl.col("time").alias("received"),
        "host",
        "format",
        "organization",
        pl.lit("").alias("queue_id"),
        pl.lit("").alias("queue_ids"),
        pl.lit("").alias("message_id"),
        pl.col("sender").alias("sender_address"),
        pl.col("recipient").fill_null("").alias("recipient_address"),
        "subject",
        "status",
        "to_ip",
        pl.col("client_ip").alias("from_ip"),
        "size",
        "orig_recipient",
        "relay",
        "dsn",
        "detail",
        "delay",
        pl.col("time").alias("last_event"),
        pl.lit(False).alias("incomplete"),
        _standalone_key(),
    )
    ids = message_trace_ids(rows.get_column("_key"), rows.get_column("received"))
    return rows.drop("_key").with_columns(ids)


def _standalone_key() -> pl.Expr:
    """A NOQUEUE reject's identity from its own fields, never its file or line number (the same
    lines split into other files must give the same ids): host, client, sender, recipient and
    reason, plus its rank among identical rejects of the same instant (the received time is
    hashed with the key), counted in log order."""
    fields = pl.concat_str(
        [pl.col(c).fill_null("\x00") for c in ["host", "client_ip", "sender", "recipient", "detail"]], separator="|"
    )
    same = [pl.col("time"), fields]
    rank = pl.int_range(pl.len(), dtype=pl.UInt32).over(same)  # the frame is in log order (_standalone_rows)
    return pl.concat_str([pl.lit("noqueue"), fields, rank.cast(pl.String)], separator="|").alias("_key")


def _finish(rows: pl.DataFrame) -> pl.DataFrame:
    # A Postfix sender_address stays null where no line names the sender (the message's first
    # lines lie before the log): unknown, which is not the null sender "" of a bounce. (The other
    # formats keep "" there for now: their golden behaviour is unchanged.)
    sender = pl.col("sender_address")
    rows = rows.with_columns(
        pl.when(pl.col("format") == "postfix").then(sender).otherwise(sender.fill_null("")).alias("sender_address"),
        pl.col("message_id").fill_null(""),
        pl.col("subject").fill_null(""),
        pl.col("to_ip").fill_null(""),
        pl.col("from_ip").fill_null(""),
        pl.col("organization").fill_null(""),
        pl.col("host").fill_null(""),
    )
    rows = rows.with_columns(
        pl.col("sender_address").str.to_lowercase().alias("sender_lower"),
        pl.col("recipient_address").str.to_lowercase().alias("recipient_lower"),
    )
    return conform(rows, MESSAGE_SCHEMA).sort(["received", "message_trace_id", "recipient_lower"])
