"""Exim mainlog parser: golden events per edge case, detection, chunking, and the shared corpus as a net."""

from __future__ import annotations

import datetime as dt
import tarfile
from pathlib import Path

import polars as pl
import pytest

from msgtrace.ingest.formats import ParseContext, exim
from msgtrace.ingest.schema import EVENT_SCHEMA, KINDS, STATUSES
from tests.golden import MESSAGE_COLUMNS, check_golden, golden_path
from tests.polars_common import DETAIL_MAX

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "exim"
CASES = sorted(p.stem for p in FIXTURES.glob("*.log"))


def frame(lines: list[str], start: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {"line_no": range(start, start + len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String}
    )


def context() -> ParseContext:
    return ParseContext(timezone="Europe/Paris", year=2026, host="mx1.example.com", source="fixture")


def rows(parsed) -> list[dict]:
    """Events in line order, without null fields, then the unknown lines: what a golden file holds."""
    ev = parsed.events.sort(["line_no", "kind", "recipient"], nulls_last=False)
    out = [
        {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items() if v is not None}
        for r in ev.iter_rows(named=True)
    ]
    return out + [{"unknown": r["line_no"], "line": r["line"]} for r in parsed.unknown.iter_rows(named=True)]


def parse_fixture(case: str):
    lines = (FIXTURES / f"{case}.log").read_text().splitlines()
    return exim.parse(frame(lines), context())


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
        assert p.unknown.columns == ["line_no", "line"]


def test_arrival_fields() -> None:
    (r,) = by("arrival_delivery", kind="receive", queue_id="1vA1bC-0000Ab-1x")
    assert r["sender"] == "alice@example.org"
    assert (r["client_host"], r["client_ip"]) == ("mail.example.org", "192.0.2.10")
    assert (r["size"], r["nrcpt"]) == (2048, 2)
    assert r["message_id"] == "<20260303.abc@example.org>"
    assert r["subject"] == 'Re: "quarterly" report'
    assert r["time"] == "2026-03-03T08:15:01+00:00"  # Europe/Paris wall time
    assert r["organization"] == "example.com"  # from ctx.host of a bare mainlog


def test_local_and_remote_deliveries() -> None:
    local, remote = by("arrival_delivery", kind="deliver", queue_id="1vA1bC-0000Ab-1x")
    assert (local["recipient"], local["relay"], local["delay"]) == ("bob@example.com", "local_delivery", 1.0)
    assert "orig_recipient" not in local  # `bob <bob@example.com>` is a local part, not a rewrite
    assert (remote["relay"], remote["to_ip"], remote["dsn"], remote["delay"]) == (
        "mx.example.net",
        "203.0.113.25",
        "2.0.0",
        123.0,
    )
    assert remote["detail"] == "250 2.0.0 OK id=1vA1bD-0001"
    assert {r["status"] for r in (local, remote)} == {"Delivered"}


def test_outcome_flags() -> None:
    status = {r["recipient"]: r["status"] for r in by("outcomes", kind="deliver", queue_id="1vB2cD-0000Xy-2z")}
    assert status == {
        "nobody@example.net": "Failed",
        "ghost@example.org": "Failed",
        "later@example.com": "Pending",
        "test@example.com": "Delivered",  # *> suppressed by -N: Exim counts it done
        "fast@example.com": "Delivered",  # >> cutthrough
    }
    (fail,) = by("outcomes", recipient="nobody@example.net")
    assert fail["dsn"] == "5.1.1" and fail["detail"].startswith("SMTP error from remote mail server")


def test_bounce_is_its_own_message_and_noted_on_the_parent() -> None:
    (recv,) = by("outcomes", kind="receive", queue_id="1vB2cE-0000Xy-3a")
    assert recv["sender"] == ""
    (bounce,) = by("outcomes", kind="bounce")
    assert (bounce["queue_id"], bounce["next_queue_id"]) == ("1vB2cD-0000Xy-2z", "1vB2cE-0000Xy-3a")


def test_freezes() -> None:
    (hold,) = by("outcomes", kind="hold")
    assert (hold["queue_id"], hold["status"]) == ("1vB2cF-0000Xy-4b", "Quarantined")
    # An automatic freeze after a deferral leaves the recipient's own Pending alone.
    assert [r["kind"] for r in by("outcomes", queue_id="1vB2cG-0000Xy-5c")] == ["deliver", "info"]
    assert [r["kind"] for r in by("outcomes", queue_id="1vB2cH-0000Xy-6d")] == ["removed"]


def test_aliases_and_expansion() -> None:
    deliveries = {r["recipient"]: r.get("orig_recipient") for r in by("aliases", kind="deliver")}
    assert deliveries == {
        "alice@example.com": "team@example.com",
        "bob@example.com": "team@example.com",
        "carol@example.net": "team@example.com",
        "root@example.com": "postmaster@example.com",  # one-to-one: no expansion
        "dave@example.com": None,  # pipe: the address that was piped
        "devnull@example.com": None,
        "frank@example.net": "staff@example.com",
    }
    assert [(r["recipient"], r["status"]) for r in by("aliases", kind="expand")] == [("team@example.com", "Expanded")]


def test_rejects() -> None:
    got = [(r.get("queue_id"), r.get("sender"), r.get("recipient"), r["status"]) for r in by("rejects", kind="reject")]
    assert got == [
        (None, "menacedsj04@listserv.eurasia.org", "dir@example.com", "None"),
        (None, "spamela@spammer.example", "bob@example.com", "FilteredAsSpam"),
        (None, "x@client.example", "bob@example.com", "None"),
        (None, "y@client.example", None, "FilteredAsSpam"),  # after DATA: the id was never queued
        (None, "", None, "None"),
    ]
    unknown = [r["unknown"] for r in rows(parse_fixture("rejects")) if "unknown" in r]
    assert unknown == [9, 10]  # connection chatter is dropped, not unknown


def test_envelopes() -> None:
    got = [(r["queue_id"], r["time"], r["host"], r["program"]) for r in rows(parse_fixture("envelopes"))]
    assert got == [
        ("1vE5fG-0000Bb-1a", "2026-03-03T08:15:01.123000+00:00", "mx1.example.com", "exim"),
        ("1vE5fG-0000Bb-1a", "2026-03-03T08:15:02+00:00", "mx1.example.com", "exim"),
        ("1vE5fG-0000Bb-1a", "2026-03-03T08:15:02.500000+00:00", "mx1.example.com", "exim"),
        ("1vE5fH-0000Bb-2b", "2026-03-03T08:16:00+00:00", "mx1", "exim"),
        ("1vE5fH-0000Bb-2b", "2026-03-03T08:16:01+00:00", "mx1", "exim"),
        ("1vE5fI-0000Bb-3c", "2026-03-03T08:17:00+00:00", "mx2.example.net", "exim"),
        ("1vE5fJ-0000Bb-4d", "2026-03-03T08:18:00+00:00", "mx3.example.net", "exim4"),
        ("1vE5fK-0000Bb-5e", "2026-03-03T08:19:00+00:00", "info", "exim"),
    ]


def test_dst_edges() -> None:
    got = {r["sender"]: r["time"] for r in rows(parse_fixture("dst"))}
    assert got == {
        "gap@example.org": "2025-03-30T01:30:00+00:00",  # skipped hour: the clock had not moved yet
        "before@example.org": "2025-10-26T00:50:00+00:00",  # first pass of the repeated hour (CEST)
        "after@example.org": "2025-10-26T01:10:00+00:00",  # second pass (CET)
    }


def test_expansion_spanning_chunks() -> None:
    lines = (FIXTURES / "aliases.log").read_text().splitlines()
    ctx = context()
    first = exim.parse(frame(lines[:2]), ctx)
    assert first.events.filter(pl.col("kind") == "expand").height == 0
    second = exim.parse(frame(lines[2:], start=2), ctx)
    expand = second.events.filter(pl.col("kind") == "expand")
    assert expand.select("queue_id", "recipient").rows() == [("1vC3dE-0000Zz-1a", "team@example.com")]


def test_empty_batch() -> None:
    p = exim.parse(frame([]), context())
    assert p.events.height == 0 and p.unknown.height == 0


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (["2026-03-03 09:15:01 1vA1bC-0000Ab-1x <= a@b H=[192.0.2.1] P=esmtp S=1"], True),
        (["", "2026-03-03 09:15:01 [123] 1vA1bC-0000Ab-1x Completed"], True),
        (["2026-03-03 09:15:01.123 +0100 10HmaX-000000005vi-0000 Completed"], True),
        (["2013-06-10 18:33:32 [10099] H=(x) [192.0.2.1] F=<a@b> rejected RCPT <c@d>: no"], True),
        (["Mar  3 09:15:01 mx1 exim[12]: 1vA1bC-0000Ab-1x Completed"], True),
        (["mail.example.com exim[3751842]: 2021-07-17 23:20:49 plain_server authenticator failed"], True),
        (["Mar  3 09:15:01 mx1 postfix/qmgr[12]: 3F1A22C01: from=<a@b>, size=1, nrcpt=1 (queue active)"], False),
        (["Apr  2 00:15:25 mta001 sendmail[32300]: u31FFPtp032300: from=<a@b>, size=5938"], False),
        (["2026-03-03T09:15:01+01:00 mx1 postfix/smtpd[1]: connect from x[192.0.2.1]"], False),
        (["#Software: Microsoft Exchange Server", "#Fields: date-time,client-ip"], False),
    ],
)
def test_detect(sample: list[str], expected: bool) -> None:
    assert exim.detect(sample) is expected


def test_corpus_fail2ban(corpus: Path) -> None:
    lines = (corpus / "exim" / "fail2ban-exim.log").read_text().splitlines()
    p = exim.parse(frame(lines), context())
    rejects = p.events.filter(pl.col("kind") == "reject")
    assert rejects.select("recipient", "client_ip").rows() == [
        ("dir@ml3.ru", "202.132.70.178"),
        ("ruslan@maslovskiy.com.ua", "182.18.24.93"),
        ("oksana@birzhatm.ua", "111.67.203.116"),
        ("some.invalid.name@a.domain", "192.0.2.3"),
        ("locus@leone.tld", "9.12.1.21"),
    ]
    # Only the fail2ban annotations (`# ...`) are unknown; syslog- and journald-prefixed lines are understood.
    assert all(s.startswith("#") for s in p.unknown["line"])
    assert p.unknown.height == sum(1 for s in lines if s.startswith("#"))


@pytest.mark.slow
def test_corpus_exim_testsuite(corpus: Path) -> None:
    """835 one-test logs with munged values (S=sss, ip4.ip4.ip4.ip4): no crash, and what is not understood is counted."""
    totals = {"lines": 0, "events": 0, "unknown": 0}
    checked = {}
    with tarfile.open(corpus / "exim" / "exim-testsuite-test-log.tar.gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            lines = tar.extractfile(member).read().decode("utf-8", "replace").splitlines()
            p = exim.parse(frame(lines), ParseContext())  # each file is its own log: ids repeat across files
            totals["lines"] += len(lines)
            totals["events"] += p.events.height
            totals["unknown"] += p.unknown.height
            if member.name in ("test/log/0033", "test/log/0166"):
                checked[member.name] = (
                    p.events.sort("line_no", "kind").select("line_no", "kind", "status", "recipient").rows()
                )
    print(f"exim test suite: {totals}")
    assert totals["lines"] > 17_000
    assert totals["events"] > 13_000
    # What remains unknown is test-harness debug output (logwrite from ACLs, TLS details, separators).
    assert totals["unknown"] < 0.12 * totals["lines"]
    assert checked["test/log/0033"] == [
        (0, "receive", None, None),
        (2, "deliver", "Delivered", "one@remote"),
        (2, "expand", "Expanded", "list@test.ex"),
        (3, "deliver", "Delivered", "two@remote"),
        (4, "removed", None, None),
        (6, "receive", None, None),
        (8, "deliver", "Delivered", "one@remote"),
        (8, "expand", "Expanded", "list@test.ex"),
        (9, "deliver", "Delivered", "two@remote"),
        (10, "removed", None, None),
    ]
    assert checked["test/log/0166"] == [
        (0, "receive", None, None),
        (1, "deliver", "Delivered", "userx@test.ex"),
        (1, "expand", "Expanded", "a@test.ex"),
        (2, "deliver", "Delivered", "usery@test.ex"),
        (3, "removed", None, None),
    ]


# --- through the correlator: one row per (message, recipient) -------------------------------------------


def message_rows(events: pl.DataFrame) -> list[dict]:
    from msgtrace.ingest.correlate import correlate

    m = correlate(events).select(MESSAGE_COLUMNS).sort("queue_ids", "recipient_address", "status", "detail")
    return [
        {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()} for r in m.iter_rows(named=True)
    ]


@pytest.mark.parametrize("case", CASES)
def test_messages_golden(case: str, update_golden: bool) -> None:
    got = message_rows(parse_fixture(case).events)
    check_golden(got, golden_path(FIXTURES, case, "messages"), update_golden, sort_keys=True)


def test_messages_aliases() -> None:
    got = {(r["recipient_address"], r["status"]) for r in message_rows(parse_fixture("aliases").events)}
    assert got == {
        ("team@example.com", "Expanded"),
        ("alice@example.com", "Delivered"),
        ("bob@example.com", "Delivered"),
        ("carol@example.net", "Pending"),
        ("postmaster@example.com", "None"),  # one-to-one rewrite: the original address has no status of its own
        ("root@example.com", "Delivered"),
        ("dave@example.com", "Delivered"),
        ("devnull@example.com", "Delivered"),
        ("staff@example.com", "None"),
        ("frank@example.net", "Delivered"),
    }


def test_messages_outcomes() -> None:
    got = [
        (r["queue_ids"], r["sender_address"], r["recipient_address"], r["status"])
        for r in message_rows(parse_fixture("outcomes").events)
    ]
    assert got == [
        ("1vB2cD-0000Xy-2z", "sender@example.org", "fast@example.com", "Delivered"),
        ("1vB2cD-0000Xy-2z", "sender@example.org", "ghost@example.org", "Failed"),
        ("1vB2cD-0000Xy-2z", "sender@example.org", "later@example.com", "Pending"),
        ("1vB2cD-0000Xy-2z", "sender@example.org", "nobody@example.net", "Failed"),
        ("1vB2cD-0000Xy-2z", "sender@example.org", "test@example.com", "Delivered"),
        ("1vB2cE-0000Xy-3a", "", "sender@example.org", "Delivered"),  # the bounce, from <>
        ("1vB2cF-0000Xy-4b", "suspicious@example.biz", "", "Quarantined"),  # frozen by ACL
        ("1vB2cG-0000Xy-5c", "", "stuck@example.com", "Pending"),
        ("1vB2cH-0000Xy-6d", "", "", "GettingStatus"),  # only `removed by root` seen
    ]


def test_messages_rejects() -> None:
    got = [
        (r["queue_ids"], r["sender_address"], r["recipient_address"], r["status"], r["from_ip"])
        for r in message_rows(parse_fixture("rejects").events)
    ]
    assert got == [
        ("", "y@client.example", "", "FilteredAsSpam", "192.0.2.51"),  # after DATA: no recipient in the line
        ("", "", "", "None", "192.0.2.52"),  # rejected MAIL <>
        ("", "spamela@spammer.example", "bob@example.com", "FilteredAsSpam", "203.0.113.99"),
        ("", "x@client.example", "bob@example.com", "None", "192.0.2.50"),
        ("", "menacedsj04@listserv.eurasia.org", "dir@example.com", "None", "202.132.70.178"),
    ]


def test_truncated_and_mangled_lines_never_crash() -> None:
    """Every prefix of every fixture line, plus non-ASCII: parsed or unknown, never an exception."""
    src = [s for case in CASES for s in (FIXTURES / f"{case}.log").read_text().splitlines()]
    lines = [s[:i] for s in src for i in range(0, len(s) + 1, 3)] + [s.replace("e", "é") for s in src]
    p = exim.parse(frame(lines), context())
    assert p.events.schema == pl.Schema(EVENT_SCHEMA)
    assert p.unknown["line_no"].is_between(0, len(lines) - 1).all()
    assert p.events["detail"].drop_nulls().str.len_chars().max() <= DETAIL_MAX
