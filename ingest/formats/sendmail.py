"""Sendmail (syslog): from=/to= lines joined by queue id, the MSP -> MTA hop, DSNs and ruleset rejects.

    Apr  2 00:15:25 mta1 sm-mta[32300]: u31FFPtp032300: from=<a@b.c>, size=5938, class=0, nrcpts=2, msgid=<x@b.c>, proto=ESMTP, daemon=MTA, relay=mx.b.c [192.0.2.1]
    Apr  2 00:15:26 mta1 sm-mta[32302]: u31FFPtp032300: to=<d@e.f>,<g@e.f>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=245938, relay=mx.e.f. [198.51.100.7], dsn=2.0.0, stat=Sent (ok)
    Apr  2 00:15:27 mta1 sm-msp-queue[3100]: u31FFQ01003100: to=d@e.f, ctladdr=me (1000/1000), delay=00:00:00, mailer=relay, pri=30000, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (u31FFRab032310 Message accepted for delivery)
    Apr  2 00:15:28 mta1 sm-mta[32311]: u31FFRab032310: u31FFRab032311: DSN: User unknown
    Feb 25 03:01:10 mta1 sm-mta[27713]: s1P819mk027713: ruleset=check_rcpt, arg1=<x@y.z>, relay=h.y.z [203.0.113.5], reject=550 5.7.1 <x@y.z>... Relaying denied
"""

from __future__ import annotations

import re
from collections.abc import Callable

import polars as pl

from ingest.formats import Parsed
from ingest.formats import syslog as sl
from ingest.formats.common import DETAIL_MAX, spam_reason, tail_from
from ingest.formats.context import ParseContext, organization_expr
from ingest.schema import EVENT_SCHEMA, conform

NAME = "sendmail"

_PROGRAM = r"^(?:sendmail|sm-[\w-]+)$"
_DETECT = re.compile(r"^(?:<\d+>)?\S+(?: +\S+ \d\d:\d\d:\d\d)? (?:<[\w.]+> )?\S+ (?:sendmail|sm-mta|sm-msp-queue|sm-[\w-]+)\[\d+\]: ")
_POSTFIX = re.compile(r" postfix[\w.-]*/[\w-]+\[\d+\]: ")
_FACILITY = r"^([A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d) <\w+\.\w+> "  # BSD syslog `<mail.notice>` after the time
_HANDOFF = r"^Sent \(([0-9A-Za-z]{8,20}) Message accepted for delivery\)"
_DSN = r"^([0-9A-Za-z]{8,20}): (?:DSN|return to sender|sender notify|postmaster notify): "
# Sendmail's own lines that say nothing about a message's fate: dropped, not unknown.
_NOISE = (
    "did not issue MAIL", "lost input channel", "SMTP outgoing connect", "Milter: no active filter", "Milter (",
    "AUTH=", "STARTTLS", "rejecting commands from", "timeout waiting", "done; ", "connect from", "starting daemon",
    "alias database", "ruleset=", "tls_", "accepting connections", "rejecting connections", "restarting ",
    "Authentication-Warning", "[rejected]", "grew WorkList", "runqueue",
)


def detect(sample: list[str]) -> bool:
    """True when the first lines are syslog lines of sendmail / sm-mta / sm-msp-queue (and not Postfix)."""
    lines = [s for s in sample if s.strip()][:50]
    ours = sum(1 for s in lines if _DETECT.search(s))
    return ours > 0 and ours > sum(1 for s in lines if _POSTFIX.search(s))


def parse(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Sendmail syslog lines -> events (receive, deliver, handoff, bounce, reject, hold, info) and unknown lines."""
    src = lines = lines.select("line_no", "line")
    if lines.select(pl.col("line").str.contains(_FACILITY).any()).item():
        lines = lines.with_columns(pl.col("line").str.replace(_FACILITY, "$1 "))
    df = sl.split(lines, ctx)
    body = pl.col("body")
    # `QID: text` or `NOQUEUE: text`; offsets and slices, the id shape checked by a capture-free regex
    colon = body.str.find(": ", literal=True)
    has_id = body.str.contains(r"^[0-9A-Za-z]{8,20}: ")
    cut = has_id | body.str.starts_with("NOQUEUE: ")
    df = df.with_columns(
        (pl.col("ok") & pl.col("program").str.contains(_PROGRAM)).fill_null(False).alias("ours"),
        pl.when(has_id).then(body.cast(pl.Binary).bin.slice(0, colon).cast(pl.String)).alias("queue_id"),
        pl.when(cut).then(body.cast(pl.Binary).bin.slice(colon + 2).cast(pl.String)).otherwise(body).alias("text"),
    )
    ours = df.filter("ours")
    t, has_id = pl.col("text"), pl.col("queue_id").is_not_null()
    reject = t.str.contains(", reject=", literal=True) & (t.str.starts_with("ruleset=") | t.str.starts_with("Milter"))
    ours = ours.with_columns(
        pl.when(has_id & t.str.starts_with("from=")).then(pl.lit("recv"))
        .when(has_id & t.str.starts_with("to=")).then(pl.lit("dlv"))
        .when(reject).then(pl.lit("rej"))
        .otherwise(pl.lit("other"))
        .alias("cat")
    )
    # the rarer shapes are told apart on the remaining lines only
    other = ours.filter(pl.col("cat") == "other").with_columns(
        pl.when(has_id & t.str.contains(_DSN)).then(pl.lit("dsn"))
        .when(has_id & t.str.starts_with("<")).then(pl.lit("addr"))
        .when(t.str.contains_any(list(_NOISE))).then(pl.lit("noise"))
        .when(has_id).then(pl.lit("info"))
        .otherwise(pl.lit("unknown"))
        .alias("cat")
    )
    recv = _when_any(_receives, ours.filter(pl.col("cat") == "recv"))
    parts = [
        recv,
        _when_any(_deliveries, ours.filter(pl.col("cat") == "dlv")),
        _when_any(_rejects, ours.filter(pl.col("cat") == "rej")),
        _when_any(_bounces, other.filter(pl.col("cat") == "dsn")),
        _when_any(lambda d: _address_lines(d, recv), other.filter(pl.col("cat") == "addr")),
        _when_any(_message_lines, other.filter(pl.col("cat") == "info")),
    ]
    # Grouped by kind, each group in line order (as for Exim: sort by line_no when needed).
    events = pl.concat([conform(p, _WORK) for p in parts if p.height] or [pl.DataFrame(schema=_WORK)])
    events = events.with_columns(
        organization_expr(pl.col("host"), ctx).alias("organization"),
        pl.lit(NAME).alias("format"),
        pl.lit(ctx.source).alias("source"),
    )
    foreign = df.filter(~pl.col("ours") & pl.col("line").str.contains(r"\S")).select("line_no")
    unknown = pl.concat([foreign, other.filter(pl.col("cat") == "unknown").select("line_no")])
    unknown = src.join(unknown, on="line_no", how="semi")  # as read, before the facility tag was cut
    return Parsed(events=conform(events, EVENT_SCHEMA), unknown=unknown)


def _when_any(fn: Callable[[pl.DataFrame], pl.DataFrame], df: pl.DataFrame) -> pl.DataFrame:
    """fn(df), or no events at all for an empty frame (small batches pay per operation, not per line)."""
    return fn(df) if df.height else pl.DataFrame(schema=_WORK)


_WORK = {k: v for k, v in EVENT_SCHEMA.items() if k not in ("organization", "format", "source")}


def _address(field: str) -> pl.Expr:
    """`field=<a@b>` or `field=a@b` from the line text, without the angle brackets ("" for `<>`)."""
    anchor = "^" if field in ("from", "to") else ", "
    return pl.col("text").str.extract(rf"{anchor}{field}=<?([^,\s>]*)", 1)


def _relay(text: pl.Expr) -> list[pl.Expr]:
    """_rname, _rip from `relay=name. [ip]`, `relay=[ip] [ip]`, `relay=[ip]` or `relay=localhost`.

    Two one-group extractions: cheaper than one with two groups.
    """
    return [
        text.str.extract(r", relay=([^ ,]+)", 1).alias("_rname"),
        text.str.extract(r", relay=[^ ,]+ \[([^\]]+)\]", 1).alias("_rip"),
    ]


def _relay_columns(name: str, ip: str) -> list[pl.Expr]:
    """Name and address of a relay: a bare `[ip]` is an address, `IPv6:` and the FQDN's final dot go."""
    literal = pl.col("_rname").str.extract(r"^\[(?:IPv6:)?([^\]]+)\]$", 1)
    return [
        pl.when(literal.is_null()).then(pl.col("_rname").str.strip_suffix(".")).alias(name),
        pl.coalesce(pl.col("_rip").str.strip_prefix("IPv6:"), literal).alias(ip),
    ]


def _receives(df: pl.DataFrame) -> pl.DataFrame:
    """`from=<sender>, size=, nrcpts=, msgid=, relay=`: the message was accepted (nrcpts=0: it was not)."""
    t = pl.col("text")
    df = df.with_columns(
        _address("from").alias("sender"),
        t.str.extract(r", size=(\d+)", 1).cast(pl.Int64, strict=False).alias("size"),
        t.str.extract(r", nrcpts=(\d+)", 1).cast(pl.Int64, strict=False).alias("nrcpt"),
        t.str.extract(r", msgid=([^,\s]+)", 1).alias("_msgid"),
        *_relay(t),
    )
    msgid = pl.col("_msgid")
    df = df.with_columns(_relay_columns("client_host", "client_ip"))
    return df.with_columns(
        # relay=user@localhost (local submission) names no client host
        pl.when(pl.col("client_ip").is_not_null()).then(pl.col("client_host")).alias("client_host"),
        pl.lit("receive").alias("kind"),
        pl.when(msgid.str.starts_with("<")).then(msgid).otherwise("<" + msgid + ">").alias("message_id"),
    )


def _deliveries(df: pl.DataFrame) -> pl.DataFrame:
    """`to=<a>,<b>, ... stat=`: one deliver event per recipient, or a handoff to the local MTA's new queue id."""
    t = pl.col("text")
    # Each field is extracted once into a column: eager Polars would re-run a reused expression.
    to_end = t.str.find(", ", literal=True)
    df = df.with_columns(
        t.cast(pl.Binary).bin.slice(3, to_end - 3).cast(pl.String).alias("_to"),  # to=<a>,<b> up to the first ", "
        _address("ctladdr").alias("_ctl"),
        *_relay(t),
        t.str.extract(r", mailer=([^,\s]+)", 1).alias("_mailer"),
        t.str.extract(r", dsn=([\d.]+)", 1).alias("dsn"),
        t.str.extract(r", delay=([\d+:]+)", 1).alias("_delay"),
        tail_from(t, t.str.find(", stat=", literal=True) + 7).alias("detail"),
    )
    df = df.with_columns(_relay_columns("_rname", "to_ip"))
    df = df.with_columns(
        pl.coalesce("_rname", "to_ip", "_mailer").alias("relay"),
        pl.col("detail").str.extract(_HANDOFF, 1).alias("_next"),
        _seconds(df.get_column("_delay")).alias("delay"),
        pl.col("_to").str.split(","),
    )
    keep = ["time", "host", "program", "queue_id", "line_no", "_to", "_ctl", "relay", "to_ip", "dsn", "delay", "detail", "_next"]
    df = df.select(keep).explode("_to")
    rcpt = pl.col("_to").str.strip_chars(" ").str.strip_prefix("<").str.strip_suffix(">")
    # Delivery to a program or file: the address it was for is the controlling address (ctladdr=).
    prog = rcpt.str.starts_with("|") | rcpt.str.starts_with('"|') | rcpt.str.starts_with("/")
    loopback = pl.col("to_ip").str.starts_with("127.") | (pl.col("to_ip") == "::1") | (pl.col("relay") == "localhost")
    handoff = pl.col("_next").is_not_null() & loopback.fill_null(False)
    dsn_class, detail = pl.col("dsn").str.slice(0, 1), pl.col("detail")
    status = (
        pl.when(handoff).then(None)
        .when(detail.str.starts_with("Sent")).then(pl.lit("Delivered"))
        .when(detail.str.starts_with("Deferred") | detail.str.starts_with("queued")).then(pl.lit("Pending"))
        .when(detail.str.starts_with("Cannot send message")).then(pl.lit("Failed"))  # expired in the queue
        .when(dsn_class == "2").then(pl.lit("Delivered"))
        .when(dsn_class == "4").then(pl.lit("Pending"))
        .otherwise(pl.lit("Failed"))
    )
    return df.with_columns(
        pl.when(prog & pl.col("_ctl").is_not_null()).then(pl.col("_ctl")).otherwise(rcpt).alias("recipient"),
        pl.when(handoff).then(pl.lit("handoff")).otherwise(pl.lit("deliver")).alias("kind"),
        pl.when(handoff).then(pl.col("_next")).alias("next_queue_id"),
        status.alias("status"),
    )


def _seconds(delays: pl.Series) -> pl.Series:
    """Sendmail delays (`delay=1+00:00:15`) in seconds; parsed once per distinct value."""
    u = pl.DataFrame({"d": delays.unique().drop_nulls()})
    g = pl.col("d").str.extract_groups(r"^(?:(\d+)\+)?(\d+):(\d\d):(\d\d)$")
    f = [g.struct.field(str(i + 1)).cast(pl.Float64, strict=False) for i in range(4)]
    u = u.with_columns((f[0].fill_null(0) * 86400 + f[1] * 3600 + f[2] * 60 + f[3]).alias("s"))
    return delays.replace_strict(u["d"], u["s"], default=None, return_dtype=pl.Float64)


def _rejects(df: pl.DataFrame) -> pl.DataFrame:
    """`ruleset=check_* ... reject=` and milter rejects; with a queue id they pair with its `from=... nrcpts=0`."""
    t = pl.col("text")
    ruleset, arg1 = pl.col("_ruleset"), pl.col("_arg1")
    df = df.with_columns(
        t.str.extract(r"^ruleset=(\w+)", 1).alias("_ruleset"),
        _address("arg1").alias("_arg1"),
        t.str.extract(r"(?:^|: )from=<?([^,\s>]*)", 1).alias("_from"),  # Milter: from=<a>, reject=...
        t.str.extract(r"(?:^|: )to=<?([^,\s>]*)", 1).alias("_rcpt"),
        tail_from(t, t.str.find(", reject=", literal=True) + 9).alias("detail"),
        *_relay(t),
    )
    df = df.with_columns(_relay_columns("client_host", "client_ip"))
    spam = spam_reason(pl.col("detail"))
    return df.with_columns(
        pl.lit("reject").alias("kind"),
        pl.coalesce(pl.when(ruleset == "check_mail").then(arg1), "_from").alias("sender"),
        pl.coalesce(pl.when(ruleset == "check_rcpt").then(arg1), "_rcpt").alias("recipient"),
        pl.col("detail").str.extract(r"^\d{3} ([245]\.\d{1,3}\.\d{1,3})", 1).alias("dsn"),
        pl.when(spam).then(pl.lit("FilteredAsSpam")).otherwise(pl.lit("None")).alias("status"),
    )


def _bounces(df: pl.DataFrame) -> pl.DataFrame:
    """`QID: NEWQID: DSN: reason`: this message caused a DSN, queued as NEWQID."""
    t = pl.col("text")
    return df.with_columns(
        pl.lit("bounce").alias("kind"),
        t.str.extract(_DSN, 1).alias("next_queue_id"),
        tail_from(t, t.str.find(": ", literal=True) + 2).alias("detail"),
    )


def _address_lines(df: pl.DataFrame, recv: pl.DataFrame) -> pl.DataFrame:
    """`QID: <a@b>... User unknown`: a recipient refused at RCPT when logged before the queue id's `from=` line.

    The same text is logged again during a later delivery attempt, next to its `to=` line; that one is info.
    """
    first_from = recv.group_by("host", "queue_id").agg(pl.col("line_no").min().alias("_from"))
    df = df.join(first_from, on=["host", "queue_id"], how="left")
    refused = (pl.col("line_no") < pl.col("_from")).fill_null(False)
    t = pl.col("text")
    df = df.with_columns(
        t.str.extract(r"^<([^>]*)>", 1).alias("recipient"),
        tail_from(t, t.str.find("... ", literal=True) + 4).alias("detail"),
        pl.when(refused).then(pl.lit("reject")).otherwise(pl.lit("info")).alias("kind"),
    )
    spam = spam_reason(pl.col("detail"))
    status = pl.when(refused).then(pl.when(spam).then(pl.lit("FilteredAsSpam")).otherwise(pl.lit("None")))
    return df.with_columns(status.alias("status"))


def _message_lines(df: pl.DataFrame) -> pl.DataFrame:
    """Other lines of a queue id: milter quarantine/discard hold the message; the rest is info."""
    t = pl.col("text")
    quarantine = t.str.contains("quarantine=", literal=True)
    discard = t.str.contains(r"(?i)^milter.*\bdiscard")
    return df.with_columns(
        pl.when(quarantine | discard).then(pl.lit("hold")).otherwise(pl.lit("info")).alias("kind"),
        pl.when(quarantine).then(pl.lit("Quarantined")).when(discard).then(pl.lit("FilteredAsSpam")).alias("status"),
        t.str.slice(0, DETAIL_MAX).alias("detail"),
    )
