"""The numpy MessageTraceIds the compiled ones (msgtrace._core, ingest/traceid.py) replaced, kept unchanged as
the reference tests/test_traceid_rust.py compares them with.

Deterministic MessageTraceIds in the UUIDv7 layout, computed for a whole column at once.

    tttttttt-tttt-7hhh-vhhh-hhhhhhhhhhhh

The first 48 bits are the Unix time in milliseconds of the message's Received time, so a lookup by
id alone can prune to one date partition; the rest is a hash of (host, queue id, Received) so the
same log line always gives the same id. The hash is FNV-1a over the key's UTF-8 bytes, written with
numpy over all keys at once (one pass per byte position, not per row), because Polars' own hash is
not guaranteed stable across versions and ids must survive upgrades.
"""

from __future__ import annotations

import numpy as np
import polars as pl

_FNV_PRIME = np.uint64(0x100000001B3)
_BASIS_A = np.uint64(0xCBF29CE484222325)
_BASIS_B = np.uint64(0x84222325CBF29CE4)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def fnv1a(keys: pl.Series, basis: np.uint64 = _BASIS_A) -> np.ndarray:
    """64-bit FNV-1a of each string (UTF-8 bytes), vectorised over byte positions."""
    arr = keys.cast(pl.String).fill_null("").to_arrow().cast("large_string")
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    h = np.full(len(arr), basis, dtype=np.uint64)
    longest = int(lengths.max()) if len(lengths) else 0
    with np.errstate(over="ignore"):
        for j in range(longest):
            live = np.nonzero(lengths > j)[0]
            h[live] = (h[live] ^ data[starts[live] + j].astype(np.uint64)) * _FNV_PRIME
    return h


def trace_ids(keys: pl.Series, received: pl.Series) -> pl.Series:
    """One GUID per row from a key string and a UTC Received time (Datetime)."""
    ms = received.dt.epoch("ms").fill_null(0).to_numpy().astype(np.uint64) & np.uint64((1 << 48) - 1)
    a = fnv1a(keys, _BASIS_A)
    b = fnv1a(keys, _BASIS_B)
    hi = (ms << np.uint64(16)) | np.uint64(0x7000) | (a & np.uint64(0x0FFF))
    lo = (np.uint64(0x8000000000000000)) | ((a >> np.uint64(12)) ^ (b << np.uint64(9))) & np.uint64(0x3FFFFFFFFFFFFFFF)
    raw = np.empty((len(hi), 16), dtype=np.uint8)
    raw[:, :8] = hi.astype(">u8").view(np.uint8).reshape(-1, 8)
    raw[:, 8:] = lo.astype(">u8").view(np.uint8).reshape(-1, 8)
    nibbles = np.empty((len(hi), 32), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 0x0F
    chars = _HEX[nibbles]
    dash = np.full((len(hi), 1), ord("-"), dtype=np.uint8)
    text = np.hstack(
        [chars[:, :8], dash, chars[:, 8:12], dash, chars[:, 12:16], dash, chars[:, 16:20], dash, chars[:, 20:]]
    )
    strings = np.ascontiguousarray(text).view("S36").ravel().astype(str)
    return pl.Series("message_trace_id", strings, dtype=pl.String)


def message_trace_ids(keys: pl.Series, received: pl.Series) -> pl.Series:
    """The MessageTraceId of each message from its key (host|queue id, or for a NOQUEUE reject its
    own fields: host, client, sender, recipient, reason and rank among identical rejects of that
    instant) and its Received time: the one definition of a message's identity. Nothing in it
    depends on which file or line the message was read from."""
    epoch_us = received.dt.epoch("us").cast(pl.String)
    full = pl.select(pl.concat_str([keys, epoch_us], separator="|")).to_series()
    return trace_ids(full, received)
