"""SIGKILL the watcher at random moments while another process appends and rotates; nothing lost or doubled.

The writer (this module run as a script) appends generated Postfix lines, sometimes a line in two
writes, and rotates like logrotate: rename-and-create or copytruncate, and the rotated file is
compressed to .gz slowly (so the watcher can see a half-written archive), sometimes before the
watcher has read its tail. The watcher is killed several times and restarted; at the end it must
have produced exactly what one batch `ingest` of the final files produces.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from msgtrace.ingest.checkpoint import Checkpoints
from msgtrace.ingest.pipeline import IngestOptions, ingest_paths
from msgtrace.ingest.reader import fingerprint, open_binary
from msgtrace.ingest.status import read_watch_state
from msgtrace.store import Store
from tests.conftest import TEST_WRITER
from tests.test_watch import postfix_lines

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = ["--timezone", "UTC", "--year", "2026"]


def _rotate(logs: Path, mode: str, rng: random.Random) -> None:
    """logrotate with numbered files kept forever: shift, rotate mail.log, compress the previous one."""
    live = logs / "mail.log"
    numbered = sorted((int(p.name.split(".")[2]), p) for p in logs.glob("mail.log.*") if p.name.split(".")[2].isdigit())
    for n, p in reversed(numbered):
        p.rename(logs / p.name.replace(f"mail.log.{n}", f"mail.log.{n + 1}", 1))
    if mode == "copytruncate":
        shutil.copyfile(live, logs / "mail.log.1")
        os.truncate(live, 0)
    else:
        live.rename(logs / "mail.log.1")
        live.touch()
    # delaycompress: the file rotated last time is compressed now; "compress" mode compresses at once
    _compress(logs / ("mail.log.1" if mode == "compress" else "mail.log.2"), rng)


def _compress(plain: Path, rng: random.Random) -> None:
    if not plain.exists():
        return
    data = gzip.compress(plain.read_bytes())
    target = plain.with_name(plain.name + ".gz")
    with open(target, "wb") as f:
        for i in range(3):  # a half-written archive is visible for a while
            f.write(data[i * len(data) // 3 : (i + 1) * len(data) // 3])
            f.flush()
            time.sleep(rng.uniform(0, 0.05))
    plain.unlink()


def write(logs: Path, seed: int, messages: int, rotate_every: int) -> None:
    """Append the generated lines with jittered timing, rotating every so often."""
    rng = random.Random(seed)
    modes = ["rename", "copytruncate", "compress", "copytruncate", "rename"]
    f = open(logs / "mail.log", "ab")
    for i, line in enumerate(postfix_lines(seed, messages)):
        if i and i % rotate_every == 0:
            f.close()
            _rotate(logs, modes[(i // rotate_every) % len(modes)], rng)
            f = open(logs / "mail.log", "ab")
        data = (line + "\n").encode()
        if rng.random() < 0.01:  # a line in two writes: the watcher must wait for its newline
            f.write(data[:20])
            f.flush()
            time.sleep(0.01)
            data = data[20:]
        f.write(data)
        if rng.random() < 0.05:
            f.flush()
            time.sleep(rng.uniform(0, 0.02))
    f.close()


def _start(store: Path, logs: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "msgtrace", "watch", "--store", str(store), *OPTIONS]
    cmd += [
        "--flush-interval",
        "0.2",
        "--rescan-interval",
        "0.5",
        "--compact-files",
        "4",
        "-v",
        str(logs / "mail.log*"),
    ]
    log = open(store.parent / "watch.log", "ab")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)


def _content_size(path: Path) -> int:
    with open_binary(path) as f:
        return len(f.read())


def _caught_up(store: Path, logs: Path) -> bool:
    saved = Checkpoints(Store(store, writer=TEST_WRITER))  # the watcher's state (it is the CLI's writer)
    for p in logs.iterdir():
        state = saved.get(fingerprint(p) or "")
        if state is None or state.offset != _content_size(p):
            return False
    return True


def _wait_started(store: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while (read_watch_state(Store(store, writer=TEST_WRITER).state) or {}).get("pid") != proc.pid:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)


def _table(store: Path, table: str) -> pl.DataFrame:
    lf = Store(store).table(table).scan()
    assert lf is not None
    return lf.collect().sort(pl.all())


@pytest.mark.slow
def test_kill_and_rotate_matches_batch_ingest(tmp_path: Path) -> None:
    logs, store = tmp_path / "logs", tmp_path / "store"
    logs.mkdir()
    seed = 20260613
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.test_watch_kill", str(logs), str(seed), "5000", "3500"], cwd=ROOT
    )
    rng = random.Random(seed)
    kills = 0
    watcher = _start(store, logs)
    try:
        while writer.poll() is None or kills < 5:
            _wait_started(store, watcher)  # kill it while it works, not while Python starts
            time.sleep(rng.uniform(0.0, 1.5))
            watcher.send_signal(signal.SIGKILL)
            watcher.wait()
            kills += 1
            watcher = _start(store, logs)
        assert writer.wait() == 0
        deadline = time.monotonic() + 90
        while not _caught_up(store, logs):
            assert watcher.poll() is None, (tmp_path / "watch.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the watcher did not catch up"
            time.sleep(0.3)
        _wait_started(store, watcher)  # a SIGTERM while Python starts would not be handled yet
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=30) == 0
    finally:
        for p in (writer, watcher):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert len(list(logs.glob("*.gz"))) >= 3
    batch = tmp_path / "batch"
    ingest_paths([str(logs)], batch, IngestOptions(timezone="UTC", year=2026))
    for table in ("events", "messages"):
        got, want = _table(store, table), _table(batch, table)
        assert got.height == want.height, table
        assert got.equals(want), table
    log = (tmp_path / "watch.log").read_text()
    assert log.count("INFO Watching ") == kills + 1 and "Stopped:" in log


class _Crash(BaseException):
    """A crash at a write: like SIGKILL, nothing after it runs."""


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_a_crash_before_or_after_any_write_loses_nothing(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process and deterministic: every Parquet and checkpoint write may crash before or after it."""
    from msgtrace.ingest.watcher import Watcher, WatchOptions
    from msgtrace.store import StateFiles, Table

    logs, rng = tmp_path / "logs", random.Random(seed)
    logs.mkdir()
    crashes = 0

    def crashing(write):  # type: ignore[no-untyped-def]
        def wrapped(*args: object, **kw: object) -> None:
            if rng.random() < 0.06:
                raise _Crash
            write(*args, **kw)
            if rng.random() < 0.06:
                raise _Crash

        return wrapped

    # every store write: table files (not compaction, which replaces files whole), state frames, JSON state
    for cls, name in ((Table, "write"), (StateFiles, "write_frame"), (StateFiles, "write_text")):
        monkeypatch.setattr(cls, name, crashing(getattr(cls, name)))
    options, wopts = IngestOptions(timezone="UTC", year=2026), WatchOptions(compact_files=4, compact_interval=0)
    watcher = Watcher(tmp_path / "store", [str(logs / "mail.log*")], options, wopts)
    lines, at = postfix_lines(seed, 1000), 0
    while at < len(lines):
        step = rng.randint(1, 300)
        with open(logs / "mail.log", "a") as f:
            f.write("\n".join(lines[at : at + step]) + "\n")
        at += step
        if rng.random() < 0.15:
            _rotate(logs, rng.choice(["rename", "copytruncate", "compress"]), rng)
        try:
            watcher.cycle()
        except _Crash:
            crashes += 1
            watcher = Watcher(tmp_path / "store", [str(logs / "mail.log*")], options, wopts)  # a restart
    monkeypatch.undo()
    watcher = Watcher(tmp_path / "store", [str(logs / "mail.log*")], options, wopts)
    watcher.cycle()
    assert crashes >= 5
    ingest_paths([str(logs)], tmp_path / "batch", options)
    for table in ("events", "messages"):
        assert _table(tmp_path / "store", table).equals(_table(tmp_path / "batch", table)), table


if __name__ == "__main__":
    write(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
