"""The OpenAPI 3.0 document of the HTTP API (served at /openapi.json), written out by hand so the
schema says exactly what the handlers answer; tests check the answers against it (schemathesis)."""

from __future__ import annotations

from typing import Any

from msgtrace.ingest.schema import STATUSES
from msgtrace.query.direction import DIRECTIONS
from msgtrace.query.filters import SUBJECT_FILTER_TYPES
from msgtrace.query.paging import MAX_PAGE, MAX_PAGE_SIZE

_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_TIME = {"type": "string", "format": "date-time"}


def _param(name: str, description: str, schema: dict[str, Any], multi: bool = False) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": "query", "required": False, "description": description}
    if multi:
        p.update(schema={"type": "array", "items": schema}, style="form", explode=True)
    else:
        p["schema"] = schema
    return p


DATE = (
    "ISO 8601 (2018-06-13, 2018-06-13T17:00:00Z) or US short date (06/13/2018, 06/13/2018 5:00 PM), read in `timezone`."
)
WINDOW_PARAMS = [
    _param("start_date", "Start of the window (inclusive); default 48 hours before its end. " + DATE, _STR),
    _param("end_date", "End of the window (exclusive); default now. " + DATE, _STR),
    _param("now", "Pretend the current time is this (reproducible answers).", _STR),
    _param(
        "max_age_days",
        "Refuse a start older than this many days before now; 0 lifts the limit. Default 10.",
        {"type": "integer", "minimum": 0},
    ),
    _param("timezone", "Zone of dates given without one: Europe/Paris, UTC, +02:00.", _STR),
]
FILTER_PARAMS = [
    _param(
        "sender_address",
        "Envelope sender(s), comma-separated or repeated; *@domain, user@*; <> null sender.",
        _STR,
        True,
    ),
    _param("recipient_address", "Recipient(s), comma-separated or repeated; *@domain, user@* wildcards.", _STR, True),
    _param("message_id", "Message-ID header(s), with or without <>.", _STR, True),
    _param("message_trace_id", "The MessageTraceId (GUID) of one message.", _STR),
    _param("status", "Status(es): " + ", ".join(STATUSES) + ".", _STR, True),
    _param(
        "direction",
        "Direction(s): "
        + ", ".join(DIRECTIONS)
        + " (derived from the store's local domains, as `msgtrace trace --direction`).",
        _STR,
        True,
    ),
    _param("from_ip", "IPv4/IPv6 address of the client that sent the message.", _STR),
    _param("to_ip", "IPv4/IPv6 address the message was delivered to.", _STR),
    _param("subject", "Subject text, case-insensitive.", _STR),
    _param("subject_filter_type", "How subject matches: " + ", ".join(SUBJECT_FILTER_TYPES) + ".", _STR),
    _param(
        "follow",
        "Follow each message across the store's own MTAs (`msgtrace trace --follow`): one row per recipient of a "
        "message entering the organisation, with the status and ToIP of its last hop.",
        {"type": "boolean"},
    ),
]
PAGING_PARAMS = [
    _param("page", f"V1 paging: page number, 1-{MAX_PAGE} (default 1).", {"type": "integer"}),
    _param("page_size", f"V1 paging: rows per page, 1-{MAX_PAGE_SIZE} (default 1000).", {"type": "integer"}),
    _param("result_size", f"V2 paging: rows to return, 1-{MAX_PAGE_SIZE} (default 1000).", {"type": "integer"}),
    _param(
        "starting_recipient_address",
        "V2 cursor: with end_date, continue after this recipient of the last row (see `next`).",
        _STR,
    ),
]

TRACE_ROW = {
    "type": "object",
    "required": [
        "Organization", "MessageId", "Received", "SenderAddress", "RecipientAddress", "Subject", "Status",
        "ToIP", "FromIP", "Size", "MessageTraceId", "StartDate", "EndDate", "Index", "Direction",
    ],
    "properties": {
        "Organization": _STR, "MessageId": _STR, "Received": _TIME, "SenderAddress": _STR,
        "RecipientAddress": _STR, "Subject": _STR, "Status": _NSTR, "ToIP": _STR, "FromIP": _STR,
        "Size": {"type": "integer", "nullable": True}, "MessageTraceId": _STR,
        "StartDate": _TIME, "EndDate": _TIME, "Index": {"type": "integer"},
        "Direction": {"type": "string", "enum": ["Inbound", "Outbound", "Local"]},
    },
    "additionalProperties": False,
}  # fmt: skip
DETAIL_EVENT = {
    "type": "object",
    "required": ["Date", "Event", "Action", "Detail", "Data", "MessageTraceId", "RecipientAddress"],
    "properties": {
        "Date": _TIME,
        "Event": _STR,
        "Action": _NSTR,
        "Detail": _NSTR,
        "Data": {"type": "string", "description": "The event's raw fields as a JSON object in text."},
        "MessageTraceId": _STR,
        "RecipientAddress": _STR,
    },
    "additionalProperties": False,
}
ERROR = {
    "description": "Bad input: the message `msgtrace` prints after `Error: `.",
    "content": {
        "application/json": {
            "schema": {"type": "object", "required": ["error"], "properties": {"error": _STR}},
        }
    },
}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


TRACE_ANSWER = {
    "type": "object",
    "required": ["rows"],
    "properties": {
        "rows": {"type": "array", "items": TRACE_ROW, "description": "What `msgtrace trace --output json` prints."},
        "page": {"type": "integer"},
        "page_size": {"type": "integer"},
        "total": {"type": "integer", "description": "Rows of the whole result (V1)."},
        "pages": {"type": "integer"},
        "start_date": _TIME,
        "end_date": _TIME,
        "result_size": {"type": "integer"},
        "more": {"type": "boolean", "description": "V2: whether another page follows."},
        "next": {
            "type": "object",
            "nullable": True,
            "description": "V2: the parameters of the next page (the command `msgtrace trace` prints on stderr).",
            "additionalProperties": True,
        },
    },
}


def openapi() -> dict[str, Any]:
    """The API's OpenAPI 3.0.3 document."""
    unauthorized = {"description": "The server has an --auth-file and the request had no valid Basic credentials."}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "msgtrace",
            "version": "1",
            "description": "Message trace (Get-MessageTrace) over a msgtrace store. Read-only. "
            "Parameters are those of the Python API (msgtrace.message_trace) and mean what the CLI's options mean.",
        },
        "paths": {
            "/api/v1/trace": {
                "get": {
                    "operationId": "trace",
                    "summary": "Find messages, like `msgtrace trace` (Get-MessageTrace); newest first, paged.",
                    "parameters": [*FILTER_PARAMS, *WINDOW_PARAMS, *PAGING_PARAMS],
                    "responses": {"200": _ok("One page of rows.", TRACE_ANSWER), "400": ERROR, "401": unauthorized},
                }
            },
            "/api/v1/detail": {
                "get": {
                    "operationId": "detail",
                    "summary": "The events of one message (for one recipient, or all), like `msgtrace detail`.",
                    "parameters": [
                        _param("message_trace_id", "The MessageTraceId of the message (required).", _STR),
                        _param(
                            "recipient_address",
                            "The recipient whose delivery to explain; without it every recipient's events.",
                            _STR,
                        ),
                        *WINDOW_PARAMS,
                    ],
                    "responses": {
                        "200": _ok(
                            "The events, oldest first.",
                            {
                                "type": "object",
                                "required": ["events"],
                                "properties": {"events": {"type": "array", "items": DETAIL_EVENT}},
                            },
                        ),
                        "400": ERROR,
                        "401": unauthorized,
                    },
                }
            },
            "/api/v1/summary": {
                "get": {
                    "operationId": "summary",
                    "summary": "Rows per status among those a trace with these filters returns, like `msgtrace summary`.",
                    "parameters": [*FILTER_PARAMS, *WINDOW_PARAMS],
                    "responses": {
                        "200": _ok(
                            "Counts in the contract's status order; only statuses present.",
                            {
                                "type": "object",
                                "required": ["counts"],
                                "properties": {
                                    "counts": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["Status", "Count"],
                                            "properties": {"Status": _NSTR, "Count": {"type": "integer"}},
                                        },
                                    }
                                },
                            },
                        ),
                        "400": ERROR,
                        "401": unauthorized,
                    },
                }
            },
        },
    }
