"""Where an ingest's CPU time goes: thread CPU-seconds per pipeline stage, per million lines.

    python -m bench.stages STORE LOG [--timezone TZ] [--year Y]

Runs the pipeline's background threads inline (each submitted step at once, in the caller's
thread), so that the process's CPU clock, Polars' worker threads included, can be split between
the stages (reading, parsing, the flush's plan and gather, correlating, the open set's update,
writing events and message rows) that the real run overlaps on three threads; ingests LOG into
a fresh STORE and prints one JSON line. CPU time, not wall time: the host is shared.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

_SPENT: dict[str, float] = {}
_LOCK = threading.Lock()
_DEPTH = threading.local()


class _Inline:
    """A ThreadPoolExecutor that runs each task at once, in the caller's thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # the caller's result() raises it, as a pool's would
            f.set_exception(e)
        return f

    def shutdown(self, wait: bool = True, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn, the process's CPU time while it runs added to _SPENT[name] (an inner timed stage is not
    counted twice)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        outer = getattr(_DEPTH, "stage", None)
        _DEPTH.stage = name
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = time.process_time() - t
            _DEPTH.stage = outer
            with _LOCK:
                _SPENT[name] = _SPENT.get(name, 0.0) + spent
                if outer is not None:
                    _SPENT[outer] = _SPENT.get(outer, 0.0) - spent

    return run


def _wrap_read_chunks(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The reader is a generator: its time is spent in each next()."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        it = fn(*args, **kwargs)
        step = _timed("read", lambda: next(it, None))
        while (chunk := step()) is not None:
            yield chunk

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("log")
    ap.add_argument("--timezone", default="UTC")
    ap.add_argument("--year", type=int, default=None)
    a = ap.parse_args()

    from msgtrace.ingest import openset, pipeline
    from msgtrace.store import Store, StoreLock

    pipeline.ThreadPoolExecutor = _Inline  # type: ignore[misc,assignment]
    cls = pipeline.Pipeline
    cls._parse = _timed("parse", cls._parse)
    cls._plan = _timed("plan (unique, unseen)", cls._plan)
    cls._gather = _timed("gather (related events)", cls._gather)
    cls._commit = _timed("commit", cls._commit)
    pipeline.tidy = _timed("compact", pipeline.tidy)
    pipeline.correlate = _timed("correlate", pipeline.correlate)
    pipeline.stale_rows = _timed("stale rows", pipeline.stale_rows)
    pipeline.previous_rows = _timed("stale rows", pipeline.previous_rows)
    openset.OpenSet.update = _timed("open set update", openset.OpenSet.update)
    store = Path(a.store)
    s = Store(store)
    type(s.events).append = _timed("store append (events)", type(s.events).append)
    type(s.messages).replace = _timed("store replace (message rows)", type(s.messages).replace)
    pipeline.read_open = _wrap_read_chunks(pipeline.read_open)

    opts = pipeline.IngestOptions(timezone=a.timezone, year=a.year)
    wall, cpu = time.perf_counter(), time.process_time()
    with StoreLock(store):
        rep = pipeline.ingest_paths([a.log], store, opts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    per_m = 1e6 / max(rep.lines, 1)
    stages = {k: round(v * per_m, 3) for k, v in sorted(_SPENT.items(), key=lambda kv: -kv[1])}
    stages["other"] = round(cpu * per_m - sum(stages.values()), 3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "lines": rep.lines,
                "cpu_s_per_m_lines": round(cpu * per_m, 3),
                "wall_s": round(wall, 2),
                "lines_per_cpu_s": round(rep.lines / cpu),
                "peak_rss_mb": round(peak),
                "cpu_s_per_m_by_stage": stages,
            }
        )
    )


if __name__ == "__main__":
    main()
