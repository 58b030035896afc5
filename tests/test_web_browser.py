"""End to end in a real browser: Debian's Chromium (/usr/bin/chromium) driven by Playwright against
`msgtrace web` under uvicorn on 127.0.0.1 (a free port, started and stopped here): search, page,
open a detail, export CSV, the dashboard's chart, a hostile log line shown as text with no script
run, and the search working with JavaScript off. Each page's screenshot is saved in the test's
tmp dir."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msgtrace.web.app import create_app
from msgtrace.web.params import Defaults
from tests.helpers_web import CHROMIUM, NOW, PAYLOAD_FLAG, build_store, chromium, serving
from tests.test_web_api import cli_options, cli_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK) and os.environ.get("CI") != "true",
        reason="Debian's chromium is not installed (apt-get install chromium; make test does it as root)",
    ),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("web-browser") / "store")


@pytest.fixture(scope="module")
def url(store: Path) -> Iterator[str]:
    with serving(create_app(store, defaults=Defaults(now=NOW, timezone="UTC"))) as base:
        yield base


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "profile") as context:
        yield context


def watch_for_scripts(page: Any) -> list[str]:
    """Record dialogs (alert/confirm/prompt) the page opens, dismissing them."""
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


def shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_search_page_detail_and_csv_export(browser: Any, url: str, store: Path, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(url + "/")
    page.fill("input[name=start_date]", "2026-06-12")
    page.fill("input[name=end_date]", "2026-06-14T12:00:00Z")
    page.select_option("select[name=timezone]", "UTC")
    page.select_option("select[name=page_size]", "50")
    page.click("button[type=submit]")
    # the start page already shows rows (the default window): count only once the search has loaded
    page.wait_for_url(re.compile(r"start_date=2026-06-12"))
    page.wait_for_selector("table.rows tbody tr")
    everything = page.locator("table.rows tbody tr").count()
    assert everything > 20
    shot(page, tmp_path, "search")

    # a smaller page size, then the next page: rows continue, newest first
    page.select_option("select[name=page_size]", "50")
    page.goto(url + "/trace?start_date=2026-06-12&end_date=2026-06-14T12:00:00Z&page_size=10")
    first = page.locator("td.c-Received").all_inner_texts()
    page.click("a[rel=next]")
    page.wait_for_url(re.compile(r"page=2"))
    second = page.locator("td.c-Received").all_inner_texts()
    assert len(first) == 10 and second and first[-1] >= second[0]
    assert "Page 2 of" in page.inner_text("#results")
    shot(page, tmp_path, "search-page-2")

    # a status multi-select: Failed and Pending only
    page.goto(url + "/trace?start_date=2026-06-12&end_date=2026-06-14T12:00:00Z")
    page.select_option("select[name=status]", ["Failed", "Pending"])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"status=Pending&status=Failed"))
    statuses = set(page.locator("td.c-Status").all_inner_texts())
    assert statuses == {"Failed", "Pending"}

    # open the detail of oscar's bounce
    page.fill("input[name=recipient_address]", "oscar@example.net")
    page.select_option("select[name=status]", [])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"recipient_address=oscar"))
    page.click("a.detail >> nth=0")
    page.wait_for_selector("section.timeline")
    text = page.inner_text("main")
    assert "Timeline for oscar@example.net" in text and "Timeline for nina@example.com" in text
    assert "Mailbox full" in text
    shot(page, tmp_path, "detail")

    # CSV export of the whole result: what `msgtrace trace --output csv` writes
    page.go_back()
    page.wait_for_selector("a.export")
    page.goto(url + "/trace?start_date=2026-06-12&end_date=2026-06-14T12:00:00Z&page_size=5")
    with page.expect_download() as download:
        page.click("a.export")
    saved = tmp_path / "export.csv"
    download.value.save_as(str(saved))
    expected = cli_run(
        "trace", "--store", str(store), *cli_options({"start_date": "2026-06-12", "end_date": "2026-06-14T12:00:00Z"}),
        "--output", "csv", "--page-size", "5000",
    ).stdout  # fmt: skip
    assert saved.read_text() == expected
    assert expected.count("\n") == everything + 1


def test_dashboard_draws_its_chart(browser: Any, url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(url + "/dashboard?range=7d")
    chart = page.locator("figure.chart svg")
    assert chart.count() == 1 and chart.is_visible()
    box = chart.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 150
    assert page.locator("figure.chart svg path").count() > 10  # bars, axes, legend symbols
    assert "Top bounce reasons" in page.inner_text("main")
    shot(page, tmp_path, "dashboard")


def assert_nothing_ran(page: Any, dialogs: list[str]) -> None:
    """No payload ran (its flag unset, no dialog), none became an element or an event attribute."""
    assert page.evaluate(f"typeof window.{PAYLOAD_FLAG}") == "undefined"
    assert page.evaluate("document.querySelectorAll('[onerror],[onload],[onmouseover],img,main svg').length") == 0
    assert page.evaluate("[...document.scripts].map(s => s.getAttribute('src'))") == ["/static/htmx.min.js"]
    assert dialogs == []


def test_a_hostile_log_line_renders_as_text_and_runs_nothing(browser: Any, url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    dialogs = watch_for_scripts(page)
    page.goto(
        url + "/trace?start_date=2026-06-12&end_date=2026-06-14T12:00:00Z&sender_address=*@evil.example"
        "&columns=Subject&columns=SenderAddress&columns=RecipientAddress&columns=MessageId"
    )
    assert page.inner_text("td.c-Subject") == "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
    assert page.inner_text("td.c-SenderAddress") == 'x"onerror="window.__xss=4"@evil.example'
    assert page.inner_text("td.c-RecipientAddress") == '"onmouseover=window.__xss=5"@example.org'
    assert page.inner_text("td.c-MessageId") == '<x"><svg/onload=window.__xss=3>@evil.example>'
    page.hover("td.c-RecipientAddress")
    assert_nothing_ran(page, dialogs)
    shot(page, tmp_path, "hostile-search")

    page.click("a.detail >> nth=0")
    page.wait_for_selector("section.timeline")
    replies = page.locator("td.reply").all_inner_texts()
    assert any("<script>window.__xss=6</script><img src=x onerror=window.__xss=7>" in r for r in replies)
    page.hover("section.timeline h2")
    assert_nothing_ran(page, dialogs)
    shot(page, tmp_path, "hostile-detail")


def test_search_works_without_javascript(tmp_path: Path, url: str) -> None:
    with chromium(tmp_path / "profile-nojs", javascript=False) as context:
        page = context.new_page()
        page.goto(url + "/trace")
        page.fill("input[name=start_date]", "2026-06-13")
        page.fill("input[name=end_date]", "2026-06-14")
        page.fill("input[name=sender_address]", "bob@example.org")
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"sender_address=bob"))
        assert set(page.locator("td.c-SenderAddress").all_inner_texts()) == {"bob@example.org"}
        page.click("a.detail >> nth=0")
        page.wait_for_selector("section.timeline")
        page.goto(url + "/dashboard")
        assert page.locator("figure.chart svg").count() == 1  # drawn on the server
        shot(page, tmp_path, "dashboard-nojs")
