"""The fast paths of the syslog envelope and the Postfix handlers, and the lines they hand back.

syslog.split reads the common line with one onepass regex (_CLEAN) and sends every other line
through the general paths; postfix reads delivery lines with one onepass regex (_DELIVERY) and
falls back to two general ones. Each test pins a line on each side of such a switch, with the
exact fields the general path gives (the values the parser gave before the fast paths existed).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from msgtrace.ingest.formats import postfix
from msgtrace.ingest.formats.context import ParseContext
from tests import polars_postfix
from tests.polars_syslog import split

UTC = dt.UTC
T0 = dt.datetime(2026, 6, 13, 10, 0, tzinfo=UTC)


def frame(lines: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"line_no": range(len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String})


def envelope(lines: list[str], **kw: str) -> list[tuple]:
    df = split(frame(lines), ParseContext(year=2026), **kw)
    return list(df.drop("line_no", "line").iter_rows())


def test_clean_and_general_lines_give_the_same_fields() -> None:
    # a host or program with ':' or a pid that is not digits fails _CLEAN: the general paths read them
    rows = envelope(
        [
            "Jun 13 10:00:00 mx1 postfix/qmgr[900]: 3F1A22C01: removed",  # _CLEAN
            "Jun 13 10:00:00 mx1: postfix/qmgr[900]: 3F1A22C01: removed",  # host ends with ':'
            "Jun 13 10:00:00 2001:db8::25 postfix/qmgr[900]: 3F1A22C01: removed",  # IPv6 host
            "Jun 13 10:00:00 mx1 postfix:qmgr[900]: 3F1A22C01: removed",  # ':' in the program
            "Jun 13 10:00:00 mx1 postfix/qmgr[9x0]: 3F1A22C01: removed",  # tag is no program[pid]
            "Jun 13 10:00:00 mx1 postfix/qmgr: 3F1A22C01: removed",  # no pid
        ]
    )
    body = "3F1A22C01: removed"
    assert rows == [
        (T0, "mx1", "postfix/qmgr", "900", body, True),
        (T0, "mx1:", "postfix/qmgr", "900", body, True),
        (T0, "2001:db8::25", "postfix/qmgr", "900", body, True),
        (T0, "mx1", "postfix:qmgr", "900", body, True),
        (T0, "mx1", None, None, body, True),
        (T0, "mx1", "postfix/qmgr", None, body, True),
    ]


def test_a_run_of_equal_stamps_split_by_other_lines() -> None:
    # times are worked out once per run of equal stamps; lines of other shapes start runs of their own
    rows = envelope(
        [
            "Jun 13 10:00:00 mx1 postfix/qmgr[900]: A",
            "not syslog",
            "Jun 13 10:00:00 mx1 postfix/qmgr[900]: B",
            "2026-06-13T10:00:00Z mx1 postfix/qmgr[900]: C",
            "Jun 13 10:00:00 mx1: postfix/qmgr[900]: D",
            "Jun 13 10:00:00 mx1 postfix/qmgr[900]: E",
            "Jun 13 10:00:01 mx1 postfix/qmgr[900]: F",
        ]
    )
    assert [(r[0], r[4], r[5]) for r in rows] == [
        (T0, "A", True),
        (None, "not syslog", False),
        (T0, "B", True),
        (T0, "C", True),
        (T0, "D", True),
        (T0, "E", True),
        (T0 + dt.timedelta(seconds=1), "F", True),
    ]


def test_lead_is_cut_off_the_body_on_either_path() -> None:
    lead = polars_postfix._QID_LEAD
    rows = envelope(
        [
            "Jun 13 10:00:00 mx1 postfix/qmgr[900]: 3F1A22C01: removed",
            "Jun 13 10:00:00 mx1: postfix/qmgr[900]: 3F1A22C01: removed",  # general path
            "Jun 13 10:00:00 mx1 postfix/smtpd[901]: connect from x[192.0.2.1]",
            "Jun 13 10:00:00 mx1 postfix/qmgr[900]: 3F1A22C01",  # no ": " after it: no lead
        ],
        lead=lead,
    )
    assert [(r[4], r[6]) for r in rows] == [
        ("removed", "3F1A22C01"),
        ("removed", "3F1A22C01"),
        ("connect from x[192.0.2.1]", None),
        ("3F1A22C01", None),
    ]


def parse(lines: list[str]) -> postfix.Parsed:
    return postfix.parse(frame(lines), ParseContext(year=2026))


def test_queue_id_candidates_that_are_not_queue_ids_keep_their_body() -> None:
    parsed = parse(
        [
            "Jun 13 10:00:00 mx1 postfix/qmgr[900]: 3F1A22C01",  # a queue id with nothing after it
            "Jun 13 10:00:01 mx1 postfix/smtpd[901]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 "
            "Service unavailable; from=<a@example.com> to=<b@example.org> proto=ESMTP helo=<x>",
            "Jun 13 10:00:02 mx1 postfix/anvil[902]: statistics: max connection rate 1/60s",
            "Jun 13 10:00:03 mx1 postfix/anvil[902]: abcdefghij: not a queue id",  # vowels: no long id
        ]
    )
    ev = parsed.events.select("line_no", "queue_id", "kind", "status", "sender", "recipient", "client_ip", "detail")
    assert ev.rows() == [
        (
            1,
            None,
            "reject",
            "None",
            "a@example.com",
            "b@example.org",
            "192.0.2.1",
            "RCPT from x[192.0.2.1]: 554 5.7.1 Service unavailable",
        ),
    ]
    assert parsed.unknown.get_column("line_no").to_list() == [0, 3]


DELIVERY_COLS = ["line_no", "kind", "status", "recipient", "orig_recipient", "relay", "to_ip", "delay", "dsn", "detail"]


def test_delivery_lines_off_the_onepass_shape() -> None:
    parsed = parse(
        [
            # _DELIVERY
            "Jun 13 10:00:00 mx1 postfix/smtp[903]: 3F1A22C01: to=<b@example.org>, orig_to=<c@example.org>, "
            "relay=mx.example.org[203.0.113.7]:25, conn_use=2, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 ok)",
            # tls= between delays and dsn: _TO and _OUTCOME
            "Jun 13 10:00:01 mx1 postfix/smtp[903]: 3F1A22C01: to=<b@example.org>, relay=mx.example.org[203.0.113.7]:25, "
            "delay=1.2, delays=0.1/0/0.5/0.6, tls=yes, dsn=2.0.0, status=sent (250 ok)",
            # an address without brackets and a relay without an address
            "Jun 13 10:00:02 mx1 postfix/local[904]: 3F1A22C01: to=root, relay=local, delay=0.01, delays=0/0/0/0, "
            "dsn=5.1.1, status=bounced (unknown user)",
            # a hand-off on the loopback
            "Jun 13 10:00:03 mx1 postfix/smtp[905]: 3F1A22C01: to=<b@example.org>, relay=127.0.0.1[127.0.0.1]:10024, "
            "delay=0.3, delays=0/0/0/0.3, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4B2C33D02)",
            # an address verification probe delivers nothing: an info event
            "Jun 13 10:00:04 mx1 postfix/smtp[906]: 3F1A22C01: to=<b@example.org>, relay=mx.example.org[203.0.113.7]:25, "
            "delay=0.1, delays=0/0/0/0.1, dsn=2.1.5, status=deliverable (250 ok)",
        ]
    )
    ev = parsed.events.select(DELIVERY_COLS)
    assert ev.rows() == [
        (
            0,
            "deliver",
            "Delivered",
            "b@example.org",
            "c@example.org",
            "mx.example.org",
            "203.0.113.7",
            1.2,
            "2.0.0",
            "250 ok",
        ),
        (1, "deliver", "Delivered", "b@example.org", None, "mx.example.org", "203.0.113.7", 1.2, "2.0.0", "250 ok"),
        (2, "deliver", "Failed", "root", None, "local", None, 0.01, "5.1.1", "unknown user"),
        (
            3,
            "handoff",
            "Pending",
            "b@example.org",
            None,
            "127.0.0.1",
            "127.0.0.1",
            0.3,
            "2.0.0",
            "250 2.0.0 Ok: queued as 4B2C33D02",
        ),
        (
            4,
            "info",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            "to=<b@example.org>, relay=mx.example.org[203.0.113.7]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.1.5, status=deliverable (250 ok)",
        ),
    ]
    assert parsed.events.get_column("next_queue_id").to_list() == [None, None, None, "4B2C33D02", None]


def test_qmgr_from_and_client_with_orig_client() -> None:
    parsed = parse(
        [
            "Jun 13 10:00:00 mx1 postfix/smtpd[901]: 3F1A22C01: client=x.example.com[192.0.2.1], "
            "orig_client=y.example.com[2001:DB8::1]",
            "Jun 13 10:00:01 mx1 postfix/qmgr[900]: 3F1A22C01: from=<a@example.com>, size=1234, nrcpt=2 (queue active)",
            "Jun 13 10:00:02 mx1 postfix/qmgr[900]: 3F1A22C01: from=<a@example.com>, status=expired, returned to sender",
        ]
    )
    ev = parsed.events.select("kind", "status", "sender", "size", "nrcpt", "client_host", "client_ip")
    assert ev.rows() == [
        ("client", None, None, None, None, "y.example.com", "2001:db8::1"),
        ("receive", None, "a@example.com", 1234, 2, None, None),
        ("hold", "Failed", "a@example.com", None, None, None, None),
    ]


def test_organization_per_host_and_for_one_host() -> None:
    one = parse(["Jun 13 10:00:00 mx1.example.org postfix/qmgr[900]: 3F1A22C01: removed"] * 2)
    assert one.events.get_column("organization").to_list() == ["example.org", "example.org"]
    two = parse(
        [
            "Jun 13 10:00:00 mx1.example.org postfix/qmgr[900]: 3F1A22C01: removed",
            "Jun 13 10:00:00 mx2.example.net postfix/qmgr[900]: 3F1A22C01: removed",
        ]
    )
    assert two.events.get_column("organization").to_list() == ["example.org", "example.net"]


def test_delivery_reply_is_cut_as_text_whatever_follows_the_status() -> None:
    # a multi-byte character right after the status: a byte count past it would cut the character
    # in two (the chunk failed with "invalid utf8"); the usual shape keeps its reply as before
    pre = "Jun 13 10:00:00 mx1 postfix/smtp[9]: 3F1A22C01: to=<b@example.org>, relay=mx.example.org[203.0.113.7]:25, "
    lines = [
        pre + "delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok: zoë)",
        pre + "delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent→(odd)",
        pre + "delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent",
    ]
    events = postfix.parse(frame(lines), ParseContext(year=2026)).events
    assert events.get_column("detail").to_list() == ["250 2.0.0 Ok: zoë", "→(odd", ""]
