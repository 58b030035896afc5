"""Count message rows by status (`msgtrace summary`): whole days from file footers, the rest by reading rows.

Every messages file records its rows per status in its footer (MessagesTable.status_counts). A UTC day
(a partition) that the window covers whole, with no filter but the window, is counted by
summing its current files' counts: a few footers instead of millions of rows. The footers
cannot tell when a file lacks the key (written before it existed, or streamed without it) or
when a newer file supersedes rows of an older one (deletes: the footers would count the
superseded rows too); such a partition's rows are read. Days the window cuts, and any other
filter, go through the trace scan (query.engine). Either way the counts equal a scan's.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from msgtrace.ingest.schema import STATUSES
from msgtrace.query import engine
from msgtrace.query.filters import TraceFilter
from msgtrace.store import MessagesTable, Store

SUMMARY_SCHEMA: dict[str, pl.DataType] = {"Status": pl.String(), "Count": pl.Int64()}
_ORDER = {s: i for i, s in enumerate(STATUSES)}

Counts = Counter[str | None]


def row_counts(lf: pl.LazyFrame) -> Counts:
    """Rows per status of a scan (reads the status column, and what its filter needs)."""
    return Counter(dict(lf.group_by("status").len().collect().iter_rows()))


def day_status_counts(table: MessagesTable, days: Iterable[dt.date]) -> Counts:
    """Rows per status in these days' partitions, superseded rows dropped: footers where they tell."""
    total: Counts = Counter()
    unread: list[Path] = []
    for files, counts in table.day_status_counts(list(days)):
        if counts is None:
            unread.extend(files)
        else:
            total.update(counts)
    if unread:
        # the same listing the footers were checked on, read as a trace reads it (deletes applied)
        total.update(row_counts(engine.open_files(table, unread)))
    return total


def whole_day(flt: TraceFilter, day: dt.date) -> bool:
    """Whether the window covers every instant of this UTC day (so every row of its partition)."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return flt.start <= start and start + dt.timedelta(days=1) <= flt.end


def counts_frame(counts: Counts) -> pl.DataFrame:
    """Status and Count, statuses present only, in the contract's order (others after, null last)."""
    present = [s for s, n in counts.items() if n > 0]
    present.sort(key=lambda s: (s is None, _ORDER.get(s or "", len(_ORDER)), s or ""))
    return pl.DataFrame({"Status": present, "Count": [counts[s] for s in present]}, schema=SUMMARY_SCHEMA)


def summarize(store: Path, flt: TraceFilter) -> pl.DataFrame:
    """Rows per status among the rows a trace with this filter would return (all of them, unpaged)."""
    return engine.reading(store, lambda: _summarize(store, flt))


def _summarize(store: Path, flt: TraceFilter) -> pl.DataFrame:
    table = Store(store).messages
    days = engine.needed_days(table, flt)
    whole = {d for d in days if whole_day(flt, d)} if flt.window_only() else set()
    cut = [d for d in days if d not in whole]
    counts = day_status_counts(table, sorted(whole))
    if cut:
        counts.update(row_counts(engine.filtered(store, table.files(cut), flt)))
    return counts_frame(counts)
