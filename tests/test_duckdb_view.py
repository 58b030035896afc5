"""The DuckDB view (msgtrace.duckdb) gives the rows `msgtrace trace` gives: each message once,
superseded rows dropped, before and after compaction, and the partitions a `date` filter names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from msgtrace.api import message_trace
from msgtrace.duckdb import connect, main, view_sql
from msgtrace.errors import QueryError
from msgtrace.store import Store
from tests.conftest import TEST_WRITER
from tests.helpers_generated import NOW, superseding_store

START, END = "2026-06-01T06:00:00Z", "2026-06-02T18:00:00Z"
KEY = ["message_trace_id", "recipient_address"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return superseding_store(tmp_path_factory.mktemp("duck"))


def trace_rows(store: Path) -> pl.DataFrame:
    rows = message_trace(store, start_date=START, end_date=END, now=NOW)
    return rows.select(
        pl.col("MessageTraceId").alias("message_trace_id"),
        pl.col("RecipientAddress").alias("recipient_address"),
        pl.col("Status").alias("status"),
        pl.col("Received").alias("received"),
        pl.col("ToIP").alias("to_ip"),
    ).sort(KEY)


def view_rows(store: Path) -> pl.DataFrame:
    con = connect(store)
    sql = f"""SELECT message_trace_id, recipient_address, status, received, coalesce(to_ip, '') AS to_ip
              FROM messages WHERE received >= TIMESTAMPTZ '{START}' AND received < TIMESTAMPTZ '{END}'"""
    con.execute("SET TimeZone = 'UTC'")
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    df = pl.DataFrame(cur.fetchall(), schema=names, orient="row")
    return (
        df.with_columns(pl.col("received").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
        .sort(KEY)
        .with_columns(pl.col("received").dt.convert_time_zone("UTC"))
        .sort(KEY)
    )


def test_the_view_gives_the_trace_rows_with_superseded_rows_dropped(store: Path) -> None:
    table = Store(store).messages
    assert any(table.has_deletes(d) for d in table.days()), "the fixture must hold superseded rows"
    expected = trace_rows(store)
    assert expected.height > 100
    got = view_rows(store)
    assert got.filter(pl.struct(KEY).is_duplicated()).height == 0
    assert got.equals(expected)
    # not vacuous: the files hold more rows in the window than a trace shows
    glob = store / "messages" / "date=*" / "*.parquet"
    raw = connect(store).execute(
        f"SELECT count(*) FROM read_parquet('{glob}') WHERE received >= TIMESTAMPTZ '{START}' AND received < TIMESTAMPTZ '{END}'"
    )
    assert raw.fetchone()[0] > expected.height  # type: ignore[index]


def test_the_view_follows_a_compaction_and_its_leftovers(store: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    table = Store(copy, writer=TEST_WRITER).messages  # the writer whose files these are compacts them
    expected = trace_rows(copy)
    day = table.days()[0]
    old = table.current_files(day)
    table.write(day, table.scan([day]).collect(), complete=True)  # as a compaction writes it...
    assert all(f.exists() for f in old)  # ...before it deletes the files it replaces
    assert view_rows(copy).equals(expected)
    table.compact(day)
    assert view_rows(copy).equals(expected)


def test_a_date_filter_reads_only_that_days_files(store: Path) -> None:
    con = connect(store)
    day = Store(store).messages.days()[0]
    plan = "\n".join(
        str(r[1])
        for r in con.execute(f"EXPLAIN ANALYZE SELECT count(*) FROM messages WHERE date = DATE '{day}'").fetchall()
    )
    assert "Total Files Read: " in plan
    # the read_parquet scan of the rows names how many files it opened: one day's current files
    read = [
        int(line.split("Total Files Read: ")[1].split()[0]) for line in plan.splitlines() if "Total Files Read" in line
    ]
    assert len(Store(store).messages.current_files(day)) in read
    count = con.execute(f"SELECT count(*) FROM messages WHERE date = DATE '{day}'").fetchone()
    lf = Store(store).messages.scan([day])
    assert lf is not None and count == (lf.select(pl.len()).collect().item(),)


def test_the_view_sql_and_its_command(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = view_sql(store, "mail")
    assert sql.startswith("CREATE OR REPLACE VIEW mail AS")
    assert str(store.resolve() / "messages") in sql
    assert main(["--store", str(store)]) == 0
    assert capsys.readouterr().out == view_sql(store)
    with pytest.raises(QueryError, match="invalid view name 'x; drop'"):
        view_sql(store, "x; drop")
    assert main(["--store", str(store / "nope")]) == 2
    assert capsys.readouterr().err.startswith("Error: ")


def test_received_is_utc(store: Path) -> None:
    con = connect(store)
    got = con.execute("SELECT min(received) FROM messages").fetchone()
    assert got is not None and isinstance(got[0], dt.datetime) and got[0].utcoffset() is not None
