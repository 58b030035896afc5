"""The compiled parsers' side of the Arrow hand-over: a batch's lines in, their events out.

Lines go to Rust in Polars' own string layout (views, and the data buffers the long ones point
into), which Polars hands out without a copy; events come back as Arrow buffers per column
(name, kind, length, null count, validity, values or views, data) that pyarrow assembles.
"""

from __future__ import annotations

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
    _, views, *data = arr.buffers()
    first, n = arr.offset, len(arr)
    view_bytes = views.to_pybytes()[first * 16 : (first + n) * 16] if views is not None else b""
    return view_bytes, [b.to_pybytes() for b in data]


def frame(columns: list[tuple]) -> pl.DataFrame:
    """The Rust side's columns (Arrow buffers) as a frame, without a copy on the Python side."""
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
