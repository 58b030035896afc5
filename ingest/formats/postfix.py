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

import polars as pl

from msgtrace import _core
from msgtrace.ingest.formats import Parsed, compiled
from msgtrace.ingest.formats.context import ParseContext

NAME = "postfix"


def detect(sample: list[str]) -> bool:
    """A syslog file with postfix/ program tags."""
    return any(" postfix" in line and ("/" in line or "postfix[" in line) for line in sample)


def parse(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Events from one batch of Postfix syslog lines."""
    return compiled.parse(_core.parse_postfix, lines, ctx, NAME, _state_in, _state_out)


def _state_in(ctx: ParseContext) -> dict:
    """What the Rust side needs of the context and of the state carried from the last batch."""
    return {**compiled.syslog_state_in(ctx), "sessions": ctx.state.get(NAME, {}).get("sessions") or []}


def _state_out(ctx: ParseContext, out: dict) -> None:
    """The state for the next batch, under the keys the Polars envelope (tests/polars_syslog.py) keeps too."""
    compiled.syslog_state_out(ctx, out)
    sessions = ctx.state.setdefault(NAME, {})
    if out["sessions"] is not None:  # None: no smtpd session line in the batch, the carried stay open
        sessions["sessions"] = out["sessions"]
