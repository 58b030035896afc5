"""The `msgtrace` root command group and `msgtrace trace` (Get-MessageTrace)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from msgtrace import defaults
from msgtrace.ingest.cli import queue_lifetime_option

# polars/pyarrow are imported inside the commands: `msgtrace --help` and start-up stay fast.

PROG = "msgtrace"


class BadInput(click.ClickException):
    """A usage error shown as one line `Error: ...` (no usage block), exit code 2."""

    exit_code = 2


class OneLineGroup(click.Group):
    """A group whose subcommands' usage errors (bad option values, unknown options) print one line.

    Subcommands can be registered lazily ("module:attribute"), so `msgtrace trace` does not pay
    for importing the watcher or the generator.
    """

    lazy: dict[str, str] = {}

    def add_lazy(self, name: str, target: str) -> None:
        """Register a command imported only when it is used (or listed by --help)."""
        self.lazy = {**self.lazy, name: target}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            module, attr = self.lazy[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand, turning click usage errors into one-line errors."""
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            raise BadInput(e.format_message()) from None


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="msgtrace", prog_name=PROG)
def cli() -> None:
    """Message trace for self-hosted mail servers, like Exchange Online's Get-MessageTrace.

    Ingest Postfix, Exim, Sendmail and Exchange logs into a Parquet store, then trace messages.

    \b
    Example: msgtrace trace --sender-address john@contoso.com --start-date 06/13/2018 --end-date 06/15/2018
    """


def _store_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--store",
        metavar="DIR",
        default=None,
        help=f"Store directory [env {defaults.STORE_ENV}; default {defaults.STORE}].",
    )(f)


def _multi(name: str, help_text: str) -> Callable[..., Any]:
    return click.option(name, multiple=True, metavar="VALUE[,VALUE...]", help=help_text)


# Which rows: shared by every command that filters message rows (trace, summary).
FILTER_OPTIONS: list[Callable[..., Any]] = [
    _store_option,
    click.option("--start-date", metavar="DATE", help="Start of the window (inclusive)."),
    click.option("--end-date", metavar="DATE", help="End of the window (exclusive)."),
    _multi("--sender-address", "Envelope sender(s); *@domain and user@* wildcards; <> is the null sender."),
    _multi("--recipient-address", "Recipient(s); *@domain and user@* wildcards."),
    click.option("--from-ip", metavar="IP", help="IPv4/IPv6 address of the client that sent the message."),
    click.option("--to-ip", metavar="IP", help="IPv4/IPv6 address the message was delivered to."),
    _multi("--message-id", "Message-ID header(s), with or without <>."),
    click.option("--message-trace-id", metavar="GUID", help="The MessageTraceId of one message."),
    _multi("--status", "GettingStatus, Pending, Delivered, Failed, Expanded, Quarantined, FilteredAsSpam, None."),
    click.option("--subject", metavar="TEXT", help="Subject text (case-insensitive)."),
    click.option(
        "--subject-filter-type", metavar="TYPE", help="How --subject matches: Contains (default), StartsWith, EndsWith."
    ),
    _multi("--direction", "Inbound, Outbound, Local (derived from the local domains; see the README)."),
]

# How the window's dates are read and limited: shared like FILTER_OPTIONS.
WINDOW_OPTIONS: list[Callable[..., Any]] = [
    click.option(
        "--now",
        metavar="TIME",
        envvar="MSGTRACE_NOW",
        help="Pretend the current time is TIME (reproducible runs) [env MSGTRACE_NOW].",
    ),
    click.option(
        "--max-age-days",
        type=int,
        default=10,
        show_default=True,
        help="Refuse a start date older than this many days before now; 0 lifts the limit.",
    ),
    click.option(
        "--timezone",
        metavar="TZ",
        envvar="MSGTRACE_TZ",
        help="Zone of dates typed without one, e.g. Europe/Paris, UTC, +02:00 "
        "[env MSGTRACE_TZ; default the machine's zone].",
    ),
]


def output_option(formats: list[str]) -> Callable[..., Any]:
    """--output FORMAT among formats, default table."""
    return click.option(
        "--output",
        "output_format",
        type=click.Choice(formats, case_sensitive=False),
        default="table",
        show_default=True,
        help="Output format.",
    )


TRACE_OPTIONS: list[Callable[..., Any]] = [
    *FILTER_OPTIONS,
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


def apply_options(f: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    """Apply click options so that --help lists them in the list's order."""
    for option in reversed(options):
        f = option(f)
    return f


def trace_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Apply every `msgtrace trace` option."""
    return apply_options(f, TRACE_OPTIONS)


_FILTER_KEYS = (
    "start_date", "end_date", "sender_address", "recipient_address", "message_id", "message_trace_id",
    "status", "from_ip", "to_ip", "subject", "subject_filter_type", "starting_recipient_address",
    "now", "max_age_days", "timezone", "direction",
)  # fmt: skip


def filter_params(params: dict[str, Any]) -> dict[str, Any]:
    """The TraceFilter.from_params arguments among a command's parameters."""
    return {k: params[k] for k in _FILTER_KEYS if k in params}


# What the user gave, re-emitted (in this order) in the command that fetches the next V2 page.
_CARRIED = [
    "sender_address", "recipient_address", "from_ip", "to_ip", "message_id", "message_trace_id",
    "status", "subject", "subject_filter_type", "direction", "output_format", "out", "now", "timezone", "max_age_days",
]  # fmt: skip


def _carried_options(store: Path, params: dict[str, Any]) -> list[tuple[str, str]]:
    from msgtrace.query.filters import split_values

    options = [("--store", str(store))]
    for key in _CARRIED:
        value = params.get(key)
        if value is None or value == () or (key == "max_age_days" and value == 10):
            continue
        if key == "output_format" and value == "table":
            continue
        name = "--output" if key == "output_format" else "--" + key.replace("_", "-")
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
            start_date=start, end_date=start, now=params.get("now"), max_age_days=params.get("max_age_days", 10)
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


@cli.command()
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
    """
    with one_line_errors():
        _run_trace(params)


@cli.command()
@_store_option
@click.option("--message-trace-id", required=True, metavar="GUID", help="The message (from a trace row).")
@click.option(
    "--recipient-address",
    metavar="ADDRESS",
    help="The recipient whose delivery to explain [default: every recipient, each event naming its own].",
)
@click.option("--start-date", metavar="DATE", help="Window start (default: 48 hours before now).")
@click.option("--end-date", metavar="DATE", help="Window end (default: now).")
@click.option("--timezone", metavar="TZ", envvar="MSGTRACE_TZ", help="Zone of dates typed without one.")
@click.option("--now", metavar="TIME", envvar="MSGTRACE_NOW", help="Pretend the current time is TIME.")
@click.option("--max-age-days", type=int, default=10, show_default=True, help="Age limit of --start-date; 0 lifts it.")
@queue_lifetime_option
@click.option(
    "--output",
    "output_format",
    type=click.Choice(["table", "csv", "json", "jsonl"], case_sensitive=False),
    default="table",
    show_default=True,
)
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


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input and failures (polars, pyarrow, OS errors) as one line `Error: ...`, not a traceback.

    MSGTRACE_DEBUG=1 shows the traceback of unexpected errors.
    """
    from msgtrace.query.filters import QueryError

    try:
        yield
    except QueryError as e:
        raise click.ClickException(str(e)) from None
    except click.ClickException:
        raise
    except Exception as e:
        if os.environ.get("MSGTRACE_DEBUG"):
            raise
        raise click.ClickException(_one_line(e)) from None


def _one_line(e: BaseException) -> str:
    """An unexpected failure as a sentence: its first line, escaped (it may quote raw file bytes)."""
    from msgtrace.ingest.terminal import neutralize

    text = str(e).strip().splitlines()
    first = neutralize(text[0]) if text else "an unexpected failure"
    return f"{first} (set MSGTRACE_DEBUG=1 to see where)"


def _register() -> None:
    from msgtrace.ingest.cli import register_commands

    register_commands(cli)
    cli.add_lazy("summary", "msgtrace.query.summary_cli:summary")
    cli.add_lazy("historical-search", "msgtrace.query.historical_cli:historical_search")
    cli.add_lazy("report", "msgtrace.query.report_cli:report")
    cli.add_lazy("web", "msgtrace.web.cli:web")
    cli.add_lazy("web-user", "msgtrace.web.cli:web_user")


_register()


def main() -> None:
    """Console entry point of `msgtrace`."""
    try:
        cli(prog_name=PROG)
    except BrokenPipeError:
        # `msgtrace trace | head`: stop quietly; point stdout at devnull so the exit flush does not fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
