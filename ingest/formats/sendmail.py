"""Sendmail (syslog) -> events, read by the compiled parser (msgtrace._core, rust/src/sendmail.rs).

Apr  2 00:15:25 mta1 sm-mta[32300]: u31FFPtp032300: from=<a@b.c>, size=5938, class=0, nrcpts=2, msgid=<x@b.c>, proto=ESMTP, daemon=MTA, relay=mx.b.c [192.0.2.1]
Apr  2 00:15:26 mta1 sm-mta[32302]: u31FFPtp032300: to=<d@e.f>,<g@e.f>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=245938, relay=mx.e.f. [198.51.100.7], dsn=2.0.0, stat=Sent (ok)
Apr  2 00:15:27 mta1 sm-msp-queue[3100]: u31FFQ01003100: to=d@e.f, ctladdr=me (1000/1000), delay=00:00:00, mailer=relay, pri=30000, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (u31FFRab032310 Message accepted for delivery)
Apr  2 00:15:28 mta1 sm-mta[32311]: u31FFRab032310: u31FFRab032311: DSN: User unknown
Feb 25 03:01:10 mta1 sm-mta[27713]: s1P819mk027713: ruleset=check_rcpt, arg1=<x@y.z>, relay=h.y.z [203.0.113.5], reject=550 5.7.1 <x@y.z>... Relaying denied

from=/to= lines are joined by queue id (one deliver event per recipient of a `to=` list), the
MSP -> MTA hop (`stat=Sent (QID Message accepted for delivery)` to a loopback relay) is a
handoff, DSNs are bounces, ruleset and milter rejects are rejects. The Rust side reads every
line once (the syslog envelope with year inference, then the handlers) and hands back Arrow
buffers; this module passes it the lines and the carried syslog state and makes the frame. Its
rules are those of the vectorised parser it replaced, which the tests keep as the reference
(tests/polars_sendmail.py) and compare it with on every fixture, the corpus and generated logs.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from msgtrace import _core
from msgtrace.ingest.corebuffers import frame, line_windows
from msgtrace.ingest.formats import Parsed, ParserFailed
from msgtrace.ingest.formats import compiled as cp
from msgtrace.ingest.formats.compiled import wall_to_utc
from msgtrace.ingest.formats.context import ParseContext

NAME = "sendmail"

_DETECT = re.compile(
    r"^(?:<\d+>)?\S+(?: +\S+ \d\d:\d\d:\d\d)? (?:<[\w.]+> )?\S+ (?:sendmail|sm-mta|sm-msp-queue|sm-[\w-]+)\[\d+\]: "
)
_POSTFIX = re.compile(r" postfix[\w.-]*/[\w-]+\[\d+\]: ")


def detect(sample: list[str]) -> bool:
    """True when the first lines are syslog lines of sendmail / sm-mta / sm-msp-queue (and not Postfix)."""
    lines = [s for s in sample if s.strip()][:50]
    ours = sum(1 for s in lines if _DETECT.search(s))
    return ours > 0 and ours > sum(1 for s in lines if _POSTFIX.search(s))


def parse(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Sendmail syslog lines -> events (receive, deliver, handoff, bounce, reject, hold, info) and unknown lines."""
    try:
        views, buffers = line_windows(lines.get_column("line"))
        out = _core.parse_sendmail(views, buffers, cp.line_numbers(lines), cp.syslog_state_in(ctx))
    except ValueError as e:
        raise ParserFailed(str(e)) from None
    cp.syslog_state_out(ctx, out)
    src = lines.select("line_no", "line")
    events = frame(out["columns"])
    events = events.with_columns(cp.utc_times(events, ctx))
    unknown_rows = cp.rows(out["unknown"])
    unknown = src[unknown_rows] if unknown_rows.len() else src.clear()
    # A wall time the zone skips by more than an hour (no instant reads it) makes the line no
    # syslog line: its events go, and it is unknown (a noise line too, as the reference has it).
    lost = events.filter(pl.col("time").is_null()).get_column("line_no")
    lost_noise = _unreadable_noise(out["dropped"], ctx)
    if lost.len() or lost_noise.len():
        events = events.filter(pl.col("time").is_not_null())
        mask = np.zeros(src.height, dtype=bool)
        mask[unknown_rows.to_numpy()] = True
        mask[lost_noise.to_numpy()] = True
        unknown = src.filter(pl.Series(mask) | pl.col("line_no").is_in(lost.implode()))
    return Parsed(events=cp.finish(events.drop("_local", "_utc", "_second"), ctx, NAME), unknown=unknown)


def _unreadable_noise(dropped: tuple[bytes, bytes, bytes], ctx: ParseContext) -> pl.Series:
    """The rows of the noise lines (dropped silently) whose wall time the zone cannot read."""
    rows, local, second = dropped
    if ctx.timezone == "UTC" or not rows:
        return pl.Series("row", [], pl.Int64)
    df = pl.DataFrame(
        {
            "row": cp.rows(rows),
            "_local": pl.Series(np.frombuffer(local, dtype=np.int64)).cast(pl.Datetime("us")),
            "_second": np.frombuffer(second, dtype=np.uint8).astype(bool),
        }
    )
    return df.filter(wall_to_utc(pl.col("_local"), pl.col("_second"), ctx.timezone).is_null()).get_column("row")
