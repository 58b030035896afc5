"""The dashboard's figures (msgtrace.web.dashboard) equal a brute-force count over the trace rows
of each range: with the day counts `msgtrace compact` stores, without them, with some out of
date, at a `now` that cuts days anywhere, and with hours in zones a whole hour or not off UTC."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from msgtrace.api import message_trace_lazy
from msgtrace.cli import cli
from msgtrace.generate import generate
from msgtrace.query.report import reasons_rows
from msgtrace.store import Store
from msgtrace.web import dashboard as board
from tests.helpers_store import msg, utc, write_store

START, DAYS = "2026-06-01", 9


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dashboard")
    log = folder / "mail.log"
    generate("postfix", log, lines=6000, start=START, days=DAYS, tz="UTC", seed=11)
    store = folder / "store"
    res = CliRunner().invoke(cli, ["ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", str(log)])
    assert res.exit_code == 0, res.output
    st = Store(store)
    for day in st.messages.days():  # no stored counts: every figure from the rows
        st.report.remove(day)
    assert not list(st.report.dir.glob("*"))
    return store


@pytest.fixture(scope="module")
def counted(plain: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("counted") / "store"
    shutil.copytree(plain, copy)
    res = CliRunner().invoke(cli, ["compact", "--store", str(copy)])
    assert res.exit_code == 0 and "counted 0 days" not in res.output, res.output
    return copy


def brute(store: Path, now: dt.datetime, hours: int, zone: str) -> dict[str, Any]:
    """The dashboard's figures of one range, counted from the trace's rows in plain Python."""
    lf = message_trace_lazy(store, start_date=now - dt.timedelta(hours=hours), end_date=now, now=now, max_age_days=0)
    rows = lf.collect().to_dicts()
    statuses = Counter(r["status"] if r["status"] is not None else "(no status)" for r in rows)
    hourly = Counter(
        (
            r["received"].astimezone(dt.UTC).astimezone(_zone(zone)).replace(minute=0, second=0, microsecond=0),
            r["status"],
        )
        for r in rows
    )
    reasons = reasons_rows(lf).to_dicts()  # the report's normalised reason of each row with one

    def top(values: list[str]) -> list[tuple[str, int]]:
        return sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0]))[: board.TOP]

    senders = [r["sender_lower"] or "<>" for r in rows]
    recipients = [r["recipient_lower"] or "" for r in rows]
    return {
        "counts": dict(statuses),
        "hourly": dict(hourly),
        "tops": {
            "Top senders": top(senders),
            "Top recipients": top(recipients),
            "Top sender domains": top([a.rsplit("@", 1)[1] for a in senders if "@" in a]),
            "Top recipient domains": top([a.rsplit("@", 1)[1] for a in recipients if "@" in a]),
            "Top deferral reasons": top([r["Reason"] for r in reasons if r["status"] == "Pending"]),
            "Top bounce reasons": top([r["Reason"] for r in reasons if r["status"] == "Failed"]),
        },
    }


def _zone(name: str) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def check(store: Path, now: dt.datetime, range_name: str, zone: str, day_counts: board.DayCounts) -> None:
    got = board.build(store, now, range_name, zone=zone, day_counts=day_counts)
    for name, hours in board.RANGES.items():
        want = brute(store, now, hours, zone)
        assert got.counts[name] == want["counts"], name
        if name == range_name:
            hourly = {(h, s): n for h, s, n in got.hourly.iter_rows()}
            assert hourly == want["hourly"]
            assert got.tops == want["tops"]
    assert sum(got.counts["30d"].values()) > sum(got.counts["24h"].values()) > 0


CASES = [  # the log runs from 2026-06-01 00:03 to 06-08 15:17 UTC
    (utc(2026, 6, 8, 14, 37, 11), "24h", "UTC"),
    (utc(2026, 6, 8, 14, 37, 11), "7d", "Asia/Kathmandu"),  # +05:45: hours cut across UTC hours
    (utc(2026, 6, 8, 0, 0, 0), "7d", "UTC"),  # at midnight: nothing but whole days
    (utc(2026, 6, 7, 23, 59, 59), "30d", "America/New_York"),
    (utc(2026, 6, 5, 5, 0, 0), "30d", "Asia/Kolkata"),  # +05:30
]


@pytest.mark.parametrize("now,range_name,zone", CASES, ids=lambda c: str(c))
def test_figures_equal_a_count_of_the_rows(
    plain: Path, counted: Path, now: dt.datetime, range_name: str, zone: str
) -> None:
    for store in (plain, counted):
        day_counts = board.DayCounts()
        check(store, now, range_name, zone, day_counts)
        check(store, now, range_name, zone, day_counts)  # again, from the days kept in memory


def test_stored_counts_are_used_and_never_written(plain: Path, counted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msgtrace.query import report_store

    read: list[int] = []
    real = report_store.from_rows

    def counting(*args: Any, **kwargs: Any) -> Any:
        read.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(report_store, "from_rows", counting)
    now = utc(2026, 6, 9)  # every range's days are whole
    board.build(counted, now, "30d", day_counts=board.DayCounts())
    assert not read  # every day from its stored counts
    board.build(plain, now, "30d", day_counts=board.DayCounts())
    assert read  # counted from the rows ...
    assert not list(Store(plain).report.dir.glob("*"))  # ... and not stored: the web is read-only


def test_counts_out_of_date_are_not_used(counted: Path, tmp_path: Path) -> None:
    """A flush after the compaction adds a file to a counted day: that day counts from its rows
    again, in a process that had kept the day's earlier counts too."""
    copy = tmp_path / "store"
    shutil.copytree(counted, copy)
    now = utc(2026, 6, 9)
    day_counts = board.DayCounts()
    check(copy, now, "7d", "UTC", day_counts)
    footers = board.DayCounts()
    check(copy, now, "24h", "UTC", footers)  # 7 d and 30 d: from the days' footer counts, kept too
    extra = msg(utc(2026, 6, 7, 12), "late@example.com", "new@example.net", status="Failed", detail="550 gone")
    write_store(copy, [extra], complete=False)
    check(copy, now, "24h", "UTC", footers)
    check(copy, now, "7d", "UTC", day_counts)
    failed = board.build(copy, now, "7d", day_counts=day_counts).counts["7d"]["Failed"]
    assert failed == brute(counted, now, 24 * 7, "UTC")["counts"]["Failed"] + 1
