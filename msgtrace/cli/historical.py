"""`msgtrace historical-search start|list|get|stop` (registered lazily by msgtrace.cli)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from msgtrace.cli import OneLineGroup
from msgtrace.cli.errors import one_line_errors
from msgtrace.cli.options import apply_options, store_option

# polars is imported inside the commands: `msgtrace --help` imports this module to list it.

_LIST_COLUMNS = ["JobId", "SubmitDate", "ReportTitle", "ReportType", "Status", "Rows", "File"]


@click.group("historical-search", cls=OneLineGroup)
def historical_search() -> None:
    """Trace reports over any range, written in the background, like Start-HistoricalSearch.

    `start` prints the new JobId and returns at once; a detached worker writes the report into
    <store>/_reports/. `list` and `get` show each job's Status (NotStarted, InProgress, Done,
    Failed, Cancelled), Rows and File; `stop` cancels a job.

    \b
    Example: msgtrace historical-search start --report-title "Bob, June" --report-type MessageTrace --start-date 2026-06-01 --end-date 2026-07-01 --recipient-address bob@contoso.com
    Example: msgtrace historical-search list
    """


START_OPTIONS = [
    store_option,
    click.option("--report-title", required=True, metavar="TEXT", help="A name for the report."),
    click.option(
        "--report-type",
        metavar="TYPE",
        default="MessageTrace",
        show_default=True,
        help="MessageTrace (one row per message and recipient) or MessageTraceDetail (one row per event).",
    ),
    click.option("--start-date", required=True, metavar="DATE", help="Start of the window (inclusive); no age limit."),
    click.option("--end-date", required=True, metavar="DATE", help="End of the window (exclusive)."),
    click.option("--sender-address", multiple=True, metavar="VALUE[,VALUE...]", help="Envelope sender(s)."),
    click.option("--recipient-address", multiple=True, metavar="VALUE[,VALUE...]", help="Recipient(s)."),
    click.option("--message-id", multiple=True, metavar="VALUE[,VALUE...]", help="Message-ID header(s)."),
    click.option("--direction", metavar="DIR", default="All", show_default=True, help="All, Inbound or Outbound."),
    click.option(
        "--delivery-status",
        multiple=True,
        metavar="STATUS[,STATUS...]",
        help="Delivered, Expanded, Failed, Pending, GettingStatus, Quarantined, FilteredAsSpam, None.",
    ),
    click.option("--original-client-ip", metavar="IP", help="IPv4/IPv6 address of the client that sent the message."),
    click.option("--format", metavar="FORMAT", default="csv", show_default=True, help="Report file: csv or parquet."),
    click.option(
        "--encoding",
        metavar="ENC",
        default="utf-8",
        show_default=True,
        help="CSV encoding: utf-8, or utf-16le (with a BOM) as Exchange's reports.",
    ),
    click.option("--timezone", metavar="TZ", envvar="MSGTRACE_TZ", help="Zone of dates typed without one."),
    click.option("--now", metavar="TIME", envvar="MSGTRACE_NOW", help="Pretend the current time is TIME."),
]


def _start_options(f: Any) -> Any:
    return apply_options(f, START_OPTIONS)


@historical_search.command("start")
@_start_options
def start(**params: Any) -> None:
    """Start a historical search: prints its JobId (a GUID) and returns at once.

    At least one of --sender-address, --recipient-address or --message-id is required (at most
    100 addresses), as in Exchange; --start-date and --end-date are required and may lie any
    time back. The report lands in <store>/_reports/<JobId>.csv (or .parquet); `list` and `get`
    show how far the job got.

    \b
    Example: msgtrace historical-search start --report-title T --start-date 2026-01-01 --end-date 2026-04-01 --sender-address '*@contoso.com' --report-type MessageTraceDetail --format parquet
    """
    from msgtrace.query import engine, historical

    with one_line_errors():
        store = engine.resolve_store(params["store"])
        job = historical.start_job(store, params)
    click.echo(job.job_id)
    if job.status == "Failed":
        raise click.ClickException(f"historical search {job.job_id} could not start: {job.error}")


def _output_option(f: Any) -> Any:
    return click.option(
        "--output",
        "output_format",
        type=click.Choice(["table", "json"], case_sensitive=False),
        default="table",
        show_default=True,
    )(f)


def _table(jobs: list[dict[str, Any]], columns: list[str]) -> str:
    import polars as pl

    from msgtrace.query import output

    df = pl.DataFrame(
        {c: [None if j[c] is None else str(j[c]) for j in jobs] for c in columns},
        schema={c: pl.String for c in columns},
    )
    return output.to_table(df, output.terminal_width(), columns)


@historical_search.command("list")
@store_option
@_output_option
def list_command(store: str | None, output_format: str) -> None:
    """Every historical search of the store, oldest first: JobId, SubmitDate, ReportTitle, ReportType, Status, Rows, File.

    \b
    Example: msgtrace historical-search list --output json
    """
    from msgtrace.query import engine, historical

    with one_line_errors():
        jobs = [j.public() for j in historical.list_jobs(engine.resolve_store(store))]
    if output_format.lower() == "json":
        sys.stdout.write(json.dumps(jobs, indent=1) + "\n")
    elif not jobs:
        click.echo("No historical searches.", err=True)
    else:
        sys.stdout.write(_table(jobs, _LIST_COLUMNS))


@historical_search.command("get")
@store_option
@_output_option
@click.argument("job_id", metavar="JOBID")
def get_command(store: str | None, output_format: str, job_id: str) -> None:
    """One historical search: its Status, Rows, File, and why it failed when it did.

    \b
    Example: msgtrace historical-search get 3f2b8c1e-5d4a-4f6b-9e7d-1a2b3c4d5e6f
    """
    from msgtrace.ingest.terminal import neutralize
    from msgtrace.query import engine, historical

    with one_line_errors():
        job = historical.get_job(engine.resolve_store(store), job_id).public()
    if output_format.lower() == "json":
        sys.stdout.write(json.dumps(job, indent=1) + "\n")
        return
    width = max(len(k) for k in job)
    for k, v in job.items():
        click.echo(f"{k.ljust(width)} : {neutralize('' if v is None else str(v))}")


@historical_search.command("stop")
@store_option
@click.argument("job_id", metavar="JOBID")
def stop_command(store: str | None, job_id: str) -> None:
    """Cancel a historical search that has not ended (its worker is stopped, no report is kept).

    \b
    Example: msgtrace historical-search stop 3f2b8c1e-5d4a-4f6b-9e7d-1a2b3c4d5e6f
    """
    from msgtrace.query import engine, historical

    with one_line_errors():
        before = historical.get_job(engine.resolve_store(store), job_id)
        job = historical.stop_job(engine.resolve_store(store), job_id)
    if before.status in historical.FINAL_STATUSES:
        click.echo(f"Historical search {job.job_id} had already ended: {job.status}.", err=True)
    else:
        click.echo(f"Historical search {job.job_id} cancelled.", err=True)
