"""`msgtrace status`: sources with offset and lag, partitions, open messages, the watcher's state."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from click.testing import CliRunner

from msgtrace.ingest.status import WatchState, format_text, status
from msgtrace.ingest.watch_cli import status_command
from msgtrace.store import Store, StoreLock, lock_holder
from tests.test_watch import LINES, append, watcher


def _store(tmp_path: Path) -> tuple[Path, Path]:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "mail.log"
    append(log, LINES[:200] + ["this is not a mail log line"] + LINES[200:400])
    watcher(tmp_path, log).cycle()
    return tmp_path / "store", log


def test_sources_partitions_and_open_messages(tmp_path: Path) -> None:
    store, log = _store(tmp_path)
    st = status(store)
    (src,) = st.sources
    assert (src.path, src.format, src.offset, src.lag, src.lines, src.unknown) == (
        str(log), "postfix", log.stat().st_size, 0, 401, 1,
    )  # fmt: skip
    append(log, LINES[400:410])
    assert status(store).sources[0].lag == len("\n".join(LINES[400:410])) + 1
    messages = Store(store).messages.scan().collect()  # type: ignore[union-attr]
    events = Store(store).events.scan().collect()  # type: ignore[union-attr]
    (part,) = st.partitions
    assert (part.day, part.message_rows, part.event_rows) == ("2026-06-13", messages.height, events.height)
    assert part.message_files >= 1 and part.event_files >= 1
    assert st.open_messages == messages.filter(pl.col("status").is_in(["GettingStatus", "Pending"])).height > 0
    assert st.unknown == 1 and st.watcher_pid is None and st.last_flush


def test_a_rotated_source_is_found_by_its_first_line(tmp_path: Path) -> None:
    store, log = _store(tmp_path)
    size = log.stat().st_size
    append(log, LINES[400:410])
    log.rename(log.with_name("mail.log.1"))
    append(log, LINES[410:420])  # a new file at the old path: another source
    (src,) = status(store).sources
    assert src.found_at == str(log) + ".1" and src.lag == log.with_name("mail.log.1").stat().st_size - size
    rotated = log.with_name("mail.log.1")
    rotated.with_name("mail.log.1.gz").write_bytes(gzip.compress(rotated.read_bytes()))
    rotated.unlink()
    (src,) = status(store).sources
    assert src.found_at == str(log) + ".1.gz" and src.lag == len("\n".join(LINES[400:410])) + 1
    rotated.with_name("mail.log.1.gz").unlink()
    (src,) = status(store).sources
    assert src.found_at is None and src.lag is None
    assert "(file no longer found)" in format_text(status(store))


def test_text_names_the_running_watcher_and_a_failing_store(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    state = WatchState(store)
    state.failing_since, state.error = "2026-06-13T10:00:00+00:00", "No space left on device"
    state.save(force=True)
    with StoreLock(store):
        assert lock_holder(store) == os.getpid()
        text = format_text(status(store))
    assert f"Watcher: running (pid {os.getpid()}), last flush " in text
    assert "Store writes failing since 2026-06-13T10:00:00+00:00: No space left on device" in text
    assert "Open messages (GettingStatus or Pending): " in text and "Unknown lines: 1." in text
    assert lock_holder(store) is None
    assert "Watcher: not running; last flush " in format_text(status(store))


def test_cli_text_json_and_missing_store(tmp_path: Path) -> None:
    store, log = _store(tmp_path)
    result = CliRunner().invoke(status_command, ["--store", str(store)])
    assert result.exit_code == 0 and f"Store {store}" in result.output and str(log) in result.output
    data = json.loads(CliRunner().invoke(status_command, ["--store", str(store), "--json"]).output)
    assert data["sources"][0]["lag"] == 0 and data["partitions"][0]["day"] == "2026-06-13"
    result = CliRunner().invoke(status_command, ["--store", str(tmp_path / "nope")])
    assert result.exit_code == 1 and f"Error: store {tmp_path / 'nope'} does not exist" in result.output


def test_message_rows_count_what_a_query_sees_before_compaction(tmp_path: Path) -> None:
    store, log = _store(tmp_path)
    w = watcher(tmp_path, log)
    append(log, LINES[400:600])  # later lines of messages already stored: their rows are superseded
    w.cycle()
    table = Store(store).messages
    day = table.scan().collect().get_column("received").dt.date()[0]  # type: ignore[union-attr]
    assert table.has_deletes(day), "the test needs an uncompacted partition with superseded rows"
    files = table.current_files(day)
    footers = sum(pq.read_metadata(f).num_rows for f in files)
    (part,) = status(store).partitions
    seen = table.scan().collect().height  # type: ignore[union-attr]
    assert part.message_rows == seen < footers
