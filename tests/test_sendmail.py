"""Sendmail parser: golden events per edge case, detection, and the shared corpus as a net."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from msgtrace.ingest.formats import ParseContext, sendmail
from msgtrace.ingest.schema import EVENT_SCHEMA, KINDS, STATUSES
from tests.golden import MESSAGE_COLUMNS, check_golden, golden_path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sendmail"
CASES = sorted(p.stem for p in FIXTURES.glob("*.log"))


def frame(lines: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"line_no": range(len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String})


def context() -> ParseContext:
    return ParseContext(timezone="Europe/Paris", year=2026, source="fixture")


def rows(parsed) -> list[dict]:
    """Events in line order, without null fields, then the unknown lines: what a golden file holds."""
    ev = parsed.events.sort(["line_no", "kind", "recipient"], nulls_last=False)
    out = [
        {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items() if v is not None}
        for r in ev.iter_rows(named=True)
    ]
    return out + [{"unknown": r["line_no"], "line": r["line"]} for r in parsed.unknown.iter_rows(named=True)]


def parse_fixture(case: str):
    return sendmail.parse(frame((FIXTURES / f"{case}.log").read_text().splitlines()), context())


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, update_golden: bool) -> None:
    got = rows(parse_fixture(case))
    check_golden(got, golden_path(FIXTURES, case, "events"), update_golden, sort_keys=True)


def by(case: str, **match: object) -> list[dict]:
    return [r for r in rows(parse_fixture(case)) if all(r.get(k) == v for k, v in match.items())]


def test_events_follow_the_schema() -> None:
    for case in CASES:
        p = parse_fixture(case)
        assert p.events.schema == pl.Schema(EVENT_SCHEMA)
        assert set(p.events["kind"]) <= set(KINDS)
        assert set(p.events["status"].drop_nulls()) <= set(STATUSES)


def test_receive_fields() -> None:
    (r,) = by("delivery", kind="receive", queue_id="63200FPt032300")
    assert (r["sender"], r["size"], r["nrcpt"]) == ("alice@example.org", 5938, 3)
    assert r["message_id"] == "<201604011515.abc@example.org>"
    assert (r["client_host"], r["client_ip"]) == ("mail.example.org", "192.0.2.10")
    assert (r["host"], r["organization"], r["program"]) == ("mta1", "mta1", "sm-mta")
    assert r["time"] == "2026-04-01T22:15:25+00:00"


def test_one_event_per_recipient_and_status() -> None:
    got = [
        (r["recipient"], r["status"], r.get("delay")) for r in by("delivery", kind="deliver", queue_id="63200FPt032300")
    ]
    assert got == [
        ("bob@example.com", "Delivered", 1.0),
        ("carol@example.com", "Delivered", 1.0),
        ("dave@example.net", "Pending", 2.0),
        ("dave@example.net", "Delivered", 86415.0),  # delay=1+00:00:15
    ]
    (bob,) = by("delivery", recipient="bob@example.com")
    assert (bob["relay"], bob["to_ip"], bob["dsn"]) == ("mx.example.com", "203.0.113.7", "2.0.0")
    assert bob["detail"] == "Sent (ok:  Message 40279894 accepted)"


def test_local_program_and_failed() -> None:
    got = [
        (r["recipient"], r["relay"], r.get("to_ip"), r["status"])
        for r in by("delivery", kind="deliver", queue_id="6330100a012600")
    ]
    assert got == [
        ("root@localhost.localdomain", "local", None, "Delivered"),
        ("erin@example.org", "prog", None, "Delivered"),  # to="|/usr/bin/procmail" for ctladdr=<erin@...>
        ("frank@example.com", "198.51.100.9", "198.51.100.9", "Failed"),
    ]


def test_msp_to_mta_handoff() -> None:
    (h,) = by("hops", kind="handoff")
    assert (h["queue_id"], h["next_queue_id"], h["recipient"]) == (
        "632A0000003100",
        "632A0001003101",
        "bob@example.com",
    )
    assert "status" not in h
    (local,) = by("hops", kind="receive", queue_id="632A0000003100")
    assert (local["sender"], local.get("client_ip")) == ("alice", None)  # relay=alice@localhost: local submission
    # "Message accepted for delivery" from a remote sendmail is a delivery, not a hop.
    (remote,) = by("hops", recipient="carol@example.net")
    assert (remote["kind"], remote["status"]) == ("deliver", "Delivered")


def test_dsn_bounce() -> None:
    (b,) = by("hops", kind="bounce")
    assert (b["queue_id"], b["next_queue_id"], b["detail"]) == ("632A0001003101", "632A0005003102", "DSN: User unknown")
    (dsn,) = by("hops", kind="receive", queue_id="632A0005003102")
    assert dsn["sender"] == ""


def test_rejects() -> None:
    got = [
        (r.get("queue_id"), r.get("sender"), r.get("recipient"), r.get("client_ip"), r["status"])
        for r in by("rejects", kind="reject")
    ]
    assert got == [
        ("61P819mk027713", None, "victim@example.ru", "128.68.136.133", "None"),
        ("61P706jo003992", None, "joao@example.pt", "151.232.63.226", "FilteredAsSpam"),
        ("61P8Qni004012", "test@service.example.com", None, "192.0.2.100", "None"),
        (None, None, None, "217.21.54.82", "None"),
        ("61P7ZTSC026254", None, "spamela@example.com", None, "None"),  # refused at RCPT, before from=
        ("65HIbcGI002794", None, "baduser@yourhost.example", None, "None"),
        ("65HIbcGI002800", None, None, None, "FilteredAsSpam"),
    ]
    # Each refused queue id also has its `from=... nrcpts=0`, which gives the sender.
    assert [(r["queue_id"], r["nrcpt"]) for r in by("rejects", kind="receive")] == [
        ("61P819mk027713", 0),
        ("61P7ZTSC026254", 0),
        ("65HIbcGI002794", 0),
    ]


def test_milter_hold_and_unknown() -> None:
    assert [(r["queue_id"], r["status"]) for r in by("rejects", kind="hold")] == [
        ("65HIbcGI002801", "FilteredAsSpam"),
        ("65HIbcGI002802", "Quarantined"),
    ]
    assert [r["queue_id"] for r in by("rejects", kind="info")] == ["65HIbcGI002805"]
    unknown = [r["line"] for r in rows(parse_fixture("rejects")) if "unknown" in r]
    assert unknown == [
        "Jun 17 14:44:00 robin sm-mta[2806]: something sendmail never says",
        "Jun 17 14:45:00 robin dovecot[2807]: imap-login: Login: user=<bob>",
        "# a comment",
    ]


def test_empty_batch() -> None:
    p = sendmail.parse(frame([]), context())
    assert p.events.height == 0 and p.unknown.height == 0


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (["Apr  2 00:15:25 mta001 sendmail[32300]: u31FFPtp032300: from=<a@b>, size=5938"], True),
        (["Feb 23 21:36:14 host sm-mta[22248]: s1NLaDQT022248: ruleset=check_rcpt, arg1=<a@b>"], True),
        (["Jun 17 14:37:39 <mail.notice> robin sm-mta[2794]: 55HIbcGI002794: <a@b>... User unknown"], True),
        (["2026-04-02T10:00:00+02:00 mta1 sm-msp-queue[3100]: 632A0000003100: from=alice, size=120"], True),
        (["Mar  3 09:15:01 mx1 postfix/qmgr[12]: 3F1A22C01: from=<a@b>, size=1, nrcpt=1 (queue active)"], False),
        (["Mar  3 09:15:01 mx1 postfix/sendmail[12]: fatal: usage"], False),
        (["2026-03-03 09:15:01 1vA1bC-0000Ab-1x <= a@b H=[192.0.2.1] P=esmtp S=1"], False),
    ],
)
def test_detect(sample: list[str], expected: bool) -> None:
    assert sendmail.detect(sample) is expected


def test_corpus_fluent(corpus: Path) -> None:
    lines = (corpus / "sendmail" / "fluent-plugin-sendmail-data.log").read_text().splitlines()
    p = sendmail.parse(frame(lines), ParseContext(year=2016))
    assert p.unknown.height == 0
    ev = p.events.sort("line_no", "recipient")
    assert ev.filter(pl.col("kind") == "receive").select("sender", "size", "nrcpt").rows() == [
        ("grandeur09@gmail.com", 5938, 7)
    ]
    assert ev.filter(pl.col("kind") == "deliver").select("recipient", "status").rows() == [
        ("sent1@example.com", "Delivered"),
        ("sent2@example.com", "Delivered"),
        ("deferred1@example.com", "Pending"),
        ("deferred2@example.com", "Pending"),
        ("sent3@example2.com", "Delivered"),
        ("sent4@example2.com", "Delivered"),
        ("deferred1@example.com", "Delivered"),
        ("root@localhost.localdomain", "Delivered"),
    ]


def test_corpus_fail2ban(corpus: Path) -> None:
    lines = (corpus / "sendmail" / "fail2ban-sendmail-reject.log").read_text().splitlines()
    p = sendmail.parse(frame(lines), ParseContext(year=2005))
    kinds = p.events.group_by("kind").len().sort("kind").rows()
    assert kinds == [("info", 5), ("receive", 3), ("reject", 22)]
    rejects = p.events.filter(pl.col("kind") == "reject")
    assert rejects.filter(pl.col("status") == "FilteredAsSpam").height == 4  # spamhaus, SpamCop, Barracuda RBL, PBL
    # Only the fail2ban annotations (`# ...`) are unknown.
    assert all(s.startswith("#") for s in p.unknown["line"])


# --- through the correlator: one row per (message, recipient) -------------------------------------------

# Queued rejects naming no recipient (check_mail, milter `data, reject`): see test_whole_message_rejects.
CORRELATOR_GAP = {"61P8Qni004012", "65HIbcGI002800"}


def message_rows(events: pl.DataFrame) -> list[dict]:
    from msgtrace.ingest.correlate import correlate

    m = correlate(events).select(MESSAGE_COLUMNS).sort("queue_ids", "recipient_address", "status", "detail")
    m = m.filter(~pl.col("queue_ids").is_in(list(CORRELATOR_GAP)))
    return [
        {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()} for r in m.iter_rows(named=True)
    ]


@pytest.mark.parametrize("case", CASES)
def test_messages_golden(case: str, update_golden: bool) -> None:
    got = message_rows(parse_fixture(case).events)
    check_golden(got, golden_path(FIXTURES, case, "messages"), update_golden, sort_keys=True)


def test_messages_hops() -> None:
    got = [
        (r["queue_ids"], r["sender_address"], r["recipient_address"], r["status"], r["from_ip"], r["size"])
        for r in message_rows(parse_fixture("hops").events)
    ]
    assert got == [
        # MSP -> MTA: one message under both ids; its hand-off row is suppressed, its origin is local; the
        # qualified sender from the MTA hop wins over the MSP's bare one.
        ("632A0000003100 632A0001003101", "alice@mta1.example.org", "bob@example.com", "Failed", "", 120),
        ("632A0005003102", "", "alice@mta1.example.org", "Delivered", "", 2400),  # the DSN
        ("632A0100003110", "", "carol@example.net", "Delivered", "", None),
    ]


def test_messages_rejects() -> None:
    got = [
        (r["queue_ids"], r["sender_address"], r["recipient_address"], r["status"])
        for r in message_rows(parse_fixture("rejects").events)
    ]
    assert got == [
        ("", "", "", "None"),  # check_relay: a refused connection
        ("61P706jo003992", "", "joao@example.pt", "FilteredAsSpam"),
        ("61P7ZTSC026254", "davao@example.org", "spamela@example.com", "None"),
        ("61P819mk027713", "spammer@example.com", "victim@example.ru", "None"),
        ("65HIbcGI002794", "root@yourhost.example", "baduser@yourhost.example", "None"),
        ("65HIbcGI002801", "", "", "FilteredAsSpam"),  # milter discard
        ("65HIbcGI002802", "", "", "Quarantined"),
    ]


def test_whole_message_rejects() -> None:
    from msgtrace.ingest.correlate import correlate

    m = correlate(parse_fixture("rejects").events).filter(pl.col("queue_ids").is_in(list(CORRELATOR_GAP)))
    assert m.sort("queue_ids").select("queue_ids", "sender_address", "status").rows() == [
        ("61P8Qni004012", "test@service.example.com", "None"),
        ("65HIbcGI002800", "", "FilteredAsSpam"),
    ]


def test_truncated_and_mangled_lines_never_crash() -> None:
    """Every prefix of every fixture line, plus non-ASCII: parsed or unknown, never an exception."""
    src = [s for case in CASES for s in (FIXTURES / f"{case}.log").read_text().splitlines()]
    lines = [s[:i] for s in src for i in range(0, len(s) + 1, 3)] + [s.replace("e", "é") for s in src]
    p = sendmail.parse(frame(lines), context())
    assert p.events.schema == pl.Schema(EVENT_SCHEMA)
    assert p.unknown["line_no"].is_between(0, len(lines) - 1).all()
    assert p.events["detail"].drop_nulls().str.len_chars().max() <= 300
