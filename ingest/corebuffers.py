"""Columns to and from the compiled core (msgtrace._core) as Arrow buffers, for the parsers and the
correlator alike: a string column goes in as Polars' own string layout (16-byte views and the data
buffers the long ones point into), which Polars hands out without a copy; what comes back, per
column (name, kind, length, null count, validity, values or views, data), pyarrow assembles
without a copy on the Python side."""

from __future__ import annotations

import threading

import numpy as np
import polars as pl
import pyarrow as pa

_TYPES = {"str": pa.string_view(), "i64": pa.int64(), "f64": pa.float64(), "bool": pa.bool_()}

# The blocks the reader read last (address of the bytes -> the bytes): a batch's lines are views
# into one of them (reader.lines_frame), so a parser reads its data buffers there, in place,
# not from a copy of 8 MiB a batch. The newest few are enough: a batch is parsed as it is read.
_BLOCKS: dict[int, bytes] = {}
_BLOCKS_KEPT = 2
_BLOCKS_LOCK = threading.Lock()  # the flush thread reads columns too

# A data buffer as the compiled parsers take it: a bytes object, or a window of a block read
# (the block, offset, length), which rust/src/lib.rs data_buffers slices
DataBuffer = bytes | tuple[bytes, int, int]


def remember_block(data: bytes) -> None:
    """A block the reader read, which the lines of its batch point into."""
    address = pa.py_buffer(data).address
    with _BLOCKS_LOCK:
        _BLOCKS.pop(address, None)
        _BLOCKS[address] = data
        while len(_BLOCKS) > _BLOCKS_KEPT:
            del _BLOCKS[next(iter(_BLOCKS))]


def _window(buf: pa.Buffer) -> DataBuffer:
    """`buf` as the block read it lies in and where (no copy), else its bytes copied."""
    with _BLOCKS_LOCK:
        blocks = list(_BLOCKS.items())
    for address, block in reversed(blocks):
        # the block is alive (kept here), so no other buffer can lie in its memory
        if address <= buf.address and buf.address + buf.size <= address + len(block):
            return block, buf.address - address, buf.size
    return buf.to_pybytes()


def line_views(text: pl.Series) -> tuple[bytes, list[bytes]]:
    """The 16-byte views of a string column and its data buffers (copied); a slice of a larger
    frame (the pipeline halves failing batches) starts its views at the array's offset."""
    view_bytes, data = _arrow_views(text)
    return view_bytes, [b.to_pybytes() if b is not None else b"" for b in data]


def line_windows(text: pl.Series) -> tuple[bytes, list[DataBuffer]]:
    """line_views for the compiled parsers: a data buffer inside a block the reader read is
    handed as its window of that block, not copied."""
    view_bytes, data = _arrow_views(text)
    return view_bytes, [_window(b) if b is not None else b"" for b in data]


def _arrow_views(text: pl.Series) -> tuple[bytes, list[pa.Buffer | None]]:
    """The views (as bytes) and the data buffers of a string column."""
    arr = text.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.string_view():
        arr = arr.cast(pa.string_view())
    _, view_buf, *data = arr.buffers()
    n = len(arr)
    view_bytes = view_buf.slice(arr.offset * 16, n * 16).to_pybytes() if view_buf is not None else bytes(16 * n)
    return view_bytes, data


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
