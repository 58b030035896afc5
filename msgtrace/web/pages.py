"""The HTML pages: Search (/ and /trace), the CSV export, Detail (/message/<id>), Dashboard.

Server-rendered with Jinja2, autoescaping every value (log text is attacker-controlled); they
work without JavaScript, htmx only swaps the body in place. Times are shown in the zone the
user picked, which is also the zone of the dates they type.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from msgtrace.cli.errors import cli_message
from msgtrace.ingest.schema import STATUSES
from msgtrace.query.dates import DateError, iso_z, zone
from msgtrace.query.direction import DIRECTIONS
from msgtrace.query.engine import OUTPUT_COLUMNS
from msgtrace.query.filters import SUBJECT_FILTER_TYPES, QueryError, TraceFilter
from msgtrace.query.output import TABLE_COLUMNS
from msgtrace.web import params as P

PAGE_SIZES = (50, 100, 500, 1000, 5000)
DEFAULT_PAGE_SIZE = 50  # a screenful; the CLI's 1000 is for scripts
# Form fields of the search page that are not trace parameters.
UI_PARAMS = ("columns",)
SEARCH_PARAMS = (*P.TRACE_PARAMS, *UI_PARAMS)
MESSAGE_PARAMS = ("start_date", "end_date", "now", "max_age_days", "timezone", "recipient")
DASHBOARD_PARAMS = ("range", "now", "timezone")


@cache
def environment() -> jinja2.Environment:
    """Templates with autoescaping on for every file (not only *.html), undefined names an error."""
    from msgtrace.web.app import HERE

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda v: quote(str(v), safe="")
    return env


@cache
def time_zones() -> list[str]:
    """The zones the selector offers: UTC first, then every IANA name."""
    return ["UTC", *sorted(z for z in zoneinfo.available_timezones() if z != "UTC" and "/" in z)]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = environment().get_template(name).render(request=request, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)


def _form(request: Request) -> dict[str, Any]:
    """The submitted values, to show them again in the form: lists for multi-valued names."""
    q = request.query_params
    form: dict[str, Any] = {k: q.getlist(k) for k in (*P.MULTI, "columns")}
    for k in (*P.SINGLE, *P.INTEGER, *P.PAGING_INTEGER, P.CURSOR):
        form[k] = q.get(k, "")
    for k in P.BOOLEAN:
        form[k] = q.get(k, "").strip().lower() in P.TRUE
    return form


def _display_zone(arguments: dict[str, object]) -> dt.tzinfo | None:
    try:
        return zone(arguments.get("timezone"))  # type: ignore[arg-type]
    except DateError:
        return dt.UTC


def show_time(t: dt.datetime | None, tz: dt.tzinfo | None) -> str:
    """A UTC time as wall-clock time in tz (None: the server's zone), with its offset."""
    if t is None:
        return ""
    local = t.astimezone(tz) if tz is not None else t.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S %z")


def _zone_name(arguments: dict[str, object]) -> str:
    return str(arguments.get("timezone") or "server's zone")


def _link(path: str, args: dict[str, object]) -> str:
    pairs: list[tuple[str, str]] = []
    for k, v in args.items():
        if v is None or v == "" or v == ():
            continue
        for item in v if isinstance(v, (tuple, list)) else [v]:
            pairs.append((k, str(item)))
    return path + ("?" + urlencode(pairs) if pairs else "")


def _columns(request: Request) -> list[str]:
    chosen = request.query_params.getlist("columns")
    for c in chosen:
        if c not in OUTPUT_COLUMNS:
            raise QueryError(f"unknown column {c!r}: choose among {', '.join(OUTPUT_COLUMNS)}")
    return chosen or list(TABLE_COLUMNS)


def _search_arguments(request: Request) -> dict[str, object]:
    P.check_names(request.query_params, SEARCH_PARAMS)
    arguments = P.read(request.query_params, P.TRACE_PARAMS, request.app.state.config.defaults)
    v2 = any(k in arguments for k in ("result_size", P.CURSOR))
    if not v2 and "page_size" not in arguments:
        arguments["page_size"] = DEFAULT_PAGE_SIZE
    return arguments


def search(request: Request) -> Response:
    """The search form and, below it, the page of rows it finds (the 48-hour default without dates)."""
    from msgtrace.web import service

    config = request.app.state.config
    context: dict[str, Any] = {
        "form": _form(request),
        "statuses": STATUSES,
        "directions": DIRECTIONS,
        "subject_filter_types": SUBJECT_FILTER_TYPES,
        "zones": time_zones(),
        "all_columns": OUTPUT_COLUMNS,
        "page_sizes": PAGE_SIZES,
        "error": None,
        "result": None,
    }
    try:
        columns = _columns(request)
        context["chosen_columns"] = columns
        arguments = _search_arguments(request)
        page = service.trace(config.store, arguments)
    except QueryError as e:
        context.setdefault("chosen_columns", list(TABLE_COLUMNS))
        context["error"] = cli_message(e)
        return render(request, "search.html", status_code=400, **context)
    context["result"] = _result(page, arguments, columns)
    return render(request, "search.html", **context)


def _result(page: Any, arguments: dict[str, object], columns: list[str]) -> dict[str, Any]:
    """What the results table needs: display rows, window, paging links, the CSV link."""
    tz = _display_zone(arguments)
    flt = page.result.filter
    # links keep the user's parameters; the window is pinned to the one searched so it does not slide
    keep = {k: v for k, v in arguments.items() if k not in ("page", "result_size", P.CURSOR)}
    window: dict[str, object] = {k: arguments[k] for k in ("now", "max_age_days", "timezone") if k in arguments}
    window.update(start_date=iso_z(flt.start), end_date=iso_z(flt.end))
    rows = []
    for r in page.rows.iter_rows(named=True):
        cells = {c: show_time(r[c], tz) if isinstance(r[c], dt.datetime) else r[c] for c in columns}
        if cells.get("SenderAddress") == "":
            cells["SenderAddress"] = "<>"  # the null sender (bounces), as the sender filter spells it
        detail_args = {**window, "recipient": r["RecipientAddress"]}
        rows.append(
            {
                "cells": cells,
                "detail": _link(f"/message/{quote(r['MessageTraceId'], safe='')}", detail_args),
                "related": _link("/trace", {**window, "message_id": r["MessageId"], "columns": columns})
                if r["MessageId"]
                else None,
            }
        )
    info = page.paging()
    links: dict[str, str | None] = {"prev": None, "next": None}
    if page.result.paging.mode == "v1":
        p = page.result.paging.page
        base = {**keep, "columns": columns}
        if p > 1:
            links["prev"] = _link("/trace", {**base, "page": p - 1})
        if p < info["pages"]:
            links["next"] = _link("/trace", {**base, "page": p + 1})
    elif info.get("next"):
        links["next"] = _link("/trace", {**info["next"], "columns": columns})
    csv_args = {k: v for k, v in keep.items() if k not in ("page_size",)}
    return {
        "rows": rows,
        "columns": columns,
        "info": info,
        "links": links,
        "csv": _link("/trace.csv", csv_args),
        "start": show_time(flt.start, tz),
        "end": show_time(flt.end, tz),
        "zone": _zone_name(arguments),
    }


def export_csv(request: Request) -> Response:
    """Every row of the search as `msgtrace trace --output csv` writes it (formula cells defused)."""
    from msgtrace.query.output import to_csv
    from msgtrace.web import service

    try:
        P.check_names(request.query_params, SEARCH_PARAMS)
        arguments = P.read(request.query_params, P.FILTER_PARAMS, request.app.state.config.defaults)
        rows = service.trace_all(request.app.state.config.store, arguments)
    except QueryError as e:
        return Response(f"Error: {cli_message(e)}\n", status_code=400, media_type="text/plain; charset=utf-8")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="msgtrace-{stamp}.csv"'},
    )


def message(request: Request) -> Response:
    """One message: each recipient's status and timeline, the raw fields, the other hops."""
    from msgtrace.web import service

    config = request.app.state.config
    trace_id = request.path_params["trace_id"]
    try:
        P.check_names(request.query_params, MESSAGE_PARAMS)
        arguments = P.read(request.query_params, MESSAGE_PARAMS[:-1], config.defaults)
        view = service.message(config.store, trace_id, arguments)
    except QueryError as e:
        older = _link(f"/message/{quote(trace_id, safe='')}", {**request.query_params, "max_age_days": 0})
        return render(request, "message.html", status_code=400, error=cli_message(e), view=None, older=older)
    tz = _display_zone(arguments)
    window = {k: v for k, v in view.arguments.items() if k in ("now", "max_age_days", "timezone")}
    hops = [
        {
            **h,
            "when": show_time(h["Received"], tz),
            "link": _link(f"/message/{quote(h['MessageTraceId'], safe='')}", window),
        }
        for h in view.hops
    ]
    return render(
        request,
        "message.html",
        error=None,
        view=view,
        hops=hops,
        tz=tz,
        show_time=show_time,
        zone=_zone_name(arguments),
        chosen=request.query_params.get("recipient"),
        not_found=not view.rows,
        api=_link(
            "/api/v1/detail",
            {
                **{k: v for k, v in view.arguments.items() if k != "timezone"},
                "message_trace_id": view.trace_id,
            },
        ),
    )


def dashboard(request: Request) -> Response:
    """Counts per status, mail per hour, tops, and the watcher's state."""
    from msgtrace.ingest.status import status
    from msgtrace.query.report import polars_zone
    from msgtrace.web import chart
    from msgtrace.web import dashboard as board

    config = request.app.state.config
    q = request.query_params
    try:
        P.check_names(q, DASHBOARD_PARAMS)
        range_name = q.get("range") or "24h"
        if range_name not in board.RANGES:
            raise QueryError(f"invalid range {range_name!r}: use {', '.join(board.RANGES)}")
        arguments = P.read(q, ("now", "timezone"), config.defaults)
        # the window's end, read like --now (or the real time)
        now = TraceFilter.from_params(now=arguments.get("now"), timezone=arguments.get("timezone"), max_age_days=0).end  # type: ignore[arg-type]
        tz = _display_zone(arguments)
    except QueryError as e:
        return render(
            request,
            "dashboard.html",
            400,
            error=cli_message(e),
            board=None,
            ranges=board.RANGE_LABELS,
            zones=time_zones(),
            form=q,
        )

    cache = request.app.state.dashboards

    def compute() -> tuple[Any, str]:
        # the watcher's state does not depend on `now`: dashboards at any `now` share it while it is fresh
        store_status = cache.get(("store status",), lambda: status(config.store))
        data = board.build(config.store, now, range_name, store_status, polars_zone(tz))
        title = f"Mail per hour, {board.RANGE_LABELS[range_name]} ({_zone_name(arguments)})"
        start = now - dt.timedelta(hours=board.RANGES[range_name])
        return data, chart.svg(data.hourly, tz, title, start, now)

    fresh = "now" in q  # a pinned `now` always gives the same figures; the real time moves on
    key = (range_name, str(arguments.get("timezone")), now if fresh else None)
    data, svg = cache.get(key, compute)
    return render(
        request,
        "dashboard.html",
        error=None,
        board=data,
        ranges=board.RANGE_LABELS,
        chart_svg=Markup(svg),  # vl-convert's own SVG: axis labels and our title, no log text
        show_time=show_time,
        tz=tz,
        zones=time_zones(),
        form=q,
        zone=_zone_name(arguments),
        since=iso_z(data.now - dt.timedelta(hours=board.RANGES[range_name])),  # the figures' window (cached ones too)
        until=iso_z(data.now),
        search=lambda **kw: _link("/trace", {**kw, **{k: arguments[k] for k in ("now", "timezone") if k in arguments}}),
    )
