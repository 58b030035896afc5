"""--follow: a message relayed between two MTAs of one store (each MTA's log ingested with its
own host name) is one end-to-end row per recipient; detail shows every hop.

tests/fixtures/follow/mx1.log and mbox1.log are the two hosts' logs of the same minutes:
- 3F1A22C01: the Internet -> mx1 -> mbox1 (`queued as 5B2C1D0E3`): pat delivered, lee bounced there;
- 4A2B33D12: -> mx1 -> mbox1, where the alias team@ expands to ann@ and dan@;
- 8E5F66A45: picked up on mbox1 -> mx1 (`queued as 5B3C44E23`) -> the Internet;
- 6C4D55F34: mx1 -> mbox1 `queued as 7D4E3F2A5`, but mbox1's 7D4E3F2A5 has another Message-ID:
  not the same message (a coincidence the rules must not join), so two rows stay;
- 7E5F66A56: three hops, mx1 -> av1 (tests/fixtures/follow/av1.log, a filtering relay), deferred
  there by mbox1 once, then delivered to mbox1 ten minutes later.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from msgtrace import api
from msgtrace.cli import cli
from msgtrace.ingest.schema import MESSAGE_SCHEMA, conform
from msgtrace.query.follow import HOP_WINDOW, links
from tests.conftest import FIXTURES

LOGS = FIXTURES / "follow"
EXCHANGE = FIXTURES / "exchange"
WINDOW = ["--start-date", "2026-06-13", "--end-date", "2026-06-14", "--now", "2026-06-14T00:00:00Z", "--timezone", "UTC"]  # fmt: skip
API_WINDOW: dict[str, Any] = {"start_date": "2026-06-13", "end_date": "2026-06-14", "now": "2026-06-14T00:00:00Z"}
HOSTS = ("mx1", "av1", "mbox1")
COLUMNS = ["Received", "SenderAddress", "RecipientAddress", "Status", "ToIP", "FromIP", "Size"]

# (Received, sender, recipient, status, ToIP, FromIP, Size): Received, sender, FromIP and Size of
# the host the message entered by, status and ToIP of its last hop in the store
FOLLOWED = [
    ("2026-06-13T10:30:00Z", "eve@fabrikam.com", "pat@contoso.com", "Delivered", "", "203.0.113.7", 5000),
    ("2026-06-13T10:20:01Z", "x@contoso.com", "pat@contoso.com", "Delivered", "", "10.0.0.1", 650),
    ("2026-06-13T10:20:00Z", "carol@fabrikam.com", "pat@contoso.com", "Delivered", "10.0.0.2", "203.0.113.7", 700),
    ("2026-06-13T10:09:59Z", "ann@contoso.com", "alice@fabrikam.com", "Delivered", "203.0.113.9", "", 850),
    ("2026-06-13T10:05:00Z", "bob@fabrikam.com", "ann@contoso.com", "Delivered", "", "203.0.113.7", 2222),
    ("2026-06-13T10:05:00Z", "bob@fabrikam.com", "dan@contoso.com", "Delivered", "", "203.0.113.7", 2222),
    ("2026-06-13T10:05:00Z", "bob@fabrikam.com", "team@contoso.com", "Expanded", "", "203.0.113.7", 2222),
    ("2026-06-13T10:00:01Z", "alice@fabrikam.com", "lee@contoso.com", "Failed", "", "203.0.113.7", 1234),
    ("2026-06-13T10:00:01Z", "alice@fabrikam.com", "pat@contoso.com", "Delivered", "", "203.0.113.7", 1234),
]


def ingest(store: Path, log: Path, *extra: str) -> None:
    res = CliRunner().invoke(
        cli, ["ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", *extra, str(log)]
    )
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("follow") / "store"
    for host in HOSTS:  # one MTA's log after the other, as each writer would
        ingest(root, LOGS / f"{host}.log")
    return root


def run(store: Path, *args: str) -> tuple[list[dict[str, Any]], str]:
    res = CliRunner().invoke(cli, ["trace", "--store", str(store), *WINDOW, "--output", "jsonl", *args])
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()], res.stderr


def contract(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(r[c] for c in COLUMNS) for r in rows]


def test_trace_follow_gives_each_recipients_end_to_end_row(store: Path) -> None:
    plain, _ = run(store)
    assert len(plain) == 15  # every host's own rows
    followed, _ = run(store, "--follow")
    assert contract(followed) == FOLLOWED
    # each row keeps the MessageTraceId of the host the message entered by
    entry = {(r["Received"], r["FromIP"], r["SenderAddress"]): r["MessageTraceId"] for r in plain}
    assert all(r["MessageTraceId"] == entry[(r["Received"], r["FromIP"], r["SenderAddress"])] for r in followed)


def test_the_order_of_ingest_does_not_matter(tmp_path: Path) -> None:
    for host in reversed(HOSTS):
        ingest(tmp_path / "store", LOGS / f"{host}.log")
    assert contract(run(tmp_path / "store", "--follow")[0]) == FOLLOWED


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--status", "Failed"], [FOLLOWED[7]]),  # the last hop's status: mx1 alone says Delivered
        (["--to-ip", "203.0.113.9"], [FOLLOWED[3]]),  # the final ToIP, not mbox1's 10.0.0.1
        (["--recipient-address", "dan@contoso.com"], [FOLLOWED[5]]),  # a recipient only mbox1 names
        (["--from-ip", "203.0.113.7", "--sender-address", "alice@*"], FOLLOWED[7:]),  # the entry's
        # 10:10:00 is mx1's Received of a message that entered on mbox1 at 10:09:59: not in this window
        (["--start-date", "2026-06-13T10:09:59.5Z", "--end-date", "2026-06-13T10:15:00Z"], []),
    ],
)
def test_filters_apply_to_the_entry_or_the_last_hop(store: Path, args: list[str], expected: list[tuple]) -> None:
    got, _ = run(store, "--follow", *args)
    assert contract(got) == expected


def test_without_follow_the_late_window_has_mx1s_row(store: Path) -> None:
    got, _ = run(store, "--start-date", "2026-06-13T10:09:59.5Z", "--end-date", "2026-06-13T10:15:00Z")
    assert [(r["Received"], r["ToIP"]) for r in got] == [("2026-06-13T10:10:00Z", "203.0.113.9")]


def test_api_summary_and_paging(store: Path) -> None:
    rows = api.message_trace(store, **API_WINDOW, follow=True)
    assert rows.select(COLUMNS[2:4]).rows() == [(r[2], r[3]) for r in FOLLOWED]
    counts = api.status_counts(store, **API_WINDOW, follow=True)
    assert counts.rows() == [("Delivered", 7), ("Failed", 1), ("Expanded", 1)]
    res = CliRunner().invoke(cli, ["summary", "--store", str(store), *WINDOW, "--follow", "--output", "jsonl"])
    assert [json.loads(line) for line in res.stdout.splitlines()] == [
        {"Status": "Delivered", "Count": 7}, {"Status": "Failed", "Count": 1}, {"Status": "Expanded", "Count": 1},
    ]  # fmt: skip
    first, hint = run(store, "--follow", "--result-size", "3")
    assert contract(first) == FOLLOWED[:3] and "--follow" in hint
    nxt = hint.split("More results: ", 1)[1].split()[1:]  # the command after `msgtrace`
    res = CliRunner().invoke(cli, [*nxt, "--output", "jsonl"])
    assert contract([json.loads(line) for line in res.stdout.splitlines()]) == FOLLOWED[3:6]


def detail(store: Path, trace_id: str, rcpt: str) -> list[tuple[str, str, str]]:
    args = ["detail", "--store", str(store), *WINDOW, "--message-trace-id", trace_id, "--recipient-address", rcpt]
    res = CliRunner().invoke(cli, [*args, "--output", "jsonl"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    return [(json.loads(r["Data"])["host"], r["Event"], r["Detail"]) for r in rows]


def test_detail_shows_every_hop(store: Path) -> None:
    followed, _ = run(store, "--follow")
    lee = next(r for r in followed if r["RecipientAddress"] == "lee@contoso.com")
    assert detail(store, lee["MessageTraceId"], "lee@contoso.com") == [
        ("mx1", "Receive", "Connection from mail.fabrikam.com[203.0.113.7]"),
        ("mx1", "Receive", "Message-ID <plan.1@fabrikam.com>"),
        ("mx1", "Receive", "Queued from <alice@fabrikam.com>, 1234 bytes"),
        ("mbox1", "Receive", "Connection from mx1.contoso.com[10.0.0.1]"),
        ("mbox1", "Receive", "Message-ID <plan.1@fabrikam.com>"),
        ("mx1", "Send", "lee@contoso.com via mbox1.contoso.com: 250 2.0.0 Ok: queued as 5B2C1D0E3"),
        ("mx1", "Complete", "Removed from the queue"),
        ("mbox1", "Receive", "Queued from <alice@fabrikam.com>, 1490 bytes"),
        (
            "mbox1",
            "Fail",
            "lee@contoso.com via local: cannot update mailbox /var/mail/lee for user lee. error writing message: File too large",
        ),
        ("mbox1", "Complete", "Removed from the queue"),
    ]
    # a recipient that only the next hop names (the alias's member), by the entry's MessageTraceId
    dan = next(r for r in followed if r["RecipientAddress"] == "dan@contoso.com")
    events = detail(store, dan["MessageTraceId"], "dan@contoso.com")
    assert [e[:2] for e in events if e[1] in ("Send", "Deliver")] == [("mx1", "Send"), ("mbox1", "Deliver")]
    assert all("ann@" not in e[2] for e in events)


def test_a_later_hosts_message_trace_id_follows_its_message_from_where_it_entered(store: Path) -> None:
    # the id mbox1's admin sees (its own row, queue id 5B2C1D0E3) used to give nothing with --follow:
    # that row is a later hop, not an entry
    mine = run(store, "--from-ip", "10.0.0.1", "--recipient-address", "lee@contoso.com")[0]
    (hop,) = [r for r in mine if r["SenderAddress"] == "alice@fabrikam.com"]
    followed, _ = run(store, "--follow", "--message-trace-id", hop["MessageTraceId"])
    assert contract(followed) == FOLLOWED[7:]  # both recipients, end to end, as mx1 received it
    (entry,) = {r["MessageTraceId"] for r in run(store, "--follow", "--sender-address", "alice@fabrikam.com")[0]}
    assert {r["MessageTraceId"] for r in followed} == {entry} != {hop["MessageTraceId"]}
    # three hops: av1's and mbox1's ids of eve's message both lead to its one end-to-end row
    eve = run(store, "--sender-address", "eve@fabrikam.com")[0]
    assert len({r["MessageTraceId"] for r in eve}) == 3
    for r in eve:
        assert contract(run(store, "--follow", "--message-trace-id", r["MessageTraceId"])[0]) == [FOLLOWED[0]]


def test_three_hops_and_a_deferral_on_the_way(store: Path) -> None:
    followed, _ = run(store, "--follow", "--sender-address", "eve@fabrikam.com")
    assert contract(followed) == [FOLLOWED[0]]
    events = detail(store, followed[0]["MessageTraceId"], "pat@contoso.com")
    assert [e[:2] for e in events if e[1] in ("Send", "Defer", "Deliver")] == [
        ("mx1", "Send"), ("av1", "Defer"), ("av1", "Send"), ("mbox1", "Deliver"),
    ]  # fmt: skip


def test_a_message_deferred_on_a_later_hop_is_pending_end_to_end(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest(store, LOGS / "mx1.log")
    early = tmp_path / "av1.log"  # av1's log up to the deferral
    early.write_text("".join((LOGS / "av1.log").read_text().splitlines(keepends=True)[:4]))
    ingest(store, early)
    (row,) = run(store, "--follow", "--sender-address", "eve@fabrikam.com")[0]
    assert (row["Status"], row["FromIP"], row["Received"]) == ("Pending", "203.0.113.7", "2026-06-13T10:30:00Z")
    (mx1,) = run(store, "--sender-address", "eve@fabrikam.com", "--from-ip", "203.0.113.7")[0]
    assert mx1["Status"] == "Delivered"  # what mx1 alone says


def test_exchange_servers_join_by_network_message_id(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for n in ("01", "02"):  # each server's log under its own name, as two writers would
        ingest(store, EXCHANGE / f"ex2016_cross_ex{n}.log", "--host", f"EX{n}")
    plain, _ = run(store)
    assert [(r["FromIP"], r["ToIP"]) for r in plain] == [("10.0.0.5", ""), ("203.0.113.7", "10.0.0.6")]
    followed, _ = run(store, "--follow")
    assert contract(followed) == [
        ("2026-06-13T12:00:00Z", "alice@fabrikam.com", "pat@contoso.com", "Delivered", "", "203.0.113.7", 8000)
    ]
    events = detail(store, followed[0]["MessageTraceId"], "pat@contoso.com")
    # by the servers' clocks EX01 logged its SEND after EX02's DELIVER
    assert [e[:2] for e in events if e[1] in ("Send", "Deliver")] == [("EX02", "Deliver"), ("EX01", "Send")]


def _row(**kw: Any) -> dict[str, Any]:
    import datetime as dt

    t = dt.datetime(2026, 6, 13, 10, tzinfo=dt.UTC)
    base = {
        "host": "a", "format": "postfix", "message_trace_id": "m1", "recipient_lower": "r@x", "received": t,
        "last_event": t, "status": "Delivered", "to_ip": "10.0.0.2", "detail": "250 2.0.0 Ok: queued as Q1",
        "queue_id": "A1", "message_id": "<id@x>", "from_ip": "203.0.113.7", "orig_recipient": None,
        "sender_lower": "s@y",
    }  # fmt: skip
    return {**base, **kw}


@pytest.mark.parametrize(
    ("then", "linked"),
    [
        ({}, True),
        ({"host": "a"}, False),  # the same host: its own hand-offs are correlated at ingest
        ({"queue_id": "Q2"}, False),
        ({"from_ip": "127.0.0.1"}, False),  # not over the network
        ({"from_ip": ""}, False),
        ({"message_id": "<other@x>"}, False),
        ({"message_id": ""}, True),  # one host logged no Message-ID: the sender decides
        ({"message_id": "", "sender_lower": "other@x"}, False),
        ({"message_id": "", "sender_lower": None}, True),  # the next host's log begins after its from=
        ({"sender_lower": "other@x"}, True),  # the same Message-ID: a sender rewritten on the way
        ({"recipient_lower": "s@x"}, False),
        ({"recipient_lower": "s@x", "orig_recipient": "R@X"}, True),  # rewritten on the next host
        ({"delta": HOP_WINDOW}, True),
        ({"delta": HOP_WINDOW + HOP_WINDOW / 60}, False),
    ],
)
def test_the_rules_of_a_hop(then: dict[str, Any], linked: bool) -> None:
    delta = then.pop("delta", None)
    first = _row()
    nxt = _row(host="b", message_trace_id="m2", queue_id="Q1", from_ip="10.0.0.1", detail="delivered", to_ip="")
    nxt.update(then)
    if delta is not None:
        nxt["received"] = first["last_event"] + delta
    found = links(conform(pl.DataFrame([first]), MESSAGE_SCHEMA), conform(pl.DataFrame([nxt]), MESSAGE_SCHEMA))
    assert found.height == int(linked)


def test_the_web_api_search_page_and_detail_page(store: Path) -> None:
    import html
    import warnings

    from msgtrace.web.app import create_app
    from msgtrace.web.params import Defaults

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    params = {"start_date": "2026-06-13", "end_date": "2026-06-14", "page_size": 100}
    with TestClient(create_app(store, defaults=Defaults(now="2026-06-14T00:00:00Z", timezone="UTC"))) as client:
        rows = client.get("/api/v1/trace", params={**params, "follow": "true"}).json()["rows"]
        assert contract(rows) == FOLLOWED
        assert len(client.get("/api/v1/trace", params={**params, "follow": "false"}).json()["rows"]) == 15
        bad = client.get("/api/v1/trace", params={**params, "follow": "maybe"})
        assert bad.status_code == 400 and "'maybe' is not a valid boolean" in bad.text
        page = client.get("/trace", params={**params, "follow": "on"}).text
        assert 'name="follow" value="true" checked' in page and page.count("<tr") - 1 == len(FOLLOWED)
        lee = next(r for r in rows if r["RecipientAddress"] == "lee@contoso.com")
        detail = html.unescape(client.get(f"/message/{lee['MessageTraceId']}").text)
        # the timeline goes on to mbox1, where lee's delivery failed
        assert "Connection from mx1.contoso.com[10.0.0.1]" in detail and "File too large" in detail
