"""Follow a message across the organisation's own MTAs: one store, several hosts' logs.

A mail server relaying to another server whose log is in the same store logs the hop on both
sides. The first host's delivery says `status=sent (250 2.0.0 Ok: queued as X)`, to the relay's
IP (ToIP); the next host logs `X: client=<first host>[its IP]` and carries the message on under
the queue id X. msgtrace needs no list of its hosts or of their addresses: the hop is known by
what both hosts logged of it, at query time, over the stored message rows:

- the next host's message has X as its first queue id, on another host of the store;
- it was received within HOP_WINDOW of the first host's delivery line (the "sent" line is
  written once the next host answered 250, a moment after its `client=`; clocks may differ);
- it came over the network (a FromIP, the first host's address as the next host saw it, that is
  not the loopback), and its Message-ID is the first hop's (when both hosts logged one; else the
  envelope sender, when both know it);
- the recipient is the same address there, or the one the next host rewrote (orig_to=): an
  alias expanded on the next host gives the rows that host gives for it.

Exchange keys every server's events by the network-message-id, one GUID for the message in the
whole organisation (ingest.formats.exchange): a server's SEND to another server of the store
continues under the same id there, with the same conditions otherwise.

Everything here is a join over frames of rows: the window's rows, and the store's rows within
HOP_WINDOW of their deliveries (forward) or a queue lifetime before the window (backward, to
know which of the window's rows are a later hop of a message received before).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import polars as pl

from msgtrace.defaults import QUEUE_LIFETIME
from msgtrace.ingest.schema import MESSAGE_SCHEMA
from msgtrace.store import Store, days_between

# How far apart the first host's delivery line and the next host's Received may lie.
HOP_WINDOW = dt.timedelta(hours=1)
# A mail loop between two hosts of the store must end somewhere: edge -> filter host -> mailbox
# server is three hops, so eight is plenty.
MAX_HOPS = 8
# The reply of the next server, as the Postfix parser reads it for its own hand-offs.
_QUEUED_AS = r"queued as ([0-9A-Za-z]+)\)?$"
# What the entry row decides (the message as it entered), and what the last hop decides.
ENTRY_COLUMNS = [
    "organization", "message_id", "received", "sender_address", "subject", "from_ip", "size",
    "message_trace_id", "sender_lower", "host", "queue_id", "queue_ids", "format",
]  # fmt: skip
OUTCOME_COLUMNS = [c for c in MESSAGE_SCHEMA if c not in ENTRY_COLUMNS]
_KEY = ["message_trace_id", "recipient_lower"]

Rows = Callable[[dt.datetime, dt.datetime], pl.LazyFrame]


def next_queue_id() -> pl.Expr:
    """The queue id a row's delivery continues under on another server, or null: the relay's
    `queued as X` (Postfix, and any server answering so), Exchange's own network-message-id."""
    delivered = (pl.col("status") == "Delivered") & (pl.col("to_ip").fill_null("") != "")
    x = (
        pl.when(pl.col("format") == "exchange")
        .then(pl.col("queue_id"))
        .otherwise(pl.col("detail").str.extract(_QUEUED_AS, 1))
    )
    return pl.when(delivered).then(x)


def _networked() -> pl.Expr:
    from msgtrace.query.direction import loopback

    return (pl.col("from_ip").fill_null("") != "") & ~loopback("from_ip")


def links(first: pl.DataFrame, then: pl.DataFrame) -> pl.DataFrame:
    """Which rows of `then` continue which rows of `first` on the next host (the module's rules):
    message_trace_id and recipient_lower of the first row, `_next_id` and `_next_rcpt` of the
    row it continues as. Both frames hold MESSAGE_SCHEMA columns."""
    hop = first.select(
        pl.col("host").alias("_host"),
        *_KEY,
        "last_event",
        pl.col("message_id").alias("_mid"),
        pl.col("sender_lower").alias("_sender"),
        next_queue_id().alias("queue_id"),
    ).filter(pl.col("queue_id").is_not_null())
    nxt = then.filter(_networked()).select(
        "queue_id",
        "host",
        "received",
        pl.col("message_trace_id").alias("_next_id"),
        pl.col("recipient_lower").alias("_next_rcpt"),
        pl.col("orig_recipient").str.to_lowercase().alias("_orig"),
        pl.col("message_id").alias("_next_mid"),
        pl.col("sender_lower").alias("_next_sender"),
    )
    # the Message-ID when both hosts logged one; else the envelope sender, when both know it
    has_ids = (pl.col("_mid").fill_null("") != "") & (pl.col("_next_mid").fill_null("") != "")
    same_sender = pl.col("_sender").is_null() | pl.col("_next_sender").is_null()
    same_sender |= pl.col("_sender") == pl.col("_next_sender")
    same_message = pl.when(has_ids).then(pl.col("_mid") == pl.col("_next_mid")).otherwise(same_sender)
    return (
        hop.join(nxt, on="queue_id")
        .filter(
            (pl.col("host") != pl.col("_host"))
            & ((pl.col("received") - pl.col("last_event")).abs() <= HOP_WINDOW)
            & same_message
            & ((pl.col("_next_rcpt") == pl.col("recipient_lower")) | (pl.col("_orig") == pl.col("recipient_lower")))
        )
        .select(*_KEY, "_next_id", "_next_rcpt")
        .unique()
    )


def store_rows(store: Path) -> Rows:
    """The store's message rows received in [first, last] (current files of those days only)."""
    table = Store(store).messages

    def rows(first: dt.datetime, last: dt.datetime) -> pl.LazyFrame:
        found = table.files(days_between(first.date(), last.date()))
        if not found:
            return pl.LazyFrame(schema=MESSAGE_SCHEMA)
        return table.scan_files(found, glob=False).filter(pl.col("received").is_between(first, last))

    return rows


def next_hops(rows: pl.DataFrame, stored: Rows) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows of `rows` that continue on another host of the store, and the rows they continue
    as there (one hop): (links, next rows)."""
    relayed = rows.filter(next_queue_id().is_not_null())
    if not relayed.height:
        return links(relayed, relayed), relayed.clear()
    wanted = relayed.select(next_queue_id()).to_series().unique()
    lo, hi = relayed["last_event"].min(), relayed["last_event"].max()
    assert isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)
    candidates = stored(lo - HOP_WINDOW, hi + HOP_WINDOW).filter(pl.col("queue_id").is_in(wanted.implode())).collect()
    found = links(relayed, candidates)
    nxt = candidates.join(
        found.select(pl.col("_next_id").alias("message_trace_id"), pl.col("_next_rcpt").alias("recipient_lower")),
        on=_KEY,
        how="semi",
    )
    return found, nxt


def _previous_hops(rows: pl.DataFrame, stored: Rows, queue_lifetime: dt.timedelta) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The stored rows that `rows` continue on another host, one hop back: (links, those rows).
    Such a row's delivery lies within HOP_WINDOW of the later row's Received, and it was
    received at most a queue lifetime before it."""
    networked = rows.filter(_networked())
    if not networked.height:
        return links(networked, networked), networked.clear()
    lo, hi = networked["received"].min(), networked["received"].max()
    assert isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)
    before = (
        stored(lo - queue_lifetime - HOP_WINDOW, hi + HOP_WINDOW)
        .filter(
            pl.col("last_event").is_between(lo - HOP_WINDOW, hi + HOP_WINDOW)
            & pl.col("queue_id").is_not_null()
            & next_queue_id().is_in(networked["queue_id"].unique().implode())
        )
        .collect()
    )
    return links(before, networked), before


def continuations(rows: pl.DataFrame, stored: Rows, queue_lifetime: dt.timedelta = QUEUE_LIFETIME) -> pl.DataFrame:
    """The keys (message_trace_id, recipient_lower) of those `rows` that are a later hop of a row
    of the store."""
    found, _ = _previous_hops(rows, stored, queue_lifetime)
    return found.select(pl.col("_next_id").alias("message_trace_id"), pl.col("_next_rcpt").alias("recipient_lower"))


def entries(rows: pl.DataFrame, stored: Rows, queue_lifetime: dt.timedelta = QUEUE_LIFETIME) -> pl.DataFrame:
    """`rows` with every later hop replaced by the rows of the message it is a hop of, as that
    message entered the store's MTAs (hop after hop back), all its recipients included; rows that
    are no later hop stay. A MessageTraceId asked for with --follow may be a later host's (the id
    an admin of that host sees): followed, it is the message end to end, under its entry's id."""
    kept: list[pl.DataFrame] = []
    current = rows
    for _ in range(MAX_HOPS):
        found, before = _previous_hops(current, stored, queue_lifetime)
        if not found.height:
            break
        later = found.select(
            pl.col("_next_id").alias("message_trace_id"), pl.col("_next_rcpt").alias("recipient_lower")
        )
        kept.append(current.join(later, on=_KEY, how="anti"))
        current = before.join(found.select("message_trace_id").unique(), on="message_trace_id", how="semi")
    return pl.concat([*kept, current], how="vertical_relaxed").unique(_KEY, keep="first")


def follow(rows: pl.DataFrame, stored: Rows, queue_lifetime: dt.timedelta = QUEUE_LIFETIME) -> pl.DataFrame:
    """The end-to-end rows of the messages in `rows` (MESSAGE_SCHEMA): rows that are a later hop
    of another stored row are left out (their message entered elsewhere), and each recipient's
    row is replaced by the rows of its last hop in the store (status, ToIP, relay, detail...),
    with the message fields of its entry row (Received, sender, FromIP, MessageTraceId...)."""
    rows = rows.join(continuations(rows, stored, queue_lifetime), on=_KEY, how="anti")
    entry = rows.select(ENTRY_COLUMNS).unique("message_trace_id")
    current = rows.select(pl.col("message_trace_id").alias("_entry"), *MESSAGE_SCHEMA)
    done: list[pl.DataFrame] = []
    for _ in range(MAX_HOPS):
        found, nxt = next_hops(current.drop("_entry"), stored)
        if not found.height:
            break
        done.append(current.join(found.select(_KEY), on=_KEY, how="anti"))
        # each next row, with the entry of the row it continues
        carried = current.select("_entry", *_KEY).join(found, on=_KEY)
        current = carried.select(
            "_entry", pl.col("_next_id").alias("message_trace_id"), pl.col("_next_rcpt").alias("recipient_lower")
        ).join(nxt, on=_KEY)
        current = current.select("_entry", *MESSAGE_SCHEMA).unique(["_entry", "recipient_lower"], keep="first")
    last = pl.concat([*done, current], how="vertical") if done else current
    out = last.select(pl.col("_entry").alias("message_trace_id"), *OUTCOME_COLUMNS).join(
        entry, on="message_trace_id", how="left"
    )
    return out.select(list(MESSAGE_SCHEMA)).unique(_KEY, keep="first")


def hops_of(rows: pl.DataFrame, stored: Rows) -> pl.DataFrame:
    """Every stored row that continues these rows on another host, hop after hop (the detail
    view shows their events after the first host's)."""
    out: list[pl.DataFrame] = []
    current = rows
    for _ in range(MAX_HOPS):
        _, nxt = next_hops(current, stored)
        if not nxt.height:
            break
        out.append(nxt)
        current = nxt
    return pl.concat(out, how="vertical") if out else rows.clear()
