"""`msgtrace ingest` and `msgtrace compact`, and what ingest shares with watch (reading options, --rejects)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import click

from msgtrace import defaults
from msgtrace.cli.errors import cli_error
from msgtrace.cli.options import queue_lifetime_option, rejects_option, source_options, store_option, writer_option
from msgtrace.errors import MsgtraceError
from msgtrace.storepath import StoreRoot, existing_store, store_path

if TYPE_CHECKING:
    from msgtrace.store import Store


def safe(text: str) -> str:
    """Neutralise control and bidi characters from log text before it reaches a terminal."""
    from msgtrace.ingest.terminal import neutralize_lines

    return neutralize_lines(text)


def parse_local_domains(values: tuple[str, ...]) -> tuple[str, ...] | None:
    """--local-domains as a tuple of domains, None when not given; a bad value is a one-line error."""
    from msgtrace.ingest.storeconfig import parse_domains

    if not values:
        return None
    try:
        domains = parse_domains(values)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if not domains:
        raise click.ClickException("--local-domains has no domain in it: give one like example.org, or leave it out")
    return domains


def writer_store(root: StoreRoot, writer: str | None) -> Store:
    """The store as this writer sees it: --writer, else $MSGTRACE_WRITER, else the host name."""
    import socket

    from msgtrace.store import Store

    name = writer if writer is not None else os.environ.get(defaults.WRITER_ENV) or socket.gethostname()
    try:
        return Store(root, writer=name)
    except MsgtraceError as e:  # a bad name, an unreachable object store
        raise cli_error(e) from None


def keep_local_domains(store: PurePath, domains: tuple[str, ...] | None) -> None:
    """Save --local-domains in the store's config (under the store lock), saying so when they change."""
    from msgtrace.ingest.storeconfig import save_local_domains

    if domains is not None and save_local_domains(store, domains):
        click.echo(
            f"Local domains of {safe(str(store))}: {', '.join(domains)} (Direction follows them from now on, old rows too).",
            err=True,
        )


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
        raise cli_error(e) from e
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


def check_rejects(rejects: Path | None) -> None:
    """--rejects FILE must be writable: said before any line is read, naming the option."""
    if rejects is None:
        return
    try:
        with rejects.open("a", encoding="utf-8"):
            pass
    except OSError as e:
        raise click.ClickException(
            f"--rejects {rejects}: cannot write it ({e.strerror or e}); choose a file in a folder you may write"
        ) from None


def raise_if_damaged(store: PurePath, e: BaseException) -> None:
    """A failure to read the store because a partition file is damaged, as one line naming it."""
    import polars as pl

    from msgtrace.ingest.repair import find_damaged

    if not isinstance(e, pl.exceptions.PolarsError):
        return
    damaged = find_damaged(store)
    if damaged:
        raise click.ClickException(
            f"{damaged[0].sentence(store)}; what was read before it is stored, and the next run starts there"
        ) from e


@click.command("ingest")
@store_option
@writer_option
@source_options
@queue_lifetime_option
@rejects_option
@click.argument("paths", nargs=-1, required=True)
def ingest_command(
    store: str | None,
    writer: str | None,
    timezone: str | None,
    year: int | None,
    organization: str | None,
    fmt: str,
    host: str | None,
    local_domains: tuple[str, ...],
    max_queue_lifetime: float,
    rejects: Path | None,
    paths: tuple[str, ...],
) -> None:
    """Load mail logs (files, directories, globs; plain, .gz, .bz2, .xz) into the store.

    Re-ingesting a file adds nothing; rotated series are read oldest first. Lines a parser fails
    on and damaged archives are warned about; everything else is stored, and the exit status is 1.

    Several MTAs may ingest into one store at once, each under its own --writer.

    \b
    Example: msgtrace ingest --timezone Europe/Vienna /var/log/mail.log*
    """
    from msgtrace.ingest.pipeline import ingest_paths
    from msgtrace.store import WriterLease

    try:
        root = store_path(store)  # made by the first write when it does not exist
    except MsgtraceError as e:
        raise cli_error(e) from None
    options = make_options(timezone, year, organization, fmt, host, max_queue_lifetime)
    domains = parse_local_domains(local_domains)
    check_rejects(rejects)
    progress = _Progress()
    mine = writer_store(root, writer)
    try:
        with WriterLease(mine):
            keep_local_domains(root, domains)
            report = ingest_paths(list(paths), root, options, rejects, progress, store=mine)
    except MsgtraceError as e:  # a store locked or unwritable, a path that cannot be read
        progress.done()
        raise cli_error(e) from e
    except OSError as e:
        progress.done()
        raise click.ClickException(str(e)) from e
    except Exception as e:  # reading the stored events of the touched days: is one of them damaged?
        progress.done()
        raise_if_damaged(root, e)
        raise
    progress.done()
    for f in report.files:
        if f.skipped and not f.damage:  # a damaged file is told of below
            click.echo(f"Skipped {safe(f.path)}: {f.skipped}.", err=True)
        elif f.unknown:
            sample = "; ".join(safe(s)[:160] for s in f.unknown_sample)
            click.echo(f"{safe(f.path)}: {f.unknown:,} unknown lines, e.g. {sample}", err=True)
    for warning in report.damage:  # data that could not be stored: the run exits 1 after its summary
        click.echo(f"Warning: {safe(warning)}", err=True)
    read = [f for f in report.files if not f.skipped]
    click.echo(
        f"Ingested {len(read)} files, {report.lines:,} lines ({report.unknown:,} unknown), "
        f"{report.stored_messages:,} messages, {report.stored_rows:,} rows in {report.seconds:.2f} s."
    )
    if report.damage:
        sys.exit(1)


@click.command("compact")
@store_option
@writer_option
def compact_command(store: str | None, writer: str | None) -> None:
    """Merge each partition's small files of this writer into one sorted file (safe while queries
    and other writers run), and count each day for `msgtrace report` (so a report of whole days
    reads no rows).

    Damaged files of this writer are moved aside into <store>/_damaged/ first: a messages
    partition is rebuilt from the events table; a damaged events file is reported with the
    sources it held.

    \b
    Example: msgtrace compact --store /var/lib/msgtrace
    """
    from msgtrace.ingest.repair import find_damaged, repair
    from msgtrace.query.report_store import store_partials
    from msgtrace.store import WriterLease
    from msgtrace.storepath import location

    try:
        root = existing_store(store)
    except MsgtraceError as e:
        raise cli_error(e) from None
    mine = writer_store(root, writer)
    said: list[str] = []
    try:
        with WriterLease(mine):
            damaged = [d for d in find_damaged(root) if mine.table(d.table).owns(location(d.path))]
            said += repair(mine, damaged)
            merged = _compact_all(mine, said)
            counted = store_partials(root)
    except MsgtraceError as e:  # locked by a watcher, its lock file cannot be opened
        raise cli_error(e) from e
    except OSError as e:  # a full disk, a read-only file system: what was merged so far is kept
        raise click.ClickException(
            f"--store {root}: compaction stopped ({e.strerror or e}); free space or fix permissions, then run it again"
        ) from None
    finally:
        for line in said:
            click.echo(safe(line), err=True)
    click.echo(f"Compacted {merged} partitions; counted {counted} days for msgtrace report.")
    lost = [line for line in said if line.startswith("Moved damaged events") or "cannot be rebuilt" in line]
    if lost:
        raise click.ClickException(f"{len(lost)} damaged files held data the store could not rebuild: see above")


def _compact_all(store: Store, said: list[str]) -> int:
    """Compact every partition of this writer; one whose files fail to read whole (damage past the
    footer) is repaired (ingest.repair) and compacted again. Returns partitions merged."""
    import polars as pl

    from msgtrace.ingest.repair import read_problems, repair

    merged = 0
    for table in store.tables:
        for day in table.days():
            try:
                merged += table.compact(day)
            except pl.exceptions.PolarsError:
                bad = read_problems(store.root, table.name, day)
                if not bad:
                    raise
                said += repair(store, bad)
                merged += table.compact(day)
    return merged
