"""The Sendmail fast paths (one onepass regex per common line shape) and the lines they hand back.

_RECEIVE, _DELIVER and _REJECT (of the Polars reference, tests/polars_sendmail.py) read the lines
as sendmail writes them; any other line gets its fields from the per-field searches of the
general path, which the compiled parser on the production path does for every line. Each test
pins a line on each side of such a switch, with the exact fields the parser gave before the fast
paths existed.
"""

from __future__ import annotations

import polars as pl
import pytest

from msgtrace.ingest.formats import sendmail
from msgtrace.ingest.formats.context import ParseContext
from tests import polars_sendmail

HEAD = "Jun 13 10:00:00 mx1.example.org sm-mta[900]: 65DA0000000900: "
COLS = [
    "kind", "status", "sender", "recipient", "message_id", "client_host", "client_ip", "relay", "to_ip",
    "size", "nrcpt", "delay", "dsn", "detail",
]  # fmt: skip


def events(texts: list[str]) -> list[tuple]:
    lines = [HEAD + t for t in texts]
    df = pl.DataFrame({"line_no": range(len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String})
    return list(sendmail.parse(df, ParseContext(year=2026)).events.select(COLS).iter_rows())


def fast(pattern: str, text: str) -> bool:
    return pl.Series([text]).str.contains(pattern).item()


RECEIVE_FAST = (
    "from=<a@b.c>, size=5938, class=0, nrcpts=2, msgid=<x@b.c>, proto=ESMTP, daemon=MTA, relay=mx.b.c. [192.0.2.1]"
)
RECEIVE_GENERAL = (  # a bare msgid, a field after relay=
    "from=<a@b.c>, size=5938, class=0, nrcpts=2, msgid=x@b.c, proto=ESMTP, daemon=MTA, relay=mx.b.c. [192.0.2.1], tls=1"
)
DELIVER_FAST = (
    "to=<d@e.f>,<g@e.f>, delay=1+00:00:01, xdelay=00:00:01, mailer=esmtp, pri=245938, relay=mx.e.f. [198.51.100.7], "
    "dsn=4.0.0, stat=Deferred: 451 try again, please"
)
# no relay= field, but the status text holds one: the general path finds it there (as it always did)
DELIVER_GENERAL = "to=<d@e.f>, delay=00:00:01, xdelay=00:00:01, mailer=local, pri=1, dsn=2.0.0, stat=Sent (ok, relay=elsewhere [203.0.113.9])"
REJECT_FAST = (
    "ruleset=check_rcpt, arg1=<x@y.z>, relay=h.y.z [203.0.113.5] (may be forged), "
    "reject=550 5.7.1 Rejected: 2001:db8::5 listed at zen.spamhaus.org"
)
# `: to=` in the reject text: the general path reads it as the recipient
REJECT_GENERAL = (
    "ruleset=check_mail, arg1=<x@y.z>, relay=h.y.z [203.0.113.5], reject=550 5.7.1 <x@y.z>... refused: to=<other@y.z>"
)


@pytest.mark.parametrize(
    ("pattern", "taken", "handed_back"),
    [
        (polars_sendmail._RECEIVE, RECEIVE_FAST, RECEIVE_GENERAL),
        (polars_sendmail._DELIVER, DELIVER_FAST, DELIVER_GENERAL),
        (polars_sendmail._REJECT, REJECT_FAST, REJECT_GENERAL),
    ],
)
def test_each_line_is_on_its_side(pattern: str, taken: str, handed_back: str) -> None:
    assert fast(pattern, taken)
    assert not fast(pattern, handed_back)


def test_receive_both_paths() -> None:
    want = ("receive", None, "a@b.c", None, "<x@b.c>", "mx.b.c", "192.0.2.1", None, None, 5938, 2, None, None, None)
    assert events([RECEIVE_FAST, RECEIVE_GENERAL]) == [want, want]


def test_deliver_both_paths() -> None:
    detail = "Deferred: 451 try again, please"
    d = ("deliver", "Pending", None)
    assert events([DELIVER_FAST, DELIVER_GENERAL]) == [
        (*d, "d@e.f", None, None, None, "mx.e.f", "198.51.100.7", None, None, 86401.0, "4.0.0", detail),
        (*d, "g@e.f", None, None, None, "mx.e.f", "198.51.100.7", None, None, 86401.0, "4.0.0", detail),
        ("deliver", "Delivered", None, "d@e.f", None, None, None, "elsewhere", "203.0.113.9", None, None, 1.0, "2.0.0",
         "Sent (ok, relay=elsewhere [203.0.113.9])"),
    ]  # fmt: skip


def test_reject_both_paths() -> None:
    assert events([REJECT_FAST, REJECT_GENERAL]) == [
        ("reject", "FilteredAsSpam", None, "x@y.z", None, "h.y.z", "203.0.113.5", None, None, None, None, None,
         "5.7.1", "550 5.7.1 Rejected: 2001:db8::5 listed at zen.spamhaus.org"),
        ("reject", "None", "x@y.z", "other@y.z", None, "h.y.z", "203.0.113.5", None, None, None, None, None,
         "5.7.1", "550 5.7.1 <x@y.z>... refused: to=<other@y.z>"),
    ]  # fmt: skip


def test_mixed_batch_takes_both_paths_in_line_order() -> None:
    # fast and general rows of one handler in one batch: each keeps its own fields
    got = events([RECEIVE_GENERAL, RECEIVE_FAST.replace("a@b.c", "z@b.c")])
    assert [r[2] for r in got] == ["a@b.c", "z@b.c"]
    assert [r[4] for r in got] == ["<x@b.c>", "<x@b.c>"]
