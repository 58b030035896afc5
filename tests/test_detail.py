"""`msgtrace detail` (Get-MessageTraceDetail): the events behind one recipient's status."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from msgtrace.query.cli import cli

LOG = """\
Jun 13 10:00:00 mx1 postfix/smtpd[1]: 3AA11F0: client=mail.example.com[192.0.2.10]
Jun 13 10:00:00 mx1 postfix/cleanup[2]: 3AA11F0: message-id=<m1@example.com>
Jun 13 10:00:00 mx1 postfix/qmgr[3]: 3AA11F0: from=<alice@example.com>, size=500, nrcpt=2 (queue active)
Jun 13 10:00:01 mx1 postfix/smtp[4]: 3AA11F0: to=<bob@example.net>, relay=mx.example.net[203.0.113.7]:25, delay=1, delays=0/0/0/1, dsn=4.4.1, status=deferred (connect timed out)
Jun 13 10:00:01 mx1 postfix/smtp[4]: 3AA11F0: to=<carol@example.net>, relay=mx.example.net[203.0.113.7]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)
Jun 13 10:30:00 mx1 postfix/smtp[4]: 3AA11F0: to=<bob@example.net>, relay=mx.example.net[203.0.113.7]:25, delay=1800, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 accepted)
Jun 13 10:30:00 mx1 postfix/qmgr[3]: 3AA11F0: removed
Jun 13 11:00:00 mx1 postfix/smtpd[1]: 3AA11F0: client=other.example.com[192.0.2.11]
Jun 13 11:00:00 mx1 postfix/qmgr[3]: 3AA11F0: from=<zed@example.com>, size=9, nrcpt=1 (queue active)
"""
COMMON = ["--now", "2026-06-14T00:00:00Z", "--timezone", "UTC"]


def test_detail_lists_one_recipients_events_oldest_first(tmp_path: Path) -> None:
    log, store = tmp_path / "mail.log", tmp_path / "store"
    log.write_text(LOG)
    r = CliRunner()
    assert (
        r.invoke(cli, ["ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", str(log)]).exit_code == 0
    )
    res = r.invoke(
        cli, ["trace", "--store", str(store), *COMMON, "--sender-address", "alice@example.com", "--output", "json"]
    )
    trace_id = json.loads(res.stdout)[0]["MessageTraceId"]
    res = r.invoke(cli, ["detail", "--store", str(store), *COMMON, "--message-trace-id", trace_id,
                         "--recipient-address", "BOB@example.net", "--output", "json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    # carol's delivery and the later message that reused the queue id are not shown
    assert [(x["Date"], x["Event"], x["Action"]) for x in rows] == [
        ("2026-06-13T10:00:00Z", "Receive", "client"),
        ("2026-06-13T10:00:00Z", "Receive", "msgid"),
        ("2026-06-13T10:00:00Z", "Receive", "receive"),
        ("2026-06-13T10:00:01Z", "Defer", "Pending"),
        ("2026-06-13T10:30:00Z", "Send", "Delivered"),
        ("2026-06-13T10:30:00Z", "Complete", "removed"),
    ]
    assert rows[3]["Detail"] == "bob@example.net via mx.example.net: connect timed out"
    assert json.loads(rows[4]["Data"])["dsn"] == "2.0.0"
    assert {x["MessageTraceId"] for x in rows} == {trace_id}


def test_detail_errors(tmp_path: Path) -> None:
    (tmp_path / "messages").mkdir()
    r = CliRunner()
    res = r.invoke(
        cli, ["detail", "--store", str(tmp_path), *COMMON, "--message-trace-id", "nope", "--recipient-address", "a@b"]
    )
    assert res.exit_code == 1
    assert res.output.startswith("Error: invalid --message-trace-id 'nope'")
    res = r.invoke(
        cli, ["detail", "--store", str(tmp_path), *COMMON, "--message-trace-id", "0190a5b2-3c4d-7e5f-8a6b-1c2d3e4f5a6b"]
    )
    # the recipient is optional (every recipient's events); the id is not
    assert res.exit_code == 0 and res.stderr.startswith("No events found for that message.\n")
    res = r.invoke(cli, ["detail", "--store", str(tmp_path), *COMMON, "--recipient-address", "a@b"])
    assert res.exit_code == 2 and "--message-trace-id" in res.output


def test_detail_shows_the_amavis_verdict_subject_or_message_id(tmp_path: Path) -> None:
    # issue 10 item 8: the amavis verdict line gives the Subject; one with only a Message-ID says that, not "Subject: "
    log, store = tmp_path / "mail.log", tmp_path / "store"
    log.write_text(
        "Jun 13 10:00:00 mx1 postfix/smtpd[1]: 3AA11F0: client=mail.example.com[192.0.2.10]\n"
        "Jun 13 10:00:00 mx1 postfix/qmgr[3]: 3AA11F0: from=<alice@example.com>, size=500, nrcpt=1 (queue active)\n"
        "Jun 13 10:00:01 mx1 amavis[9]: (00009-01) Passed CLEAN {RelayedInbound}, [192.0.2.10] <alice@example.com> ->"
        " <bob@example.net>, Queue-ID: 3AA11F0, Message-ID: <m1@example.com>, mail_id: x1, Hits: 0, size: 500,"
        ' Subject: "Lunch?", 80 ms\n'
        "Jun 13 10:00:01 mx1 amavis[9]: (00009-02) Passed CLEAN {RelayedInbound}, [192.0.2.10] <alice@example.com> ->"
        " <bob@example.net>, Queue-ID: 3AA11F0, Message-ID: <m1@example.com>, mail_id: x2, Hits: 0, size: 500, 80 ms\n"
        "Jun 13 10:00:02 mx1 postfix/smtp[4]: 3AA11F0: to=<bob@example.net>, relay=mx.example.net[203.0.113.7]:25,"
        " delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)\n"
    )
    r = CliRunner()
    assert (
        r.invoke(cli, ["ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", str(log)]).exit_code == 0
    )
    res = r.invoke(cli, ["trace", "--store", str(store), *COMMON, "--subject", "lunch", "--output", "json"])
    (row,) = json.loads(res.stdout)
    assert (row["Subject"], row["MessageId"]) == ("Lunch?", "<m1@example.com>")
    res = r.invoke(cli, ["detail", "--store", str(store), *COMMON, "--message-trace-id", row["MessageTraceId"],
                         "--recipient-address", "bob@example.net", "--output", "json"])  # fmt: skip
    details = [x["Detail"] for x in json.loads(res.stdout) if x["Action"] == "subject"]
    assert details == ["Subject: Lunch?", "Message-ID <m1@example.com>"]
