"""The dashboard's mail-per-hour chart: an Altair (Vega-Lite) spec drawn as SVG by vl-convert.

Drawn on the server, so the page needs no JavaScript and no outside request, and the strict
Content-Security-Policy holds (Vega's expression evaluation in a browser would need 'unsafe-eval').
The same spec gives a PNG through vl_convert.vegalite_to_png.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from typing import Any

import polars as pl

from msgtrace.ingest.schema import STATUSES

# One colour per status, fixed so a status keeps its colour whichever are present.
COLOURS = {
    "GettingStatus": "#9e9e9e",
    "Pending": "#f2a900",
    "Delivered": "#2e7d32",
    "Failed": "#c62828",
    "Expanded": "#1565c0",
    "Quarantined": "#6a1b9a",
    "FilteredAsSpam": "#ad1457",
    "None": "#5d4037",
}


def spec(
    hourly: pl.DataFrame, tz: dt.tzinfo | None, title: str, start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """A stacked bar per hour and status over [start, end); hours shown as wall-clock time in tz
    (None: the server's zone)."""
    import altair as alt

    def wall(t: dt.datetime) -> str:
        local = t.astimezone(tz) if tz is not None else t.astimezone()
        return local.replace(tzinfo=None).isoformat() + "Z"  # drawn on a UTC scale: no zone applied twice

    from msgtrace.query.report import polars_zone

    # wall(), for every row at once (a month has thousands of hours and statuses)
    frame = hourly.select(
        pl.col("hour").dt.convert_time_zone(polars_zone(tz)).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        pl.when(pl.col("Status").is_in(STATUSES)).then(pl.col("Status")).otherwise(pl.lit("(other)")).alias("Status"),
        pl.col("Count"),
    )
    data = frame.to_dicts()
    seen = set(frame.get_column("Status").to_list())
    present = [s for s in STATUSES if s in seen]
    chart = (
        # the values go in after Altair's to_dict: its schema validation would walk every one of
        # them (a second for a month of hours and statuses), and they are ours, plain numbers and names
        alt.Chart(alt.NamedData(name="hours"), title=title, width=720, height=220)
        .mark_bar()
        .encode(
            x=alt.X(
                "utcyearmonthdatehours(hour):T",  # one band per hour
                title="Hour",
                scale=alt.Scale(type="utc", domain=[wall(start), wall(end)]),
                axis=alt.Axis(format="%m-%d %H:%M", labelAngle=-30),
            ),
            y=alt.Y("sum(Count):Q", title="Messages (rows)"),
            color=alt.Color(
                "Status:N",
                scale=alt.Scale(domain=present or ["Delivered"], range=[COLOURS[s] for s in present or ["Delivered"]]),
            ),
        )
    )
    out = chart.to_dict()
    out["data"] = {"values": data}
    return out


def svg(hourly: pl.DataFrame, tz: dt.tzinfo | None, title: str, start: dt.datetime, end: dt.datetime) -> str:
    """The chart as an SVG document (no script, no external reference).

    The axis runs over whole hours, so the spec, and so the drawing, stays the same until mail
    arrives or the hour turns; drawing costs vl-convert a few hundred milliseconds, so the SVG of
    a spec already drawn is reused.
    """
    floor = end.replace(minute=0, second=0, microsecond=0)
    last = floor if floor == end else floor + dt.timedelta(hours=1)
    first = last - (end - start)
    return _draw(json.dumps(spec(hourly, tz, title, first, last), sort_keys=True))


@lru_cache(maxsize=64)
def _draw(spec_json: str) -> str:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(json.loads(spec_json))
