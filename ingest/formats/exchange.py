"""Exchange message tracking logs (MSGTRK*.LOG) -> events, read by the compiled parser (msgtrace._core).

    #Software: Microsoft Exchange Server
    #Log-type: Message Tracking Log
    #Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,...
    2026-06-13T10:00:00.120Z,203.0.113.7,mail.fabrikam.com,10.0.0.5,EX01,...,SMTP,RECEIVE,...

Columns are mapped by name from `#Fields` (2010: 26 fields, 2013: 27, 2016/2019: 30); only the
first chunk of a file carries the header, so it is remembered in ctx.state. The Rust side
(rust/src/exchange.rs) reads every line once: fields as Polars' CSV reader read them, or, in a
section where a quote derails that reader (a quote never closed), by the per-line regex the
reference fell back to; then one row per recipient. This module passes it the lines and the
carried layout, and makes the frame. Its rules are those of the vectorised parser it replaced,
which the tests keep as the reference (tests/polars_exchange.py) and compare it with on every
fixture, the corpus and generated logs. Choices that shape a trace:

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
  its recipients), EXPAND/RESOLVE/REDIRECT also give rows for the addresses they replaced;
  anything else is an info row.
"""

from __future__ import annotations

import polars as pl

from msgtrace import _core
from msgtrace.ingest.corebuffers import frame, line_windows
from msgtrace.ingest.formats import Parsed, ParserFailed
from msgtrace.ingest.formats.compiled import in_schema, line_numbers, rows
from msgtrace.ingest.formats.context import ParseContext, organization_column
from msgtrace.ingest.schema import TIME

NAME = "exchange"

# One CSV field and its delimiter, as the regex fallback matches it (the Rust side's
# csvsplit::regex_fields reads this pattern by hand; tests/test_exchange.py pins its width rule).
_FIELD = r'(?:"(?:[^"]|"")*"|[^,"][^,]*|)(?:,|$)'


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
    if lines.height and lines.item(0, "line").startswith("\ufeff"):  # a UTF-8 BOM opens the file
        lines = lines.with_columns(pl.col("line").str.strip_prefix("\ufeff"))
    views, buffers = line_windows(lines.get_column("line"))
    fields = state.get("fields")
    try:
        out = _core.parse_exchange(
            views, buffers, line_numbers(lines), list(fields) if fields else None, _split_csv(None, None) is not None
        )
    except ValueError as e:
        raise ParserFailed(str(e)) from None
    if out["fields"] is not None:
        state["fields"] = out["fields"]
    unknown_rows = rows(out["unknown"])
    known = lines.select("line_no", "line")
    unknown = known[unknown_rows] if unknown_rows.len() else known.clear()
    return Parsed(events=_finish(frame(out["columns"]), ctx), unknown=unknown)


def _split_csv(text: object, names: object) -> bool | None:
    """Whether sections may be read as Polars' CSV reader read them (True), or all by the regex
    fallback (None: tests/test_exchange.py replaces this to compare the two paths)."""
    return True


def _finish(events: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """The Rust side's columns with the time typed and the batch's constant columns, in EVENT_SCHEMA."""
    host = ctx.host or ""
    events = events.with_columns(
        pl.col("_time").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").cast(TIME).alias("time"),
        pl.lit(host).alias("host"),
        organization_column(pl.Series("host", [host]), ctx).alias("organization"),
        pl.lit(NAME).alias("format"),
        pl.lit(ctx.source).alias("source"),
        pl.lit(None, pl.String).alias("next_queue_id"),
    )
    return in_schema(events)
