"""Query a msgtrace store like Get-MessageTrace.

    from msgtrace.query import message_trace, status_counts
    df = message_trace("data/store", sender_address="*@contoso.com", start_date="2026-06-13")
    counts = status_counts("data/store", start_date="2026-06-01", end_date="2026-06-15")  # Status, Count

Names are imported lazily so that `msgtrace --help` does not pay for Polars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msgtrace.query.engine import message_trace, message_trace_lazy
    from msgtrace.query.filters import QueryError, TraceFilter
    from msgtrace.query.summary import status_counts

__all__ = ["QueryError", "TraceFilter", "message_trace", "message_trace_lazy", "status_counts"]

_HOMES = {
    "message_trace": "msgtrace.query.engine",
    "message_trace_lazy": "msgtrace.query.engine",
    "QueryError": "msgtrace.query.filters",
    "TraceFilter": "msgtrace.query.filters",
    "status_counts": "msgtrace.query.summary",
}


def __getattr__(name: str) -> Any:
    """Import the public names on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'query' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(home), name)
