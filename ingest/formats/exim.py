"""Exim mainlog: arrivals, deliveries, deferrals, failures and rejects, bare or behind syslog/journald,
read by the compiled parser (msgtrace._core, rust/src/exim.rs).

    2026-03-03 09:15:01 1vA1bC-0000Ab-1x <= al@example.org H=mx.example.org (helo) [192.0.2.1]:4321 P=esmtps S=2048 id=a@b T="Hi"
    2026-03-03 09:15:02.123 +0100 [4242] 1vA1bC-0000Ab-1x => bob@example.com <team@example.com> R=dnslookup T=remote_smtp H=mx.example.com [198.51.100.7] C="250 OK" QT=1s
    Mar  3 09:15:03 mx1 exim[4242]: 1vA1bC-0000Ab-1x Completed
    mx1 exim[4242]: 2026-03-03 09:15:04 H=(x) [203.0.113.9] F=<a@b> rejected RCPT <c@d>: relay not permitted

Message ids have 16 (1vA1bC-0000Ab-1x) or 23 (10HmaX-000000005vi-0000) characters; each id is one message.

The Rust side reads every line once (the envelope: a bare stamp, or syslog's with its year and
zone inference, or journald's; then the arrival, delivery, reject and message-line rules, and the
alias groups that span batches) and hands back Arrow buffers; this module passes it the lines and
the carried state and makes the frame, as postfix.py does. Its rules are those of the vectorised
parser it replaced, which the tests keep as the reference (tests/polars_exim.py) and compare it
with on every fixture, the corpus and generated logs.
"""

from __future__ import annotations

import re

import polars as pl

from msgtrace import _core
from msgtrace.ingest.formats import Parsed, compiled
from msgtrace.ingest.formats.context import ParseContext

NAME = "exim"

_DETECT = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [+-]\d{4})? (?:\[\d+\] |[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4} "
    r"|(?:Start|End) queue run|H=|SMTP connection from|exim \d)"
    r"|^(?:\S+ +){1,5}exim[\w.-]*(?:\[\d+\])?: "
)
_OTHER_MTA = re.compile(r" (?:postfix[\w.-]*/\w+|sendmail|sm-mta|sm-msp-queue)(?:\[\d+\])?: ")


def detect(sample: list[str]) -> bool:
    """True when the first lines look like an Exim mainlog (bare, [pid], syslog- or journald-prefixed)."""
    lines = [s for s in sample if s.strip()][:50]
    exim = sum(1 for s in lines if _DETECT.search(s))
    return exim > 0 and not any(_OTHER_MTA.search(s) for s in lines)


def parse(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Exim lines -> events (receive, deliver, expand, bounce, reject, hold, removed, info) and unknown lines."""
    return compiled.parse(_core.parse_exim, lines, ctx, NAME, _state_in, _state_out)


def _state_in(ctx: ParseContext) -> dict:
    """What the Rust side needs of the context and of the state carried from the last batch."""
    own = ctx.state.get(NAME, {})
    return {
        **compiled.syslog_state_in(ctx),
        "exim_max_local": compiled.micros(own.get("max_local")),
        "aliases": own.get("aliases") or [],
        "host": ctx.host or "",
    }


def _state_out(ctx: ParseContext, out: dict) -> None:
    """The state for the next batch, under the keys the Polars parser keeps: "syslog" (touched only
    when a line went through the syslog envelope) and "exim" (always)."""
    if out["any_pre"]:
        compiled.syslog_state_out(ctx, out)
    own = ctx.state.setdefault(NAME, {})
    if out["exim_max_local"] is not None:
        own["max_local"] = compiled.wall_time(out["exim_max_local"])
    if out["aliases"] is not None:  # None: no alias group carried in or seen, the state stays as it was
        own["aliases"] = out["aliases"]
