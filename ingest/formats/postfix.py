"""Postfix syslog lines -> events, one handler per daemon, vectorised over a batch of lines.

A message spans several daemons' lines joined by the queue id:

    smtpd    3F1A22C01: client=mail.example.com[192.0.2.1]
    cleanup  3F1A22C01: message-id=<abc@example.com>
    qmgr     3F1A22C01: from=<alice@example.com>, size=1234, nrcpt=2 (queue active)
    smtp     3F1A22C01: to=<bob@example.org>, relay=mx.example.org[203.0.113.7]:25, delay=1.2, ..., dsn=2.0.0, status=sent (250 ok)
    qmgr     3F1A22C01: removed

Each handler filters the batch with a cheap literal test, then runs its short-capture regex on
that subset only; the handlers' outputs are concatenated into one events frame.
"""

from __future__ import annotations

import polars as pl

from ingest.formats import Parsed
from ingest.formats.common import clip, ip_or_null, reject_status
from ingest.formats.context import ParseContext, organization_expr
from ingest.formats.syslog import split
from ingest.schema import EVENT_SCHEMA, conform

NAME = "postfix"

# Short queue ids are hex: 5 digits of microseconds, then the inode number, so up to 21 digits on
# 64-bit inodes (ED06590130AA1C9D6D862); long ones (enable_long_queue_ids) use a vowel-free
# base-52 alphabet. Foreign lines under postfix tags ("STATISTICS1:", "FOOBAR99:") match neither.
_QID = r"^([0-9A-F]{5,24}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,20}): "

_DELIVERY_DAEMONS = ["smtp", "lmtp", "local", "virtual", "pipe", "error", "retry", "discard"]

# Postfix lines that carry no message state: recognised, not counted as unknown.
_NOISE = (
    r"^(?:connect from|disconnect from|lost connection|timeout after|warning:|error:|fatal:|panic:"
    r"|statistics:|Anonymous TLS|Trusted TLS|Untrusted TLS|Verified TLS|SSL_accept|TLS |setting up TLS"
    r"|improper command pipelining|too many errors|NOQUEUE:|proxy-accept|CONNECT from|PASS |DNSBL rank"
    r"|discarding EHLO keywords|addr \S+ listed by domain|Connection |SSL |lost connection"
    r"|HANGUP|COMMAND |PREGREET|BARE NEWLINE|NON-SMTP|DISCONNECT|WHITELISTED|BLACKLISTED|PASS NEW|PASS OLD"
    r"|daemon started|reload|terminating|starting|stopping|refreshing|mail system|(?:Placed|Released|Deleted|Requeued)[ :]"
    r"|connect to |SSL_connect error|(?:WHITELIST|ALLOWLIST) VETO|ALLOWLISTED|DENYLISTED|bare <LF>|using backwards-compatible"
    r"|max |cache |table |host |begin |end |conversation|certificate|client=|dict_|match_|premature|"
    r"Trusted|Untrusted|Verified|Anonymous|message repeated)"
)

# The envelope Postfix appends to reject/hold/discard lines: "; from=<a> to=<b> proto=ESMTP helo=<h>"
# (postscreen separates with commas). Cut off for the detail text, never captured whole.
_TRAILER = r"; from=<[^>]*>,?(?: to=<[^>]*>,?)?(?: proto=[A-Z]+,?)?(?: helo=<[^>]*>)?"
# What the spam test must not see: addresses, HELO names and client host[ip] (a host may be called "spam").
_NAMES = r"<[^>]*>|[^\s\[]*\[[^\]]*\]"


def detect(sample: list[str]) -> bool:
    """A syslog file with postfix/ program tags."""
    return any(" postfix" in line and ("/" in line or "postfix[" in line) for line in sample)


def parse(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Events from one batch of Postfix syslog lines."""
    env = split(lines, ctx)
    prog = pl.col("program")
    env = env.with_columns(
        prog.str.extract(r"([^/]+)$", 1).alias("daemon"),
        prog.str.starts_with("postfix").alias("is_postfix"),
        pl.col("body").str.extract(_QID, 1).alias("queue_id"),
    )
    env = env.with_columns(pl.col("body").str.slice(pl.col("queue_id").str.len_chars().fill_null(-2) + 2).alias("rest"))
    base = env.filter(pl.col("ok"))
    pf = base.filter(pl.col("is_postfix"))
    q = pf.filter(pl.col("queue_id").is_not_null())
    handled = [
        _client(q),
        _msgid(q),
        _qmgr_from(q),
        _pickup(q),
        _removed(q),
        _deliveries(q),
        _bounce(q),
        _rejects_with_qid(q),
        _holds(q),
        _subject(q),
        _noqueue_rejects(pf.filter(pl.col("queue_id").is_null())),
        _amavis(base.filter(~pl.col("is_postfix") & pl.col("program").str.starts_with("amavis"))),
    ]
    events = (
        pl.concat([h for h in handled if h.height], how="diagonal_relaxed")
        if any(h.height for h in handled)
        else pl.DataFrame()
    )
    claimed = events.get_column("line_no") if events.height else pl.Series("line_no", [], pl.Int64)
    info = q.filter(~pl.col("line_no").is_in(claimed.implode())).select(
        "line_no",
        "time",
        "host",
        "program",
        "queue_id",
        pl.lit("info").alias("kind"),
        clip(pl.col("rest")).alias("detail"),
    )
    if info.height:
        events = pl.concat([events, info], how="diagonal_relaxed") if events.height else info
    events = _finish(events, ctx)
    unknown = _unknown(env, claimed)
    return Parsed(events=events, unknown=unknown)


def _finish(events: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    if not events.height:
        return conform(pl.DataFrame(schema=EVENT_SCHEMA), EVENT_SCHEMA)
    events = events.with_columns(
        organization_expr(pl.col("host"), ctx).alias("organization"),
        pl.lit(NAME).alias("format"),
        pl.lit(ctx.source).alias("source"),
    ).sort("line_no")
    return conform(events, EVENT_SCHEMA)


def _unknown(env: pl.DataFrame, claimed: pl.Series) -> pl.DataFrame:
    """Lines that match no known shape: not syslog at all, or postfix lines we do not recognise."""
    blank = pl.col("line").str.strip_chars() == ""
    not_syslog = ~pl.col("ok") & ~blank
    odd_postfix = (
        pl.col("ok")
        & pl.col("is_postfix")
        & pl.col("queue_id").is_null()
        & ~pl.col("body").str.contains(_NOISE)
        & ~pl.col("line_no").is_in(claimed.implode())
    )
    return env.filter(not_syslog | odd_postfix).select("line_no", "line")


def _cols(df: pl.DataFrame, kind: str, *exprs: pl.Expr) -> pl.DataFrame:
    return df.select("line_no", "time", "host", "program", "queue_id", pl.lit(kind).alias("kind"), *exprs)


def _host_ip(text: pl.Expr, prefix: str) -> list[pl.Expr]:
    g = text.str.extract_groups(prefix + r"([^\[\s,]*)\[([^\]]*)\]")
    return [g.struct.field("1").alias("client_host"), ip_or_null(g.struct.field("2")).alias("client_ip")]


def _client(q: pl.DataFrame) -> pl.DataFrame:
    # smtpd 3F1A22C01: client=host[ip], orig_client=host[ip]   (orig_client: after-queue filter re-injection)
    df = q.filter(pl.col("daemon").eq("smtpd") & pl.col("rest").str.starts_with("client="))
    host, ip = _host_ip(pl.col("rest"), r"^client=")
    ohost, oip = _host_ip(pl.col("rest"), r"orig_client=")
    return _cols(df, "client", pl.coalesce(ohost, host).alias("client_host"), pl.coalesce(oip, ip).alias("client_ip"))


def _msgid(q: pl.DataFrame) -> pl.DataFrame:
    # cleanup 3F1A22C01: message-id=<abc@example.com>   (may be empty or lack brackets)
    df = q.filter(pl.col("rest").str.starts_with("message-id="))
    return _cols(df, "msgid", pl.col("rest").str.extract(r"^message-id=(\S*)", 1).alias("message_id"))


def _qmgr_from(q: pl.DataFrame) -> pl.DataFrame:
    # qmgr 3F1A22C01: from=<alice@example.com>, size=1234, nrcpt=2 (queue active)
    df = q.filter(pl.col("daemon").eq("qmgr") & pl.col("rest").str.starts_with("from=<"))
    g = pl.col("rest").str.extract_groups(r"^from=<([^>]*)>, (?:size=(\d+), nrcpt=(\d+)|(status=expired))")
    df = df.with_columns(g.alias("_g"))
    expired = df.filter(pl.col("_g").struct.field("4").is_not_null())
    received = df.filter(pl.col("_g").struct.field("2").is_not_null())
    return pl.concat(
        [
            _cols(
                received,
                "receive",
                pl.col("_g").struct.field("1").alias("sender"),
                pl.col("_g").struct.field("2").cast(pl.Int64).alias("size"),
                pl.col("_g").struct.field("3").cast(pl.Int64).alias("nrcpt"),
            ),
            # qmgr: from=<a>, status=expired, returned to sender: every undelivered recipient failed.
            _cols(
                expired,
                "hold",
                pl.lit("Failed").alias("status"),
                pl.col("_g").struct.field("1").alias("sender"),
                clip(pl.col("rest")).alias("detail"),
            ),
        ],
        how="diagonal_relaxed",
    )


def _pickup(q: pl.DataFrame) -> pl.DataFrame:
    # pickup 3F1A22C01: uid=1000 from=<alice>   (local submission: no client IP)
    df = q.filter(pl.col("daemon").eq("pickup") & pl.col("rest").str.contains("from=<", literal=True))
    return _cols(df, "receive", pl.col("rest").str.extract(r"from=<([^>]*)>", 1).alias("sender"))


def _removed(q: pl.DataFrame) -> pl.DataFrame:
    # qmgr 3F1A22C01: removed   (also postsuper's removal of a queued message)
    return _cols(q.filter(pl.col("rest").eq("removed")), "removed")


def _deliveries(q: pl.DataFrame) -> pl.DataFrame:
    # smtp 3F1A22C01: to=<bob@x>, orig_to=<b@x>, relay=mx.x[203.0.113.7]:25, delay=1.2, delays=..., dsn=2.0.0, status=sent (250 ...)
    df = q.filter(pl.col("daemon").is_in(_DELIVERY_DAEMONS) & pl.col("rest").str.starts_with("to="))
    rest = pl.col("rest")
    g = rest.str.extract_groups(r"^to=<?([^>,\s]*)>?, (?:orig_to=<?([^>,\s]*)>?, )?relay=([^,\[\s]*)(?:\[([^\]]*)\])?")
    # one pass for the three short fields; other fields (conn_use=, tls=) may sit between them
    o = rest.str.extract_groups(r", delay=([\d.]+), .*?dsn=(\d\.\d{1,3}\.\d{1,3}), status=([a-z-]+)")
    df = df.with_columns(g.alias("_g"), o.alias("_o"), rest.str.find(", status=", literal=True).alias("_at"))
    raw = pl.col("_o").struct.field("3")
    status = raw.replace_strict(
        {"sent": "Delivered", "deferred": "Pending", "bounced": "Failed", "expired": "Failed"},
        default="Failed",
    )
    response = rest.str.slice(pl.col("_at") + 9 + raw.str.len_chars() + 2).str.strip_suffix(")")
    df = df.select(
        "line_no",
        "time",
        "host",
        "program",
        "queue_id",
        pl.col("_g").struct.field("1").alias("recipient"),
        pl.col("_g").struct.field("2").alias("orig_recipient"),
        pl.col("_g").struct.field("3").alias("relay"),
        ip_or_null(pl.col("_g").struct.field("4")).alias("to_ip"),
        pl.col("_o").struct.field("1").cast(pl.Float64, strict=False).alias("delay"),
        pl.col("_o").struct.field("2").alias("dsn"),
        raw.alias("_raw"),
        status.alias("status"),
        clip(response).alias("detail"),
    # address verification probes (status=deliverable, undeliverable, undeliverable-but-not-cached) deliver nothing
    ).filter(pl.col("_raw").is_not_null() & ~pl.col("_raw").str.contains("deliverable", literal=True))
    # A hand-off to a content filter on the loopback (amavis on 10024) that answered
    # "queued as NEWQID": the message continues under NEWQID on this host. Only loopback
    # deliveries are searched: remote servers answer "queued as" too, in their own queue.
    loopback = (pl.col("to_ip").str.starts_with("127.") | pl.col("to_ip").eq("::1")) & pl.col("_raw").eq("sent")
    local = df.filter(loopback.fill_null(False))
    local = local.with_columns(pl.col("detail").str.extract(r"queued as ([0-9A-Za-z]+)\)?$", 1).alias("next_queue_id"))
    df = pl.concat([df.filter(~loopback.fill_null(False)), local], how="diagonal_relaxed")
    handoff = pl.col("next_queue_id").is_not_null()
    return df.select(
        "line_no",
        "time",
        "host",
        "program",
        "queue_id",
        pl.when(handoff).then(pl.lit("handoff")).otherwise(pl.lit("deliver")).alias("kind"),
        # a hand-off alone is not a delivery: until the re-queued message is seen, it is under way
        pl.when(handoff).then(pl.lit("Pending")).otherwise("status").alias("status"),
        "recipient",
        "orig_recipient",
        "relay",
        "to_ip",
        "delay",
        "dsn",
        "detail",
        "next_queue_id",
    )


def _bounce(q: pl.DataFrame) -> pl.DataFrame:
    # bounce 3F1A22C01: sender non-delivery notification: 4B2C33D02
    df = q.filter(pl.col("daemon").eq("bounce") & pl.col("rest").str.contains("notification: ", literal=True))
    return _cols(
        df,
        "bounce",
        pl.col("rest").str.extract(r"notification: ([0-9A-Za-z]+)$", 1).alias("next_queue_id"),
        clip(pl.col("rest")).alias("detail"),
    )


def _envelope(text: pl.Expr) -> list[pl.Expr]:
    """Sender and recipient from the trailer of a reject/hold line (to= is absent for MAIL-stage rejects)."""
    return [
        text.str.extract(r"; from=<([^>]*)>", 1).alias("sender"),
        text.str.extract(r"; from=<[^>]*>,? to=<([^>]*)>", 1).alias("recipient"),
    ]


def _rejects(df: pl.DataFrame, text: pl.Expr) -> pl.DataFrame:
    """Reject lines as events; one without an envelope (CONNECT, VRFY, HELO stage) is no message: kind info."""
    host, ip = _host_ip(text, r"(?:from|RCPT from|MAIL from|END-OF-MESSAGE from|DATA from) ")
    postscreen_ip = text.str.extract(r"from \[([0-9A-Fa-f:.]+)\]:\d+", 1)
    # "NOQUEUE: reject: ", "milter-reject: ", "proxy-reject: " ... : the detail starts after the verb
    verb = text.str.extract(r"^((?:NOQUEUE: )?[a-z_-]+: )", 1).str.len_chars().fill_null(0)
    reason = text.str.slice(verb).str.replace(_TRAILER, "")
    has_envelope = text.str.contains("; from=<", literal=True)
    df = df.with_columns(reason.alias("_reason"), has_envelope.alias("_env"))
    # blocklist/spam wording in the reply decides FilteredAsSpam, not an address or host name that says "spam"
    status = reject_status(pl.col("_reason").str.replace_all(_NAMES, ""))
    return df.select(
        "line_no",
        "time",
        "host",
        "program",
        "queue_id",
        pl.when(pl.col("_env")).then(pl.lit("reject")).otherwise(pl.lit("info")).alias("kind"),
        pl.when(pl.col("_env")).then(status).alias("status"),
        *_envelope(text),
        host,
        pl.coalesce(ip, ip_or_null(postscreen_ip)).alias("client_ip"),
        clip(pl.col("_reason")).alias("detail"),
    )


def _rejects_with_qid(q: pl.DataFrame) -> pl.DataFrame:
    # smtpd 3F1A22C01: reject: RCPT from h[ip]: 550 5.1.1 <x>: ...; from=<a> to=<b> proto=ESMTP helo=<h>
    # cleanup 3F1A22C01: milter-reject: END-OF-MESSAGE from h[ip]: 5.7.1 Spam; from=<a> to=<b> ...
    # cleanup 3F1A22C01: reject: header Subject: x from h[ip]; from=<a> to=<b> proto=ESMTP helo=<h>: 5.7.1 text
    df = q.filter(pl.col("rest").str.contains(r"^(?:milter-)?reject: "))
    return _rejects(df, pl.col("rest"))


def _holds(q: pl.DataFrame) -> pl.DataFrame:
    # cleanup 3F1A22C01: milter-hold: END-OF-MESSAGE ...; postsuper 3F1A22C01: placed on hold
    # cleanup 3F1A22C01: discard: header Subject: ...  (header_checks DISCARD: dropped as unwanted)
    rest = pl.col("rest")
    held = rest.str.contains(r"^(?:milter-)?hold: ") | rest.eq("placed on hold")
    dropped = rest.str.contains(r"^(?:milter-)?discard: ")
    df = q.filter(held | dropped)
    status = pl.when(held).then(pl.lit("Quarantined")).otherwise(pl.lit("FilteredAsSpam"))
    # the trailer names the sender and one recipient: the message's row for that recipient
    return _cols(df, "hold", status.alias("status"), *_envelope(rest), clip(rest).alias("detail"))


def _subject(q: pl.DataFrame) -> pl.DataFrame:
    # cleanup 3F1A22C01: warning: header Subject: Hello there from h[ip]; from=<a> to=<b> proto=ESMTP
    # cleanup 3F1A22C01: info: header Subject: Cron <root@mx1> date from local; from=<root> to=<root>   (pickup)
    df = q.filter(pl.col("rest").str.contains(r"^(?:warning|info): header Subject: "))
    subject = pl.col("rest").str.extract(r"^(?:warning|info): header Subject: (.*?) from (?:\S*\[|local; )", 1)
    return _cols(df, "subject", subject.alias("subject"))


def _noqueue_rejects(nq: pl.DataFrame) -> pl.DataFrame:
    # smtpd NOQUEUE: reject: RCPT from h[ip]: 554 5.7.1 Service unavailable; Client host [ip] blocked using zen.spamhaus.org; from=<a> to=<b> ...
    # postscreen NOQUEUE: reject: RCPT from [ip]:port: 550 5.7.1 ...; from=<a>, to=<b>, proto=ESMTP
    # smtpd proxy-reject: END-OF-MESSAGE: 554 5.7.1 Rejected for policy reasons; from=<a> to=<b> ...
    body = pl.col("body")
    df = nq.filter(body.str.contains(r"^(?:NOQUEUE: (?:reject|discard|milter-reject): |proxy-reject: )"))
    df = df.with_columns(pl.lit(None, pl.String).alias("queue_id"))
    return _rejects(df, body)


def _amavis(am: pl.DataFrame) -> pl.DataFrame:
    # amavis[1]: (01-02) Blocked SPAM {DiscardedInbound,Quarantined}, [ip]:port <a> -> <b>, Queue-ID: 3F1A22C01, ...
    body = pl.col("body")
    df = am.filter(body.str.contains(r"\) Blocked [A-Z-]+ ") & body.str.contains("Queue-ID: ", literal=True))
    quarantined = body.str.contains(r"\{[^}]*Quarantined[^}]*\}")
    spam = body.str.contains(r"Blocked SPAM")
    status = (
        pl.when(quarantined)
        .then(pl.lit("Quarantined"))
        .when(spam)
        .then(pl.lit("FilteredAsSpam"))
        .otherwise(pl.lit("Failed"))
    )
    df = df.with_columns(body.str.extract(r"Queue-ID: ([0-9A-Za-z]+)", 1).alias("queue_id"))
    return _cols(
        df, "hold", status.alias("status"), clip(body.str.slice(body.str.find(") ", literal=True) + 2)).alias("detail")
    )
