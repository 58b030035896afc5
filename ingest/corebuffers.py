"""Columns to and from the compiled core (msgtrace._core) as Arrow buffers, for the parsers and the
correlator alike: a string column goes in as Polars' own string layout (16-byte views and the data
buffers the long ones point into), which Polars hands out without a copy; what comes back, per
column (name, kind, length, null count, validity, values or views, data), pyarrow assembles
without a copy on the Python side."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

_TYPES = {"str": pa.string_view(), "i64": pa.int64(), "f64": pa.float64(), "bool": pa.bool_()}


def line_views(text: pl.Series) -> tuple[bytes, list[bytes]]:
    """The 16-byte views of a string column and its data buffers; a slice of a larger frame (the
    pipeline halves failing batches) starts its views at the array's offset."""
    arr = text.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.string_view():
        arr = arr.cast(pa.string_view())
    _, view_buf, *data = arr.buffers()
    n = len(arr)
    view_bytes = view_buf.slice(arr.offset * 16, n * 16).to_pybytes() if view_buf is not None else bytes(16 * n)
    return view_bytes, [b.to_pybytes() if b is not None else b"" for b in data]


def views(s: pl.Series) -> tuple[bytes, list[bytes], bytes]:
    """A string column as the correlator reads it (rust/src/correlate.rs ViewCol): its views, data
    buffers and one validity byte a row."""
    view_bytes, data = line_views(s)
    return view_bytes, data, s.is_not_null().to_numpy().astype(np.uint8).tobytes()


def frame(columns: list[tuple]) -> pl.DataFrame:
    """The Rust side's columns (name, kind, len, null_count, validity, values or views, data) as a frame."""
    arrays, names = [], []
    for name, kind, n, nulls, validity, values, data in columns:
        valid = pa.py_buffer(validity) if nulls else None
        if kind == "bool":  # bit-packed values in the validity slot's layout, never null
            buffers = [None, pa.py_buffer(values)]
        elif kind == "str":  # views, then the one buffer of the texts longer than 12 bytes
            buffers = [valid, pa.py_buffer(values), pa.py_buffer(data)]
        else:
            buffers = [valid, pa.py_buffer(values)]
        arrays.append(pa.Array.from_buffers(_TYPES[kind], n, buffers, null_count=nulls))
        names.append(name)
    df = pl.from_arrow(pa.Table.from_arrays(arrays, names=names))
    assert isinstance(df, pl.DataFrame)
    return df
