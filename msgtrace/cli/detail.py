"""`msgtrace detail` (Get-MessageTraceDetail): the events of one message, for one recipient or all."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from msgtrace.cli.errors import one_line_errors
from msgtrace.cli.options import (
    DATE_OPTIONS,
    WINDOW_OPTIONS,
    apply_options,
    output_option,
    queue_lifetime_option,
    store_option,
)
from msgtrace.cli.trace import trace_id_hint

# polars is imported inside the command: `msgtrace --help` imports this module to list it.

DETAIL_OPTIONS = [
    store_option,
    click.option("--message-trace-id", required=True, metavar="GUID", help="The message (from a trace row)."),
    click.option(
        "--recipient-address",
        metavar="ADDRESS",
        help="The recipient whose delivery to explain [default: every recipient, each event naming its own].",
    ),
    *DATE_OPTIONS,
    *WINDOW_OPTIONS,
    queue_lifetime_option,
    output_option(["table", "csv", "json", "jsonl"]),
]


def detail_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Apply every `msgtrace detail` option."""
    return apply_options(f, DETAIL_OPTIONS)


@click.command()
@detail_options
def detail(**params: Any) -> None:
    """Why a message's status is what it is, like Get-MessageTraceDetail.

    The log events of one message for one recipient, oldest first: Date (UTC), Event (Receive,
    Retry, Transfer, Defer, Send, Deliver, Fail, Expand, Spam, Quarantine, DSN, Complete...),
    Action, Detail (relay, DSN code, the remote server's reply, reason; wrapped, never cut) and
    Data (the raw fields). Without --recipient-address, every recipient's events (a row with no
    recipient, such as GettingStatus, needs none). Same 48-hour default window and age limit as
    trace; a MessageTraceId received outside the window is told which dates find it.

    \b
    Example: msgtrace detail --message-trace-id 0190a5b2-3c4d-7e5f-8a6b-1c2d3e4f5a6b --recipient-address bob@fabrikam.com
    Example: msgtrace detail --message-trace-id 0190a5b2-3c4d-7e5f-8a6b-1c2d3e4f5a6b
    """
    from msgtrace.defaults import queue_lifetime
    from msgtrace.query import engine, output
    from msgtrace.query.detail import check_recipient, message_trace_detail
    from msgtrace.query.filters import TraceFilter

    with one_line_errors():
        store = engine.resolve_store(params["store"])
        rcpt = check_recipient(params["recipient_address"])
        flt = TraceFilter.from_params(
            message_trace_id=params["message_trace_id"],
            recipient_address=rcpt,
            start_date=params["start_date"],
            end_date=params["end_date"],
            now=params["now"],
            max_age_days=params["max_age_days"],
            timezone=params["timezone"],
        )
        rows = message_trace_detail(store, flt, rcpt, queue_lifetime(params["max_queue_lifetime"]))
    fmt = params["output_format"].lower()
    if rows.height == 0:
        if fmt == "table":
            whom = "that message" if rcpt is None else "that message and recipient"
            click.echo(f"No events found for {whom}.", err=True)
        trace_id_hint(flt, params)
        if fmt == "table":
            return
    columns = ["Date", "Event", "Action", "Detail"]
    if rcpt is None:  # every recipient's events: say whose each one is
        columns = ["Date", "Event", "Action", "RecipientAddress", "Detail"]
    output.write(rows, fmt, None, sys.stdout, columns=columns, wrap="Detail")
