"""The reference for the compiled Exchange parser (ingest/formats/exchange.py, rust/src/exchange.rs):
the vectorised Polars parser that was on the production path until issue 16, kept unchanged so that
tests/test_exchange_rust.py can compare the two on every fixture, the corpus and generated logs.

Exchange message tracking logs (MSGTRK*.LOG): CSV under a `#Fields` header, one event per line.

    #Software: Microsoft Exchange Server
    #Log-type: Message Tracking Log
    #Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,...
    2026-06-13T10:00:00.120Z,203.0.113.7,mail.fabrikam.com,10.0.0.5,EX01,...,SMTP,RECEIVE,...

Columns are mapped by name from `#Fields` (2010: 26 fields, 2013: 27, 2016/2019: 30); only the
first chunk of a file carries the header, so it is remembered in ctx.state. A batch is read by
Polars' CSV reader over its lines joined back together; a line that derails it (a quote never
closed) sends the batch through a per-line regex instead. Choices that shape a trace:

- queue_id is the network-message-id when the log has one (2013+), else the internal-message-id.
  The internal id differs per server *and* per transport service (Transport, Mailbox Transport
  Submission/Delivery each log their own), so it cannot even join a message's DELIVER to its
  RECEIVE on one server; the network id is one GUID for the message everywhere in the
  organisation and is never reused. 2010 has no network id: its messages join per server only.
- host is ctx.host, else "": no column names the server that wrote the log (server-hostname is
  the next hop on SEND, client-hostname the previous hop on RECEIVE), and all events of a message
  must share one host for the correlator to join them.
- sender is return-path (the envelope MAIL FROM; `<>` becomes ""), else sender-address (a header).
- One row per recipient: outcome events (DELIVER, SEND, FAIL, DEFER, DROP...) carry its status,
  RECEIVE and DSN give each listed recipient GettingStatus (a message only seen arriving still has
  its recipients), EXPAND/RESOLVE/REDIRECT see _rewrites(); anything else is an info row.
"""

from __future__ import annotations

import io

import polars as pl
import pyarrow as pa

from msgtrace.ingest.formats import Parsed
from msgtrace.ingest.formats.context import ParseContext, organization_expr
from msgtrace.ingest.schema import EVENT_SCHEMA, conform
from tests.polars_common import SPAM_REASON, clip

NAME = "exchange"

_F2010 = (
    "date-time", "client-ip", "client-hostname", "server-ip", "server-hostname", "source-context",
    "connector-id", "source", "event-id", "internal-message-id", "message-id", "recipient-address",
    "recipient-status", "total-bytes", "recipient-count", "related-recipient-address", "reference",
    "message-subject", "sender-address", "return-path", "message-info", "directionality", "tenant-id",
    "original-client-ip", "original-server-ip", "custom-data",
)  # fmt: skip
_F2013 = (*_F2010[:11], "network-message-id", *_F2010[11:])
_F2016 = (*_F2013, "transport-traffic-type", "log-id", "schema-version")
# A file read from the middle (no header seen, no saved state): the standard layout of its width.
_BY_WIDTH = {len(f): f for f in (_F2010, _F2013, _F2016)}
_USED = tuple(n for n in _F2016[:22] if n != "connector-id")  # date-time ... message-info

# Events that bring a message in (DSN: the line is logged under the new DSN message's own ids,
# naming the original only by Message-ID in `reference`, so it starts a message with sender <>).
_RECEIVE = ("RECEIVE", "SUBMIT", "DSN")
# Events that decide a recipient's status. DROP is silent (no NDR): spam filtering, else Failed.
# Safety Net RESUBMIT*, shadow (HA*) and moderation events never decide: a resubmission of a
# message already delivered must not turn it back to Pending or Failed.
_OUTCOME = {
    "DELIVER": "Delivered", "DUPLICATEDELIVER": "Delivered", "SEND": "Delivered",
    "FAIL": "Failed", "SUBMITFAIL": "Failed", "BADMAIL": "Failed", "DROP": "Failed",
    "DEFER": "Pending", "SUBMITDEFER": "Pending",
}  # fmt: skip
# The reason names a spam verdict: Exchange's content filter, SCL thresholds, blocklists.
# event-id -> what its line contributes (anything else: info).
_CLASS = {
    **dict.fromkeys(_RECEIVE, "receive"), **dict.fromkeys(_OUTCOME, "deliver"),
    "EXPAND": "expand", "RESOLVE": "rewrite", "REDIRECT": "rewrite",
}  # fmt: skip
_SPAM = SPAM_REASON + r"|content ?filter|(?-u:\bSCL\b)|phish"
# A recipient-status list is `;`-separated, but one status may contain `;` itself
# (`550 4.4.7 QUEUE.Expired;Message expired`): split only before a token that starts a status.
_NEXT_STATUS = r";\s*(\d{3}[ -]|\d\.\d{1,3}\.\d{1,3}(?-u:\b)|(?:To|Cc|Bcc)(?-u:\b))"
_DSN = r"^(?:\d{3}[ -])?([245]\.\d{1,3}\.\d{1,3})"
_SEP = "\x1f"
# One CSV field and its delimiter: quoted (`""` inside), or plain (a quote only after its start).
_FIELD = r'(?:"(?:[^"]|"")*"|[^,"][^,]*|)(?:,|$)'
_ISO = r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)"
_TIME_FMT = "%Y-%m-%dT%H:%M:%S%.fZ"


def detect(sample: list[str]) -> bool:
    """A tracking log: its `#Log-type`, else a `#Fields` line with event-id, else `#Software`."""
    head = [line.lstrip("\ufeff").rstrip("\r") for line in sample[:12]]
    for line in head:
        if line.lower().startswith("#log-type:"):
            return "message tracking" in line.lower()
    for line in head:
        if line.startswith("#Fields:"):
            return "date-time" in line and "event-id" in line
    return bool(head) and head[0].startswith("#Software: Microsoft Exchange Server")


def parse(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Events (EVENT_SCHEMA) from a batch of tracking-log lines; a `#Fields` line updates ctx.state."""
    state = ctx.state.setdefault(NAME, {})
    line = pl.col("line")
    if lines.height and lines.item(0, "line").startswith("\ufeff"):  # a UTF-8 BOM opens the file
        lines = lines.with_columns(line.str.strip_prefix("\ufeff"))
    fields_line = line.str.starts_with("#Fields:")
    heads = lines.filter(fields_line).get_column("line").str.strip_prefix("#Fields:")
    # layouts[k]: the columns of data lines below the k-th `#Fields` line of this chunk
    # (k = 0: above all of them, i.e. the layout remembered from an earlier chunk, if any).
    layouts = [state.get("fields"), *(h.strip().split(",") for h in heads)]
    if heads.len():
        state["fields"] = layouts[-1]
    header_k = fields_line.cum_sum() if heads.len() else pl.lit(0, dtype=pl.UInt32)
    data = lines.with_columns(header_k.alias("_h")).filter(
        ~line.str.starts_with("#") & (line.str.len_bytes() > 0) & (line != "\r")
    )
    events, unknown = [], []
    keys = data.get_column("_h").unique(maintain_order=True).to_list()
    for k in keys:
        part = data if len(keys) == 1 else data.filter(pl.col("_h") == k)
        rows, bad = _rows(part, layouts[k])
        ev, bad2 = _events(rows, ctx)
        events.append(ev)
        unknown += [bad, bad2]
    out = pl.concat(events) if events else pl.DataFrame(schema=EVENT_SCHEMA)
    bad = pl.concat(unknown) if unknown else lines.clear().select("line_no", "line")
    return Parsed(events=out, unknown=bad.sort("line_no"))


def _rows(part: pl.DataFrame, names: list[str] | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The used columns of each data line (null where the layout lacks them), and lines it cannot map."""
    text = part.get_column("line")
    fields = _split_csv(text, names) if names else None
    if fields is not None:
        return _named(fields, part), part.clear().select("line_no", "line")
    # No header (a file read from the middle), or a quote never closed made the CSV reader run
    # across lines: match fields line by line. Matches that skip part of a line mean it is malformed.
    text = text.str.strip_suffix("\r")
    parts = text.str.extract_all(_FIELD)
    whole = parts.list.eval(pl.element().str.len_bytes()).list.sum() == text.str.len_bytes()
    # After a delimiter the regex engine skips the empty match at the end: count that last field back.
    width = parts.list.len() + parts.list.last().str.ends_with(",").cast(pl.UInt32)
    layouts = [(whole, names)] if names else [(whole & (width == w), list(f)) for w, f in _BY_WIDTH.items()]
    out = [_named(_split_regex(parts.filter(ok), n), part.filter(ok)) for ok, n in layouts]
    mapped = pl.select(pl.any_horizontal([ok for ok, _ in layouts])).to_series()
    return pl.concat(out), part.filter(~mapped).select("line_no", "line")


def _used(names: list[str]) -> dict[int, str]:
    """Position -> name of the columns parse reads (the first, should a name repeat)."""
    first = {n: i for i, n in reversed(list(enumerate(names)))}
    return {i: n for n, i in sorted(first.items(), key=lambda kv: kv[1]) if n in _USED}


def _named(fields: pl.DataFrame, part: pl.DataFrame) -> pl.DataFrame:
    """line_no, line and every used column; those the layout lacks (2010: network-message-id) null."""
    have = set(fields.columns)
    cols = [(pl.col(n) if n in have else pl.lit(None, dtype=pl.String)).alias(n) for n in _USED]
    return pl.concat([part.select("line_no", "line"), fields.select(cols)], how="horizontal")


def _split_csv(text: pl.Series, names: list[str]) -> pl.DataFrame | None:
    """Polars' CSV reader over the lines joined back into one buffer; None when rows do not align."""
    used = _used(names)
    if text.is_empty():
        return pl.DataFrame(schema=dict.fromkeys(used.values(), pl.String))
    arr = (text + "\n").to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    # The values buffer of a large_string array is the lines' text back to back: the joined file.
    offsets = memoryview(arr.buffers()[1]).cast("q")
    buf = memoryview(arr.buffers()[2])[offsets[arr.offset] : offsets[arr.offset + len(arr)]]
    schema = {f"f{i}": pl.String for i in range(len(names))}
    try:
        df = pl.read_csv(
            io.BytesIO(buf),
            has_header=False,
            schema=schema,
            columns=list(used),
            truncate_ragged_lines=True,
            extra_columns="ignore",
        )
    except pl.exceptions.PolarsError:
        return None
    if df.height != len(text):
        return None
    return df.rename({f"f{i}": n for i, n in used.items()}).rechunk()


def _split_regex(parts: pl.Series, names: list[str]) -> pl.DataFrame:
    """The used columns from matched fields (slower than the CSV reader, never runs across lines)."""
    frame = parts.alias("_p").to_frame()
    return frame.select(
        [_unquote(pl.col("_p").list.get(i, null_on_oob=True)).alias(n) for i, n in _used(names).items()]
    )


def _unquote(field: pl.Expr) -> pl.Expr:
    """A matched field without its delimiter and quotes, `""` undoubled, "" as null (as read_csv)."""
    f = field.str.strip_suffix(",")
    quoted = f.str.starts_with('"') & f.str.ends_with('"') & (f.str.len_chars() >= 2)
    inner = f.str.slice(1, f.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
    value = pl.when(quoted).then(inner).otherwise(f)
    return pl.when(value != "").then(value)


def _events(rows: pl.DataFrame, ctx: ParseContext) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Event rows of mapped lines, and the lines without a time or an event-id."""
    c = pl.col
    # Lazy, collected together: each part reads only the columns it needs, the shared start once.
    stamp = c("date-time").str.to_datetime(_TIME_FMT, time_unit="us", time_zone="UTC", strict=False)
    f = rows.lazy().with_columns(
        # %Y also reads "-1" or "99999": a year no datetime holds is no time (the line is unknown)
        pl.when(stamp.dt.year().is_between(1, 9999)).then(stamp).alias("time"),
        c("event-id").alias("program"),
        pl.coalesce(c("network-message-id"), c("internal-message-id")).alias("queue_id"),
    )
    ok = c("time").is_not_null() & c("program").is_not_null()
    bad = f.filter(~ok).select("line_no", "line")
    # A line with no message id at all (NOTIFYMAPI: an item seen in an Outbox) traces nothing.
    f = f.filter(ok & c("queue_id").is_not_null())
    rp, rcpt = c("return-path"), c("recipient-address")
    f = f.select(
        "time",
        "program",
        "queue_id",
        "line_no",
        c("program").replace_strict(_CLASS, default="info", return_dtype=pl.String).alias("_cls"),
        pl.when(rp == "<>").then(pl.lit("")).otherwise(pl.coalesce(rp, c("sender-address"))).alias("sender"),
        c("message-id").alias("message_id"),
        c("message-subject").alias("subject"),
        pl.when(rcpt.is_not_null()).then(rcpt.str.count_matches(";", literal=True) + 1).otherwise(0).alias("_n"),
        c("source").alias("_component"),
        *(c(n) for n in _USED if n not in ("date-time", "event-id", "message-id", "message-subject", "source")),
    )
    host = ctx.host or ""
    common = [
        pl.lit(host).alias("host"),
        organization_expr(pl.lit(host), ctx).alias("organization"),
        pl.lit(NAME).alias("format"),
        pl.lit(ctx.source).alias("source"),
    ]
    parts = [conform(p.with_columns(common), EVENT_SCHEMA) for p in (_message_rows(f), *_recipient_rows(f))]
    # The in-memory engine: on a chunk of this size the streaming default spends ~20% more CPU.
    bad_rows, *done = pl.collect_all([bad, *parts], engine="in-memory")
    return pl.concat(done), bad_rows


def _message_rows(f: pl.LazyFrame) -> pl.LazyFrame:
    """One row per receive line, and per line that decides nothing or names no recipient."""
    c = pl.col
    rows = f.filter(c("_cls").is_in(["receive", "info"]) | (c("_n") == 0))
    receive = c("_cls") == "receive"
    smtp_in = (c("program") == "RECEIVE") & (c("_component") == "SMTP")
    return rows.with_columns(
        pl.when(receive).then(pl.lit("receive")).otherwise(pl.lit("info")).alias("kind"),
        pl.when(receive).then(c("total-bytes").cast(pl.Int64, strict=False)).alias("size"),
        pl.when(receive).then(c("recipient-count").cast(pl.Int64, strict=False)).alias("nrcpt"),
        pl.when(receive).then(c("client-hostname")).alias("client_host"),
        pl.when(smtp_in).then(c("client-ip")).alias("client_ip"),
        clip(pl.coalesce(c("source-context"), c("reference"))).alias("detail"),
    )


def _recipient_rows(f: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """One row per listed recipient (its outcome, or GettingStatus), and rows for rewritten addresses."""
    c = pl.col
    rows = _listed(f)
    outcome = c("_cls") == "deliver"
    # Only FAIL and DROP can be spam verdicts; null elsewhere spares the regex every other row.
    reason = pl.when(c("program").is_in(["FAIL", "DROP"])).then(
        pl.concat_str([c("_own"), c("source-context")], separator=" ", ignore_nulls=True)
    )
    spam = reason.str.contains(_SPAM).fill_null(False)
    status = pl.when(spam).then(pl.lit("FilteredAsSpam")).otherwise(c("program").replace_strict(_OUTCOME, default=None))
    return rows.with_columns(
        pl.lit("deliver").alias("kind"),
        pl.when(outcome).then(status).otherwise(pl.lit("GettingStatus")).alias("status"),
        _orig(),
        pl.when(outcome).then(c("server-hostname")).alias("relay"),
        pl.when(c("program") == "SEND").then(c("server-ip")).alias("to_ip"),
        # Masked before the regex and the slice (null in, null out), so only outcome rows pay.
        pl.when(outcome).then(c("_own")).str.extract(_DSN, 1).alias("dsn"),
        clip(pl.when(outcome).then(pl.coalesce(c("_own"), c("source-context")))).alias("detail"),
        pl.when(outcome & (c("_delay") >= 0)).then(c("_delay")).alias("delay"),
    ), _rewrites(f.filter(c("_cls").is_in(["expand", "rewrite"])))


def _listed(f: pl.LazyFrame) -> pl.LazyFrame:
    """Lines that list recipients, one row per recipient with its own status text (`_own`)."""
    c = pl.col
    # Mailbox Transport Submission logs its RECEIVE/SUBMIT (source STOREDRIVER) in a file of its
    # own (MSGTRKMS) whose last word on a message is never an outcome; the Transport service's
    # RECEIVE lists the same recipients again, so naming them here would only add GettingStatus
    # rows that an event order across files could place after a delivery.
    submission = (c("_cls") == "receive") & (c("_component") == "STOREDRIVER")
    rows = f.filter((c("_cls") != "info") & (c("_n") > 0) & ~submission)
    # Only outcome rows use the delay: the others get a null message-info, sparing the regex and the parse.
    origin = (
        pl.when(c("_cls") == "deliver")
        .then(c("message-info"))
        .str.extract(_ISO, 1)
        .str.to_datetime(_TIME_FMT, time_unit="us", time_zone="UTC", strict=False)
    )
    rows = rows.with_columns(((c("time") - origin).dt.total_microseconds() / 1e6).round(6).alias("_delay"))
    keep = [
        *("time", "program", "queue_id", "line_no", "_cls", "_n", "sender", "message_id", "subject", "_delay"),
        *("server-ip", "server-hostname", "source-context", "related-recipient-address", "recipient", "_own", "_i"),
    ]
    # Most lines name one recipient: the whole status is its own, whatever `;` it holds.
    single = rows.filter(c("_n") == 1).with_columns(
        c("recipient-address").str.strip_chars().alias("recipient"),
        c("recipient-status").str.strip_chars().alias("_own"),
        pl.lit(0, dtype=pl.Int64).alias("_i"),
    )
    # Several: an unsplittable status (one piece) applies to each, else pieces pair up by position.
    multi = (
        rows.filter(c("_n") > 1)
        .with_columns(
            c("recipient-address").str.split(";").alias("recipient"),
            pl.int_ranges(0, c("_n")).alias("_i"),
            c("recipient-status").str.replace_all(_NEXT_STATUS, _SEP + "${1}").str.split(_SEP).alias("_st"),
        )
        .select(*(k for k in keep if k != "_own"), "_st")  # explode copies every column it keeps
        .explode(["recipient", "_i"])
        .with_columns(
            c("recipient").str.strip_chars(),
            pl.when(c("_st").list.len() == 1)
            .then(c("_st").list.first())
            .otherwise(c("_st").list.get(c("_i"), null_on_oob=True))
            .str.strip_chars()
            .alias("_own"),
        )
    )
    return pl.concat([single.select(keep), multi.select(keep)]).filter(c("recipient") != "")


def _orig() -> pl.Expr:
    """orig_recipient of a member row: the group (EXPAND), or the address rewritten (RESOLVE, REDIRECT).

    related-recipient-address pairs up with recipient-address by position when both list as many.
    """
    c = pl.col
    # Most rows are neither (null here): list ops cost even on nulls, so only a rewrite of several
    # recipients (the one case that can pair by position) is split into a list; the rest, and a
    # count that does not pair up, take the first address.
    rel = pl.when(c("_cls").is_in(["expand", "rewrite"])).then(c("related-recipient-address"))
    first = rel.str.splitn(";", 2).struct.field("field_0")
    several = pl.when((c("_cls") == "rewrite") & (c("_n") > 1)).then(c("related-recipient-address")).str.split(";")
    orig = (
        pl.when(several.list.len() == c("_n"))
        .then(several.list.get(c("_i"), null_on_oob=True))
        .otherwise(first)
        .str.strip_chars()
    )
    # an address "resolved" to itself (only its case differs) was not rewritten
    same = orig.str.to_lowercase() == pl.when(orig.is_not_null()).then(c("recipient")).str.to_lowercase()
    return pl.when(~same).then(orig).alias("orig_recipient")


def _rewrites(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Rows for the addresses EXPAND, RESOLVE and REDIRECT lines replaced (related-recipient-address).

    EXPAND: the group gets Expanded; its members (recipient-address) get GettingStatus rows with
    orig_recipient = the group. RESOLVE (an alias resolved to the primary address) and REDIRECT (to
    an alternate recipient) are one-to-one rewrites: the contract gives the original address None,
    and the new address goes on under its own events.
    """
    c = pl.col
    rows = rows.filter(c("related-recipient-address").is_not_null()).with_columns(
        c("related-recipient-address").str.split(";").alias("_rel"),
        c("recipient-address")
        .str.to_lowercase()
        .str.split(";")
        .list.eval(pl.element().str.strip_chars())
        .alias("_new"),
    )
    rows = rows.explode("_rel").with_columns(c("_rel").str.strip_chars())
    expand = c("_cls") == "expand"
    # An address resolved to itself is not a rewrite.
    rows = rows.filter((c("_rel") != "") & (expand | ~c("_new").list.contains(c("_rel").str.to_lowercase())))
    verb = pl.when(c("program") == "RESOLVE").then(pl.lit("resolved to ")).otherwise(pl.lit("redirected to "))
    return rows.with_columns(
        pl.when(expand).then(pl.lit("expand")).otherwise(pl.lit("deliver")).alias("kind"),
        pl.when(expand).then(pl.lit("Expanded")).otherwise(pl.lit("None")).alias("status"),
        c("_rel").alias("recipient"),
        clip(pl.when(expand).then(pl.lit("expanded to ")).otherwise(verb) + c("recipient-address")).alias("detail"),
    )
