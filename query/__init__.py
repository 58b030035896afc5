"""Answering trace queries over a store: filters, the pruning engine, paging, output formats, detail
and summary. The public entry points are msgtrace.message_trace, message_trace_lazy and status_counts."""
