"""The public Python API: Get-MessageTrace over a store, as Polars frames.

    from msgtrace import message_trace, status_counts
    df = message_trace("data/store", sender_address="*@contoso.com", start_date="2026-06-13")
    counts = status_counts("data/store", start_date="2026-06-01", end_date="2026-06-15")  # Status, Count

Every parameter is the `msgtrace trace` option of the same name in snake case, with its semantics
(dates in `timezone`, the 48-hour default window, the `max_age_days` limit; 0 lifts it;
`follow=True` follows each message across the store's own MTAs, as `--follow`). Bad input
raises QueryError.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from msgtrace.query.filters import DEFAULT_MAX_AGE_DAYS, DateLike, QueryError, TraceFilter, Values

if TYPE_CHECKING:
    import datetime as dt

    import polars as pl

__all__ = ["QueryError", "TraceFilter", "message_trace", "message_trace_lazy", "status_counts"]

StoreLike = str | os.PathLike[str] | None
# Arguments of the functions below that are not TraceFilter parameters.
_NOT_FILTER = frozenset({"store", "page", "page_size", "result_size"})


def _filter(arguments: dict[str, object]) -> TraceFilter:
    """The TraceFilter of a public function's arguments (its `locals()` before any other name is bound)."""
    return TraceFilter.from_params(**{k: v for k, v in arguments.items() if k not in _NOT_FILTER})  # type: ignore[arg-type]


def message_trace(
    store: StoreLike = None,
    *,
    start_date: DateLike | None = None,
    end_date: DateLike | None = None,
    sender_address: Values = None,
    recipient_address: Values = None,
    message_id: Values = None,
    message_trace_id: str | None = None,
    status: Values = None,
    from_ip: str | None = None,
    to_ip: str | None = None,
    subject: str | None = None,
    subject_filter_type: str | None = None,
    starting_recipient_address: str | None = None,
    now: DateLike | None = None,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
    timezone: str | dt.tzinfo | None = None,
    direction: Values = None,
    follow: bool = False,
    page: int | None = None,
    page_size: int | None = None,
    result_size: int | None = None,
) -> pl.DataFrame:
    """Get-MessageTrace as a DataFrame in the contract's columns, newest first.

    Without page/page_size/result_size: every row (up to 1,000,000). `store`: the store
    directory, else $MSGTRACE_STORE, else data/store.
    """
    flt = _filter(locals())  # first: locals() must hold the arguments only
    from msgtrace.query.engine import resolve_store, trace
    from msgtrace.query.paging import Paging

    paging = Paging.from_params(page, page_size, result_size, flt.starting_recipient, default="all")
    return trace(resolve_store(store), flt, paging).rows


def message_trace_lazy(
    store: StoreLike = None,
    *,
    start_date: DateLike | None = None,
    end_date: DateLike | None = None,
    sender_address: Values = None,
    recipient_address: Values = None,
    message_id: Values = None,
    message_trace_id: str | None = None,
    status: Values = None,
    from_ip: str | None = None,
    to_ip: str | None = None,
    subject: str | None = None,
    subject_filter_type: str | None = None,
    now: DateLike | None = None,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
    timezone: str | dt.tzinfo | None = None,
    direction: Values = None,
    follow: bool = False,
) -> pl.LazyFrame:
    """The filtered rows as a LazyFrame of every stored column (relay, dsn, detail, ...) and `direction`, unsorted, unpaged."""
    flt = _filter(locals())  # first: locals() must hold the arguments only
    from msgtrace.query.engine import resolve_store, scan

    return scan(resolve_store(store), flt)


def status_counts(
    store: StoreLike = None,
    *,
    start_date: DateLike | None = None,
    end_date: DateLike | None = None,
    sender_address: Values = None,
    recipient_address: Values = None,
    message_id: Values = None,
    message_trace_id: str | None = None,
    status: Values = None,
    from_ip: str | None = None,
    to_ip: str | None = None,
    subject: str | None = None,
    subject_filter_type: str | None = None,
    now: DateLike | None = None,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
    timezone: str | dt.tzinfo | None = None,
    direction: Values = None,
    follow: bool = False,
) -> pl.DataFrame:
    """`msgtrace summary` as a DataFrame (Status, Count): the rows message_trace with these
    parameters would return, unpaged, per status; only statuses present, in the contract's order.
    Windows of whole UTC days without other filters are answered from file metadata."""
    flt = _filter(locals())  # first: locals() must hold the arguments only
    from msgtrace.query.engine import resolve_store
    from msgtrace.query.summary import summarize

    return summarize(resolve_store(store), flt)
