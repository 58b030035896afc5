"""The compiled MessageTraceIds (ingest/traceid.py over msgtrace._core) against the numpy ones they
replaced (tests/numpy_traceid.py, the reference): ids must never change. Keys of every shape
(empty, null, long, non-ASCII) and Received times (null, before 1970, far ahead, sub-millisecond);
every message of the fixtures and generated logs is compared too, through test_correlate_rust.py
(its reference correlator hashes with the numpy ids)."""

from __future__ import annotations

import random

import polars as pl
import pytest

from msgtrace import _core
from msgtrace.ingest import traceid
from msgtrace.ingest.corebuffers import views
from tests import numpy_traceid

_CHARS = "abcXYZ019|-_.@ \x00éü٣漢\U0001f600"


def _random_keys(rng: random.Random, n: int) -> pl.Series:
    keys = []
    for _ in range(n):
        if rng.random() < 0.05:
            keys.append(None)
        else:
            keys.append("".join(rng.choice(_CHARS) for _ in range(rng.choice([0, 1, 5, 12, 13, 30, 200]))))
    return pl.Series("k", keys, dtype=pl.String)


def _random_times(rng: random.Random, n: int) -> pl.Series:
    out = []
    for _ in range(n):
        if rng.random() < 0.05:
            out.append(None)
        else:
            us = rng.choice(
                [rng.randrange(-(10**12), 10**12), rng.randrange(0, 4 * 10**15), rng.randrange(-2000, 2000)]
            )
            out.append(us)
    return pl.Series("r", out, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


@pytest.mark.parametrize("seed", range(5))
def test_random_keys_and_times(seed: int) -> None:
    rng = random.Random(seed)
    keys, times = _random_keys(rng, 3000), _random_times(rng, 3000)
    got = traceid.message_trace_ids(keys, times)
    want = numpy_traceid.message_trace_ids(keys, times)
    assert got.dtype == want.dtype == pl.String
    assert got.name == want.name
    assert got.equals(want)


def test_sliced_and_chunked_input() -> None:
    rng = random.Random(9)
    keys = pl.concat([_random_keys(rng, 50), _random_keys(rng, 70)], rechunk=False).slice(13, 90)
    times = _random_times(rng, 200).slice(40, 90)
    assert traceid.message_trace_ids(keys, times).equals(numpy_traceid.message_trace_ids(keys, times))


def test_the_extension_names_input_it_cannot_read() -> None:
    v, buffers, valid = views(pl.Series(["a" * 20]))
    with pytest.raises(ValueError, match="validity bytes"):
        _core.message_trace_ids((v, buffers, valid), bytes(8), b"")
    with pytest.raises(ValueError, match="points outside the buffers"):
        _core.message_trace_ids((v, [b"short"], valid), bytes(8), b"\x01")
    with pytest.raises(ValueError, match="keys: "):
        _core.message_trace_ids((v, buffers, valid), bytes(16), b"\x01\x01")
