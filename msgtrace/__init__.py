"""msgtrace: a message trace (Get-MessageTrace) for self-hosted mail servers' logs.

    from msgtrace import message_trace, message_trace_lazy, status_counts
    df = message_trace("data/store", sender_address="*@contoso.com", start_date="2026-06-13")

The public API lives in msgtrace.api; names are imported on first use so that `msgtrace --help`
does not pay for Polars. Subpackages: msgtrace.ingest (reading logs into the store),
msgtrace.query (answering traces), msgtrace.generate (synthetic logs for tests and benchmarks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msgtrace.api import QueryError, TraceFilter, message_trace, message_trace_lazy, status_counts

__all__ = ["QueryError", "TraceFilter", "message_trace", "message_trace_lazy", "status_counts"]


def __getattr__(name: str) -> Any:
    """Import the public names on first use."""
    if name not in __all__:
        raise AttributeError(f"module 'msgtrace' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module("msgtrace.api"), name)
