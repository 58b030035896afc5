"""Faults and bad input on the ingest side: nothing lost, nothing stuck, one clear line (issue 11).

Each test is named after the mistake it pins: files taken for one because they share a first
line, one bad value blocking its file for good, a store other users cannot read, a truncated
archive skipped whole, leftovers of a kill and a checkpoint file that cannot be read.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import stat
import zlib
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from msgtrace.cli import cli
from msgtrace.ingest.schema import EVENT_SCHEMA, MESSAGE_SCHEMA
from msgtrace.store import Store
from tests.conftest import TEST_WRITER

RSYSLOG_START = (
    'Jun 13 00:00:00 mx1.example.org rsyslogd: [origin software="rsyslogd" swVersion="8.2102.0" '
    'x-pid="812" x-info="https://www.rsyslog.com"] start'
)
NOW = "2026-06-14T00:00:00Z"


def writer_state(store: Path) -> Path:
    """The state folder of the writer the CLI is in the tests."""
    return store / "_state" / "writers" / TEST_WRITER


def messages(prefix: str, n: int, minute: int = 0) -> list[str]:
    """n delivered Postfix messages, 4 lines each, queue ids starting with `prefix` (hex)."""
    out = []
    for i in range(n):
        qid, t = f"{prefix}{i:05X}", f"Jun 13 {10 + (minute + i) // 60 % 10:02d}:{(minute + i) % 60:02d}:00"
        host = "mx1.example.org postfix"
        out += [
            f"{t} {host}/smtpd[100]: {qid}: client=mail.example.com[192.0.2.10]",
            f"{t} {host}/qmgr[102]: {qid}: from=<alice{i}@example.com>, size={1000 + i}, nrcpt=1 (queue active)",
            f"{t} {host}/smtp[103]: {qid}: to=<bob{i}@example.net>, relay=mx.example.net[203.0.113.7]:25, "
            "delay=1, delays=0.1/0/0.5/0.4, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
            f"{t} {host}/qmgr[102]: {qid}: removed",
        ]
    return out


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ingest(store: Path, *paths: Path, extra: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return run("ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", *extra, *map(str, paths))


def stored(store: Path, table: str = "messages") -> pl.DataFrame:
    lf = Store(store).table(table).scan()
    return pl.DataFrame(schema=EVENT_SCHEMA if table == "events" else MESSAGE_SCHEMA) if lf is None else lf.collect()


def senders(store: Path) -> set[str]:
    return set(stored(store).get_column("sender_address").to_list())


# ---- 1. a file's identity ----------------------------------------------------------------------
def test_two_files_sharing_their_first_line_are_not_taken_for_one(tmp_path: Path) -> None:
    a = write(tmp_path / "a.log", [RSYSLOG_START, *messages("A", 10)])
    b = write(tmp_path / "b.log", [RSYSLOG_START, *messages("B", 30)])
    store = tmp_path / "store"
    assert ingest(store, a).exit_code == 0
    res = ingest(store, b)
    assert res.exit_code == 0, res.output
    assert "121 lines" in res.stdout  # all of b, not its part past a's offset
    assert stored(store).height == 40
    assert stored(store).get_column("queue_id").str.head(1).value_counts().sort("queue_id").rows() == [
        ("A", 10),
        ("B", 30),
    ]
    # both known now: re-running reads nothing, even with the files renamed (rotation)
    a.rename(tmp_path / "a.log.1")
    b.rename(tmp_path / "b.log.1")
    res = ingest(store, tmp_path / "a.log.1", tmp_path / "b.log.1")
    assert res.exit_code == 0 and "0 lines" in res.stdout, res.output
    assert stored(store, "events").height == 160


def test_a_shorter_file_sharing_the_first_line_is_read_not_skipped(tmp_path: Path) -> None:
    a = write(tmp_path / "a.log", [RSYSLOG_START, *messages("A", 30)])
    b = write(tmp_path / "b.log", [RSYSLOG_START, *messages("B", 3)])
    store = tmp_path / "store"
    res = ingest(store, a, b)  # one run: b is met while a's checkpoint is still pending
    assert res.exit_code == 0, res.output
    assert "Skipped" not in res.output
    assert stored(store).height == 33


def test_a_renamed_and_grown_file_continues_from_its_offset(tmp_path: Path) -> None:
    log = write(tmp_path / "mail.log", [RSYSLOG_START, *messages("A", 5)])
    store = tmp_path / "store"
    assert ingest(store, log).exit_code == 0
    with open(log, "a") as f:
        f.write("".join(line + "\n" for line in messages("C", 2, minute=30)))
    log.rename(tmp_path / "mail.log.1")
    write(tmp_path / "mail.log", [RSYSLOG_START, *messages("D", 4, minute=40)])  # the new file, same first line
    res = ingest(store, tmp_path / "mail.log.1", tmp_path / "mail.log")
    assert res.exit_code == 0, res.output
    assert "25 lines" in res.stdout  # 8 new lines of mail.log.1, then 17 of the new mail.log
    # the rotated file compressed: recognised, nothing stored twice
    gz = tmp_path / "mail.log.1.gz"
    gz.write_bytes(gzip.compress((tmp_path / "mail.log.1").read_bytes()))
    (tmp_path / "mail.log.1").unlink()
    res = ingest(store, gz, tmp_path / "mail.log")
    assert res.exit_code == 0 and "0 lines" in res.stdout, res.output
    assert stored(store).height == 11
    assert stored(store, "events").height == 44


def _old_format(store: Path) -> None:
    """Rewrite sources.json as msgtrace wrote it before identities were checked."""
    path = writer_state(store) / "sources.json"
    body = json.loads(path.read_text())
    old = ("fingerprint", "path", "format", "offset", "line", "unknown", "updated", "parser_state")
    body = {"version": 1, "sources": {k: {f: v[f] for f in old} for k, v in body["sources"].items()}}
    path.write_text(json.dumps(body))


def test_a_checkpoint_of_the_old_format_still_resumes_and_tells_files_apart(tmp_path: Path) -> None:
    a = write(tmp_path / "a.log", [RSYSLOG_START, *messages("A", 5)])
    store = tmp_path / "store"
    assert ingest(store, a).exit_code == 0
    _old_format(store)
    with open(a, "a") as f:
        f.write("".join(line + "\n" for line in messages("C", 2, minute=30)))
    res = ingest(store, a)
    assert res.exit_code == 0 and "8 lines" in res.stdout, res.output  # resumed at its offset
    _old_format(store)
    res = ingest(store, a)  # nothing new: the old checkpoint gets its marks all the same
    assert res.exit_code == 0 and "0 lines" in res.stdout, res.output
    assert all(s["tail"] for s in json.loads((writer_state(store) / "sources.json").read_text())["sources"].values())
    _old_format(store)
    # another file with the same first line; an old checkpoint has no marks, so it is told apart by
    # its line count at the checkpoint's offset (real logs' lines differ in length; these would not)
    b = write(tmp_path / "b.log", [RSYSLOG_START, *(f"{line} " for line in messages("B", 9))])
    res = ingest(store, b)
    assert res.exit_code == 0 and "37 lines" in res.stdout, res.output  # b whole
    assert stored(store).height == 16
    assert stored(store, "events").height == 64


# ---- 2. one bad line must not block its file ---------------------------------------------------
def test_a_number_too_big_for_its_column_becomes_null_and_the_line_counts(tmp_path: Path) -> None:
    lines = messages("A", 40)
    lines[1] = lines[1].replace("size=1000", "size=99999999999999999999")
    lines[5] = lines[5].replace("nrcpt=1", "nrcpt=123456789012345678901234567890")
    log = write(tmp_path / "m.log", lines)
    store = tmp_path / "store"
    res = ingest(store, log)
    assert res.exit_code == 0, res.output
    assert "160 lines (0 unknown), 40 messages, 40 rows" in res.stdout
    sizes = dict(stored(store).select("queue_id", "size").iter_rows())
    assert sizes["A00000"] is None and sizes["A00001"] == 1001


def test_a_parser_failure_rejects_only_the_lines_it_fails_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msgtrace.ingest.formats import postfix

    lines = messages("A", 40)
    lines[56] = lines[56].replace("client=", "client=BOOM")  # line 57 (1-based)
    log = write(tmp_path / "m.log", lines)
    parse = postfix.parse

    def fails_on_boom(batch: pl.DataFrame, ctx: object) -> object:
        if batch.get_column("line").str.contains("BOOM").any():
            raise pl.exceptions.ComputeError("conversion from `str` to `i64` failed\nmore detail")
        return parse(batch, ctx)

    monkeypatch.setattr(postfix, "parse", fails_on_boom)
    store, rejects = tmp_path / "store", tmp_path / "rejects.txt"
    res = ingest(store, log, extra=("--rejects", str(rejects)))
    assert res.exit_code == 1, res.output
    assert (
        f"Warning: {log}:57 could not be parsed as postfix (conversion from `str` to `i64` failed); "
        f"the line was written to {rejects}\n" in res.stderr
    )
    assert "160 lines" in res.stdout
    assert stored(store).height == 40  # the message of the rejected line is stored all the same
    assert rejects.read_text() == f"{log}:57: {lines[56]}\n"
    res = ingest(store, log)  # nothing left over, nothing retried
    assert res.exit_code == 0 and "0 lines" in res.stdout


# ---- 3. file modes follow the umask ------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_store_files_and_directories_follow_the_umask(tmp_path: Path, umask: int) -> None:
    from msgtrace.ingest.pipeline import IngestOptions
    from msgtrace.ingest.watcher import Watcher

    log = write(tmp_path / "m.log", messages("A", 5))
    store = tmp_path / "store"
    old = os.umask(umask)
    try:
        assert ingest(store, log).exit_code == 0
        assert run("compact", "--store", str(store)).exit_code == 0
        w = Watcher(store, [str(log)], IngestOptions(timezone="UTC", year=2026))
        w.cycle()
        w.state.save(force=True)
    finally:
        os.umask(old)
    files = [p for p in store.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"sources.json", "open_events.parquet", "watch.json", ".lock"}
    assert any(p.suffix == ".parquet" and "date=" in str(p) for p in files)
    for p in store.rglob("*"):
        want = (0o777 if p.is_dir() else 0o666) & ~umask
        if p.name == ".lock":
            want = 0o644 & ~umask
        assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))


# ---- 5. a damaged archive: its readable part is stored -----------------------------------------
@pytest.mark.parametrize("kind", ["gz", "bz2", "xz"])
@pytest.mark.parametrize("size", ["small", "large"])
def test_a_truncated_archive_stores_its_readable_part_and_says_so(tmp_path: Path, kind: str, size: str) -> None:
    n = 20 if size == "small" else 4000  # large: more than the 64 KiB read to fingerprint the file
    text = "".join(line + "\n" for line in messages("A", n)).encode()
    pack = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind]
    whole = pack(text)
    cut = whole[: len(whole) * 2 // 3]
    unpack = {
        "gz": zlib.decompressobj(wbits=31),
        "bz2": bz2.BZ2Decompressor(),
        "xz": lzma.LZMADecompressor(),
    }[kind]
    readable = unpack.decompress(cut)
    lines_readable = readable.count(b"\n")
    log = tmp_path / f"mail.log.1.{kind}"
    log.write_bytes(cut)
    store = tmp_path / "store"
    res = ingest(store, log)
    assert res.exit_code == 1, res.output
    if lines_readable == 0:  # a bz2 block is all or nothing: this one is nothing
        assert kind == "bz2" and size == "small"
        assert f"Warning: {log} is damaged (truncated or corrupt): nothing in it can be read\n" in res.stderr
        assert "Skipped" not in res.stderr and not (store / "events").exists()
        return
    assert 8 < lines_readable < 4 * n
    end = readable.rfind(b"\n") + 1
    assert (
        f"Warning: {log} is damaged (truncated or corrupt) after line {lines_readable:,} "
        f"(byte {end:,} of its content); the lines before are stored\n" in res.stderr
    )
    assert f"{lines_readable:,} lines" in res.stdout
    assert stored(store, "events").height == lines_readable
    res = ingest(store, log)  # the damage is known: not reported again, nothing read twice
    assert res.exit_code == 0 and "0 lines" in res.stdout, res.output
    assert stored(store, "events").height == lines_readable


# ---- 9. leftovers ------------------------------------------------------------------------------
def test_temp_files_left_by_a_kill_are_removed_at_the_next_start(tmp_path: Path) -> None:
    log = write(tmp_path / "m.log", messages("A", 5))
    store = tmp_path / "store"
    assert ingest(store, log).exit_code == 0
    part = next((store / "messages").iterdir())
    state, tmp = writer_state(store), ".tmp-0123456789abcdef."
    left = [
        state / f"{tmp}open_events.parquet",
        state / f"{tmp}sources.json",
        part / f"{tmp}g000009-a.{TEST_WRITER}.parquet",
    ]
    others = [part / f"{tmp}g000003-a.mx-other.parquet", store / "_state" / f"{tmp}config.json"]  # not this writer's
    for p in left + others:
        p.write_bytes(b"half written")
    assert ingest(store, log).exit_code == 0
    assert not any(p.exists() for p in left)
    assert all(p.exists() for p in others)


def test_sources_not_seen_for_longer_than_the_queue_lifetime_are_forgotten(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert ingest(store, write(tmp_path / "a.log", messages("A", 2))).exit_code == 0
    path = writer_state(store) / "sources.json"
    body = json.loads(path.read_text())
    [(fp, entry)] = body["sources"].items()
    gone = {**entry, "fingerprint": "0123456789abcdef", "path": str(tmp_path / "gone.log")}
    gone["updated"] = gone["seen"] = "2026-01-01T00:00:00+00:00"
    body["sources"]["0123456789abcdef"] = gone
    path.write_text(json.dumps(body))
    assert ingest(store, write(tmp_path / "b.log", messages("B", 2))).exit_code == 0
    kept = json.loads(path.read_text())["sources"]
    assert fp in kept and "0123456789abcdef" not in kept and len(kept) == 2


@pytest.mark.parametrize(
    "body, why",
    [
        ('{"version": 1, "sources": {', "is not valid JSON (Expecting property name"),
        ('{"version": 7, "sources": {}}', "was written by a newer msgtrace (version 7)"),
        ('{"version": 1, "sources": {"x": {"offset": "a lot"}}}', "does not hold checkpoints"),
    ],
)
def test_an_unreadable_checkpoint_file_is_one_error_line(tmp_path: Path, body: str, why: str) -> None:
    store = tmp_path / "store"
    log = write(tmp_path / "m.log", messages("A", 2))
    assert ingest(store, log).exit_code == 0
    path = writer_state(store) / "sources.json"
    path.write_text(body)
    for res in (ingest(store, log), run("status", "--store", str(store))):
        assert res.exit_code == 1
        assert res.output.startswith(f"Error: {path} {why}")
        assert "move it aside" in res.output and res.output.count("\n") == 1, res.output
        assert "Traceback" not in res.output
    assert path.read_text() == body  # never silently started over


def test_the_watcher_reads_a_truncated_archive_once_it_has_settled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import time

    from msgtrace.ingest.pipeline import IngestOptions
    from msgtrace.ingest.watcher import ARCHIVE_SETTLE_S, Watcher

    text = "".join(line + "\n" for line in messages("A", 4000)).encode()
    whole = gzip.compress(text)
    archive = tmp_path / "logs" / "mail.log.1.gz"
    archive.parent.mkdir()
    archive.write_bytes(whole[: len(whole) // 2])
    readable = zlib.decompressobj(wbits=31).decompress(whole[: len(whole) // 2]).count(b"\n")
    w = Watcher(tmp_path / "store", [f"{archive.parent}/mail.log*"], IngestOptions(timezone="UTC", year=2026))
    with caplog.at_level(logging.WARNING, "msgtrace"):
        w.cycle()  # just written: perhaps still being compressed, so it waits
        assert not (tmp_path / "store" / "events").exists()
        old = time.time() - ARCHIVE_SETTLE_S - 1
        os.utime(archive, (old, old))
        w.cycle()
        w.cycle()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{archive} is damaged (truncated or corrupt) after line {readable:,}" in warnings[0]
    assert stored(tmp_path / "store", "events").height == readable


def test_status_finds_each_of_two_files_sharing_a_first_line_at_its_own_path(tmp_path: Path) -> None:
    from msgtrace.ingest.status import status

    a = write(tmp_path / "mail.log", [RSYSLOG_START, *messages("A", 10)])
    store = tmp_path / "store"
    assert ingest(store, a).exit_code == 0
    a.rename(tmp_path / "mail.log.1")
    b = write(tmp_path / "mail.log", [RSYSLOG_START, *messages("B", 30)])
    assert ingest(store, b).exit_code == 0
    with open(b, "a") as f:
        f.write(messages("C", 1)[0] + "\n")
    found = {s.found_at: s.lag for s in status(store).sources}
    assert found == {str(tmp_path / "mail.log.1"): 0, str(b): len(messages("C", 1)[0]) + 1}


@pytest.mark.parametrize("pair", [("origto", "origto4"), ("nodata", "nodata2")])
def test_corpus_logs_sharing_a_first_line_give_what_each_gives_alone(
    tmp_path: Path, corpus: Path, pair: tuple[str, str]
) -> None:
    """origto4.log starts like origto.log but is another, shorter log: it was skipped as 'shorter
    than what was read of it'. nodata2.log is nodata.log with lines added: it is read on from there."""
    paths = [corpus / "postfix" / "audit" / f"{name}.log" for name in pair]
    # (origto4.log lacks the cleanup line of its one message: alone it has no MessageId, with origto.log it has)
    cols = ["recipient_address", "status", "received", "queue_id"]
    alone = set()
    for i, p in enumerate(paths):
        assert ingest(tmp_path / f"alone{i}", p).exit_code == 0
        alone |= set(stored(tmp_path / f"alone{i}").select(cols).rows())
    for p in paths:  # one run after the other, as a daily cron would
        res = ingest(tmp_path / "both", p)
        assert res.exit_code == 0 and "Skipped" not in res.output, res.output
    assert set(stored(tmp_path / "both").select(cols).rows()) == alone


HUGE = "99999999999999999999"  # does not fit Int64


def _huge_numbers(fmt: str, text: str) -> str:
    """The log with every size and recipient count too big for its column."""
    import re

    if fmt == "exchange":
        lines = text.split("\n")
        fields = next(x for x in lines if x.startswith("#Fields: ")).removeprefix("#Fields: ").split(",")
        at = [fields.index("total-bytes"), fields.index("recipient-count")]
        for i, line in enumerate(lines):
            cells = line.split(",")
            if line and not line.startswith(("#", "\ufeff#")) and len(cells) == len(fields) and cells[at[0]]:
                for j in at:
                    cells[j] = HUGE
                lines[i] = ",".join(cells)
        return "\n".join(lines)
    pattern = {"postfix": r"(size|nrcpt)=\d+", "sendmail": r"(size|nrcpts)=\d+", "exim": r"(S)=\d+"}[fmt]
    return re.sub(pattern, lambda m: f"{m.group(1)}={HUGE}", text)


@pytest.mark.parametrize("fmt", ["postfix", "exim", "sendmail", "exchange"])
def test_every_parser_takes_numbers_too_big_for_their_column_as_null(tmp_path: Path, fmt: str) -> None:
    log = tmp_path / "good.log"
    assert run("generate", "--format", fmt, "--lines", "200", "--timezone", "UTC", str(log)).exit_code == 0
    bad = tmp_path / "huge.log"
    bad.write_text(_huge_numbers(fmt, log.read_text(encoding="utf-8-sig")), encoding="utf-8")
    assert bad.read_text().count(HUGE) >= 10
    extra = ("--host", "mx1.example.org")
    good_res, bad_res = ingest(tmp_path / "good", log, extra=extra), ingest(tmp_path / "bad", bad, extra=extra)
    assert bad_res.exit_code == 0, bad_res.output
    assert bad_res.stdout.split(" rows in ")[0] == good_res.stdout.split(" rows in ")[0]  # same lines, same rows
    sizes = stored(tmp_path / "good").join(stored(tmp_path / "bad"), on=["message_trace_id", "recipient_address"])
    sized = sizes.filter(pl.col("size").is_not_null())
    assert sized.height > 10 and sized.get_column("size_right").null_count() == sized.height


def test_a_parser_failing_on_everything_is_not_parsed_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from msgtrace.ingest.formats import postfix

    calls = []

    def always_fails(batch: pl.DataFrame, ctx: object) -> object:
        calls.append(batch.height)
        raise pl.exceptions.ComputeError("a parser bug")

    monkeypatch.setattr(postfix, "parse", always_fails)
    log = write(tmp_path / "m.log", messages("A", 1000))
    rejects = tmp_path / "rejects.txt"
    res = ingest(tmp_path / "store", log, extra=("--rejects", str(rejects)))
    assert res.exit_code == 1
    warnings = [line for line in res.stderr.splitlines() if line.startswith("Warning: ")]
    assert warnings[:5] == [
        f"Warning: {log}:{n} could not be parsed as postfix (a parser bug); the line was written to {rejects}"
        for n in range(1, 6)
    ]
    assert warnings[5:] == [
        f"Warning: {log}: more lines could not be parsed as postfix, from line 6 on; they are written to {rejects}"
    ]
    assert len(rejects.read_text().splitlines()) == 4000  # every line kept for the admin
    assert len(calls) < 2 * 1000 + 50  # about two parses per line rejected alone, then whole halves


@pytest.mark.parametrize("follow", ["glob", "file"])
def test_the_watcher_tells_a_new_log_with_the_same_first_line_from_the_rotated_one(tmp_path: Path, follow: str) -> None:
    from msgtrace.ingest.pipeline import IngestOptions
    from msgtrace.ingest.watcher import Watcher

    logs = tmp_path / "logs"
    logs.mkdir()
    log = write(logs / "mail.log", [RSYSLOG_START, *messages("A", 10)])
    arg = f"{logs}/mail.log*" if follow == "glob" else str(log)
    w = Watcher(tmp_path / "store", [arg], IngestOptions(timezone="UTC", year=2026))
    w.cycle()
    with open(log, "a") as f:  # written just before the rotation: read from the rotated file
        f.write("".join(line + "\n" for line in messages("C", 3, minute=20)))
    log.rename(logs / "mail.log.1")
    write(log, [RSYSLOG_START, *messages("B", 20, minute=30)])
    w.cycle()
    w.cycle()
    assert stored(tmp_path / "store").get_column("queue_id").str.head(1).value_counts().sort("queue_id").rows() == [
        ("A", 10),
        ("B", 20),
        ("C", 3),
    ]
    # the rotated file compressed, the new one grows: nothing twice, nothing skipped
    gz = logs / "mail.log.1.gz"
    gz.write_bytes(gzip.compress((logs / "mail.log.1").read_bytes()))
    (logs / "mail.log.1").unlink()
    with open(log, "a") as f:
        f.write("".join(line + "\n" for line in messages("D", 2, minute=50)))
    w.cycle()
    w.cycle()
    assert (
        stored(tmp_path / "store", "events").height == 4 * 35
    )  # 35 messages of 4 lines; the two start lines are no events
    w2 = Watcher(tmp_path / "store2", [f"{logs}/mail.log*"], IngestOptions(timezone="UTC", year=2026))
    w2.cycle()  # a fresh store from the final files holds the same
    assert (
        stored(tmp_path / "store2", "events").height == 4 * 35
    )  # 35 messages of 4 lines; the two start lines are no events
