"""The queries behind the pages and the API: the library calls `msgtrace trace/detail/summary` make.

Nothing here reads the store's files: trace pages go through query.engine.trace (the CLI's call,
so rows, order and paging are the CLI's), detail through query.detail, counts through
query.summary, message lookups through the public API (msgtrace.api).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from msgtrace import api
from msgtrace.query import engine, output
from msgtrace.query.dates import iso_z
from msgtrace.query.detail import check_recipient, message_trace_detail
from msgtrace.query.filters import DEFAULT_MAX_AGE_DAYS, QueryError, TraceFilter, normalize_trace_id, trace_id_time
from msgtrace.query.paging import MAX_ROWS, Paging, check_total
from msgtrace.query.summary import summarize
from msgtrace.web import params as P


@dataclass(frozen=True)
class TracePage:
    """One page of a trace, and what the page and the API say about paging."""

    result: engine.TraceResult
    arguments: dict[str, object]  # the request's arguments (Python API names), server defaults applied

    @property
    def rows(self) -> pl.DataFrame:
        return self.result.rows

    def paging(self) -> dict[str, object]:
        """The paging fields of the API answer; for V2 the arguments of the next page, as the CLI prints them."""
        paging = self.result.paging
        if paging.mode == "v2":
            info: dict[str, object] = {"result_size": paging.result_size, "more": self.result.more, "next": None}
            if self.result.more:
                last = self.rows.row(self.rows.height - 1, named=True)
                carried = {
                    k: v for k, v in self.arguments.items() if k not in ("result_size", "start_date", "end_date")
                }
                carried.pop(P.CURSOR, None)
                info["next"] = {
                    **{k: ",".join(v) if isinstance(v, tuple) else v for k, v in carried.items()},
                    "start_date": iso_z(self.result.filter.start),
                    "end_date": iso_z(last["Received"]),
                    P.CURSOR: last["RecipientAddress"],
                    "result_size": paging.result_size,
                }
            return info
        total = self.result.total or 0
        return {
            "page": paging.page,
            "page_size": paging.page_size,
            "total": total,
            "pages": -(-total // paging.page_size),
            "start_date": iso_z(self.result.filter.start),
            "end_date": iso_z(self.result.filter.end),
        }


def trace(store: Path, arguments: dict[str, object]) -> TracePage:
    """`msgtrace trace` with these arguments: the same filter, paging and engine call."""
    flt_args, paging_args = P.split(arguments)
    flt = TraceFilter.from_params(**flt_args)  # type: ignore[arg-type]
    paging = Paging.from_params(
        paging_args.get("page"),  # type: ignore[arg-type]
        paging_args.get("page_size"),  # type: ignore[arg-type]
        paging_args.get("result_size"),  # type: ignore[arg-type]
        paging_args.get(P.CURSOR),  # type: ignore[arg-type]
    )
    return TracePage(engine.trace(store, flt, paging), arguments)


def trace_all(store: Path, arguments: dict[str, object]) -> pl.DataFrame:
    """Every row of the search (the CSV export), up to the CLI's 1,000,000-row limit of one query."""
    flt_args, _ = P.split(arguments)
    flt_args.pop(P.CURSOR, None)
    flt = TraceFilter.from_params(**flt_args)  # type: ignore[arg-type]
    result = engine.trace(store, flt, Paging(mode="v1", page=1, page_size=MAX_ROWS))
    check_total(result.total or 0)
    return result.rows


def rows_json(rows: pl.DataFrame) -> str:
    """The rows as `msgtrace trace --output json` prints them (a JSON array), without the newline."""
    return output.to_json(rows).strip()


def detail(store: Path, arguments: dict[str, object]) -> pl.DataFrame:
    """`msgtrace detail` with these arguments: one message's events (for one recipient, or for
    every recipient without recipient_address), oldest first."""
    if not arguments.get("message_trace_id"):
        raise QueryError("--message-trace-id is required: the MessageTraceId of a trace row")
    rcpt = check_recipient(arguments.get("recipient_address"))  # type: ignore[arg-type]
    flt = TraceFilter.from_params(
        message_trace_id=arguments["message_trace_id"],  # type: ignore[arg-type]
        recipient_address=rcpt,
        start_date=arguments.get("start_date"),  # type: ignore[arg-type]
        end_date=arguments.get("end_date"),  # type: ignore[arg-type]
        now=arguments.get("now"),  # type: ignore[arg-type]
        max_age_days=arguments.get("max_age_days", DEFAULT_MAX_AGE_DAYS),  # type: ignore[arg-type]
        timezone=arguments.get("timezone"),  # type: ignore[arg-type]
    )
    return message_trace_detail(store, flt, rcpt)


def summary(store: Path, arguments: dict[str, object]) -> pl.DataFrame:
    """`msgtrace summary` with these arguments: rows per status."""
    return summarize(store, TraceFilter.from_params(**arguments))  # type: ignore[arg-type]


def message_window(trace_id: str, arguments: dict[str, object]) -> dict[str, object]:
    """The window to find one message by id: the request's dates, else the second its id was stamped.

    A MessageTraceId in the UUIDv7 layout carries its Received time in milliseconds; another
    (Exchange's own GUIDs) gets the 48-hour default window like `msgtrace detail`.
    """
    if arguments.get("start_date") or arguments.get("end_date"):
        return {}
    stamped = trace_id_time(normalize_trace_id(trace_id))
    if stamped is None:
        return {}
    start = stamped.replace(microsecond=stamped.microsecond // 1000 * 1000)
    return {"start_date": iso_z(start), "end_date": iso_z(start + dt.timedelta(milliseconds=1))}


@dataclass(frozen=True)
class MessageView:
    """Everything the detail page shows of one message."""

    trace_id: str
    rows: list[dict[str, Any]]  # one per recipient: the contract columns
    raw: list[dict[str, Any]]  # one per recipient: every stored column
    events: dict[str, list[dict[str, Any]]]  # recipient -> its timeline
    hops: list[dict[str, Any]]  # rows of other MessageTraceIds with the same Message-ID
    arguments: dict[str, object]


_WINDOW_KEYS = ("start_date", "end_date", "now", "max_age_days", "timezone")


def message(store: Path, trace_id: str, arguments: dict[str, object]) -> MessageView:
    """One message by MessageTraceId: its recipients, each one's detail, its raw fields and its other hops."""
    trace_id = normalize_trace_id(trace_id)
    window = {k: arguments[k] for k in _WINDOW_KEYS if k in arguments}
    window.update(message_window(trace_id, arguments))
    rows = api.message_trace(store, message_trace_id=trace_id, **window)  # type: ignore[arg-type]
    raw = api.message_trace_lazy(store, message_trace_id=trace_id, **window).collect()  # type: ignore[arg-type]
    raw = raw.sort("recipient_lower", nulls_last=True)
    events: dict[str, list[dict[str, Any]]] = {}
    for rcpt in rows.get_column("RecipientAddress").unique(maintain_order=True).to_list():
        # as `msgtrace detail`; a row without a recipient (GettingStatus, a rejected connection) gets every line
        evs = detail(store, {**window, "message_trace_id": trace_id, "recipient_address": rcpt or None})
        events[rcpt] = [_event(e) for e in evs.iter_rows(named=True)]
    hops = _other_hops(store, rows, window)
    return MessageView(trace_id, rows.to_dicts(), raw.to_dicts(), events, hops, window)


def _event(e: dict[str, Any]) -> dict[str, Any]:
    """A detail row with its Data (JSON text) read into fields, empty ones left out."""
    data = json.loads(e["Data"]) if e.get("Data") else {}
    return {**e, "fields": {k: v for k, v in data.items() if v not in (None, "")}}


def _other_hops(store: Path, rows: pl.DataFrame, window: dict[str, object]) -> list[dict[str, Any]]:
    """Rows with the message's Message-ID but another MessageTraceId (other hosts, re-queues), a day either side."""
    ids = [m for m in rows.get_column("MessageId").unique().to_list() if m]
    if not ids:
        return []
    received = rows.get_column("Received").min()
    assert isinstance(received, dt.datetime)
    start = received - dt.timedelta(days=1)
    now = TraceFilter.from_params(now=window.get("now"), max_age_days=0).end  # type: ignore[arg-type]
    age = window.get("max_age_days", DEFAULT_MAX_AGE_DAYS)
    if isinstance(age, int) and age:
        start = max(start, now - dt.timedelta(days=age))  # stay inside the age limit the request has
    related = api.message_trace(
        store,
        message_id=ids,
        start_date=start,
        end_date=min(received + dt.timedelta(days=1), now),
        now=window.get("now"),  # type: ignore[arg-type]
        max_age_days=age,  # type: ignore[arg-type]
        page_size=100,
    )
    trace_ids = set(rows.get_column("MessageTraceId").to_list())
    return [r for r in related.to_dicts() if r["MessageTraceId"] not in trace_ids]
