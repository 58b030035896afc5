"""`msgtrace report`: every figure equals a brute-force count over the trace rows of a generated store."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner, Result

from msgtrace.api import message_trace_lazy
from msgtrace.cli import cli
from msgtrace.query.report import SECTIONS, normalize_reason
from msgtrace.store import Store
from tests.helpers_generated import NOW, WINDOW, generated_store
from tests.helpers_store import msg, utc, write_store

ZONE = "Europe/Vienna"
STATUS_ORDER = ["GettingStatus", "Pending", "Delivered", "Failed", "Expanded", "Quarantined", "FilteredAsSpam", "None"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_store(tmp_path_factory.mktemp("report"))


def invoke(*args: str) -> Result:
    env = {"MSGTRACE_NOW": None, "MSGTRACE_TZ": None, "MSGTRACE_STORE": None, "COLUMNS": "160"}
    return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)


def report_json(store: Path, *args: str) -> dict[str, Any]:
    window = [a if a != "UTC" else ZONE for a in WINDOW]
    res = invoke("report", "--store", str(store), *window, "--top", "100000", "--output", "json", *args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def trace_rows(store: Path, **filters: Any) -> list[dict[str, Any]]:
    """The stored rows a trace over the report's window returns (every stored column)."""
    lf = message_trace_lazy(
        store, start_date="2026-05-31", end_date="2026-06-04", timezone=ZONE, now=NOW, max_age_days=0, **filters
    )
    return lf.collect().to_dicts()


# --- brute force: plain Python over the rows ---------------------------------------------------------


def direction_of(row: dict[str, Any]) -> str:
    """Direction by the README's rule, written out again by hand."""

    def dom(a: str | None) -> str | None:
        return a.rsplit("@", 1)[1].lower() if a and "@" in a else None

    org = (row["organization"] or "").lower()
    from_here = not row["from_ip"] or row["from_ip"].startswith("127.") or row["from_ip"] in ("::1", "::ffff:127.0.0.1")
    delivered_here = row["status"] == "Delivered" and not row["to_ip"] and bool(row["relay"])
    local_sender = dom(row["sender_lower"]) == org or from_here
    local_recipient = dom(row["recipient_lower"]) == org or delivered_here
    if local_sender and local_recipient:
        return "Local"
    return "Outbound" if local_sender else "Inbound"


def tally(rows: list[dict[str, Any]], key: Any, per_message: bool = False) -> dict[Any, dict[str, int]]:
    """Rows, Messages (distinct trace ids) and Bytes per key: the size once per row (recipient
    sections) or, per_message, once per message (the sections about messages as received)."""
    out: dict[Any, dict[str, Any]] = defaultdict(lambda: {"Rows": 0, "ids": {}, "Bytes": 0})
    for r in rows:
        k = key(r)
        out[k]["Rows"] += 1
        out[k]["Bytes"] += r["size"] or 0
        out[k]["ids"].setdefault(r["message_trace_id"], r["size"] or 0)
    return {
        k: {
            "Rows": v["Rows"],
            "Messages": len(v["ids"]),
            "Bytes": sum(v["ids"].values()) if per_message else v["Bytes"],
        }
        for k, v in out.items()
    }


def as_records(counts: dict[Any, dict[str, int]], name: str) -> dict[Any, dict[str, int]]:
    return {k: {name: k, **v} for k, v in counts.items()}


def sender_label(r: dict[str, Any]) -> str:
    return r["sender_lower"] or "<>"


def domain_label(a: str | None) -> str:
    if not a:
        return "<>"
    return a.rsplit("@", 1)[1] if "@" in a else "(no domain)"


def top_records(counts: dict[str, dict[str, int]], label: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    recs = [{label: k, **v} for k, v in counts.items()]
    by_count = sorted(recs, key=lambda r: (-r["Messages"], -r["Rows"], r[label]))
    by_bytes = sorted(recs, key=lambda r: (-r["Bytes"], r[label]))
    return by_count, by_bytes


def same_records(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [{k: r[k] for k in want[0]} for r in got] == want if want else got == []


# --- the tests --------------------------------------------------------------------------------------------


def test_json_has_every_section_in_order(store: Path) -> None:
    rep = report_json(store)
    assert list(rep) == list(SECTIONS)
    assert list(SECTIONS[:13]) == [
        "totals", "by_direction", "by_hour", "by_day", "top_senders", "top_recipients", "top_sender_domains",
        "top_recipient_domains", "deferral_reasons", "bounce_reasons", "reject_reasons", "delay", "stuck",
    ]  # fmt: skip


def test_totals_and_directions_equal_a_brute_force_count(store: Path) -> None:
    rows = trace_rows(store)
    assert len(rows) > 500
    rep = report_json(store)
    totals = tally(rows, lambda r: r["status"])
    want = [{"Status": s, **totals[s]} for s in STATUS_ORDER if s in totals]
    assert rep["totals"] == want
    by_dir = tally(rows, direction_of)
    assert rep["by_direction"] == [
        {"Direction": d, **by_dir[d]} for d in ("Inbound", "Outbound", "Local") if d in by_dir
    ]
    assert {d["Direction"] for d in rep["by_direction"]} == {"Inbound", "Outbound", "Local"}


def test_hours_and_days_are_those_of_the_report_zone(store: Path) -> None:
    rows = trace_rows(store)
    rep = report_json(store)
    zone = ZoneInfo(ZONE)

    def hour(r: dict[str, Any]) -> str:
        return r["received"].astimezone(zone).replace(minute=0, second=0, microsecond=0).isoformat()

    hours = tally(rows, hour, per_message=True)
    assert rep["by_hour"] == [
        {"Hour": h, **{k: hours[h][k] for k in ("Messages", "Rows", "Bytes")}} for h in sorted(hours)
    ]
    days = tally(rows, lambda r: r["received"].astimezone(zone).date().isoformat(), per_message=True)
    assert rep["by_day"] == [{"Day": d, **{k: days[d][k] for k in ("Messages", "Rows", "Bytes")}} for d in sorted(days)]
    # Vienna is UTC+2 in June: the first hour of the generated log (00:00Z) is 02:00 local
    assert rep["by_hour"][0]["Hour"].endswith("+02:00")


def test_top_lists_equal_a_brute_force_ranking(store: Path) -> None:
    rows = trace_rows(store)
    rep = report_json(store)
    with_rcpt = [r for r in rows if r["recipient_lower"]]
    cases = {
        "top_senders": ("Address", tally(rows, sender_label, per_message=True)),
        "top_sender_domains": ("Domain", tally(rows, lambda r: domain_label(r["sender_lower"]), per_message=True)),
        "top_recipients": ("Address", tally(with_rcpt, lambda r: r["recipient_lower"])),
        "top_recipient_domains": ("Domain", tally(with_rcpt, lambda r: domain_label(r["recipient_lower"]))),
    }
    for key, (label, counts) in cases.items():
        by_count, by_bytes = top_records(counts, label)
        assert rep[key]["by_count"] == by_count, key
        assert rep[key]["by_bytes"] == by_bytes, key
    relays = tally([r for r in rows if r["relay"]], lambda r: r["relay"])
    want = sorted(({"Relay": k, **v} for k, v in relays.items()), key=lambda r: (-r["Rows"], r["Relay"]))
    assert rep["top_relays"] == want


def test_top_n_cuts_each_list(store: Path) -> None:
    full = report_json(store)
    res = invoke("report", "--store", str(store), *WINDOW, "--top", "3", "--output", "json")
    cut = json.loads(res.stdout)
    assert len(cut["top_senders"]["by_count"]) == 3
    assert cut["top_senders"]["by_count"] == full["top_senders"]["by_count"][:3]


def test_reasons_count_every_row_of_their_status(store: Path) -> None:
    rows = trace_rows(store)
    rep = report_json(store)
    pending = [r for r in rows if r["status"] == "Pending"]
    failed = [r for r in rows if r["status"] == "Failed"]
    rejected = [
        r
        for r in rows
        if r["status"] in ("None", "FilteredAsSpam") and not (r["detail"] or "").startswith("redirected to")
    ]
    assert sum(x["Rows"] for x in rep["deferral_reasons"]) == len(pending)
    assert sum(x["Rows"] for x in rep["bounce_reasons"]) == len(failed)
    assert sum(x["Rows"] for x in rep["reject_reasons"]) == len(rejected) > 0
    # normalised: no address, IP or queue id left in a reason
    for x in rep["deferral_reasons"] + rep["bounce_reasons"] + rep["reject_reasons"]:
        assert not re.search(r"[\w.]+@[\w.]+|\d+\.\d+\.\d+\.\d+|\b[0-9A-F]{10}\b", x["Reason"]), x


@pytest.mark.parametrize(
    ("detail", "dsn", "reason"),
    [
        (
            "host mx.example.com[192.0.2.1] said: 550 5.1.1 <bob@example.com>: Recipient address rejected: "
            "User unknown (in reply to RCPT TO command)",
            "5.1.1",
            "550 5.1.1 <*>: Recipient address rejected: User unknown",
        ),
        (
            "RCPT from unknown[198.51.100.7]: 554 5.7.1 Service unavailable; Client host [198.51.100.7] blocked "
            "using zen.spamhaus.org; from=<a@b.example> to=<c@d.example> proto=ESMTP helo=<x>",
            None,
            "554 5.7.1 Service unavailable; Client host [*] blocked using zen.spamhaus.org",
        ),
        (
            "connect to mx2.fabrikam.com[2001:db8::25]:25: Connection timed out",
            "4.4.1",
            "4.4.1 connect to *[*]:*: Connection timed out",
        ),
        ("defer (110): Connection timed out", None, "defer (*): Connection timed out"),
        (
            '451 4.4.0 Primary target IP address responded with: "451 4.7.1 Greylisted." Attempted failover',
            "4.4.0",
            '451 4.4.0 Primary target IP address responded with: "451 4.7.1 Greylisted." Attempted failover',
        ),
        (
            "rejected RCPT <x@y.example>: 2001:db8::7 is listed in zen.spamhaus.org",
            None,
            "rejected RCPT <*>: * is listed in zen.spamhaus.org",
        ),
    ],
)
def test_reasons_are_normalised(detail: str, dsn: str | None, reason: str) -> None:
    df = pl.DataFrame({"detail": [detail], "dsn": [dsn]}, schema={"detail": pl.String, "dsn": pl.String})
    assert df.select(normalize_reason(pl.col("detail"), pl.col("dsn"))).item() == reason


def test_delay_percentiles_equal_numpy(store: Path) -> None:
    rows = trace_rows(store)
    rep = report_json(store)
    delays = [r["delay"] for r in rows if r["status"] == "Delivered" and r["delay"] is not None]
    overall = rep["delay"]["overall"][0]
    assert overall["Rows"] == len(delays)
    for q in (50, 90, 99):
        assert overall[f"p{q}"] == pytest.approx(float(np.percentile(delays, q)))
    by_domain: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["status"] == "Delivered" and r["delay"] is not None:
            by_domain[domain_label(r["recipient_lower"])].append(r["delay"])
    for rec in rep["delay"]["by_domain"]:
        values = by_domain[rec["Domain"]]
        assert rec["Rows"] == len(values)
        assert rec["p90"] == pytest.approx(float(np.percentile(values, 90)))
    assert [r["Rows"] for r in rep["delay"]["by_domain"]] == sorted((len(v) for v in by_domain.values()), reverse=True)


def test_stuck_lists_open_rows_older_than_stuck_hours(store: Path) -> None:
    rows = trace_rows(store)
    now = dt.datetime(2026, 6, 3, 6, tzinfo=dt.UTC)
    for hours in (4, 30):
        rep = report_json(store, "--stuck-hours", str(hours))
        want = [
            r
            for r in rows
            if r["status"] in ("Pending", "GettingStatus") and r["received"] < now - dt.timedelta(hours=hours)
        ]
        assert rep["stuck"]["count"] == len(want)
        assert rep["stuck"]["hours"] == hours
        assert {r["MessageTraceId"] for r in rep["stuck"]["rows"]} == {r["message_trace_id"] for r in want}
        assert [r["Received"] for r in rep["stuck"]["rows"]] == sorted(r["Received"] for r in rep["stuck"]["rows"])
    assert (
        report_json(store, "--stuck-hours", "4")["stuck"]["count"]
        > report_json(store, "--stuck-hours", "30")["stuck"]["count"]
    )


def test_filters_and_direction_narrow_every_section(store: Path) -> None:
    rows = [r for r in trace_rows(store, sender_address="*@example.org") if direction_of(r) == "Outbound"]
    rep = report_json(store, "--sender-address", "*@example.org", "--direction", "outbound")
    totals = tally(rows, lambda r: r["status"])
    assert rep["totals"] == [{"Status": s, **totals[s]} for s in STATUS_ORDER if s in totals]
    assert [d["Direction"] for d in rep["by_direction"]] == ["Outbound"]
    assert rep["window"]["direction"] == ["Outbound"]


def test_text_report_shows_every_section(store: Path) -> None:
    res = invoke("report", "--store", str(store), *WINDOW)
    assert res.exit_code == 0, res.output
    for title in ("Totals by status", "By direction", "Per hour", "Per day", "Top senders: by messages",
                  "Top recipient domains: by bytes", "Top relays", "Deferral reasons", "Bounce reasons",
                  "Reject reasons", "Delivery delay", "Stuck messages"):  # fmt: skip
        assert title in res.stdout


def test_html_is_one_self_contained_page_with_charts(store: Path, tmp_path: Path) -> None:
    out, charts = tmp_path / "r.html", tmp_path / "charts"
    res = invoke(
        "report", "--store", str(store), *WINDOW, "--output", "html", "--out", str(out), "--charts", str(charts)
    )
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # nothing fetched from anywhere: no script, no stylesheet link, every image inline
    assert "<script" not in page and "<link" not in page
    assert re.findall(r'src="([^"]*)"', page) and all(
        s.startswith("data:image/svg+xml;base64,") for s in re.findall(r'src="([^"]*)"', page)
    )
    for svg in re.findall(r'src="data:image/svg\+xml;base64,([^"]*)"', page):
        text = base64.b64decode(svg).decode("utf-8")
        assert text.lstrip().startswith("<svg") and "<script" not in text and 'href="http' not in text
    pngs = sorted(p.name for p in charts.iterdir())
    assert {"status.png", "direction.png", "messages_per_hour.png", "messages_per_day.png", "delay.png"} <= set(pngs)
    assert all((charts / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_html_neutralises_log_text(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>\x1b[2J"
    store = write_store(
        tmp_path / "s",
        [
            msg(
                utc(2026, 6, 2, 10),
                f"{evil}@evil.example",
                "bob@example.org",
                status="Failed",
                detail=f"550 5.1.1 {evil}",
            ),
            msg(utc(2026, 6, 2, 11), "alice@example.com", "bob@example.org"),
        ],
    )
    out = tmp_path / "r.html"
    res = invoke("report", "--store", str(store), *WINDOW, "--output", "html", "--out", str(out))
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert "<script>" not in page and "\x1b" not in page
    assert "&lt;script&gt;" in page
    for svg in re.findall(r'src="data:image/svg\+xml;base64,([^"]*)"', page):
        text = base64.b64decode(svg).decode("utf-8")
        assert "<script>" not in text and "\x1b" not in text
    text_report = invoke("report", "--store", str(store), *WINDOW)
    assert "\x1b" not in text_report.stdout and "\\x1b" in text_report.stdout


def test_empty_window_reports_empty_sections(store: Path) -> None:
    res = invoke(
        "report", "--store", str(store), "--start-date", "2020-01-01", "--end-date", "2020-01-02", "--output", "json"
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["totals"] == [] and rep["stuck"]["count"] == 0 and rep["delay"]["overall"][0]["Rows"] == 0


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--top", "0"], "--top"),
        (["--top", "many"], "--top"),
        (["--stuck-hours", "-1"], "--stuck-hours"),
        (["--stuck-hours", "x"], "--stuck-hours"),
        (["--direction", "sideways"], "--direction"),
        (["--output", "pdf"], "--output"),
        (["--timezone", "Mars/Olympus"], "Mars/Olympus"),
        (["--start-date", "yesterday-ish"], "--start-date"),
        (["--status", "Lost"], "--status"),
        (["--from-ip", "300.1.1.1"], "--from-ip"),
        (["--max-age-days", "1"], "--max-age-days"),
    ],
)
def test_bad_option_values_are_one_error_line(store: Path, args: list[str], option: str) -> None:
    res = invoke("report", "--store", str(store), "--start-date", "2026-05-31", "--now", NOW, *args)
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and option in lines[0], res.output
    assert "Traceback" not in res.output


# --- whole days from the counts `msgtrace compact` stores (query.report_store) ---------------------------


@pytest.fixture(scope="module")
def counted(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    copy = tmp_path_factory.mktemp("counted") / "store"
    shutil.copytree(store, copy)
    res = invoke("compact", "--store", str(copy))
    assert res.exit_code == 0 and "counted 0 days" not in res.stdout, res.output
    return copy


COUNTED_CASES = [
    [],  # the window in Europe/Vienna: whole UTC days inside it, cut ones at its ends
    ["--timezone", "UTC"],  # nothing but whole days
    ["--timezone", "Asia/Kathmandu"],  # +05:45: hours and days cut across the stored minutes
    ["--start-date", "2026-06-01T12:00:00Z"],  # the first day cut: its rows read, the others counted
    ["--direction", "Outbound"],  # a filter: every row is read
    ["--sender-address", "*@example.org", "--stuck-hours", "1", "--top", "3"],
]


@pytest.mark.parametrize("args", COUNTED_CASES, ids=lambda a: " ".join(a) or "window")
def test_stored_day_counts_give_the_report_of_the_rows(store: Path, counted: Path, args: list[str]) -> None:
    assert report_json(counted, *args) == report_json(store, *args)


def test_whole_days_are_not_read_when_their_counts_are_stored(counted: Path) -> None:
    from msgtrace.query import report_store
    from msgtrace.query.filters import TraceFilter

    flt = TraceFilter.from_params(
        start_date="2026-05-31", end_date="2026-06-04", now=NOW, max_age_days=0, timezone="UTC"
    )
    parts = report_store.partials(counted, flt)
    days = [d for d in Store(counted).messages.days() if dt.date(2026, 5, 31) <= d < dt.date(2026, 6, 4)]
    assert len(days) >= 2 and len(parts) == len(days)  # one stored partial per day, no rows read


def test_counts_out_of_date_are_not_used(store: Path, counted: Path, tmp_path: Path) -> None:
    """A flush after the compaction (a new file in a counted day), and new local domains (Direction
    follows them): the report is that of the rows again."""
    import shutil

    from msgtrace.ingest.storeconfig import save_local_domains

    copy = tmp_path / "store"
    shutil.copytree(counted, copy)
    day = Store(copy).messages.days()[0]
    extra = msg(utc(day.year, day.month, day.day, 12), "late@example.com", "new@example.net", status="Failed")
    write_store(copy, [extra], complete=False)
    plain = tmp_path / "plain"
    shutil.copytree(store, plain)
    write_store(plain, [extra], complete=False)
    assert report_json(copy, "--timezone", "UTC") == report_json(plain, "--timezone", "UTC")
    for s in (copy, plain):
        save_local_domains(s, ("example.org",))
    assert report_json(copy, "--timezone", "UTC") == report_json(plain, "--timezone", "UTC")


def test_percentiles_from_counted_delays_equal_polars_over_the_rows() -> None:
    """Exactly, not approximately: the counted form gives the figures a report of the rows gives."""
    from msgtrace.query.report import PERCENTILES, weighted_percentiles

    rng = np.random.default_rng(5)
    for _ in range(300):
        values = np.round(rng.exponential(300, int(rng.integers(1, 400))), int(rng.integers(0, 3)))
        uniq, counts = np.unique(values, return_counts=True)
        counted = pl.DataFrame({"delay": uniq[::-1], "count": counts[::-1]})  # any order
        got = weighted_percentiles(counted)
        rows = pl.Series(values)
        assert got == {f"p{int(q * 100)}": rows.quantile(q, interpolation="linear") for q in PERCENTILES}


def test_a_killed_compactions_temp_day_counts_are_swept(counted: Path, tmp_path: Path) -> None:
    """A compaction killed while writing a day's counts leaves its temp file in _report_counts/; the
    next compaction removes it once it is an hour old, and leaves a younger one (another writer may
    be writing it right now)."""
    import os
    import shutil
    import time

    from msgtrace.store.table import STALE_REPORT_TEMP_SECONDS

    copy = tmp_path / "store"
    shutil.copytree(counted, copy)
    folder = Store(copy).report.dir
    old, young = (
        folder / ".tmp-0123456789abcdef.2026-06-01.parquet",
        folder / ".tmp-fedcba9876543210.2026-06-02.parquet",
    )
    for f in (old, young):
        f.write_bytes(b"PAR1 half written")
    then = time.time() - STALE_REPORT_TEMP_SECONDS - 60
    os.utime(old, (then, then))
    res = invoke("compact", "--store", str(copy))
    assert res.exit_code == 0, res.output
    assert not old.exists() and young.exists()
    assert report_json(copy, "--timezone", "UTC") == report_json(counted, "--timezone", "UTC")
