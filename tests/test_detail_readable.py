"""`msgtrace detail` is readable where it matters (issue 10, item 13): the remote reply wrapped,
never cut; a qmgr retry is a Retry; pickup has no "? bytes"; a row without a recipient needs no
`'<>'`; an id outside the window says which dates find it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from msgtrace.query.cli import cli

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
NOW = "2026-06-14T12:00:00Z"
WINDOW = ["--start-date", "2026-06-12", "--end-date", "2026-06-15"]


def run(*args: str, now: str = NOW, columns: int = 100) -> Result:
    env = {"MSGTRACE_NOW": now, "MSGTRACE_TZ": "UTC", "MSGTRACE_STORE": None, "COLUMNS": str(columns)}
    return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("detail") / "store"
    r = run("ingest", "--store", str(root), "--timezone", "UTC", "--year", "2026", str(SAMPLE))
    assert r.exit_code == 0, r.output
    return root


def row(store: Path, **match: str) -> dict[str, str]:
    r = run("trace", "--store", str(store), *WINDOW, "--output", "jsonl")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    return next(x for x in rows if all(x[k] == v for k, v in match.items()))


def detail(store: Path, trace_id: str, *args: str, now: str = NOW, columns: int = 100) -> Result:
    return run(
        "detail", "--store", str(store), *WINDOW, "--message-trace-id", trace_id, *args, now=now, columns=columns
    )


def test_remote_reply_is_wrapped_not_cut(store: Path) -> None:
    failed = row(store, RecipientAddress="oscar@example.net")
    r = detail(store, failed["MessageTraceId"], "--recipient-address", "oscar@example.net", columns=80)
    assert r.exit_code == 0, r.output
    assert "…" not in r.stdout
    assert all(len(line) <= 80 for line in r.stdout.splitlines())
    joined = " ".join(line.strip() for line in r.stdout.splitlines())
    assert "said: 552 5.2.2 <oscar@example.net>: Mailbox full (in reply to RCPT TO command)" in joined


def test_qmgr_retry_is_a_retry_not_another_receive(store: Path) -> None:
    pending = row(store, RecipientAddress="uma@example.net")
    r = detail(store, pending["MessageTraceId"], "--recipient-address", "uma@example.net", "--output", "json")
    events = [(x["Event"], x["Action"]) for x in json.loads(r.stdout)]
    assert events.count(("Receive", "receive")) == 1
    assert events.count(("Retry", "retry")) == 2
    retry = next(x for x in json.loads(r.stdout) if x["Event"] == "Retry")
    assert retry["Detail"] == "Back in the active queue: another delivery attempt"


def test_pickup_does_not_print_unknown_bytes(store: Path) -> None:
    local = row(store, SenderAddress="root@mx1.example.org", RecipientAddress="walter@mx1.example.org")
    r = detail(store, local["MessageTraceId"], "--recipient-address", "walter@mx1.example.org")
    assert r.exit_code == 0, r.output
    assert "? bytes" not in r.stdout
    assert "Picked up from <root> (local submission)" in r.stdout
    assert "Queued from <root@mx1.example.org>, 912 bytes" in r.stdout


def test_detail_without_recipient_lists_every_recipients_events(store: Path) -> None:
    waiting = row(store, Status="GettingStatus")  # no recipient logged yet: the row's recipient is ""
    r = detail(store, waiting["MessageTraceId"], columns=160)
    assert r.exit_code == 0, r.output
    assert "Queued from <alice@example.com>, 5120 bytes" in r.stdout
    multi = row(store, RecipientAddress="staff@example.org")  # an alias expanded to several members
    got = json.loads(detail(store, multi["MessageTraceId"], "--output", "json").stdout)
    assert {"grace@example.org", "heidi@example.org"} <= {x["RecipientAddress"] for x in got}
    assert "RecipientAddress" in detail(store, multi["MessageTraceId"]).stdout.splitlines()[0]
    r = detail(store, multi["MessageTraceId"], "--recipient-address", " ")
    assert r.exit_code == 1 and r.stderr.startswith("Error: --recipient-address ' ' has no value in it")


def test_trace_id_outside_the_default_window_says_which_dates_find_it(store: Path) -> None:
    tid = row(store, RecipientAddress="oscar@example.net")["MessageTraceId"]
    r = run("trace", "--store", str(store), "--message-trace-id", tid, now="2026-06-20T12:00:00Z")
    assert r.exit_code == 0
    assert r.stderr == (
        "No messages found.\n"
        f"MessageTraceId {tid} was received on 2026-06-13 (UTC), outside the window 2026-06-18T12:00:00Z to "
        "2026-06-20T12:00:00Z: add --start-date 2026-06-13T00:00:00Z --end-date 2026-06-14T00:00:00Z to find it.\n"
    )
    r = run("detail", "--store", str(store), "--message-trace-id", tid, now="2026-07-20T12:00:00Z")
    assert r.stderr.endswith("--end-date 2026-06-14T00:00:00Z --max-age-days 0 to find it.\n")
    found = run("trace", "--store", str(store), "--message-trace-id", tid, "--start-date", "2026-06-13T00:00:00Z",
                "--end-date", "2026-06-14T00:00:00Z", "--max-age-days", "0", "--output", "jsonl",
                now="2026-07-20T12:00:00Z")  # fmt: skip
    assert json.loads(found.stdout.splitlines()[0])["MessageTraceId"] == tid
    # an id inside the window that is not stored gets no hint
    r = run("trace", "--store", str(store), "--message-trace-id", tid[:-4] + "0000", *WINDOW)
    assert r.stderr == "No messages found.\n"
