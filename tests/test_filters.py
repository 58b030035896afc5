"""Trace parameters: dates, window, age limit, value normalisation, the filter expression."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from msgtrace.query.dates import DateError, iso_z, parse_datetime, zone
from msgtrace.query.filters import (
    QueryError,
    TraceFilter,
    address_match,
    normalize_address,
    normalize_message_id,
    normalize_trace_id,
    split_values,
    trace_id_time,
)
from tests.helpers_store import trace_id, utc

NOW = "2026-06-14T12:00:00Z"
PARIS = zone("Europe/Paris")


# --- dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-06-13", utc(2018, 6, 13)),
        ("2018-06-13T17:00", utc(2018, 6, 13, 17)),
        ("2018-06-13 17:00:05", utc(2018, 6, 13, 17, 0, 5)),
        ("2018-06-13T17:00:00Z", utc(2018, 6, 13, 17)),
        ("2018-06-13T17:00:00+02:00", utc(2018, 6, 13, 15)),
        ("2018-06-13T17:00:00.250Z", utc(2018, 6, 13, 17, 0, 0, 250000)),
        ("06/13/2018", utc(2018, 6, 13)),
        ("6/3/2018", utc(2018, 6, 3)),
        ("06/13/2018 5:00 PM", utc(2018, 6, 13, 17)),
        ("06/13/2018 5:00PM", utc(2018, 6, 13, 17)),
        ("06/13/2018 12:30 am", utc(2018, 6, 13, 0, 30)),
        ("06/13/2018 12:30 PM", utc(2018, 6, 13, 12, 30)),
        ("06/13/2018 17:45:10", utc(2018, 6, 13, 17, 45, 10)),
    ],
)
def test_parse_datetime_in_utc(text: str, expected: dt.datetime) -> None:
    assert parse_datetime(text, dt.UTC) == expected


def test_zoneless_dates_are_read_in_the_given_zone() -> None:
    # Paris is UTC+2 in June: midnight there is 22:00 UTC the day before.
    assert parse_datetime("06/13/2018", PARIS) == utc(2018, 6, 12, 22)
    assert parse_datetime("2018-01-13 17:00", PARIS) == utc(2018, 1, 13, 16)
    # A value with its own zone ignores the configured one.
    assert parse_datetime("2018-06-13T00:00:00Z", PARIS) == utc(2018, 6, 13)
    assert parse_datetime("06/13/2018", zone("+05:30")) == utc(2018, 6, 12, 18, 30)


def test_zoneless_dates_default_to_the_machine_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_datetime("06/13/2018 5:00 PM") == utc(2018, 6, 13, 21)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("text", ["13/45/2018", "2018-13-01", "yesterday", "06/13/2018 13:00 PM", "", "06/31/2018"])
def test_bad_dates(text: str) -> None:
    with pytest.raises(DateError, match="invalid date"):
        parse_datetime(text, dt.UTC)


def test_bad_zone() -> None:
    with pytest.raises(DateError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")


def test_iso_z() -> None:
    assert iso_z(utc(2026, 6, 13, 10, 0, 2)) == "2026-06-13T10:00:02Z"
    assert iso_z(utc(2026, 6, 13, 10, 0, 2, 123000)) == "2026-06-13T10:00:02.123Z"
    assert iso_z(utc(2026, 6, 13, 10, 0, 2, 123456)) == "2026-06-13T10:00:02.123456Z"


# --- window and age limit -------------------------------------------------------------------


def make(**kw: object) -> TraceFilter:
    kw.setdefault("now", NOW)
    kw.setdefault("timezone", "UTC")
    return TraceFilter.from_params(**kw)  # type: ignore[arg-type]


def test_default_window_is_48_hours_even_with_filters() -> None:
    f = make(sender_address="a@b.c")
    assert (f.start, f.end) == (utc(2026, 6, 12, 12), utc(2026, 6, 14, 12))


def test_start_only_runs_to_now_and_end_only_covers_48_hours_before() -> None:
    assert make(start_date="2026-06-13").end == utc(2026, 6, 14, 12)
    assert make(end_date="2026-06-13").start == utc(2026, 6, 11)


def test_start_after_end_is_an_error() -> None:
    with pytest.raises(
        QueryError, match=r"^--start-date 2026-06-13T00:00:00Z is after --end-date 2026-06-12T00:00:00Z$"
    ):
        make(start_date="2026-06-13", end_date="2026-06-12")


def test_equal_start_and_end_is_an_empty_window() -> None:
    f = make(start_date="2026-06-13", end_date="2026-06-13")
    assert f.days() == []


def test_age_limit() -> None:
    with pytest.raises(QueryError) as e:
        make(start_date="2026-06-04T11:59:59Z")
    assert str(e.value) == (
        "--start-date 2026-06-04T11:59:59Z is older than the 10-day limit (before 2026-06-04T12:00:00Z); "
        "pass --max-age-days 0 (or a larger value) to search older data"
    )
    assert make(start_date="2026-06-04T12:00:00Z").start == utc(2026, 6, 4, 12)
    assert make(start_date="2020-01-01", max_age_days=0).start == utc(2020, 1, 1)
    assert make(start_date="2026-05-20", max_age_days=30).start == utc(2026, 5, 20)
    with pytest.raises(QueryError, match="invalid --max-age-days -1"):
        make(max_age_days=-1)


def test_now_can_be_a_datetime_and_bad_now_is_an_error() -> None:
    f = TraceFilter.from_params(now=utc(2026, 1, 2, 3))
    assert f.end == utc(2026, 1, 2, 3)
    with pytest.raises(QueryError, match="^invalid --now 'soon'"):
        make(now="soon")
    with pytest.raises(QueryError, match="^invalid --start-date 'June 13th'"):
        make(start_date="June 13th")


# --- partitions --------------------------------------------------------------------------------


def test_days_end_is_exclusive_at_midnight() -> None:
    assert make(start_date="2026-06-13", end_date="2026-06-14").days() == [dt.date(2026, 6, 13)]
    assert make(start_date="2026-06-13", end_date="2026-06-14T00:00:01Z").days() == [
        dt.date(2026, 6, 13),
        dt.date(2026, 6, 14),
    ]
    # the V2 cursor takes rows received exactly at EndDate, so that day is needed
    f = make(start_date="2026-06-13", end_date="2026-06-14", starting_recipient_address="x@y")
    assert f.days() == [dt.date(2026, 6, 13), dt.date(2026, 6, 14)]


def test_trace_id_pins_one_day() -> None:
    tid = trace_id(utc(2026, 6, 13, 23, 59, 59, 999000))
    assert trace_id_time(tid) == utc(2026, 6, 13, 23, 59, 59, 999000)
    f = make(start_date="2026-06-10", end_date="2026-06-14", message_trace_id=tid.upper())
    assert f.message_trace_id == tid
    assert f.days() == [dt.date(2026, 6, 13)]
    # outside the window: nothing to open at all
    assert make(start_date="2026-06-10", end_date="2026-06-12", message_trace_id=tid).days() == []
    # a GUID that is not v7 carries no time: the whole window is scanned
    v4 = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    assert trace_id_time(v4) is None
    assert len(make(start_date="2026-06-10", end_date="2026-06-12", message_trace_id=v4).days()) == 2


@pytest.mark.parametrize("bad", ["nope", "3f2504e0-4f89-41d3-9a0c", "3f2504e0-4f89-41d3-9a0c-0305e82c33zz"])
def test_malformed_trace_id(bad: str) -> None:
    with pytest.raises(QueryError, match=f"^invalid --message-trace-id '{bad}': expected a GUID"):
        normalize_trace_id(bad)


# --- values ------------------------------------------------------------------------------------


def test_split_values() -> None:
    assert split_values(None) == ()
    assert split_values("a@x, b@x,,") == ("a@x", "b@x")
    assert split_values(["a@x,b@x", " c@x "]) == ("a@x", "b@x", "c@x")


def test_normalize_address() -> None:
    assert normalize_address("John@Contoso.COM") == "john@contoso.com"
    assert normalize_address("<john@contoso.com>") == "john@contoso.com"
    assert normalize_address("<>") == ""
    assert normalize_address("*@Contoso.com") == "*@contoso.com"
    with pytest.raises(QueryError, match=r"a \* wildcard may only start or end it"):
        normalize_address("jo*n@contoso.com")


def test_statuses_are_case_insensitive_and_unknown_ones_listed() -> None:
    assert make(status=["delivered,FAILED", "Delivered"]).statuses == ("Delivered", "Failed")
    with pytest.raises(QueryError) as e:
        make(status="Bounced")
    assert str(e.value) == (
        "invalid --status 'Bounced': valid values are GettingStatus, Pending, Delivered, Failed, "
        "Expanded, Quarantined, FilteredAsSpam, None"
    )


def test_message_id_brackets() -> None:
    assert normalize_message_id("abc@x") == "<abc@x>"
    assert normalize_message_id("<abc@x>") == "<abc@x>"


def test_message_id_matches_as_typed_too() -> None:
    # a corrupted id is stored as logged, without its closing bracket: typed whole, it must match
    f = make(message_id="<eyJ H i1Cd? Y3ZmI")
    assert f.message_ids == ("<eyJ H i1Cd? Y3ZmI", "<eyJ H i1Cd? Y3ZmI>", "eyJ H i1Cd? Y3ZmI")
    assert make(message_id="abc@x").message_ids == ("abc@x", "<abc@x>", "<abc@x")


def test_ips_are_validated_and_normalised() -> None:
    assert make(from_ip="2001:DB8:0:0::1").from_ip == "2001:db8::1"
    assert make(to_ip="192.0.2.1").to_ip == "192.0.2.1"
    with pytest.raises(QueryError, match="^invalid --from-ip '300.1.1.1': expected an IPv4 or IPv6 address$"):
        make(from_ip="300.1.1.1")
    with pytest.raises(QueryError, match="^invalid --to-ip 'mx.example.org'"):
        make(to_ip="mx.example.org")


def test_subject_filter_type() -> None:
    assert make(subject="x", subject_filter_type="startswith").subject_filter_type == "StartsWith"
    with pytest.raises(QueryError, match="^invalid --subject-filter-type 'Regex': valid values are Contains"):
        make(subject="x", subject_filter_type="Regex")


def test_starting_recipient_needs_end_date() -> None:
    with pytest.raises(QueryError, match="^--starting-recipient-address needs --end-date"):
        make(starting_recipient_address="a@b")


# --- expressions -------------------------------------------------------------------------------


def test_address_match_wildcards() -> None:
    df = pl.DataFrame({"a": ["john@contoso.com", "mary@contoso.com", "john@fabrikam.com", "", None]})

    def hits(*patterns: str) -> list[str | None]:
        return df.filter(address_match(pl.col("a"), patterns))["a"].to_list()

    assert hits("john@contoso.com") == ["john@contoso.com"]
    assert hits("*@contoso.com") == ["john@contoso.com", "mary@contoso.com"]
    assert hits("john@*") == ["john@contoso.com", "john@fabrikam.com"]
    assert hits("mary@contoso.com", "*@fabrikam.com") == ["mary@contoso.com", "john@fabrikam.com"]
    assert hits("*contoso*") == ["john@contoso.com", "mary@contoso.com"]
    assert hits("") == [""]  # `<>` is the null sender; an unknown sender (null) is not it
    assert hits("*") == df["a"].to_list()


def test_expr_with_partition_column() -> None:
    f = make(start_date="2026-06-13", end_date="2026-06-14")
    df = pl.DataFrame(
        {
            "date": [dt.date(2026, 6, 13), dt.date(2026, 6, 12)],
            "received": [utc(2026, 6, 13, 1), utc(2026, 6, 13, 2)],  # 2nd row: inconsistent on purpose
        }
    )
    assert df.filter(f.expr(partition=True)).height == 1
    assert df.filter(f.expr()).height == 2


def test_age_limit_names_a_derived_start() -> None:
    with pytest.raises(
        QueryError, match=r"^the window start \(48 hours before its end\) 2026-05-30T00:00:00Z is older"
    ):
        make(end_date="2026-06-01")
