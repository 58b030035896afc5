"""The ingest pipeline end to end: idempotence, order and chunking independence, state changes
across files and runs, unknown lines, and the store's on-disk contract."""

from __future__ import annotations

import dataclasses
import gzip
import os
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msgtrace.ingest.pipeline as pipeline
from msgtrace.ingest.pipeline import IngestOptions, ingest_paths
from msgtrace.ingest.schema import EVENT_SCHEMA, MESSAGE_SCHEMA
from tests.conftest import ROOT
from tests.test_postfix import CASE_DIR, message_rows, read_table

OPTS = IngestOptions(timezone="UTC", year=2026, format="postfix")
SAMPLE = ROOT / "data" / "sample"


def sample_lines() -> list[str]:
    """The demo logs, oldest first: a realistic day and a half of one mail server."""
    old = gzip.decompress((SAMPLE / "mail.log.1.gz").read_bytes()).decode()
    return (old + (SAMPLE / "mail.log").read_text()).splitlines(keepends=True)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines))
    return path


def events_without_source(store: Path) -> list[tuple]:
    """Events as a sorted multiset, without where they were read (file pieces differ)."""
    cols = [c for c in EVENT_SCHEMA if c not in ("source", "line_no")]
    return sorted(read_table(store, "events").select(cols).rows(), key=repr)


def rows_across_files(store: Path) -> list[dict]:
    """Message rows, with the ids of NOQUEUE rejects blanked: a reject is a message of one line, so
    its id comes from that line's file and position, and a log cut into other files gives others."""
    rows = message_rows(store)
    for r in rows:
        if r["queue_id"] == "":
            r["message_trace_id"] = ""
    return rows


def store_files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], list[tuple]]:
    """Message rows and events of the sample ingested in one piece, one run."""
    d = tmp_path_factory.mktemp("ref")
    log = write(d / "mail.log", sample_lines())
    ingest_paths([str(log)], d / "store", OPTS)
    return rows_across_files(d / "store"), events_without_source(d / "store")


# --- re-ingest, order, chunks ---------------------------------------------------------------


def test_reingesting_adds_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = ingest_paths([str(SAMPLE)], store, OPTS)
    before = store_files(store)
    again = ingest_paths([str(SAMPLE)], store, OPTS)
    assert first.lines == 160 and again.lines == 0 and again.events == 0
    assert store_files(store) == before


def test_reingesting_without_checkpoints_adds_nothing(tmp_path: Path) -> None:
    # lost checkpoints (or a crash before one was saved): events are known by (source, line)
    store = tmp_path / "store"
    ingest_paths([str(SAMPLE)], store, OPTS)
    rows, events = message_rows(store), read_table(store, "events").height
    for p in (store / "_state").iterdir():
        p.unlink()
    again = ingest_paths([str(SAMPLE)], store, OPTS)
    assert again.lines == 160 and again.events == 0
    assert message_rows(store) == rows
    assert read_table(store, "events").height == events


def test_rotated_series_read_oldest_first_equals_one_file(tmp_path: Path, reference) -> None:
    ingest_paths([str(SAMPLE)], tmp_path / "store", OPTS)
    assert rows_across_files(tmp_path / "store") == reference[0]
    assert events_without_source(tmp_path / "store") == reference[1]
    # deferred three times in mail.log.1.gz, delivered in mail.log: one row, Delivered, on its own day
    ken = [r for r in message_rows(tmp_path / "store") if r["recipient_lower"] == "ken@example.net"]
    assert [(r["received"], r["status"], r["last_event"], r["incomplete"]) for r in ken] == [
        ("2026-06-12T18:45:12.000000Z", "Delivered", "2026-06-13T07:10:03.000000Z", False)
    ]


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_split_any_order_any_chunking_gives_the_same_store(tmp_path_factory, reference, data) -> None:
    lines = sample_lines()
    cuts = sorted(data.draw(st.sets(st.integers(1, len(lines) - 1), max_size=4), label="cuts"))
    pieces = [lines[a:b] for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    order = data.draw(st.permutations(range(len(pieces))), label="order")
    one_run = data.draw(st.booleans(), label="one run")
    flush = data.draw(st.sampled_from([3, 20, 1_000_000]), label="FLUSH_EVENTS")
    chunk = data.draw(st.sampled_from([1, 300, 4096, 64 * 1024 * 1024]), label="CHUNK_BYTES")
    d = tmp_path_factory.mktemp("split")
    # each piece starts with a distinct line, so each is a source of its own
    files = [str(write(d / f"piece{i}.log", pieces[i])) for i in order]
    options = dataclasses.replace(OPTS, flush_events=flush, chunk_bytes=chunk)
    if one_run:  # one Pipeline, files in this order (ingest_paths would sort them by name)
        pipe = pipeline.Pipeline(d / "store", options)
        try:
            for f in files:
                pipe.ingest_path(Path(f))
        finally:
            pipe.close()
        pipeline.tidy(pipe.store)  # as ingest_paths does: plain readers then see each message once
    else:
        for f in files:
            ingest_paths([f], d / "store", options)
    assert events_without_source(d / "store") == reference[1]
    assert rows_across_files(d / "store") == reference[0]


# --- state that changes after it was stored -----------------------------------------------


def test_deferral_delivered_in_a_later_run_is_replaced_in_its_own_partition(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lines = (CASE_DIR / "basic_delivery.log").read_text().splitlines(keepends=True)
    day1 = write(tmp_path / "a.log", lines[:8])  # ends with Carol deferred
    day2 = write(tmp_path / "b.log", lines[8:])  # the retry delivers
    ingest_paths([str(day1)], store, OPTS)
    carol = [r for r in message_rows(store) if r["recipient_lower"] == "carol@example.net"]
    assert [(r["status"], r["incomplete"]) for r in carol] == [("Pending", True)]
    ingest_paths([str(day2)], store, OPTS)
    rows = message_rows(store)
    assert [(r["recipient_lower"], r["status"], r["incomplete"]) for r in rows] == [
        ("bob@example.org", "Delivered", False),
        ("carol@example.net", "Delivered", False),
    ]
    assert {r["message_trace_id"] for r in rows} == {carol[0]["message_trace_id"]}
    assert [p.name for p in (store / "messages").iterdir()] == ["date=2026-06-13"]


def test_delivery_on_a_later_day_stays_in_the_received_partition(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lines = (CASE_DIR / "bounce_dsn.log").read_text().splitlines(keepends=True)
    first = write(tmp_path / "a.log", lines[:15])  # Jun 13: received, deferred
    later = write(tmp_path / "b.log", lines[15:])  # Jun 15-18: deferred again, expired, DSN
    ingest_paths([str(first)], store, OPTS)
    ingest_paths([str(later)], store, OPTS)
    by_day = {
        p.name: pl.read_parquet(list(p.glob("*.parquet"))).get_column("queue_id").to_list()
        for p in sorted((store / "messages").iterdir())
    }
    assert sorted(by_day["date=2026-06-13"]) == ["A1B2C3D4E5", "A1B2C3D4E5", "B2C3D4E5F6", "C3D4E5F6A7"]
    assert by_day["date=2026-06-18"] == ["D4E5F6A7B8"]
    expired = [r for r in message_rows(store) if r["queue_id"] == "C3D4E5F6A7"]
    assert [(r["recipient_address"], r["status"]) for r in expired] == [("peggy@example.com", "Failed")]


def test_reused_queue_id_in_a_later_run_keeps_the_earlier_message(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lines = (CASE_DIR / "queue_id_reuse.log").read_text().splitlines(keepends=True)
    ingest_paths([str(write(tmp_path / "a.log", lines[:4]))], store, OPTS)
    ingest_paths([str(write(tmp_path / "b.log", lines[4:]))], store, OPTS)
    got = [(r["queue_id"], r["recipient_address"], r["status"]) for r in message_rows(store)]
    assert got == [
        ("D4E5F6A7B8", "b@example.com", "Delivered"),
        ("D4E5F6A7B8", "d@example.com", "Pending"),
        ("E5F6A7B8C9", "f@example.com", "Delivered"),
        ("E5F6A7B8C9", "h@example.com", "Delivered"),
    ]


def test_content_filter_halves_in_separate_runs_are_one_message(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lines = (CASE_DIR / "content_filter.log").read_text().splitlines(keepends=True)
    ingest_paths([str(write(tmp_path / "b.log", lines[13:17]))], store, OPTS)  # the re-queued half first
    ingest_paths([str(write(tmp_path / "a.log", lines[:13]))], store, OPTS)
    got = [(r["queue_ids"], r["recipient_address"], r["status"], r["from_ip"]) for r in message_rows(store)]
    assert got == [
        ("4A2B3C4D5E 5B6C7D8E9F", "erin@example.org", "Delivered", "198.51.100.20"),
        ("4A2B3C4D5E 5B6C7D8E9F", "fred@example.org", "Delivered", "198.51.100.20"),
    ]


# --- unknown lines ----------------------------------------------------------------------


def test_unknown_lines_are_counted_sampled_and_written_to_rejects(tmp_path: Path) -> None:
    log = CASE_DIR / "foreign_lines.log"
    rejects = tmp_path / "rejects.txt"
    report = ingest_paths([str(log)], tmp_path / "store", OPTS, rejects=rejects)
    f = report.files[0]
    unknown = [
        "Jun 13 14:04:01 mx1 postfix/qmgr[2226]: STATISTICS1:",
        "Jun 13 14:04:01 mx1 postfix/cleanup[2229]: CLEANUP99:",
        "Jun 13 14:04:01 mx1 postfix/lmtp[2231]: DELIVERY1:",
        "Jun 13 14:04:01 mx1 postfix/smtpd[99999]: FOOBAR99:",
        "Jun 13 14:04:01 mx1 postfix/smtpd[99999]: DEBUG:ECLS Command-line scanner, version 1.6.0.0",
        "this is not a syslog line at all",
    ]
    assert (f.lines, f.unknown, report.unknown) == (16, 6, 6)
    assert f.unknown_sample == unknown[: pipeline.SAMPLE_UNKNOWN]
    numbers = [3, 4, 5, 6, 7, 13]
    assert rejects.read_text().splitlines() == [f"{log}:{n}: {line}" for n, line in zip(numbers, unknown, strict=True)]


def test_a_file_of_garbage_does_not_stop_the_others(tmp_path: Path) -> None:
    junk = tmp_path / "a-junk.log"
    junk.write_bytes(
        b"\x00\xff\xfe binary \x00\n" * 5 + "Jun 13 10:00:00 mx1 postfix/smtpd[1]: \u00e9\u00e8 odd\n".encode()
    )
    good = CASE_DIR / "basic_delivery.log"
    report = ingest_paths([str(junk), str(good)], tmp_path / "store", OPTS)
    assert {Path(f.path).name: f.unknown for f in report.files} == {"a-junk.log": 6, "basic_delivery.log": 0}
    assert len(message_rows(tmp_path / "store")) == 2


# --- the store on disk --------------------------------------------------------------------


def test_store_layout_schema_compression_and_order(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest_paths([str(SAMPLE)], store, OPTS)
    days = sorted(p.name for p in (store / "messages").iterdir())
    assert days == ["date=2026-06-12", "date=2026-06-13", "date=2026-06-14"]
    assert sorted(p.name for p in (store / "events").iterdir()) == days
    leftovers = [p for p in store.rglob("*") if p.name.startswith(".tmp")]
    assert leftovers == []
    for table, schema, time_col in (("messages", MESSAGE_SCHEMA, "received"), ("events", EVENT_SCHEMA, "time")):
        for f in (store / table).rglob("*.parquet"):
            meta = pq.ParquetFile(f)
            assert {meta.metadata.row_group(0).column(i).compression for i in range(meta.metadata.num_columns)} == {
                "ZSTD"
            }
            df = pl.read_parquet(f, hive_partitioning=False)
            assert df.schema == pl.Schema(schema)  # explicit: an all-null column keeps its type
            assert df.get_column(time_col).is_sorted()
            day = f.parent.name.split("=", 1)[1]
            assert {str(d) for d in df.get_column(time_col).dt.date().unique()} == {day}


@pytest.mark.parametrize(("small_rows", "files"), [(50_000, 1), (1, 10)])
def test_batch_merges_many_small_events_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_rows: int, files: int
) -> None:
    # one flush per 2 events: 10 events files for the day; they are merged while they are small
    # files, and left alone once each holds as many rows as a file should (a batch run's flushes)
    from msgtrace.store import table as store_table

    log = write(tmp_path / "m.log", [
        f"Jun 13 10:00:{i:02d} mx1.example.org postfix/qmgr[9]: {i + 0x10000:05X}: removed\n" for i in range(20)
    ])  # fmt: skip
    monkeypatch.setattr(store_table, "SMALL_FILE_ROWS", small_rows)
    store = tmp_path / "store"
    ingest_paths([str(log)], store, dataclasses.replace(OPTS, flush_events=2, chunk_bytes=140))
    part = store / "events" / "date=2026-06-13"
    assert len(list(part.glob("*.parquet"))) == files
    assert pl.read_parquet(part, hive_partitioning=False).height == 20


def test_plain_readers_see_each_row_once(tmp_path: Path, reference) -> None:
    # hive-partitioned Parquet that pyarrow.dataset (as DuckDB or Spark would) reads without msgtrace
    store = tmp_path / "store"
    ingest_paths([str(SAMPLE)], store, OPTS)
    assert rows_across_files(store) == reference[0]
    table = read_table(store, "messages")
    assert table.height == 29
    assert table.select(pl.struct("message_trace_id", "recipient_lower").n_unique()).item() == 29


def test_events_table_has_one_row_per_relevant_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest_paths([str(CASE_DIR / "basic_delivery.log")], store, OPTS)
    ev = read_table(store, "events").sort("line_no")
    assert ev.select("line_no", "kind", "queue_id", "recipient", "status").rows() == [
        (2, "client", "3F1A22C01", None, None),
        (3, "msgid", "3F1A22C01", None, None),
        (4, "receive", "3F1A22C01", None, None),
        (6, "deliver", "3F1A22C01", "bob@example.org", "Delivered"),
        (7, "deliver", "3F1A22C01", "Carol@Example.net", "Pending"),
        (8, "receive", "3F1A22C01", None, None),
        (9, "deliver", "3F1A22C01", "Carol@Example.net", "Delivered"),
        (10, "removed", "3F1A22C01", None, None),
    ]
    first = ev.row(0, named=True)
    assert first["time"].isoformat() == "2026-06-13T10:00:01+00:00"
    assert ev.filter(pl.col("line_no") == 7).get_column("detail").item().startswith("connect to mx.example.net")


def test_trace_ids_are_deterministic_and_carry_received(tmp_path: Path, reference) -> None:
    # the rotated series ingested newest first, in two runs: the same messages get the same ids
    store = tmp_path / "store"
    ingest_paths([str(SAMPLE / "mail.log")], store, OPTS)
    ingest_paths([str(SAMPLE / "mail.log.1.gz")], store, OPTS)
    ids = {(r["received"], r["message_trace_id"]) for r in rows_across_files(store)}
    assert ids == {(r["received"], r["message_trace_id"]) for r in reference[0]}
    for received, tid in ids:
        if not tid:  # a NOQUEUE reject (blanked above)
            continue
        ms = int(tid.replace("-", "")[:12], 16)
        assert pl.Series([ms]).cast(pl.Datetime("ms", "UTC")).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")[0] == received


def test_sample_is_small_and_deterministic() -> None:
    assert len(sample_lines()) < 200
    raw = (SAMPLE / "mail.log.1.gz").read_bytes()
    assert raw[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0: the same bytes on every machine
    assert os.path.getsize(SAMPLE / "mail.log.1.gz") < 4096


def test_report_current_rows_are_the_stored_rows_after_many_flushes(tmp_path: Path) -> None:
    """The batch report's current rows (kept per day, each flush dropping the rows it supersedes
    and rewrites with one anti-join) are exactly the store's rows, over flushes small enough that
    deferred messages are rewritten many times and a day and a half of Received days."""
    store = tmp_path / "store"
    report = ingest_paths([str(SAMPLE)], store, dataclasses.replace(OPTS, flush_events=20, chunk_bytes=4096))
    stored = read_table(store, "messages").select("message_trace_id", "queue_id")
    assert len(report.current_by_day) > 1
    assert report.stored_rows == stored.height
    assert report.stored_messages == stored.get_column("message_trace_id").n_unique()
    assert sorted(report.current.select(stored.columns).rows()) == sorted(stored.rows())
