"""The Polars correlator the compiled one (msgtrace._core, ingest/correlate.py) replaced, kept unchanged as
the reference tests/test_correlate_rust.py compares it with.

Events of any format -> one row per (message, recipient), with group_by/join, never a loop per line.

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
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from msgtrace.defaults import QUEUE_LIFETIME
from msgtrace.ingest.schema import EVENT_SCHEMA, MESSAGE_SCHEMA, conform
from tests.numpy_traceid import message_trace_ids

# How far a re-queued message's first line may lie from the hand-off line that names it.
HANDOFF_WINDOW = "1h"
_FINAL = ["Delivered", "Failed", "Expanded", "None", "FilteredAsSpam", "Quarantined"]
# a hold/discard naming a recipient (Postfix milter-hold ...; to=<b>) is that recipient's outcome too
_OUTCOME_KINDS = ["deliver", "handoff", "reject", "expand", "hold"]
# Event order: by second, then by position in the log. Within one second the log's own order
# wins: RFC 3164 stamps have no fraction, and a file mixing them with RFC 3339 ones would
# otherwise put a "removed" logged after a delivery before it.
_ORDER = ["_sec", "source", "line_no"]


def correlate(events: pl.DataFrame, queue_lifetime: dt.timedelta = QUEUE_LIFETIME) -> pl.DataFrame:
    """Message rows (MESSAGE_SCHEMA) for every message the events belong to.

    A queue id silent for longer than `queue_lifetime` is a new message even without `removed`
    (lost lines)."""
    events = conform(events, EVENT_SCHEMA).with_columns(pl.col("time").dt.truncate("1s").alias("_sec"))
    queued = events.filter(pl.col("queue_id").is_not_null())
    standalone = events.filter(pl.col("queue_id").is_null() & pl.col("kind").eq("reject"))
    parts = [_standalone_rows(standalone)]
    if queued.height:
        ev, insts = _instances(queued, queue_lifetime)
        parts.append(_queued_rows(*_chains(ev, insts)))
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
    lifetime)."""
    ev = conform(events, EVENT_SCHEMA).with_columns(pl.col("time").dt.truncate("1s").alias("_sec"))
    ev = ev.filter(pl.col("queue_id").is_not_null())
    if not ev.height:
        return ev.select(list(EVENT_SCHEMA))
    ev, insts = _chains(*_instances(ev, queue_lifetime))
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
    ev = conform(events, EVENT_SCHEMA).with_columns(pl.col("time").dt.truncate("1s").alias("_sec"))
    ev = ev.filter(pl.col("queue_id").is_not_null())
    if not ev.height or not messages.height:
        return ev.select(list(EVENT_SCHEMA)).with_columns(pl.lit(None, pl.String).alias("message_trace_id")).head(0)
    ev, insts = _chains(*_instances(ev, queue_lifetime))
    keys = messages.select("host", "queue_id", pl.col("received").alias("inst_start"), "message_trace_id")
    roots = insts.join(keys, on=["host", "queue_id", "inst_start"]).select("root", "message_trace_id").unique("root")
    return ev.join(roots, on="root").select(out)


def _instances(ev: pl.DataFrame, reuse_gap: dt.timedelta) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Add `inst` (an integer per message instance) and `inst_start` (its first event's time);
    also return one row per instance: inst, host, queue_id, inst_start and its first event's
    place in _ORDER.

    Sorted by queue id then time, an instance starts where the queue id changes, after a
    `removed`, or after a long silence; plain shifts over the sorted frame, no window functions.
    Only the columns this needs are sorted; the events keep their order and get the two columns
    back by row index (sorting every column of the events cost more than the rest of this).
    """
    # sort on a 64-bit hash of (host, queue id): numbers sort far faster than strings; the
    # equality test below still compares the strings, so a collision cannot merge two messages
    key = ev.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
        pl.struct("host", "queue_id").hash().alias("_h"),
        "host",
        "queue_id",
        "kind",
        "time",
        *_ORDER,
    ).sort(["_h", *_ORDER])
    same = (pl.col("host") == pl.col("host").shift(1)) & (pl.col("queue_id") == pl.col("queue_id").shift(1))
    new = (
        ~same.fill_null(False)
        # after `removed`, but not within the same second: events of one second may come from two
        # files (a rotation mid-message) whose order is not known, and Postfix cannot hand the
        # same queue id (microseconds + inode) to a new message within the second it freed it
        | (pl.col("kind").shift(1).eq("removed") & (pl.col("_sec") > pl.col("_sec").shift(1))).fill_null(False)
        | ((pl.col("time") - pl.col("time").shift(1)) > reuse_gap).fill_null(False)
    )
    key = key.with_columns(new.alias("_new"))
    key = key.with_columns(
        pl.col("_new").cast(pl.Int64).cum_sum().alias("inst"),
        pl.when(pl.col("_new")).then(pl.col("time")).otherwise(None).forward_fill().alias("inst_start"),
    )
    insts = key.filter(pl.col("_new")).select("inst", "host", "queue_id", "inst_start", *_ORDER)
    back = key.select("_row", "inst", "inst_start").sort("_row").drop("_row")
    return ev.hstack(back), insts


def _chains(ev: pl.DataFrame, insts: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Add `root`: the instance of the first queue id of the message (content filters re-queue),
    and `_linked`: a hand-off whose continuation was found, which is then not an outcome itself.
    The instances get their root too."""
    # A hand-off names its continuation; so may a delivery whose receiver answered "queued as
    # NEWQID" (`deliver` with next_queue_id): it is one when NEWQID, on this host, was handed over
    # by the very IP it was sent to (a filter on the host's own address, multi-instance Postfix),
    # else NEWQID is the other server's queue and a local one of the same name is a coincidence.
    kind = pl.col("kind")
    hand = ev.filter(kind.is_in(["handoff", "deliver"]) & pl.col("next_queue_id").is_not_null()).select(
        "host", pl.col("next_queue_id").alias("queue_id"), "time", pl.col("inst").alias("parent"), "kind", "to_ip"
    )
    links = pl.DataFrame(schema={"inst": pl.Int64, "parent": pl.Int64, "queue_id": pl.String})
    if hand.height:
        clients = (
            ev.select("inst", "kind", "client_ip", *_ORDER)
            .filter(kind.eq("client") & pl.col("client_ip").is_not_null())
            .group_by("inst")
            .agg(pl.col("client_ip").sort_by(_ORDER).first().alias("_client_ip"))
        )
        links = (
            hand.sort("time")
            .join_asof(
                insts.select("inst", "host", "queue_id", "inst_start").sort("inst_start"),
                left_on="time",
                right_on="inst_start",
                by=["host", "queue_id"],
                strategy="nearest",
                tolerance=HANDOFF_WINDOW,
                check_sortedness=False,
            )
            .join(clients, on="inst", how="left")
            .filter(pl.col("inst").is_not_null() & (pl.col("inst") != pl.col("parent")))
            .filter(kind.eq("handoff") | (pl.col("_client_ip") == pl.col("to_ip")).fill_null(False))
            .unique("inst", keep="first")
            .select("inst", "parent", "queue_id")
        )
    roots = insts.select("inst", pl.col("inst").alias("root"))
    up = links.select(pl.col("inst").alias("root"), pl.col("parent").alias("_up"))
    for _ in range(4):  # chains are short: smtpd -> amavis -> dkim signer at most
        roots = roots.join(up, on="root", how="left").select("inst", pl.coalesce("_up", "root").alias("root"))
    found = links.select(
        pl.col("parent").alias("inst"), pl.col("queue_id").alias("next_queue_id"), pl.lit(True).alias("_linked")
    )
    ev = (
        ev.join(roots, on="inst", how="left")
        .join(found, on=["inst", "next_queue_id"], how="left")
        .with_columns((pl.col("_linked").fill_null(False) & kind.is_in(["handoff", "deliver"])).alias("_linked"))
    )
    return ev, insts.join(roots, on="inst", how="left")


def _first_per_root(ev: pl.DataFrame, kinds: list[str], col: str, name: str) -> pl.DataFrame:
    """The first non-null value of a column among the events of some kinds, per root."""
    # narrowed before filtering: a filter copies every column it keeps
    sub = ev.select("root", "kind", "time", col).filter(pl.col("kind").is_in(kinds) & pl.col(col).is_not_null())
    return sub.group_by("root").agg(pl.col(col).sort_by("time").first().alias(name))


def _queued_rows(ev: pl.DataFrame, insts: pl.DataFrame) -> pl.DataFrame:
    # Per-field subsets (a handful of events per message) instead of one wide aggregation over all events.
    is_root = pl.col("inst") == pl.col("root")
    # narrowed before filtering: a filter copies every column it keeps
    rooted = ev.select(
        "root",
        "inst",
        "inst_start",
        "host",
        "queue_id",
        "format",
        "organization",
        "kind",
        "time",
        "client_ip",
        "size",
        "nrcpt",
    ).filter(is_root)
    msgs = (
        rooted.group_by("root")
        .agg(
            pl.col("inst_start").first().alias("received"),
            pl.col("host").first(),
            pl.col("queue_id").first(),
            pl.col("format").first(),
            pl.col("organization").first(),
            pl.col("kind").is_in(["client", "receive"]).any().alias("_has_start"),
            # only lines we could not interpret (foreign output under a postfix tag): no message
            pl.col("kind").ne("info").any().alias("_has_state"),
            # a session that ended without DATA (a probe) and gave nothing but client=: no message
            (pl.col("kind").eq("nodata").any() & pl.col("kind").is_in(["client", "info", "nodata"]).all()).alias(
                "_probe"
            ),
        )
        .filter(pl.col("_has_state") & ~pl.col("_probe"))
    )
    # the queue ids in the order they first appear: one instance each, by its first event
    queue_ids = insts.group_by("root").agg(
        pl.col("queue_id").sort_by(_ORDER).unique(maintain_order=True).str.join(" ").alias("queue_ids")
    )
    chain = (
        ev.select("root", "kind", "time", "program")
        .group_by("root")
        .agg(
            # Postfix cleanup rejecting the message (milter-reject, header_checks REJECT) ends it:
            # it never reaches the queue, so no `removed` follows
            (pl.col("kind").eq("removed") | (pl.col("kind").eq("reject") & pl.col("program").str.ends_with("cleanup")))
            .any()
            .alias("_has_end"),
            pl.col("time").max().alias("_last_time"),
        )
    )
    fields = [
        queue_ids,
        chain,
        _first_per_root(rooted, ["client", "receive"], "client_ip", "from_ip"),
        _first_per_root(rooted, ["receive"], "size", "size"),
        _first_per_root(rooted, ["receive"], "nrcpt", "_nrcpt"),
        _sender_per_root(ev),
        # the cleanup line first; a content filter's verdict line (amavis) fills it when that is missing
        _first_per_root(ev, ["msgid", "receive", "subject"], "message_id", "message_id"),
        _first_per_root(ev, ["subject", "receive"], "subject", "subject"),
        _first_per_root(ev, ["receive"], "size", "_chain_size"),
    ]
    for f in fields:
        msgs = msgs.join(f, on="root", how="left")
    msgs = msgs.with_columns(pl.coalesce("size", "_chain_size").alias("size"))
    rcpt = _recipient_rows(ev)
    rows = msgs.join(rcpt, on="root", how="left")
    rows = _apply_holds(rows, ev)
    # The end is outside the input while an outcome is open (deferred, handed to a filter not seen
    # since). Without `removed`, it is in only when every recipient qmgr counted has an outcome and
    # none is held (a release may follow): the pipeline keeps incomplete messages open, and a
    # message closed too early would split in two when its next line arrives in a later flush.
    final = pl.col("status").is_in(_FINAL).fill_null(False)
    outcomes = pl.col("_outcome").sum().over("root")
    held = pl.col("status").eq("Quarantined").any().over("root")
    counted = pl.col("_nrcpt").is_not_null() & (outcomes >= pl.col("_nrcpt")) & ~held
    ended = final.all().over("root") & (pl.col("_has_end") | counted)
    incomplete = ~pl.col("_has_start") | ~ended
    rows = rows.with_columns(
        pl.col("recipient_address").fill_null(""),
        pl.col("status").fill_null("GettingStatus"),
        pl.col("last_event").fill_null(pl.col("_last_time")),
    ).with_columns(incomplete.alias("incomplete"))
    return rows.with_columns(pl.concat_str([pl.col("host"), pl.col("queue_id")], separator="|").alias("_key"))


def _sender_per_root(ev: pl.DataFrame) -> pl.DataFrame:
    """The envelope sender: from the receive event that has the size (Postfix qmgr, rewritten to a
    full address), else any receive event (pickup's raw `from=<root>`), else a reject or hold line."""
    sub = (
        ev.select("root", "sender", "time", "kind", "size")
        .filter(pl.col("sender").is_not_null())
        .select(
            "root",
            "sender",
            "time",
            pl.when(pl.col("kind").eq("receive") & pl.col("size").is_not_null())
            .then(0)
            .when(pl.col("kind").eq("receive"))
            .then(1)
            .otherwise(2)
            .alias("_rank"),
            # a qualified address beats a bare local part (Sendmail's MSP logs from=alice, the MTA from=<alice@host>)
            ~(pl.col("sender").str.contains("@", literal=True) | (pl.col("sender") == "")).alias("_bare"),
        )
    )
    return sub.group_by("root").agg(
        pl.col("sender").sort_by(["_bare", "_rank", "time"]).first().alias("sender_address")
    )


def _recipient_rows(ev: pl.DataFrame) -> pl.DataFrame:
    """Latest outcome per (root, recipient), plus Expanded / None rows for aliases."""
    cols = ["root", "kind", "recipient", "orig_recipient", "status", "to_ip", "relay", "dsn", "detail", "delay", "time"]
    # linked hand-offs are no outcome, but the orig_to= they carry is the original address
    # (a content filter hop logs it where the final delivery may not)
    every = ev.select(*cols, *_ORDER, "_linked").filter(
        pl.col("kind").is_in(_OUTCOME_KINDS) & pl.col("recipient").is_not_null()
    )
    # "no outcome yet" (Exchange lists recipients on RECEIVE, again on the next server) never
    # replaces an outcome: decided events sort after undecided ones, so last() is the latest decision
    every = every.with_columns(
        pl.col("recipient").str.to_lowercase().alias("_rl"),
        pl.col("status").ne("GettingStatus").fill_null(True).alias("_decided"),
    )
    out = every.filter(~pl.col("_linked"))
    latest = (
        out.sort(["_decided", *_ORDER])
        .group_by(["root", "_rl"])
        .agg(
            pl.col("recipient").last().alias("recipient_address"),
            pl.col("status").last(),
            pl.col("to_ip").last(),
            pl.col("relay").last(),
            pl.col("dsn").last(),
            pl.col("detail").last(),
            pl.col("delay").last(),
            pl.col("orig_recipient").drop_nulls().last().alias("orig_recipient"),
            pl.col("time").last().alias("last_event"),
        )
        .with_columns(pl.lit(1).alias("_outcome"))
    )
    members = (
        every.filter(pl.col("kind").ne("expand") & pl.col("orig_recipient").is_not_null())
        .with_columns(pl.col("orig_recipient").str.to_lowercase().alias("_ol"))
        # the same address, or a bare local part qualified (orig_to=<root>, to=<root@host>): no rewrite
        .filter((pl.col("_ol") != pl.col("_rl")) & ~pl.col("_rl").str.starts_with(pl.col("_ol") + "@"))
        .group_by(["root", "_ol"])
        .agg(
            pl.col("orig_recipient").first().alias("recipient_address"),
            pl.col("_rl").n_unique().alias("_members"),
            pl.col("recipient").first().alias("_member"),
            pl.col("time").min().alias("last_event"),
        )
        .with_columns(
            pl.when(pl.col("_members") > 1).then(pl.lit("Expanded")).otherwise(pl.lit("None")).alias("status"),
            pl.when(pl.col("_members") > 1)
            .then(pl.format("expanded to {} recipients", pl.col("_members")))
            .otherwise(pl.format("redirected to {}", pl.col("_member")))
            .alias("detail"),
        )
        .rename({"_ol": "_rl"})
        .drop("_members", "_member")
    )
    # an alias that is also delivered to itself keeps its own delivery row
    members = members.join(latest.select("root", "_rl"), on=["root", "_rl"], how="anti")
    return pl.concat([latest, members], how="diagonal_relaxed").drop("_rl")


def _apply_holds(rows: pl.DataFrame, ev: pl.DataFrame) -> pl.DataFrame:
    """A hold/discard/expiry decides the status of recipients it caught.

    Expiry (Failed) only replaces outcomes still open. A quarantine or spam drop also replaces a
    "sent" logged just after it (amavis decides, then answers 250 to Postfix), but not a delivery
    that came well after (a release from hold).
    """
    # a reject naming no recipient (Sendmail check_mail, milter at DATA) refuses the whole message
    whole = pl.col("kind").eq("hold") | (pl.col("kind").eq("reject") & pl.col("recipient").is_null())
    holds = ev.select("root", "kind", "recipient", "status", "time", "detail", *_ORDER)
    holds = holds.filter(whole & pl.col("status").is_not_null()).sort(_ORDER)
    holds = holds.group_by("root").agg(
        pl.col("status").last().alias("_hold"),
        pl.col("time").last().alias("_hold_time"),
        pl.col("detail").last().alias("_hold_detail"),
    )
    rows = rows.join(holds, on="root", how="left")
    open_ = pl.col("status").is_null() | pl.col("status").is_in(["GettingStatus", "Pending"])
    caught = pl.col("_hold").is_not_null() & (
        open_
        | (pl.col("_hold").ne("Failed") & (pl.col("last_event") <= pl.col("_hold_time") + pl.duration(seconds=10)))
    )
    return rows.with_columns(
        pl.when(caught).then(pl.col("_hold")).otherwise(pl.col("status")).alias("status"),
        pl.when(caught).then(pl.col("_hold_detail")).otherwise(pl.col("detail")).alias("detail"),
    )


def _standalone_rows(ev: pl.DataFrame) -> pl.DataFrame:
    """NOQUEUE-style rejects: each line is a message of its own."""
    return ev.sort(_ORDER).select(
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
    # one id per message, hashed once per message rather than once per recipient row
    msgs = rows.select("_key", "received").unique()
    msgs = msgs.with_columns(message_trace_ids(msgs.get_column("_key"), msgs.get_column("received")))
    rows = rows.join(msgs, on=["_key", "received"], how="left").with_columns(
        pl.col("sender_address").str.to_lowercase().alias("sender_lower"),
        pl.col("recipient_address").str.to_lowercase().alias("recipient_lower"),
    )
    return conform(rows, MESSAGE_SCHEMA).sort(["received", "message_trace_id", "recipient_lower"])
