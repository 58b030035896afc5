"""BENCHMARKS.md from bench/results.json: every target with its measured value, met or not."""

from __future__ import annotations

from pathlib import Path

SHAPES = {
    "a": "1 day + sender",
    "b": "48 hours + sender",
    "c": "30 days + recipient",
    "d": "count by status, everything",
    "e": "lookup by MessageTraceId",
    "f": "page 50 of a large result",
}
# in-process and CLI targets, seconds (None: no target)
TARGETS = {"a": (0.040, 0.4), "c": (0.5, None), "e": (0.050, None), "f": (0.100, None)}


def _grep_cell(i: dict) -> str:
    """grep's wall time over the same file and how many times longer the ingest took."""
    g = i.get("grep_s")
    return "" if not g else f"{g:.2f} s ({i['seconds'] / g:.1f}x)"


def _ingest_target(i: dict) -> str:
    """Issue 16's targets: Postfix >= 1 M lines/s, within 5x of grep, <= 1 GB; the others >= 0.5 M lines/s."""
    if i["format"] != "postfix":
        return f">= 500,000 lines/s: {_met(i['lines_per_s'] >= 500_000)} ({i['lines_per_s'] / 1e6:.2f} M)"
    notes = [
        f">= 1,000,000 lines/s: {_met(i['lines_per_s'] >= 1_000_000)} ({i['lines_per_s'] / 1e6:.2f} M)",
        f"<= 1 GB: {_met(i['peak_rss_mb'] <= 1024)}",
    ]
    if i.get("grep_s"):
        notes.append(f"within 5x of grep: {_met(i['seconds'] <= 5 * i['grep_s'])}")
    return "; ".join(notes)


def _ms(s: float | None) -> str:
    return "n/a" if s is None else f"{s * 1000:,.1f} ms"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def write_report(r: dict, path: Path) -> None:
    """Render the results as Markdown tables."""
    out = [
        "# Benchmarks",
        "",
        f"Run `{'make bench-ingest' if r.get('others_when') else 'make bench'}` ({r['mode']} mode) on {r['when']}: "
        f"{r['machine']['cpus']} CPUs, Python "
        f"{r['machine']['python']}, Polars {r['machine']['polars']}. Numbers are from one run; compare them as "
        "ratios within the run. `make bench-quick` uses smaller inputs.",
        "",
        *(
            [
                f"Section 1 is from `make bench-ingest` at {r['when']}; the other sections are kept from the "
                f"full run of {r['others_when']} (the ingest is what changed since).",
                "",
            ]
            if r.get("others_when")
            else []
        ),
        "## 1. Ingest (parse, correlate, write), generated logs",
        "",
        "| format | lines | seconds | lines/s | MB/s | peak RSS | `grep -cE` (x slower) | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i in r["ingest"]:
        if "error" in i:
            out.append(f"| {i['format']} | | | | | | | error: {i['error']} |")
            continue
        out.append(
            f"| {i['format']} | {i['lines']:,} | {i['seconds']:.2f} | {i['lines_per_s']:,.0f} | "
            f"{i['mb_per_s']:.1f} | {i['peak_rss_mb']:,.0f} MB | {_grep_cell(i)} | {_ingest_target(i)} |"
        )
    if "parse" in r:
        p = r["parse"]
        out += [
            "",
            f"The parse step alone over the first log ({p['lines']:,} lines, `python -m bench.parse`): the compiled "
            f"parser {p['rust']['cpu_s_per_m']:.2f} CPU-s per 1M lines ({p['rust']['lines_per_cpu_s']:,.0f} lines per "
            f"CPU-second), the Polars parser it replaced {p['polars']['cpu_s_per_m']:.2f}; `LC_ALL=C grep -cE` over the "
            f"file {p['grep_wall_s']:.2f} s.",
        ]
    if "watch" in r:
        w = r["watch"]
        out += ["", *_watch_lines(w)]
    if "store" not in r:
        path.write_text("\n".join(out) + "\n")
        return
    st = r["store"]
    q = r.get("queries", {}).get("compacted", {})
    out += [
        "",
        f"## 2. Queries over a store of {st['rows']:,} rows, {st['days']} days",
        "",
        f"The store was built by `msgtrace ingest` from {st['lines']:,} generated Postfix lines "
        f"({st['raw_bytes'] / 1e9:.2f} GB of raw logs, {st['seconds']:.0f} s), then compacted. DuckDB runs the same "
        "query on the same files (`read_parquet(.../*/*.parquet, hive_partitioning=true)`, the date range as a "
        "predicate on the partition column). grep is `grep -c -F <value>` over the raw 30-day logs: a lower "
        "bound, since it only finds lines and does not join them into messages.",
        "",
        "| query | rows | in process | CLI (incl. start-up) | DuckDB | grep | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    grep = r.get("grep", {})
    for k, name in SHAPES.items():
        m = q.get(k, {})
        t_in, t_cli, t_duck = m.get("in_process_s"), m.get("cli_s"), m.get("duckdb_s")
        g = grep.get(k)
        notes = []
        if k in TARGETS:
            lim_in, lim_cli = TARGETS[k]
            notes.append(f"<= {_ms(lim_in)} in process: {_met(t_in is not None and t_in <= lim_in)}")
            if lim_cli is not None:
                notes.append(f"<= {lim_cli} s CLI: {_met(t_cli is not None and t_cli <= lim_cli)}")
        if t_duck is not None and t_in is not None:
            notes.append(f"as fast as DuckDB: {_met(t_in <= t_duck)} ({t_duck / t_in:.1f}x)")
        if k == "a" and g and t_cli:
            notes.append(f">= 20x faster than grep: {_met(g / t_cli >= 20)} ({g / t_cli:.0f}x, CLI vs grep)")
        out.append(
            f"| ({k}) {name} | {m.get('rows', '')} | {_ms(t_in)} | {_ms(t_cli)} | {_ms(t_duck)} | "
            f"{'' if g is None else f'{g:.2f} s'} | {'; '.join(notes)} |"
        )
    follow = r.get("follow")
    if follow:
        out += [
            "",
            "### `--follow` over the same store",
            "",
            "One host's logs: no hop is found, but every row of the window is checked for one (forward an hour "
            "past its delivery, back a queue lifetime), in process.",
            "",
            "| query | rows | without | with --follow |",
            "|---|---:|---:|---:|",
        ]
        for k, name in (("b", SHAPES["b"]), ("window", "2 days, first 1,000 rows")):
            m = follow[k]
            out.append(f"| {name} | {m['rows']} | {_ms(m['plain_s'])} | {_ms(m['follow_s'])} |")
    web = r.get("web")
    if web:
        from bench.web import TARGETS as WEB_TARGETS

        out += [
            "",
            f"## Web: `msgtrace web` under {web['clients']} concurrent clients on loopback",
            "",
            "One `msgtrace web` process over the same store; each client keeps a connection and sends its "
            "requests back to back (bounded in count and time). Search: `GET /api/v1/trace`, 1 day + sender "
            "(shape a); other senders: the day's next 16 busiest senders in turn, so no answer repeats (the "
            "server keeps the day's decoded columns, `--cache-mb`, never answers). Dashboard: `GET /dashboard`, "
            "each request at another `now` so no figure is reused (the default 24-hour range shown, "
            "and the 30-day one) "
            "(the chart's SVG is, while its hourly data is unchanged); cached: the same `now`, answered from "
            "the 15-second dashboard cache.",
            "",
            "| request | requests | p50 | p95 | max | target |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for name, label in (
            ("search", "1-day sender search"),
            ("search_senders", "1-day sender search, other senders"),
            ("dashboard", "dashboard"),
            ("dashboard_30d", "dashboard, 30-day range shown"),
            ("dashboard_cached", "dashboard, cached"),
        ):
            if name not in web:  # results of a run before this measurement existed
                continue
            m = web[name]
            target = WEB_TARGETS[name]
            out.append(
                f"| {label} | {m['requests']} | {_ms(m['p50_s'])} | {_ms(m['p95_s'])} | {_ms(m['max_s'])} | "
                f"p95 <= {_ms(target)}: {_met(m['p95_s'] <= target)} |"
            )
    sf = r.get("small_files")
    if sf:
        out += [
            "",
            "## 3. Small files: continuous ingestion before and after compaction",
            "",
            f"Three days ingested with a flush every 20,000 lines, as the watcher does under a steady stream: "
            f"{sf['message_files']} message files; after `msgtrace compact`: {sf.get('message_files_after', '?')}.",
            "",
            "| query | uncompacted | compacted | speed-up |",
            "|---|---:|---:|---:|",
        ]
        for k in ("a", "b"):
            u, c = sf["uncompacted"].get(k), sf["compacted"].get(k)
            out.append(f"| ({k}) {SHAPES[k]} | {_ms(u)} | {_ms(c)} | {u / c:.1f}x |")
    rep = r.get("report")
    if rep:
        out += [
            "",
            "## 4. `msgtrace report` over the month",
            "",
            f"Every section (totals, per hour/day, top lists, reasons, delays, stuck) over {rep['rows']:,} message rows "
            f"({rep['days']} days, no filter), json output. Target: <= 2 s. Whole days are summed from the "
            "counts `msgtrace compact` (and the watcher, for past days) keeps in `_report_counts/`"
            + (f" (counting the month: {r['report_counting_s']:.1f} s)" if r.get("report_counting_s") else "")
            + "; from the rows: the same report made by reading every row, as one with a filter is.",
            "",
            "| | in process | CLI (incl. start-up) | target |",
            "|---|---:|---:|---|",
            f"| report, json | {_ms(rep['in_process_s'])} | {_ms(rep['cli_s'])} | "
            f"<= 2 s: {_met(rep['cli_s'] <= 2.0)} |",
        ]
        if rep.get("from_rows_s"):
            out.append(f"| report, json, from the rows | {_ms(rep['from_rows_s'])} | | |")
    if r.get("notes"):
        out += ["", "## Notes", ""]
        for note in r["notes"]:
            out += [note, ""]
    path.write_text("\n".join(out) + "\n")


WATCH_PROMISE_S = 2.0  # README: "A new line is queryable within about two seconds" (twice the flush interval)


def _watch_lines(w: dict) -> list[str]:
    """Section 1's paragraph on the watcher's append-to-queryable latency (bench/watch.py)."""
    idle, busy = w["idle"], w["busy"]
    met = "met" if max(idle["max_s"], busy["max_s"]) <= WATCH_PROMISE_S else "**not met**"
    return [
        f"The watcher (`python -m bench.watch`, `msgtrace watch` with its default intervals on a log of "
        f"{w['prefill_lines']:,} lines): a complete message appended to the log is returned by a trace after "
        f"{idle['median_s']:.2f} s (median; p90 {idle['p90_s']:.2f} s, max {idle['max_s']:.2f} s, "
        f"{idle['probes']} probes) with the log otherwise idle, and after {busy['median_s']:.2f} s "
        f"(p90 {busy['p90_s']:.2f} s, max {busy['max_s']:.2f} s) while {busy['lines_per_s']:,} other lines/s are "
        f"appended. Target, within {WATCH_PROMISE_S:.0f} s (the README's promise): {met}.",
    ]
