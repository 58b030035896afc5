"""msgtrace.store: each table picks its writer by what it is; the file system layer writes atomically."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from msgtrace.ingest.schema import EVENT_SCHEMA, MESSAGE_SCHEMA, conform
from msgtrace.store import Store
from msgtrace.store.fs import TEMP_PREFIX, LocalFileSystem
from tests.helpers_store import frame, msg, utc

DAY = dt.date(2026, 6, 13)


def events(n: int) -> pl.DataFrame:
    times = [utc(2026, 6, 13, 10, 0, i) for i in range(n)]
    return conform(pl.DataFrame({"time": times, "queue_id": [f"Q{i}" for i in range(n)]}), EVENT_SCHEMA)


def test_each_table_writes_with_its_own_writer(tmp_path: Path) -> None:
    # (the writer used to be picked by comparing the frame's schema with MESSAGE_SCHEMA)
    store = Store(tmp_path)
    store.messages.append(frame([msg(utc(2026, 6, 13, 10)), msg(utc(2026, 6, 13, 11), status="Failed")]))
    store.events.append(events(3))
    (m,), (e,) = store.messages.current_files(DAY), store.events.current_files(DAY)
    assert pq.ParquetFile(m).metadata.created_by.startswith("parquet-cpp-arrow")  # faster filtered scans
    assert store.messages.status_counts([m]) == {"Delivered": 1, "Failed": 1}
    assert b"msgtrace.status_counts" not in e.read_bytes()


def test_events_files_carry_statistics_and_dictionaries_only_where_they_pay(tmp_path: Path) -> None:
    # per-column choices of the events writer (bench/events_write.py measured them)
    store = Store(tmp_path)
    store.events.append(events(3).with_columns(detail=pl.lit("250 2.0.0 Ok"), status=pl.lit("Delivered")))
    (e,) = store.events.current_files(DAY)
    group = pq.ParquetFile(e).metadata.row_group(0)
    col = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert col["time"].statistics is not None and col["queue_id"].statistics is not None
    assert col["detail"].statistics is None  # free text: its min/max prune nothing
    assert "RLE_DICTIONARY" in col["status"].encodings and "RLE_DICTIONARY" not in col["detail"].encodings
    assert "DELTA_BINARY_PACKED" in col["line_no"].encodings
    assert {c.compression for c in col.values()} == {"ZSTD"}
    assert (
        store.events.scan([DAY])
        .collect()
        .equals(events(3).with_columns(detail=pl.lit("250 2.0.0 Ok"), status=pl.lit("Delivered")))
    )  # type: ignore[union-attr]


def assert_messages_file_choices(path: Path) -> None:
    """A messages file written with files.MESSAGE_OPTIONS (and no Arrow schema in its footer)."""
    meta = pq.ParquetFile(path).metadata
    group = meta.row_group(0)
    col = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert col["received"].statistics is not None and col["recipient_lower"].statistics is not None
    assert col["detail"].statistics is None  # free text: its min/max prune nothing
    assert "RLE_DICTIONARY" in col["status"].encodings and "RLE_DICTIONARY" not in col["message_trace_id"].encodings
    assert "DELTA_BINARY_PACKED" not in col["received"].encodings  # its decoding slowed the report by 10%
    assert b"ARROW:schema" not in meta.metadata  # it would name Polars' string views to Arrow readers
    assert pq.read_schema(path).field("recipient_address").type == "string"


def test_messages_files_appended_and_compacted_carry_the_same_per_column_choices(tmp_path: Path) -> None:
    # dictionaries and statistics only where they pay, in every messages file: a compaction writes
    # its rows as a flush does, its status counts in the footer written last
    store = Store(tmp_path)
    late = msg(utc(2026, 6, 13, 11), recipient="carol@example.org", status="Pending")
    store.messages.append(frame([msg(utc(2026, 6, 13, 10)), late]))
    store.messages.replace(frame([{**late, "status": "Delivered"}]), pl.col("status") == "Pending", {DAY})
    for f in store.messages.current_files(DAY):
        assert_messages_file_choices(f)  # type: ignore[arg-type]
    assert store.messages.compact(DAY, min_files=1)
    (compacted,) = store.messages.current_files(DAY)
    assert_messages_file_choices(compacted)  # type: ignore[arg-type]
    assert store.messages.status_counts([compacted]) == {"Delivered": 2}
    rows = store.messages.scan([DAY]).collect()  # type: ignore[union-attr]
    assert rows.schema == pl.Schema(MESSAGE_SCHEMA) and sorted(rows.get_column("status")) == ["Delivered"] * 2


def test_the_open_state_is_written_with_lz4(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.state.write_frame("open_events.parquet", events(3), EVENT_SCHEMA)
    meta = pq.ParquetFile(store.state.path("open_events.parquet")).metadata
    assert meta.row_group(0).column(0).compression == "LZ4"
    read = store.state.read_frame("open_events.parquet", EVENT_SCHEMA)
    assert read is not None and read.equals(events(3))


def test_deletes_supersede_older_rows_and_compaction_applies_them(tmp_path: Path) -> None:
    store = Store(tmp_path)
    old, kept = msg(utc(2026, 6, 13, 10), "a@x"), msg(utc(2026, 6, 13, 11), "b@x")
    store.messages.append(frame([old, kept]))
    new = {**old, "status": "Failed"}
    assert store.messages.append(frame([new]), {DAY: [str(old["message_trace_id"])]}) == 1
    assert store.messages.has_deletes(DAY)
    scan = store.messages.scan([DAY])
    assert scan is not None and sorted(scan.collect().get_column("status")) == ["Delivered", "Failed"]
    assert store.messages.compact(DAY, min_files=1)
    (only,) = store.messages.current_files(DAY)
    assert only.name.endswith("-c.parquet") and not store.messages.has_deletes(DAY)
    assert store.messages.rows([only]) == 2 == store.messages.footer_rows([only])


def test_the_events_table_keeps_no_deletes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keeps no deletes"):
        Store(tmp_path).events.append(events(1), {DAY: ["some-id"]})


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    fs, target = LocalFileSystem(), tmp_path / "state.json"
    fs.write_text(target, "old")
    with pytest.raises(RuntimeError), fs.atomic_path(target, ".json") as tmp:
        Path(tmp).write_text("half")
        raise RuntimeError("disk gone")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_stale_temps_are_removed_and_nothing_else(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.events.append(events(2))
    part = store.events.partition(DAY)
    (part / f"{TEMP_PREFIX}killed.parquet").write_bytes(b"half a file")
    store.state.write_text("sources.json", "{}")
    (store.state.dir / f"{TEMP_PREFIX}x.json").write_text("{")
    assert store.remove_stale_temps() == 2
    assert [p.name for p in part.iterdir()] == ["g000001-a.parquet"]
    assert [p.name for p in store.state.dir.iterdir()] == ["sources.json"]


def test_rows_across_midnight_go_to_their_days_each_in_order(tmp_path: Path) -> None:
    # one flush's rows, out of order over three days: ordered once and cut into days as slices
    store = Store(tmp_path)
    hours = [49, 3, 26, 1, 30, 50, 2]
    times = [utc(2026, 6, 13) + dt.timedelta(hours=h) for h in hours]
    store.events.append(conform(pl.DataFrame({"time": times, "queue_id": [f"Q{h}" for h in hours]}), EVENT_SCHEMA))
    store.messages.replace(frame([msg(t, queue_id=f"Q{t.hour}") for t in times]), pl.lit(False), set())
    for table, column in ((store.events, "time"), (store.messages, "received")):
        for day in (DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)):
            (f,) = table.current_files(day)
            got = pl.read_parquet(f).get_column(column)
            assert got.is_sorted() and got.dt.date().unique().to_list() == [day]
        assert table.scan().select(pl.len()).collect().item() == len(hours)  # type: ignore[union-attr]
