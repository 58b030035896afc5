"""Answer trace queries: open only the needed partitions' current files, filter, sort, page."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TypeVar

import polars as pl

from msgtrace.ingest.schema import CONTRACT_COLUMNS, EVENTS_DIR, MESSAGE_SCHEMA, MESSAGES_DIR
from msgtrace.query.filters import QueryError, TraceFilter, time_lit
from msgtrace.query.paging import Paging, check_total
from msgtrace.store import MessagesTable, Store
from msgtrace.storepath import existing_store

T = TypeVar("T")

# The contract's columns, then Direction (query.direction: derived, not stored).
OUTPUT_COLUMNS: tuple[str, ...] = (*CONTRACT_COLUMNS.values(), "StartDate", "EndDate", "Index", "Direction")
# Absent strings are given as ""; except the sender, whose absence means unknown (no line names
# it), which is not "" (the null sender <>): it stays null (table "(unknown)", JSON null).
_STRING_OUTPUTS = [
    c for c, t in MESSAGE_SCHEMA.items() if c in CONTRACT_COLUMNS and t == pl.String and c != "sender_address"
]

# Newest first, ties by recipient; the trace id makes the order total, so V1 pages never overlap.
_SORT_BY = [
    pl.col("received"),
    pl.col("recipient_address").fill_null(""),
    pl.col("message_trace_id").fill_null(""),
]
_DESCENDING = [True, False, False]


@dataclass(frozen=True)
class TraceResult:
    """One page of a trace: rows in contract columns, the whole result's size (V1), a next page (V2)."""

    rows: pl.DataFrame
    filter: TraceFilter
    paging: Paging
    total: int | None = None
    more: bool = False


def resolve_store(store: str | os.PathLike[str] | None) -> Path:
    """The store directory (msgtrace.storepath: the argument, else $MSGTRACE_STORE, else data/store);
    it must be a store a query can read."""
    path = existing_store(store)
    if not Store(path).is_store():
        raise QueryError(
            f"{str(path)!r} is not a msgtrace store (it has no {MESSAGES_DIR}/ or {EVENTS_DIR}/ folder): "
            "pass the directory `msgtrace ingest --store` wrote, or ingest logs into it first"
        )
    return path


def needed_days(table: MessagesTable, flt: TraceFilter) -> list[dt.date]:
    """The days whose partitions the filter's window (or trace id) can touch."""
    days = flt.days()
    if len(days) > 62:
        # A long window (--max-age-days 0): one listing beats a failed lookup per missing day.
        existing = set(table.days())
        days = [d for d in days if d in existing]
    return days


def needed_files(table: MessagesTable, flt: TraceFilter) -> list[PurePath]:
    """The current files of exactly the partitions the filter's window (or trace id) can touch."""
    return table.files(needed_days(table, flt))


def open_files(table: MessagesTable, files: list[Path], columns: list[str] | None = None) -> pl.LazyFrame:
    """A lazy scan of these files in MESSAGE_SCHEMA (no glob, no hive inference), rows superseded
    by a newer file's deletes dropped (Table.scan_files); with `columns`, those only, through the
    store's column cache if it has one (Table.scan_columns)."""
    if columns is not None:
        return table.scan_columns(files, columns)
    return table.scan_files(files, glob=False, missing_columns="insert", extra_columns="ignore")


def scan(
    store: Path, flt: TraceFilter, every_row_direction: bool = False, columns: list[str] | None = None
) -> pl.LazyFrame:
    """The store's message rows (MESSAGE_SCHEMA columns plus `direction`) that pass the filter, unsorted.

    every_row_direction: the caller reads the direction of every row (a report), worth listing the
    window's Organizations first so the direction compares literals (query.direction).
    columns: the only stored columns the caller reads (besides `direction`), when it knows them.
    """
    table = Store(store).messages
    return filtered(store, needed_files(table, flt), flt, every_row_direction, columns)


def filtered(
    store: PurePath,
    files: list[PurePath],
    flt: TraceFilter,
    every_row_direction: bool = False,
    columns: list[str] | None = None,
) -> pl.LazyFrame:
    """These files' rows that pass the filter, with their `direction` (computed only when read).

    columns: the stored columns the caller reads; then the rows hold those, what the filter and
    the direction need, and no other (so they can come from the store's column cache)."""
    from msgtrace.query.direction import direction_expr, store_local_domains

    table = Store(store).messages
    domains = store_local_domains(store)
    if flt.follow:
        return _followed(store, files, flt, domains)
    organizations = None
    if not domains and (every_row_direction or flt.directions):
        org = ["organization"] if columns is not None else None
        rows = open_files(table, files, org).select(pl.col("organization").unique()).collect()
        organizations = rows.to_series().to_list()
    rows_wanted, direction = flt.expr(), direction_expr(domains, organizations)
    needed = None
    if columns is not None:
        inputs = {*columns, *rows_wanted.meta.root_names(), *direction.meta.root_names()}
        needed = [c for c in MESSAGE_SCHEMA if c in inputs]
    lf = open_files(table, files, needed).filter(rows_wanted).with_columns(direction)
    return lf.filter(pl.col("direction").is_in(list(flt.directions))) if flt.directions else lf


def _followed(store: Path, files: list[Path], flt: TraceFilter, domains: tuple[str, ...]) -> pl.LazyFrame:
    """--follow: the end-to-end rows (query.follow) of the messages entering in the window; the
    filters on the first hop before following, status, ToIP and Direction on the last hop's."""
    from msgtrace.query.direction import with_direction
    from msgtrace.query.follow import entries, follow, store_rows

    stored = store_rows(store)
    entry = open_files(Store(store).messages, files).filter(flt.entry_expr()).collect()
    if flt.message_trace_id is not None:  # it may name a later hop: follow its message from where it entered
        entry = entries(entry, stored)
    rows = follow(entry, stored).lazy()
    lf = with_direction(rows, domains).filter(flt.outcome_expr())
    return lf.filter(pl.col("direction").is_in(list(flt.directions))) if flt.directions else lf


def sort(lf: pl.LazyFrame) -> pl.LazyFrame:
    """The contract's order: Received descending, then RecipientAddress, then MessageTraceId."""
    return lf.sort(_SORT_BY, descending=_DESCENDING)


def page_rows(lf: pl.LazyFrame, offset: int, limit: int | None) -> tuple[pl.LazyFrame, int]:
    """Rows [offset, offset+limit) of the sorted lf, and the size of the whole result.

    Two passes so that only the page's rows are materialised: the first reads just `received`
    (plus the filter columns) to count and to find the page's time range [low, high]; the
    second reads full rows in that range only, sorts them and skips the rows above `high`.
    """
    received = lf.select("received").collect().to_series()
    total = received.len()
    if offset >= total or limit == 0:
        return lf.clear(), total
    if limit is None:
        return sort(lf).slice(offset), total
    top = received.top_k(min(offset + limit, total)).sort(descending=True)
    high, low = top[offset], top[-1]
    above = int((received > high).sum())
    rows = sort(lf.filter(pl.col("received").is_between(time_lit(low), time_lit(high)))).slice(offset - above, limit)
    return rows, total


def contract_frame(lf: pl.LazyFrame, flt: TraceFilter, first_index: int = 0) -> pl.LazyFrame:
    """Contract columns in order, absent strings as "" (an unknown sender null), the window echoed,
    Index from first_index, then Direction (lf needs a `direction` column: scan gives it)."""
    cols = [
        (pl.col(c).fill_null("") if c in _STRING_OUTPUTS else pl.col(c)).alias(name)
        for c, name in CONTRACT_COLUMNS.items()
    ]
    return lf.select(
        *cols,
        time_lit(flt.start).alias("StartDate"),
        time_lit(flt.end).alias("EndDate"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_index).alias("Index"),
        pl.col("direction").alias("Direction"),
    )


def relisting_once(run: Callable[[], T]) -> T:
    """Run a read of the store; again if a file it listed was gone when read.

    A compaction replaced a partition's files between our listing and our read: the new
    complete file is already in place, so listing again sees every row exactly once.
    """
    try:
        return run()
    except FileNotFoundError:
        return run()


def reading(store: Path, run: Callable[[], T]) -> T:
    """relisting_once, and when the read fails on a damaged file, QueryError naming it.

    The reader's own error names no file (and can quote raw bytes); the footers of the store's
    current files say which one is damaged (ingest.repair).
    """
    try:
        return relisting_once(run)
    except (pl.exceptions.PolarsError, OSError) as e:
        from msgtrace.ingest.repair import find_damaged

        damaged = find_damaged(store)
        if not damaged:
            raise
        more = f" (and {len(damaged) - 1} more damaged files: see msgtrace status)" if len(damaged) > 1 else ""
        raise QueryError(damaged[0].sentence(store) + more) from e


def trace(store: Path, flt: TraceFilter, paging: Paging) -> TraceResult:
    """Run one trace query: the requested page of the sorted, filtered rows."""
    return reading(store, lambda: _trace(store, flt, paging))


def _trace(store: Path, flt: TraceFilter, paging: Paging) -> TraceResult:
    table = Store(store).messages
    files = needed_files(table, flt)
    lf = filtered(store, files, flt, columns=list(CONTRACT_COLUMNS)).select(*CONTRACT_COLUMNS, "direction")
    if table.in_memory(files):
        # the columns are in memory already: filter them once, and page the rows found (the
        # two passes of page_rows are there to read fewer Parquet pages)
        found = lf.collect()
        lf = found.lazy()
        if paging.mode == "v1":
            check_total(found.height)
            rows = found.sort(_SORT_BY, descending=_DESCENDING).slice(paging.offset, paging.limit)
            page = contract_frame(rows.lazy(), flt, paging.offset).collect()
            return TraceResult(page, flt, paging, total=found.height)
    if paging.mode == "v2":
        page, more = _cursor_page(lf, paging.result_size)
        return TraceResult(contract_frame(page.lazy(), flt).collect(), flt, paging, more=more)
    rows, total = page_rows(lf, paging.offset, paging.limit)
    check_total(total)
    page = contract_frame(rows, flt, paging.offset).collect()
    return TraceResult(page, flt, paging, total=total)


def _cursor_page(lf: pl.LazyFrame, size: int) -> tuple[pl.DataFrame, bool]:
    """The first `size` sorted rows, extended so a (Received, RecipientAddress) tie is never split.

    The V2 cursor resumes strictly after (Received, RecipientAddress) of the last row, so a page
    ending inside a group of rows sharing both would make the next page skip the rest of it.
    """
    k = size + 1
    while True:
        rows, _ = page_rows(lf, 0, k)
        got = rows.collect()
        keys = got.select("received", pl.col("recipient_address").fill_null(""))
        if got.height <= size:
            return got, False
        cut = size
        while cut < got.height and keys.row(cut) == keys.row(size - 1):
            cut += 1
        if cut < got.height:
            return got.head(cut), True
        if got.height < k:  # the tie group runs to the end of the result
            return got, False
        k *= 2
