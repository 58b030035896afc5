"""A report (query.report.build) as terminal text or as one self-contained HTML page.

Text tables go through query.output.to_table (log text neutralised for the terminal). The HTML
page escapes every value, and carries its charts as inline SVG rendered offline (msgtrace.charts):
no script, no stylesheet, no font or image fetched from anywhere.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import polars as pl

from msgtrace.query.output import to_table

TITLES = {
    "totals": "Totals by status",
    "by_direction": "By direction",
    "by_hour": "Per hour",
    "by_day": "Per day",
    "top_senders": "Top senders",
    "top_recipients": "Top recipients",
    "top_sender_domains": "Top sender domains",
    "top_recipient_domains": "Top recipient domains",
    "top_relays": "Top relays (destination hosts)",
    "deferral_reasons": "Deferral reasons (rows still Pending)",
    "bounce_reasons": "Bounce reasons (rows Failed)",
    "reject_reasons": "Reject reasons (rows None or FilteredAsSpam)",
    "delay": "Delivery delay (seconds, Delivered rows)",
    "stuck": "Stuck messages",
}
_ORDER = [
    "totals", "by_direction", "by_day", "by_hour", "top_senders", "top_recipients", "top_sender_domains",
    "top_recipient_domains", "top_relays", "deferral_reasons", "bounce_reasons", "reject_reasons", "delay", "stuck",
]  # fmt: skip


def _shown(df: pl.DataFrame) -> pl.DataFrame:
    """Times as text (UTC with Z, local ones with their offset), floats rounded, for display."""
    return df.with_columns(
        *[
            pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ" if t.time_zone == "UTC" else "%Y-%m-%d %H:%M %:z")
            for c, t in df.schema.items()
            if isinstance(t, pl.Datetime)
        ],
        *[pl.col(c).cast(pl.String) for c, t in df.schema.items() if t == pl.Date],
        *[pl.col(c).round(2) for c, t in df.schema.items() if t.is_float()],
    )


def _parts(report: dict[str, Any], key: str) -> list[tuple[str, pl.DataFrame]]:
    """The tables of one section, each with a sub-title ('' when the section is one table)."""
    value = report[key]
    if key.startswith("top_") and isinstance(value, dict):
        return [("by messages", value["by_count"]), ("by bytes", value["by_bytes"])]
    if key == "delay":
        return [("overall", value["overall"]), ("by recipient domain", value["by_domain"])]
    if key == "stuck":
        more = f", the oldest {value['rows'].height} shown" if value["count"] > value["rows"].height else ""
        return [
            (f"{value['count']} rows Pending or GettingStatus for over {value['hours']:g} hours{more}", value["rows"])
        ]
    return [("", value)]


def window_line(report: dict[str, Any]) -> str:
    w = report["window"]
    extra = f", direction {','.join(w['direction'])}" if w.get("direction") else ""
    return f"From {w['start']} to {w['end']} (hours and days in {w['timezone']}{extra})"


def to_text(report: dict[str, Any], width: int | None = None) -> str:
    """Every section as an aligned table under its title."""
    out = [f"msgtrace report. {window_line(report)}", ""]
    for key in _ORDER:
        for sub, df in _parts(report, key):
            out.append(f"{TITLES[key]}{': ' + sub if sub else ''}")
            out.append(to_table(_shown(df), width, list(df.columns)) if df.height else "(none)\n")
    return "\n".join(out)


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; color: #555; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; } .chart { margin: 1em 0; } .chart img { max-width: 100%; height: auto; }
"""


def _html_table(df: pl.DataFrame) -> str:
    if not df.height:
        return "<p>(none)</p>"
    shown = _shown(df)
    numeric = {c for c, t in df.schema.items() if t.is_numeric()}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown.columns)
    rows = []
    for row in shown.iter_rows():
        cells = "".join(
            f"<td{' class=n' if c in numeric else ''}>{html.escape('' if v is None else _visible(str(v)))}</td>"
            for c, v in zip(shown.columns, row, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _visible(text: str) -> str:
    from msgtrace.ingest.terminal import neutralize

    return neutralize(text)


def to_html(report: dict[str, Any], charts: dict[str, str] | None = None) -> str:
    """One self-contained page: every section's tables, each section's chart (inline SVG) above them.

    charts: name -> SVG text (msgtrace.charts.report_charts names). Each is embedded as a
    data: image, its own document: the SVGs' ids cannot collide, and an image runs no script.
    """
    import base64

    charts = charts or {}
    by_section = {
        "totals": ["status"],
        "by_direction": ["direction"],
        "by_hour": ["messages_per_hour"],
        "by_day": ["messages_per_day", "bytes_per_day"],
        "delay": ["delay"],
    }
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = [
        "<h1>msgtrace report</h1>",
        f"<p>{html.escape(window_line(report))}. Generated {generated}.</p>",
    ]
    for key in _ORDER:
        body.append(f'<h2 id="{key}">{html.escape(TITLES[key])}</h2>')
        for name in by_section.get(key, [key]):
            if name in charts:
                data = base64.b64encode(charts[name].encode("utf-8")).decode("ascii")
                alt = html.escape(name.replace("_", " "))
                body.append(f'<div class="chart"><img alt="{alt}" src="data:image/svg+xml;base64,{data}"></div>')
        for sub, df in _parts(report, key):
            if sub:
                body.append(f"<h3>{html.escape(sub)}</h3>")
            body.append(_html_table(df))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>msgtrace report</title><style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
