"""Write trace rows as a terminal table, CSV, JSON, JSON lines or Parquet."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path
from typing import TextIO

import polars as pl

from msgtrace.ingest.terminal import CONTROL_ESCAPES, neutralize

FORMATS = ("table", "csv", "json", "jsonl", "parquet")
# A sender no line names (the message's first lines lie before the log): not the null sender,
# which shows as an empty cell. CSV shows it empty too, JSON as null.
UNKNOWN_SENDER = "(unknown)"
TABLE_COLUMNS = ("Received", "SenderAddress", "RecipientAddress", "Subject", "Status")
_ISO = "%Y-%m-%dT%H:%M:%S%.fZ"
# OWASP CSV injection: a cell starting with one of these is a formula in spreadsheet programs.
_FORMULA_START = r"^[=+\-@\t\r]"
# Which columns give up width first when the table is too wide, and how narrow they may get.
_MIN_WIDTH = {"Subject": 6, "SenderAddress": 10, "RecipientAddress": 10, "Received": 20, "Status": 9}
_SEP = "  "


def display_width(text: str) -> int:
    """Terminal columns text occupies (wide East Asian characters 2, combining marks 0)."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def fit(text: str, width: int) -> str:
    """Text cut to width display columns (ending in … when cut) and padded to exactly width."""
    w = display_width(text)
    if w > width:
        out, used = [], 0
        for ch in text:
            cw = display_width(ch)
            if used + cw > width - 1:
                break
            out.append(ch)
            used += cw
        text, w = "".join(out) + "…", used + 1
    return text + " " * (width - w)


def text_times(df: pl.DataFrame) -> pl.DataFrame:
    """The time columns as ISO 8601 UTC strings ending in Z."""
    return df.with_columns(pl.col(c).dt.strftime(_ISO) for c, t in df.schema.items() if isinstance(t, pl.Datetime))


def escape_controls(col: pl.Expr) -> pl.Expr:
    """C0 and C1 control characters as visible escapes (ESC as \\x1b), the table's spelling: a
    CSV printed to a terminal (`cat`, `less -r`) must not run escape sequences from log text."""
    return col.str.replace_many(list(CONTROL_ESCAPES), list(CONTROL_ESCAPES.values()))


def to_csv(df: pl.DataFrame) -> str:
    """CSV with a header; cells that a spreadsheet would run as formulas get a leading ', and
    control characters become escapes."""
    strings = [c for c, t in text_times(df).schema.items() if t == pl.String]
    safe = text_times(df).with_columns(
        escape_controls(
            pl.when(pl.col(c).str.contains(_FORMULA_START)).then("'" + pl.col(c)).otherwise(pl.col(c))
        ).alias(c)
        for c in strings
    )
    return safe.write_csv()


def to_json(df: pl.DataFrame) -> str:
    """A JSON array of objects keyed by column name."""
    return text_times(df).write_json() + "\n"


def to_jsonl(df: pl.DataFrame) -> str:
    """One JSON object a line."""
    return text_times(df).write_ndjson() if df.height else ""


def column_widths(natural: dict[str, int], total: int | None) -> dict[str, int]:
    """Shrink the widest shrinkable columns until the row (with separators) fits in total."""
    widths = dict(natural)
    if total is None:
        return widths
    budget = total - len(_SEP) * (len(widths) - 1)
    while sum(widths.values()) > budget:
        shrinkable = [c for c in widths if widths[c] > _MIN_WIDTH.get(c, 8)]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda c: widths[c] - _MIN_WIDTH.get(c, 8))
        widths[widest] -= 1
    return widths


def wrap_cell(text: str, width: int) -> list[str]:
    """Text broken into lines of at most width display columns, at spaces where it can be (a
    word longer than a line is split): nothing is cut off."""
    lines: list[str] = []
    line, used = "", 0
    for word in text.split(" "):
        w = display_width(word)
        if line and used + 1 + w <= width:
            line, used = f"{line} {word}", used + 1 + w
            continue
        if line or lines:
            lines.append(line)
        line, used = "", 0
        while w > width:  # a word wider than the column: split it by characters
            head, taken = "", 0
            for ch in word:
                cw = display_width(ch)
                if taken + cw > width:
                    break
                head, taken = head + ch, taken + cw
            lines.append(head)
            word, w = word[len(head) :], w - taken
        line, used = word, w
    lines.append(line)
    return lines


def to_table(
    df: pl.DataFrame, width: int | None = None, columns: list[str] | None = None, wrap: str | None = None
) -> str:
    """An aligned text table of the main columns, neutralised, fitting width columns when given.

    `wrap`: the last column, whose text is wrapped onto continuation lines instead of cut (the
    detail's remote server reply must be read whole).
    """
    cols = columns or TABLE_COLUMNS
    shown = df.select(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        if df.schema[c].is_temporal()
        else pl.col(c).cast(pl.String).fill_null(UNKNOWN_SENDER if c == "SenderAddress" else "")
        for c in cols
    )
    cells = {c: [neutralize(v or "") for v in shown[c].to_list()] for c in cols}
    natural = {c: max([len(c)] + [display_width(v) for v in cells[c]]) for c in cols}
    if wrap is not None and width is not None:
        assert wrap == cols[-1], "only the last column can wrap"
        # the others keep their natural width; the wrapped one takes what is left (at least 20)
        rest = width - sum(natural[c] + len(_SEP) for c in cols[:-1])
        natural[wrap] = max(min(natural[wrap], rest), 20)
        widths = natural
    else:
        widths = column_widths(natural, width)
    lines = [_SEP.join(fit(c, widths[c]) for c in cols).rstrip()]
    lines.append(_SEP.join("-" * widths[c] for c in cols))
    indent = " " * sum(widths[c] + len(_SEP) for c in cols[:-1])
    for i in range(df.height):
        if wrap is None or width is None:
            lines.append(_SEP.join(fit(cells[c][i], widths[c]) for c in cols).rstrip())
            continue
        first, *more = wrap_cell(cells[wrap][i], widths[wrap])
        lines.append(_SEP.join([*(fit(cells[c][i], widths[c]) for c in cols[:-1]), first]).rstrip())
        lines.extend((indent + m).rstrip() for m in more)
    return "\n".join(lines) + "\n"


def terminal_width() -> int:
    """The terminal's width ($COLUMNS first), 120 when unknown."""
    return shutil.get_terminal_size((120, 24)).columns


def render(
    df: pl.DataFrame, fmt: str, width: int | None = None, columns: list[str] | None = None, wrap: str | None = None
) -> str:
    """Rows in a text format (table, csv, json, jsonl); `columns` picks the table's columns, `wrap`
    the last one, wrapped rather than cut."""
    if fmt == "table":
        return to_table(df, width, columns, wrap)
    if fmt == "csv":
        return to_csv(df)
    if fmt == "json":
        return to_json(df)
    if fmt == "jsonl":
        return to_jsonl(df)
    raise ValueError(f"not a text format: {fmt}")


def write(
    df: pl.DataFrame,
    fmt: str,
    out: Path | None,
    stream: TextIO,
    columns: list[str] | None = None,
    wrap: str | None = None,
) -> None:
    """Write rows in fmt to the file out (atomically for parquet) or, for text formats, to stream."""
    if fmt == "parquet":
        if out is None:
            raise ValueError("--output parquet needs --out FILE")
        tmp = out.with_name(f".{out.name}.tmp")
        df.write_parquet(tmp)
        tmp.replace(out)
        return
    if out is not None:
        out.write_text(render(df, fmt, columns=columns), encoding="utf-8")
        return
    stream.write(render(df, fmt, terminal_width() if fmt == "table" else None, columns, wrap))
