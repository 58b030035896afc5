"""Direction (Inbound, Outbound, Local): each format's golden cases, the store's local domains, the filters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from msgtrace.api import message_trace_lazy
from msgtrace.cli import cli
from msgtrace.ingest.storeconfig import read_config
from tests.conftest import FIXTURES
from tests.helpers_store import msg, utc, write_store

FORMATS = ("postfix", "exim", "sendmail", "exchange")
# Logs that name no host (Exim mainlog, Exchange tracking logs) get the one their fixtures' mail is for;
# syslog lines name their own.
HOSTS = {"exim": ("--host", "mx.example.com"), "exchange": ("--host", "ex01.contoso.com")}
WIDE = {"start_date": "2000-01-01", "end_date": "2100-01-01", "max_age_days": 0, "timezone": "UTC"}


def invoke(*args: str) -> Result:
    env = {"MSGTRACE_NOW": None, "MSGTRACE_TZ": None, "MSGTRACE_STORE": None, "COLUMNS": "200"}
    return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)


def ingest(store: Path, *paths: Path, extra: tuple[str, ...] = ()) -> Result:
    res = invoke("ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", *extra, *map(str, paths))
    assert res.exit_code in (0, 1), res.output  # 1: a fixture of damaged lines
    return res


def directions(store: Path) -> list[dict[str, object]]:
    df = message_trace_lazy(store, **WIDE).collect()
    rows = df.select(
        "organization", "sender_address", "recipient_address", "status", "from_ip", "to_ip", "relay", "direction"
    )
    return sorted(rows.to_dicts(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


@pytest.mark.parametrize("fmt", FORMATS)
def test_direction_of_every_golden_case(fmt: str, tmp_path: Path, update_golden: bool) -> None:
    """Each format's fixture logs ingested as a user would; the Direction of every row, reviewed by eye."""
    logs = sorted(p for p in (FIXTURES / fmt).glob("*.log") if not p.name.startswith("malformed"))
    assert logs
    got: dict[str, list[dict[str, object]]] = {}
    for log in logs:
        store = tmp_path / log.stem
        ingest(store, log, extra=HOSTS.get(fmt, ()))
        got[log.stem] = directions(store)
    text = "".join(
        json.dumps({"case": case, **r}, ensure_ascii=False) + "\n" for case, rows in got.items() for r in rows
    )
    golden = FIXTURES / fmt / "directions.expected.jsonl"
    if update_golden:
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden.name}: run pytest --update-golden and review it"
    assert text == golden.read_text(encoding="utf-8")
    seen = {r["direction"] for rows in got.values() for r in rows}
    assert seen <= {"Inbound", "Outbound", "Local"}


ROWS = [
    # in from outside to a local mailbox (delivered here: no remote ToIP)
    msg(utc(2026, 6, 2, 10), "eve@outside.example", "bob@example.com", to_ip="", relay="virtual"),
    # out: a local sender to another domain
    msg(utc(2026, 6, 2, 11), "alice@example.com", "carol@fabrikam.example", to_ip="203.0.113.9", relay="mx.fabrikam"),
    # local: both ends here
    msg(utc(2026, 6, 2, 12), "alice@example.com", "bob@example.com", to_ip="", relay="local"),
    # a bounce the server wrote itself (no client): local sender, to outside
    msg(utc(2026, 6, 2, 13), "", "eve@outside.example", from_ip="", to_ip="198.51.100.5", relay="mx.outside"),
    # an outside client relaying to outside (refused): came in from outside
    msg(utc(2026, 6, 2, 14), "x@spam.example", "y@elsewhere.example", status="None", to_ip="", relay=None),
    # a reject of a local recipient (no delivery): the local domain makes it Inbound
    msg(utc(2026, 6, 2, 15), "eve@outside.example", "nobody@example.com", status="None", to_ip="", relay=None),
    # second domain of the same server
    msg(utc(2026, 6, 2, 16), "dan@sister.example", "zoe@outside.example", to_ip="198.51.100.6", relay="mx.outside"),
]
WINDOW = ["--start-date", "2026-06-01", "--end-date", "2026-06-03", "--timezone", "UTC", "--max-age-days", "0"]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path / "store", ROWS)


def trace_directions(store: Path, *args: str) -> list[tuple[str, str]]:
    res = invoke("trace", "--store", str(store), *WINDOW, "--output", "jsonl", *args)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert all(list(r)[-1] == "Direction" for r in rows)  # after the contract's columns
    return sorted((r["RecipientAddress"], r["Direction"]) for r in rows)


def test_inferred_from_the_organization_and_the_delivery(store: Path) -> None:
    assert trace_directions(store) == [
        ("bob@example.com", "Inbound"),
        ("bob@example.com", "Local"),
        ("carol@fabrikam.example", "Outbound"),
        ("eve@outside.example", "Outbound"),
        ("nobody@example.com", "Inbound"),
        ("y@elsewhere.example", "Inbound"),
        ("zoe@outside.example", "Inbound"),  # sister.example is not known yet
    ]


def test_local_domains_are_kept_in_the_store_and_rederive_old_rows(store: Path, tmp_path: Path) -> None:
    log = tmp_path / "empty.log"
    log.write_text("")
    res = ingest(store, log, extra=("--local-domains", "Example.com, sister.example"))
    assert "Local domains of" in res.output
    assert read_config(store)["local_domains"] == ["example.com", "sister.example"]
    # the same rows, nothing rewritten: dan@sister.example is local now
    assert ("zoe@outside.example", "Outbound") in trace_directions(store)
    # a later run without the option keeps them (the watcher and later ingests agree)
    ingest(store, log)
    assert read_config(store)["local_domains"] == ["example.com", "sister.example"]
    assert ("zoe@outside.example", "Outbound") in trace_directions(store)


def test_direction_filters_trace_summary_and_report(store: Path) -> None:
    assert trace_directions(store, "--direction", "outbound") == [
        ("carol@fabrikam.example", "Outbound"),
        ("eve@outside.example", "Outbound"),
    ]
    assert [d for _, d in trace_directions(store, "--direction", "Local,Inbound")] == [
        "Inbound", "Local", "Inbound", "Inbound", "Inbound"
    ]  # fmt: skip
    res = invoke("summary", "--store", str(store), *WINDOW, "--direction", "Inbound", "--output", "json")
    assert json.loads(res.stdout) == [{"Status": "Delivered", "Count": 2}, {"Status": "None", "Count": 2}]
    res = invoke("report", "--store", str(store), *WINDOW, "--direction", "Local", "--output", "json")
    rep = json.loads(res.stdout)
    assert rep["by_direction"] == [{"Direction": "Local", "Rows": 1, "Messages": 1, "Bytes": 1234}]
    assert rep["totals"] == [{"Status": "Delivered", "Rows": 1, "Messages": 1, "Bytes": 1234}]


@pytest.mark.parametrize("command", ["trace", "summary", "report"])
def test_bad_direction_is_one_error_line(store: Path, command: str) -> None:
    res = invoke(command, "--store", str(store), *WINDOW, "--direction", "Sideways")
    assert res.exit_code != 0
    assert res.output.strip().splitlines() == [
        "Error: invalid --direction 'Sideways': valid values are Inbound, Outbound, Local"
    ]


@pytest.mark.parametrize("value", ["not a domain", "a@b.example", "nodot", ","])
def test_bad_local_domains_are_one_error_line(tmp_path: Path, value: str) -> None:
    log = tmp_path / "empty.log"
    log.write_text("")
    res = invoke("ingest", "--store", str(tmp_path / "s"), "--local-domains", value, str(log))
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "--local-domains" in lines[0], res.output
    assert not (tmp_path / "s" / "_state" / "config.json").exists()
