"""`msgtrace summary`: message rows per status, with trace's filters."""

from __future__ import annotations

import sys
from typing import Any

import click

from msgtrace.cli.errors import one_line_errors
from msgtrace.cli.options import (
    FILTER_OPTIONS,
    WINDOW_OPTIONS,
    apply_options,
    filter_params,
    follow_option,
    output_option,
)
from msgtrace.cli.trace import trace_id_hint

# polars is imported inside the command: `msgtrace --help` imports this module to list it.


def summary_options(f: Any) -> Any:
    """trace's filter and window options (not paging), and the text output formats."""
    return apply_options(
        f, [*FILTER_OPTIONS, follow_option, output_option(["table", "csv", "json", "jsonl"]), *WINDOW_OPTIONS]
    )


@click.command()
@summary_options
def summary(**params: Any) -> None:
    """Count messages by status: how many rows a trace with the same filters returns, per status.

    Takes trace's filters and the same 48-hour default window; only statuses present are listed.
    A window of whole UTC days with no other filter is answered from file metadata, in
    milliseconds over months; other queries read the rows they need.

    \b
    Example: msgtrace summary --start-date 2026-06-01 --end-date 2026-07-01 --timezone UTC
    Example: msgtrace summary --sender-address '*@contoso.com' --output json
    """
    from msgtrace.query import engine, output
    from msgtrace.query.filters import TraceFilter
    from msgtrace.query.summary import summarize

    with one_line_errors():
        store = engine.resolve_store(params["store"])
        flt = TraceFilter.from_params(**filter_params(params))
        counts = summarize(store, flt)
    fmt = params["output_format"].lower()
    if counts.height == 0:
        if fmt == "table":
            click.echo("No messages found.", err=True)
        trace_id_hint(flt, params)
        if fmt == "table":
            return
    output.write(counts, fmt, None, sys.stdout, columns=list(counts.columns))
