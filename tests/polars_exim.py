"""The reference for the compiled Exim parser (ingest/formats/exim.py, rust/src/exim.rs): the
vectorised Polars parser that was on the production path until issue 16, kept unchanged so that
tests/test_exim_rust.py can compare the two on every fixture, the corpus and generated logs.

Exim mainlog: arrivals, deliveries, deferrals, failures and rejects, bare or behind syslog/journald.

    2026-03-03 09:15:01 1vA1bC-0000Ab-1x <= al@example.org H=mx.example.org (helo) [192.0.2.1]:4321 P=esmtps S=2048 id=a@b T="Hi"
    2026-03-03 09:15:02.123 +0100 [4242] 1vA1bC-0000Ab-1x => bob@example.com <team@example.com> R=dnslookup T=remote_smtp H=mx.example.com [198.51.100.7] C="250 OK" QT=1s
    Mar  3 09:15:03 mx1 exim[4242]: 1vA1bC-0000Ab-1x Completed
    mx1 exim[4242]: 2026-03-03 09:15:04 H=(x) [203.0.113.9] F=<a@b> rejected RCPT <c@d>: relay not permitted

Message ids have 16 (1vA1bC-0000Ab-1x) or 23 (10HmaX-000000005vi-0000) characters; each id is one message.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import polars as pl

from msgtrace.ingest.formats import Parsed
from msgtrace.ingest.formats.context import ParseContext, organization_column
from msgtrace.ingest.schema import EVENT_SCHEMA, TIME, conform
from tests import polars_syslog as sl
from tests.polars_common import DETAIL_MAX, reject_status, tail_from

NAME = "exim"

_TS = r"^(?:(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?)(?: ([+-]\d{4}))? )?(?:\[\d+\] )?"
_ID = r"^[0-9A-Za-z]{6}-(?:[0-9A-Za-z]{6}-[0-9A-Za-z]{2}|[0-9A-Za-z]{11}-[0-9A-Za-z]{4})(?: |$)"
_JOURNAL = r"^(\S+) (exim[\w.-]*)(?:\[\d+\])?: "
_DETECT = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [+-]\d{4})? (?:\[\d+\] |[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4} "
    r"|(?:Start|End) queue run|H=|SMTP connection from|exim \d)"
    r"|^(?:\S+ +){1,5}exim[\w.-]*(?:\[\d+\])?: "
)
_OTHER_MTA = re.compile(r" (?:postfix[\w.-]*/\w+|sendmail|sm-mta|sm-msp-queue)(?:\[\d+\])?: ")

# `=> final (parents) <original>`; a pipe may hold spaces, so it runs up to the parents or original.
_ADDR = r"^\S\S (?P<disp>\|[^<(]*[^<( ]|\S+)(?: \((?P<parents>[^)]*)\))?(?: <(?P<top>[^>]*)>)?"
_STATUS = {"=>": "Delivered", "->": "Delivered", ">>": "Delivered", "*>": "Delivered", "==": "Pending", "**": "Failed"}
_REJECT = r"(?:^| )(?:temporarily )?rejected (?:RCPT|MAIL|after DATA|from <|by |during |DKIM)"
# Lines without a message id that are Exim's own but say nothing about a message: dropped, not unknown.
_NOISE = (
    r"^(?:(?:Start|End) .*queue run|too many recipients|ignoring |SMTP |no MAIL in SMTP|no host name found|no IP address found|unexpected disc"
    r"|exim |Connection|TLS |H=|U=|F=|Warning:|cwd=|rejected |daemon |pid |listening |Authentication |sender verify "
    r"|SIGHUP|tls_|\S+ authenticator failed)"
)


def detect(sample: list[str]) -> bool:
    """True when the first lines look like an Exim mainlog (bare, [pid], syslog- or journald-prefixed)."""
    lines = [s for s in sample if s.strip()][:50]
    exim = sum(1 for s in lines if _DETECT.search(s))
    return exim > 0 and not any(_OTHER_MTA.search(s) for s in lines)


def parse(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Exim lines -> events (receive, deliver, expand, bounce, reject, hold, removed, info) and unknown lines."""
    df = _envelope(lines, ctx)
    rest = pl.col("rest")
    # An id is 16 (1vA1bC-0000Ab-1x) or 23 (10HmaX-000000005vi-0000) characters; slices beat a capture here.
    idlen = pl.when(rest.str.slice(13, 1) == "-").then(16).otherwise(23)
    df = df.with_columns((rest.str.contains(_ID) & pl.col("ok")).alias("_has_id"), idlen.alias("_idlen"))
    ided = df.filter("_has_id").with_columns(
        rest.str.slice(0, pl.col("_idlen")).alias("queue_id"), rest.str.slice(pl.col("_idlen") + 1).alias("text")
    )
    ided = ided.with_columns(pl.col("text").str.slice(0, 3).alias("flag"))
    noid = df.filter(~pl.col("_has_id")).with_columns(pl.lit(None, pl.String).alias("queue_id"), rest.alias("text"))
    flag = pl.col("flag")
    recv = _when_any(_receives, ided.filter(flag.is_in(["<= ", "(= "])))
    dlv = _when_any(_deliveries, ided.filter(flag.is_in(_FLAGS)))
    other = ided.filter(~flag.is_in(["<= ", "(= ", *_FLAGS]))
    other = other.with_columns(_is_reject(pl.col("text")).alias("_rej"))
    noid = noid.with_columns((_is_reject(pl.col("text")) & pl.col("ok")).alias("_rej"))
    done = other.filter(pl.col("text") == "Completed").select("queue_id", "host", "line_no")
    parts = [
        recv,
        _bounces(recv),
        dlv,
        _expansions(dlv, done, ctx),
        _when_any(_rejects, pl.concat([other.filter("_rej"), noid.filter("_rej")], how="diagonal")),
        _when_any(_message_lines, other.filter(~pl.col("_rej"))),
    ]
    # Grouped by kind, each group in line order: a global sort would cost a third of the parse; sort by line_no when needed.
    events = pl.concat([conform(p, _WORK) for p in parts if p.height] or [pl.DataFrame(schema=_WORK)])
    events = events.with_columns(
        organization_column(events.get_column("host"), ctx).alias("organization"),
        pl.lit(NAME).alias("format"),
        pl.lit(ctx.source).alias("source"),
    )
    noise = pl.col("ok") & pl.col("text").str.contains(_NOISE)
    unknown = noid.filter(~pl.col("_rej") & ~noise).select("line_no", "line")
    return Parsed(events=conform(events, EVENT_SCHEMA), unknown=unknown)


_FLAGS = [f + " " for f in _STATUS]


_WORK = {k: v for k, v in EVENT_SCHEMA.items() if k not in ("organization", "format", "source")}


def _when_any(fn: Callable[[pl.DataFrame], pl.DataFrame], df: pl.DataFrame) -> pl.DataFrame:
    """fn(df), or no events at all for an empty frame (small batches pay per operation, not per line)."""
    return fn(df) if df.height else pl.DataFrame(schema=_WORK)


def _is_reject(text: pl.Expr) -> pl.Expr:
    return text.str.contains("rejected ", literal=True) & text.str.contains(_REJECT)


def _envelope(lines: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """line_no, line, time (UTC), host, program, rest (the Exim part after timestamp and [pid]), ok.

    The common shape (`YYYY-MM-DD HH:MM:SS [[pid] ]...`) is cut by offsets; fractions, zones and
    syslog/journald prefixes take the slower regex path.
    """
    line = pl.col("line")
    lines = lines.select("line_no", "line")
    fast = line.str.contains(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?:\[\d+\] )?[^\[+\-]")
    fast &= ~line.str.contains(" exim", literal=True)
    lines = lines.with_columns(fast.alias("_fast"))
    pid = pl.when(line.str.slice(20, 1) == "[").then(line.str.slice(20, 12).str.find("] ", literal=True) + 2)
    plain = lines.filter("_fast").select(
        "line_no",
        "line",
        pl.lit(None, TIME).alias("_zoned"),
        pl.lit(None, TIME).alias("stime"),
        pl.lit(None, pl.String).alias("shost"),
        pl.lit(None, pl.String).alias("program"),
        line.str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).alias("_local"),
        line.str.slice(pid.fill_null(0) + 20).alias("rest"),
    )
    slow = lines.filter(~pl.col("_fast"))
    if slow.height:
        slow = _slow_envelope(slow, ctx)
    df = pl.concat([plain, slow.select(plain.columns)]).sort("line_no") if slow.height else plain
    # Zone-less Exim times are wall time in ctx.timezone; localize() resolves the DST edges in line order.
    # It runs once per run of equal times (many lines share a second), which gives the same answer.
    df = df.with_columns(pl.col("_local").forward_fill().rle_id().alias("_run"))
    runs = df.filter(pl.col("_run").diff().fill_null(1) != 0).select(pl.col("_local").forward_fill())
    utc = runs.select(sl.localize(pl.col("_local"), ctx, NAME)).to_series().gather(df.get_column("_run"))
    sl.remember_max_local(df, "_local", ctx, NAME)
    local = pl.when(pl.col("_local").is_not_null()).then(pl.lit(utc))
    time = pl.coalesce(pl.col("_zoned"), local, pl.col("stime"))
    return df.select(
        "line_no",
        "line",
        "rest",
        time.cast(TIME).alias("time"),
        pl.coalesce(pl.col("shost"), pl.lit(ctx.host or "")).alias("host"),
        pl.col("program").fill_null(NAME),
        time.is_not_null().alias("ok"),
    )


def _slow_envelope(lines: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """The envelope of lines with a fraction, a zone, a syslog or journald prefix, or no timestamp at all."""
    lines = lines.filter(pl.col("line").str.contains(r"\S"))
    lines = lines.with_columns(pl.col("line").str.contains(" exim", literal=True).alias("_pre"))
    plain = lines.filter(~pl.col("_pre")).with_columns(
        pl.lit(None, TIME).alias("stime"),
        pl.lit(None, pl.String).alias("shost"),
        pl.lit(None, pl.String).alias("program"),
        pl.col("line").alias("body"),
    )
    pre = lines.filter("_pre")
    if pre.height:
        sp = sl.split(pre, ctx)
        ok = sp["ok"] & sp["program"].str.starts_with("exim").fill_null(False)
        j = sp.select(pl.col("line").str.extract_groups(_JOURNAL).alias("j")).unnest("j")
        jlen = sp["line"].str.extract(_JOURNAL, 0).str.len_chars()
        pre = sp.select(
            "line_no",
            "line",
            pl.when(ok).then(pl.col("time")).alias("stime"),
            pl.when(ok).then(pl.col("host")).otherwise(j["1"]).alias("shost"),
            pl.when(ok).then(pl.col("program")).otherwise(j["2"]).alias("program"),
            pl.when(ok).then(pl.col("body")).otherwise(pl.col("line").str.slice(jlen.fill_null(0))).alias("body"),
        )
        plain = pl.concat([plain.select(pre.columns), pre])
    ts = pl.col("body").str.extract_groups(_TS)
    df = plain.with_columns(
        ts.struct.field("1").alias("_ts"),
        ts.struct.field("2").alias("_tz"),
        pl.col("body").str.extract(_TS, 0).str.len_chars().alias("_tslen"),
    )
    naive = pl.col("_ts").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False)
    zoned = pl.concat_str(pl.col("_ts"), pl.col("_tz"), separator=" ").str.to_datetime(
        "%Y-%m-%d %H:%M:%S%.f %z", strict=False, time_zone="UTC"
    )
    return df.select(
        "line_no",
        "line",
        "stime",
        "shost",
        "program",
        pl.when(pl.col("_tz").is_null()).then(naive).alias("_local"),
        zoned.cast(TIME).alias("_zoned"),
        pl.col("body").str.slice(pl.col("_tslen")).alias("rest"),
    )


def _receives(df: pl.DataFrame) -> pl.DataFrame:
    """`<=` arrivals (and `(=` fake-rejected ones, which Exim still delivers)."""
    t = pl.col("text")
    df = df.with_columns(
        t.str.extract(r"^.= (\S+)", 1).alias("sender"),
        t.str.extract(r" S=(\d+)", 1).cast(pl.Int64, strict=False).alias("size"),
        t.str.extract(r" id=(\S+)", 1).alias("_msgid"),
        t.str.extract(r' T="((?:[^"\\]|\\.)*)"', 1).alias("_subject"),
        # `for a b c` (log_selector +received_recipients) ends the line; a quote would mean it is in the subject.
        t.str.extract(r" for ([^\"]+)$", 1).alias("_for"),
        t.str.extract(r" R=(\S+)", 1).alias("_parent"),  # the message a bounce is about; see _bounces
        client(t).alias("_client"),
    ).unnest("_client")
    return df.with_columns(
        pl.lit("receive").alias("kind"),
        pl.when(pl.col("sender") == "<>").then(pl.lit("")).otherwise("sender").alias("sender"),
        ("<" + pl.col("_msgid") + ">").alias("message_id"),
        pl.col("_subject").str.replace_all(r'\\(["\\])', "$1").alias("subject"),
        (pl.col("_for").str.count_matches(" ", literal=True) + 1).cast(pl.Int64).alias("nrcpt"),
    )


def _bounces(recv: pl.DataFrame) -> pl.DataFrame:
    """`<= <> R=parent`: a bounce of `parent`, queued as a message of its own; noted on the parent."""
    if "_parent" not in recv.columns:
        return recv
    b = recv.filter((pl.col("sender") == "") & pl.col("_parent").is_not_null())
    return b.select(
        "time",
        "host",
        "program",
        "line_no",
        pl.lit("bounce").alias("kind"),
        pl.col("_parent").alias("queue_id"),
        pl.col("queue_id").alias("next_queue_id"),
    )


def _deliveries(df: pl.DataFrame) -> pl.DataFrame:
    """`=> -> >> *> == **`: one recipient per line, its status, relay, response and delay."""
    t, disp, top = pl.col("text"), pl.col("disp"), pl.col("top")
    # Each field is extracted once into a column: eager Polars would re-run a reused expression.
    df = df.with_columns(
        t.str.extract_groups(_ADDR).alias("_a"),
        # two one-group extractions cost less than one with two groups
        t.str.extract(r" H=(\S+)", 1).alias("hname"),
        t.str.extract(r" H=\S+ \[([^\]]+)\]", 1).alias("hip"),
        t.str.extract(r" T=(\S+)", 1).alias("_transport"),
        t.str.extract(r" QT=(\S+)", 1).alias("_qt"),
        t.str.slice(0, 2).alias("_flag"),
        # Where the response or reason starts: C="..." after a delivery, "defer (" or the first ": ".
        pl.when(t.str.starts_with("**"))
        .then(t.str.find(": ", literal=True) + 2)
        .when(t.str.starts_with("=="))
        .then(t.str.find("defer (", literal=True))
        .otherwise(t.str.find(' C="', literal=True) + 4)
        .alias("_at"),
    ).unnest("_a")
    # A pipe, file, autoreply or :blackhole: is not an address: the recipient is the address redirected to it.
    pfr = disp.str.starts_with("|") | disp.str.starts_with("/") | disp.str.starts_with(">") | (disp == ":blackhole:")
    domain = top.str.extract(r"@([^@\s]+)$", 1)
    # A local delivery shows just the local part (`=> bob <bob@example.com>`); give it the domain of the original.
    local = pl.when(disp.str.contains("@", literal=True) | domain.is_null()).then(disp).otherwise(disp + "@" + domain)
    parent = pl.col("parents").str.extract(r"^([^,\s]+)", 1)
    df = df.with_columns(
        pl.when(pfr).then(pl.coalesce(parent, top, disp)).otherwise(local).alias("recipient"),
        pl.col("hname").str.extract(r"^\[([^\]]+)\]", 1).alias("_literal"),  # H=[ip]
        tail_from(t, pl.col("_at")).alias("_raw"),
    )
    relay = pl.coalesce(
        pl.when(pl.col("_literal").is_null()).then("hname"), pl.when(pfr).then(disp.str.slice(0, 200)), "_transport"
    )
    orig = pl.when(top.is_not_null() & (top.str.to_lowercase() != pl.col("recipient").str.to_lowercase())).then(top)
    # a response C="..." ends at its closing quote, before QT= DT=
    response = pl.col("_raw").str.replace(r'"(?: \w+=\S*)*$', "")
    detail = (
        pl.when(pl.col("_flag") == "*>")
        .then(pl.coalesce(response, pl.lit("delivery suppressed")))
        .when(pl.col("_flag").is_in(["=>", "->", ">>"]))
        .then(response)
        .otherwise("_raw")
    )
    return df.with_columns(
        pl.lit("deliver").alias("kind"),
        pl.col("_flag").replace_strict(_STATUS, default=None).alias("status"),
        orig.alias("orig_recipient"),
        relay.alias("relay"),
        pl.coalesce("hip", "_literal").alias("to_ip"),
        detail.alias("detail"),
        pl.col("_raw").str.extract(r"\d\d\d[ -]([245]\.\d\d?\d?\.\d\d?\d?)", 1).alias("dsn"),
        _seconds(df.get_column("_qt")).alias("delay"),
    )


def _expansions(dlv: pl.DataFrame, done: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """One `expand` event per original address that several final addresses share (an alias or list).

    Members of one group may arrive in different chunks (a deferred member delivered hours later), so
    groups seen with a single member so far are carried in ctx.state until the message is Completed.
    """
    state = ctx.state.setdefault(NAME, {})
    if not state.get("aliases") and not dlv.select(pl.col("orig_recipient").is_not_null().any()).item():
        return pl.DataFrame(schema=_WORK)
    keys = ["host", "queue_id", "orig_recipient"]
    cur = dlv.filter(pl.col("orig_recipient").is_not_null()).select(*keys, "recipient", "time", "program", "line_no")
    carried = pl.DataFrame(state.get("aliases", []), schema=[*keys, "recipient"], orient="row")
    allm = pl.concat([cur, carried], how="diagonal")
    g = allm.group_by(keys, maintain_order=True).agg(
        pl.col("recipient").str.to_lowercase().n_unique().alias("n"),
        pl.col("recipient").first(),
        pl.col("time").drop_nulls().first(),
        pl.col("program").drop_nulls().first(),
        pl.col("line_no").drop_nulls().first(),
    )
    singles = g.filter(pl.col("n") == 1).join(done, on=["queue_id", "host"], how="anti")
    state["aliases"] = singles.select(*keys, "recipient").tail(_MAX_CARRIED).rows()
    out = g.filter((pl.col("n") > 1) & pl.col("line_no").is_not_null())
    return out.select(
        "time",
        "host",
        "program",
        "queue_id",
        "line_no",
        pl.lit("expand").alias("kind"),
        pl.lit("Expanded").alias("status"),
        pl.col("orig_recipient").alias("recipient"),
        pl.format("expanded to {} recipients", "n").alias("detail"),
    )


_MAX_CARRIED = 100_000


def _rejects(df: pl.DataFrame) -> pl.DataFrame:
    """`rejected RCPT|MAIL|after DATA|from ...`: a message refused before it was queued."""
    t = pl.col("text")
    f = t.str.extract_groups(r"(?:^| )F=(?:<([^>]*)>|(\S+))")
    sender = pl.coalesce(
        f.struct.field("1"), f.struct.field("2"), t.str.extract(r"rejected (?:from|MAIL) <([^>]*)>", 1)
    )
    rcpt = pl.coalesce(t.str.extract(r"rejected RCPT <([^>]*)>", 1), t.str.extract(r"rejected RCPT ([^\s:<>]+)", 1))
    df = df.with_columns(
        # Refused before it was queued, even after DATA with an id assigned: no other line will name
        # that id, so the reject is a message of its own (as NOQUEUE is for Postfix).
        pl.lit(None, pl.String).alias("queue_id"),
        pl.lit("reject").alias("kind"),
        sender.alias("sender"),
        rcpt.alias("recipient"),
        tail_from(t, t.str.find(r"(?:temporarily )?rejected ")).alias("detail"),
        client(t).alias("_client"),
    ).unnest("_client")
    status = reject_status(pl.col("detail"))
    return df.with_columns(status.alias("status"))


def _message_lines(df: pl.DataFrame) -> pl.DataFrame:
    """Other lines of a message: Completed / removed, deliberate freezes (held), the rest as info."""
    t = pl.col("text")
    # A freeze by an ACL, the system filter or an admin holds the message for review until someone thaws it:
    # what Postfix `hold` is, so Quarantined. Automatic freezes ("Frozen", "Frozen (delivery error message)")
    # follow a failed or deferred delivery whose own `**`/`==` line already set each recipient's status, so
    # they are info: a message-wide status would overwrite recipients already delivered or failed.
    hold = t.str.contains(r"^(?:frozen by |Frozen by the system filter)")
    removed = (t == "Completed") | t.str.starts_with("removed by ")
    return df.with_columns(
        pl.when(removed)
        .then(pl.lit("removed"))
        .when(hold)
        .then(pl.lit("hold"))
        .otherwise(pl.lit("info"))
        .alias("kind"),
        pl.when(hold).then(pl.lit("Quarantined")).alias("status"),
        pl.when(t != "Completed").then(t.str.slice(0, DETAIL_MAX)).alias("detail"),
    )


_DUR = r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$"


def _seconds(durations: pl.Series) -> pl.Series:
    """Exim durations (`QT=1h2m3s`, `QT=0.349s`) in seconds; parsed once per distinct value, there are few."""
    u = pl.DataFrame({"d": durations.unique().drop_nulls()})
    g = pl.col("d").str.extract_groups(_DUR)
    units = (604800, 86400, 3600, 60, 1)
    parts = [g.struct.field(str(i + 1)).cast(pl.Float64, strict=False).fill_null(0) * n for i, n in enumerate(units)]
    ok = pl.col("d").str.contains(r"^\d") & pl.col("d").str.contains(_DUR)
    u = u.with_columns(pl.when(ok).then(pl.sum_horizontal(parts)).alias("s"))
    return durations.replace_strict(u["d"], u["s"], default=None, return_dtype=pl.Float64)


# Helpers shared with the Sendmail parser (candidates for a common ingest/formats module).


def client(text: pl.Expr) -> pl.Expr:
    """A struct of client_host and client_ip from Exim's `H=name (helo) [ip]:port`."""
    return text.str.extract_groups(
        r"(?:^| )H=(?:(?P<client_host>[^\s(\[]\S*) )?(?:\([^)]*\) )?\[(?P<client_ip>[^\]]+)\]"
    )
