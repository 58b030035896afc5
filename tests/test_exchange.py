"""Exchange message tracking logs: golden events and message rows per edge case, the CSV paths,
chunking, detection, and the shared corpus as a regression net.

Each ``tests/fixtures/exchange/<file>.log`` is hand-written (what it pins: FILES below);
``<file>.events.jsonl`` holds its events (null fields left out) then its unknown lines, and
``<case>.messages.jsonl`` the message rows ingest.correlate makes of a case's files.
Regenerate with ``pytest tests/test_exchange.py --update-golden`` and review the diff.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pytest

from msgtrace.ingest.correlate import correlate
from msgtrace.ingest.formats import ParseContext, detect, exchange
from msgtrace.ingest.schema import EVENT_SCHEMA, KINDS, MESSAGE_SCHEMA, STATUSES
from tests.golden import check_golden, golden_path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "exchange"
FILES = {
    "ex2016_inbound": "30 fields, BOM, CRLF; quoted commas and doubled quotes; NOTIFYMAPI; DELIVER + FAIL ('; not found')",
    "ex2016_outbound": "mailbox submission; DEFER with a quoted status; SEND to two; expiry with `;` in each status; DSN",
    "ex2013_routing": "27 fields; EXPAND of a group, RESOLVE of an alias, REDIRECT, a case-only RESOLVE; DROP spam / not",
    "ex2010_hub": "26 fields (no network-message-id), BOM + LF; internal ids; TRANSFER; FAIL and DEFER",
    "malformed": "a quote never closed, a bad date, a blank line; a second header block switching 27 -> 30 fields",
    "ex2016_cross_ex01": "one message over two servers: the edge server (RECEIVE from the Internet, SEND to EX02)",
    "ex2016_cross_ex02": "... and the mailbox server (RECEIVE from EX01, DELIVER)",
}
# A case is the files correlated together.
CASES = {name: [name] for name in FILES if not name.startswith("ex2016_cross")}
CASES["ex2016_cross"] = ["ex2016_cross_ex01", "ex2016_cross_ex02"]


def frame(lines: list[str], start: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {"line_no": range(start, start + len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String}
    )


def read_lines(name: str) -> list[str]:
    """The file as the pipeline hands it over: split on \\n only (CR and BOM left for the parser)."""
    lines = (FIXTURES / f"{name}.log").read_bytes().decode("utf-8").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def context(**kw: object) -> ParseContext:
    return ParseContext(**{"source": "fixture", **kw})  # type: ignore[arg-type]


def parse_file(name: str, ctx: ParseContext | None = None) -> exchange.Parsed:
    return exchange.parse(frame(read_lines(name)), ctx or context())


def rows(parsed: exchange.Parsed) -> list[dict]:
    """Events in line order without null fields, then the unknown lines: what a golden file holds."""
    ev = parsed.events.sort(["line_no", "kind", "recipient"], nulls_last=False)
    out = [
        {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items() if v is not None}
        for r in ev.iter_rows(named=True)
    ]
    return out + [{"unknown": r["line_no"], "line": r["line"]} for r in parsed.unknown.iter_rows(named=True)]


def messages(case: str) -> pl.DataFrame:
    events = pl.concat([parse_file(f, context(source=f)).events for f in CASES[case]])
    return correlate(events).sort(["received", "queue_id", "recipient_lower"])


def message_rows(case: str) -> list[dict]:
    """Every message column but the trace id (a hash, checked on its own below)."""
    df = messages(case).drop("message_trace_id")
    return [
        {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()}
        for r in df.iter_rows(named=True)
    ]


@pytest.mark.parametrize("name", sorted(FILES))
def test_golden_events(name: str, update_golden: bool) -> None:
    check_golden(rows(parse_file(name)), golden_path(FIXTURES, name, "events"), update_golden, sort_keys=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_messages(case: str, update_golden: bool) -> None:
    check_golden(message_rows(case), golden_path(FIXTURES, case, "messages"), update_golden, sort_keys=True)


def test_every_file_is_a_case() -> None:
    assert {p.stem for p in FIXTURES.glob("*.log")} == set(FILES)


def test_events_follow_the_schema() -> None:
    for name in FILES:
        p = parse_file(name)
        assert p.events.schema == pl.Schema(EVENT_SCHEMA)
        assert set(p.events["kind"]) <= set(KINDS)
        assert set(p.events["status"].drop_nulls()) <= set(STATUSES)
        assert p.unknown.columns == ["line_no", "line"]
        assert (p.events["format"] == "exchange").all() and (p.events["source"] == "fixture").all()


def by(name: str, **match: object) -> list[dict]:
    return [r for r in rows(parse_file(name)) if all(r.get(k) == v for k, v in match.items())]


# ---- the edge cases, spelled out (the goldens hold the rest) ---------------------------------------


def test_receive_from_smtp() -> None:
    (r,) = by("ex2016_inbound", kind="receive")
    assert r["time"] == "2026-06-13T10:00:00.100000+00:00"
    assert r["queue_id"] == "a1a1a1a1-0000-4000-8000-00000000000a"  # network-message-id, not internal 1001
    assert (r["sender"], r["size"], r["nrcpt"]) == ("alice@fabrikam.com", 5120, 2)
    assert r["message_id"] == "<CAF=a1@mail.fabrikam.com>"
    assert r["subject"] == 'Re: budget, "final" numbers'  # quoted comma, doubled quotes
    assert (r["client_ip"], r["client_host"]) == ("203.0.113.7", "mail.fabrikam.com")
    assert (r["program"], r["line_no"]) == ("RECEIVE", 6)
    assert r["host"] == "" and r["organization"] == ""  # no ctx.host: the log names no logging server
    named = by("ex2016_inbound", program="RECEIVE", kind="deliver")
    assert [(x["recipient"], x["status"]) for x in named] == [
        ("bob@contoso.com", "GettingStatus"),
        ("carol@contoso.com", "GettingStatus"),
    ]


def test_no_client_ip_unless_received_by_smtp() -> None:
    for r in by("ex2016_outbound", kind="receive"):  # RECEIVE/SUBMIT from a mailbox, and a DSN
        assert "client_ip" not in r
    (hub,) = by("ex2010_hub", kind="receive", program="RECEIVE", queue_id="90001")
    assert "client_ip" not in hub and hub["client_host"] == "MBX10.contoso.com"


def test_mailbox_submission_names_no_recipients() -> None:
    """MSGTRKMS RECEIVE/SUBMIT: message rows only (see exchange._recipient_rows)."""
    assert by("ex2016_outbound", program="SUBMIT", kind="deliver") == []
    assert (
        by("ex2016_outbound", program="RECEIVE", queue_id="b2b2b2b2-0000-4000-8000-00000000000b", kind="deliver") == []
    )


def test_notifymapi_without_ids_is_dropped() -> None:
    p = parse_file("ex2016_inbound")
    assert 5 not in p.events["line_no"].to_list() and p.unknown.is_empty()


def test_deliver_and_fail_with_semicolon_in_status() -> None:
    (d,) = by("ex2016_inbound", program="DELIVER")
    assert (d["recipient"], d["status"], d["relay"], d["dsn"], d["delay"]) == (
        "bob@contoso.com", "Delivered", "EX01", "2.1.5", 0.9,
    )  # fmt: skip
    assert "to_ip" not in d  # local delivery
    (f,) = by("ex2016_inbound", program="FAIL")
    assert (f["recipient"], f["status"], f["dsn"]) == ("carol@contoso.com", "Failed", "5.1.1")
    assert f["detail"] == "550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found"  # one recipient: the whole status


def test_send_pairs_each_recipient_with_its_status() -> None:
    x, y = by("ex2016_outbound", program="SEND", to_ip="198.51.100.25")
    assert (x["recipient"], x["detail"]) == ("xavier@example.org", "250 2.1.5 Ok")
    assert (y["recipient"], y["detail"]) == ("yvonne@example.org", "250 2.1.5 Recipient <yvonne@example.org> OK")
    assert (x["status"], x["relay"], x["delay"]) == ("Delivered", "mx.example.org", 1.99)


def test_statuses_holding_semicolons_pair_by_code() -> None:
    frank, gina = by("ex2016_outbound", program="FAIL")
    assert (frank["recipient"], frank["detail"], frank["dsn"]) == (
        "frank@example.com", "550 4.4.7 QUEUE.Expired;Message expired", "4.4.7",
    )  # fmt: skip
    assert (gina["recipient"], gina["dsn"]) == ("gina@example.com", "5.4.316")
    assert gina["detail"] == "550 5.4.316 Message expired, connection refused(Socket error code 10061)"


def test_defer_keeps_a_quoted_status() -> None:
    (d,) = by("ex2016_outbound", program="DEFER")
    assert (d["recipient"], d["status"], d["dsn"], d["relay"]) == (
        "zoe@example.net",
        "Pending",
        "4.4.0",
        "mx.example.net",
    )
    assert d["detail"].startswith(
        '451 4.4.0 Primary target IP address responded with: "421 4.3.2 Service not available,'
    )


def test_dsn_starts_a_message_from_the_null_sender() -> None:
    (r,) = by("ex2016_outbound", kind="receive", program="DSN")
    assert (r["queue_id"], r["sender"], r["subject"]) == (
        "d4d4d4d4-0000-4000-8000-00000000000d", "", "Undeliverable: Lunch?",
    )  # fmt: skip
    assert r["detail"] == "<c3@EX01.contoso.com>"  # the original, by Message-ID


def test_expand_resolve_redirect() -> None:
    (group,) = by("ex2013_routing", kind="expand")
    assert (group["recipient"], group["status"]) == ("all-staff@contoso.com", "Expanded")
    members = by("ex2013_routing", program="EXPAND", kind="deliver")
    assert [(m["recipient"], m["status"], m["orig_recipient"]) for m in members] == [
        ("bob@contoso.com", "GettingStatus", "all-staff@contoso.com"),
        ("carol@contoso.com", "GettingStatus", "all-staff@contoso.com"),
    ]
    alias = by("ex2013_routing", program="RESOLVE", line_no=7)
    assert [(a["recipient"], a["status"], a.get("orig_recipient")) for a in alias] == [
        ("john.smith@contoso.com", "GettingStatus", "jsmith@contoso.com"),
        ("jsmith@contoso.com", "None", None),
    ]
    moved = by("ex2013_routing", program="REDIRECT")
    assert [(a["recipient"], a["status"]) for a in moved] == [
        ("carol.assistant@contoso.com", "GettingStatus"),
        ("carol@contoso.com", "None"),
    ]
    (same,) = by("ex2013_routing", program="RESOLVE", line_no=9)  # Bob@ -> bob@: no rewrite, no None row
    assert (same["recipient"], same["status"], same.get("orig_recipient")) == ("bob@contoso.com", "GettingStatus", None)


def test_drop_is_spam_only_when_the_reason_says_so() -> None:
    (spam,) = by("ex2013_routing", program="DROP", recipient="bob@contoso.com")
    assert spam["status"] == "FilteredAsSpam"
    (other,) = by("ex2013_routing", program="DROP", recipient="moderator@contoso.com")
    assert other["status"] == "Failed"


def test_exchange_2010_keys_by_internal_id() -> None:
    p = parse_file("ex2010_hub")
    assert set(p.events["queue_id"]) == {"90001", "90002"}
    (send,) = by("ex2010_hub", program="SEND")
    assert (send["to_ip"], send["relay"], send["status"]) == ("203.0.113.80", "mx.partner.example", "Delivered")
    (transfer,) = by("ex2010_hub", program="TRANSFER")
    assert (transfer["kind"], transfer["detail"]) == ("info", "90003")


def test_malformed_lines_are_unknown_and_the_rest_parses() -> None:
    p = parse_file("malformed")
    assert p.unknown["line_no"].to_list() == [6, 7]  # the open quote, the bad date; the blank line is skipped
    assert p.events.filter(pl.col("kind") == "deliver")["program"].to_list() == ["RECEIVE", "DELIVER", "DEFER"]


def test_host_and_organization_from_context() -> None:
    p = parse_file("ex2016_inbound", context(host="ex01.contoso.com"))
    assert set(p.events["host"]) == {"ex01.contoso.com"} and set(p.events["organization"]) == {"contoso.com"}
    p = parse_file("ex2016_inbound", context(host="ex01.contoso.com", organization="Contoso"))
    assert set(p.events["organization"]) == {"Contoso"}


# ---- how the lines arrive --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
def test_chunks_give_the_same_events(name: str) -> None:
    """The header only comes in the first chunk: ctx.state carries it (as JSON-able data)."""
    lines, whole = read_lines(name), rows(parse_file(name))
    ctx = context()
    parts = [exchange.parse(frame(lines[i : i + 3], i), ctx) for i in range(0, len(lines), 3)]
    events = pl.concat([p.events for p in parts])
    unknown = pl.concat([p.unknown for p in parts])
    assert rows(exchange.Parsed(events=events, unknown=unknown)) == whole
    assert json.loads(json.dumps(ctx.state)) == ctx.state


@pytest.mark.parametrize("name", sorted(FILES))
def test_line_by_line_path_matches_the_csv_reader(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The regex fallback (taken when a malformed line derails the CSV reader) reads alike."""
    want = rows(parse_file(name))
    monkeypatch.setattr(exchange, "_split_csv", lambda text, names: None)
    assert rows(parse_file(name)) == want


def test_crlf_and_bom_make_no_difference() -> None:
    lines = read_lines("ex2016_inbound")
    assert lines[0].startswith("\ufeff#Software") and all(line.endswith("\r") for line in lines)
    plain = [line.lstrip("\ufeff").rstrip("\r") for line in lines]
    assert rows(exchange.parse(frame(plain), context())) == rows(parse_file("ex2016_inbound"))


@pytest.mark.parametrize("name", ["ex2010_hub", "ex2013_routing", "ex2016_outbound"])
def test_without_a_header_the_width_picks_the_layout(name: str) -> None:
    """A file first read from its middle with no saved state (26, 27 or 30 fields)."""
    lines = read_lines(name)
    start = next(i for i, line in enumerate(lines) if line.startswith("#Fields")) + 1
    got = rows(exchange.parse(frame(lines[start:], start), context()))
    assert got == [r for r in rows(parse_file(name)) if r.get("line_no", r.get("unknown", 0)) >= start]


def test_width_counts_a_trailing_empty_field() -> None:
    parts = pl.Series(["a,b", "a,", ",", 'a,"x,y",']).str.extract_all(exchange._FIELD)
    width = parts.list.len() + parts.list.last().str.ends_with(",").cast(pl.UInt32)
    assert width.to_list() == [2, 2, 2, 3]


def test_detect() -> None:
    for name in FILES:
        assert detect(read_lines(name)[:20]) == "exchange"
    assert exchange.detect(["#Fields: date-time,client-ip,event-id,internal-message-id"])
    assert not exchange.detect(
        [
            "#Software: Microsoft Exchange Server",
            "#Log-type: SMTP Receive Protocol Log",
            "#Fields: date-time,connector-id",
        ]
    )
    assert not exchange.detect(["Jun 13 10:00:00 mx1 postfix/qmgr[9]: 3F1A22C01: removed"])
    assert not exchange.detect([])


# ---- message rows (ingest.correlate) -----------------------------------------------------------------

CONTRACT = ["received", "sender_address", "recipient_address", "status", "to_ip", "from_ip", "size"]


def contract(case: str) -> list[tuple]:
    return [tuple(r[c] for c in CONTRACT) for r in message_rows(case)]


def t(s: str) -> str:
    return f"2026-06-{s}+00:00"


def test_messages_inbound() -> None:
    assert contract("ex2016_inbound") == [
        (t("13T10:00:00.100000"), "alice@fabrikam.com", "bob@contoso.com", "Delivered", "", "203.0.113.7", 5120),
        (t("13T10:00:00.100000"), "alice@fabrikam.com", "carol@contoso.com", "Failed", "", "203.0.113.7", 5120),
    ]


def test_messages_outbound_expiry_and_dsn() -> None:
    assert contract("ex2016_outbound") == [
        (t("13T10:05:00.010000"), "dave@contoso.com", "xavier@example.org", "Delivered", "198.51.100.25", "", 20480),
        (t("13T10:05:00.010000"), "dave@contoso.com", "yvonne@example.org", "Delivered", "198.51.100.25", "", 20480),
        (t("13T10:05:00.010000"), "dave@contoso.com", "zoe@example.net", "Delivered", "192.0.2.44", "", 20480),
        (t("13T11:00:00"), "erin@contoso.com", "frank@example.com", "Failed", "", "", 3000),
        (t("13T11:00:00"), "erin@contoso.com", "gina@example.com", "Failed", "", "", 3000),
        (t("15T11:00:00.050000"), "", "erin@contoso.com", "Delivered", "", "", 9000),
    ]


def test_messages_group_alias_redirect_and_drops() -> None:
    got = [(r[2], r[3]) for r in contract("ex2013_routing")]
    assert got == [
        ("all-staff@contoso.com", "Expanded"),
        ("bob@contoso.com", "Delivered"),
        ("carol.assistant@contoso.com", "Delivered"),
        ("carol@contoso.com", "None"),
        ("john.smith@contoso.com", "Delivered"),
        ("jsmith@contoso.com", "None"),
        ("bob@contoso.com", "FilteredAsSpam"),
        ("moderator@contoso.com", "Failed"),
    ]


def test_messages_exchange_2010() -> None:
    assert contract("ex2010_hub") == [
        (t("12T07:00:00"), "ivan@contoso.com", "kim@contoso.com", "Delivered", "", "", 7000),
        (t("12T07:00:00"), "ivan@contoso.com", "lee@partner.example", "Delivered", "203.0.113.80", "", 7000),
        (t("12T07:30:00"), "billing@partner.example", "kim@contoso.com", "Pending", "", "203.0.113.50", 12000),
        (t("12T07:30:00"), "billing@partner.example", "nobody@contoso.com", "Failed", "", "203.0.113.50", 12000),
    ]


def test_one_message_across_two_servers() -> None:
    """Joined by network-message-id: Received and FromIP from the edge, the status from the mailbox server."""
    (row,) = message_rows("ex2016_cross")
    assert (row["received"], row["from_ip"], row["size"], row["status"]) == (
        t("13T12:00:00"), "203.0.113.7", 8000, "Delivered",
    )  # fmt: skip
    assert row["queue_id"] == "11111111-0000-4000-8000-000000000011"


def test_trace_ids_are_stable() -> None:
    first = messages("ex2016_outbound")["message_trace_id"].to_list()
    assert first == messages("ex2016_outbound")["message_trace_id"].to_list()
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i) for i in first)
    assert len(set(first)) == 3  # three messages: B, C and the DSN
    assert set(MESSAGE_SCHEMA) == set(messages("ex2016_outbound").columns)


# ---- the shared corpus -------------------------------------------------------------------------------


def test_corpus_exchange_2013(corpus: Path) -> None:
    path = corpus / "exchange" / "kinesis-agent-windows-MSGTRK-ex2013.log"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines = lines[:-1] if lines[-1] == "" else lines
    assert detect(lines) == "exchange"
    p = exchange.parse(frame(lines), context())
    assert p.unknown.is_empty()
    assert rows(p) == [
        {
            "time": "2017-05-22T17:33:35.632000+00:00", "host": "", "organization": "", "format": "exchange",
            "program": "AGENTINFO", "queue_id": "13fad5b7-39c5-46e7-130e-08d4a138ac67", "kind": "info",
            "sender": "jlb-approval@amazon.com",
            "message_id": "<1028007174.22872.1495474412586.JavaMail.apollo@apollo-adaws-onebox-acc-1a-4c722f6e.us-east-1.amazon.com>",
            "subject": "Started JlbRelayShortCircuit/us-west-2/PDX1/Prod deployment", "source": "fixture", "line_no": 5,
        },
        {
            "time": "2017-05-22T17:33:35.695000+00:00", "host": "", "organization": "", "format": "exchange",
            "program": "HAREDIRECT", "queue_id": "13fad5b7-39c5-46e7-130e-08d4a138ac67", "kind": "info",
            "sender": "jlb-approval@amazon.com",
            "message_id": "<1028007174.22872.1495474412586.JavaMail.apollo@apollo-adaws-onebox-acc-1a-4c722f6e.us-east-1.amazon.com>",
            "subject": "Started JlbRelayShortCircuit/us-west-2/PDX1/Prod deployment",
            "detail": "EX13D13UWB004.ant.amazon.com = 250 2.6.0 < 1028007174.22872.1495474412586.JavaMail.apollo@apollo"
            " - adaws - onebox - acc - 1a - 4c722f6e.us - east - 1.amazon.com > [InternalId = EX13D13UWB004.ant.amazon.com,"
            " Hostname = 64712272257897] Queued mail for redundancy",
            "source": "fixture", "line_no": 6,
        },
    ]  # fmt: skip
    # Two internal ids (64712272257893, ...894) share one network id; with only info events
    # (no RECEIVE in the sample) the correlator makes no message of it.
    assert correlate(p.events).is_empty()


# ---- through the pipeline ---------------------------------------------------------------------------


def _store_messages(store: Path) -> pl.DataFrame:
    import pyarrow.dataset as ds

    return pl.from_arrow(ds.dataset(store / "messages", format="parquet", partitioning="hive").to_table())  # type: ignore[return-value]


def test_ingest_one_file(tmp_path: Path) -> None:
    from msgtrace.ingest.pipeline import IngestOptions, ingest_paths

    report = ingest_paths([str(FIXTURES / "ex2013_routing.log")], tmp_path / "store", IngestOptions())
    assert [(f.format, f.unknown, f.skipped) for f in report.files] == [("exchange", 0, None)]
    got = _store_messages(tmp_path / "store").sort("received", "recipient_lower")
    assert got.select("recipient_address", "status").rows() == [(r[2], r[3]) for r in contract("ex2013_routing")]


def test_ingest_two_servers_as_one_message(tmp_path: Path) -> None:
    from msgtrace.ingest.pipeline import IngestOptions, ingest_paths

    logs = [str(FIXTURES / f"{name}.log") for name in CASES["ex2016_cross"]]
    report = ingest_paths(logs, tmp_path / "store", IngestOptions())
    assert [(f.unknown, f.skipped) for f in report.files] == [(0, None), (0, None)]
    (row,) = _store_messages(tmp_path / "store").iter_rows(named=True)
    assert (row["from_ip"], row["status"], row["recipient_address"]) == ("203.0.113.7", "Delivered", "pat@contoso.com")
