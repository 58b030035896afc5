"""`msgtrace trace` (Get-MessageTrace): its options, the V1/V2 paging hints, the trace-id hint."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from msgtrace import defaults
from msgtrace.cli import PROG
from msgtrace.cli.errors import BadInput, one_line_errors, option_spelling
from msgtrace.cli.options import (
    FILTER_OPTIONS,
    WINDOW_OPTIONS,
    Decorator,
    apply_options,
    filter_params,
    follow_option,
    output_option,
)

# polars/pyarrow are imported inside the command: `msgtrace --help` and start-up stay fast.

TRACE_OPTIONS: list[Decorator] = [
    *FILTER_OPTIONS,
    follow_option,
    click.option("--page", type=int, help="V1 paging: page number, 1-1000 [default 1]."),
    click.option("--page-size", type=int, help="V1 paging: rows per page, 1-5000 [default 1000]."),
    click.option("--result-size", type=int, help="V2 paging: rows to return, 1-5000 [default 1000]."),
    click.option(
        "--starting-recipient-address",
        metavar="ADDRESS",
        help="V2 cursor: with --end-date, continue after this recipient of the last row.",
    ),
    output_option(["table", "csv", "json", "jsonl", "parquet"]),
    click.option(
        "--out",
        "out",
        metavar="FILE",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write to FILE instead of stdout (required for parquet).",
    ),
    *WINDOW_OPTIONS,
]


def trace_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Apply every `msgtrace trace` option."""
    return apply_options(f, TRACE_OPTIONS)


# What the user gave, re-emitted (in this order) in the command that fetches the next V2 page.
_CARRIED = [
    "sender_address", "recipient_address", "from_ip", "to_ip", "message_id", "message_trace_id",
    "status", "subject", "subject_filter_type", "direction", "follow", "output_format", "out", "now", "timezone",
    "max_age_days",
]  # fmt: skip


def _carried_options(store: Path, params: dict[str, Any]) -> list[tuple[str, str]]:
    from msgtrace.query.filters import split_values

    options = [("--store", str(store))]
    for key in _CARRIED:
        value = params.get(key)
        if value is None or value == () or value is False or (key == "max_age_days" and value == defaults.MAX_AGE_DAYS):
            continue
        if value is True:  # a flag
            options.append((option_spelling(key, None), ""))
            continue
        if key == "output_format" and value == "table":
            continue
        name = option_spelling(key, None)
        text = ",".join(split_values(value)) if isinstance(value, tuple) else str(value)
        options.append((name, text))
    return options


def _run_trace(params: dict[str, Any]) -> None:
    from msgtrace.query import engine, output
    from msgtrace.query.dates import iso_z
    from msgtrace.query.filters import TraceFilter
    from msgtrace.query.paging import Paging, next_page_command

    fmt = params["output_format"].lower()
    out: Path | None = params["out"]
    if fmt == "parquet" and out is None:
        raise BadInput("--output parquet needs --out FILE")
    if out is not None:
        check_out(out)
    store = engine.resolve_store(params["store"])
    flt = TraceFilter.from_params(**filter_params(params))
    paging = Paging.from_params(
        params["page"], params["page_size"], params["result_size"], params["starting_recipient_address"]
    )
    result = engine.trace(store, flt, paging)
    rows = result.rows
    if rows.height == 0 and fmt == "table":
        click.echo("No messages found.", err=True)
    if rows.height == 0:
        trace_id_hint(flt, params)
    if rows.height or fmt != "table":
        try:
            output.write(rows, fmt, out, sys.stdout)
        except OSError as e:
            if out is None:
                raise
            raise BadInput(f"--out {out}: cannot write it ({e.strerror or e}); choose a path you may write") from None
    if result.more:
        last = rows.row(rows.height - 1, named=True)
        cmd = next_page_command(
            PROG,
            _carried_options(store, params),
            iso_z(flt.start),
            iso_z(last["Received"]),
            last["RecipientAddress"],
            paging.result_size,
        )
        click.echo(f"More results: {cmd}", err=True)
    elif paging.mode == "v1" and result.total:
        _page_hint(paging.page, paging.page_size, result.total)


def trace_id_hint(flt: Any, params: dict[str, Any]) -> None:
    """After an empty answer to a --message-trace-id lookup: when the id was received outside the
    window (the 48-hour default, say), tell on stderr which day it was and the dates that find it.
    The id carries its Received time (ingest.traceid: the first 48 bits are milliseconds)."""
    from msgtrace.query.dates import iso_z
    from msgtrace.query.filters import QueryError, TraceFilter, trace_id_time

    if flt.message_trace_id is None:
        return
    received = trace_id_time(flt.message_trace_id)
    if received is None or flt.start <= received < flt.end:
        return
    import datetime as dt

    start = dt.datetime.combine(received.date(), dt.time(), tzinfo=dt.UTC)
    dates = f"--start-date {iso_z(start)} --end-date {iso_z(start + dt.timedelta(days=1))}"
    try:  # the suggested window must pass the age limit too
        TraceFilter.from_params(
            start_date=start,
            end_date=start,
            now=params.get("now"),
            max_age_days=params.get("max_age_days", defaults.MAX_AGE_DAYS),
        )
    except QueryError:
        dates += " --max-age-days 0"
    click.echo(
        f"MessageTraceId {flt.message_trace_id} was received on {received.date()} (UTC), outside the window "
        f"{iso_z(flt.start)} to {iso_z(flt.end)}: add {dates} to find it.",
        err=True,
    )


def check_out(out: Path) -> None:
    """--out FILE must go into an existing folder: said before the query runs, not after."""
    folder = out.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise BadInput(f"--out {out}: the folder {folder} {what}; create it first or choose another path")


def _page_hint(page: int, size: int, total: int) -> None:
    pages = -(-total // size)
    if page < pages:
        click.echo(f"Page {page} of {pages} ({total:,} rows); add --page {page + 1} for the next page.", err=True)
    elif page > pages:
        click.echo(f"Page {page} is past the end: the result has {total:,} rows ({pages} pages).", err=True)


@click.command()
@trace_options
def trace(**params: Any) -> None:
    """Find messages by sender, recipient, status, IP or id, like Get-MessageTrace.

    One row per message and recipient, newest first. Without dates the last 48 hours are
    searched. DATE is ISO 8601 (2018-06-13, 2018-06-13T17:00:00Z) or a US short date
    (06/13/2018, "06/13/2018 5:00 PM"); a date alone means midnight at the start of that day
    (so --end-date 06/15/2018 stops before June 15), read in --timezone unless the value has
    its own zone. Output times are UTC.

    Paging: --page/--page-size (V1), or --result-size with --starting-recipient-address (V2),
    which prints the command for the next page on stderr. Multi-valued options take
    comma-separated values or a repeated option.

    \b
    Example: msgtrace trace --sender-address john@contoso.com --start-date 06/13/2018 --end-date 06/15/2018
    Example: msgtrace trace --recipient-address '*@contoso.com' --status Failed,Pending --output csv
    Example: msgtrace trace --message-trace-id 0190a5b2-3c4d-7e5f-8a6b-1c2d3e4f5a6b --output json
    Example: msgtrace trace --follow --recipient-address pat@contoso.com
    """
    with one_line_errors():
        _run_trace(params)
