"""Count by status (`query.status_counts`, `msgtrace summary`): exact counts, and the footer path
(per-file status counts in Parquet metadata) always equal to counting the rows a trace scans."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from msgtrace import status_counts
from msgtrace.ingest import schema
from msgtrace.ingest.pipeline import ingest_paths
from msgtrace.query import engine
from msgtrace.query.cli import cli
from msgtrace.query.filters import TraceFilter
from msgtrace.store import Store
from msgtrace.store import files as store_files
from tests.helpers_store import frame, msg, next_file, synthetic, utc, write_store
from tests.test_engine import spy_files
from tests.test_pipeline import OPTS, sample_lines

NOW = "2026-06-20T12:00:00Z"
WINDOW = {"start_date": "2026-06-10", "end_date": "2026-06-16", "now": NOW, "max_age_days": 0, "timezone": "UTC"}


def rows() -> list[dict[str, object]]:
    """Three days: 06-12 (3 rows), 06-13 (4 rows, two after noon), 06-14 (2 rows)."""
    return [
        msg(utc(2026, 6, 12, 8), "dave@fabrikam.com", "a@example.com", status="Pending"),
        msg(utc(2026, 6, 12, 9), "dave@fabrikam.com", "b@example.com"),
        msg(utc(2026, 6, 12, 23, 59, 59), "eve@contoso.com", "c@example.com", status="FilteredAsSpam"),
        msg(utc(2026, 6, 13, 0), "Alice@Example.com", "d@example.org"),
        msg(utc(2026, 6, 13, 10), "Alice@Example.com", "e@example.org", status="Failed"),
        msg(utc(2026, 6, 13, 12), "dave@fabrikam.com", "f@example.org", status="Failed"),
        msg(utc(2026, 6, 13, 18), "eve@contoso.com", "g@example.org"),
        msg(utc(2026, 6, 14, 9), "", "alice@example.com", status="None"),
        msg(utc(2026, 6, 14, 10), "dave@fabrikam.com", "h@example.com"),
    ]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path / "store", rows())


def as_dict(df: pl.DataFrame) -> dict[str | None, int]:
    return dict(df.iter_rows())


def scanned(store: Path, **params: object) -> dict[str | None, int]:
    """What counting the trace scan's rows gives: the reference the footer path must equal."""
    flt = TraceFilter.from_params(**{**WINDOW, **params})  # type: ignore[arg-type]
    return as_dict(engine.scan(store, flt).group_by("status").len().collect())


def write_without_counts(store: Path, df: pl.DataFrame) -> Path:
    """A messages file as written before status counts existed (only the columns and rows)."""
    day = df.get_column("received").dt.date()[0]
    path = next_file(store, schema.MESSAGES_DIR, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(df.select(list(schema.MESSAGE_SCHEMA)).to_arrow(), path)
    return path


# --- the metadata itself ----------------------------------------------------------------


def test_messages_files_record_their_status_counts(store: Path) -> None:
    files = sorted((store / "messages").glob("*/*.parquet"))
    counts = [store_files.status_counts_of(pl.read_parquet_metadata(f)) for f in files]
    assert counts == [{"Delivered": 1, "FilteredAsSpam": 1, "Pending": 1}, {"Delivered": 2, "Failed": 2},
                      {"Delivered": 1, "None": 1}]  # fmt: skip
    text = pl.read_parquet_metadata(files[0])[store_files.STATUS_COUNTS_KEY]
    assert text == '{"Delivered":1,"FilteredAsSpam":1,"Pending":1}'  # compact JSON


def test_events_files_carry_no_status_counts(tmp_path: Path) -> None:
    events = pl.DataFrame({"time": [utc(2026, 6, 13)], "status": ["Delivered"]}).pipe(
        schema.conform, schema.EVENT_SCHEMA
    )
    path = Store(tmp_path).events.write(utc(2026, 6, 13).date(), events)
    assert store_files.STATUS_COUNTS_KEY not in pl.read_parquet_metadata(path)


def test_metadata_for_a_streamed_write(tmp_path: Path) -> None:
    lf = frame(rows()).lazy()
    counts = lf.group_by("status").len().collect()
    lf.sink_parquet(tmp_path / "s.parquet", metadata=store_files.status_counts_metadata(counts))
    got = store_files.status_counts_of(pl.read_parquet_metadata(tmp_path / "s.parquet"))
    assert got == {"Pending": 1, "Delivered": 4, "FilteredAsSpam": 1, "Failed": 2, "None": 1}


def test_null_status_or_malformed_metadata_means_no_counts() -> None:
    counts = pl.DataFrame({"status": ["Delivered", None], "len": [2, 1]})
    assert store_files.status_counts_metadata(counts) == {}
    for text in ("not json", "[1, 2]", '{"Delivered": -1}', '{"Delivered": 1.5}', '{"Delivered": true}'):
        assert store_files.status_counts_of({store_files.STATUS_COUNTS_KEY: text}) is None
    assert store_files.status_counts_of({}) is None


# --- counts -------------------------------------------------------------------------------


def test_exact_counts_in_contract_order(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = spy_files(monkeypatch)  # files whose rows are read
    df = status_counts(store, **WINDOW)
    assert df.schema == pl.Schema({"Status": pl.String, "Count": pl.Int64})
    assert df.rows() == [("Pending", 1), ("Delivered", 4), ("Failed", 2), ("FilteredAsSpam", 1), ("None", 1)]
    assert opened == []  # whole days, no other filter: footers only


def test_every_status_in_contract_order(tmp_path: Path) -> None:
    write_store(tmp_path, synthetic(2000, utc(2026, 6, 12), 3))
    df = status_counts(tmp_path, **WINDOW)
    assert df.get_column("Status").to_list() == list(schema.STATUSES)
    assert as_dict(df) == scanned(tmp_path)


def test_partial_days_at_the_edges_are_scanned(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = spy_files(monkeypatch)
    window = {"start_date": "2026-06-12T09:00:00Z", "end_date": "2026-06-13T12:00:00Z"}
    df = status_counts(store, **{**WINDOW, **window})
    # 06-12 from 09:00 on, 06-13 before noon
    assert df.rows() == [("Delivered", 2), ("Failed", 1), ("FilteredAsSpam", 1)]
    assert {f.parent.name for f in opened} == {"date=2026-06-12", "date=2026-06-13"}
    assert as_dict(df) == scanned(store, **window)


def test_whole_days_inside_a_cut_window_use_footers(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = spy_files(monkeypatch)
    window = {"start_date": "2026-06-12T12:00:00Z", "end_date": "2026-06-14T10:00:00Z"}
    df = status_counts(store, **{**WINDOW, **window})
    assert df.rows() == [("Delivered", 2), ("Failed", 2), ("FilteredAsSpam", 1), ("None", 1)]
    assert {f.parent.name for f in opened} == {"date=2026-06-12", "date=2026-06-14"}
    assert as_dict(df) == scanned(store, **window)


def test_window_in_another_zone_is_not_whole_utc_days(store: Path) -> None:
    params = {**WINDOW, "timezone": "+02:00"}  # 06-10 00:00 +02:00 is 06-09 22:00 UTC
    assert as_dict(status_counts(store, **params)) == scanned(store, timezone="+02:00")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"sender_address": "dave@fabrikam.com"}, [("Pending", 1), ("Delivered", 2), ("Failed", 1)]),
        ({"sender_address": "*@example.com"}, [("Delivered", 1), ("Failed", 1)]),
        ({"recipient_address": "*@example.org", "status": "Failed,None"}, [("Failed", 2)]),
        ({"sender_address": "<>"}, [("None", 1)]),
        ({"subject": "nothing like it"}, []),
    ],
)
def test_other_filters_count_the_trace_rows(
    store: Path, params: dict[str, object], expected: list[tuple[str, int]]
) -> None:
    df = status_counts(store, **{**WINDOW, **params})
    assert df.rows() == expected
    assert as_dict(df) == scanned(store, **params)


def test_footers_equal_scan_with_superseded_rows_and_old_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = write_store(tmp_path, rows())
    # 06-13: a message changes state in a later run: an append file supersedes its old rows
    pending = msg(utc(2026, 6, 13, 10), "Alice@Example.com", "e@example.org", status="Delivered")
    written = Store(store).messages.replace(
        frame([pending]), pl.col("recipient_address") == "e@example.org", {utc(2026, 6, 13).date()}
    )
    assert written == 1 and Store(store).messages.has_deletes(utc(2026, 6, 13).date())
    # 06-14: one more file written before status counts existed
    write_without_counts(store, frame([msg(utc(2026, 6, 14, 11), "old@example.com", "i@example.com", status="Failed")]))
    # 06-15: only a file without counts
    write_without_counts(store, frame([msg(utc(2026, 6, 15, 1), "old@example.com", "j@example.com")]))

    opened = spy_files(monkeypatch)
    df = status_counts(store, **WINDOW)
    assert df.rows() == [("Pending", 1), ("Delivered", 6), ("Failed", 2), ("FilteredAsSpam", 1), ("None", 1)]
    assert {f.parent.name for f in opened} == {"date=2026-06-13", "date=2026-06-14", "date=2026-06-15"}
    monkeypatch.undo()
    assert as_dict(df) == scanned(store)


def test_an_append_file_with_deletes_that_hit_nothing_current(tmp_path: Path) -> None:
    # the oldest current file's deletes concern files already replaced: the footers still tell
    table, day = Store(tmp_path).messages, utc(2026, 6, 13).date()
    table.write(day, frame(rows()[3:7]), ["gone"])
    assert table.status_counts(table.current_files(day)) == {"Delivered": 2, "Failed": 2}
    assert as_dict(status_counts(tmp_path, **WINDOW)) == scanned(tmp_path)


def test_empty_window_and_empty_store(store: Path, tmp_path: Path) -> None:
    empty = status_counts(store, **{**WINDOW, "start_date": "2026-06-01", "end_date": "2026-06-02"})
    assert empty.height == 0 and empty.columns == ["Status", "Count"]
    (tmp_path / "none" / "messages").mkdir(parents=True)  # a store nothing was ingested into yet
    assert status_counts(tmp_path / "none", **WINDOW).height == 0


def test_ingested_store_footers_equal_scan(tmp_path: Path) -> None:
    """The real writers (ingest in two runs, so later lines change earlier messages) record counts."""
    lines = sample_lines()
    log, root = tmp_path / "mail.log", tmp_path / "store"
    for upto in (len(lines) // 2, len(lines)):
        log.write_text("".join(lines[:upto]))
        ingest_paths([str(log)], root, OPTS)
    files = list((root / schema.MESSAGES_DIR).glob("*/*.parquet"))
    assert files and all(store_files.STATUS_COUNTS_KEY in pl.read_parquet_metadata(f) for f in files)
    df = status_counts(root, **WINDOW)
    assert df.get_column("Count").sum() > 0
    assert as_dict(df) == scanned(root)


# --- msgtrace summary ---------------------------------------------------------------------


def invoke(*args: str) -> Result:
    env = {"MSGTRACE_NOW": NOW, "MSGTRACE_TZ": "UTC", "COLUMNS": "120", "MSGTRACE_STORE": None}
    return CliRunner(env=env).invoke(cli, ["summary", *args], catch_exceptions=False)


def test_cli_table(store: Path) -> None:
    r = invoke("--store", str(store), "--start-date", "2026-06-10", "--end-date", "2026-06-16", "--max-age-days", "0")
    assert (r.exit_code, r.stderr) == (0, "")
    assert r.stdout.splitlines() == [
        "Status          Count",
        "--------------  -----",
        "Pending         1",
        "Delivered       4",
        "Failed          2",
        "FilteredAsSpam  1",
        "None            1",
    ]


def test_cli_formats_and_filters(store: Path) -> None:
    base = ["--store", str(store), "--start-date", "2026-06-12", "--end-date", "2026-06-15", "--max-age-days", "0"]
    r = invoke(*base, "--sender-address", "DAVE@fabrikam.com", "--output", "json")
    assert json.loads(r.stdout) == [
        {"Status": "Pending", "Count": 1},
        {"Status": "Delivered", "Count": 2},
        {"Status": "Failed", "Count": 1},
    ]
    r = invoke(*base, "--status", "failed", "--output", "jsonl")
    assert r.stdout == '{"Status":"Failed","Count":2}\n'
    r = invoke(*base, "--recipient-address", "*@example.com", "--output", "csv")
    assert r.stdout == "Status,Count\nPending,1\nDelivered,2\nFilteredAsSpam,1\nNone,1\n"


def test_cli_nothing_found(store: Path) -> None:
    r = invoke("--store", str(store), "--sender-address", "nobody@example.com")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "No messages found.\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "Lost"], "Error: invalid --status 'Lost': valid values are GettingStatus"),
        (["--start-date", "tomorrow"], "Error: invalid --start-date 'tomorrow'"),
        (["--start-date", "2026-01-01"], "Error: --start-date 2026-01-01T00:00:00Z is older than the 10-day limit"),
        (["--output", "parquet"], "Error: Invalid value for '--output'"),
        (["--page", "2"], "Error: No such option '--page'"),
    ],
)
def test_cli_bad_input_is_one_line(store: Path, args: list[str], message: str) -> None:
    r = invoke("--store", str(store), *args)
    assert r.exit_code != 0 and r.stdout == ""
    assert r.stderr.startswith(message) and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.output


def test_cli_missing_store(tmp_path: Path) -> None:
    r = invoke("--store", str(tmp_path / "nope"))
    assert r.exit_code == 1
    assert (
        r.stderr == f"Error: store {str(tmp_path / 'nope')!r} does not exist: pass --store DIR or set MSGTRACE_STORE\n"
    )


def test_cli_listed_in_help() -> None:
    r = CliRunner().invoke(cli, ["--help"])
    assert "summary" in r.output
