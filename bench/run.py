"""`make bench`: ingest throughput, query latency beside DuckDB and grep, `msgtrace web` latency
under 8 clients, small files vs compacted.

Writes BENCHMARKS.md and bench/results.json. Work files (generated logs, stores) live under
bench/work/ (git-ignored) and are reused between runs when their parameters match.
Targets are compared with values measured in the same run; nothing here is a test.
The events write alone (Parquet options, CPU-s and their queries): `python -m bench.events_write STORE`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from bench.parse import GREP
from msgtrace.store import Store

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
BIN = Path(sys.executable).parent
FULL = {"ingest": [2_000_000, 10_000_000], "formats": 2_000_000, "rows": 10_000_000, "days": 30}
QUICK = {"ingest": [200_000, 1_000_000], "formats": 200_000, "rows": 1_000_000, "days": 30}
START = dt.date(2026, 5, 1)


def sh(cmd: list[str], **kw: object) -> subprocess.CompletedProcess:
    """Run a command, failing loudly."""
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def generated(fmt: str, lines: int, start: dt.date, days: float, name: str, seed: int = 1) -> Path:
    """A generated log (cached by name)."""
    out = WORK / "logs" / name
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        from msgtrace.generate import generate

        generate(fmt, out, lines=lines, start=start.isoformat(), days=days, tz="UTC", seed=seed)
    return out


def ingest_probe(store: Path, paths: list[Path], extra: list[str] | None = None) -> dict:
    """Ingest in a child process; wall time, lines and the child's peak RSS."""
    shutil.rmtree(store, ignore_errors=True)
    cmd = [sys.executable, "-m", "bench.probe", str(store), *map(str, paths), *(extra or [])]
    res = sh(cmd)
    return json.loads(res.stdout.strip().splitlines()[-1])


def best(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Best wall time of several runs, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def grep_count_time(fmt: str, log: Path) -> float:
    """Wall seconds of `LC_ALL=C grep -cE` over a log (the best of three: grep reads from the page cache)."""
    return best(lambda: subprocess.run(["grep", "-cE", GREP[fmt], str(log)], capture_output=True,
                                       env={"LC_ALL": "C"}), repeat=3)  # fmt: skip


def bench_ingest(cfg: dict, results: dict) -> float:
    """Section 1: lines/s, MB/s, peak RSS, and grep -cE over the same file; returns rows per line
    of generated Postfix."""
    rows_per_line = 0.3
    for n in cfg["ingest"]:
        log = generated("postfix", n, START, max(1, n // 1_000_000), f"postfix-{n}.log")
        r = ingest_probe(WORK / "store-ingest", [log], ["--timezone", "UTC", "--year", "2026"])
        r["format"], r["target_lines"] = "postfix", n
        r["grep_s"] = grep_count_time("postfix", log)
        results["ingest"].append(r)
        rows_per_line = r["rows"] / max(r["lines"], 1)
        print(f"ingest postfix {n:,}: {r['lines_per_s']:,.0f} lines/s, {r['peak_rss_mb']:.0f} MB", flush=True)
    # the parse step alone, the compiled parser beside the Polars one it replaced (bench/parse.py)
    log = generated(
        "postfix", cfg["ingest"][0], START, max(1, cfg["ingest"][0] // 1_000_000), f"postfix-{cfg['ingest'][0]}.log"
    )
    results["parse"] = json.loads(
        sh([sys.executable, "-m", "bench.parse", str(log), "--reference"]).stdout.strip().splitlines()[-1]
    )
    p = results["parse"]
    print(
        f"parse postfix: {p['rust']['cpu_s_per_m']:.2f} CPU-s per 1M lines (Polars {p['polars']['cpu_s_per_m']:.2f})",
        flush=True,
    )
    # the watcher's append-to-queryable latency, idle and beside a busy server's appends (bench/watch.py)
    results["watch"] = json.loads(
        sh([sys.executable, "-m", "bench.watch", str(log), "--prefill", str(min(200_000, cfg["ingest"][0] // 2))])
        .stdout.strip()
        .splitlines()[-1]
    )
    w = results["watch"]
    print(
        f"watch: queryable after {w['idle']['median_s']:.2f} s idle, {w['busy']['median_s']:.2f} s beside "
        f"{w['busy']['lines_per_s']:,} lines/s (median)",
        flush=True,
    )
    for fmt in ("exim", "sendmail", "exchange"):
        n = cfg["formats"]
        try:
            log = generated(fmt, n, START, 1, f"{fmt}-{n}.log")
        except Exception as e:  # a format the generator lacks is reported, not fatal
            results["ingest"].append({"format": fmt, "error": str(e)})
            continue
        r = ingest_probe(WORK / "store-ingest", [log], ["--timezone", "UTC", "--year", "2026"])
        r["format"], r["target_lines"] = fmt, n
        r["grep_s"] = grep_count_time(fmt, log)
        results["ingest"].append(r)
        print(f"ingest {fmt} {n:,}: {r['lines_per_s']:,.0f} lines/s", flush=True)
    return rows_per_line


def thirty_days(cfg: dict, rows_per_line: float) -> list[Path]:
    """One generated Postfix log per day (like daily rotation), sized for cfg['rows'] rows in all."""
    per_day = int(cfg["rows"] / max(rows_per_line, 0.05) / cfg["days"])
    return [
        generated("postfix", per_day, START + dt.timedelta(days=d), 1, f"days-{per_day}/mail-{d:02d}.log", seed=d + 1)
        for d in range(cfg["days"])
    ]


def pick(store: Path) -> dict:
    """Query values that exist in the store: a busy sender on day 15, a recipient, an id, a domain."""
    messages = Store(store).messages
    lf, day = messages.scan(), START + dt.timedelta(days=15)
    one = messages.scan([day])
    assert lf is not None and one is not None, f"no messages on {day}"
    sender = (one.filter(pl.col("sender_lower") != "").group_by("sender_lower").len().sort("len").collect()).get_column(
        "sender_lower"
    )[-1]
    # the first message of the day: the same pick whatever order compaction left the rows in
    rec = (
        one.filter(pl.col("recipient_lower") != "")
        .select("recipient_lower", "message_trace_id", "received")
        .sort("received", "message_trace_id", "recipient_lower")
        .head(1)
        .collect()
    )
    # (f) pages through the busiest recipient domain: the largest result a real query would page
    top = (
        lf.select(pl.col("recipient_lower").str.extract(r"@(.+)$", 1).alias("d"))
        .group_by("d")
        .len()
        .sort("len")
        .collect()
    )
    domain = "*@" + top.get_column("d")[-1]
    return {
        "day": day,
        "sender": sender,
        "recipient": rec.get_column("recipient_lower")[0],
        "trace_id": rec.get_column("message_trace_id")[0],
        "domain": domain,
    }


def query_shapes(v: dict) -> dict[str, dict]:
    """The six query shapes as trace parameters."""
    d0 = v["day"]
    end = START + dt.timedelta(days=30)
    return {
        "a": {
            "start_date": d0.isoformat(),
            "end_date": (d0 + dt.timedelta(days=1)).isoformat(),
            "sender_address": v["sender"],
        },
        "b": {
            "start_date": d0.isoformat(),
            "end_date": (d0 + dt.timedelta(days=2)).isoformat(),
            "sender_address": v["sender"],
        },
        "c": {"start_date": START.isoformat(), "end_date": end.isoformat(), "recipient_address": v["recipient"]},
        "e": {"message_trace_id": v["trace_id"], "start_date": START.isoformat(), "end_date": end.isoformat()},
        # two days of the busiest domain: a large result (the contract caps one query at 1,000,000 rows)
        "f": {
            "start_date": (START + dt.timedelta(days=10)).isoformat(),
            "end_date": (START + dt.timedelta(days=12)).isoformat(),
            "recipient_address": v["domain"],
            "page": 50,
            "page_size": 1000,
        },
    }


def query_context() -> dict:
    """The query parameters every benchmark query shares: a day after the data, no age limit, UTC."""
    return {"now": (START + dt.timedelta(days=31)).isoformat(), "max_age_days": 0, "timezone": "UTC"}


def cli_args(params: dict) -> list[str]:
    args = []
    for k, val in params.items():
        args += ["--" + k.replace("_", "-"), str(val)]
    return args


def bench_queries(store: Path, v: dict, results: dict, label: str, with_others: bool) -> None:
    """In-process, CLI, DuckDB (and grep outside) for each shape; (d) is count by status."""
    from msgtrace import message_trace

    common = query_context()
    out = results.setdefault("queries", {}).setdefault(label, {})
    for shape, params in query_shapes(v).items():
        p = {**params, **common}
        rows = message_trace(store, **p).height
        t_in = best(lambda p=p: message_trace(store, **p))
        cmd = [
            str(BIN / "msgtrace"),
            "trace",
            "--store",
            str(store),
            "--output",
            "jsonl",
            "--now",
            common["now"],
            "--max-age-days",
            "0",
            "--timezone",
            "UTC",
            *cli_args(params),
        ]
        t_cli = best(lambda cmd=cmd: sh(cmd), repeat=3)
        out[shape] = {"rows": rows, "in_process_s": t_in, "cli_s": t_cli}
        if with_others:
            out[shape]["duckdb_s"] = duckdb_time(store, shape, params)
        print(f"[{label}] ({shape}) rows={rows} in-process {t_in * 1000:.1f} ms, CLI {t_cli * 1000:.0f} ms", flush=True)
    t_d = best(lambda: status_counts(store))
    out["d"] = {"rows": status_counts(store).height, "in_process_s": t_d}
    if with_others:
        out["d"]["duckdb_s"] = duckdb_time(store, "d", {})
    print(f"[{label}] (d) count by status {t_d * 1000:.1f} ms", flush=True)


def bench_follow(store: Path, day: dt.date, sender: str, results: dict) -> None:
    """What --follow costs over a one-host store (no hop to find, every row still checked): shape (b)
    and the first 1,000 rows of a two-day window, in process, with and without follow."""
    from msgtrace import message_trace

    end = (day + dt.timedelta(days=2)).isoformat()
    shapes = {
        "b": {"start_date": day.isoformat(), "end_date": end, "sender_address": sender},
        "window": {"start_date": day.isoformat(), "end_date": end, "page_size": 1000},
    }
    out = results.setdefault("follow", {})
    for k, params in shapes.items():
        p = {**params, **query_context()}
        plain = best(lambda p=p: message_trace(store, **p), repeat=3)
        followed = best(lambda p=p: message_trace(store, **p, follow=True), repeat=3)
        out[k] = {"rows": message_trace(store, **p, follow=True).height, "plain_s": plain, "follow_s": followed}
        print(f"[follow] ({k}) {plain * 1000:.0f} ms, --follow {followed * 1000:.0f} ms", flush=True)


def status_counts(store: Path) -> pl.DataFrame:
    """(d): count by status over all 30 days, through msgtrace's own query API (msgtrace.status_counts)."""
    from msgtrace import status_counts as count_by_status

    end = START + dt.timedelta(days=30)
    return count_by_status(store, start_date=START.isoformat(), end_date=end.isoformat(), **query_context())


def duckdb_time(store: Path, shape: str, params: dict) -> float | None:
    """The same query in DuckDB over the same files (None when duckdb is not installed)."""
    try:
        import duckdb
    except ImportError:
        return None
    con = duckdb.connect()
    src = f"read_parquet('{store}/messages/*/*.parquet', hive_partitioning=true)"
    order = "order by received desc, recipient_address"
    if shape == "d":
        sql = f"select status, count(*) from {src} group by 1"
    elif shape == "e":
        sql = f"select * from {src} where message_trace_id = '{params['message_trace_id']}' {order}"
    else:
        s, e = params["start_date"], params["end_date"]
        where = f"date >= '{s}' and date <= '{e}' and received >= '{s}'::timestamptz and received < '{e}'::timestamptz"
        if "sender_address" in params:
            where += f" and sender_lower = '{params['sender_address']}'"
        if "recipient_address" in params:
            r = params["recipient_address"]
            where += f" and recipient_lower like '%{r[1:]}'" if r.startswith("*") else f" and recipient_lower = '{r}'"
        limit = " limit 1000 offset 49000" if shape == "f" else " limit 1000"
        sql = f"select * from {src} where {where} {order}{limit}"
    con.execute("set TimeZone='UTC'")
    return best(lambda: con.execute(sql).fetchall())


def grep_time(logs: list[Path], needle: str) -> float:
    """grep -F over the raw logs: a lower bound for answering the question by hand."""
    return best(lambda: subprocess.run(["grep", "-c", "-F", needle, *map(str, logs)], capture_output=True), repeat=2)


def small_files(logs: list[Path], v: dict, results: dict) -> None:
    """Section 3: a store written by continuous ingestion (many small flushes), then compacted."""
    store = WORK / "store-small"
    days = logs[14:17]  # the days the (a)/(b) queries read, and one on either side
    r = ingest_probe(store, days, ["--timezone", "UTC", "--year", "2026", "--flush-lines", "20000", "--no-compact"])
    files = sum(1 for _ in (store / "messages").rglob("*.parquet"))
    results["small_files"] = {"ingest": r, "message_files": files}
    shapes = {k: p for k, p in query_shapes(v).items() if k in ("a", "b")}
    from msgtrace import message_trace

    common = query_context()
    for label in ("uncompacted", "compacted"):
        if label == "compacted":
            sh([str(BIN / "msgtrace"), "compact", "--store", str(store)])
            results["small_files"]["message_files_after"] = sum(1 for _ in (store / "messages").rglob("*.parquet"))
        for shape, params in shapes.items():
            t = best(lambda p={**params, **common}: message_trace(store, **p))
            results["small_files"].setdefault(label, {})[shape] = t
            print(f"[small files, {label}] ({shape}) {t * 1000:.1f} ms", flush=True)


def bench_report(store: Path, results: dict, days: int = 30, start: dt.date = START) -> None:
    """Section 4: `msgtrace report` (every section, json) over the whole month, in process and from the CLI."""
    from msgtrace.query import report as R
    from msgtrace.query.filters import TraceFilter
    from msgtrace.query.report_store import report

    end = start + dt.timedelta(days=days)
    ctx = query_context()
    flt = TraceFilter.from_params(start_date=start.isoformat(), end_date=end.isoformat(), **ctx)
    options = R.ReportOptions(timezone="UTC", now=flt.end)
    rows = report(store, flt, options)["totals"]["Rows"].sum()
    t_in = best(lambda: report(store, flt, options), repeat=3)
    # the same figures from the rows, as a report whose days are not counted yet (or filtered) is made
    t_rows = best(lambda: R.build(R.report_rows(store, flt), options), repeat=1)
    cmd = [str(BIN / "msgtrace"), "report", "--store", str(store), "--output", "json", "--start-date", start.isoformat(),
           "--end-date", end.isoformat(), "--now", ctx["now"], "--timezone", "UTC"]  # fmt: skip
    t_cli = best(lambda: sh(cmd), repeat=3)
    results["report"] = {"rows": int(rows), "days": days, "in_process_s": t_in, "cli_s": t_cli, "from_rows_s": t_rows}
    print(
        f"[report] {rows:,} rows over {days} days: in-process {t_in:.2f} s, CLI {t_cli:.2f} s, "
        f"from the rows {t_rows:.2f} s",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller inputs (minutes, not tens of minutes)")
    ap.add_argument("--queries-only", action="store_true", help="reuse the last run's ingest results and store")
    ap.add_argument(
        "--ingest-only", action="store_true", help="section 1 only; the other sections are kept from the last run"
    )
    ap.add_argument(
        "--report-only",
        metavar="STORE",
        type=Path,
        help="time `msgtrace report` over the 30 days from 2026-05-01 of STORE only (prints, writes nothing)",
    )
    args = ap.parse_args()
    if args.report_only:
        bench_report(args.report_only, {})
        return
    cfg = QUICK if args.quick else FULL
    WORK.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "mode": "quick" if args.quick else "full",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "polars": pl.__version__},
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "ingest": [],
    }

    def save() -> None:  # after each section, so a long run leaves what it measured so far
        from bench.report import write_report

        # the analysis of targets not met (the profile), kept by hand beside the numbers
        results["notes"] = json.loads((ROOT / "bench" / "notes.json").read_text())

        (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1, default=str))
        write_report(results, ROOT / "BENCHMARKS.md")

    store = WORK / "store-30d"
    if args.ingest_only:
        last = json.loads((ROOT / "bench" / "results.json").read_text())
        results.update({k: v for k, v in last.items() if k not in results and k not in ("parse", "watch")})
        # when the kept sections were measured (an earlier --ingest-only run passes it on)
        results["others_when"] = last.get("others_when") or last["when"]
        bench_ingest(cfg, results)
        save()
        print("Wrote section 1 of BENCHMARKS.md and bench/results.json (the other sections are the last run's).")
        return
    if args.queries_only:
        last = json.loads((ROOT / "bench" / "results.json").read_text())
        results["ingest"], results["store"] = last["ingest"], last["store"]
        logs = sorted(p for p in (WORK / "logs").glob(f"days-{last['store']['per_day']}/*.log"))
    else:
        rows_per_line = bench_ingest(cfg, results)
        save()
        logs = thirty_days(cfg, rows_per_line)
        r = ingest_probe(store, logs, ["--timezone", "UTC", "--year", "2026"])
        sh([str(BIN / "msgtrace"), "compact", "--store", str(store)])
        per_day = int(logs[0].parent.name.split("-")[1])
        results["store"] = {
            **r,
            "days": cfg["days"],
            "raw_bytes": sum(p.stat().st_size for p in logs),
            "per_day": per_day,
        }
        print(f"30-day store: {r['rows']:,} rows from {r['lines']:,} lines", flush=True)
        save()
    v = pick(store)
    bench_queries(store, v, results, "compacted", with_others=True)
    bench_follow(store, v["day"], v["sender"], results)
    results["grep"] = {"a": grep_time(logs, v["sender"]), "c": grep_time(logs, v["recipient"])}
    print(f"grep (a) {results['grep']['a']:.2f} s, (c) {results['grep']['c']:.2f} s", flush=True)
    save()
    # the counts `msgtrace compact` keeps for the report (a store of an earlier run may lack them)
    t0 = time.perf_counter()
    sh([str(BIN / "msgtrace"), "compact", "--store", str(store)])
    results["report_counting_s"] = time.perf_counter() - t0
    bench_report(store, results)
    save()
    from bench.web import bench_web

    bench_web(store, v["day"], v["sender"], query_context()["now"], results)
    save()
    small_files(logs, v, results)
    save()
    print("Wrote BENCHMARKS.md and bench/results.json.")


if __name__ == "__main__":
    main()
