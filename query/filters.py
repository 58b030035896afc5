"""The trace parameters of the contract, validated, and turned into one Polars expression."""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from msgtrace.defaults import MAX_AGE_DAYS as DEFAULT_MAX_AGE_DAYS
from msgtrace.errors import QueryError
from msgtrace.ingest.schema import STATUSES
from msgtrace.query.dates import DateError, iso_z, parse_datetime, zone
from msgtrace.query.direction import normalize_direction
from msgtrace.store import days_between

DEFAULT_WINDOW = dt.timedelta(hours=48)
SUBJECT_FILTER_TYPES = ("Contains", "StartsWith", "EndsWith")
_STATUS_BY_LOWER = {s.lower(): s for s in STATUSES}

DateLike = str | dt.datetime | dt.date
Values = str | Iterable[str] | None


def split_values(values: Values) -> tuple[str, ...]:
    """Multi-valued input: a string or several, each possibly comma-separated; blanks dropped."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        out.extend(p.strip() for p in str(v).split(",") if p.strip())
    return tuple(out)


def given_values(values: Values, param: str) -> tuple[str, ...]:
    """split_values, but a parameter given with nothing in it (`--status ''`, `--status ,,,`) is an
    error rather than no filter: a typo must not silently widen the query to every row."""
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    out = split_values(items)
    if items and not out:
        raise _no_value(param, ",".join(items))
    return out


def given_text(value: str | None, param: str) -> str | None:
    """A single-valued parameter: None when not given; an empty or blank value is an error."""
    if value is None:
        return None
    if not str(value).strip():
        raise _no_value(param, value)
    return value


def _no_value(param: str, value: str) -> QueryError:
    return QueryError.naming(
        "{" + param + "} {value!r} has no value in it: give a value, or leave the option out", value=value
    )


def normalize_address(value: str) -> str:
    """A sender/recipient pattern, lowercased; `<>` means the null sender; `*` only at either end."""
    v = value.strip()
    if v == "<>":
        return ""
    if v.startswith("<") and v.endswith(">"):
        v = v[1:-1]
    if "*" in v.strip("*"):
        raise QueryError(f"invalid address {value!r}: a * wildcard may only start or end it (*@contoso.com, john@*)")
    return v.lower()


def address_match(col: pl.Expr, patterns: Iterable[str]) -> pl.Expr:
    """Match a lowercased address column against exact addresses and leading/trailing `*` wildcards."""
    exact: list[str] = []
    parts: list[pl.Expr] = []
    for p in patterns:
        if p.strip("*") == "" and "*" in p:
            return pl.lit(True)
        if p.startswith("*") and p.endswith("*"):
            parts.append(col.str.contains(p.strip("*"), literal=True))
        elif p.startswith("*"):
            parts.append(col.str.ends_with(p[1:]))
        elif p.endswith("*"):
            parts.append(col.str.starts_with(p[:-1]))
        else:
            exact.append(p)
    if exact:
        parts.insert(0, col.eq(exact[0]) if len(exact) == 1 else col.is_in(exact))
    # `<>` is the null sender, stored as ""; an unknown sender (null) matches no pattern
    expr = parts[0]
    for p in parts[1:]:
        expr = expr | p
    return expr


def normalize_status(value: str) -> str:
    """The canonical spelling of a status, or QueryError listing the valid ones."""
    s = _STATUS_BY_LOWER.get(value.strip().lower())
    if s is None:
        raise QueryError.naming(
            "invalid {status} {value!r}: valid values are {valid}", value=value, valid=", ".join(STATUSES)
        )
    return s


def normalize_message_id(value: str) -> str:
    """A Message-ID in its bracketed form, whether or not the user typed the brackets."""
    v = value.strip()
    if not v.startswith("<"):
        v = "<" + v
    if not v.endswith(">"):
        v = v + ">"
    return v


def message_id_forms(value: str) -> tuple[str, ...]:
    """What a typed Message-ID may be stored as: as typed, bracketed, bare, or with only its `<`.

    A well-formed id is stored with its brackets, so `abc@x` finds `<abc@x>`; a corrupted one is
    stored as logged (`<eyJ... Y3ZmI`: spaces, no closing bracket), so it is found as typed, and
    without its brackets too.
    """
    v = value.strip()
    bare = v.removeprefix("<").removesuffix(">")
    return tuple(dict.fromkeys([v, normalize_message_id(v), bare, "<" + bare]))


def normalize_trace_id(value: str) -> str:
    """A MessageTraceId as lowercase 8-4-4-4-12 text, or QueryError when it is not a GUID."""
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        raise QueryError.naming(
            "invalid {message_trace_id} {value!r}: expected a GUID like 0190a5b2-3c4d-7e5f-8a6b-1c2d3e4f5a6b",
            value=value,
        ) from None


def trace_id_time(trace_id: str) -> dt.datetime | None:
    """The Received time (ms) a UUIDv7-layout MessageTraceId carries in its first 48 bits, or None."""
    u = uuid.UUID(trace_id)
    if u.version != 7:
        return None
    ms = u.int >> 80
    try:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    except OverflowError:
        return None


def normalize_ip(value: str, param: str) -> str:
    """An IPv4/IPv6 address in canonical text, or QueryError naming the parameter."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise QueryError.naming(
            "invalid {" + param + "} {value!r}: expected an IPv4 or IPv6 address", value=value
        ) from None


def ipv6_forms(addr: ipaddress.IPv6Address) -> list[str]:
    """Every text form of addr once leading zeros are dropped: full, or any zero run as `::`."""
    groups = [f"{int(h, 16):x}" for h in addr.exploded.split(":")]
    forms = {":".join(groups)}
    for i in range(8):
        for j in range(i + 1, 9):
            if all(g == "0" for g in groups[i:j]):
                forms.add(":".join(groups[:i]) + "::" + ":".join(groups[j:]))
    if addr.ipv4_mapped is not None:
        forms.add(f"::ffff:{addr.ipv4_mapped}")
    return sorted(forms)


def ip_match(col: pl.Expr, ip: str) -> pl.Expr:
    """Match an IP column; IPv6 in any notation (case, leading zeros, `::` placement, `IPv6:` prefix)."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        # a dual-stack listener logs IPv4 clients as ::ffff:a.b.c.d
        return col.is_in([ip, "::ffff:" + ip])
    assert isinstance(addr, ipaddress.IPv6Address)
    text = col.str.to_lowercase().str.strip_prefix("ipv6:").str.replace_all(r"(^|:)0+([0-9a-f])", "${1}${2}")
    return text.is_in(ipv6_forms(addr))


def subject_match(col: pl.Expr, subject: str, kind: str) -> pl.Expr:
    """Case-insensitive Contains / StartsWith / EndsWith on the subject."""
    low = col.str.to_lowercase()
    s = subject.lower()
    if kind == "StartsWith":
        return low.str.starts_with(s)
    if kind == "EndsWith":
        return low.str.ends_with(s)
    return low.str.contains(s, literal=True)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_RECEIVED = pl.Datetime("us", "UTC")


def time_lit(t: dt.datetime) -> pl.Expr:
    """An aware datetime as a literal of the stored time type (microseconds, UTC).

    Built from its integer microseconds: Polars converts an aware datetime literal through an
    eager time-zone step that costs ~0.25 ms, and a web search builds several per request."""
    return pl.lit((t - _EPOCH) // dt.timedelta(microseconds=1), dtype=pl.Int64).cast(_RECEIVED)


@dataclass(frozen=True)
class TraceFilter:
    """Validated trace parameters; `expr()` is the row filter, `days()` the partitions to open."""

    start: dt.datetime
    end: dt.datetime
    senders: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()  # every form a typed id may be stored in (message_id_forms)
    message_trace_id: str | None = None
    statuses: tuple[str, ...] = ()
    from_ip: str | None = None
    to_ip: str | None = None
    subject: str | None = None
    subject_filter_type: str = "Contains"
    # V2 cursor: rows strictly after (end, starting_recipient) in the sort order are also in.
    starting_recipient: str | None = None
    # Inbound, Outbound, Local: derived at query time (query.direction), so applied by the engine, not expr()
    directions: tuple[str, ...] = ()
    # Follow each message across the store's own MTAs (query.follow): a row is a recipient of a
    # message entering the organisation, with the status and ToIP of its last hop.
    follow: bool = False

    @classmethod
    def from_params(
        cls,
        *,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        sender_address: Values = None,
        recipient_address: Values = None,
        message_id: Values = None,
        message_trace_id: str | None = None,
        status: Values = None,
        from_ip: str | None = None,
        to_ip: str | None = None,
        subject: str | None = None,
        subject_filter_type: str | None = None,
        starting_recipient_address: str | None = None,
        now: DateLike | None = None,
        max_age_days: int = DEFAULT_MAX_AGE_DAYS,
        timezone: str | dt.tzinfo | None = None,
        direction: Values = None,
        follow: bool = False,
    ) -> TraceFilter:
        """Validate the contract's parameters (dates, age limit, values) into a TraceFilter."""
        try:
            tz = zone(timezone) if timezone is None or isinstance(timezone, str) else timezone
            now_utc = parse_datetime(now, tz) if now is not None else dt.datetime.now(dt.UTC)
        except DateError as e:
            raise _date_error(e, "now") from None
        start = _date(start_date, tz, "start_date")
        end = _date(end_date, tz, "end_date")
        start, end = window(start, end, now_utc, max_age_days)
        if starting_recipient_address is not None and end_date is None:
            raise QueryError.naming(
                "{starting_recipient_address} needs {end_date}: the Received of the last row of the previous page"
            )
        if subject_filter_type is not None and subject is None:
            raise QueryError.naming(
                "{subject_filter_type} {value} needs {subject=TEXT}: it says how the subject matches",
                value=subject_filter_type,
            )
        kind = _subject_filter_type(subject_filter_type)
        subject = given_text(subject, "subject")
        return cls(
            start=start,
            end=end,
            senders=tuple(normalize_address(v) for v in given_values(sender_address, "sender_address")),
            recipients=tuple(normalize_address(v) for v in given_values(recipient_address, "recipient_address")),
            message_ids=tuple(
                dict.fromkeys(f for v in given_values(message_id, "message_id") for f in message_id_forms(v))
            ),
            message_trace_id=None if message_trace_id is None else normalize_trace_id(message_trace_id),
            statuses=tuple(dict.fromkeys(normalize_status(v) for v in given_values(status, "status"))),
            from_ip=None if from_ip is None else normalize_ip(from_ip, "from_ip"),
            to_ip=None if to_ip is None else normalize_ip(to_ip, "to_ip"),
            subject=subject,
            subject_filter_type=kind,
            starting_recipient=starting_recipient_address,
            directions=tuple(dict.fromkeys(normalize_direction(v) for v in given_values(direction, "--direction"))),
            follow=bool(follow),
        )

    def days(self) -> list[dt.date]:
        """The UTC days whose partitions can hold matching rows (a MessageTraceId pins one day)."""
        first = self.start.date()
        # The window is [start, end): a midnight end needs no file of that day, unless the V2
        # cursor also takes rows received exactly at `end`.
        last = self.end if self.starting_recipient is not None else self.end - dt.timedelta(microseconds=1)
        if last < self.start:
            return []
        days = days_between(first, last.date())
        if self.message_trace_id:
            t = trace_id_time(self.message_trace_id)
            if t is not None:
                days = [d for d in days if d == t.date()]
        return days

    def window_only(self) -> bool:
        """True when the window is the only filter (no address, id, status, IP, subject or cursor).

        Compared with a filter built from the window alone, so a field added later counts as a
        filter without anyone remembering to list it here.
        """
        return self == TraceFilter(self.start, self.end, subject_filter_type=self.subject_filter_type)

    def expr(self, partition: bool = False) -> pl.Expr:
        """Every filter as one expression; with partition=True a hive `date` predicate comes first."""
        e = self._window()
        if partition:
            days = self.days()
            e = pl.col("date").is_in(days) & e if days else pl.lit(False)
        return self._entry(e) & self.outcome_expr()

    def entry_expr(self) -> pl.Expr:
        """For --follow, the filters on what a message's first hop decides (window, sender, ids,
        FromIP, subject). The recipient may be a later hop's (an alias expanded there), and so may
        the V2 cursor's: rows received at `end` are kept for outcome_expr to decide."""
        received = pl.col("received")
        if self.starting_recipient is not None:
            return self._entry((received >= time_lit(self.start)) & (received <= time_lit(self.end)), recipients=False)
        return self._entry(self._window(), recipients=False)

    def outcome_expr(self) -> pl.Expr:
        """The filters on what the last hop decides (status, ToIP); with --follow also the window
        again and the recipients, on the end-to-end rows."""
        e = pl.lit(True)
        if self.follow:
            e = self._window()
            if self.recipients:
                e &= address_match(pl.col("recipient_lower"), self.recipients)
        if self.statuses:
            e &= pl.col("status").is_in(list(self.statuses))
        if self.to_ip:
            e &= ip_match(pl.col("to_ip"), self.to_ip)
        return e

    def _window(self) -> pl.Expr:
        received = pl.col("received")
        start, end = time_lit(self.start), time_lit(self.end)
        window = received.is_between(start, end, closed="left")
        if self.starting_recipient is not None:
            after = (received == end) & (pl.col("recipient_address").fill_null("") > self.starting_recipient)
            window = (received >= start) & ((received < end) | after)
        return window

    def _entry(self, e: pl.Expr, recipients: bool = True) -> pl.Expr:
        if self.message_trace_id:
            e &= pl.col("message_trace_id") == self.message_trace_id
        if self.senders:
            e &= address_match(pl.col("sender_lower"), self.senders)
        if self.recipients and recipients:
            e &= address_match(pl.col("recipient_lower"), self.recipients)
        if self.message_ids:
            e &= pl.col("message_id").is_in(list(self.message_ids))
        if self.from_ip:
            e &= ip_match(pl.col("from_ip"), self.from_ip)
        if self.subject:
            e &= subject_match(pl.col("subject"), self.subject, self.subject_filter_type)
        return e


def window(
    start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime, max_age_days: int
) -> tuple[dt.datetime, dt.datetime]:
    """Fill in the default 48-hour window and check StartDate <= EndDate and the age limit."""
    what = "{start_date}" if start is not None else "the window start (48 hours before its end)"
    if start is None and end is None:
        start, end = now - DEFAULT_WINDOW, now
    elif end is None:
        end = now
    elif start is None:
        start = end - DEFAULT_WINDOW
    assert start is not None and end is not None
    if start > end:
        raise QueryError.naming("{start_date} {start} is after {end_date} {end}", start=iso_z(start), end=iso_z(end))
    if max_age_days < 0:
        raise QueryError.naming(
            "invalid {max_age_days} {days}: use 0 (no limit) or a number of days", days=max_age_days
        )
    if max_age_days:
        try:
            limit = now - dt.timedelta(days=max_age_days)
        except OverflowError:  # more days than a date can go back
            raise QueryError.naming(
                "invalid {max_age_days} {days}: too large; use 0 to lift the limit", days=max_age_days
            ) from None
        if start < limit:
            raise QueryError.naming(
                what + " {start} is older than the {days}-day limit "
                "(before {limit}); pass {max_age_days=0} (or a larger value) to search older data",
                start=iso_z(start),
                days=max_age_days,
                limit=iso_z(limit),
            )
    return start, end


def _subject_filter_type(value: str | None) -> str:
    if value is None:
        return "Contains"
    for kind in SUBJECT_FILTER_TYPES:
        if kind.lower() == value.strip().lower():
            return kind
    raise QueryError.naming(
        "invalid {subject_filter_type} {value!r}: valid values are {valid}",
        value=value,
        valid=", ".join(SUBJECT_FILTER_TYPES),
    )


def _date(value: DateLike | None, tz: dt.tzinfo | None, param: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_datetime(value, tz)
    except DateError as e:
        raise _date_error(e, param) from None


def _date_error(e: DateError, param: str) -> QueryError:
    """The DateError of a parameter's value, `invalid date '...'` naming the parameter instead."""
    before, found, after = str(e).partition("invalid date")
    if not found:  # a time zone the dates are read in, say: the message names what it is about
        return QueryError(str(e))
    return QueryError.naming("{before}invalid {" + param + "}{after}", before=before, after=after)
