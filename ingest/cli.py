"""Ingest-side commands (`msgtrace ingest`, `compact`); registered on the root group by query.cli."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from msgtrace import defaults

# ingest.formats.FORMAT_NAMES, repeated so that `msgtrace --help` need not import Polars (a test checks they agree)
FORMAT_NAMES = ("exchange", "exim", "sendmail", "postfix")


def store_option(f):  # type: ignore[no-untyped-def]
    """--store DIR, env MSGTRACE_STORE, default data/store."""
    return click.option(
        "--store",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=defaults.STORE_ENV,
        default=defaults.STORE,
        show_default=True,
        help=f"Store directory (env {defaults.STORE_ENV}).",
    )(f)


def queue_lifetime_option(f):  # type: ignore[no-untyped-def]
    """--max-queue-lifetime DAYS (ingest, watch, detail): how long a message may wait for its outcome."""
    return click.option(
        "--max-queue-lifetime",
        type=click.FloatRange(0.01, 365),
        default=defaults.MAX_QUEUE_LIFETIME_DAYS,
        show_default=True,
        help="Days a message may wait for its outcome (Postfix maximal_queue_lifetime); "
        "events of one message lie at most this plus a day apart.",
    )(f)


def safe(text: str) -> str:
    """Neutralise control and bidi characters from log text before it reaches a terminal."""
    from msgtrace.ingest.terminal import neutralize_lines

    return neutralize_lines(text)


def source_options(f):  # type: ignore[no-untyped-def]
    """Options shared by ingest and watch: how to read the logs."""
    f = click.option(
        "--host", default=None, help="Host name for logs that do not name one (Exim mainlog, Exchange tracking logs)."
    )(f)
    f = click.option(
        "--format",
        "fmt",
        type=click.Choice(["auto", *FORMAT_NAMES]),
        default="auto",
        show_default=True,
        help="Log format; auto detects each file's format from its first lines.",
    )(f)
    f = click.option("--organization", default=None, help="Organization for these rows (default: the host's domain).")(
        f
    )
    f = click.option(
        "--year",
        type=click.IntRange(1970, 2200),
        default=None,
        help="Year of the first RFC 3164 syslog line (default: inferred from the file's mtime).",
    )(f)
    f = click.option(
        "--timezone", default=None, help="IANA zone of timestamps without one (default: the machine's zone)."
    )(f)
    return f


def make_options(  # type: ignore[no-untyped-def]
    timezone: str | None,
    year: int | None,
    organization: str | None,
    fmt: str,
    host: str | None,
    max_queue_lifetime: float = defaults.MAX_QUEUE_LIFETIME_DAYS,
):
    """IngestOptions from CLI values, with the zone checked."""
    from msgtrace.ingest.localzone import ZoneError, check_zone, local_zone
    from msgtrace.ingest.pipeline import IngestOptions

    try:
        zone = check_zone(timezone) if timezone else local_zone()
    except ZoneError as e:
        raise click.ClickException(str(e)) from e
    return IngestOptions(
        timezone=zone,
        year=year,
        organization=organization,
        format=fmt,
        host=host,
        queue_lifetime=defaults.queue_lifetime(max_queue_lifetime),
    )


class _Progress:
    """A one-line progress display on a terminal: lines, MB/s."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.enabled = sys.stderr.isatty()

    def __call__(self, path: str, lines: int, nbytes: int) -> None:
        if not self.enabled:
            return
        secs = max(time.perf_counter() - self.start, 1e-6)
        name = safe(os.path.basename(path))[:40]
        sys.stderr.write(f"\r  {lines:,} lines  {nbytes / secs / 1e6:6.1f} MB/s  {name}\x1b[K")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")


def rejects_option(f):  # type: ignore[no-untyped-def]
    """--rejects FILE, shared by ingest and watch."""
    return click.option(
        "--rejects",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Append lines that match no known shape to this file.",
    )(f)


@click.command("ingest")
@store_option
@source_options
@queue_lifetime_option
@rejects_option
@click.argument("paths", nargs=-1, required=True)
def ingest_command(
    store: Path,
    timezone: str | None,
    year: int | None,
    organization: str | None,
    fmt: str,
    host: str | None,
    max_queue_lifetime: float,
    rejects: Path | None,
    paths: tuple[str, ...],
) -> None:
    """Load mail logs (files, directories, globs; plain, .gz, .bz2, .xz) into the store.

    Re-ingesting a file adds nothing; rotated series are read oldest first.

    Example: msgtrace ingest --timezone Europe/Vienna /var/log/mail.log*
    """
    from msgtrace.ingest.pipeline import ParseError, ingest_paths
    from msgtrace.ingest.reader import ReadError

    from msgtrace.store import StoreError, StoreLock

    options = make_options(timezone, year, organization, fmt, host, max_queue_lifetime)
    progress = _Progress()
    try:
        with StoreLock(store):
            report = ingest_paths(list(paths), store, options, rejects, progress)
    except (ReadError, ParseError, StoreError, OSError) as e:
        progress.done()
        raise click.ClickException(str(e)) from e
    progress.done()
    for f in report.files:
        if f.skipped:
            click.echo(f"Skipped {safe(f.path)}: {f.skipped}.", err=True)
        elif f.unknown:
            sample = "; ".join(safe(s)[:160] for s in f.unknown_sample)
            click.echo(f"{safe(f.path)}: {f.unknown:,} unknown lines, e.g. {sample}", err=True)
    read = [f for f in report.files if not f.skipped]
    click.echo(
        f"Ingested {len(read)} files, {report.lines:,} lines ({report.unknown:,} unknown), "
        f"{report.messages:,} messages, {report.rows:,} rows in {report.seconds:.2f} s."
    )


@click.command("compact")
@store_option
def compact_command(store: Path) -> None:
    """Merge each partition's small files into one sorted file (safe while queries run).

    Example: msgtrace compact --store /var/lib/msgtrace
    """
    from msgtrace.store import Store, StoreError, StoreLock

    s = Store(store)
    if not s.exists():
        raise click.ClickException(f"store {store} does not exist")
    merged = 0
    try:
        with StoreLock(store):
            for table in s.tables:
                for day in table.days():
                    merged += table.compact(day)
    except StoreError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"Compacted {merged} partitions.")


def register_commands(group: click.Group) -> None:
    """Add the ingest-side commands to the root `msgtrace` group (heavy ones lazily)."""
    group.add_command(ingest_command)
    group.add_command(compact_command)
    lazy = {
        "generate": "msgtrace.generate.cli:generate",
        "watch": "msgtrace.ingest.watch_cli:watch_command",
        "status": "msgtrace.ingest.watch_cli:status_command",
    }
    for name, target in lazy.items():
        group.add_lazy(name, target)  # type: ignore[attr-defined]
