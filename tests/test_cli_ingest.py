"""`msgtrace ingest` and `msgtrace compact` from the command line, as a new user runs them."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from msgtrace.cli import cli
from msgtrace.cli import ingest as ingest_cli
from msgtrace.cli import options as cli_options
from msgtrace.ingest import formats
from msgtrace.store import Store, StoreLock
from tests.conftest import TEST_WRITER

LOG = """\
Jun 13 10:00:00 mx1.example.org postfix/smtpd[100]: 3F1A22C01: client=mail.example.com[192.0.2.10]
Jun 13 10:00:01 mx1.example.org postfix/cleanup[101]: 3F1A22C01: message-id=<a1@example.com>
Jun 13 10:00:01 mx1.example.org postfix/qmgr[102]: 3F1A22C01: from=<alice@example.com>, size=1234, nrcpt=1 (queue active)
Jun 13 10:00:02 mx1.example.org postfix/smtp[103]: 3F1A22C01: to=<bob@example.net>, relay=mx.example.net[203.0.113.7]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=4.4.1, status=deferred (connect timed out)
"""
LATER = """\
Jun 13 11:00:02 mx1.example.org postfix/smtp[103]: 3F1A22C01: to=<bob@example.net>, relay=mx.example.net[203.0.113.7]:25, delay=3601, delays=3600/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok)
Jun 13 11:00:02 mx1.example.org postfix/qmgr[102]: 3F1A22C01: removed
this line is not syslog at all
"""
NOW = "2026-06-14T00:00:00Z"


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def rows(store: Path) -> list[dict]:
    res = run("trace", "--store", str(store), "--now", NOW, "--timezone", "UTC", "--output", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def ingest(store: Path, *paths: Path, extra: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return run("ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", *extra, *map(str, paths))


def test_ingest_then_trace_then_later_file_updates_in_place(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text(LOG)
    store = tmp_path / "store"
    res = ingest(store, log)
    assert res.exit_code == 0
    assert res.stdout.startswith("Ingested 1 files, 4 lines (0 unknown), 1 messages, 1 rows in ")
    [row] = rows(store)
    assert (row["SenderAddress"], row["RecipientAddress"], row["Status"]) == (
        "alice@example.com",
        "bob@example.net",
        "Pending",
    )
    assert (row["FromIP"], row["ToIP"], row["Size"], row["MessageId"]) == (
        "192.0.2.10",
        "203.0.113.7",
        1234,
        "<a1@example.com>",
    )
    assert row["Received"] == "2026-06-13T10:00:00Z"
    trace_id = row["MessageTraceId"]

    # the log grows: the deferral is delivered; the same row turns Delivered, no duplicate
    log.write_text(LOG + LATER)
    res = ingest(store, log)
    assert res.exit_code == 0
    assert "1 unknown" in res.stdout
    assert "this line is not syslog at all" in res.stderr
    [row] = rows(store)
    assert (row["Status"], row["MessageTraceId"]) == ("Delivered", trace_id)
    files = list((store / "messages" / "date=2026-06-13").glob("*.parquet"))
    assert len(files) == 1

    # re-ingesting adds nothing
    res = ingest(store, log)
    assert "0 lines" in res.stdout
    assert len(rows(store)) == 1


def test_rotated_gz_series_and_rejects_file(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    with gzip.open(logs / "mail.log.1.gz", "wt") as f:
        f.write(LOG)
    (logs / "mail.log").write_text(LATER)
    store = tmp_path / "store"
    rejects = tmp_path / "rejects.txt"
    res = ingest(store, logs, extra=("--rejects", str(rejects)))
    assert res.exit_code == 0, res.output
    [row] = rows(store)
    assert row["Status"] == "Delivered"
    assert rejects.read_text() == f"{logs / 'mail.log'}:3: this line is not syslog at all\n"


def test_out_of_order_ingest_gives_the_same_rows(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text(LOG)
    b.write_text(LATER)
    ingest(tmp_path / "s1", a, b)
    ingest(tmp_path / "s2", b)
    ingest(tmp_path / "s2", a)
    assert rows(tmp_path / "s1") == rows(tmp_path / "s2")
    assert rows(tmp_path / "s2")[0]["Status"] == "Delivered"


def test_unknown_format_file_is_named_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    (tmp_path / "mail.log").write_text(LOG)
    res = ingest(tmp_path / "store", tmp_path / "notes.txt", tmp_path / "mail.log")
    assert res.exit_code == 0
    assert f"Skipped {tmp_path / 'notes.txt'}: not a known mail log format." in res.stderr
    assert "Ingested 1 files" in res.stdout


def test_errors_are_one_line(tmp_path: Path) -> None:
    res = run("ingest", "--store", str(tmp_path / "s"), str(tmp_path / "missing.log"))
    assert res.exit_code == 1
    assert res.output == f"Error: no such file or directory: {tmp_path / 'missing.log'}\n"
    (tmp_path / "m.log").write_text(LOG)
    res = run("ingest", "--store", str(tmp_path / "s"), "--timezone", "Mars/Olympus", str(tmp_path / "m.log"))
    assert res.exit_code == 1
    assert res.output.startswith("Error: unknown time zone 'Mars/Olympus'")
    res = run("compact", "--store", str(tmp_path / "nope"))
    assert res.output == (  # the message of every command that reads a store (msgtrace.storepath)
        f"Error: store '{tmp_path / 'nope'}' does not exist: pass --store DIR or set MSGTRACE_STORE\n"
    )


def test_a_parser_failure_rejects_its_line_and_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser failure used to stop the file at its chunk for good (every re-run failed there)."""
    from msgtrace.ingest.formats import postfix

    (tmp_path / "m.log").write_text(LOG + LATER)
    make_options = ingest_cli.make_options

    def small_chunks(*args: object) -> object:
        options = make_options(*args)
        options.chunk_bytes = len(LOG.encode())  # lines 1-4, then 5-7
        return options

    monkeypatch.setattr(ingest_cli, "make_options", small_chunks)
    parse = postfix.parse

    def fails_on_removed(lines: pl.DataFrame, ctx: object) -> object:
        if lines.get_column("line").str.contains("removed").any():
            raise pl.exceptions.ComputeError("conversion from `str` to `i64` failed\nmore detail")
        return parse(lines, ctx)

    monkeypatch.setattr(postfix, "parse", fails_on_removed)
    res = run("ingest", "--store", str(tmp_path / "s"), "--year", "2026", str(tmp_path / "m.log"))
    assert res.exit_code == 1
    assert (
        f"Warning: {tmp_path / 'm.log'}:6 could not be parsed as postfix (conversion from `str` to `i64` "
        "failed); add --rejects FILE to keep such lines\n"
    ) in res.stderr
    assert "7 lines (1 unknown)" in res.stdout
    assert [r["Status"] for r in rows(tmp_path / "s")] == ["Delivered"]  # lines 1-5 and 7 are stored
    monkeypatch.setattr(postfix, "parse", parse)
    res = run("ingest", "--store", str(tmp_path / "s"), "--year", "2026", str(tmp_path / "m.log"))
    assert res.exit_code == 0 and "0 lines" in res.output  # nothing left to retry


def test_a_writer_in_use_is_refused_and_another_writer_runs_beside_it(tmp_path: Path) -> None:
    (tmp_path / "m.log").write_text(LOG)
    store = tmp_path / "s"
    with StoreLock(Store(store, writer="mx1")):
        res = ingest(store, tmp_path / "m.log", extra=("--writer", "mx1"))
        beside = ingest(store, tmp_path / "m.log", extra=("--writer", "mx2"))
    assert res.exit_code == 1
    assert res.output.startswith(
        f"Error: --store {store}: writer mx1 is in use by msgtrace process {os.getpid()}; stop it first, "
        "or give this process another --writer"
    )
    assert beside.exit_code == 0, beside.output
    assert len(rows(store)) == 1


def test_a_bad_writer_name_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "m.log").write_text(LOG)
    res = ingest(tmp_path / "s", tmp_path / "m.log", extra=("--writer", "mx/1"))
    assert res.exit_code == 1 and res.output.startswith("Error: --writer 'mx/1': a writer's name is 1 to 63")


def test_compact_merges_files_and_keeps_rows(tmp_path: Path) -> None:
    store = tmp_path / "s"
    for i in range(3):
        p = tmp_path / f"m{i}.log"
        p.write_text(LOG.replace("3F1A22C01", f"3F1A22C0{i + 2}"))
        ingest(store, p)
    part = store / "messages" / "date=2026-06-13"
    assert len(list(part.glob("*.parquet"))) == 3
    before = rows(store)
    res = run("compact", "--store", str(store))
    assert res.exit_code == 0 and res.stdout == "Compacted 2 partitions; counted 1 days for msgtrace report.\n"
    assert [p.name for p in part.glob("*.parquet")] == [f"g000004-c.{TEST_WRITER}.parquet"]
    assert rows(store) == before
    again = run("compact", "--store", str(store))  # nothing new: the counts are still those of the day
    assert again.stdout == "Compacted 0 partitions; counted 0 days for msgtrace report.\n"
    assert pl.read_parquet(next(part.glob("*.parquet"))).height == 3


def test_cli_format_names_match_the_parsers() -> None:
    assert set(cli_options.FORMAT_NAMES) == set(formats.FORMAT_NAMES)


def test_unknown_line_samples_are_neutralised_on_the_terminal(tmp_path: Path) -> None:
    log = tmp_path / "m.log"
    log.write_text(LOG + "evil \x1b[2J line \u202ereversed\n")
    res = ingest(tmp_path / "s", log)
    assert "evil \\x1b[2J line \\u202ereversed" in res.stderr
    assert "\x1b" not in res.stderr and "\u202e" not in res.stderr
