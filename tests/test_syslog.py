"""The syslog envelope: RFC 3164 and RFC 3339 stamps, year inference, zones and DST edges."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest

from msgtrace.ingest.formats.context import ParseContext
from msgtrace.ingest.pipeline import IngestOptions, ingest_paths
from tests.polars_syslog import split

UTC = dt.UTC
TAIL = " mx1 postfix/qmgr[900]: 3F1A22C01: removed"


def frame(lines: list[str], first: int = 0) -> pl.DataFrame:
    """Lines as the reader hands them to a parser."""
    return pl.DataFrame(
        {"line_no": range(first, first + len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String}
    )


def utc_times(stamps: list[str], ctx: ParseContext, chunk: int | None = None) -> list[str | None]:
    """UTC ISO times of lines with these stamps, parsed in chunks of `chunk` lines (one chunk if None)."""
    lines = [s + TAIL for s in stamps]
    size = chunk or len(lines)
    out: list[str | None] = []
    for i in range(0, len(lines), size):
        df = split(frame(lines[i : i + size], i), ctx)
        out.extend(None if t is None else t.isoformat() for t in df.get_column("time").to_list())
    return out


def test_envelope_fields() -> None:
    df = split(
        frame(["Jun  3 10:00:00 mx1.example.org postfix/submission/smtpd[2100]: 3F1A22C01: client=x[192.0.2.1]"]),
        ParseContext(year=2026),
    )
    row = df.row(0, named=True)
    assert row["time"] == dt.datetime(2026, 6, 3, 10, 0, tzinfo=UTC)
    assert (row["host"], row["program"], row["pid"], row["ok"]) == (
        "mx1.example.org",
        "postfix/submission/smtpd",
        "2100",
        True,
    )
    assert row["body"] == "3F1A22C01: client=x[192.0.2.1]"


def test_rfc3164_in_the_given_zone() -> None:
    ctx = ParseContext(timezone="Europe/Vienna", year=2026)
    assert utc_times(["Aug 13 10:00:00", "Jan  5 10:00:00"], ctx) == [
        "2026-08-13T08:00:00+00:00",  # CEST
        "2027-01-05T09:00:00+00:00",  # CET, and past New Year: the month went back by more than six
    ]


def test_rfc3339_fraction_and_offsets() -> None:
    ctx = ParseContext(timezone="Europe/Vienna", year=2026)
    got = utc_times(
        [
            "2026-06-13T10:00:00.123456+02:00",
            "2026-06-13T08:00:00Z",
            "2026-06-13T04:00:00.5-04:00",
            "2026-06-13T10:00:00+0200",
            "2026-06-13 10:00:00",  # no zone: read in --timezone
        ],
        ctx,
    )
    assert got == [
        "2026-06-13T08:00:00.123456+00:00",
        "2026-06-13T08:00:00+00:00",
        "2026-06-13T08:00:00.500000+00:00",
        "2026-06-13T08:00:00+00:00",
        "2026-06-13T08:00:00+00:00",
    ]


def test_mixed_shapes_in_one_batch_keep_their_order() -> None:
    lines = [
        "Jun 13 10:00:00" + TAIL,
        "2026-06-13T08:00:01.250Z" + TAIL,
        "not syslog at all",
        "Jun 13 10:00:02" + TAIL,
        "2026-06-13T10:00:03.000001+02:00" + TAIL,
    ]
    df = split(frame(lines), ParseContext(timezone="Europe/Vienna", year=2026))
    assert df.get_column("line_no").to_list() == [0, 1, 2, 3, 4]
    assert df.get_column("ok").to_list() == [True, True, False, True, True]
    assert [t.isoformat() if t else None for t in df.get_column("time").to_list()] == [
        "2026-06-13T08:00:00+00:00",
        "2026-06-13T08:00:01.250000+00:00",
        None,
        "2026-06-13T08:00:02+00:00",
        "2026-06-13T08:00:03.000001+00:00",
    ]


def test_impossible_stamps_are_not_syslog() -> None:
    df = split(
        frame(["Feb 30 10:00:00" + TAIL, "Jun 13 25:00:00" + TAIL, "Foo 13 10:00:00" + TAIL]), ParseContext(year=2026)
    )
    assert df.get_column("ok").to_list() == [False, False, False]


# --- DST (Europe/Vienna 2026: forward at Mar 29 02:00 -> 03:00, back at Oct 25 03:00 -> 02:00) ---


def test_spring_forward_gap() -> None:
    ctx = ParseContext(timezone="Europe/Vienna", year=2026)
    got = utc_times(["Mar 29 01:59:59", "Mar 29 02:30:00", "Mar 29 03:00:01"], ctx)
    # 02:30 does not exist: read in the offset before the change (a clock not yet moved forward)
    assert got == ["2026-03-29T00:59:59+00:00", "2026-03-29T01:30:00+00:00", "2026-03-29T01:00:01+00:00"]


FALL_BACK = [
    "Oct 25 01:50:00",
    "Oct 25 02:30:00",
    "Oct 25 02:59:00",
    "Oct 25 02:05:00",
    "Oct 25 02:40:00",
    "Oct 25 03:10:00",
]
FALL_BACK_UTC = [
    "2026-10-24T23:50:00+00:00",
    "2026-10-25T00:30:00+00:00",  # first 02:30, CEST
    "2026-10-25T00:59:00+00:00",
    "2026-10-25T01:05:00+00:00",  # the hour again, CET: the log went back in time
    "2026-10-25T01:40:00+00:00",
    "2026-10-25T02:10:00+00:00",
]


@pytest.mark.parametrize("chunk", [None, 1, 2, 3])
def test_fall_back_repeated_hour_resolved_by_line_order(chunk: int | None) -> None:
    ctx = ParseContext(timezone="Europe/Vienna", year=2026)
    assert utc_times(FALL_BACK, ctx, chunk) == FALL_BACK_UTC


def test_fall_back_second_pass_after_a_line_that_is_not_syslog() -> None:
    ctx = ParseContext(timezone="Europe/Vienna", year=2026)
    lines = ["Oct 25 02:58:00" + TAIL, "", "garbage", "Oct 25 02:00:12" + TAIL]
    got = [t.isoformat() if t else None for t in split(frame(lines), ctx).get_column("time").to_list()]
    assert got == ["2026-10-25T00:58:00+00:00", None, None, "2026-10-25T01:00:12+00:00"]


def test_fall_back_small_disorder_stays_in_the_first_pass() -> None:
    # lines a few seconds out of order (two processes) are not a second pass
    ctx = ParseContext(timezone="Europe/Vienna", year=2026)
    got = utc_times(["Oct 25 02:30:05", "Oct 25 02:30:01"], ctx)
    assert got == ["2026-10-25T00:30:05+00:00", "2026-10-25T00:30:01+00:00"]


# --- the year of RFC 3164 stamps ---


NEW_YEAR = ["Dec 31 23:59:58", "Jan  1 00:00:01", "Jan  1 00:00:02"]
NEW_YEAR_UTC = ["2025-12-31T23:59:58+00:00", "2026-01-01T00:00:01+00:00", "2026-01-01T00:00:02+00:00"]


@pytest.mark.parametrize("chunk", [None, 1, 2])
def test_new_year_rollover_with_year(chunk: int | None) -> None:
    assert utc_times(NEW_YEAR, ParseContext(year=2025), chunk) == NEW_YEAR_UTC


def test_new_year_with_lines_interleaved_across_midnight() -> None:
    # two processes logging around midnight: Dec 31 and Jan 1 lines alternate (pmg-log-tracker's timechange log)
    stamps = [
        "Dec 31 23:59:59",
        "Jan 01 00:00:00",
        "Dec 31 23:59:59",
        "Jan 01 00:00:00",
        "Dec 31 23:59:59",
        "Jan 01 00:00:01",
    ]
    got = utc_times(stamps, ParseContext(year=2025), chunk=None)
    assert got == [
        "2025-12-31T23:59:59+00:00",
        "2026-01-01T00:00:00+00:00",
        "2025-12-31T23:59:59+00:00",
        "2026-01-01T00:00:00+00:00",
        "2025-12-31T23:59:59+00:00",
        "2026-01-01T00:00:01+00:00",
    ]


def test_year_runs_on_over_a_long_log() -> None:
    stamps = [
        "Nov 30 10:00:00",
        "Dec 31 10:00:00",
        "Jan 31 10:00:00",
        "Jun 30 10:00:00",
        "Dec 31 10:00:00",
        "Jan  1 10:00:00",
    ]
    got = utc_times(stamps, ParseContext(year=2024), chunk=2)
    assert [g[:10] for g in got if g] == [
        "2024-11-30",
        "2024-12-31",
        "2025-01-31",
        "2025-06-30",
        "2025-12-31",
        "2026-01-01",
    ]


def test_a_gap_of_more_than_six_months_ahead_keeps_the_year() -> None:
    # pmg-log-tracker's timechange log jumps from March to October
    got = utc_times(
        ["Mar 28 10:00:00", "Oct 31 10:00:00", "Dec 31 23:59:59", "Jan 01 00:00:00"], ParseContext(year=2021)
    )
    assert [g[:10] for g in got if g] == ["2021-03-28", "2021-10-31", "2021-12-31", "2022-01-01"]


def test_year_from_mtime() -> None:
    # the file was last written on Jan 2 2026: a December line is from 2025
    ctx = ParseContext(reference=dt.datetime(2026, 1, 2, 12, tzinfo=UTC))
    assert utc_times(NEW_YEAR, ctx) == NEW_YEAR_UTC
    # a line dated the day after the file's mtime is clock skew, not last year
    ctx = ParseContext(reference=dt.datetime(2026, 6, 13, 23, 59, tzinfo=UTC))
    assert utc_times(["Jun 14 00:00:30", "Jun 15 00:00:00"], ctx) == [
        "2026-06-14T00:00:30+00:00",
        "2025-06-15T00:00:00+00:00",
    ]


def test_year_from_mtime_through_the_pipeline(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text("".join(s + TAIL.replace("3F1A22C01", f"3F1A22C0{i}") + "\n" for i, s in enumerate(NEW_YEAR)))
    mtime = dt.datetime(2026, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    os.utime(log, (mtime, mtime))
    ingest_paths([str(log)], tmp_path / "store", IngestOptions(timezone="UTC", format="postfix"))
    events = pl.read_parquet(tmp_path / "store" / "events" / "**" / "*.parquet", hive_partitioning=False)
    got = [t.isoformat() for t in events.sort("line_no").get_column("time").to_list()]
    assert got == NEW_YEAR_UTC
    parts = sorted(p.name for p in (tmp_path / "store" / "events").iterdir())
    assert parts == ["date=2025-12-31", "date=2026-01-01"]
