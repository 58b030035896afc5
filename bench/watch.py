"""The watcher's append-to-queryable latency: how long after a message's lines reach the log a
trace returns it, with the log idle and with a busy server writing to it.

    python -m bench.watch LOG [--prefill N] [--probes K] [--rate R]

Starts `msgtrace watch` (default intervals) on a fresh log holding the first N lines of LOG (a
generated Postfix log), waits until it has caught up, then appends K probe messages one at a
time, each a complete delivery from its own sender, and polls `message_trace` for it; first with
nothing else written, then while a thread appends LOG's next lines at R lines/s. The probe's
lines carry the time of the last line written before them, so they lie where a real server's
would. Prints one JSON line; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from msgtrace.api import message_trace

POLL_S = 0.05
GIVE_UP_S = 60.0
WINDOW = {"start_date": "2026-01-01", "end_date": "2026-12-31", "max_age_days": 0, "timezone": "UTC"}


def probe_lines(stamp: str, k: int) -> list[str]:
    """One complete Postfix delivery from probe{k}@latency.example (a queue id the generator never makes)."""
    qid, host = f"FFFF{k:06X}", "mx1.example.org"
    return [
        f"{stamp} {host} postfix/smtpd[7{k % 1000:03d}]: {qid}: client=probe.latency.example[192.0.2.1]",
        f"{stamp} {host} postfix/cleanup[8{k % 1000:03d}]: {qid}: message-id=<probe{k}@latency.example>",
        f"{stamp} {host} postfix/qmgr[900]: {qid}: from=<probe{k}@latency.example>, size=1234, nrcpt=1 (queue active)",
        f"{stamp} {host} postfix/smtp[9{k % 1000:03d}]: {qid}: to=<probe{k}@example.org>, relay=mx.example.org"
        "[203.0.113.7]:25, delay=0.2, delays=0.1/0/0.05/0.05, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
        f"{stamp} {host} postfix/qmgr[900]: {qid}: removed",
    ]


class Log:
    """The watched file: appends are whole lines, written and flushed under one lock."""

    def __init__(self, path: Path, source: Iterator[str]) -> None:
        self.path, self.source, self.lock = path, source, threading.Lock()
        self.stamp = "May  1 00:00:00"
        self.f = open(path, "a", encoding="utf-8")

    def write(self, lines: list[str]) -> None:
        with self.lock:
            self.f.write("".join(line + "\n" for line in lines))
            self.f.flush()
            if lines:
                self.stamp = lines[-1][:15]

    def from_source(self, n: int) -> int:
        lines = [line.rstrip("\n") for line in islice(self.source, n)]
        self.write(lines)
        return len(lines)


def queryable(store: Path, sender: str) -> bool:
    try:
        rows = message_trace(store, sender_address=sender, **WINDOW)  # type: ignore[arg-type]
    except Exception:  # a store the watcher has not written yet
        return False
    return rows.height > 0 and rows.get_column("Status").to_list() == ["Delivered"]


def measure(log: Log, store: Path, first: int, probes: int, gap_s: float) -> list[float]:
    """Seconds from each probe's append to the trace returning it Delivered."""
    took = []
    for k in range(first, first + probes):
        log.write(probe_lines(log.stamp, k))
        t0 = time.monotonic()
        while not queryable(store, f"probe{k}@latency.example"):
            if time.monotonic() - t0 > GIVE_UP_S:
                raise SystemExit(f"Error: probe {k} was not queryable after {GIVE_UP_S:.0f} s")
            time.sleep(POLL_S)
        took.append(time.monotonic() - t0)
        time.sleep(gap_s)
    return took


def summary(took: list[float]) -> dict[str, float]:
    s = sorted(took)
    return {
        "median_s": round(statistics.median(s), 3),
        "p90_s": round(s[min(len(s) - 1, int(0.9 * len(s)))], 3),
        "max_s": round(s[-1], 3),
        "probes": len(s),
    }


def background(log: Log, rate: int, stop: threading.Event, written: list[int]) -> None:
    """LOG's next lines at `rate` lines/s, in tenths of a second."""
    step = max(1, rate // 10)
    next_at = time.monotonic()
    while not stop.is_set():
        if not log.from_source(step):
            return
        written[0] += step
        next_at += 0.1
        time.sleep(max(0.0, next_at - time.monotonic()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log", type=Path)
    ap.add_argument("--prefill", type=int, default=200_000, help="lines of LOG in the file before the watcher starts")
    ap.add_argument("--probes", type=int, default=10, help="probe messages per phase")
    ap.add_argument("--rate", type=int, default=5_000, help="lines/s LOG's lines are appended at in the busy phase")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="msgtrace-watch-bench-"))
    store, path = work / "store", work / "mail.log"
    source = open(a.log, encoding="utf-8")
    log = Log(path, source)
    log.from_source(a.prefill)
    cmd = [sys.executable, "-m", "msgtrace", "watch", "--quiet", "--store", str(store), "--timezone", "UTC"]
    proc = subprocess.Popen([*cmd, "--year", "2026", str(path)], stderr=open(work / "watch.log", "wb"))
    try:
        t = time.monotonic()
        measure(log, store, 0, 1, 0.0)  # the watcher has read the prefill
        caught_up = time.monotonic() - t
        idle = measure(log, store, 1, a.probes, 1.0)
        stop, written = threading.Event(), [0]
        writer = threading.Thread(target=background, args=(log, a.rate, stop, written), daemon=True)
        started = time.monotonic()
        writer.start()
        time.sleep(2.0)  # a steady flow before the first busy probe
        busy = measure(log, store, 1 + a.probes, a.probes, 1.0)
        stop.set()
        writer.join()
        rate = written[0] / (time.monotonic() - started)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        source.close()
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "prefill_lines": a.prefill,
                "caught_up_s": round(caught_up, 2),
                "idle": summary(idle),
                "busy": summary(busy) | {"lines_per_s": round(rate)},
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
