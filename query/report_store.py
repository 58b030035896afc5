"""`msgtrace report` over a store: whole days from their stored counts, the rest from the rows.

A report's figures add up over sets of rows that share no message (query.report.partial), and a
message's rows all live in the partition of its Received day. So `msgtrace compact` counts each
partition once and keeps the counts (Store.report, <store>/_report_counts/); a report whose only
filter is its window sums the stored counts of the whole days it covers and reads the rows of
the others (the days it cuts, and any day whose counts are missing or out of date). Counts are
out of date when the partition's current files are not those they were made from (a flush or a
compaction since) or the store's local domains changed (Direction follows them); then the day is
read like any other, so the figures always equal a report made from the rows.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path, PurePath
from typing import Any

import polars as pl

from msgtrace.ingest.schema import MESSAGE_SCHEMA
from msgtrace.query import engine
from msgtrace.query import report as R
from msgtrace.query.direction import store_local_domains
from msgtrace.query.filters import TraceFilter
from msgtrace.query.summary import whole_day
from msgtrace.store import MessagesTable, Store

VERSION = "2"  # of the tables below: counts of another version are made again
META_KEY = "msgtrace.report_counts"
_COUNT = pl.Int64()
_TIME = MESSAGE_SCHEMA["received"]
_STR = pl.String()
# Each table of a partial and its columns; stored stacked in one file, told apart by `table`.
TABLES: dict[str, dict[str, pl.DataType]] = {
    "status": {"Status": _STR, "Rows": _COUNT, "Messages": _COUNT, "Bytes": _COUNT},
    "direction": {"Direction": _STR, "Rows": _COUNT, "Messages": _COUNT, "Bytes": _COUNT},
    "minute": {"Minute": _TIME, "Messages": _COUNT, "Rows": _COUNT, "Bytes": _COUNT},
    "minute_status": {"Minute": _TIME, "Status": _STR, "Rows": _COUNT},
    "sender": {"Address": _STR, "Messages": _COUNT, "Rows": _COUNT, "Bytes": _COUNT},
    "recipient": {"Address": _STR, "Rows": _COUNT, "Messages": _COUNT, "Bytes": _COUNT},
    "recipient_domain": {"Domain": _STR, "Rows": _COUNT, "Messages": _COUNT, "Bytes": _COUNT},
    "relay": {"Relay": _STR, "Rows": _COUNT, "Messages": _COUNT, "Bytes": _COUNT},
    "deferral": {"Reason": _STR, "Rows": _COUNT, "Messages": _COUNT},
    "bounce": {"Reason": _STR, "Rows": _COUNT, "Messages": _COUNT},
    "reject": {"Reason": _STR, "Rows": _COUNT, "Messages": _COUNT},
    "delay": {"rcpt_domain": _STR, "delay": MESSAGE_SCHEMA["delay"], "count": _COUNT},
    "open": {c: MESSAGE_SCHEMA[c] for c in R._OPEN_COLUMNS},
}
SCHEMA: dict[str, pl.DataType] = {"table": _STR}
for _columns in TABLES.values():
    for _name, _dtype in _columns.items():
        assert SCHEMA.setdefault(_name, _dtype) == _dtype, _name  # a column means one thing in every table
assert set(TABLES) == set(R.PARTIAL_KEYS)


def report(store: Path, flt: TraceFilter, options: R.ReportOptions) -> dict[str, Any]:
    """The report of the rows a trace with this filter returns (query.report.build of them)."""
    return engine.relisting_once(lambda: R.finish(R.merge(partials(store, flt)), options))


def partials(store: Path, flt: TraceFilter, tables: tuple[str, ...] | None = None) -> list[R.Partial]:
    """Partials whose merge is the partial of the filter's rows: stored ones for whole days, when
    the window is the only filter, and one made from the rows of every other day.

    tables: only these tables of each partial (None: all of them)."""
    st = Store(store)
    table = st.messages
    days = engine.needed_days(table, flt)
    found: list[R.Partial] = []
    unread = days
    if flt.window_only():
        domains = store_local_domains(store)
        unread = []
        for day in days:
            stored = stored_partial(st, table, day, domains, tables) if whole_day(flt, day) else None
            if stored is None:
                unread.append(day)
            else:
                found.append(stored)
    files = table.files(unread)  # days without a partition hold no rows
    if files or not found:
        found.append(from_rows(store, files, flt, tables))
    return found


def from_rows(
    store: PurePath, files: list[PurePath], flt: TraceFilter, tables: tuple[str, ...] | None = None
) -> R.Partial:
    """The partial (these tables, None: all) of the rows of these files that pass the filter."""
    direction = tables is None or "direction" in tables
    # no `columns`: not through a column cache, whose decoded days are filtered row by row, while
    # the Parquet reader skips the row groups outside a cut day's piece by their statistics
    lf = engine.filtered(store, files, flt, every_row_direction=direction)
    return _conformed(R.partial(lf, tables))


def empty(tables: tuple[str, ...] | None = None) -> R.Partial:
    """The partial of no rows (these tables, None: all)."""
    return {name: pl.DataFrame(schema=cols) for name, cols in TABLES.items() if tables is None or name in tables}


def _conformed(p: R.Partial) -> R.Partial:
    """A partial's tables in TABLES' columns, order and types (stored and fresh ones then stack)."""
    return {
        name: p[name].select(pl.col(c).cast(t) for c, t in cols.items()) for name, cols in TABLES.items() if name in p
    }


def _meta(table: MessagesTable, day: dt.date, domains: tuple[str, ...]) -> dict[str, Any]:
    """What a day's counts are made from: its current files, the local domains, this version."""
    return {
        "version": VERSION,
        "files": [p.name for p in table.current_files(day)],
        "local_domains": sorted(domains),
    }


def made_from(table: MessagesTable, day: dt.date, domains: tuple[str, ...]) -> str:
    """What a day's counts would be made from now, as one string (a key for counts kept in memory)."""
    return json.dumps(_meta(table, day, domains), sort_keys=True)


def is_current(st: Store, table: MessagesTable, day: dt.date, domains: tuple[str, ...]) -> bool:
    """Whether a day's stored counts are those of its current files and local domains (a footer read)."""
    meta = st.report.metadata(day)
    try:
        made_from = json.loads((meta or {}).get(META_KEY, ""))
    except ValueError:
        return False
    return bool(made_from == _meta(table, day, domains))


def stored_partial(
    st: Store, table: MessagesTable, day: dt.date, domains: tuple[str, ...], tables: tuple[str, ...] | None = None
) -> R.Partial | None:
    """A day's stored counts (these tables, None: all), if they are those of its current files and local domains."""
    if not is_current(st, table, day, domains):
        return None
    frame = st.report.read(day, SCHEMA)
    if frame is None or not is_current(st, table, day, domains):  # replaced between the two reads
        return None
    return {
        name: frame.filter(pl.col("table") == name).select(list(cols))
        for name, cols in TABLES.items()
        if tables is None or name in tables
    }


def store_partials(store: Path, days: list[dt.date] | None = None) -> int:
    """Count each day's partition (every day when None) whose stored counts are missing or out of
    date, and store them; returns how many were made. The caller holds the store lock."""
    st = Store(store)
    st.report.remove_stale_temps()
    table = st.messages
    domains = store_local_domains(store)
    made = 0
    for day in table.days() if days is None else days:
        if is_current(st, table, day, domains):
            continue
        files = table.current_files(day)
        if not files:
            st.report.remove(day)
            continue
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        flt = TraceFilter.from_params(start_date=start, end_date=start + dt.timedelta(days=1), max_age_days=0)
        p = from_rows(store, files, flt)
        stacked = pl.concat(
            [p[name].select(list(cols)).with_columns(pl.lit(name).alias("table")) for name, cols in TABLES.items()],
            how="diagonal_relaxed",
        )
        st.report.write(day, stacked, SCHEMA, {META_KEY: json.dumps(_meta(table, day, domains))})
        made += 1
    return made
