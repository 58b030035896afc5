"""`msgtrace watch` (follow logs into the store) and `msgtrace status` (what the watcher has done)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click

from msgtrace import defaults
from msgtrace.cli.errors import cli_error
from msgtrace.cli.ingest import (
    check_rejects,
    keep_local_domains,
    make_options,
    parse_local_domains,
    safe,
    writer_store,
)
from msgtrace.cli.options import queue_lifetime_option, rejects_option, source_options, store_option, writer_option
from msgtrace.errors import MsgtraceError
from msgtrace.storepath import existing_store, store_path


class _SafeFormatter(logging.Formatter):
    """Log lines quote paths and log text: control characters must not reach a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return safe(super().format(record))


def setup_logging(quiet: bool, verbose: bool) -> None:
    """INFO by default, warnings only with --quiet, debug with --verbose; journald adds its own time."""
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(levelname)s %(message)s" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s %(levelname)s %(message)s"
    handler.setFormatter(_SafeFormatter(fmt))
    logger = logging.getLogger("msgtrace")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


@click.command("watch")
@store_option
@writer_option
@source_options
@click.option(
    "--flush-interval",
    type=click.FloatRange(0.05, 3600),
    default=1.0,
    show_default=True,
    help="Seconds between flushes; a new line is queryable within about twice this.",
)
@click.option(
    "--rescan-interval",
    type=click.FloatRange(0.1, 3600),
    default=2.0,
    show_default=True,
    help="Look at the files at least this often, even without file-system events.",
)
@click.option(
    "--compact-files",
    type=click.IntRange(2, 10_000),
    default=defaults.COMPACT_MIN_FILES,
    show_default=True,
    help="Merge a partition's files into one once it has this many.",
)
@queue_lifetime_option
@rejects_option
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also say what every flush and compaction did.")
@click.argument("paths", nargs=-1, required=True)
def watch_command(
    store: str | None,
    writer: str | None,
    timezone: str | None,
    year: int | None,
    organization: str | None,
    fmt: str,
    host: str | None,
    local_domains: tuple[str, ...],
    flush_interval: float,
    rescan_interval: float,
    compact_files: int,
    max_queue_lifetime: float,
    rejects: Path | None,
    quiet: bool,
    verbose: bool,
    paths: tuple[str, ...],
) -> None:
    """Follow mail logs (files, directories, globs) into the store until SIGINT or SIGTERM.

    Growing files are read as lines arrive; rotation (rename or copytruncate, later .gz) loses
    nothing and reads nothing twice; after a crash it resumes where the store is durable.

    \b
    Example: msgtrace watch --store /var/lib/msgtrace --timezone Europe/Vienna '/var/log/mail.log*'
    """
    from msgtrace.ingest.watcher import Watcher, WatchOptions
    from msgtrace.store import WriterLease

    try:
        root = store_path(store)  # made by the first flush when it does not exist
    except MsgtraceError as e:
        raise cli_error(e) from None
    setup_logging(quiet, verbose)
    options = make_options(timezone, year, organization, fmt, host, max_queue_lifetime)
    domains = parse_local_domains(local_domains)
    check_rejects(rejects)
    from msgtrace.query.report_store import store_partials

    mine = writer_store(root, writer)
    wopts = WatchOptions(
        flush_interval=flush_interval,
        rescan_interval=rescan_interval,
        compact_files=compact_files,
        count_days=store_partials,
    )
    stopping: list[Watcher] = []
    requested = threading.Event()

    def stop(signum: int, frame: object) -> None:
        logging.getLogger("msgtrace.watch").info("Got %s; flushing and stopping.", signal.Signals(signum).name)
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once
        requested.set()
        for w in stopping:
            w.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        with WriterLease(mine):
            keep_local_domains(root, domains)
            watcher = Watcher(root, list(paths), options, wopts, rejects, store=mine)
            stopping.append(watcher)
            if requested.is_set():
                watcher.request_stop()
            watcher.run()
    except MsgtraceError as e:
        raise cli_error(e) from e


@click.command("status")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(store: str | None, as_json: bool) -> None:
    """Show each source's offset and lag, the last flush, rows and files per partition, open messages.

    \b
    Example: msgtrace status --store /var/lib/msgtrace
    """
    from msgtrace.ingest.status import format_text, status, to_json

    try:
        report = status(existing_store(store))
    except MsgtraceError as e:  # no such store, a damaged checkpoint file
        raise cli_error(e) from e
    click.echo(to_json(report) if as_json else safe(format_text(report)))
