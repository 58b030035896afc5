"""Regression over every Postfix log in ../shared/corpus/postfix: no crash, plausible rows, and
exact assertions on a few messages checked by hand against the raw lines.

The lightmeter scenarios are read from their tarball (never extracted into the repository); the
postfix-grok-patterns payloads have no syslog header, so each gets a synthetic one.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import tarfile
from pathlib import Path

import polars as pl
import pytest

from msgtrace.ingest.formats import postfix
from msgtrace.ingest.formats.context import ParseContext
from msgtrace.ingest.pipeline import IngestOptions, IngestReport, ingest_paths
from msgtrace.ingest.schema import STATUSES
from tests.conftest import CORPUS
from tests.polars_syslog import split
from tests.test_postfix import read_table

PF = CORPUS / "postfix"
TARBALL = PF / "lightmeter" / "individual_files.tar.gz"
PMG = PF / "pmg-log-tracker"
UTC = dt.UTC

_UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_IP = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:.]*:[0-9a-f:.]*)$")


def _members() -> list[str]:
    if not TARBALL.exists():
        return ["absent"]
    with tarfile.open(TARBALL) as tar:
        return sorted(Path(m.name).name for m in tar.getmembers() if m.isfile())


def lightmeter(name: str, dest: Path) -> Path:
    """One scenario from the tarball, written to a temporary file."""
    with tarfile.open(TARBALL) as tar:
        member = next(m for m in tar.getmembers() if Path(m.name).name == name)
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    out = dest / name
    out.write_bytes(data)
    return out


def ingest(path: Path, store: Path, year: int, zone: str = "UTC") -> tuple[IngestReport, pl.DataFrame]:
    report = ingest_paths([str(path)], store, IngestOptions(timezone=zone, year=year, format="postfix"))
    return report, read_table(store, "messages").sort("received", "queue_id", "recipient_lower")


def check_plausible(rows: pl.DataFrame) -> None:
    """What must hold for any log: valid statuses and ids, outcomes that agree with their DSN."""
    assert set(rows.get_column("status")) <= set(STATUSES)
    assert rows.get_column("received").null_count() == 0
    assert rows.filter(pl.col("last_event") < pl.col("received")).height == 0
    assert all(_UUID7.match(t) for t in rows.get_column("message_trace_id"))
    # one id per message: the same id never spans two queue ids or Received times
    per_id = rows.group_by("message_trace_id").agg(pl.col("queue_id").n_unique(), pl.col("received").n_unique())
    assert per_id.filter((pl.col("queue_id") > 1) | (pl.col("received") > 1)).height == 0
    for r in rows.iter_rows(named=True):
        assert r["queue_id"] in r["queue_ids"].split(" ") or r["queue_id"] == r["queue_ids"] == ""
        assert r["from_ip"] == "" or _IP.match(r["from_ip"]), r
        assert r["to_ip"] == "" or _IP.match(r["to_ip"]), r
        dsn = r["dsn"]
        if r["status"] == "Delivered":
            assert dsn is None or dsn.startswith("2"), r
        if r["status"] == "Failed":
            assert dsn is None or dsn[0] in "45", r
    # a message has an empty recipient only while it has no recipient row at all
    blank = rows.filter(pl.col("recipient_address") == "").get_column("message_trace_id")
    others = rows.filter(pl.col("message_trace_id").is_in(blank.implode()) & (pl.col("recipient_address") != ""))
    assert others.height == 0


# --- lightmeter: 37 scenario files ------------------------------------------------------------

# Lines that are not Postfix's and not syslog: counted, reported, never fatal.
UNKNOWN = {"18_expired.log": 1}  # a line broken in two ("ir/)")


@pytest.mark.parametrize("name", _members())
def test_lightmeter_file(corpus: Path, tmp_path: Path, name: str) -> None:
    report, rows = ingest(lightmeter(name, tmp_path), tmp_path / "store", 2020)
    f = report.files[0]
    assert f.skipped is None and f.lines > 0
    assert f.unknown == UNKNOWN.get(name, 0), f.unknown_sample
    check_plausible(rows)


def _rows(corpus: Path, tmp_path: Path, name: str) -> list[tuple]:
    _, rows = ingest(lightmeter(name, tmp_path), tmp_path / "store", 2020)
    return rows.select(
        "queue_ids", "sender_address", "recipient_address", "status", "from_ip", "to_ip", "dsn", "incomplete"
    ).rows()


def test_lightmeter_bounce_through_amavis(corpus: Path, tmp_path: Path) -> None:
    # smtpd 4AA091855DA0 -> amavis -> 776E41855DB2 bounced 5.1.1; the DSN A48191855DA0 from <> is delivered
    assert _rows(corpus, tmp_path, "1_bounce_simple.log") == [
        (
            "4AA091855DA0 776E41855DB2",
            "user@sender.com",
            "invalid.email@example.com",
            "Failed",
            "1.2.3.4",
            "11.22.33.44",
            "5.1.1",
            False,
        ),
        ("A48191855DA0", "", "user@sender.com", "Delivered", "", "", "2.0.0", False),
    ]


def test_lightmeter_three_hop_chain(corpus: Path, tmp_path: Path) -> None:
    # submission -> amavis (10026) -> dkim milter smtpd -> smtp to Google: one message, the client's IP
    got = _rows(corpus, tmp_path, "5_zimbra_amavisd.log")
    assert got == [
        (
            "E8759DC24C3 218BEDC28EC 33DE0DC24C3",
            "sender@sender.example.com",
            "recipient@recipient.example.com",
            "Delivered",
            "11.22.33.44",
            "74.125.24.27",
            "2.0.0",
            False,
        )
    ]


def test_lightmeter_deferred_then_delivered(corpus: Path, tmp_path: Path) -> None:
    got = {r[2]: r for r in _rows(corpus, tmp_path, "6_deferred_message_retry.log")}
    # greylisted (451, deferred) at 13:28, delivered at 13:35; the first hop's start is before the file
    assert got["recipient@recipient.com"][3:] == ("Delivered", "", "11.22.33.44", "2.0.0", True)
    assert got["mail@another.com"][3] == "Delivered"


def test_lightmeter_expired(corpus: Path, tmp_path: Path) -> None:
    got = _rows(corpus, tmp_path, "18_expired.log")
    # 20B4E3D5BD hands the message to a filter on the host's own IP (239.58.50.50:2501), which
    # queues it as 23EBE3D5C0 with client= that same IP: one message of the two queue ids (in the
    # order their first lines appear: the filter's client= is logged before the hand-off line)
    expired = [r for r in got if "23EBE3D5C0" in r[0].split(" ")]
    assert [r[0] for r in expired] == ["23EBE3D5C0 20B4E3D5BD"]
    assert [(r[2], r[3]) for r in expired] == [("h-664d01@h-695da2287.com", "Failed")]


def test_lightmeter_rejects(corpus: Path, tmp_path: Path) -> None:
    got = _rows(corpus, tmp_path, "17-smtpd-reject-with-milter-reject.log")
    assert [(r[0], r[3]) for r in got] == [
        ("769FF2E0760", "None"),
        ("769FF2E0760", "FilteredAsSpam"),
        ("769FF2E0760", "None"),
    ]


def test_lightmeter_reused_queue_ids(corpus: Path, tmp_path: Path) -> None:
    _, rows = ingest(lightmeter("14_reuse_of_queueid.log", tmp_path), tmp_path / "store", 2020)
    # the redacted ids BABABABABA, CACACACACACA and DADADADADA each stand for several messages
    # (a queue id that is a filter hop of another message counts under its queue_ids)
    per_qid = dict(
        rows.select("received", pl.col("queue_ids").str.split(" ").alias("queue_id"))
        .explode("queue_id")
        .filter(pl.col("queue_id").str.contains("^(?:BA|CA|DA)+$"))
        .group_by("queue_id")
        .agg(pl.col("received").n_unique())
        .iter_rows()
    )
    assert all(n >= 1 for n in per_qid.values()) and sum(per_qid.values()) > len(per_qid)
    assert rows.get_column("message_trace_id").n_unique() == rows.select("queue_id", "received").unique().height


# --- pmg-log-tracker ----------------------------------------------------------------------


def test_pmg_timechange_dst_and_new_year(corpus: Path, tmp_path: Path) -> None:
    report, rows = ingest(PMG / "test_input_timechange", tmp_path / "store", 2021, "Europe/Vienna")
    assert report.files[0].unknown == 0
    check_plausible(rows)
    raw = (PMG / "test_input_timechange").read_text().splitlines()
    frame = pl.DataFrame({"line_no": range(len(raw)), "line": raw}, schema={"line_no": pl.Int64, "line": pl.String})
    env = split(frame, ParseContext(timezone="Europe/Vienna", year=2021))
    times = dict(env.filter(pl.col("ok")).select("line_no", "time").iter_rows())

    def utc_of(stamp: str) -> set[str]:
        return {times[i].isoformat() for i, line in enumerate(raw) if line.startswith(stamp)}

    assert utc_of("Mar 28 01:53:05") == {"2021-03-28T00:53:05+00:00"}  # CET
    assert utc_of("Mar 28 03:07:48") == {"2021-03-28T01:07:48+00:00"}  # CEST, after the gap
    # Oct 31: 02:xx twice; the first block is CEST, the block after the blank line CET
    assert utc_of("Oct 31 02:53:38") == {"2021-10-31T00:53:38+00:00"}
    assert utc_of("Oct 31 02:00:12") == {"2021-10-31T01:00:12+00:00"}
    assert utc_of("Oct 31 03:00:00") == {"2021-10-31T02:00:00+00:00"}
    # Dec 31 and Jan 01 lines interleave: neither year drifts
    assert utc_of("Dec 31 23:59:59") == {"2021-12-31T22:59:59+00:00"}
    assert utc_of("Jan 01 00:00:00") == {"2021-12-31T23:00:00+00:00"}
    # and the store got the same times
    ev = read_table(tmp_path / "store", "events")
    assert dict(ev.select("line_no", "time").iter_rows()).items() <= times.items()


def test_pmg_rfc3339_offsets(corpus: Path, tmp_path: Path) -> None:
    report, rows = ingest(PMG / "test_input_time_rfc3339_mixed", tmp_path / "store", 2023, "Europe/Vienna")
    check_plausible(rows)
    got = dict(rows.select("queue_id", "received").unique().iter_rows())
    assert got["520C9C0192"].isoformat() == "2023-06-23T12:26:29.336189+00:00"  # +02:00
    assert got["866B7C0192"].isoformat() == "2023-06-23T14:27:40.550799+00:00"  # Z
    assert got["C4EC9C0192"].isoformat() == "2023-06-23T16:28:23.806755+00:00"  # -02:00


def test_pmg_foreign_lines_make_no_message(corpus: Path, tmp_path: Path) -> None:
    report, rows = ingest(PMG / "test_input_foreign_lines", tmp_path / "store", 2021)
    assert report.files[0].unknown == 4  # STATISTICS1:, CLEANUP99:, DELIVERY1:, FOOBAR99:
    assert rows.select("queue_id", "status").rows() == [("", "None")]  # the proxy-reject, nothing else


def test_pmg_misleading_lines(corpus: Path, tmp_path: Path) -> None:
    _, rows = ingest(PMG / "test_input_misleading_lines", tmp_path / "store", 2026)
    assert rows.select("queue_id", "recipient_address", "from_ip").rows() == [
        ("123412341234", "test@pmg.local", "1.2.3.4")
    ]


@pytest.mark.parametrize(
    "name",
    [
        "test_input_mixed",
        "test_input_mixed_accept_block_quarantine",
        "test_input_after_queue_duplicate_msgid",
    ],
)
def test_pmg_file(corpus: Path, tmp_path: Path, name: str) -> None:
    report, rows = ingest(PMG / name, tmp_path / "store", 2021)
    assert report.files[0].unknown == 0
    assert rows.height > 0
    check_plausible(rows)


def test_pmg_ipv6_client_and_dsn_from_empty_sender(corpus: Path, tmp_path: Path) -> None:
    _, rows = ingest(PMG / "test_input_mixed_accept_block_quarantine", tmp_path / "store", 2021)
    assert rows.select("sender_address", "recipient_address", "status", "from_ip").rows() == [
        ("senduser@test@localdomain", "reject@test.recipient.example", "Failed", "2001:db8:1:12::75"),
        ("", "senduser@test@localdomain", "Delivered", ""),
    ]


# --- postfix-grok-patterns: payloads without a header --------------------------------------

# The grok test file names the daemon; a few files hold fragments of a line, not a line.
_DAEMON = {"tls_features": "smtp", "lmtp": "lmtp", "discard": "discard", "error": "error"}
_FRAGMENTS = {"command_counter_data", "delays", "relay"}


def _payloads() -> list[tuple[str, str]]:
    path = PF / "postfix-grok-patterns" / "payloads.tsv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [(r["file"], r["payload"]) for r in csv.DictReader(f, delimiter="\t")]


def test_grok_payloads(corpus: Path) -> None:
    payloads = _payloads()
    assert len(payloads) == 191
    lines = []
    for name, payload in payloads:
        daemon = name.rsplit("_", 1)[0]
        lines.append(f"Oct 26 18:13:50 mx1 postfix/{_DAEMON.get(daemon, daemon)}[123]: {payload}")
    frame = pl.DataFrame({"line_no": range(len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String})
    parsed = postfix.parse(frame, ParseContext(year=2026))  # every payload at once: no crash
    kinds = dict(parsed.events.group_by("line_no").agg(pl.col("kind").first()).iter_rows())
    unknown = set(parsed.unknown.get_column("line_no"))
    for i, (name, payload) in enumerate(payloads):
        daemon = name.rsplit("_", 1)[0]
        if daemon in _FRAGMENTS or (daemon == "tls_features" and "to=<" not in payload):
            continue
        kind = kinds.get(i)
        if re.match(r"^\w+: to=<?[^,]+, .*status=(sent|deferred|bounced|expired)", payload):
            assert kind in ("deliver", "handoff"), (name, payload, kind)
        elif re.match(r"^\w+: from=<[^>]*>, size=\d+, nrcpt=", payload):
            assert kind == "receive", (name, payload, kind)
        elif "status=expired, returned to sender" in payload:
            assert kind == "hold", (name, payload, kind)
        elif re.match(r"^(?:NOQUEUE: )?(?:milter-|proxy-)?reject: \w+.*; from=<", payload):
            assert kind == "reject", (name, payload, kind)
        elif re.match(r"^\w+: client=", payload):
            assert kind == "client", (name, payload, kind)
        elif re.match(r"^\w+: message-id=", payload):
            assert kind == "msgid", (name, payload, kind)
        else:
            # everything else is recognised (an info event, or noise), never left unknown
            assert i not in unknown, (name, payload)
    statuses = dict(parsed.events.select("line_no", "status").iter_rows())
    by_name = {name: i for i, (name, _) in enumerate(payloads)}
    assert statuses[by_name["smtpd_0009.yaml"]] == "FilteredAsSpam"  # blocked using a DNSBL
    assert statuses[by_name["smtpd_0004.yaml"]] == "None"  # unknown user
    assert statuses[by_name["smtp_0018.yaml"]] == "Failed"
    assert statuses[by_name["error_0001.yaml"]] == "Pending"
