"""A damaged Parquet file (truncated, random bytes, zero bytes): queries name it in one line,
`status` lists it, `compact` rebuilds a messages file from the events table and moves the bad
file aside; a damaged events file is reported with the sources it held (issue 11, item 4)."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from msgtrace.query.cli import cli
from msgtrace.store import Store

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
ENV = {"MSGTRACE_NOW": "2026-06-14T12:00:00Z", "MSGTRACE_TZ": "UTC", "MSGTRACE_STORE": None}
WINDOW = ["--start-date", "2026-06-11", "--end-date", "2026-06-15"]
DAY = "2026-06-13"


def run(*args: str) -> Result:
    return CliRunner(env=ENV).invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("ingested") / "store"
    r = run("ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", str(SAMPLE))
    assert r.exit_code == 0, r.output
    return store


@pytest.fixture
def store(ingested: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(ingested, copy)
    return copy


def damage(path: Path, how: str) -> None:
    body = path.read_bytes()
    if how == "truncated":
        path.write_bytes(body[: len(body) // 2])
    elif how == "random":
        path.write_bytes(random.Random(7).randbytes(len(body)))
    else:
        path.write_bytes(b"")


def only_file(store: Path, table: str, day: str = DAY) -> Path:
    files = Store(store).table(table).current_files(dt.date.fromisoformat(day))
    assert len(files) == 1
    return files[0]


def trace_rows(store: Path) -> str:
    r = run("trace", "--store", str(store), *WINDOW, "--output", "jsonl")
    assert r.exit_code == 0, r.output
    return r.stdout


HOW = ["truncated", "random", "zero-byte"]


@pytest.mark.parametrize("how", HOW)
def test_damaged_messages_file_is_named_in_one_line(store: Path, how: str) -> None:
    bad = only_file(store, "messages")
    damage(bad, how)
    for command in (["trace"], ["summary"]):
        r = run(*command, "--store", str(store), *WINDOW)
        assert r.exit_code == 1
        assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"Error: damaged store file {bad} (")
        assert r.stderr.endswith(f"run `msgtrace compact --store {store}` to rebuild it from the events table\n")
        assert "ComputeError" not in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize("how", HOW)
def test_status_lists_damaged_files(store: Path, how: str) -> None:
    bad = only_file(store, "messages")
    damage(bad, how)
    damage(only_file(store, "events", "2026-06-12"), how)
    r = run("status", "--store", str(store))
    assert r.exit_code == 0, r.output
    assert "Damaged files (2; their rows are not counted above):" in r.stdout
    assert f"damaged store file {bad} (" in r.stdout
    assert "its events of 2026-06-12 are lost (from " in r.stdout and "mail.log.1.gz (lines 1-" in r.stdout
    report = json.loads(run("status", "--store", str(store), "--json").stdout)
    assert [(d["table"], d["day"]) for d in report["damaged"]] == [("messages", DAY), ("events", "2026-06-12")]


@pytest.mark.parametrize("how", HOW)
def test_compact_rebuilds_a_damaged_messages_file_from_events(store: Path, how: str) -> None:
    before = trace_rows(store)
    bad = only_file(store, "messages")
    damage(bad, how)
    r = run("compact", "--store", str(store))
    assert r.exit_code == 0, r.output
    assert f"message rows of {DAY} from the events table; moved damaged {bad}" in r.stderr
    assert (store / "_damaged" / "messages" / f"date={DAY}" / bad.name).exists()
    assert trace_rows(store) == before  # the same rows, ids included
    assert "Damaged" not in run("status", "--store", str(store)).stdout


def test_compact_moves_a_damaged_events_file_aside_and_says_what_is_lost(store: Path) -> None:
    before = trace_rows(store)
    bad = only_file(store, "events")
    damage(bad, "truncated")
    r = run("compact", "--store", str(store))
    assert r.exit_code == 1
    assert f"Moved damaged events file {bad} (" in r.stderr and f"its events of {DAY} are lost" in r.stderr
    assert "mail.log (lines 1-" in r.stderr
    assert r.stderr.endswith("Error: 1 damaged files held data the store could not rebuild: see above\n")
    assert (store / "_damaged" / "events" / f"date={DAY}" / bad.name).exists()
    assert trace_rows(store) == before  # the messages of that day keep their rows


def test_detail_names_a_damaged_events_file(store: Path) -> None:
    row = json.loads(trace_rows(store).splitlines()[0])
    bad = only_file(store, "events", row["Received"][:10])
    damage(bad, "zero-byte")
    r = run("detail", "--store", str(store), *WINDOW, "--message-trace-id", row["MessageTraceId"],
            "--recipient-address", row["RecipientAddress"] or "<>")  # fmt: skip
    assert r.exit_code == 1
    assert r.stderr.startswith(f"Error: damaged store file {bad} (empty file): its events of ")


def test_ingest_into_a_store_with_a_damaged_events_file_is_one_line(store: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(SAMPLE, logs)
    with (logs / "mail.log").open("a") as f:  # a new line of a message whose events are stored on that day
        f.write(
            "Jun 14 11:00:00 mx1 postfix/qmgr[3]: 3AA11F0: from=<zed@example.com>, size=9, nrcpt=1 (queue active)\n"
        )
    bad = only_file(store, "events")
    damage(bad, "zero-byte")
    r = CliRunner(env=ENV).invoke(
        cli, ["ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", str(logs)]
    )
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.exception  # not a traceback
    assert r.stderr.startswith(f"Error: damaged store file {bad} (empty file): its events of {DAY} are lost")
    assert r.stderr.count("\n") == 1
    assert run("compact", "--store", str(store)).exit_code == 1  # moved aside, loss reported
    r = run("ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", str(logs))
    assert r.exit_code == 0 and "1 lines" in r.stdout, r.output
