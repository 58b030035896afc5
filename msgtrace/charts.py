"""Chart specs of msgtrace's reports (Altair / Vega-Lite), shared by `msgtrace report` and the web page.

Each builder takes a section of msgtrace.query.report.build (a Polars frame in the report's
columns) and returns an `altair.Chart`; `chart.to_dict()` is the Vega-Lite spec a browser renders
with vega-embed, `to_svg` and `to_png` render it here with vl-convert (no browser, no network).
Labels come from logs (addresses, reply texts): they are neutralised (control and bidi
characters made visible) and shortened before they reach a chart.

    from msgtrace import charts
    for name, chart in charts.report_charts(report).items():
        open(f"{name}.png", "wb").write(charts.to_png(chart))

Needs the `charts` extra (altair, vl-convert-python): `pip install 'msgtrace[charts]'`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    import altair as alt

STATUS_COLORS = {
    "GettingStatus": "#9e9e9e",
    "Pending": "#f0ad4e",
    "Delivered": "#2e7d32",
    "Failed": "#c62828",
    "Expanded": "#5c6bc0",
    "Quarantined": "#8e24aa",
    "FilteredAsSpam": "#6d4c41",
    "None": "#455a64",
}
DIRECTION_COLORS = {"Inbound": "#1565c0", "Outbound": "#ef6c00", "Local": "#558b2f"}
WIDTH = 640
LABEL_CHARS = 60


class ChartsUnavailable(RuntimeError):
    """altair or vl-convert-python is not installed."""


def _alt() -> Any:
    try:
        import altair as alt
    except ImportError:
        raise ChartsUnavailable(
            "charts need the `charts` extra (altair, vl-convert-python): pip install 'msgtrace[charts]'"
        ) from None
    return alt


def label(text: str | None) -> str:
    """A log text fit for a chart label: control characters visible, at most LABEL_CHARS characters."""
    from msgtrace.ingest.terminal import neutralize

    t = neutralize(text or "")
    return t if len(t) <= LABEL_CHARS else t[: LABEL_CHARS - 1] + "…"


def values(df: pl.DataFrame, labels: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts for an inline Vega-Lite dataset: times as ISO text, labels neutralised."""
    out = df.with_columns(
        *[pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%:z") for c, t in df.schema.items() if isinstance(t, pl.Datetime)],
        *[pl.col(c).cast(pl.String) for c, t in df.schema.items() if t == pl.Date],
    )
    if labels:
        out = out.with_columns(pl.col(c).map_elements(label, return_dtype=pl.String) for c in labels)
    return out.to_dicts()


def _bars(
    df: pl.DataFrame, category: str, measure: str, title: str, colors: dict[str, str] | None = None, sort: Any = "-x"
) -> alt.Chart:
    alt = _alt()
    color: Any = alt.value("#4c78a8")
    if colors:
        color = alt.Color(
            f"{category}:N", scale=alt.Scale(domain=list(colors), range=list(colors.values())), legend=None
        )
    return (
        alt.Chart(alt.Data(values=values(df, (category,))), title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"{measure}:Q", title=measure),
            y=alt.Y(f"{category}:N", sort=sort, title=None, axis=alt.Axis(labelLimit=400)),
            color=color,
            tooltip=[f"{c}:{'Q' if df.schema[c].is_numeric() else 'N'}" for c in df.columns],
        )
        .properties(width=WIDTH)
    )


def status_chart(totals: pl.DataFrame) -> alt.Chart:
    """Rows per Status (the report's `totals`), in the contract's order and colours."""
    return _bars(totals, "Status", "Rows", "Rows by status", STATUS_COLORS, sort=list(STATUS_COLORS))


def direction_chart(by_direction: pl.DataFrame) -> alt.Chart:
    """Messages per Direction (the report's `by_direction`)."""
    return _bars(
        by_direction, "Direction", "Messages", "Messages by direction", DIRECTION_COLORS, sort=list(DIRECTION_COLORS)
    )


def traffic_chart(df: pl.DataFrame, period: str = "Hour", measure: str = "Messages") -> alt.Chart:
    """Messages (or Bytes) received per Hour or Day (the report's `by_hour` / `by_day`)."""
    alt = _alt()
    unit = "yearmonthdatehours" if period == "Hour" else "yearmonthdate"
    kind = "T" if period == "Hour" else "O"  # days as categories: one bar each, labelled by date
    return (
        alt.Chart(alt.Data(values=values(df)), title=f"{measure} received per {period.lower()}")
        .mark_bar(color="#4c78a8")
        .encode(
            x=alt.X(f"{period}:T", title=None, timeUnit=unit)
            if period == "Hour"
            else alt.X(f"{period}:O", title=None, axis=alt.Axis(labelAngle=-45)),
            y=alt.Y(f"{measure}:Q", title=measure),
            tooltip=[f"{period}:{kind}", "Messages:Q", "Rows:Q", "Bytes:Q"],
        )
        .properties(width=WIDTH, height=220)
    )


def top_chart(df: pl.DataFrame, category: str, measure: str, title: str) -> alt.Chart:
    """A top list (Address, Domain, Relay or Reason against Messages, Rows or Bytes) as horizontal bars."""
    return _bars(df, category, measure, title)


def delay_chart(by_domain: pl.DataFrame) -> alt.Chart:
    """Delivery delay p50/p90/p99 (seconds) per recipient domain (the report's `delay.by_domain`)."""
    alt = _alt()
    long = by_domain.unpivot(index=["Domain", "Rows"], on=["p50", "p90", "p99"], variable_name="Percentile")
    return (
        alt.Chart(alt.Data(values=values(long, ("Domain",))), title="Delivery delay by recipient domain (seconds)")
        .mark_point(filled=True, size=70)
        .encode(
            x=alt.X(
                "value:Q",
                title="seconds (1 min = 60, 1 h = 3600, 1 day = 86400)",
                scale=alt.Scale(type="symlog"),
                axis=alt.Axis(values=[0, 1, 10, 60, 600, 3600, 86400, 864000]),
            ),
            y=alt.Y("Domain:N", sort=None, title=None, axis=alt.Axis(labelLimit=400)),
            color=alt.Color("Percentile:N", scale=alt.Scale(domain=["p50", "p90", "p99"])),
            tooltip=["Domain:N", "Percentile:N", "value:Q", "Rows:Q"],
        )
        .properties(width=WIDTH)
    )


def report_charts(report: dict[str, Any]) -> dict[str, alt.Chart]:
    """The charts of a report, by file-friendly name, in the order the HTML page shows them."""
    charts: dict[str, alt.Chart] = {}
    if report["totals"].height:
        charts["status"] = status_chart(report["totals"])
    if report["by_direction"].height:
        charts["direction"] = direction_chart(report["by_direction"])
    if report["by_hour"].height:
        charts["messages_per_hour"] = traffic_chart(report["by_hour"], "Hour", "Messages")
    if report["by_day"].height:
        charts["messages_per_day"] = traffic_chart(report["by_day"], "Day", "Messages")
        charts["bytes_per_day"] = traffic_chart(report["by_day"], "Day", "Bytes")
    tops = [
        ("top_senders", "Address", "Top senders"),
        ("top_recipients", "Address", "Top recipients"),
        ("top_sender_domains", "Domain", "Top sender domains"),
        ("top_recipient_domains", "Domain", "Top recipient domains"),
    ]
    for key, category, title in tops:
        if report[key]["by_count"].height:
            charts[key] = top_chart(report[key]["by_count"], category, "Messages", f"{title} by messages")
    if report["top_relays"].height:
        charts["top_relays"] = top_chart(report["top_relays"], "Relay", "Rows", "Top relays by deliveries")
    for key, title in [
        ("deferral_reasons", "Deferral reasons"),
        ("bounce_reasons", "Bounce reasons"),
        ("reject_reasons", "Reject reasons"),
    ]:
        if report[key].height:
            charts[key] = top_chart(report[key], "Reason", "Rows", title)
    if report["delay"]["by_domain"].height:
        charts["delay"] = delay_chart(report["delay"]["by_domain"])
    return charts


def to_svg(chart: alt.Chart) -> str:
    """The chart as SVG text, rendered offline by vl-convert."""
    return _vlc().vegalite_to_svg(chart.to_dict(validate=False))  # specs are validated by the tests


def to_png(chart: alt.Chart, scale: float = 2.0) -> bytes:
    """The chart as PNG bytes, rendered offline by vl-convert."""
    return svg_to_png(to_svg(chart), scale)


def svg_to_png(svg: str, scale: float = 2.0) -> bytes:
    """A rendered chart's SVG as PNG: a quarter of the time of rendering the spec again."""
    return _vlc().svg_to_png(svg, scale=scale)


def _vlc() -> Any:
    try:
        import vl_convert
    except ImportError:
        raise ChartsUnavailable(
            "charts need the `charts` extra (altair, vl-convert-python): pip install 'msgtrace[charts]'"
        ) from None
    return vl_convert
