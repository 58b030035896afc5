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

import polars as pl

from msgtrace import _core
from msgtrace.ingest.formats import Parsed, compiled
from msgtrace.ingest.formats.context import ParseContext

NAME = "postfix"

_EPOCH = dt.datetime(1970, 1, 1)
_US = dt.timedelta(microseconds=1)


def detect(sample: list[str]) -> bool:
    """A syslog file with postfix/ program tags."""
    return any(" postfix" in line and ("/" in line or "postfix[" in line) for line in sample)


def parse(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Events from one batch of Postfix syslog lines."""
    return compiled.parse(_core.parse_postfix, lines, ctx, NAME, _state_in, _state_out)


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
