"""The reference for the compiled Postfix parser (ingest/formats/postfix.py, rust/): the vectorised
Polars parser that was on the production path until issue 16, kept unchanged so that
tests/test_postfix_rust.py can compare the two on every fixture, the corpus and generated logs.

Postfix syslog lines -> events, one handler per daemon, vectorised over a batch of lines.

A message spans several daemons' lines joined by the queue id:

    smtpd    3F1A22C01: client=mail.example.com[192.0.2.1]
    cleanup  3F1A22C01: message-id=<abc@example.com>
    qmgr     3F1A22C01: from=<alice@example.com>, size=1234, nrcpt=2 (queue active)
    smtp     3F1A22C01: to=<bob@example.org>, relay=mx.example.org[203.0.113.7]:25, delay=1.2, ..., dsn=2.0.0, status=sent (250 ok)
    qmgr     3F1A22C01: removed

Each handler filters the batch with a cheap literal test, then runs its short-capture regex on
that subset only; the handlers' outputs are concatenated into one events frame. A handler whose
subset is empty returns it at once (every expression has a fixed cost, even on no rows).
"""

from __future__ import annotations

import polars as pl

from msgtrace.ingest.formats import Parsed
from msgtrace.ingest.formats.context import ParseContext, organization_column
from msgtrace.ingest.schema import EVENT_SCHEMA, conform
from tests.polars_common import clip, from_byte, ip_or_null, reject_status
from tests.polars_syslog import split

NAME = "postfix"

# Short queue ids are hex: 5 digits of microseconds, then the inode number, so up to 21 digits on
# 64-bit inodes (ED06590130AA1C9D6D862); long ones (enable_long_queue_ids) use a vowel-free
# base-52 alphabet. Foreign lines under postfix tags ("STATISTICS1:", "FOOBAR99:") match neither.
_QID = r"^(?:[0-9A-F]{5,24}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,20})$"
# What syslog.split captures at the start of the body for _QID to test: an id is followed by ": ",
# so it is the whole alphanumeric run there, and a run that fails _QID is no id (the two
# alternatives overlap, so they are tested apart from the onepass envelope regex).
_QID_LEAD = r"([0-9A-Za-z]{5,24}): "

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
    # split() cuts a queue id candidate off the body (`lead`; `body` is then what follows it). `_i`
    # keeps the envelope's row order for the unknown lines. Frames are cut down to the columns still
    # needed before each filter: a filter copies every column it carries.
    env = split(lines, ctx, lead=_QID_LEAD).with_row_index("_i")
    ok, prog, lead = pl.col("ok"), pl.col("program"), pl.col("lead")
    is_pf, is_amavis = env.select(
        (ok & prog.str.starts_with("postfix")).alias("pf"), (ok & prog.str.starts_with("amavis")).alias("am")
    ).get_columns()
    pf = env.select("_i", "line_no", "line", "time", "host", "program", "pid", "body", "lead").filter(is_pf)
    pf = pf.with_columns(pl.when(lead.str.contains(_QID)).then(lead).alias("queue_id"))
    q = pf.filter(pl.col("queue_id").is_not_null()).select(
        "line_no", "time", "host", "program", "queue_id", pl.col("body").alias("rest")
    )
    # The first two characters of the rest, a short string that compares fast: each handler first
    # keeps the rows whose key its own test needs (its test starts with that text), then runs that
    # test on those rows only.
    q = q.with_columns(_daemon(q.get_column("program")).alias("daemon"), pl.col("rest").str.slice(0, 2).alias("_key"))
    # no queue id: the candidate split() cut off ("NOQUEUE", "statistics") goes back on the body
    body = pl.when(lead.is_null()).then("body").otherwise(pl.concat_str(lead, pl.lit(": "), "body"))
    nq = pf.filter(pl.col("queue_id").is_null()).select(
        "_i", "line_no", "line", "time", "host", "program", body.alias("body")
    )
    noqueue = _noqueue_rejects(nq)
    nodata = _sessions_without_data(pf, ctx.state.setdefault(NAME, {}))
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
        noqueue,
        nodata,
        *_amavis(env.select("line_no", "time", "host", "program", "body").filter(is_amavis)),
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
    unknown = _unknown(env, nq, noqueue.get_column("line_no"))
    return Parsed(events=events, unknown=unknown)


def _daemon(program: pl.Series) -> pl.Series:
    """postfix/submission/smtpd -> smtpd: worked out once per distinct program (a batch has a handful)."""
    names = program.unique()
    return program.replace_strict(names, names.str.extract(r"([^/]+)$", 1), default=None, return_dtype=pl.String)


def _finish(events: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    if not events.height:
        return conform(pl.DataFrame(schema=EVENT_SCHEMA), EVENT_SCHEMA)
    # sorted before the constant columns are added: the sort moves every column it carries
    events = events.sort("line_no").with_columns(
        organization_column(events.get_column("host"), ctx).alias("organization"),
        pl.lit(NAME).alias("format"),
        pl.lit(ctx.source).alias("source"),
    )
    if all(events.schema.get(c) == t for c, t in EVENT_SCHEMA.items()):
        return events.select(list(EVENT_SCHEMA))  # conform's casts would all be no-ops
    return conform(events, EVENT_SCHEMA)


def _unknown(env: pl.DataFrame, nq: pl.DataFrame, noqueue: pl.Series) -> pl.DataFrame:
    """Lines that match no known shape: not syslog at all, or postfix lines we do not recognise.

    A postfix line without a queue id is recognised when it is noise or a NOQUEUE reject (the only
    events such lines give); `_i` puts both kinds back in the envelope's order.
    """
    not_syslog = env.filter(~pl.col("ok")).filter(pl.col("line").str.strip_chars() != "")
    odd_postfix = nq.filter(~pl.col("body").str.contains(_NOISE) & ~pl.col("line_no").is_in(noqueue.implode()))
    parts = [not_syslog.select("_i", "line_no", "line"), odd_postfix.select("_i", "line_no", "line")]
    return pl.concat(parts).sort("_i").select("line_no", "line")


def _keyed(q: pl.DataFrame, *keys: str) -> pl.DataFrame:
    """The rows whose rest starts with one of these two-character keys."""
    key = pl.col("_key")
    return q.filter(pl.any_horizontal(key.eq(k) for k in keys))  # a few eq: cheaper than is_in on strings


def _cols(df: pl.DataFrame, kind: str, *exprs: pl.Expr) -> pl.DataFrame:
    return df.select("line_no", "time", "host", "program", "queue_id", pl.lit(kind).alias("kind"), *exprs)


def _host_ip(text: pl.Expr, prefix: str) -> list[pl.Expr]:
    g = text.str.extract_groups(prefix + r"([^\[\s,]*)\[([^\]]*)\]")
    return [g.struct.field("1").alias("client_host"), ip_or_null(g.struct.field("2")).alias("client_ip")]


def _client(q: pl.DataFrame) -> pl.DataFrame:
    # smtpd 3F1A22C01: client=host[ip], orig_client=host[ip]   (orig_client: after-queue filter re-injection)
    df = _keyed(q, "cl").filter(pl.col("daemon").eq("smtpd") & pl.col("rest").str.starts_with("client="))
    if not df.height:
        return df
    host, ip = _host_ip(pl.col("rest"), r"^client=")
    if not df.get_column("rest").str.contains("orig_client=", literal=True).any():
        return _cols(df, "client", host, ip)
    ohost, oip = _host_ip(pl.col("rest"), r"orig_client=")
    return _cols(df, "client", pl.coalesce(ohost, host).alias("client_host"), pl.coalesce(oip, ip).alias("client_ip"))


def _msgid(q: pl.DataFrame) -> pl.DataFrame:
    # cleanup 3F1A22C01: message-id=<abc@example.com>   (may be empty or lack brackets)
    df = _keyed(q, "me").filter(pl.col("rest").str.starts_with("message-id="))
    if not df.height:
        return df
    # the whole value as logged, spaces included (a corrupted header: `message-id=<eyJ... H i1Cd...`);
    # trailing blanks are dropped, as the --message-id filter drops them from what is typed
    message_id = pl.col("rest").str.strip_prefix("message-id=").str.strip_chars_end()
    return _cols(df, "msgid", message_id.alias("message_id"))


def _qmgr_from(q: pl.DataFrame) -> pl.DataFrame:
    # qmgr 3F1A22C01: from=<alice@example.com>, size=1234, nrcpt=2 (queue active)
    df = _keyed(q, "fr").filter(pl.col("daemon").eq("qmgr") & pl.col("rest").str.starts_with("from=<"))
    if not df.height:
        return df
    # "s(?:ize=...|tatus=expired)": the two branches factored on their shared 's' make the regex
    # onepass (half the cost); group 4 is only tested for null. [0-9], not \d: \d also takes other
    # scripts' digits, which the Int64 cast refuses, and one such line would fail its whole chunk
    g = pl.col("rest").str.extract_groups(r"^from=<([^>]*)>, s(?:ize=([0-9]+), nrcpt=([0-9]+)|(tatus=expired))")
    df = df.with_columns(g.alias("_g"))
    expired = df.filter(pl.col("_g").struct.field("4").is_not_null())
    received = df.filter(pl.col("_g").struct.field("2").is_not_null())
    return pl.concat(
        [
            _cols(
                received,
                "receive",
                pl.col("_g").struct.field("1").alias("sender"),
                # strict=False: a value too big for Int64 is null, the line still counts
                pl.col("_g").struct.field("2").cast(pl.Int64, strict=False).alias("size"),
                pl.col("_g").struct.field("3").cast(pl.Int64, strict=False).alias("nrcpt"),
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
    df = q.filter(pl.col("daemon").eq("pickup")).filter(pl.col("rest").str.contains("from=<", literal=True))
    if not df.height:
        return df
    return _cols(df, "receive", pl.col("rest").str.extract(r"from=<([^>]*)>", 1).alias("sender"))


def _removed(q: pl.DataFrame) -> pl.DataFrame:
    # qmgr 3F1A22C01: removed   (also postsuper's removal of a queued message)
    return _cols(_keyed(q, "re").filter(pl.col("rest").eq("removed")), "removed")


# A delivery line as Postfix writes it (log_adhoc.c), in one onepass regex: each field stops at a
# character its class excludes, so one capture pass reads it with no backtracking. On a line it
# matches, _TO and _OUTCOME capture the very same texts: the addresses, relay and ip hold no ',',
# so the first ", delay=" is the real one, and delays= holds no "dsn=". Other lines (an address
# with '<' or ',', extra fields between delay and dsn) take _TO and _OUTCOME.
_DELIVERY = (
    r"^to=<([^<>,\s]*)>, (?:orig_to=<([^<>,\s]*)>, )?relay=([^,\[\]\s]*)(?:\[([^\[\],\s]*)\](?::\d+)?)?, "
    r"(?:conn_use=\d+, )?delay=([0-9.]+), delays=[0-9./]*, dsn=([0-9]\.[0-9]{1,3}\.[0-9]{1,3}), status=([a-z-]+)"
)
_TO = r"^to=<?([^>,\s]*)>?, (?:orig_to=<?([^>,\s]*)>?, )?relay=([^,\[\s]*)(?:\[([^\]]*)\])?"
# the three short fields in one pass; other fields (conn_use=, tls=) may sit between them
_OUTCOME = r", delay=([\d.]+), .*?dsn=(\d\.\d{1,3}\.\d{1,3}), status=([a-z-]+)"
_STATUS = {"sent": "Delivered", "deferred": "Pending", "bounced": "Failed", "expired": "Failed"}


def _deliveries(q: pl.DataFrame) -> pl.DataFrame:
    # smtp 3F1A22C01: to=<bob@x>, orig_to=<b@x>, relay=mx.x[203.0.113.7]:25, delay=1.2, delays=..., dsn=2.0.0, status=sent (250 ...)
    df = _keyed(q, "to").filter(pl.col("daemon").is_in(_DELIVERY_DAEMONS) & pl.col("rest").str.starts_with("to="))
    if not df.height:
        return df
    rest = pl.col("rest")
    df = df.with_columns(
        rest.str.extract_groups(_DELIVERY).alias("_d"), rest.str.find(", status=", literal=True).alias("_at")
    )
    fields = [pl.col("_d").struct.field(str(i)) for i in range(1, 8)]
    if df.get_column("_d").struct.field("1").null_count():
        # where _DELIVERY failed its fields are all null, and where it matched the others are
        odd = pl.when(fields[0].is_null()).then(rest)
        g, o = odd.str.extract_groups(_TO), odd.str.extract_groups(_OUTCOME)
        general = [g.struct.field(str(i)) for i in range(1, 5)] + [o.struct.field(str(i)) for i in range(1, 4)]
        fields = [pl.coalesce(a, b) for a, b in zip(fields, general, strict=True)]
    recipient, orig, relay, ip, delay, dsn, raw = fields
    df = df.with_columns(raw.alias("_raw"))
    raw = pl.col("_raw")
    status = raw.replace_strict(_STATUS, default="Failed")
    # "sent (250 ok)" from just after ", status=" (an ASCII literal, so a byte cut there is on a
    # character boundary), then the status and " (" are stripped as text: a byte count past the
    # status would cut a character in two where something else follows it, and fail the chunk
    response = from_byte(rest, pl.col("_at") + 9).str.strip_prefix(raw).str.strip_prefix(" (").str.strip_suffix(")")
    # address verification probes (status=deliverable, undeliverable, undeliverable-but-not-cached) deliver nothing
    df = df.filter(raw.is_not_null() & ~raw.str.contains("deliverable", literal=True)).select(
        "line_no",
        "time",
        "host",
        "program",
        "queue_id",
        recipient.alias("recipient"),
        orig.alias("orig_recipient"),
        relay.alias("relay"),
        ip_or_null(ip).alias("to_ip"),
        delay.cast(pl.Float64, strict=False).alias("delay"),
        dsn.alias("dsn"),
        raw,
        status.alias("status"),
        clip(response).alias("detail"),
    )
    # A hand-off to a content filter on the loopback (amavis on 10024) that answered
    # "queued as NEWQID", or local(8) forwarding (`status=sent (forwarded as NEWQID)`): the
    # message continues under NEWQID on this host. Any other server answering "queued as" names
    # its own queue, which may still be this host's (a filter listening on the host's own IP,
    # multi-instance Postfix): next_queue_id keeps the name, and correlation links it only when
    # NEWQID's client is the IP it was sent to.
    sent = raw.eq("sent")
    loopback = pl.col("to_ip").str.starts_with("127.") | pl.col("to_ip").eq("::1")
    queued_as = pl.when(sent).then(pl.col("detail")).str.extract(r"queued as ([0-9A-Za-z]+)\)?$", 1)
    forwarded = (
        pl.when(sent & pl.col("relay").eq("local"))
        .then(pl.col("detail"))
        .str.extract(r"^forwarded as ([0-9A-Za-z]+)$", 1)
    )
    df = df.with_columns(pl.coalesce(forwarded, queued_as).alias("next_queue_id"))
    # A multi-instance Postfix names each instance by its IP (`postfix-170.55.103.23/smtp`): sent to
    # that IP, the mail is with another instance or a filter of this host, not delivered yet, even
    # when the rest of its way is not in the log.
    own_ip = pl.col("program").str.extract(r"^[^/]*?-([0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:]*)/", 1)
    to_self = loopback | pl.col("relay").eq("local") | own_ip.eq(pl.col("to_ip"))
    handoff = pl.col("next_queue_id").is_not_null() & to_self.fill_null(False)
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


# smtpd sessions open at the end of a batch (their client= seen, their disconnect not yet), kept
# in the parser state for the next batch of the same source; a bound for processes that died
# mid-session and never logged their disconnect.
_OPEN_SESSIONS_KEPT = 10_000


def _sessions_without_data(pf: pl.DataFrame, state: dict) -> pl.DataFrame:
    """`nodata` events: an smtpd session that gave a queue id (`QID: client=`) and ended without
    DATA (`disconnect from ...` with no `data=` count: a recipient-verification probe).

    A session is one smtpd process's lines from `client=` to `disconnect`; the disconnect names no
    queue id, so it takes the queue id of the line before it among that process's `client=` and
    `disconnect` lines, if that line is a `client=` (a client= of an earlier session is followed
    by that session's own disconnect). Sessions still open at the end of the batch are carried
    in `state` (host, program, pid, queue id) to the next batch of the same source.

    Disconnects without DATA are rare, so only they look back (a backward as-of join by process
    over the lines in log order): sorting every session of a busy server cost a sixth of the parse.
    """
    body, qid = pl.col("body"), pl.col("queue_id")
    smtpd = pl.col("program").str.ends_with("/smtpd")
    client = qid.is_not_null() & body.str.starts_with("client=")
    disconnect = qid.is_null() & body.str.starts_with("disconnect from ")
    session = ["host", "program", "pid"]
    lines = pf.filter(smtpd & (client | disconnect)).select(
        pl.col("_i").cast(pl.Int64), "line_no", "time", *session, "queue_id", "body"
    )
    carried = pl.DataFrame(
        state.get("sessions") or [],
        schema={"host": pl.String, "program": pl.String, "pid": pl.String, "queue_id": pl.String},
        orient="row",
    )
    if not lines.height:
        return lines.clear()  # nothing ended; the sessions carried stay open
    # the client= line of a session still open before this batch comes first (index -1)
    looked_back = pl.concat(
        [carried.with_columns(pl.lit(-1, pl.Int64).alias("_i")), lines.select("_i", *session, "queue_id")],
        how="diagonal_relaxed",
    ).rename({"queue_id": "_qid"})
    probes = lines.filter(qid.is_null() & ~body.str.contains(" data=", literal=True))
    # both sides are in log order (_i grows; the carried lines come first): nothing to check
    ended = probes.join_asof(
        looked_back, on="_i", by=session, strategy="backward", allow_exact_matches=False, check_sortedness=False
    )
    state["sessions"] = _still_open(carried, lines, session)
    return ended.filter(pl.col("_qid").is_not_null()).select(
        "line_no",
        "time",
        "host",
        "program",
        pl.col("_qid").alias("queue_id"),
        pl.lit("nodata").alias("kind"),
        clip(body).alias("detail"),
    )


def _still_open(carried: pl.DataFrame, lines: pl.DataFrame, session: list[str]) -> list[list[str | None]]:
    """The sessions whose last line so far is their client=: those carried that logged nothing in
    this batch, and those of the batch's last _OPEN_SESSIONS_KEPT lines (older ones are processes
    that died mid-session)."""
    qid = pl.col("queue_id")
    tail = lines.tail(_OPEN_SESSIONS_KEPT)
    last = tail.group_by(session, maintain_order=True).agg(qid.last()).filter(qid.is_not_null())
    if carried.height:
        seen = lines.filter(pl.col("pid").is_in(carried.get_column("pid").implode())).select(session).unique()
        quiet = carried.join(seen, on=session, how="anti", nulls_equal=True)
        last = pl.concat([quiet, last.select(carried.columns)])
    return [list(r) for r in last.tail(_OPEN_SESSIONS_KEPT).iter_rows()]


def _bounce(q: pl.DataFrame) -> pl.DataFrame:
    # bounce 3F1A22C01: sender non-delivery notification: 4B2C33D02
    df = q.filter(pl.col("daemon").eq("bounce")).filter(pl.col("rest").str.contains("notification: ", literal=True))
    if not df.height:
        return df
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
    df = _keyed(q, "re", "mi").filter(pl.col("rest").str.contains(r"^(?:milter-)?reject: "))
    if not df.height:
        return df
    return _rejects(df, pl.col("rest"))


def _holds(q: pl.DataFrame) -> pl.DataFrame:
    # cleanup 3F1A22C01: milter-hold: END-OF-MESSAGE ...; postsuper 3F1A22C01: placed on hold
    # cleanup 3F1A22C01: discard: header Subject: ...  (header_checks DISCARD: dropped as unwanted)
    rest = pl.col("rest")
    held = rest.str.contains(r"^(?:milter-)?hold: ") | rest.eq("placed on hold")
    dropped = rest.str.contains(r"^(?:milter-)?discard: ")
    df = _keyed(q, "mi", "ho", "pl", "di").filter(held | dropped)
    if not df.height:
        return df
    status = pl.when(held).then(pl.lit("Quarantined")).otherwise(pl.lit("FilteredAsSpam"))
    # the trailer names the sender and one recipient: the message's row for that recipient
    return _cols(df, "hold", status.alias("status"), *_envelope(rest), clip(rest).alias("detail"))


def _subject(q: pl.DataFrame) -> pl.DataFrame:
    # cleanup 3F1A22C01: warning: header Subject: Hello there from h[ip]; from=<a> to=<b> proto=ESMTP
    # cleanup 3F1A22C01: info: header Subject: Cron <root@mx1> date from local; from=<root> to=<root>   (pickup)
    df = _keyed(q, "wa", "in").filter(pl.col("rest").str.contains(r"^(?:warning|info): header Subject: "))
    if not df.height:
        return df
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


def _amavis(am: pl.DataFrame) -> list[pl.DataFrame]:
    """The verdict lines of amavis: a hold for Blocked mail, the headers it names for every message."""
    if not am.height:
        return []
    return [_amavis_blocked(am), _amavis_headers(am)]


def _amavis_blocked(am: pl.DataFrame) -> pl.DataFrame:
    # amavis[1]: (01-02) Blocked SPAM {DiscardedInbound,Quarantined}, [ip]:port <a> -> <b>, Queue-ID: 3F1A22C01, ...
    body = pl.col("body")
    df = am.filter(body.str.contains(r"\) Blocked [A-Z-]+ ") & body.str.contains("Queue-ID: ", literal=True))
    if not df.height:
        return df
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
        df, "hold", status.alias("status"), clip(from_byte(body, body.str.find(") ", literal=True) + 2)).alias("detail")
    )


# amavis quotes the Subject in double quotes, doubling any inside it; a subject it had to decode
# (MIME encoded words) is followed, inside the quotes, by " (raw: =?utf-8?B?...?=)".
_AMAVIS_SUBJECT = r', Subject: "((?:[^"]|"")*)"'
_AMAVIS_MSGID = r", Message-ID: (<[^<>]*>)"


def _amavis_headers(am: pl.DataFrame) -> pl.DataFrame:
    # amavis[2]: (2-11) Passed CLEAN {RelayedInbound}, [ip]:port [ip] <a> -> <b>, Queue-ID: 4PbC4x469Jz3tBr,
    #   Message-ID: <7181@ajmyjyz>, mail_id: VQpG, Hits: 2.9, size: 175061, queued_as: 4PbC4z6W5Qz3tG3,
    #   Subject: "Individuelle Prognose (raw: =?utf-8?B?SW5k...?=)", From: <a>, helo=..., 2131 ms
    # The message is the one amavis names: its Queue-ID (amavisd-new 2.6 and later), else the queue
    # id it re-injected the message under (queued_as), which is the same message's next hop.
    body = pl.col("body")
    verdict = body.str.contains(r"^\([0-9-]+\) (?:Passed|Blocked) ")
    names = body.str.contains(', Subject: "', literal=True) | body.str.contains("Message-ID: ", literal=True)
    df = am.filter(verdict & names)
    if not df.height:
        return df
    qid = pl.coalesce(
        body.str.extract(r"Queue-ID: ([0-9A-Za-z]+)", 1), body.str.extract(r"queued_as: ([0-9A-Za-z]+)", 1)
    )
    subject = (
        body.str.extract(_AMAVIS_SUBJECT, 1).str.replace_all('""', '"', literal=True).str.replace(r" \(raw: .*\)$", "")
    )
    df = df.with_columns(qid.alias("queue_id")).filter(pl.col("queue_id").is_not_null())
    return _cols(df, "subject", subject.alias("subject"), body.str.extract(_AMAVIS_MSGID, 1).alias("message_id"))
