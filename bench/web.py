"""`msgtrace web` latency: a 1-day sender search (GET /api/v1/trace) and the dashboard, 8 concurrent
clients on loopback against one `msgtrace web` process. Bounded: each client sends at most a fixed
number of requests and stops at a time limit, whichever comes first.

Part of `make bench` (bench.run calls bench_web over the 30-day store). Alone, over a small
synthetic store:

    python -m bench.web --synthetic 200000
    python -m bench.web --store bench/work/store-30d [--cache-mb 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import polars as pl

BIN = Path(sys.executable).parent
CLIENTS = 8
# search p95 and dashboard p95 targets (issue 13), seconds
TARGETS = {
    "search": 0.100,
    "search_senders": 0.100,
    "dashboard": 0.300,
    "dashboard_30d": 0.300,
    "dashboard_cached": 0.300,
}
SENDERS = 16  # the rotating search: this many other busy senders of the same day


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(store: Path, now: str, cache_mb: int | None = None) -> tuple[subprocess.Popen, int]:
    """`msgtrace web` on a free loopback port, answering /healthz."""
    port = free_port()
    cache = [] if cache_mb is None else ["--cache-mb", str(cache_mb)]
    proc = subprocess.Popen(
        [
            str(BIN / "msgtrace"),
            "web",
            "--store",
            str(store),
            "--port",
            str(port),
            "--now",
            now,
            "--timezone",
            "UTC",
            *cache,
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("msgtrace web did not start")


def load(port: int, paths: list[str], per_client: int, limit_s: float) -> list[float]:
    """CLIENTS threads, each with its own keep-alive connection, sending paths in turn; latencies in seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + limit_s
    failures: list[str] = []

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for i in range(per_client):
            if time.monotonic() > stop_at:
                break
            path = paths[(k * per_client + i) % len(paths)]
            t0 = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            took = time.perf_counter() - t0
            if response.status != 200:
                failures.append(f"{response.status} {path}")
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")
    return latencies


def percentiles(latencies: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"requests": len(latencies), "p50_s": qs[49], "p95_s": qs[94], "max_s": max(latencies)}


def busy_senders(store: Path, day: dt.date, now: str, n: int) -> list[str]:
    """The n senders with the most rows on this day (the search's shape with other values)."""
    from msgtrace import message_trace_lazy

    one = message_trace_lazy(store, start_date=day, end_date=day + dt.timedelta(days=1), now=now, max_age_days=0)
    busiest = one.filter(pl.col("sender_lower") != "").group_by("sender_lower").len().sort("len", "sender_lower")
    return busiest.tail(n).collect().get_column("sender_lower").to_list()[::-1]


def search_path(day: dt.date, sender: str) -> str:
    """GET /api/v1/trace: one day, one sender (shape a of the query benchmark)."""
    return "/api/v1/trace?" + urlencode(
        {
            "start_date": day.isoformat(),
            "end_date": (day + dt.timedelta(days=1)).isoformat(),
            "sender_address": sender,
            "max_age_days": 0,
        }
    )


def bench_web(
    store: Path, day: dt.date, sender: str, now: str, results: dict, per_client: int = 25, cache_mb: int | None = None
) -> dict:
    """Search and dashboard latency under 8 concurrent clients; stores results["web"] and returns it.

    cache_mb: the server's --cache-mb (None: its default)."""
    others = [s for s in busy_senders(store, day, now, SENDERS + 1) if s != sender][:SENDERS]
    proc, port = start_server(store, now, cache_mb)
    out: dict = {"clients": CLIENTS, "cache_mb": cache_mb, "senders": len(others)}
    try:
        search = search_path(day, sender)
        load(port, [search], 2, 60)  # warm-up: imports, the day's first read (into the column cache)
        out["search"] = percentiles(load(port, [search], per_client, 120))
        # other senders of the same day, each request another one: no answer is ever repeated
        rotating = [search_path(day, s) for s in others]
        out["search_senders"] = percentiles(load(port, rotating, per_client, 120))
        # the dashboard at a different `now` each request: no cached figure is reused
        base = dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
        cold = [
            "/dashboard?" + urlencode({"now": (base - dt.timedelta(seconds=i)).isoformat()})
            for i in range(CLIENTS * per_client)
        ]
        load(port, cold[:2], 1, 60)  # warm-up: vl-convert's engine starts once
        out["dashboard"] = percentiles(load(port, cold, max(per_client // 2, 4), 180))
        # the 30-day range shown (chart and tops over the month: whole days from their stored counts)
        month = [f"{path}&range=30d" for path in cold]
        load(port, month[-2:], 1, 120)  # warm-up: the month's days read once
        out["dashboard_30d"] = percentiles(load(port, month, max(per_client // 2, 4), 180))
        out["dashboard_cached"] = percentiles(load(port, ["/dashboard"], per_client, 60))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for name in TARGETS:
        m = out[name]
        print(
            f"[web] {name}: {m['requests']} requests, p50 {m['p50_s'] * 1000:.1f} ms, "
            f"p95 {m['p95_s'] * 1000:.1f} ms (target p95 <= {TARGETS[name] * 1000:.0f} ms)",
            flush=True,
        )
    results["web"] = out
    return out


def _synthetic_store(rows: int, root: Path) -> tuple[Path, dt.date, str, str]:
    """A store of synthetic rows over 30 days (tests.helpers_store), a busy sender of day 15, and `now`."""
    from msgtrace import message_trace_lazy
    from tests.helpers_store import synthetic, utc, write_store

    start = utc(2026, 5, 1)
    store = write_store(root / "store", synthetic(rows, start, 30))
    day = (start + dt.timedelta(days=15)).date()
    now = (start + dt.timedelta(days=31)).isoformat().replace("+00:00", "Z")
    one = message_trace_lazy(store, start_date=day, end_date=day + dt.timedelta(days=1), now=now, max_age_days=0)
    busiest = one.group_by("sender_lower").len().sort("len", "sender_lower").collect()
    return store, day, str(busiest.get_column("sender_lower")[-1]), now


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", type=int, default=200_000, help="rows of the synthetic 30-day store")
    ap.add_argument("--per-client", type=int, default=25, help="requests per client and measurement")
    ap.add_argument(
        "--store", type=Path, help="an existing store instead (bench/work/store-30d: day 15, its busiest sender)"
    )
    ap.add_argument("--cache-mb", type=int, help="the server's --cache-mb (default: its own default)")
    args = ap.parse_args()
    if args.store is not None:
        from bench.run import START, query_context

        day = START + dt.timedelta(days=15)
        now = query_context()["now"]
        sender = busy_senders(args.store, day, now, 1)[0]
        results: dict = {}
        bench_web(args.store, day, sender, now, results, args.per_client, args.cache_mb)
        print(json.dumps(results["web"], indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp:
        store, day, sender, now = _synthetic_store(args.synthetic, Path(tmp))
        results: dict = {}
        bench_web(store, day, sender, now, results, args.per_client, args.cache_mb)
        print(json.dumps(results["web"], indent=1))


if __name__ == "__main__":
    main()
