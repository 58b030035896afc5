"""`msgtrace web`'s HTML pages through Starlette's TestClient (no JavaScript): search with every
form field, paging, columns, time zones, CSV export, detail, find related, dashboard; log text
escaped everywhere."""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msgtrace.web.app import create_app
from msgtrace.web.params import Defaults
from tests.helpers_web import NOW, WINDOW, build_store
from tests.test_web_api import cli_options, cli_run

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("web-pages") / "store")


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[TestClient]:
    with TestClient(create_app(store, defaults=Defaults(now=NOW, timezone="UTC"))) as c:
        yield c


def cells(page: str, column: str) -> list[str]:
    """The text of one column's cells in the results table."""
    found = re.findall(rf'<td class="c-{column}">(.*?)</td>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in found]


def links(page: str, cls: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(rf'<a class="{cls}" href="([^"]+)"', page)]


def api_rows(client: TestClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    return client.get("/api/v1/trace", params={**params, "page_size": 5000}).json()["rows"]


def test_search_without_input_shows_the_48_hour_default_newest_first(client: TestClient) -> None:
    page = client.get("/").text
    assert "received from 2026-06-12 12:00:00 +0000 to 2026-06-14 12:00:00 +0000 (UTC)" in page
    received = cells(page, "Received")
    assert received and received == sorted(received, reverse=True)


@pytest.mark.parametrize(
    "params",
    [
        {**WINDOW, "sender_address": "*@example.com"},
        {**WINDOW, "recipient_address": "bob@example.org,nina@example.com"},
        {**WINDOW, "status": ["Failed", "Pending"]},
        {**WINDOW, "message_id": "<f7a2b9c4-1e55-4c6a-8d3b-9e0a7c2f5d68@example.org>"},
        {**WINDOW, "from_ip": "198.51.100.20"},
        {**WINDOW, "to_ip": "192.0.2.25"},
        {**WINDOW, "subject": "Limited", "subject_filter_type": "StartsWith"},
        {**WINDOW, "direction": "Inbound"},
        {**WINDOW, "direction": ["Outbound", "Local"]},
        {"start_date": "06/13/2026 10:00 AM", "end_date": "06/13/2026 6:00 PM", "timezone": "Europe/Paris"},
        {"start_date": "2026-06-01", "end_date": "2026-06-14", "max_age_days": "0"},
    ],
    ids=lambda p: ",".join(p),
)
def test_search_form_finds_what_the_api_finds(client: TestClient, params: dict[str, Any]) -> None:
    page = client.get("/trace", params={**params, "columns": ["MessageTraceId", "RecipientAddress"]})
    assert page.status_code == 200, page.text
    expected = api_rows(client, params)
    assert expected
    assert cells(page.text, "MessageTraceId") == [r["MessageTraceId"] for r in expected]
    assert cells(page.text, "RecipientAddress") == [r["RecipientAddress"] for r in expected]


def test_search_by_message_trace_id(client: TestClient) -> None:
    row = api_rows(client, {**WINDOW, "status": "Failed"})[0]
    page = client.get(
        "/trace", params={**WINDOW, "message_trace_id": row["MessageTraceId"], "columns": "MessageTraceId"}
    )
    assert set(cells(page.text, "MessageTraceId")) == {row["MessageTraceId"]}


def test_the_form_shows_the_values_searched(client: TestClient) -> None:
    page = client.get(
        "/trace",
        params={
            **WINDOW,
            "status": ["Failed", "Pending"],
            "sender_address": "a@b.c",
            "timezone": "Asia/Tokyo",
            "direction": "Outbound",
        },
    ).text
    assert "<option selected>Failed</option>" in page and "<option selected>Pending</option>" in page
    assert "<option selected>Outbound</option>" in page and "<option>Inbound</option>" in page
    assert "<option>Delivered</option>" in page
    assert 'name="sender_address" value="a@b.c"' in page
    assert "<option selected>Asia/Tokyo</option>" in page


def test_times_are_shown_in_the_chosen_zone(client: TestClient) -> None:
    params = {**WINDOW, "sender_address": "billing@example.net"}
    utc_page = client.get("/trace", params=params).text
    tokyo = client.get("/trace", params={**params, "timezone": "Asia/Tokyo"}).text
    assert cells(utc_page, "Received") == ["2026-06-13 08:00:12 +0000"]
    # the dates typed are read in Tokyo too: the window starts 9 hours earlier
    assert cells(tokyo, "Received") == ["2026-06-13 17:00:12 +0900"]
    assert "received from 2026-06-12 00:00:00 +0900" in tokyo


def test_age_limit_and_bad_input_show_the_cli_message(client: TestClient, store: Path) -> None:
    page = client.get("/trace", params={"start_date": "2026-05-01"})
    assert page.status_code == 400
    cli = cli_run("trace", "--store", str(store), *cli_options({"start_date": "2026-05-01"}))
    assert html.escape(cli.stderr.strip(), quote=False) in page.text.replace("&#39;", "'")
    bad = client.get("/trace", params={"status": "Lost"})
    assert bad.status_code == 400 and "Error: invalid --status &#39;Lost&#39;" in bad.text
    assert client.get("/trace", params={"page_size": 5001}).status_code == 400
    assert client.get("/trace", params={"columns": "Password"}).status_code == 400


def test_paging_newest_first_covers_every_row_once(client: TestClient) -> None:
    everything = [r["MessageTraceId"] + r["RecipientAddress"] for r in api_rows(client, WINDOW)]
    seen: list[str] = []
    url: str | None = (
        "/trace?"
        + "&".join(f"{k}={v}" for k, v in WINDOW.items())
        + "&page_size=7&columns=MessageTraceId&columns=RecipientAddress"
    )
    while url:
        page = client.get(url).text
        seen += [a + b for a, b in zip(cells(page, "MessageTraceId"), cells(page, "RecipientAddress"), strict=True)]
        nxt = re.search(r'<a rel="next" href="([^"]+)"', page)
        url = html.unescape(nxt.group(1)) if nxt else None
    assert seen == everything and len(seen) > 7


def test_columns_can_be_chosen(client: TestClient) -> None:
    page = client.get("/trace", params={**WINDOW, "columns": ["FromIP", "Size"]}).text
    assert "<th>FromIP</th><th>Size</th><th></th>" in page.replace("\n", "")
    assert "<th>Subject</th>" not in page


def test_csv_export_is_the_whole_result_as_the_cli_writes_it(client: TestClient, store: Path) -> None:
    page = client.get("/trace", params={**WINDOW, "page_size": 5}).text
    export = links(page, "export")[0]
    assert "page" not in export
    answer = client.get(export)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith("attachment;")
    cli = cli_run("trace", "--store", str(store), *cli_options(WINDOW), "--output", "csv", "--page-size", "5000")
    assert answer.text == cli.stdout
    assert answer.text.count("\n") == len(api_rows(client, WINDOW)) + 1


def test_a_row_opens_its_detail_with_every_recipient_and_timeline(client: TestClient) -> None:
    page = client.get("/trace", params={**WINDOW, "recipient_address": "oscar@example.net"}).text
    detail = client.get(links(page, "detail")[0])
    assert detail.status_code == 200
    text = html.unescape(detail.text)
    # the message went to nina (delivered) and oscar (bounced): both, each with its timeline
    assert "Timeline for nina@example.com" in text and "Timeline for oscar@example.net" in text
    assert "552 5.2.2 <oscar@example.net>: Mailbox full (in reply to RCPT TO command)" in text
    assert "<b>dsn</b>=5.2.2" in text and "<b>relay</b>=mx.example.net" in text
    assert "Raw fields" in text and "queue_ids" in text


def test_detail_by_bare_url_finds_the_message_from_its_id(client: TestClient) -> None:
    row = api_rows(client, {**WINDOW, "status": "Failed"})[0]
    detail = client.get(f"/message/{row['MessageTraceId']}")
    assert detail.status_code == 200
    assert row["RecipientAddress"] in html.unescape(detail.text)
    assert client.get("/message/not-a-guid").status_code == 400
    old = client.get(f"/message/{row['MessageTraceId']}", params={"now": "2026-07-14T00:00:00Z"})
    assert old.status_code == 400 and "older than the 10-day limit" in old.text
    assert "max_age_days=0" in old.text


def test_detail_links_the_other_hops_of_the_message(client: TestClient) -> None:
    # bob's message left mx1 for nina and was logged again by the receiving server (mx2.log)
    rows = api_rows(client, {**WINDOW, "message_id": "f7a2b9c4-1e55-4c6a-8d3b-9e0a7c2f5d68@example.org"})
    by_org = {}
    for r in rows:
        by_org.setdefault(r["Organization"], set()).add(r["MessageTraceId"])
    assert len(by_org) == 2, by_org
    (first,) = by_org["example.org"]
    (hop,) = by_org["example.com"]
    detail = client.get(f"/message/{first}").text
    assert f"/message/{hop}" in detail
    back = client.get(f"/message/{hop}").text
    assert f"/message/{first}" in back


def test_find_related_shows_the_rows_sharing_the_message_id(client: TestClient) -> None:
    page = client.get("/trace", params={**WINDOW, "recipient_address": "oscar@example.net"}).text
    related = client.get(links(page, "related")[0]).text
    assert set(cells(related, "RecipientAddress")) == {"oscar@example.net", "nina@example.com"}
    assert len(cells(related, "RecipientAddress")) == 3  # nina twice: on mx1 and on the next hop


def test_dashboard_counts_are_the_summary_of_each_range(client: TestClient) -> None:
    page = client.get("/dashboard", params={"range": "7d"})
    assert page.status_code == 200
    week = client.get(
        "/api/v1/summary", params={"start_date": "2026-06-07T12:00:00Z", "end_date": NOW, "max_age_days": 0}
    ).json()["counts"]
    table = re.search(r'<table class="counts">(.*?)</table>', page.text, re.S)
    assert table
    for c in week:
        row = re.search(rf'<td class="status s-{c["Status"]}">{c["Status"]}</td>\s*(.*?)</tr>', table.group(1), re.S)
        assert row, c
        numbers = re.findall(r'<td class="num">([\d,]+)</td>', row.group(1))
        assert numbers[1] == f"{c['Count']:,}"
    assert "<svg" in page.text and "Mail per hour, last 7 days" in page.text
    for title in (
        "Top senders",
        "Top recipients",
        "Top sender domains",
        "Top recipient domains",
        "Top deferral reasons",
        "Top bounce reasons",
    ):
        assert title in page.text
    assert "Greylisted" in page.text and "Mailbox full" in page.text
    assert "Not running" in page.text and "mail.log" in page.text
    assert client.get("/dashboard", params={"range": "1y"}).status_code == 400


def test_log_text_is_escaped_on_every_page(client: TestClient) -> None:
    rows = api_rows(client, {**WINDOW, "sender_address": "*@evil.example"})
    assert rows and rows[0]["Subject"].startswith("<script>")
    pages = [
        client.get("/trace", params={**WINDOW, "sender_address": "*@evil.example", "columns": ["Subject", "SenderAddress", "RecipientAddress", "MessageId"]}).text,
        client.get(f"/message/{rows[0]['MessageTraceId']}").text,
        client.get("/dashboard", params={"range": "7d"}).text,
        client.get("/trace", params={**WINDOW, "subject": "<script>alert(1)</script>"}).text,
        client.get("/trace", params={"start_date": "<script>alert(1)</script>"}).text,
    ]  # fmt: skip
    for text in pages:
        assert "<script>window" not in text and "<script>alert" not in text
        assert "<img src=x" not in text and "<svg/onload" not in text
        assert not re.search(r"<[^>]*\son(error|load|mouseover)=", text)
        assert not re.search(r'"onerror="|"onmouseover=', text)  # no attribute broken out of
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in pages[0]
    assert "&lt;script&gt;window.__xss=6&lt;/script&gt;" in pages[1]


def test_every_row_of_the_demo_window_opens_a_detail_with_its_events(client: TestClient) -> None:
    """The demo's `make demo` traces, from the browser: each row's detail link works and explains it."""
    page = client.get("/trace", params={**WINDOW, "page_size": 500}).text
    targets = list(dict.fromkeys(links(page, "detail")))  # the first cell and the "detail" link of each row
    assert len(targets) == len(api_rows(client, WINDOW)) > 20
    for target in targets:
        detail = client.get(target)
        assert detail.status_code == 200, target
        assert "No events stored" not in detail.text, target
        assert detail.text.count("<tr>") >= 2, target
