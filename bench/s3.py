"""`make bench-s3` (also run by `make bench`): a store on the S3 emulator beside the same store on disk.

- ingest throughput (lines/s) of one 30-day Postfix log, by `msgtrace ingest` in a child process,
  into a local directory and into moto's server on 127.0.0.1 (started here, a process of its own);
- the same three writers (three MTAs' logs) ingesting at once, into each;
- query latency, in process (the best of 5): a 1-day trace by sender, a 30-day trace by recipient
  and a 1-day and 30-day count by status, on disk and on the emulator, with the S3 requests
  each query made (moto's recorder).

The emulator is a Python server on the same two cores: its numbers say what the store's protocol
costs in requests and round trips, not what AWS would do. Writes bench/results_s3.json and the
"Object storage" section of BENCHMARKS.md (between its markers). Nothing here is a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl

from bench.run import START, WORK, best, generated, query_context

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results_s3.json"
MARK_START, MARK_END = "<!-- object-storage:start -->", "<!-- object-storage:end -->"
FULL = {"lines": 1_000_000, "writers": 300_000}
QUICK = {"lines": 150_000, "writers": 50_000}


def ingest(store: str, logs: list[Path], writer: str, env: dict[str, str]) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "msgtrace",
        "ingest",
        "--store",
        store,
        "--writer",
        writer,
        "--timezone",
        "UTC",
        "--year",
        str(START.year),
        *map(str, logs),
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def timed_ingest(stores: list[str], logs: list[list[Path]], env: dict[str, str]) -> float:
    """Wall time of ingesting logs[i] into stores[i] as writer mx<i+1>, all at once."""
    t0 = time.perf_counter()
    procs = [ingest(s, lg, f"mx{i + 1}", env) for i, (s, lg) in enumerate(zip(stores, logs, strict=True))]
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"ingest failed: {err}")
    return time.perf_counter() - t0


def lines_of(paths: list[Path]) -> int:
    return sum(sum(1 for _ in open(p, "rb")) for p in paths)


def shapes(store: str) -> dict[str, dict[str, object]]:
    """The queries: parameters picked from the stored rows (a busy day's sender, a recipient)."""
    from msgtrace import message_trace

    ctx = query_context()
    end = START + dt.timedelta(days=30)
    day = START + dt.timedelta(days=10)
    some = message_trace(store, start_date=day.isoformat(), end_date=(day + dt.timedelta(days=1)).isoformat(), **ctx)
    real = some.filter(pl.col("SenderAddress") != "")  # the null sender <> is no address to look up
    sender = real.get_column("SenderAddress").mode().sort().item(0)  # the day's busiest sender
    recipient = real.get_column("RecipientAddress").mode().sort().item(0)
    return {
        "1-day trace by sender": {
            "start_date": day.isoformat(),
            "end_date": (day + dt.timedelta(days=1)).isoformat(),
            "sender_address": sender,
        },
        "30-day trace by recipient": {
            "start_date": START.isoformat(),
            "end_date": end.isoformat(),
            "recipient_address": recipient,
        },
        "1-day count by status": {
            "counts": True,
            "start_date": day.isoformat(),
            "end_date": (day + dt.timedelta(days=1)).isoformat(),
        },
        "30-day count by status": {"counts": True, "start_date": START.isoformat(), "end_date": end.isoformat()},
    }


def run_query(store: str, params: dict[str, object]) -> int:
    from msgtrace import message_trace, status_counts

    p = {k: v for k, v in params.items() if k != "counts"}
    if params.get("counts"):
        return status_counts(store, **p, **query_context()).height  # type: ignore[arg-type]
    return message_trace(store, **p, **query_context()).height  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the S3 emulator did not start at {url}") from None
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller inputs")
    args = ap.parse_args()
    cfg = QUICK if args.quick else FULL
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MOTO_RECORDER_FILEPATH", str(WORK / "moto-recording.jsonl"))
    from tests.helpers_s3 import Emulator  # the tests' emulator helpers: one way to talk to moto

    # the emulator in a process of its own, as a real endpoint would be (in this process its
    # request handling would compete with the queries for the interpreter lock)
    port = free_port()
    log = open(WORK / "moto-server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    try:
        emu = Emulator(f"http://127.0.0.1:{port}")
        wait_for(emu.url)
        os.environ.update(emu.env())
        env = {**os.environ}
        results = bench(cfg, emu, env)
    finally:
        server.terminate()
        server.wait()
        log.close()
    results["quick"] = args.quick
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    write_section(results)


def bench(cfg: dict[str, int], emu: object, env: dict[str, str]) -> dict:
    from tests.helpers_s3 import Emulator

    assert isinstance(emu, Emulator)
    out: dict = {"ingest": {}, "writers": {}, "queries": {}}
    log = generated("postfix", cfg["lines"], START, 30, f"s3-postfix-{cfg['lines']}.log")
    n = lines_of([log])
    local = WORK / "s3bench-local"
    stores = {"local disk": str(local), "S3 emulator": f"s3://{emu.create_bucket()}/store"}
    for label, store in stores.items():
        shutil.rmtree(local, ignore_errors=True) if label == "local disk" else None
        secs = timed_ingest([store], [[log]], env)
        out["ingest"][label] = {"lines": n, "seconds": secs, "lines_per_s": n / secs}
        print(f"ingest {label}: {n:,} lines in {secs:.1f} s = {n / secs:,.0f} lines/s", flush=True)

    # three MTAs at once
    from msgtrace.generate import generate

    mlogs = []
    for i in range(3):
        p = WORK / "logs" / f"s3-mx{i + 1}-{cfg['writers']}.log"
        if not p.exists():
            generate(
                "postfix",
                p,
                lines=cfg["writers"],
                start=START.isoformat(),
                days=30,
                tz="UTC",
                seed=11 + i,
                host=f"mx{i + 1}.example.org",
            )
        mlogs.append(p)
    m = lines_of(mlogs)
    shared_local = WORK / "s3bench-shared"
    shutil.rmtree(shared_local, ignore_errors=True)
    for label, store in {"local disk": str(shared_local), "S3 emulator": f"s3://{emu.create_bucket()}/store"}.items():
        secs = timed_ingest([store] * 3, [[p] for p in mlogs], env)
        out["writers"][label] = {"lines": m, "seconds": secs, "lines_per_s": m / secs}
        print(f"3 writers at once, {label}: {m:,} lines in {secs:.1f} s = {m / secs:,.0f} lines/s", flush=True)

    queries = shapes(stores["local disk"])
    for name, params in queries.items():
        row: dict = {}
        for label, store in stores.items():
            rows = run_query(store, params)
            secs = best(lambda store=store, params=params: run_query(store, params))
            row[label] = {"rows": rows, "seconds": secs}
            if label == "S3 emulator":
                emu.start_recording()
                run_query(store, params)
                row[label]["requests"] = len(emu.stop_recording())
        out["queries"][name] = row
        s3 = row["S3 emulator"]
        print(
            f"{name}: local {row['local disk']['seconds'] * 1000:.0f} ms, S3 emulator {s3['seconds'] * 1000:.0f} ms "
            f"({s3['requests']} requests), rows {s3['rows']}",
            flush=True,
        )
    return out


def write_section(r: dict) -> None:
    lines = [MARK_START, "## Object storage (S3 emulator beside local disk)", ""]
    lines.append(
        "`make bench-s3` (`python -m bench.s3`): moto's server on 127.0.0.1 as the S3 endpoint, on the same two "
        "cores as msgtrace, so these are costs of requests and round trips, not of AWS."
        + (" Quick run." if r["quick"] else "")
    )
    lines += ["", "| | local disk | S3 emulator |", "| --- | ---: | ---: |"]
    for label, key in (
        ("ingest, one writer (lines/s)", "ingest"),
        ("ingest, three writers at once (lines/s)", "writers"),
    ):
        loc, s3 = r[key]["local disk"], r[key]["S3 emulator"]
        lines.append(f"| {label}, {loc['lines']:,} lines | {loc['lines_per_s']:,.0f} | {s3['lines_per_s']:,.0f} |")
    for name, row in r["queries"].items():
        loc, s3 = row["local disk"], row["S3 emulator"]
        lines.append(
            f"| {name} ({s3['rows']:,} rows) | {loc['seconds'] * 1000:,.1f} ms | {s3['seconds'] * 1000:,.0f} ms "
            f"({s3['requests']} requests) |"
        )
    lines.append(MARK_END)
    section = "\n".join(lines)
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else ""
    if MARK_START in text:
        text = re.sub(re.escape(MARK_START) + r".*?" + re.escape(MARK_END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
    print(section)


if __name__ == "__main__":
    main()
