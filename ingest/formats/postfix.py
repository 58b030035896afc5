"""Postfix syslog lines -> events, read by the compiled parser (msgtrace._core, rust/).

A message spans several daemons' lines joined by the queue id:

    smtpd    3F1A22C01: client=mail.example.com[192.0.2.1]
    cleanup  3F1A22C01: message-id=<abc@example.com>
    qmgr     3F1A22C01: from=<alice@example.com>, size=1234, nrcpt=2 (queue active)
    smtp     3F1A22C01: to=<bob@example.org>, relay=mx.example.org[203.0.113.7]:25, delay=1.2, ..., dsn=2.0.0, status=sent (250 ok)
    qmgr     3F1A22C01: removed

The Rust side reads every line once (the syslog envelope with year inference, then one handler
per daemon, amavis verdicts, smtpd sessions without DATA) and hands back Arrow buffers; this
module passes it the lines and the carried state, and makes the frame: the wall times to UTC in
the context's zone (Polars' zone rules), the constant columns, the unknown lines. Its rules are
those of the vectorised parser it replaced, which the tests keep as the reference
(tests/polars_postfix.py) and compare it with on every fixture, the corpus and generated logs.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from msgtrace import _core
from msgtrace.ingest.formats import Parsed, ParserFailed
from msgtrace.ingest.formats.context import ParseContext, organization_column
from msgtrace.ingest.formats.core_frame import frame, line_views
from msgtrace.ingest.formats.syslog import wall_to_utc
from msgtrace.ingest.schema import EVENT_SCHEMA, TIME, conform

NAME = "postfix"

_EPOCH = dt.datetime(1970, 1, 1)
_US = dt.timedelta(microseconds=1)


def detect(sample: list[str]) -> bool:
    """A syslog file with postfix/ program tags."""
    return any(" postfix" in line and ("/" in line or "postfix[" in line) for line in sample)


def parse(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Events from one batch of Postfix syslog lines."""
    view_bytes, data = line_views(lines.get_column("line"))
    line_nos = lines.get_column("line_no").cast(pl.Int64).to_numpy().tobytes()
    try:
        out = _core.parse_postfix(view_bytes, data, line_nos, _state_in(ctx))
    except ValueError as e:
        raise ParserFailed(str(e)) from None
    _state_out(ctx, out)
    events = _frame(out)
    # the rows' numbers as one buffer (a log of foreign lines is all unknown: no list per line)
    unknown_rows = pl.Series("row", np.frombuffer(out["unknown"], dtype=np.int64))
    unknown = (
        lines.select("line_no", "line")[unknown_rows] if unknown_rows.len() else lines.select("line_no", "line").clear()
    )
    events = events.with_columns(_utc(ctx).alias("time"))
    if events.get_column("time").null_count():
        # a wall time the zone skips by more than an hour (no instant reads it): not a syslog line
        lost = events.filter(pl.col("time").is_null()).get_column("line_no").unique()
        events = events.filter(pl.col("time").is_not_null())
        more = lines.select("line_no", "line").filter(pl.col("line_no").is_in(lost.implode()))
        unknown = pl.concat([unknown, more]).sort("line_no")
    return Parsed(events=_finish(events.drop("_local", "_utc", "_second"), ctx), unknown=unknown)


def _state_in(ctx: ParseContext) -> dict:
    """What the Rust side needs of the context and of the state carried from the last batch."""
    syslog = ctx.state.get("syslog", {})
    max_local = syslog.get("max_local")
    state = {
        "year": ctx.year,
        "last_month": syslog.get("last_month") or 0,
        "rollovers": syslog.get("rollovers", 0),
        "max_local": (max_local - _EPOCH) // _US if isinstance(max_local, dt.datetime) else None,
        "sessions": ctx.state.get(NAME, {}).get("sessions") or [],
    }
    if ctx.year is None:
        ref = ctx.reference_local()
        state.update(reference_year=ref.year, reference_ordinal=ref.month * 100 + ref.day + 1)
    return state


def _state_out(ctx: ParseContext, out: dict) -> None:
    """The state for the next batch, under the keys the Polars envelope (syslog.py) keeps too."""
    if ctx.year is not None:
        syslog = ctx.state.setdefault("syslog", {})
        if out["months_seen"]:
            syslog["last_month"], syslog["rollovers"] = out["last_month"], out["rollovers"]
    if ctx.timezone != "UTC":
        ctx.state.setdefault("syslog", {})
    if out["max_local"] is not None:
        ctx.state.setdefault("syslog", {})["max_local"] = _EPOCH + out["max_local"] * _US
    sessions = ctx.state.setdefault(NAME, {})
    if out["sessions"] is not None:  # None: no smtpd session line in the batch, the carried stay open
        sessions["sessions"] = out["sessions"]


def _frame(out: dict) -> pl.DataFrame:
    """The Rust side's columns (Arrow buffers) as a frame, without a copy on the Python side."""
    return frame(out["columns"])


def _utc(ctx: ParseContext) -> pl.Expr:
    """Event times in UTC: as logged where the stamp names an offset, else the wall time in ctx.timezone."""
    utc = pl.col("_utc").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    local = pl.col("_local").cast(pl.Datetime("us"))
    if ctx.timezone == "UTC":
        return pl.coalesce(utc, local.dt.replace_time_zone("UTC")).cast(TIME)
    return pl.coalesce(utc, wall_to_utc(local, pl.col("_second"), ctx.timezone)).cast(TIME)


def _finish(events: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    if not events.height:
        return conform(pl.DataFrame(schema=EVENT_SCHEMA), EVENT_SCHEMA)
    events = events.with_columns(
        organization_column(events.get_column("host"), ctx).alias("organization"),
        pl.lit(NAME).alias("format"),
        pl.lit(ctx.source).alias("source"),
    )
    if all(events.schema.get(c) == t for c, t in EVENT_SCHEMA.items()):
        return events.select(list(EVENT_SCHEMA))
    return conform(events, EVENT_SCHEMA)
