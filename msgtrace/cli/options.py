"""The options several commands share, each defined once: one --store, one --timezone of typed
dates, one --now, one --max-age-days, the trace filters, how logs are read (ingest, watch),
--max-queue-lifetime, --rejects.

No Polars import: `msgtrace --help` reads these.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from msgtrace import defaults

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

# msgtrace.ingest.formats.FORMAT_NAMES, repeated so that `msgtrace --help` need not import Polars
# (tests/test_cli_ingest.py checks they agree).
FORMAT_NAMES = ("exchange", "exim", "sendmail", "postfix")


def apply_options(f: Callable[..., Any], options: list[Decorator]) -> Callable[..., Any]:
    """Apply click options so that --help lists them in the list's order."""
    for option in reversed(options):
        f = option(f)
    return f


# Every command that reads or writes a store. The value is resolved (argument, else
# $MSGTRACE_STORE, else data/store) by msgtrace.storepath, the rule the library uses too.
store_option: Decorator = click.option(
    "--store",
    metavar="DIR|s3://BUCKET/PREFIX",
    default=None,
    help=f"Store directory, or an S3 prefix (AWS_* settings) [env {defaults.STORE_ENV}; default {defaults.STORE}].",
)

# The writers that share a store: one per MTA, each with its own files, checkpoints and lease.
writer_option: Decorator = click.option(
    "--writer",
    metavar="NAME",
    default=None,
    help=f"This writer's name in the store (one per MTA) [env {defaults.WRITER_ENV}; default: the host name].",
)


# The zone of the dates a user types (trace, summary, detail). Not the zone of log timestamps
# (ingest, watch: an IANA name, read from no environment variable; see SOURCE_OPTIONS).
timezone_option: Decorator = click.option(
    "--timezone",
    metavar="TZ",
    envvar="MSGTRACE_TZ",
    help="Zone of dates typed without one, e.g. Europe/Paris, UTC, +02:00 "
    "[env MSGTRACE_TZ; default the machine's zone].",
)


def output_option(formats: list[str]) -> Decorator:
    """--output FORMAT among formats, default table."""
    return click.option(
        "--output",
        "output_format",
        type=click.Choice(formats, case_sensitive=False),
        default="table",
        show_default=True,
        help="Output format.",
    )


def _multi(name: str, help_text: str) -> Decorator:
    return click.option(name, multiple=True, metavar="VALUE[,VALUE...]", help=help_text)


# The window's bounds: trace, summary, detail.
DATE_OPTIONS: list[Decorator] = [
    click.option("--start-date", metavar="DATE", help="Start of the window (inclusive)."),
    click.option("--end-date", metavar="DATE", help="End of the window (exclusive)."),
]

# Which rows: shared by every command that filters message rows (trace, summary).
FILTER_OPTIONS: list[Decorator] = [
    store_option,
    *DATE_OPTIONS,
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

# --follow: trace and summary (query.follow).
follow_option: Decorator = click.option(
    "--follow",
    is_flag=True,
    default=False,
    help="Follow each message across the store's own MTAs: one row per recipient of a message entering "
    "the organisation, with the status and ToIP of its last hop (--status, --to-ip and --direction "
    "apply to that hop).",
)

now_option: Decorator = click.option(
    "--now",
    metavar="TIME",
    envvar="MSGTRACE_NOW",
    help="Pretend the current time is TIME (reproducible runs) [env MSGTRACE_NOW].",
)

# How the window's dates are read and limited: trace, summary, detail.
WINDOW_OPTIONS: list[Decorator] = [
    now_option,
    click.option(
        "--max-age-days",
        type=int,
        default=defaults.MAX_AGE_DAYS,
        show_default=True,
        help="Refuse a start date older than this many days before now; 0 lifts the limit.",
    ),
    timezone_option,
]

_FILTER_KEYS = (
    "start_date", "end_date", "sender_address", "recipient_address", "message_id", "message_trace_id",
    "status", "from_ip", "to_ip", "subject", "subject_filter_type", "starting_recipient_address",
    "now", "max_age_days", "timezone", "direction", "follow",
)  # fmt: skip


def filter_params(params: dict[str, Any]) -> dict[str, Any]:
    """The TraceFilter.from_params arguments among a command's parameters."""
    return {k: params[k] for k in _FILTER_KEYS if k in params}


# How to read logs: ingest and watch.
SOURCE_OPTIONS: list[Decorator] = [
    click.option("--timezone", default=None, help="IANA zone of timestamps without one (default: the machine's zone)."),
    click.option(
        "--year",
        type=click.IntRange(1970, 2200),
        default=None,
        help="Year of the first RFC 3164 syslog line (default: inferred from the file's mtime).",
    ),
    click.option("--organization", default=None, help="Organization for these rows (default: the host's domain)."),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["auto", *FORMAT_NAMES]),
        default="auto",
        show_default=True,
        help="Log format; auto detects each file's format from its first lines.",
    ),
    click.option(
        "--host", default=None, help="Host name for logs that do not name one (Exim mainlog, Exchange tracking logs)."
    ),
    click.option(
        "--local-domains",
        multiple=True,
        metavar="DOMAIN[,DOMAIN...]",
        help="This server's own mail domains, kept in the store for Direction (Inbound/Outbound/Local) "
        "[default: inferred].",
    ),
]


def source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ingest and watch: how to read the logs."""
    return apply_options(f, SOURCE_OPTIONS)


# --max-queue-lifetime DAYS: ingest, watch, detail.
queue_lifetime_option: Decorator = click.option(
    "--max-queue-lifetime",
    type=click.FloatRange(0.01, 365),
    default=defaults.MAX_QUEUE_LIFETIME_DAYS,
    show_default=True,
    help="Days a message may wait for its outcome (Postfix maximal_queue_lifetime); "
    "events of one message lie at most this plus a day apart.",
)

# --rejects FILE: ingest and watch.
rejects_option: Decorator = click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append lines that match no known shape to this file.",
)
