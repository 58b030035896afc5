"""Deterministic MessageTraceIds in the UUIDv7 layout, computed for a whole column at once.

    tttttttt-tttt-7hhh-vhhh-hhhhhhhhhhhh

The first 48 bits are the Unix time in milliseconds of the message's Received time, so a lookup by
id alone can prune to one date partition; the rest is a hash of (host, queue id, Received) so the
same log line always gives the same id. The hash is FNV-1a over the UTF-8 bytes of
"key|Received in microseconds", computed by the compiled core (rust/src/traceid.rs), because
Polars' own hash is not guaranteed stable across versions and ids must survive upgrades. The
numpy version it replaced is the test reference (tests/numpy_traceid.py).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from msgtrace import _core
from msgtrace.ingest.corebuffers import frame, views


def message_trace_ids(keys: pl.Series, received: pl.Series) -> pl.Series:
    """The MessageTraceId of each message from its key (host|queue id, or for a NOQUEUE reject its
    own fields: host, client, sender, recipient, reason and rank among identical rejects of that
    instant) and its Received time: the one definition of a message's identity. Nothing in it
    depends on which file or line the message was read from."""
    micros = received.dt.epoch("us")
    out = _core.message_trace_ids(
        views(keys.cast(pl.String)),
        micros.fill_null(0).to_numpy().astype(np.int64).tobytes(),
        micros.is_not_null().to_numpy().astype(np.uint8).tobytes(),
    )
    return frame([out]).to_series().cast(pl.String)
