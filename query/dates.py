"""Parse the dates users type (ISO 8601, US short dates) into UTC, and format UTC back as ISO 8601."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from msgtrace.errors import MsgtraceError

UTC = dt.UTC

# 06/13/2018, 6/13/2018 5:00 PM, 06/13/2018 17:00:30, 06/13/2018 5:00:30.5 pm
_US = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})"
    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*([AaPp][Mm])?)?$"
)
_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$")

DATE_HELP = (
    'ISO 8601 (2018-06-13, 2018-06-13T17:00, 2018-06-13T17:00:00Z) or US short date (06/13/2018, "06/13/2018 5:00 PM")'
)


class DateError(MsgtraceError, ValueError):
    """A date, time or time zone the user typed could not be understood."""


def zone(name: str | None) -> dt.tzinfo | None:
    """The tzinfo for an IANA name, `UTC` or a fixed offset like +02:00; None means the machine's zone."""
    if name is None or name.strip() == "" or name.strip().lower() == "local":
        return None
    name = name.strip()
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = _OFFSET.match(name)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 23 or minutes > 59:
            raise DateError(f"invalid time zone {name!r}")
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DateError(
            f"unknown time zone {name!r}: use an IANA name like Europe/Paris, UTC or an offset like +02:00"
        ) from None


def _us(text: str) -> dt.datetime | None:
    m = _US.match(text)
    if not m:
        return None
    month, day, year, hour, minute, second, frac, ampm = m.groups()
    h = int(hour or 0)
    if ampm:
        if not 1 <= h <= 12:
            raise DateError(f"invalid date {text!r}: the hour must be 1-12 with AM/PM")
        h = h % 12 + (12 if ampm.lower() == "pm" else 0)
    micro = int((frac or "0").ljust(6, "0"))
    try:
        return dt.datetime(int(year), int(month), int(day), h, int(minute or 0), int(second or 0), micro)
    except ValueError as e:
        raise DateError(f"invalid date {text!r}: {e}") from None


def parse_datetime(value: str | dt.datetime | dt.date, tz: dt.tzinfo | None = None) -> dt.datetime:
    """A user's date or date-time as an aware UTC datetime; values without a zone are read in tz.

    A date alone means midnight at the start of that day, as in Exchange.
    tz None means the machine's local zone.
    """
    if isinstance(value, dt.datetime):
        naive = value
    elif isinstance(value, dt.date):
        naive = dt.datetime(value.year, value.month, value.day)
    else:
        text = value.strip()
        naive = _us(text)
        if naive is None:
            try:
                # Python 3.11 reads ISO 8601 incl. "Z", offsets, a space or "T" separator, fractions.
                naive = dt.datetime.fromisoformat(text)
            except ValueError:
                raise DateError(f"invalid date {value!r}: use {DATE_HELP}") from None
    try:
        if naive.tzinfo is None:
            # astimezone() on a naive datetime reads it in the machine's zone.
            naive = naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()
        return naive.astimezone(UTC)
    except (OverflowError, ValueError, OSError) as e:
        raise DateError(f"invalid date {value!r}: {e}") from None


def iso_z(t: dt.datetime) -> str:
    """ISO 8601 UTC ending in Z, with as many fraction digits as needed (0, 3 or 6), like the output."""
    t = t.astimezone(UTC)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond == 0:
        return base + "Z"
    if t.microsecond % 1000 == 0:
        return f"{base}.{t.microsecond // 1000:03d}Z"
    return f"{base}.{t.microsecond:06d}Z"
