"""Query-string parameters of the pages and the HTTP API, read into the Python API's arguments.

The names are the Python API's (`sender_address`, `start_date`, `page_size`, ...). Values get the
CLI's semantics because they go to the same functions (TraceFilter.from_params, Paging.from_params);
the few checks made here (integers, unknown names) use the CLI's wording, so an HTTP 400 carries
the message `msgtrace trace` would print after `Error: `.

An empty value counts as absent: an HTML form sends its empty fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from msgtrace.query.filters import QueryError

# Filter parameters that take several values (repeated, or comma-separated like the CLI).
MULTI = ("sender_address", "recipient_address", "message_id", "status", "direction")
SINGLE = (
    "start_date", "end_date", "message_trace_id", "from_ip", "to_ip", "subject", "subject_filter_type",
    "now", "timezone",
)  # fmt: skip
INTEGER = ("max_age_days",)
BOOLEAN = ("follow",)  # a checkbox: true/false, 1/0, on/off, yes/no
TRUE, _FALSE = ("true", "1", "on", "yes"), ("false", "0", "off", "no")
PAGING_INTEGER = ("page", "page_size", "result_size")
CURSOR = "starting_recipient_address"

TRACE_PARAMS = (*MULTI, *SINGLE, CURSOR, *INTEGER, *BOOLEAN, *PAGING_INTEGER)
FILTER_PARAMS = (*MULTI, *SINGLE, *INTEGER, *BOOLEAN)
DETAIL_PARAMS = ("message_trace_id", "recipient_address", "start_date", "end_date", "timezone", "now", "max_age_days")
# Larger than any real age limit, small enough for a datetime: the CLI fails on a larger one with an overflow.
MAX_AGE_DAYS_LIMIT = 1_000_000


@dataclass(frozen=True)
class Defaults:
    """What the server supplies when a request does not: its `now` and time zone (as the CLI's env)."""

    now: str | None = None
    timezone: str | None = None


def option(name: str) -> str:
    """The CLI option of an API parameter: sender_address -> --sender-address."""
    return "--" + name.replace("_", "-")


def _values(query: Mapping[str, object], name: str) -> list[str]:
    getlist = getattr(query, "getlist", None)
    raw = getlist(name) if getlist is not None else ([query[name]] if name in query else [])
    return [str(v) for v in raw if str(v).strip() != ""]


def _integer(name: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        # click's wording for a bad integer option
        raise QueryError(f"Invalid value for {option(name)!r}: {text!r} is not a valid integer.") from None


def _boolean(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE or value in _FALSE:
        return value in TRUE
    # click's wording for a bad boolean
    raise QueryError(f"Invalid value for {option(name)!r}: {text!r} is not a valid boolean.")


def check_names(query: Mapping[str, object], allowed: Sequence[str]) -> None:
    """Refuse a parameter the endpoint does not take (a typo must not widen the search silently)."""
    unknown = sorted(set(query.keys()) - set(allowed))
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r}: valid parameters are {', '.join(allowed)}")


def read(
    query: Mapping[str, object], names: Sequence[str], defaults: Defaults, multi: Sequence[str] = MULTI
) -> dict[str, object]:
    """The given parameters among names as Python API keyword arguments (absent ones left out);
    those in multi as tuples of values."""
    out: dict[str, object] = {}
    for name in names:
        values = _values(query, name)
        if not values:
            continue
        if name in multi:
            out[name] = tuple(values)
        elif name in INTEGER or name in PAGING_INTEGER:
            out[name] = _integer(name, values[-1])
        elif name in BOOLEAN:
            out[name] = _boolean(name, values[-1])
        else:
            out[name] = values[-1]  # like click: the last of a repeated single-valued option wins
    age = out.get("max_age_days")
    if isinstance(age, int) and age > MAX_AGE_DAYS_LIMIT:
        raise QueryError(f"invalid --max-age-days {age}: use 0 (no limit) or a number of days")
    if "now" not in out and defaults.now:
        out["now"] = defaults.now
    if "timezone" not in out and defaults.timezone:
        out["timezone"] = defaults.timezone
    return out


def split(params: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """Trace arguments split into TraceFilter.from_params ones and Paging.from_params ones."""
    paging_names = (*PAGING_INTEGER, CURSOR)
    flt = {k: v for k, v in params.items() if k not in PAGING_INTEGER}
    paging = {k: params[k] for k in paging_names if k in params}
    return flt, paging
