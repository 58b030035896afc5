"""The events write alone: CPU-s and bytes of writing a store's events with several Parquet
options, and what each costs the queries that read events (issue 16, "The events write").

    python -m bench.events_write STORE [--repeat N] [--only NAME,...]

STORE: an ingested store (e.g. 2 M generated Postfix lines). Its current events files are the
chunks, as the ingest's flushes wrote them; each candidate writes them again into a copy of the
store (messages hard-linked) under bench/work/events-write/, then the same queries run on each
copy in this process: detail by MessageTraceId, the ingest's orphan search (a few queue ids
and a whole flush's), a MessageTraceDetail report's events, a day's event count from footers,
and the open-state file. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from msgtrace.ingest.openset import queue_keys, related_events
from msgtrace.ingest.schema import EVENT_SCHEMA
from msgtrace.query.detail import events_for_messages, message_trace_detail
from msgtrace.query.filters import TraceFilter
from msgtrace.store import Store

WORK = Path(__file__).resolve().parent / "work" / "events-write"
Writer = Callable[[pl.DataFrame, Path], None]
ROW_GROUP_SIZE = 256_000  # the store's (msgtrace.store.files)
# free text and near-unique keys: their min/max prune nothing in a row group of 256 k rows
FREE_TEXT = ["detail", "subject", "message_id", "sender", "recipient", "orig_recipient", "client_host"]


def _polars(**kw: object) -> Writer:
    def write(df: pl.DataFrame, path: Path) -> None:
        df.write_parquet(path, row_group_size=ROW_GROUP_SIZE, **kw)  # type: ignore[arg-type]

    return write


def _pyarrow(**kw: object) -> Writer:
    def write(df: pl.DataFrame, path: Path) -> None:
        import pyarrow.parquet as pq

        pq.write_table(df.to_arrow(), path, row_group_size=ROW_GROUP_SIZE, **kw)

    return write


def _store_writer(df: pl.DataFrame, path: Path) -> None:
    """What the store's events table writes today, through its own write (path names the store
    and the day; the table names the file)."""
    day = dt.date.fromisoformat(path.parent.name.split("=", 1)[1])
    Store(path.parents[2]).events.write(day, df)


STATS = [c for c in EVENT_SCHEMA if c not in FREE_TEXT]
LOW_CARD = ["host", "organization", "format", "program", "kind", "status", "relay", "to_ip", "dsn", "source", "subject"]
CANDIDATES: dict[str, Writer] = {
    "polars zstd(3) stats (before)": _polars(compression="zstd", statistics=True),
    "polars zstd(1) stats": _polars(compression="zstd", compression_level=1, statistics=True),
    "polars lz4 stats": _polars(compression="lz4", statistics=True),
    "polars none stats": _polars(compression="uncompressed", statistics=True),
    "polars zstd(3) no stats": _polars(compression="zstd", statistics=False),
    "pyarrow zstd(3) stats dict": _pyarrow(compression="zstd", write_statistics=True),
    "pyarrow zstd(1) stats-some dict-some": _pyarrow(
        compression="zstd", compression_level=1, write_statistics=STATS, use_dictionary=LOW_CARD
    ),
    "pyarrow lz4 stats-some dict-some": _pyarrow(compression="lz4", write_statistics=STATS, use_dictionary=LOW_CARD),
    "store's writer (after)": _store_writer,
}


def chunks(store: Path) -> list[tuple[Path, pl.DataFrame]]:
    """Each current events file of the store with its rows, as the flushes wrote them."""
    s = Store(store)
    return [(f, s.events.scan_files([f]).collect()) for f in s.events.files()]


def copy_store(store: Path, name: str) -> Path:
    """A copy of the store without events: messages and state hard-linked (they are only read)."""
    out = WORK / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    shutil.rmtree(out, ignore_errors=True)
    for sub in ("messages", "_state"):
        if (store / sub).exists():
            shutil.copytree(store / sub, out / sub, copy_function=os.link)
    return out


def time_writes(writer: Writer, parts: list[tuple[Path, pl.DataFrame]], store: Path, out: Path, repeat: int) -> dict:
    """Best CPU-s and wall-s over `repeat` writes of every chunk, and the bytes written."""
    cpu, wall = [], []
    for r in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        for f, df in parts:
            target = out / f.relative_to(store)
            target.parent.mkdir(parents=True, exist_ok=True)
            writer(df, target)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        if r + 1 < repeat:
            shutil.rmtree(out / "events")
    size = sum(f.stat().st_size for f in (out / "events").rglob("*.parquet"))
    return {"cpu_s": min(cpu), "wall_s": min(wall), "mb": size / 1e6}


def best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall seconds and best CPU seconds (every thread's) of `repeat` calls: on a shared
    host the CPU time is the steadier of the two."""
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def sample(store: Path, seed: int = 7) -> dict:
    """What the queries ask for, picked once from the original store so every copy answers the same."""
    s = Store(store)
    rng = random.Random(seed)
    msgs = s.messages.scan()
    assert msgs is not None
    rows = msgs.select("message_trace_id", "received", "recipient_address").collect()
    picks = rows.sample(20, seed=seed)
    events = s.events.scan()
    assert events is not None
    keys = queue_keys(events.select("host", "queue_id", "next_queue_id").collect())
    day = rows.get_column("received").dt.date().min()
    return {
        "detail": picks.to_dicts(),
        "few_keys": keys.sample(50, seed=rng.randrange(1 << 30)),
        "flush_keys": keys.sample(min(keys.height, 20_000), seed=rng.randrange(1 << 30)),
        "report_rows": msgs.collect().sample(500, seed=seed),
        "day": day,
    }


def time_queries(store: Path, v: dict, repeat: int) -> dict:
    """Wall seconds (best of `repeat`) of the queries that read events, over one store."""
    s = Store(store)
    days = s.events.days()

    def detail() -> None:
        for m in v["detail"]:
            t = m["received"]
            flt = TraceFilter(
                start=t - dt.timedelta(days=1), end=t + dt.timedelta(days=1), message_trace_id=m["message_trace_id"]
            )
            message_trace_detail(store, flt, None)

    def search(keys: pl.DataFrame) -> Callable[[], object]:
        return lambda: related_events(s.events.scan(days), keys)

    def footer_count() -> None:
        s.events.rows(s.events.current_files(v["day"]))

    return {
        "detail x20": best(detail, repeat),
        "search 50 keys": best(search(v["few_keys"]), repeat),
        "search 20k keys": best(search(v["flush_keys"]), max(1, repeat // 2)),
        "report 500 rows": best(lambda: events_for_messages(store, v["report_rows"]), max(1, repeat // 2)),
        "day rows (status)": best(footer_count, repeat),
        "day read all": best(lambda: s.events.scan([v["day"]]).collect(), max(1, repeat // 2)),  # type: ignore[union-attr]
    }


def open_state(store: Path, repeat: int) -> list[dict]:
    """The open-state file (<store>/_state/open_events.parquet) written by each codec."""
    df = Store(store).state.read_frame("open_events.parquet", EVENT_SCHEMA)
    if df is None:
        return []
    out = []
    tmp = WORK / "open_events.parquet"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Writer | None] = {
        "zstd(3) (before)": _polars(compression="zstd", statistics=True),
        "lz4 no stats": _polars(compression="lz4", statistics=False),
        "none no stats": _polars(compression="uncompressed", statistics=False),
        "store's writer (after)": None,
    }
    for name, writer in writers.items():
        cpu = []
        for _ in range(repeat):
            c0 = time.process_time()
            if writer is None:
                Store(tmp.parent).state.write_frame(tmp.name, df, EVENT_SCHEMA)
                shutil.move(Store(tmp.parent).state.path(tmp.name), tmp)
            else:
                writer(df, tmp)
            cpu.append(time.process_time() - c0)
        read = best(lambda: pl.read_parquet(tmp), repeat)[1]
        out.append({"name": name, "cpu_ms": min(cpu) * 1e3, "read_ms": read * 1e3, "mb": tmp.stat().st_size / 1e6})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=None, help="comma-separated candidate names (substrings)")
    ap.add_argument("--no-queries", action="store_true")
    a = ap.parse_args()
    parts = chunks(a.store)
    n = sum(df.height for _, df in parts)
    print(f"{n:,} events in {len(parts)} files of {a.store}", flush=True)
    v = None if a.no_queries else sample(a.store)
    wanted = [w.strip() for w in a.only.split(",")] if a.only else None
    header = None
    for name, writer in CANDIDATES.items():
        if wanted and not any(w in name for w in wanted):
            continue
        out = copy_store(a.store, name)
        r = time_writes(writer, parts, a.store, out, a.repeat)
        q = time_queries(out, v, a.repeat) if v is not None else {}
        if header is None:
            header = ["candidate", "write CPU-s", "write wall-s", "MB", *(f"{k} ms wall/CPU" for k in q)]
            print(" | ".join(header), flush=True)
        cells = [
            name,
            f"{r['cpu_s']:.2f}",
            f"{r['wall_s']:.2f}",
            f"{r['mb']:.1f}",
            *(f"{w * 1e3:.0f}/{c * 1e3:.0f}" for w, c in q.values()),
        ]
        print(" | ".join(cells), flush=True)
    print("\nopen state | write CPU ms | read CPU ms | MB")
    for r in open_state(a.store, a.repeat):
        print(f"{r['name']} | {r['cpu_ms']:.0f} | {r['read_ms']:.0f} | {r['mb']:.2f}")


if __name__ == "__main__":
    main()
