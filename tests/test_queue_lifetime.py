"""The queue lifetime is one setting: `--max-queue-lifetime` of ingest, watch and detail.

Before, `ingest` had no such option, the correlator split a silent queue id after a fixed 6 days
and `detail` looked a fixed 7 days past Received, whatever the watcher was told.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from msgtrace.defaults import QUEUE_LIFETIME, queue_lifetime
from msgtrace.ingest.pipeline import IngestOptions
from msgtrace.query.cli import cli

START = dt.datetime(2026, 6, 1, 10, tzinfo=dt.UTC)
PRE = "mx1.example.org postfix"
NOW = "2026-06-30T00:00:00Z"


def stamp(t: dt.datetime) -> str:
    return t.strftime("%b %d %H:%M:%S").replace(" 0", "  ", 1)


def log_of(deferrals_every: dt.timedelta, delivered_after: dt.timedelta) -> str:
    """One message deferred again and again, delivered `delivered_after` after it was received."""
    lines = [
        f"{stamp(START)} {PRE}/smtpd[1]: 4B1C2D3E4F: client=a.example.net[192.0.2.1]",
        f"{stamp(START)} {PRE}/qmgr[2]: 4B1C2D3E4F: from=<a@example.net>, size=10, nrcpt=1 (queue active)",
    ]
    t = START + deferrals_every
    while t < START + delivered_after:
        lines.append(f"{stamp(t)} {PRE}/smtp[3]: 4B1C2D3E4F: to=<b@example.org>, relay=none, delay=1, "
                     "dsn=4.4.1, status=deferred (connection timed out)")  # fmt: skip
        t += deferrals_every
    done = START + delivered_after
    lines += [
        f"{stamp(done)} {PRE}/smtp[3]: 4B1C2D3E4F: to=<b@example.org>, relay=mx.example.org[203.0.113.7]:25, "
        "delay=9, dsn=2.0.0, status=sent (250 ok)",
        f"{stamp(done)} {PRE}/qmgr[2]: 4B1C2D3E4F: removed",
    ]
    return "\n".join(lines) + "\n"


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ingest(tmp_path: Path, log: str, *extra: str) -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "mail.log").write_text(log)
    store = tmp_path / "store"
    res = run(
        "ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", *extra, str(tmp_path / "mail.log")
    )
    assert res.exit_code == 0, res.output
    return store


def trace(store: Path) -> list[dict]:
    res = run("trace", "--store", str(store), "--now", NOW, "--timezone", "UTC", "--max-age-days", "0",
              "--start-date", "2026-05-25", "--output", "json")  # fmt: skip
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_one_definition_of_the_default() -> None:
    assert QUEUE_LIFETIME == queue_lifetime(5) == dt.timedelta(days=6)
    assert IngestOptions().queue_lifetime == QUEUE_LIFETIME


def test_ingest_max_queue_lifetime_sets_the_correlators_reuse_gap(tmp_path: Path) -> None:
    # silent for 2.5 days, then delivered: one message under the default lifetime (6 days) ...
    log = log_of(deferrals_every=dt.timedelta(days=10), delivered_after=dt.timedelta(days=2, hours=12))
    rows = trace(ingest(tmp_path / "default", log))
    assert [(r["RecipientAddress"], r["Status"]) for r in rows] == [("b@example.org", "Delivered")]
    # ... and, with a lifetime of 1 day (2 with the slack), the delivery is a later message of its
    # own: the queue id was silent for longer than any message may wait
    rows = trace(ingest(tmp_path / "short", log, "--max-queue-lifetime", "1"))
    assert sorted((r["RecipientAddress"], r["Status"]) for r in rows) == [
        ("", "GettingStatus"),
        ("b@example.org", "Delivered"),
    ]


def test_detail_looks_as_far_as_the_queue_lifetime(tmp_path: Path) -> None:
    # a message waiting 8 days, deferred every 2 days: within a 10-day queue lifetime
    log = log_of(deferrals_every=dt.timedelta(days=2), delivered_after=dt.timedelta(days=8))
    store = ingest(tmp_path, log, "--max-queue-lifetime", "10")
    (row,) = trace(store)
    assert row["Status"] == "Delivered"
    args = ["detail", "--store", str(store), "--now", NOW, "--timezone", "UTC", "--max-age-days", "0",
            "--start-date", "2026-05-25", "--message-trace-id", row["MessageTraceId"],
            "--recipient-address", "b@example.org", "--output", "json"]  # fmt: skip
    events = json.loads(run(*args, "--max-queue-lifetime", "10").stdout)
    assert [e["Event"] for e in events][-2:] == ["Send", "Complete"]  # the delivery, 8 days after Received
    assert len([e for e in events if e["Event"] == "Defer"]) == 3
    # the default (6 days) stops before the delivery: the option is what makes detail see it
    short = json.loads(run(*args).stdout)
    assert [e["Event"] for e in short] == ["Receive", "Receive", "Defer", "Defer", "Defer"]
