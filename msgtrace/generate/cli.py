"""`msgtrace generate`: a thin click wrapper over msgtrace.generate.generate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from msgtrace.generate import FORMATS
from msgtrace.generate import generate as run

MAX_DAYS = 3660  # ten years: a longer period only thins the messages out (and far ones overflow a date)


@click.command("generate")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="postfix", show_default=True, help="Log format to write."
)
@click.option(
    "--lines",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="About this many lines: the log stops just after the first message past N.",
)
@click.option(
    "--start", default="2026-01-01", show_default=True, help="First day (ISO date or datetime, local to --timezone)."
)
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True, max=MAX_DAYS),
    default=1.0,
    show_default=True,
    help="Length of the period the messages arrive in.",
)
@click.option(
    "--timezone",
    "tz",
    default="UTC",
    show_default=True,
    help="IANA zone of the time stamps: Postfix/Sendmail (RFC 3164, no year) and Exim write "
    "local time; Exchange always writes UTC.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--host",
    default="mx1.example.org",
    show_default=True,
    help="Mail host name; its domain is the local domain and the Organization.",
)
@click.option("--long-queue-ids", is_flag=True, help="Postfix enable_long_queue_ids (e.g. 4Nx3Wd1Zk5z9sKB).")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def generate(
    fmt: str, lines: int, start: str, days: float, tz: str, seed: int, host: str, long_queue_ids: bool, out: Path
) -> None:
    """Write a realistic, seeded mail log to OUT and the trace rows it must give beside it.

    The log has the mix of a real server: multi-recipient mail, deferrals delivered hours or
    days later, bounces and their notices, before-queue rejects (blocklists), content-filter
    re-injection (Postfix/amavis), aliases, IPv4 and IPv6 clients. OUT ending in .gz is
    compressed. The ground truth goes to OUT.truth.parquet (and OUT.truth.jsonl when it has at
    most 10,000 rows): columns Organization, MessageId, Received (UTC), SenderAddress,
    RecipientAddress, Subject, Status, ToIP, FromIP, Size, sorted like `msgtrace trace`
    (MessageTraceId is a hash and is left out).

    Example: msgtrace generate --format postfix --lines 100000 --start 2026-12-31 --days 2 mail.log
    """
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise click.ClickException(f"unknown time zone {tz!r}; use an IANA name such as Europe/Berlin") from e
    try:
        dt.datetime.fromisoformat(start)
    except ValueError as e:
        raise click.ClickException(f"--start {start!r} is not an ISO date (YYYY-MM-DD[THH:MM])") from e
    options = {"long_ids": True} if long_queue_ids else {}
    if long_queue_ids and fmt != "postfix":
        raise click.ClickException("--long-queue-ids applies to --format postfix only")
    try:
        summary = run(fmt, out, lines=lines, start=start, days=days, tz=tz, seed=seed, host=host, **options)
    except OSError as e:
        raise click.ClickException(f"cannot write {out}: {e.strerror or e}") from e
    click.echo(
        f"Wrote {summary.lines:,} lines ({summary.messages:,} messages) to {summary.path}; "
        f"truth: {summary.rows:,} rows in {summary.truth_path}."
    )


if __name__ == "__main__":
    generate()
