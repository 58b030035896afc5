"""Where a batch ingest's peak memory is: RSS sampled every few milliseconds in-process, with what
every thread was doing (its innermost frames) at each new high-water mark.

    python -m bench.memtrace STORE PATH... [--timezone TZ] [--year Y] [--top 8] [--flushes]
        [--series] [--no-tidy] [--no-current]

tracemalloc sees none of it (Polars, Arrow and the compiled core allocate outside Python), so
"what holds the peak" is answered by when it is reached. Prints JSON: the peak, the stacks at the
last few highs; --flushes a line per flush (RSS, the C library's malloc in use and held free, the
sizes of what the run keeps); --series RSS every half second.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from bench.probe import arguments

_LIBC = ctypes.CDLL("libc.so.6")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def glibc_mb() -> dict[str, int]:
    """glibc malloc's bytes in use (heap and mmapped) and the free bytes it holds, in MB."""
    _LIBC.mallinfo2.restype = _MallInfo2
    m = _LIBC.mallinfo2()
    return {"glibc_used": round((m.uordblks + m.hblkhd) / 1e6), "glibc_free": round(m.fordblks / 1e6)}


def rollup_mb() -> dict[str, int]:
    """Anonymous, lazily freed (MADV_FREE: counted in RSS until the kernel wants the pages) and
    file-backed resident memory, in MB."""
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Anonymous", "LazyFree", "Rss", "AnonHugePages"):
                fields[name.lower()] = round(int(rest.split()[0]) / 1e3)
    return fields


def rss_mb() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def _frames() -> dict[str, list[str]]:
    """Each other thread's innermost frames (file:line function), innermost last."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = {}
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        stack = [f"{Path(fs.filename).name}:{fs.lineno} {fs.name}" for fs in traceback.extract_stack(frame)]
        ours = [s for s in stack if not s.startswith(("threading.py", "thread.py", "_base.py"))]
        out[names.get(ident, str(ident))] = ours[-6:]
    return out


class Sampler(threading.Thread):
    """Samples RSS; keeps the stacks at each new high (a new entry `step` MB above the last)."""

    def __init__(self, every_s: float, step: float = 5.0) -> None:
        super().__init__(daemon=True, name="memtrace")
        self.every_s, self.step = every_s, step
        self.peak = 0.0
        self.highs: list[tuple[float, float, dict[str, Any]]] = []
        self.series: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self.stop.is_set():
            now, t = rss_mb(), time.perf_counter() - self.t0
            if not self.series or t - self.series[-1][0] > 0.5:
                self.series.append((round(t, 1), round(now)))
            if now > self.peak:
                if not self.highs or now > self.highs[-1][1] + self.step:
                    self.highs.append((t, now, {**glibc_mb(), **rollup_mb(), **_frames()}))
                elif now > self.highs[-1][1] + 1:
                    self.highs[-1] = (t, now, {**glibc_mb(), **rollup_mb(), **_frames()})
                self.peak = now
            time.sleep(self.every_s)


def _watch_flushes(pipeline: Any) -> None:
    """Print, at each flush's commit, RSS and the sizes of what the run holds."""
    commit = pipeline.Pipeline._commit

    def traced(self: Any, plan: Any, written: Any) -> None:
        commit(self, plan, written)
        days = self.report.current_rows._days
        line = {
            "rss": round(rss_mb()),
            **glibc_mb(),
            "current_mb": round(sum(p.estimated_size() for d in days.values() for p in d) / 1e6),
            "current_messages": self.report.stored_messages,
            "open_mb": round(self.open.events.estimated_size() / 1e6),
            "buffer_mb": round(sum(b.estimated_size() for b in self._buffer) / 1e6),
            "parsed": plan.parsed.height,
            "parsed_mb": round(plan.parsed.estimated_size() / 1e6),
            "rows": written.rows.height,
            "rows_mb": round(written.rows.estimated_size() / 1e6),
        }
        print(json.dumps(line), flush=True)

    pipeline.Pipeline._commit = traced


def main() -> None:
    ap = arguments()
    ap.add_argument("--every-ms", type=float, default=5)
    ap.add_argument("--top", type=int, default=8, help="how many of the last highs to show")
    ap.add_argument("--series", action="store_true")
    ap.add_argument("--flushes", action="store_true", help="a line per flush: RSS and what is held")
    ap.add_argument("--no-tidy", action="store_true", help="stop before the final compaction")
    ap.add_argument("--no-current", action="store_true", help="keep no current rows (the counts are then 0)")
    a = ap.parse_args()

    from msgtrace.ingest import pipeline
    from msgtrace.store import StoreLock

    if a.flushes:
        _watch_flushes(pipeline)
    if a.no_current:
        pipeline.CurrentRows.after = lambda *args: None  # type: ignore[method-assign]
    if a.no_tidy:
        pipeline.tidy = lambda store, min_files: print(json.dumps({"before_tidy_rss": round(rss_mb()), **glibc_mb()}))
    sampler = Sampler(a.every_ms / 1000)
    sampler.start()
    opts = pipeline.IngestOptions(timezone=a.timezone, year=a.year)
    with StoreLock(Path(a.store)):
        rep = pipeline.ingest_paths(a.paths, Path(a.store), opts)
    sampler.stop.set()
    sampler.join()
    print(json.dumps({"lines": rep.lines, "stored_rows": rep.stored_rows, "peak_mb": round(sampler.peak)}))
    for t, mb, frames in sampler.highs[len(sampler.highs) - a.top :]:
        print(json.dumps({"t": round(t, 2), "mb": round(mb), "threads": frames}, indent=1))
    if a.series:
        print(json.dumps(sampler.series))


if __name__ == "__main__":
    main()
