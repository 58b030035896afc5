"""Output formats: JSON/JSONL faithful, CSV without formula cells, a neutralised table that fits."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl

from msgtrace.query import output
from tests.helpers_store import utc

ROW = {
    "Organization": "example.com",
    "MessageId": "<m1@example.com>",
    "Received": utc(2026, 6, 13, 10, 0, 2, 123456),
    "SenderAddress": '=HYPERLINK("http://evil")@x',
    "RecipientAddress": "bob@example.org",
    "Subject": "Hi\x1b[31m red\u202eevil\r\nline2 \u00e9\u65e5\u672c",
    "Status": "Delivered",
    "ToIP": "203.0.113.7",
    "FromIP": "",
    "Size": 1234,
    "MessageTraceId": "0197a5b2-3c4d-7e5f-8a6b-1c2d3e4f5a6b",
    "StartDate": utc(2026, 6, 12, 12),
    "EndDate": utc(2026, 6, 14, 12),
    "Index": 0,
}
TIME = pl.Datetime("us", "UTC")


def frame(*rows: dict[str, object]) -> pl.DataFrame:
    schema = {k: (TIME if k in ("Received", "StartDate", "EndDate") else pl.Int64 if k in ("Size", "Index")
                  else pl.String) for k in ROW}  # fmt: skip
    return pl.DataFrame(list(rows), schema=schema)


def test_json_is_faithful_with_z_times() -> None:
    got = json.loads(output.to_json(frame(ROW, {**ROW, "Received": utc(2026, 6, 13, 9), "Size": None})))
    assert list(got[0]) == list(ROW)
    assert got[0]["Received"] == "2026-06-13T10:00:02.123456Z"
    assert got[0]["StartDate"] == "2026-06-12T12:00:00Z"
    assert got[0]["Subject"] == ROW["Subject"]  # JSON escaping is enough: nothing altered
    assert got[0]["SenderAddress"] == ROW["SenderAddress"]
    assert got[1]["Received"] == "2026-06-13T09:00:00Z" and got[1]["Size"] is None
    assert output.to_json(frame()) == "[]\n"


def test_jsonl_one_object_a_line() -> None:
    text = output.to_jsonl(frame(ROW, ROW))
    lines = text.splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["Index"] == 0
    assert output.to_jsonl(frame()) == ""


def test_csv_header_and_no_formula_cells() -> None:
    text = output.to_csv(frame(ROW, {**ROW, "SenderAddress": "-1+2@x", "Subject": "@SUM(A1)",
                                     "RecipientAddress": "+a@x", "Organization": "\tTab"}))  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(ROW)
    assert rows[0]["SenderAddress"] == '\'=HYPERLINK("http://evil")@x'
    assert rows[0]["Received"] == "2026-06-13T10:00:02.123456Z"
    # not a formula; C0/C1 controls shown as escapes, as in the table (a CSV printed to a terminal)
    assert rows[0]["Subject"] == "Hi\\x1b[31m red\u202eevil\\x0d\\x0aline2 \u00e9\u65e5\u672c"
    assert (rows[1]["SenderAddress"], rows[1]["Subject"], rows[1]["RecipientAddress"], rows[1]["Organization"]) == (
        "'-1+2@x", "'@SUM(A1)", "'+a@x", "'\\x09Tab",
    )  # fmt: skip
    assert rows[0]["Size"] == "1234"
    assert output.to_csv(frame()).strip() == ",".join(ROW)


def test_neutralize() -> None:
    assert output.neutralize("a\x1b[31mb\x07\x7f\x9b") == "a\\x1b[31mb\\x07\\x7f\\x9b"
    assert output.neutralize("x\u202ey\u2028z") == "x\\u202ey\\u2028z"
    assert output.neutralize("caf\u00e9 \u65e5\u672c") == "caf\u00e9 \u65e5\u672c"


def test_table_neutralises_and_fits_width() -> None:
    long_subject = {**ROW, "Subject": "S" * 300, "RecipientAddress": "r" * 80 + "@example.org"}
    text = output.to_table(frame(ROW, long_subject), width=100)
    lines = text.splitlines()
    assert lines[0].split() == ["Received", "SenderAddress", "RecipientAddress", "Subject", "Status"]
    assert all(output.display_width(line) <= 100 for line in lines)
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
    assert "\\x1b[31m" in text
    assert "…" in lines[3]
    assert lines[2].startswith("2026-06-13T10:00:02Z  ")
    assert lines[2].rstrip().endswith("Delivered")


def test_table_counts_wide_characters() -> None:
    assert output.display_width("\u65e5\u672c") == 4
    assert output.fit("\u65e5\u672c\u8a9e", 5) == "\u65e5\u672c…"
    assert output.fit("ab", 4) == "ab  "


def test_table_without_width_keeps_everything() -> None:
    text = output.to_table(frame({**ROW, "Subject": "S" * 300}))
    assert "S" * 300 in text


def test_write_parquet_and_files(tmp_path: Path) -> None:
    df = frame(ROW)
    output.write(df, "parquet", tmp_path / "out.parquet", io.StringIO())
    back = pl.read_parquet(tmp_path / "out.parquet")
    assert back.equals(df)
    assert back.schema["Received"] == TIME
    output.write(df, "csv", tmp_path / "out.csv", io.StringIO())
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").startswith("Organization,MessageId,Received,")
    stream = io.StringIO()
    output.write(df, "jsonl", None, stream)
    assert json.loads(stream.getvalue())["Index"] == 0
