"""The watcher: growing files, rotation, compression, truncation, failures, open messages, compaction.

Most tests drive Watcher.cycle() by hand (no timing); a few run `watch` as a process.
"""

from __future__ import annotations

import configparser
import dataclasses
import datetime as dt
import errno
import gzip
import logging
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from msgtrace.cli.watch import setup_logging, watch_command
from msgtrace.ingest.pipeline import IngestOptions, ingest_paths
from msgtrace.ingest.watcher import Watcher, WatchOptions
from msgtrace.store import Store, StoreLock, Table

ROOT = Path(__file__).resolve().parent.parent
START = dt.datetime(2026, 6, 13, tzinfo=dt.UTC)
OPTIONS = IngestOptions(timezone="UTC", year=2026)


def stamp(t: dt.datetime) -> str:
    """An RFC 3164 syslog timestamp."""
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S}"


def postfix_lines(seed: int, messages: int, step: float = 0.7) -> list[str]:
    """Deterministic Postfix lines in time order: rejects, deliveries, bounces, deferrals (some never end)."""
    rng = random.Random(seed)
    out: list[tuple[float, int, str]] = []
    for i in range(messages):
        t0, qid, ip = i * step + rng.random() * step, f"{0x2A0000 + i:X}", f"198.51.100.{i % 250 + 1}"

        def add(t: float, prog: str, text: str, t0: float = t0, pid: int = 1000 + i % 97) -> None:
            out.append((t0 + t, len(out), f"mx1.example.com postfix/{prog}[{pid}]: {text}"))

        if rng.random() < 0.05:
            add(0, "smtpd", f"NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 Service unavailable; Client host "
                f"[{ip}] blocked using zen.spamhaus.org; from=<spam{i}@example.biz> to=<u{i % 50}@example.com> "
                "proto=ESMTP helo=<x>")  # fmt: skip
            continue
        n = 1 + (rng.random() < 0.3)
        add(0, "smtpd", f"{qid}: client=mail{i % 40}.example.net[{ip}]")
        add(0.1, "cleanup", f"{qid}: message-id=<{i}.{seed}@example.net>")
        add(0.2, "qmgr", f"{qid}: from=<user{i % 300}@example.net>, size={1000 + i % 5000}, nrcpt={n} (queue active)")
        ends, complete = [], True
        for r in range(n):
            to, fate, t = f"rcpt{(i * 7 + r) % 900}@example.org", rng.random(), 0.5 + rng.random()
            if fate >= 0.75:
                add(t, "smtp", f"{qid}: to=<{to}>, relay=none, delay={t:.1f}, delays=0.1/0/{t:.1f}/0, dsn=4.4.1, "
                    "status=deferred (connect to mx.example.org[203.0.113.9]:25: Connection timed out)")  # fmt: skip
                if fate > 0.97:  # never delivered: stays Pending
                    complete = False
                    continue
                t += 20 + rng.random() * 400 * step  # delivered much later, after other messages
            if 0.70 <= fate < 0.75:
                add(t, "smtp", f"{qid}: to=<{to}>, relay=mx.example.org[203.0.113.7]:25, delay={t:.1f}, "
                    "delays=0.1/0/0.2/0.2, dsn=5.1.1, status=bounced (host mx.example.org[203.0.113.7] said: "
                    f"550 5.1.1 <{to}>: Recipient address rejected: User unknown (in reply to RCPT TO command))")  # fmt: skip
            else:
                add(t, "smtp", f"{qid}: to=<{to}>, relay=mx.example.org[203.0.113.7]:25, delay={t:.1f}, "
                    f"delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as Q{i}X)")  # fmt: skip
            ends.append(t)
        if complete:
            add(max(ends) + 0.1, "qmgr", f"{qid}: removed")
    out.sort()
    return [f"{stamp(START + dt.timedelta(seconds=t))} {text}" for t, _, text in out]


LINES = postfix_lines(7, 300)


def append(path: Path, lines: list[str], newline: bool = True) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + ("\n" if newline and lines else ""))


def watcher(tmp_path: Path, *paths: Path | str, **wopts: float) -> Watcher:
    return Watcher(tmp_path / "store", [str(p) for p in paths], OPTIONS, WatchOptions(**wopts))  # type: ignore[arg-type]


def table(store: Path, name: str) -> pl.DataFrame:
    lf = Store(store).table(name).scan()
    return pl.DataFrame() if lf is None else lf.collect().sort(pl.all())


def assert_same_as_batch(tmp_path: Path, logs: Path) -> None:
    """The watcher's store holds exactly what one batch ingest of the final files gives."""
    ingest_paths([str(logs)], tmp_path / "batch", OPTIONS)
    for name in ("events", "messages"):
        got, want = table(tmp_path / "store", name), table(tmp_path / "batch", name)
        assert got.height == want.height > 0, name
        assert got.equals(want), name


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d


def test_partial_last_line_waits_for_its_newline(tmp_path: Path, logs: Path) -> None:
    log = logs / "mail.log"
    append(log, LINES[:10])
    append(log, [LINES[10][:30]], newline=False)
    w = watcher(tmp_path, log)
    w.cycle()
    assert table(tmp_path / "store", "events").height == 10
    append(log, [LINES[10][30:]] + LINES[11:20])
    w.cycle()
    assert table(tmp_path / "store", "events").height == 20
    assert_same_as_batch(tmp_path, logs)


def test_rename_rotation_reads_the_old_tail_before_the_new_file(
    tmp_path: Path, logs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = logs / "mail.log"
    append(log, LINES[:100])
    w = watcher(tmp_path, f"{logs}/mail.log*")
    w.cycle()
    append(log, LINES[100:150])  # the tail, not read before the rotation
    log.rename(logs / "mail.log.1")
    append(log, LINES[150:])
    order: list[str] = []
    read = w.pipe.ingest_path
    w.pipe.ingest_path = lambda p, *a, **k: order.append(p.name) or read(p, *a, **k)  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, "msgtrace"):
        w.cycle()
    assert order == ["mail.log.1", "mail.log"]
    assert f"{log} was rotated to {log}.1." in caplog.messages
    assert_same_as_batch(tmp_path, logs)


def test_copytruncate_loses_nothing(tmp_path: Path, logs: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = logs / "mail.log"
    append(log, LINES[:100])
    w = watcher(tmp_path, log)  # a file argument: its rotated siblings are followed too
    w.cycle()
    size = log.stat().st_size
    append(log, LINES[100:150])
    shutil.copyfile(log, logs / "mail.log.1")
    os.truncate(log, 0)
    append(log, LINES[150:160])
    with caplog.at_level(logging.INFO, "msgtrace"):
        w.cycle()
    assert any(m.startswith(f"{log} was truncated from {size} to ") for m in caplog.messages)
    append(log, LINES[160:])
    w.cycle()
    assert_same_as_batch(tmp_path, logs)


def test_tail_is_read_from_the_archive_and_a_half_written_gz_waits(tmp_path: Path, logs: Path) -> None:
    log = logs / "mail.log"
    append(log, LINES[:100])
    w = watcher(tmp_path, f"{logs}/mail.log*")
    w.cycle()
    append(log, LINES[100:150])
    log.rename(logs / "mail.log.1")
    data = gzip.compress((logs / "mail.log.1").read_bytes())
    (logs / "mail.log.1").unlink()
    archive = logs / "mail.log.1.gz"
    archive.write_bytes(data[: len(data) // 2])  # compression in progress
    append(log, LINES[150:200])
    w.cycle()
    assert table(tmp_path / "store", "events").height == 150  # the old file waits; the new one is read
    archive.write_bytes(data)
    w.cycle()
    assert_same_as_batch(tmp_path, logs)
    read = w.pipe.ingest_path
    w.pipe.ingest_path = lambda p, *a, **k: pytest.fail(f"read {p} again") or read(p, *a, **k)  # type: ignore[method-assign]
    os.utime(archive)  # a changed archive that is fully read is not decompressed again
    w.cycle()


def test_a_file_read_whole_and_then_compressed_slowly_is_not_read_again(tmp_path: Path, logs: Path) -> None:
    """The watch_kill flake: a fully read file whose .gz was still being written was taken for a
    new file (`<fingerprint>~1`) and read again, doubling every event of it. The archive's partial
    content was lost because it was asked for in one read that the truncated stream failed."""
    log, lines = logs / "mail.log", postfix_lines(11, 1500)
    append(log, lines)
    w = watcher(tmp_path, f"{logs}/mail.log*")
    w.cycle()
    plain = log.rename(logs / "mail.log.1")
    data = gzip.compress(plain.read_bytes())
    plain.unlink()
    archive = logs / "mail.log.1.gz"
    archive.write_bytes(data[: len(data) // 3])  # more than the first line and 4 KiB, less than what was read
    # restarted (it knows the file from its checkpoint only), reading in small chunks as from a big file
    small = dataclasses.replace(OPTIONS, chunk_bytes=64 * 1024)
    w = Watcher(tmp_path / "store", [f"{logs}/mail.log*"], small, WatchOptions())
    w.cycle()
    archive.write_bytes(data)
    w.cycle()
    assert sorted(s.fingerprint for s in w.pipe.sources()) == [w.pipe.identify(archive)[0]]
    assert_same_as_batch(tmp_path, logs)


def test_a_file_argument_follows_only_its_own_rotated_sources(tmp_path: Path, logs: Path) -> None:
    log = logs / "mail.log"
    append(logs / "mail.log.5", postfix_lines(99, 20))  # old history that was not asked for
    append(log, LINES[:100])
    w = watcher(tmp_path, log)
    w.cycle()
    append(log, LINES[100:150])
    log.rename(logs / "mail.log.1")
    append(log, LINES[150:])
    w.cycle()
    (logs / "mail.log.5").unlink()
    assert_same_as_batch(tmp_path, logs)


def test_a_truncated_file_with_the_same_first_line_is_a_new_source(tmp_path: Path, logs: Path) -> None:
    log = logs / "mail.log"
    append(log, LINES[:100])
    w = watcher(tmp_path, log)
    w.cycle()
    os.truncate(log, 0)
    append(log, LINES[:1] + LINES[200:210])
    w.cycle()
    events = table(tmp_path / "store", "events")
    assert events.height == 111
    assert events.get_column("source").n_unique() == 2
    w.pipe.flush()
    w2 = watcher(tmp_path, log)  # after a restart the derived source is found again
    append(log, LINES[210:220])
    w2.cycle()
    assert table(tmp_path / "store", "events").height == 121


# which writes fail: the message rows (after the events were written), or the events themselves
# (correlation goes on meanwhile; no message row may be stored without its events, and the
# open set must roll back)
@pytest.mark.parametrize("failing", [(2, 4), (1, 3)])
def test_store_failure_holds_checkpoints_then_recovers(
    tmp_path: Path,
    logs: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failing: tuple[int, int],
) -> None:
    log = logs / "mail.log"
    append(log, LINES[:100])
    w = watcher(tmp_path, log, retry_max=0)
    w.cycle()
    saved = (tmp_path / "store" / "_state" / "sources.json").read_bytes()
    calls = {"n": 0}
    write = Table.write

    def full_disk(*args: object, **kw: object) -> object:
        calls["n"] += 1
        if failing[0] <= calls["n"] <= failing[1]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Table, "write", full_disk)
    append(log, LINES[100:200])
    with caplog.at_level(logging.DEBUG, "msgtrace"):
        for _ in range(3):
            w.cycle()
            assert (tmp_path / "store" / "_state" / "sources.json").read_bytes() == saved
        append(log, LINES[200:])
        w.cycle()  # the retry succeeds; then the new lines are read
        w.cycle()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # said once per episode, and when it is over
    assert "No space left on device" in warnings[0] and "writable again after 3 failed attempts" in warnings[1]
    assert_same_as_batch(tmp_path, logs)


def test_a_parser_failure_is_logged_and_only_its_line_is_lost(
    tmp_path: Path, logs: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """It used to fail the whole batch, and every retry failed at the same place."""
    from msgtrace.ingest.formats import postfix

    log = logs / "mail.log"
    append(log, LINES[:100])
    parse = postfix.parse

    def fails(lines: pl.DataFrame, ctx: object) -> object:
        if lines.get_column("line").str.contains(LINES[42], literal=True).any():
            raise pl.exceptions.ComputeError("a parser bug")
        return parse(lines, ctx)

    monkeypatch.setattr(postfix, "parse", fails)
    w = watcher(tmp_path, log)
    with caplog.at_level(logging.WARNING, "msgtrace"):
        w.cycle()  # the watcher goes on
        append(log, LINES[100:])
        w.cycle()
        w.cycle()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{log}:43 could not be parsed as postfix (a parser bug); add --rejects FILE to keep such lines."
    ]
    assert_same_as_batch(tmp_path, logs)  # everything else is stored (the batch run rejects the same line)
    assert table(tmp_path / "store", "events").height == len(LINES) - 1


def test_open_message_gets_its_final_status_in_its_own_partition(tmp_path: Path, logs: Path) -> None:
    log = logs / "mail.log"
    t0, t1 = START + dt.timedelta(hours=23, minutes=59), START + dt.timedelta(days=2, hours=3)
    pre = "mx1.example.com postfix"
    append(log, [
        f"{stamp(t0)} {pre}/smtpd[1]: 4B1C2D3E4F: client=a.example.net[192.0.2.1]",
        f"{stamp(t0)} {pre}/qmgr[2]: 4B1C2D3E4F: from=<a@example.net>, size=10, nrcpt=1 (queue active)",
    ])  # fmt: skip
    w = watcher(tmp_path, log)
    w.cycle()
    assert table(tmp_path / "store", "messages").get_column("status").to_list() == ["GettingStatus"]
    append(log, [f"{stamp(t0)} {pre}/smtp[3]: 4B1C2D3E4F: to=<b@example.org>, relay=none, delay=1, dsn=4.4.1, "
                 "status=deferred (connection timed out)"])  # fmt: skip
    w.cycle()
    assert table(tmp_path / "store", "messages").get_column("status").to_list() == ["Pending"]
    append(log, [
        f"{stamp(t1)} {pre}/smtp[3]: 4B1C2D3E4F: to=<b@example.org>, relay=mx.example.org[203.0.113.7]:25, "
        "delay=97000, dsn=2.0.0, status=sent (250 ok)",
        f"{stamp(t1)} {pre}/qmgr[2]: 4B1C2D3E4F: removed",
    ])  # fmt: skip
    w.cycle()
    rows = table(tmp_path / "store", "messages")
    assert rows.select("status", "received").rows() == [("Delivered", t0)]
    # the day's partition holds the message once (superseded versions dropped by the reader,
    # then by compaction for any Parquet reader)
    messages = Store(tmp_path / "store").messages
    assert messages.scan([t0.date()]).select(pl.len()).collect().item() == 1  # type: ignore[union-attr]
    messages.compact(t0.date(), min_files=1)
    assert pl.scan_parquet(messages.current_files(t0.date())).select(pl.len()).collect().item() == 1


def test_compaction_while_reading_sees_every_row_once(tmp_path: Path, logs: Path) -> None:
    log = logs / "mail.log"
    w = watcher(tmp_path, log, compact_files=3, compact_interval=0)
    events, day = Store(tmp_path / "store").events, START.date()
    stop, counts = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                counts.append(pl.scan_parquet(events.current_files(day)).select(pl.len()).collect().item())
            except (FileNotFoundError, pl.exceptions.ComputeError):
                pass  # listed just before a compaction deleted the file: a query retries
            time.sleep(0.002)

    before, compacted = 0, 0
    for i in range(0, len(LINES), 150):
        t = threading.Thread(target=reader)
        t.start()
        append(log, LINES[i : i + 150])
        w.cycle()
        stop.set()
        t.join()
        stop.clear()
        after = table(tmp_path / "store", "events").height
        assert set(counts) <= {before, after}, counts  # the rows before or after the flush, never a mix
        before, compacted, counts = after, w.total.compactions, []
    # Not "<= 3 files": after a compaction the watcher waits 9x its duration before compacting
    # that partition again, so under load the last flushes' files may still be waiting.
    flushes = len(range(0, len(LINES), 150))
    assert compacted > 0 and len(events.current_files(day)) < flushes
    assert_same_as_batch(tmp_path, logs)


def test_a_second_watcher_is_refused(tmp_path: Path, logs: Path, writer_name: str) -> None:
    with StoreLock(Store(tmp_path / "store", writer=writer_name)):  # the writer the CLI is ($MSGTRACE_WRITER)
        result = CliRunner().invoke(watch_command, ["--store", str(tmp_path / "store"), str(logs)])
    assert result.exit_code == 1
    assert (
        f"Error: --store {tmp_path / 'store'}: writer {writer_name} is in use by msgtrace process {os.getpid()}"
        in result.output
    )


def test_report_memory_stays_flat(tmp_path: Path, logs: Path) -> None:
    log = logs / "mail.log"
    w = watcher(tmp_path, log)
    for i in range(0, 100, 10):
        append(log, LINES[i : i + 10])
        w.cycle()
        w.cycle()
    assert len(w.pipe.report.files) == 0 and w.total.lines == 100


def test_logging_levels() -> None:
    setup_logging(quiet=True, verbose=False)
    assert logging.getLogger("msgtrace").level == logging.WARNING
    setup_logging(quiet=False, verbose=True)
    assert logging.getLogger("msgtrace").level == logging.DEBUG
    setup_logging(quiet=False, verbose=False)
    assert logging.getLogger("msgtrace").level == logging.INFO


def _wait(cond, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_watch_process_follows_appends_and_stops_cleanly(tmp_path: Path, logs: Path, sig: signal.Signals) -> None:
    log, store = logs / "mail.log", tmp_path / "store"
    append(log, LINES[:100])
    cmd = [sys.executable, "-m", "msgtrace", "watch", "--store", str(store), "--timezone", "UTC"]
    out = open(tmp_path / "watch.log", "wb")
    for run in range(2):
        proc = subprocess.Popen([*cmd, "--year", "2026", str(log)], cwd=ROOT, stderr=out)
        have = 100 + 50 * run
        try:
            _wait(lambda n=have: table(store, "events").height == n)
            append(log, LINES[have : have + 50])  # woken by the event, read within seconds
            _wait(lambda n=have: table(store, "events").height == n + 50)
            proc.send_signal(sig)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = (tmp_path / "watch.log").read_text()
    assert f"Reading {log} from the start (postfix)." in text
    assert f"Resumed {log} at offset {len(chr(10).join(LINES[:150])) + 1}." in text
    assert text.count("Stopped: read ") == 2


def test_the_systemd_unit_runs_a_valid_watch_command() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "ingest" / "systemd" / "msgtrace-watch.service")
    service = unit["Service"]
    assert (service["Restart"], service["KillSignal"], service["ProtectSystem"]) == ("on-failure", "SIGTERM", "strict")
    assert (service["ReadWritePaths"], service["ReadOnlyPaths"], service["NoNewPrivileges"]) == (
        "/var/lib/msgtrace", "/var/log", "yes",
    )  # fmt: skip
    program, command, *args = shlex.split(service["ExecStart"])
    assert program.endswith("/msgtrace") and command == "watch"
    ctx = watch_command.make_context("watch", args)  # the options parse
    assert Path(ctx.params["store"]) == Path("/var/lib/msgtrace") and ctx.params["paths"] == ("/var/log/mail.log*",)


def test_past_days_are_counted_for_the_report_and_recounted_when_they_change(tmp_path: Path, logs: Path) -> None:
    from msgtrace.query.report_store import is_current, store_partials

    log = logs / "mail.log"
    append(log, postfix_lines(1, 40, step=3600 * 1.5))  # 40 messages over ~2.5 days: three partitions
    w = Watcher(tmp_path / "store", [str(log)], OPTIONS, WatchOptions(count_days=store_partials))
    store = Store(tmp_path / "store")
    w.cycle()
    days = store.messages.days()
    assert len(days) >= 3
    counted = [d for d in days if is_current(store, store.messages, d, ())]
    assert counted == [days[-2]]  # one day per cycle, the most recent past one; never the newest
    for _ in range(len(days)):
        w._next_count = 0.0  # the interval, elapsed
        w.cycle()
    assert [d for d in days if is_current(store, store.messages, d, ())] == days[:-1]
    store.messages.compact(days[0], min_files=1)  # a compaction after the count: out of date
    assert not is_current(store, store.messages, days[0], ())
    w._next_count = 0.0
    w.cycle()
    assert is_current(store, store.messages, days[0], ())
