"""The parse step alone: CPU-seconds per million lines of a Postfix (or Exim) log, the compiled
parser on the production path beside the Polars parser it replaced (tests/polars_<format>.py), and grep.

    python -m bench.parse LOG [--format postfix|exim] [--limit LINES] [--reference] [--repeat N]

Reads the log in the pipeline's chunks first (not timed), then parses every chunk with each
parser, N times (the least CPU time counts: other work on a shared host only ever adds), and
prints one JSON line. CPU time is the process's (every thread's), so a parser that spreads over
both cores is not flattered by wall time on a busy machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import subprocess
import time
from pathlib import Path

from msgtrace.ingest.formats import parser
from msgtrace.ingest.formats.context import ParseContext
from msgtrace.ingest.reader import read_chunks

# what grep looks for: the delivery outcomes, the yardstick of a scan over the same bytes
_GREP = {"postfix": "status=(sent|bounced)", "exim": " (=>|\\*\\*|==) "}


def cpu_seconds(parse, chunks: list, repeat: int) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """(CPU s, wall s, events) of parsing every chunk with one context, as one source; the
    run with the least CPU time of `repeat`."""
    runs = []
    for _ in range(repeat):
        ctx = ParseContext(timezone="UTC", year=2026)
        c, w, events = time.process_time(), time.perf_counter(), 0
        for chunk in chunks:
            events += parse(chunk.lines, ctx).events.height
        runs.append((time.process_time() - c, time.perf_counter() - w, events))
    return min(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--format", default="postfix", choices=sorted(_GREP))
    ap.add_argument("--limit", type=int, default=None, help="parse at most this many lines")
    ap.add_argument("--reference", action="store_true", help="also time the Polars reference parser")
    ap.add_argument("--repeat", type=int, default=3, help="parse this many times, report the least CPU time")
    a = ap.parse_args()
    chunks, lines = [], 0
    for chunk in read_chunks(Path(a.log), 0, 0):
        chunks.append(chunk)
        lines += chunk.lines.height
        if a.limit and lines >= a.limit:
            break
    out: dict = {"lines": lines}
    cpu, wall, events = cpu_seconds(parser(a.format).parse, chunks, a.repeat)
    out["rust"] = {"cpu_s_per_m": cpu / lines * 1e6, "wall_s": wall, "lines_per_cpu_s": lines / cpu, "events": events}
    if a.reference:
        reference = importlib.import_module(f"tests.polars_{a.format}")
        cpu, wall, events = cpu_seconds(reference.parse, chunks, a.repeat)
        out["polars"] = {
            "cpu_s_per_m": cpu / lines * 1e6,
            "wall_s": wall,
            "lines_per_cpu_s": lines / cpu,
            "events": events,
        }
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["grep", "-cE", _GREP[a.format], a.log], capture_output=True, env={"LC_ALL": "C"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["grep_wall_s"] = time.perf_counter() - t
    grep_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    out["grep_cpu_s_per_m"] = grep_cpu / lines * 1e6
    print(json.dumps(out))


if __name__ == "__main__":
    main()
