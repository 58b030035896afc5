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

from msgtrace.ingest.formats import Parsed
from msgtrace.ingest.formats.context import ParseContext, organization_column
from msgtrace.ingest.schema import EVENT_SCHEMA, conform
from tests import polars_syslog as sl
from tests.polars_common import DETAIL_MAX, from_byte, spam_reason, tail_from

NAME = "sendmail"

_PROGRAM = r"^(?:sendmail|sm-[\w-]+)$"
_DETECT = re.compile(
    r"^(?:<\d+>)?\S+(?: +\S+ \d\d:\d\d:\d\d)? (?:<[\w.]+> )?\S+ (?:sendmail|sm-mta|sm-msp-queue|sm-[\w-]+)\[\d+\]: "
)
_POSTFIX = re.compile(r" postfix[\w.-]*/[\w-]+\[\d+\]: ")
_FACILITY = r"^([A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d) <\w+\.\w+> "  # BSD syslog `<mail.notice>` after the time
_HANDOFF = r"^Sent \(([0-9A-Za-z]{8,20}) Message accepted for delivery\)"
# What syslog.split captures at the start of the body: a queue id is followed by ": " (NOQUEUE is too short).
_QID_LEAD = r"([0-9A-Za-z]{8,20}): "
_DSN = r"^([0-9A-Za-z]{8,20}): (?:DSN|return to sender|sender notify|postmaster notify): "
# Sendmail's own lines that say nothing about a message's fate: dropped, not unknown.
_NOISE = (
    "did not issue MAIL",
    "lost input channel",
    "SMTP outgoing connect",
    "Milter: no active filter",
    "Milter (",
    "AUTH=",
    "STARTTLS",
    "rejecting commands from",
    "timeout waiting",
    "done; ",
    "connect from",
    "starting daemon",
    "alias database",
    "ruleset=",
    "tls_",
    "accepting connections",
    "rejecting connections",
    "restarting ",
    "Authentication-Warning",
    "[rejected]",
    "grew WorkList",
    "runqueue",
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
    # The queue id is captured in the envelope's own pass (`lead`); `body` is then what follows its ": ".
    df = sl.split(lines, ctx, lead=_QID_LEAD)
    body, program = pl.col("body"), df.get_column("program")
    # a batch names a handful of programs: test each distinct one once, not once per line
    names = program.unique().drop_nulls()
    sendmail_names = names.filter(names.str.contains(_PROGRAM)).implode()
    ours = df.select((pl.col("ok") & program.is_in(sendmail_names)).fill_null(False)).to_series()
    # `NOQUEUE: text`: the text after its ": " (ASCII, so 9 bytes)
    noqueue = pl.col("lead").is_null() & body.str.starts_with("NOQUEUE: ")
    text = pl.when(noqueue).then(from_byte(body, pl.lit(9))).otherwise(body)
    # only the columns the handlers read go through the filter (a filter copies every column it carries)
    mine = df.select("line_no", "time", "host", "program", pl.col("lead").alias("queue_id"), text.alias("text"))
    mine = mine.filter(ours)
    t, has_id = pl.col("text"), pl.col("queue_id").is_not_null()
    # The common lines first, by a prefix test on every row; the rarer shapes are told apart on the rest only.
    recv_m, dlv_m = mine.select(
        (has_id & t.str.starts_with("from=")).alias("r"), (has_id & t.str.starts_with("to=")).alias("d")
    ).get_columns()
    rest = mine.filter(~(recv_m | dlv_m))
    reject = t.str.contains(", reject=", literal=True) & (t.str.starts_with("ruleset=") | t.str.starts_with("Milter"))
    rest = rest.with_columns(
        pl.when(reject)
        .then(pl.lit("rej"))
        .when(has_id & t.str.contains(_DSN))
        .then(pl.lit("dsn"))
        .when(has_id & t.str.starts_with("<"))
        .then(pl.lit("addr"))
        .when(t.str.contains_any(list(_NOISE)))
        .then(pl.lit("noise"))
        .when(has_id)
        .then(pl.lit("info"))
        .otherwise(pl.lit("unknown"))
        .alias("cat")
    )
    cat = pl.col("cat")
    recv = _when_any(_receives, mine.filter(recv_m))
    parts = [
        recv,
        _when_any(_deliveries, mine.filter(dlv_m)),
        _when_any(_rejects, rest.filter(cat == "rej")),
        _when_any(_bounces, rest.filter(cat == "dsn")),
        _when_any(lambda d: _address_lines(d, recv), rest.filter(cat == "addr")),
        _when_any(_message_lines, rest.filter(cat == "info")),
    ]
    # Grouped by kind, each group in line order (as for Exim: sort by line_no when needed).
    events = pl.concat([conform(p, _WORK) for p in parts if p.height] or [pl.DataFrame(schema=_WORK)])
    events = events.with_columns(
        organization_column(events.get_column("host"), ctx).alias("organization"),
        pl.lit(NAME).alias("format"),
        pl.lit(ctx.source).alias("source"),
    )
    foreign = df.select("line_no", "line").filter(~ours)
    foreign = foreign.filter(pl.col("line").str.contains(r"\S")).select("line_no")
    unknown = pl.concat([foreign, rest.filter(cat == "unknown").select("line_no")])
    unknown = src.join(unknown, on="line_no", how="semi")  # as read, before the facility tag was cut
    return Parsed(events=conform(events, EVENT_SCHEMA), unknown=unknown)


def _when_any(fn: Callable[[pl.DataFrame], pl.DataFrame], df: pl.DataFrame) -> pl.DataFrame:
    """fn(df), or no events at all for an empty frame (small batches pay per operation, not per line)."""
    return fn(df) if df.height else pl.DataFrame(schema=_WORK)


_WORK = {k: v for k, v in EVENT_SCHEMA.items() if k not in ("organization", "format", "source")}


def _address(field: str, text: pl.Expr | None = None) -> pl.Expr:
    """`field=<a@b>` or `field=a@b` from the line text, without the angle brackets ("" for `<>`)."""
    anchor = "^" if field in ("from", "to") else ", "
    return (pl.col("text") if text is None else text).str.extract(rf"{anchor}{field}=<?([^,\s>]*)", 1)


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


# Fast paths: the lines as sendmail writes them, each read by one anchored onepass regex (every
# repeat stops at a character its class excludes, each optional field starts with its own letter),
# so one capture pass replaces a search per field. Each field gets what the per-field search of
# the general path (_fields) finds: the regex covers the whole line, a field's class holds no ", ",
# so the first `, size=` (say) is the one it reads, and a field it lacks is nowhere in the line.
# An address is `<a>` or a bare a (two groups, coalesced): `<?` before a class taking `<` is no onepass.
_ADDR = r"(?:<([^<>,\s]*)>|([^<>,\s]+))"
_RELAY = r"relay=([^ ,]+)(?: \[([^\[\]\s,]+)\](?: \(may be forged\))?)?"
_RECEIVE = (
    rf"^from={_ADDR}, size=([0-9]+), class=[0-9-]+, nrcpts=([0-9]+), (?:msgid=([^,\s]+), )?"
    rf"(?:bodytype=[0-9A-Za-z]+, )?(?:proto=[0-9A-Za-z]+, )?(?:daemon=[^,\s]+, )?{_RELAY}$"
)
# The status text ends the line and is not read here, but may hold ", ": it must not hold
# ", c" or ", r", where a `, ctladdr=` or `, relay=` the line lacks could be found.
_DELIVER = (
    rf"^to=(?:[^,\s]*,)+ (?:ctladdr={_ADDR}(?: \([0-9]+/[0-9]+\))?, )?delay=([0-9+:]+), (?:xdelay=[0-9+:]+, )?"
    rf"mailer=([^,\s]+), (?:pri=[0-9]+, )?(?:{_RELAY}, )?dsn=([0-9.]+), stat=(?:[^,]|,+(?:[^ ,]| [^cr ,]))*$"
)
# The reject text ends the line; it must hold no ": f" / ": t" (the general path's `: from=`, `: to=`).
_REJECT = (
    rf"^ruleset=(\w+), arg1={_ADDR}, (?:arg2=[^,\s]+, )?{_RELAY}, "
    r"reject=(?:[^:]|:+(?:[^ :]| [^ft :]))*$"
)


def _fields(
    df: pl.DataFrame, fast: str, names: list[str], key: int, general: Callable[[pl.Expr], list[pl.Expr]]
) -> pl.DataFrame:
    """Columns `names` (the groups of `fast`; a name twice: coalesced) from the fast regex; rows it
    does not match get them from `general` (the per-field extractions), run on those rows only.
    Group `key` is one every match fills."""
    g = pl.col("text").str.extract_groups(fast)
    df = df.with_columns(g.alias("_g"))
    cols: dict[str, list[pl.Expr]] = {}
    for i, name in enumerate(names, 1):
        cols.setdefault(name, []).append(pl.col("_g").struct.field(str(i)))
    first = pl.col("_g").struct.field(str(key))
    if df.select(first.null_count()).item():
        odd = pl.when(first.is_null()).then(pl.col("text"))
        for e in general(odd):
            cols.setdefault(e.meta.output_name(), []).append(e)
    return df.with_columns((pl.coalesce(c) if len(c) > 1 else c[0]).alias(n) for n, c in cols.items()).drop("_g")


def _receives(df: pl.DataFrame) -> pl.DataFrame:
    """`from=<sender>, size=, nrcpts=, msgid=, relay=`: the message was accepted (nrcpts=0: it was not)."""

    def general(t: pl.Expr) -> list[pl.Expr]:
        return [
            _address("from", t).alias("sender"),
            t.str.extract(r", size=(\d+)", 1).alias("_size"),
            t.str.extract(r", nrcpts=(\d+)", 1).alias("_nrcpt"),
            t.str.extract(r", msgid=([^,\s]+)", 1).alias("_msgid"),
            *_relay(t),
        ]

    df = _fields(df, _RECEIVE, ["sender", "sender", "_size", "_nrcpt", "_msgid", "_rname", "_rip"], 3, general)
    msgid = pl.col("_msgid")
    df = df.with_columns(
        pl.col("_size").cast(pl.Int64, strict=False).alias("size"),
        pl.col("_nrcpt").cast(pl.Int64, strict=False).alias("nrcpt"),
        *_relay_columns("client_host", "client_ip"),
    )
    return df.with_columns(
        # relay=user@localhost (local submission) names no client host
        pl.when(pl.col("client_ip").is_not_null()).then(pl.col("client_host")).alias("client_host"),
        pl.lit("receive").alias("kind"),
        pl.when(msgid.str.starts_with("<")).then(msgid).otherwise("<" + msgid + ">").alias("message_id"),
    )


def _deliveries(df: pl.DataFrame) -> pl.DataFrame:
    """`to=<a>,<b>, ... stat=`: one deliver event per recipient, or a handoff to the local MTA's new queue id."""
    t = pl.col("text")

    def general(t: pl.Expr) -> list[pl.Expr]:
        return [
            _address("ctladdr", t).alias("_ctl"),
            t.str.extract(r", delay=([\d+:]+)", 1).alias("_delay"),
            t.str.extract(r", mailer=([^,\s]+)", 1).alias("_mailer"),
            *_relay(t),
            t.str.extract(r", dsn=([\d.]+)", 1).alias("dsn"),
        ]

    df = _fields(df, _DELIVER, ["_ctl", "_ctl", "_delay", "_mailer", "_rname", "_rip", "dsn"], 3, general)
    to_end = t.str.find(", ", literal=True)
    df = df.with_columns(
        # to=<a>,<b> up to the first ", ", one item per recipient
        t.cast(pl.Binary).bin.slice(3, to_end - 3).cast(pl.String).str.split(",").alias("_to"),
        tail_from(t, t.str.find(", stat=", literal=True) + 7).alias("detail"),
        *_relay_columns("_rname", "to_ip"),
        _seconds(df.get_column("_delay")).alias("delay"),
    )
    relay = pl.coalesce("_rname", "to_ip", "_mailer")
    df = df.with_columns(relay.alias("relay"), pl.col("detail").str.extract(_HANDOFF, 1).alias("_next"))
    # What the line says about all its recipients, worked out before the rows are repeated per recipient.
    loopback = pl.col("to_ip").str.starts_with("127.") | (pl.col("to_ip") == "::1") | (pl.col("relay") == "localhost")
    handoff = pl.col("_next").is_not_null() & loopback.fill_null(False)
    dsn_class, detail = pl.col("dsn").str.slice(0, 1), pl.col("detail")
    status = (
        pl.when(handoff)
        .then(None)
        .when(detail.str.starts_with("Sent"))
        .then(pl.lit("Delivered"))
        .when(detail.str.starts_with("Deferred") | detail.str.starts_with("queued"))
        .then(pl.lit("Pending"))
        .when(detail.str.starts_with("Cannot send message"))
        .then(pl.lit("Failed"))  # expired in the queue
        .when(dsn_class == "2")
        .then(pl.lit("Delivered"))
        .when(dsn_class == "4")
        .then(pl.lit("Pending"))
        .otherwise(pl.lit("Failed"))
    )
    df = df.select(
        "time",
        "host",
        "program",
        "queue_id",
        "line_no",
        "_to",
        "_ctl",
        "relay",
        "to_ip",
        "dsn",
        "delay",
        "detail",
        pl.when(handoff).then(pl.lit("handoff")).otherwise(pl.lit("deliver")).alias("kind"),
        pl.when(handoff).then(pl.col("_next")).alias("next_queue_id"),
        status.alias("status"),
    ).explode("_to")
    df = df.with_columns(pl.col("_to").str.strip_chars(" ").str.strip_prefix("<").str.strip_suffix(">"))
    # Delivery to a program or file: the address it was for is the controlling address (ctladdr=).
    rcpt = pl.col("_to")
    prog = rcpt.str.starts_with("|") | rcpt.str.starts_with('"|') | rcpt.str.starts_with("/")
    recipient = pl.when(prog & pl.col("_ctl").is_not_null()).then(pl.col("_ctl")).otherwise(rcpt)
    return df.with_columns(recipient.alias("recipient"))


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

    def general(t: pl.Expr) -> list[pl.Expr]:
        return [
            t.str.extract(r"^ruleset=(\w+)", 1).alias("_ruleset"),
            _address("arg1", t).alias("_arg1"),
            *_relay(t),
            t.str.extract(r"(?:^|: )from=<?([^,\s>]*)", 1).alias("_from"),  # Milter: from=<a>, reject=...
            t.str.extract(r"(?:^|: )to=<?([^,\s>]*)", 1).alias("_rcpt"),
        ]

    # a line _REJECT reads has no `: from=` / `: to=`: _from and _rcpt stay null there
    df = df.with_columns(pl.lit(None, pl.String).alias("_from"), pl.lit(None, pl.String).alias("_rcpt"))
    df = _fields(df, _REJECT, ["_ruleset", "_arg1", "_arg1", "_rname", "_rip"], 1, general)
    df = df.with_columns(
        tail_from(t, t.str.find(", reject=", literal=True) + 9).alias("detail"),
        *_relay_columns("client_host", "client_ip"),
    )
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
