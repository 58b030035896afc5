"""`msgtrace report`: the morning report over any window (registered lazily by msgtrace.cli)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from msgtrace.cli.errors import BadInput, one_line_errors
from msgtrace.cli.options import FILTER_OPTIONS, apply_options, filter_params

# polars is imported inside the command: `msgtrace --help` imports this module to list it.

REPORT_OPTIONS = [
    *FILTER_OPTIONS,
    click.option(
        "--output",
        "output_format",
        type=click.Choice(["text", "json", "html"], case_sensitive=False),
        default="text",
        show_default=True,
        help="text (terminal), json (one object, keys per section) or html (one self-contained page with charts).",
    ),
    click.option("--out", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."),
    click.option(
        "--charts",
        "charts_dir",
        metavar="DIR",
        type=click.Path(file_okay=False, path_type=Path),
        help="Also write every chart as DIR/<name>.png.",
    ),
    click.option(
        "--stuck-hours",
        type=float,
        default=4.0,
        show_default=True,
        help="Pending/GettingStatus longer than this is stuck.",
    ),
    click.option("--top", type=int, default=10, show_default=True, help="Entries in each top list."),
    click.option(
        "--now",
        metavar="TIME",
        envvar="MSGTRACE_NOW",
        help="Pretend the current time is TIME (the default window, stuck messages) [env MSGTRACE_NOW].",
    ),
    click.option(
        "--max-age-days",
        type=int,
        default=0,
        show_default=True,
        help="Refuse a start date older than this many days; 0 (the default) searches any range.",
    ),
    click.option(
        "--timezone",
        metavar="TZ",
        envvar="MSGTRACE_TZ",
        help="Zone of typed dates and of the report's hours and days [env MSGTRACE_TZ; default the machine's zone].",
    ),
]


def report_options(f: Any) -> Any:
    return apply_options(f, REPORT_OPTIONS)


@click.command()
@report_options
def report(**params: Any) -> None:
    """A report over any window, like pflogsumm's and more: totals, traffic, top lists, reasons, delays.

    Takes trace's filters and window (the last 48 hours by default; no age limit). Sections:
    totals per status and direction; messages and bytes per hour and per day (in --timezone);
    top senders, recipients and their domains by messages and by bytes; top relays; normalised
    deferral, bounce and reject reasons; delivery delay p50/p90/p99 overall and per recipient
    domain; messages Pending or GettingStatus for longer than --stuck-hours.

    \b
    Example: msgtrace report --start-date 2026-06-01 --end-date 2026-07-01 --timezone Europe/Vienna
    Example: msgtrace report --output html --out report.html --charts charts/
    Example: msgtrace report --direction Outbound --output json --out report.json
    """
    fmt = params["output_format"].lower()
    with one_line_errors():
        text, data = _run(params, fmt)
    out: Path | None = params["out"]
    if out is not None:
        with one_line_errors():
            out.write_bytes(data)
    else:
        sys.stdout.write(text)


def _run(params: dict[str, Any], fmt: str) -> tuple[str, bytes]:
    from msgtrace.query import engine, report_render, report_store
    from msgtrace.query import report as R
    from msgtrace.query.dates import iso_z, parse_datetime, zone
    from msgtrace.query.filters import QueryError, TraceFilter

    if params["top"] < 1:
        raise BadInput(f"invalid --top {params['top']}: use 1 or more")
    if not params["stuck_hours"] >= 0:
        raise BadInput(f"invalid --stuck-hours {params['stuck_hours']}: use 0 or more hours")
    store = engine.resolve_store(params["store"])
    flt = TraceFilter.from_params(**filter_params(params))
    tz = zone(params["timezone"])
    now = parse_datetime(params["now"], tz) if params["now"] else None
    options = R.ReportOptions(timezone=R.polars_zone(tz), now=now, stuck_hours=params["stuck_hours"], top=params["top"])
    rep = report_store.report(store, flt, options)
    rep["window"] = {
        "start": iso_z(flt.start),
        "end": iso_z(flt.end),
        "timezone": options.timezone,
        "direction": list(flt.directions),
        "stuck_hours": options.stuck_hours,
    }
    svgs: dict[str, str] = {}
    if fmt == "html" or params["charts_dir"] is not None:
        from msgtrace import charts as C

        try:
            svgs = {name: C.to_svg(chart) for name, chart in C.report_charts(rep).items()}
            if params["charts_dir"] is not None:
                folder: Path = params["charts_dir"]
                folder.mkdir(parents=True, exist_ok=True)
                for name, svg in svgs.items():
                    (folder / f"{name}.png").write_bytes(C.svg_to_png(svg))
        except C.ChartsUnavailable as e:
            raise QueryError(str(e)) from None
    if fmt == "json":
        text = R.to_json(rep)
    elif fmt == "html":
        text = report_render.to_html(rep, svgs)
    else:
        from msgtrace.query.output import terminal_width

        text = report_render.to_text(rep, None if params["out"] else terminal_width())
    return text, text.encode("utf-8")
