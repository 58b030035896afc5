"""`msgtrace trace` through click's CliRunner: every option, every error text."""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result

from msgtrace.cli import cli
from tests.helpers_store import msg, next_file, trace_id, utc, write_store

NOW = "2026-06-14T12:00:00Z"
T1 = utc(2026, 6, 13, 10, 0, 0)
TID1 = trace_id(T1, "m1")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(
        tmp_path / "store",
        [
            msg(T1, "Alice@Example.com", "bob@example.org", message_trace_id=TID1, message_id="<m1@example.com>"),
            msg(T1, "Alice@Example.com", "carol@example.org", message_trace_id=TID1, message_id="<m1@example.com>",
                status="Failed", to_ip="2001:db8::7"),
            msg(utc(2026, 6, 12, 8), "dave@fabrikam.com", "alice@example.com", status="Pending",
                subject="Invoice 42", from_ip="192.0.2.9"),
            msg(utc(2026, 6, 14, 9), "", "alice@example.com", subject="Undelivered Mail"),
            msg(utc(2026, 6, 13, 23, 30), "eve@contoso.com", "bob@example.org", status="FilteredAsSpam",
                subject="WIN \x1b[2J a prize", message_id="<spam1@contoso.com>"),
            msg(utc(2026, 6, 1, 8), "old@example.com", "bob@example.org"),
        ],
    )  # fmt: skip


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    base = {"MSGTRACE_NOW": NOW, "MSGTRACE_TZ": "UTC", "COLUMNS": "120", "MSGTRACE_STORE": None}
    return CliRunner(env={**base, **(env or {})}).invoke(cli, list(args), catch_exceptions=False)


def trace(store: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return invoke("trace", "--store", str(store), *args, env=env)


def jsonl(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def pairs(result: Result) -> list[tuple[object, object]]:
    return [(r["SenderAddress"], r["RecipientAddress"]) for r in jsonl(result)]


def test_help_has_examples() -> None:
    assert "Example: msgtrace trace" in invoke("--help").output
    text = " ".join(invoke("trace", "--help").output.split())
    assert "Example: msgtrace trace --sender-address john@contoso.com" in text
    assert "a date alone means midnight at the start of that day" in text
    for option in ("--start-date", "--end-date", "--sender-address", "--recipient-address", "--from-ip", "--to-ip",
                   "--message-id", "--message-trace-id", "--status", "--page", "--page-size", "--result-size",
                   "--starting-recipient-address", "--subject", "--subject-filter-type", "--output", "--out",
                   "--now", "--max-age-days", "--timezone", "--store"):  # fmt: skip
        assert option in text


def test_default_table(store: Path) -> None:
    r = trace(store)
    assert r.exit_code == 0
    assert r.stderr == ""
    assert r.stdout.splitlines() == [
        "Received              SenderAddress      RecipientAddress   Subject              Status",
        "--------------------  -----------------  -----------------  -------------------  --------------",
        "2026-06-14T09:00:00Z                     alice@example.com  Undelivered Mail     Delivered",
        "2026-06-13T23:30:00Z  eve@contoso.com    bob@example.org    WIN \\x1b[2J a prize  FilteredAsSpam",
        "2026-06-13T10:00:00Z  Alice@Example.com  bob@example.org    Hello                Delivered",
        "2026-06-13T10:00:00Z  Alice@Example.com  carol@example.org  Hello                Failed",
    ]


def test_table_fits_columns(store: Path) -> None:
    r = trace(store, env={"COLUMNS": "70"})
    assert all(len(line) <= 70 for line in r.stdout.splitlines())


def test_dates_iso_and_us(store: Path) -> None:
    expected = [("dave@fabrikam.com", "alice@example.com")]
    assert (
        pairs(trace(store, "--start-date", "2026-06-12", "--end-date", "2026-06-13", "--output", "jsonl")) == expected
    )
    us = trace(store, "--start-date", "06/12/2026", "--end-date", "06/12/2026 9:00 AM", "--output", "jsonl")
    assert pairs(us) == expected
    assert (
        pairs(trace(store, "--start-date", "06/12/2026", "--end-date", "06/12/2026 8:00 AM", "--output", "jsonl")) == []
    )
    rows = jsonl(trace(store, "--start-date", "2026-06-12T10:00:00+02:00", "--output", "jsonl"))
    assert rows[0]["StartDate"] == "2026-06-12T08:00:00Z" and rows[0]["EndDate"] == NOW
    assert len(rows) == 5


def test_timezone_option_and_env(store: Path) -> None:
    # 06/14/2026 in Tokyo (UTC+9) starts at 2026-06-13T15:00Z
    r = trace(store, "--start-date", "06/14/2026", "--end-date", "06/15/2026", "--timezone", "Asia/Tokyo",
              "--output", "jsonl")  # fmt: skip
    assert [row["Received"] for row in jsonl(r)] == ["2026-06-14T09:00:00Z", "2026-06-13T23:30:00Z"]
    r2 = trace(store, "--start-date", "06/14/2026", "--end-date", "06/15/2026", "--output", "jsonl",
               env={"MSGTRACE_TZ": "Asia/Tokyo"})  # fmt: skip
    assert r2.stdout == r.stdout


def test_address_options(store: Path) -> None:
    a = trace(store, "--sender-address", "ALICE@example.com,eve@*", "--output", "jsonl")
    b = trace(store, "--sender-address", "alice@example.com", "--sender-address", "EVE@*", "--output", "jsonl")
    assert (
        pairs(a)
        == pairs(b)
        == [
            ("eve@contoso.com", "bob@example.org"),
            ("Alice@Example.com", "bob@example.org"),
            ("Alice@Example.com", "carol@example.org"),
        ]
    )
    assert pairs(trace(store, "--recipient-address", "*@EXAMPLE.org", "--sender-address", "*@example.com",
                       "--output", "jsonl")) == [("Alice@Example.com", "bob@example.org"),
                                                ("Alice@Example.com", "carol@example.org")]  # fmt: skip
    assert pairs(trace(store, "--sender-address", "<>", "--output", "jsonl")) == [("", "alice@example.com")]


def test_id_ip_status_subject_options(store: Path) -> None:
    def only(*args: str) -> list[tuple[object, object]]:
        return pairs(trace(store, *args, "--output", "jsonl"))

    assert only("--message-id", "spam1@contoso.com") == [("eve@contoso.com", "bob@example.org")]
    assert only("--message-id", "<m1@example.com>", "--recipient-address", "carol@example.org") == [
        ("Alice@Example.com", "carol@example.org")
    ]
    assert only("--message-trace-id", TID1.upper(), "--status", "delivered") == [
        ("Alice@Example.com", "bob@example.org")
    ]
    assert only("--to-ip", "2001:0db8::0007") == [("Alice@Example.com", "carol@example.org")]
    assert len(only("--from-ip", "198.51.100.2")) == 4
    assert only("--from-ip", "192.0.2.9", "--start-date", "2026-06-12") == [("dave@fabrikam.com", "alice@example.com")]
    assert only("--status", "Failed", "--status", "FILTEREDASSPAM") == [
        ("eve@contoso.com", "bob@example.org"),
        ("Alice@Example.com", "carol@example.org"),
    ]
    assert only("--subject", "PRIZE") == [("eve@contoso.com", "bob@example.org")]
    assert only("--subject", "undelivered", "--subject-filter-type", "StartsWith") == [("", "alice@example.com")]
    assert only("--subject", "undelivered", "--subject-filter-type", "EndsWith") == []


def test_output_formats(store: Path, tmp_path: Path) -> None:
    rows = json.loads(trace(store, "--output", "json").stdout)
    assert [r["Index"] for r in rows] == [0, 1, 2, 3]
    assert rows[1]["Subject"] == "WIN \x1b[2J a prize"  # json stays faithful
    assert rows[0]["Received"] == "2026-06-14T09:00:00Z"
    csv_text = trace(store, "--output", "CSV").stdout
    assert csv_text.splitlines()[0] == (
        "Organization,MessageId,Received,SenderAddress,RecipientAddress,Subject,Status,ToIP,FromIP,Size,"
        "MessageTraceId,StartDate,EndDate,Index,Direction"
    )
    assert len(csv_text.splitlines()) == 5
    out = tmp_path / "t.parquet"
    r = trace(store, "--output", "parquet", "--out", str(out))
    assert r.exit_code == 0 and r.stdout == ""
    assert pl.read_parquet(out)["Index"].to_list() == [0, 1, 2, 3]
    r = trace(store, "--output", "json", "--out", str(tmp_path / "t.json"))
    assert r.stdout == "" and len(json.loads((tmp_path / "t.json").read_text())) == 4


def test_v1_paging_hint(store: Path) -> None:
    r = trace(store, "--page-size", "3", "--output", "jsonl")
    assert [row["Index"] for row in jsonl(r)] == [0, 1, 2]
    assert r.stderr == "Page 1 of 2 (4 rows); add --page 2 for the next page.\n"
    r = trace(store, "--page", "2", "--page-size", "3", "--output", "jsonl")
    assert [row["Index"] for row in jsonl(r)] == [3] and r.stderr == ""
    r = trace(store, "--page", "3", "--page-size", "3")
    assert (r.exit_code, r.stdout) == (0, "")
    assert r.stderr == "No messages found.\nPage 3 is past the end: the result has 4 rows (2 pages).\n"


def test_trace_does_not_import_watchdog(store: Path) -> None:
    code = (
        "import sys; from msgtrace.cli import cli; "
        f"cli(['trace', '--store', {str(store)!r}, '--output', 'json'], standalone_mode=False); "
        "print('watchdog' in sys.modules)"
    )
    env = {**os.environ, "MSGTRACE_NOW": NOW}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.splitlines()[-1] == "False"


def test_v2_paging_prints_the_next_command_and_it_works(store: Path) -> None:
    r = trace(store, "--result-size", "3", "--sender-address", "*", "--output", "jsonl")
    assert [row["RecipientAddress"] for row in jsonl(r)] == ["alice@example.com", "bob@example.org", "bob@example.org"]
    assert r.stderr == (
        f"More results: msgtrace trace --store {shlex.quote(str(store))} --sender-address '*' --output jsonl "
        f"--now {NOW} --timezone UTC --start-date 2026-06-12T12:00:00Z --end-date 2026-06-13T10:00:00Z "
        "--starting-recipient-address bob@example.org --result-size 3\n"
    )
    argv = shlex.split(r.stderr.removeprefix("More results: "))[1:]
    r2 = invoke(*argv)
    assert [row["RecipientAddress"] for row in jsonl(r2)] == ["carol@example.org"]
    assert r2.stderr == ""


def test_now_option_and_max_age_days(store: Path) -> None:
    assert pairs(trace(store, "--now", "2026-06-02T00:00:00Z", "--output", "jsonl")) == [
        ("old@example.com", "bob@example.org")
    ]
    r = trace(store, "--start-date", "2026-06-01", "--output", "jsonl")
    assert r.exit_code == 1
    assert r.output == (
        "Error: --start-date 2026-06-01T00:00:00Z is older than the 10-day limit (before 2026-06-04T12:00:00Z); "
        "pass --max-age-days 0 (or a larger value) to search older data\n"
    )
    assert len(jsonl(trace(store, "--start-date", "2026-06-01", "--max-age-days", "0", "--output", "jsonl"))) == 6
    assert len(jsonl(trace(store, "--start-date", "2026-06-01", "--max-age-days", "14", "--output", "jsonl"))) == 6


def test_store_from_env(store: Path) -> None:
    r = invoke("trace", "--output", "jsonl", env={"MSGTRACE_STORE": str(store)})
    assert len(jsonl(r)) == 4


def test_empty_result_is_not_an_error(store: Path) -> None:
    r = trace(store, "--sender-address", "nobody@nowhere")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "No messages found.\n")
    r = trace(store, "--sender-address", "nobody@nowhere", "--output", "json")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "[]\n", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "Bounced"], "invalid --status 'Bounced': valid values are GettingStatus, Pending, Delivered, "
                                  "Failed, Expanded, Quarantined, FilteredAsSpam, None"),
        (["--message-trace-id", "not-a-guid"],
         "invalid --message-trace-id 'not-a-guid': expected a GUID like 0190a5b2-3c4d-7e5f-8a6b-1c2d3e4f5a6b"),
        (["--from-ip", "10.0.0.256"], "invalid --from-ip '10.0.0.256': expected an IPv4 or IPv6 address"),
        (["--to-ip", "2001:db8:::1"], "invalid --to-ip '2001:db8:::1': expected an IPv4 or IPv6 address"),
        (["--start-date", "13/13/2026"], "invalid --start-date '13/13/2026': month must be in 1..12"),
        (["--end-date", "tomorrow"], "invalid --end-date 'tomorrow': use ISO 8601 (2018-06-13, 2018-06-13T17:00, "
                                     '2018-06-13T17:00:00Z) or US short date (06/13/2018, "06/13/2018 5:00 PM")'),
        (["--now", "later"], "invalid --now 'later': use ISO 8601 (2018-06-13, 2018-06-13T17:00, "
                             '2018-06-13T17:00:00Z) or US short date (06/13/2018, "06/13/2018 5:00 PM")'),
        (["--timezone", "Mars/Olympus"],
         "unknown time zone 'Mars/Olympus': use an IANA name like Europe/Paris, UTC or an offset like +02:00"),
        (["--page", "0"], "invalid --page 0: use 1 to 1000"),
        (["--page", "1001"], "invalid --page 1001: use 1 to 1000"),
        (["--page-size", "0"], "invalid --page-size 0: use 1 to 5000"),
        (["--page-size", "5001"], "invalid --page-size 5001: use 1 to 5000"),
        (["--result-size", "0"], "invalid --result-size 0: use 1 to 5000"),
        (["--page", "x"], "Invalid value for '--page': 'x' is not a valid integer."),
        (["--start-date", "2026-06-14", "--end-date", "2026-06-13"],
         "--start-date 2026-06-14T00:00:00Z is after --end-date 2026-06-13T00:00:00Z"),
        (["--page", "2", "--result-size", "10"],
         "--page/--page-size (V1 paging) and --result-size/--starting-recipient-address (V2 paging) cannot be "
         "combined: use one or the other"),
        (["--starting-recipient-address", "a@b"],
         "--starting-recipient-address needs --end-date: the Received of the last row of the previous page"),
        (["--sender-address", "a*b@c"], "invalid address 'a*b@c': a * wildcard may only start or end it "
                                        "(*@contoso.com, john@*)"),
        (["--subject", "x", "--subject-filter-type", "Like"],
         "invalid --subject-filter-type 'Like': valid values are Contains, StartsWith, EndsWith"),
        (["--output", "parquet"], "--output parquet needs --out FILE"),
        (["--output", "xml"], "Invalid value for '--output': 'xml' is not one of 'table', 'csv', 'json', 'jsonl', "
                              "'parquet'."),
        (["--max-age-days", "-1"], "invalid --max-age-days -1: use 0 (no limit) or a number of days"),
        (["--bogus"], "No such option '--bogus'. Did you mean '--out'?"),
    ],
)  # fmt: skip
def test_errors_are_one_line(store: Path, args: list[str], message: str) -> None:
    r = trace(store, *args)
    assert r.exit_code != 0
    assert r.stdout == ""
    assert r.stderr == f"Error: {message}\n"


def test_missing_store_is_one_line(tmp_path: Path) -> None:
    r = trace(tmp_path / "nope")
    assert r.exit_code == 1
    assert r.stderr == f"Error: store '{tmp_path / 'nope'}' does not exist: pass --store DIR or set MSGTRACE_STORE\n"


def test_default_store_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("trace").stderr == (
        "Error: store 'data/store' does not exist: pass --store DIR or set MSGTRACE_STORE\n"
    )


def test_unreadable_store_file_is_one_line(store: Path) -> None:
    next_file(store, "messages", dt.date(2026, 6, 13)).write_bytes(b"PAR1 garbage")
    r = trace(store)
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.output
