"""The dashboard's figures: counts per status over 24 h / 7 d / 30 d, mail per hour, top senders,
recipients, domains and reasons, and the watcher's state (what `msgtrace status` reports).

Counts come from query.summary (footers for whole days, as `msgtrace summary`); the rest from
one scan of the range's rows (msgtrace.api.message_trace_lazy) with several small group_bys
collected together, so the files are read once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from msgtrace import api
from msgtrace.ingest.schema import STATUSES
from msgtrace.ingest.status import StoreStatus, status
from msgtrace.query.filters import TraceFilter
from msgtrace.query.summary import summarize

# The ranges the dashboard shows: label -> hours back from now.
RANGES: dict[str, int] = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30}
RANGE_LABELS = {"24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days"}
TOP = 10


@dataclass(frozen=True)
class Dashboard:
    now: dt.datetime
    range: str
    counts: dict[str, dict[str, int]]  # range -> status -> rows
    statuses: list[str]  # the statuses present in any range, in the contract's order
    hourly: pl.DataFrame  # hour (UTC), Status, Count
    tops: dict[str, list[tuple[str, int]]]  # title -> (value, rows)
    store: StoreStatus


def _window(now: dt.datetime, hours: int) -> dict[str, Any]:
    # the dashboard looks back further than the 10-day age limit (30 days): the limit is lifted here
    return {"start_date": now - dt.timedelta(hours=hours), "end_date": now, "now": now, "max_age_days": 0}


def counts(store: Path, now: dt.datetime) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Rows per status in each range, and the statuses present in any of them."""
    out: dict[str, dict[str, int]] = {}
    for name, hours in RANGES.items():
        frame = summarize(store, TraceFilter.from_params(**_window(now, hours)))
        statuses = [s if s is not None else "(no status)" for s in frame["Status"].to_list()]
        out[name] = dict(zip(statuses, frame["Count"].to_list(), strict=True))
    order = list(dict.fromkeys(s for name in RANGES for s in out[name]))
    order.sort(key=lambda s: STATUSES.index(s) if s in STATUSES else len(STATUSES))
    return out, order


def _domain(col: str) -> pl.Expr:
    return pl.col(col).str.split("@").list.last()


def _top(lf: pl.LazyFrame, expr: pl.Expr) -> pl.LazyFrame:
    return (
        lf.select(expr.fill_null("").alias("value"))
        .group_by("value")
        .len()
        .sort(["len", "value"], descending=[True, False])
        .head(TOP)
    )


def figures(store: Path, now: dt.datetime, range_name: str) -> tuple[pl.DataFrame, dict[str, list[tuple[str, int]]]]:
    """Mail per hour by status, and the top lists, over one range."""
    lf = api.message_trace_lazy(store, **_window(now, RANGES[range_name]))
    hourly = (
        lf.group_by(pl.col("received").dt.truncate("1h").alias("hour"), pl.col("status").alias("Status"))
        .len("Count")
        .sort("hour", "Status")
    )
    sender = pl.when(pl.col("sender_lower").fill_null("") == "").then(pl.lit("<>")).otherwise(pl.col("sender_lower"))
    queries = {
        "Top senders": _top(lf, sender),
        "Top recipients": _top(lf, pl.col("recipient_lower")),
        "Top sender domains": _top(lf.filter(pl.col("sender_lower").str.contains("@")), _domain("sender_lower")),
        "Top recipient domains": _top(
            lf.filter(pl.col("recipient_lower").str.contains("@")), _domain("recipient_lower")
        ),
        "Top deferral reasons": _top(lf.filter(pl.col("status") == "Pending"), pl.col("detail")),
        "Top bounce reasons": _top(lf.filter(pl.col("status") == "Failed"), pl.col("detail")),
    }
    frames = pl.collect_all([hourly, *queries.values()])
    tops = {title: [(str(v), int(n)) for v, n in f.iter_rows()] for title, f in zip(queries, frames[1:], strict=True)}
    return frames[0], tops


def build(store: Path, now: dt.datetime, range_name: str, store_status: StoreStatus | None = None) -> Dashboard:
    """Every figure of the dashboard at `now`; store_status: `msgtrace status`'s report when the caller has it."""
    by_range, order = counts(store, now)
    hourly, tops = figures(store, now, range_name)
    return Dashboard(now, range_name, by_range, order, hourly, tops, store_status or status(store))
