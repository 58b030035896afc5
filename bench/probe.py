"""Ingest in a child process and print one JSON line: lines, rows, seconds, lines/s, MB/s, peak RSS.

    python -m bench.probe STORE PATH... [--timezone TZ] [--year Y] [--flush-lines N] [--no-compact]

--flush-lines makes the pipeline flush every N lines, as the watcher does under a steady stream,
so the store gets the many small files continuous ingestion produces.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import polars as pl


def arguments() -> argparse.ArgumentParser:
    """The arguments of a bench run over some logs: STORE PATH... [--timezone TZ] [--year Y]."""
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--timezone", default="UTC")
    ap.add_argument("--year", type=int, default=None)
    return ap


def main() -> None:
    ap = arguments()
    ap.add_argument("--flush-lines", type=int, default=None)
    ap.add_argument("--no-compact", action="store_true")
    a = ap.parse_args()

    from msgtrace.ingest import pipeline
    from msgtrace.store import Store, StoreLock

    opts = pipeline.IngestOptions(timezone=a.timezone, year=a.year)
    if a.flush_lines:
        # ~130 bytes a line: read and flush in steps of about that many lines
        opts.flush_events = max(1, int(a.flush_lines * 0.7))
        opts.chunk_bytes = a.flush_lines * 130
    if a.no_compact:  # leave the store as continuous ingestion leaves it between compactions
        opts.compact_min_files = 10**9
        pipeline.tidy = lambda store, min_files: None
    store = Path(a.store)
    nbytes = sum(Path(p).stat().st_size for p in a.paths)
    t = time.perf_counter()
    with StoreLock(store):
        rep = pipeline.ingest_paths(a.paths, store, opts)
    secs = time.perf_counter() - t
    lf = Store(store).messages.scan()
    rows = lf.select(pl.len()).collect().item() if lf is not None else 0
    peak = _peak_rss_mb()
    print(
        json.dumps(
            {
                "lines": rep.lines,
                "rows": rows,
                "unknown": rep.unknown,
                "seconds": secs,
                "lines_per_s": rep.lines / secs,
                "mb_per_s": nbytes / secs / 1e6,
                "input_mb": nbytes / 1e6,
                "peak_rss_mb": peak,
            }
        )
    )


def _peak_rss_mb() -> float:
    """This process's own peak resident memory. Not ru_maxrss: Linux carries it across fork and exec,
    so a probe started by a bench that had just generated a 10 M-line log in-process reported the
    bench's 5.9 GB. VmHWM is the high-water mark of this program's own address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
