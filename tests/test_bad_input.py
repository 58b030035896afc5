"""Bad input gets one line naming the option and what to do: no traceback, no exception name,
no filter silently dropped (issue 11, items 6-8 and 10)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result

from msgtrace import QueryError, message_trace, status_counts
from msgtrace.cli import cli
from msgtrace.cli.errors import option_spelling
from msgtrace.store import StoreError, StoreLock
from tests.helpers_store import msg, utc, write_store

NOW = "2026-06-14T12:00:00Z"
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(
        tmp_path / "store",
        [
            msg(utc(2026, 6, 13, 10), "alice@example.com", "bob@example.org"),
            msg(utc(2026, 6, 13, 11), "eve@contoso.com", "bob@example.org", subject="=HYPERLINK(\x1b]8;;x\x07)",
                status="FilteredAsSpam"),
        ],
    )  # fmt: skip


def run(*args: str) -> Result:
    env = {"MSGTRACE_NOW": NOW, "MSGTRACE_TZ": "UTC", "MSGTRACE_STORE": None}
    return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)


def one_line_error(r: Result) -> str:
    assert r.exit_code != 0, r.output
    assert r.stdout == ""
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr and "Error: " not in r.stderr[7:], r.stderr
    return r.stderr[len("Error: ") : -1]


EMPTY_FILTERS = [
    (["--message-trace-id", ""], "invalid --message-trace-id '': expected a GUID like"),
    (["--from-ip", ""], "invalid --from-ip '': expected an IPv4 or IPv6 address"),
    (["--to-ip", ""], "invalid --to-ip '': expected an IPv4 or IPv6 address"),
    (["--status", ""], "--status '' has no value in it: give a value, or leave the option out"),
    (["--status", ",,,"], "--status ',,,' has no value in it: give a value, or leave the option out"),
    (["--sender-address", " "], "--sender-address ' ' has no value in it"),
    (["--recipient-address", ","], "--recipient-address ',' has no value in it"),
    (["--message-id", ""], "--message-id '' has no value in it"),
    (["--subject", ""], "--subject '' has no value in it"),
    (["--subject-filter-type", "StartsWith"],
     "--subject-filter-type StartsWith needs --subject TEXT: it says how the subject matches"),
]  # fmt: skip


@pytest.mark.parametrize("command", ["trace", "summary"])
@pytest.mark.parametrize(("args", "message"), EMPTY_FILTERS)
def test_empty_filter_values_are_errors_not_every_row(store: Path, command: str, args: list[str], message: str) -> None:
    assert one_line_error(run(command, "--store", str(store), *args)).startswith(message)


@pytest.mark.parametrize(("args", "message"), EMPTY_FILTERS)
def test_empty_filter_values_raise_query_error_in_python(store: Path, args: list[str], message: str) -> None:
    """The library names the parameter (sender_address); the CLI's words come from the same error."""
    param = args[0][2:].replace("-", "_")
    for call in (message_trace, status_counts):
        with pytest.raises(QueryError) as e:
            call(store, **{param: args[1], "now": NOW, "timezone": "UTC"})
        assert param in str(e.value) and "--" not in str(e.value), str(e.value)
        assert e.value.render(option_spelling).startswith(message)


def test_empty_trace_id_in_detail_is_an_error(store: Path) -> None:
    r = run("detail", "--store", str(store), "--message-trace-id", "", "--recipient-address", "bob@example.org")
    assert one_line_error(r).startswith("invalid --message-trace-id '': expected a GUID")


def test_store_that_is_a_file_is_not_said_missing(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    for command in ("trace", "summary"):
        assert one_line_error(run(command, "--store", str(f))) == (
            f"store '{f}' is a file, not a directory: pass --store DIR (a msgtrace store)"
        )


def test_empty_folder_is_not_a_store(tmp_path: Path) -> None:
    for command in ("trace", "summary"):
        assert one_line_error(run(command, "--store", str(tmp_path))) == (
            f"'{tmp_path}' is not a msgtrace store (it has no messages/ or events/ folder): "
            "pass the directory `msgtrace ingest --store` wrote, or ingest logs into it first"
        )
    assert one_line_error(run("trace", "--store", "")) == (
        "--store is empty: pass --store DIR (a msgtrace store) or set MSGTRACE_STORE"
    )
    with pytest.raises(QueryError, match="is not a msgtrace store"):
        message_trace(tmp_path, now=NOW)


def test_huge_max_age_days_is_one_line(store: Path) -> None:
    for days in ("99999999999999999999", "900000"):
        assert one_line_error(run("trace", "--store", str(store), "--max-age-days", days)) == (
            f"invalid --max-age-days {days}: too large; use 0 to lift the limit"
        )


def test_out_into_missing_folder_names_the_option(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "nope" / "x.csv"
    assert one_line_error(run("trace", "--store", str(store), "--output", "csv", "--out", str(out))) == (
        f"--out {out}: the folder {out.parent} does not exist; create it first or choose another path"
    )


def test_generate_days_out_of_range_is_one_line(tmp_path: Path) -> None:
    msg_ = one_line_error(run("generate", "--days", "1e308", str(tmp_path / "x.log")))
    assert msg_ == "Invalid value for '--days': 1e+308 is not in the range 0<x<=3660."


def test_rejects_to_unwritable_path_names_the_option(tmp_path: Path) -> None:
    bad = tmp_path / "missing" / "rejects.txt"
    r = run("ingest", "--store", str(tmp_path / "s"), "--timezone", "UTC", "--rejects", str(bad), str(SAMPLE))
    assert one_line_error(r) == (
        f"--rejects {bad}: cannot write it (No such file or directory); choose a file in a folder you may write"
    )


def test_compact_when_the_lock_cannot_be_opened(tmp_path: Path, writer_name: str) -> None:
    (tmp_path / "messages").mkdir()
    # as root a permission cannot be taken away; a folder cannot be opened either
    (tmp_path / "_state" / "writers" / writer_name / ".lock").mkdir(parents=True)  # the CLI's writer's
    (tmp_path / ".lock").mkdir()  # the default writer's (the library's)
    assert one_line_error(run("compact", "--store", str(tmp_path))) == (
        f"--store {tmp_path}: cannot open its lock file .lock (Is a directory); "
        "run as a user who may write the store, or fix its permissions"
    )
    with pytest.raises(StoreError) as e, StoreLock(tmp_path):  # the library names its parameter
        pass
    assert str(e.value).startswith(f"store {tmp_path}: cannot open its lock file .lock (Is a directory); ")


def test_csv_replaces_control_characters_and_keeps_formula_guard(store: Path) -> None:
    r = run("trace", "--store", str(store), "--output", "csv", "--status", "FilteredAsSpam")
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    row = pl.read_csv(r.stdout.encode()).row(0, named=True)
    assert row["Subject"] == "'=HYPERLINK(\\x1b]8;;x\\x07)"


@pytest.mark.parametrize(
    "command", [["trace"], ["summary"], ["detail", "--message-trace-id", "0190a5b2-3c4d-7e5f-8a6b-1c2d3e4f5a6b"],
                ["compact"], ["status"]],
    ids=lambda c: c[0],
)  # fmt: skip
def test_missing_store_is_one_message_in_every_command(tmp_path: Path, command: list[str]) -> None:
    """compact and status said `store X does not exist`, the queries `store 'X' does not exist: ...`;
    now every command and the Python API share msgtrace.storepath.existing_store."""
    missing = tmp_path / "nope"
    assert one_line_error(run(*command, "--store", str(missing))) == (
        f"store '{missing}' does not exist: pass --store DIR or set MSGTRACE_STORE"
    )
    with pytest.raises(QueryError) as e:
        status_counts(missing, now=NOW)
    assert str(e.value) == f"store '{missing}' does not exist: pass store=DIR or set MSGTRACE_STORE"


def test_typed_braces_are_not_read_as_parameter_names(store: Path) -> None:
    """QueryError's template names parameters as {name}; a value the user typed is never a template."""
    message = one_line_error(run("trace", "--store", str(store), "--status", "{now}"))
    assert message.startswith("invalid --status '{now}': valid values are GettingStatus")
    with pytest.raises(QueryError) as e:
        message_trace(store, now=NOW, timezone="UTC", from_ip="{start_date} {")
    assert str(e.value) == "invalid from_ip '{start_date} {': expected an IPv4 or IPv6 address"
