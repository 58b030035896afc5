"""Several writers (one per MTA) share a store, on local disk and on S3 (moto on 127.0.0.1).

- three writers ingest their MTA's growing log at once (several runs each: supersedes across runs,
  compactions) while a reader queries: the reader never sees a message twice, and the final
  trace is the union of three single-MTA stores;
- a writer SIGKILLed mid-flush and restarted loses and doubles nothing;
- each writer compacts only its own files; a store an older version wrote (untagged files,
  state in _state/) is carried on by the first named writer, and others run beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from msgtrace.ingest.pipeline import IngestOptions, ingest_paths
from msgtrace.store import Store
from msgtrace.storepath import store_path
from tests.helpers_s3 import cli, generate_log
from tests.helpers_store import frame, msg, utc

NOW = "2026-01-05T00:00:00Z"
WINDOW = ("--start-date", "2026-01-01", "--end-date", "2026-01-05", "--timezone", "UTC")
MTAS = ("mx1", "mx2", "mx3")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cli(*args, now=NOW, check=check)


def generate(path: Path, host: str, seed: int, lines: int) -> list[str]:
    return generate_log(path, host, seed, lines)


def ingest(store: str, writer: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return run("ingest", "--store", store, "--writer", writer, "--timezone", "UTC", "--year", "2026", *map(str, paths))


def trace(store: str) -> list[str]:
    """Every row of the window, each as its JSON text without its Index (its place in the result,
    which differs between one MTA's trace and the union's): rows compare as texts."""
    out = run("trace", "--store", store, *WINDOW, "--output", "jsonl", "--page-size", "5000").stdout
    return [_row(line) for line in out.splitlines()]


def _row(line: str) -> str:
    row = json.loads(line)
    row.pop("Index")
    return json.dumps(row, sort_keys=True)


def keys(rows: list[str]) -> Counter[tuple[str, str]]:
    return Counter((r["MessageTraceId"], r["RecipientAddress"]) for r in map(json.loads, rows))


def where(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(request.getfixturevalue("s3_store")) if kind == "s3" else str(tmp_path / "shared")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_three_writers_at_once_give_the_union_of_three_stores(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = where(kind, request, tmp_path)
    logs = {m: generate(tmp_path / f"{m}.gen", f"{m}.example.org", seed=i + 1, lines=6000) for i, m in enumerate(MTAS)}
    expected: list[str] = []
    for m, lines in logs.items():  # one store per MTA, one run each: what the shared store must hold
        (tmp_path / f"{m}.full.log").write_text("".join(lines))
        ingest(str(tmp_path / f"alone-{m}"), m, tmp_path / f"{m}.full.log")
        expected += trace(str(tmp_path / f"alone-{m}"))

    failures: list[str] = []
    runs = 4

    def writer(m: str) -> None:  # the MTA's log grows; each run reads what is new (a flush or more)
        log, lines = tmp_path / f"{m}.log", logs[m]
        for part in range(runs):
            with open(log, "a") as f:
                f.writelines(lines[part * len(lines) // runs : (part + 1) * len(lines) // runs])
            res = run(
                "ingest", "--store", store, "--writer", m, "--timezone", "UTC", "--year", "2026", str(log), check=False
            )
            if res.returncode != 0:
                failures.append(f"{m}: {res.stderr}")

    threads = [threading.Thread(target=writer, args=(m,)) for m in MTAS]
    for t in threads:
        t.start()
    reads, seen = 0, 0
    while any(t.is_alive() for t in threads):
        res = run("trace", "--store", store, *WINDOW, "--output", "jsonl", "--page-size", "5000", check=False)
        if res.returncode == 0:  # before the first flush the prefix is no store yet
            counts = keys(res.stdout.splitlines())
            doubled = [k for k, n in counts.items() if n > 1]
            assert not doubled, f"a reader saw rows twice: {doubled[:3]}"
            reads, seen = reads + 1, max(seen, len(counts))
    for t in threads:
        t.join()
    assert not failures, failures
    final = trace(store)
    assert sorted(final) == sorted(expected)
    assert reads >= 1 and 0 < seen <= len(expected)
    status = run("status", "--store", store).stdout
    assert "Writers (3):" in status and all(f"  {m}: not running" in status for m in MTAS)
    print(f"[{kind}] {len(final)} rows from 3 writers x {runs} runs; the reader queried {reads} times meanwhile")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_writer_killed_mid_flush_and_restarted_loses_and_doubles_nothing(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = where(kind, request, tmp_path)
    lines = generate(tmp_path / "mx1.gen", "mx1.example.org", seed=7, lines=8000)
    other = generate(tmp_path / "mx2.gen", "mx2.example.org", seed=8, lines=2000)
    (tmp_path / "mx1.full.log").write_text("".join(lines))
    (tmp_path / "mx2.log").write_text("".join(other))
    expected = []
    for m, log in (("mx1", tmp_path / "mx1.full.log"), ("mx2", tmp_path / "mx2.log")):
        ingest(str(tmp_path / f"alone-{m}"), m, log)
        expected += trace(str(tmp_path / f"alone-{m}"))
    ingest(store, "mx2", tmp_path / "mx2.log")  # a writer beside it, untouched by the kill

    log = tmp_path / "mx1.log"
    env = {**os.environ, "MSGTRACE_NOW": NOW}
    watch = [
        sys.executable,
        "-m",
        "msgtrace",
        "watch",
        "--store",
        store,
        "--writer",
        "mx1",
        "--timezone",
        "UTC",
        "--year",
        "2026",
        "--flush-interval",
        "0.1",
        "--rescan-interval",
        "0.2",
        "--compact-files",
        "3",
        "-q",
        str(log),
    ]
    kills, parts = 0, 8
    proc = subprocess.Popen(watch, env=env, stderr=subprocess.PIPE, text=True)
    try:
        for part in range(parts):
            with open(log, "a") as f:
                f.writelines(lines[part * len(lines) // parts : (part + 1) * len(lines) // parts])
            time.sleep(0.3 + 0.15 * (part % 3))  # the watcher is flushing this part now
            if part % 2 == 1:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = subprocess.Popen(watch, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the watcher has read the whole log
            time.sleep(0.5)
            rows = run("trace", "--store", store, *WINDOW, "--output", "jsonl", "--page-size", "5000", check=False)
            if rows.returncode == 0 and sorted(map(_row, rows.stdout.splitlines())) == sorted(expected):
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    final = trace(store)
    assert not [k for k, n in keys(final).items() if n > 1]
    assert sorted(final) == sorted(expected)
    print(f"[{kind}] killed the writer {kills} times; {len(final)} rows, each once")


def test_each_writer_supersedes_and_compacts_only_its_own_files(tmp_path: Path) -> None:
    day = dt.date(2026, 6, 13)
    one, two = Store(tmp_path, writer="mx1"), Store(tmp_path, writer="mx2")
    a = msg(utc(2026, 6, 13, 10), queue_id="A1", status="Pending")
    b = msg(utc(2026, 6, 13, 11), queue_id="B1", status="Pending")
    a2 = {**a, "status": "Delivered"}
    one.messages.append(frame([a]))
    two.messages.append(frame([b]))
    # mx1's message changes state: its new file supersedes its own old row; mx2's rows are not its to drop
    one.messages.replace(frame([a2]), frame([a]).select("message_trace_id", "received"), {day})
    two.messages.append(frame([{**b, "recipient_address": "carol@example.org"}]))
    names = sorted(p.name for p in one.messages.partition(day).iterdir())
    assert names == ["g000001-a.mx1.parquet", "g000001-a.mx2.parquet", "g000002-a.mx1.parquet", "g000002-a.mx2.parquet"]
    reader = Store(tmp_path).messages
    seen = reader.scan([day]).collect()  # type: ignore[union-attr]
    assert sorted(seen.get_column("status").to_list()) == ["Delivered", "Pending", "Pending"]
    assert reader.rows(reader.current_files(day)) == 3 and reader.status_counts(reader.current_files(day)) is None
    assert one.messages.scan([day]).collect().height == 1  # type: ignore[union-attr]  (a writer sees its own)
    assert one.messages.compact(day, min_files=1)
    names = sorted(p.name for p in one.messages.partition(day).iterdir())
    assert names == ["g000001-a.mx2.parquet", "g000002-a.mx2.parquet", "g000003-c.mx1.parquet"]
    assert reader.scan([day]).collect().sort("recipient_address").equals(seen.sort("recipient_address"))  # type: ignore[union-attr]
    assert dict(reader.status_counts(reader.current_files(day)) or {}) == {"Delivered": 1, "Pending": 2}


def test_a_store_of_an_older_version_is_carried_on_by_the_first_named_writer(tmp_path: Path) -> None:
    """Before writers had names, a store had untagged files and its state in _state/: the first
    named writer claims them (its checkpoints carry on: nothing is read twice), others run beside."""
    store = tmp_path / "old"
    lines = generate(tmp_path / "mx1.gen", "mx1.example.org", seed=1, lines=1200)
    log = tmp_path / "mx1.log"
    log.write_text("".join(lines[:600]))
    opts = IngestOptions(timezone="UTC", year=2026)
    ingest_paths([str(log)], store, opts)  # the library without a writer: what an older version wrote
    assert (store / "_state" / "sources.json").exists()
    assert all(".mx" not in p.name for p in store.glob("messages/*/*.parquet"))
    with open(log, "a") as f:
        f.writelines(lines[600:])
    res = ingest(str(store), "mx1", log)
    assert f", {len(lines) - 600} lines" in res.stdout, res.stdout  # only the new lines: its checkpoints carried on
    assert (store / "_state" / "default_writer").read_text().strip() == "mx1"
    assert not (store / "_state" / "writers" / "mx1").exists()  # it is the default writer: _state/ is its own
    other = generate(tmp_path / "mx2.gen", "mx2.example.org", seed=2, lines=500)
    (tmp_path / "mx2.log").write_text("".join(other))
    ingest(str(store), "mx2", tmp_path / "mx2.log")
    (tmp_path / "mx1.all.log").write_text("".join(lines))
    expected = []
    for m, path in (("mx1", tmp_path / "mx1.all.log"), ("mx2", tmp_path / "mx2.log")):
        ingest(str(tmp_path / f"alone-{m}"), m, path)
        expected += trace(str(tmp_path / f"alone-{m}"))
    assert sorted(trace(str(store))) == sorted(expected)
    s = Store(store_path(str(store)))
    assert [name for name, _ in s.writers()] == ["mx1", "mx2"]
    status = run("status", "--store", str(store)).stdout
    assert "Writers (2):" in status and "  mx1: not running" in status and "  mx2: not running" in status


def test_the_writer_defaults_to_the_host_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.delenv("MSGTRACE_WRITER")
    lines = generate(tmp_path / "mx1.gen", "mx1.example.org", seed=1, lines=200)
    (tmp_path / "mx1.log").write_text("".join(lines))
    run("ingest", "--store", str(tmp_path / "s"), "--timezone", "UTC", "--year", "2026", str(tmp_path / "mx1.log"))
    assert (tmp_path / "s" / "_state" / "writers" / socket.gethostname() / "sources.json").exists()


class _Crash(BaseException):
    """A crash at a write: like SIGKILL, nothing after it runs."""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_writers_crashing_before_or_after_any_write_lose_nothing(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """In-process and deterministic: two MTAs' watchers share a store; any table or state write of
    either may crash just before or just after it (then that writer restarts); the store ends
    equal to each MTA's log ingested alone."""
    import random

    import polars as pl

    from msgtrace.ingest.watcher import Watcher, WatchOptions
    from msgtrace.store import StateFiles, Table
    from tests.test_watch import postfix_lines

    root = store_path(where(kind, request, tmp_path))
    rng, crashes = random.Random(5), 0
    logs = {m: tmp_path / m for m in ("mx1", "mx2")}
    lines = {m: [ln.replace("mx1.example.com", f"{m}.example.com") for ln in postfix_lines(i + 3, 400)]
             for i, m in enumerate(logs)}  # fmt: skip

    def crashing(write):  # type: ignore[no-untyped-def]
        def wrapped(*args: object, **kw: object) -> object:
            if rng.random() < 0.05:
                raise _Crash
            out = write(*args, **kw)
            if rng.random() < 0.05:
                raise _Crash
            return out

        return wrapped

    options, wopts = IngestOptions(timezone="UTC", year=2026), WatchOptions(compact_files=3, compact_interval=0)

    def start(m: str) -> Watcher:
        return Watcher(root, [str(logs[m] / "mail.log")], options, wopts, store=Store(root, writer=m))

    for d in logs.values():
        d.mkdir()
    with pytest.MonkeyPatch.context() as crash:  # (the test's own monkeypatch holds the AWS settings)
        for cls, name in ((Table, "write"), (StateFiles, "write_frame"), (StateFiles, "write_text")):
            crash.setattr(cls, name, crashing(getattr(cls, name)))
        watchers, at = {m: start(m) for m in logs}, dict.fromkeys(logs, 0)
        while any(at[m] < len(lines[m]) for m in logs):
            for m in logs:
                step = rng.randint(1, 80)
                with open(logs[m] / "mail.log", "a") as f:
                    f.write("".join(ln + "\n" for ln in lines[m][at[m] : at[m] + step]))
                at[m] += step
                try:
                    watchers[m].cycle()
                except _Crash:
                    crashes += 1
                    watchers[m] = start(m)  # a restart
    for m in logs:
        start(m).cycle()

    def table(store: Store, name: str) -> pl.DataFrame:
        lf = store.table(name).scan()
        assert lf is not None
        return lf.collect()

    for name in ("events", "messages"):
        alone = []
        for m in logs:
            ingest_paths([str(logs[m] / "mail.log")], tmp_path / f"alone-{m}", options)
            alone.append(table(Store(tmp_path / f"alone-{m}"), name))
        got, want = table(Store(root), name).sort(pl.all()), pl.concat(alone).sort(pl.all())
        assert got.equals(want), name
    assert crashes >= 5
    print(f"[{kind}] {crashes} crashes at writes of two writers; store == the two MTAs alone")
