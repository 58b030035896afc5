"""Shared rendering: id encodings, number formats, time stamps, and the sorted, chunked write.

A writer hands over a frame of lines (t: UTC microseconds, grp, seq, body); `write` sorts them
into time order (ties keep each message's own order), stamps them and streams them to disk.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

US = 1_000_000
HEX = b"0123456789ABCDEF"
B52 = b"0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"  # Postfix long queue ids: no vowels
B51 = B52[:-1]  # the inode part: 'z' separates it from the time part
B62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # Exim ids
B60 = B62[:60]  # Sendmail queue ids
CHUNK = 1_000_000
LINE_COLUMNS = {"t": pl.Int64, "grp": pl.Int64, "seq": pl.Int32, "body": pl.String}


def encode(values: np.ndarray, alphabet: bytes, width: int, strip: bool = False) -> pl.Series:
    """Integers as fixed-width strings in a positional alphabet (most significant first)."""
    v = np.asarray(values, dtype=np.uint64).copy()
    base = np.uint64(len(alphabet))
    digits = np.empty((len(v), width), dtype=np.uint8)
    for i in range(width - 1, -1, -1):
        digits[:, i] = v % base
        v //= base
    chars = np.frombuffer(alphabet, dtype=np.uint8)[digits]
    out = pl.Series(np.ascontiguousarray(chars).view(f"S{width}").ravel().astype(str), dtype=pl.String)
    return out.str.strip_chars_start("0") if strip else out


def num(col: pl.Expr, decimals: int = 2) -> pl.Expr:
    """A float as Postfix prints delays: 0.23, 1.9, 2071."""
    return (
        pl.when(col >= 10)
        .then(col.round(0).cast(pl.Int64).cast(pl.String))
        .when(col >= 1)
        .then(col.round(1).cast(pl.String))
        .otherwise(col.round(decimals).cast(pl.String))
    )


def lines(df: pl.DataFrame, t: pl.Expr, seq: int, body: pl.Expr) -> pl.DataFrame:
    """One line per row of df."""
    return df.select(
        t.cast(pl.Int64).alias("t"),
        pl.col("grp").cast(pl.Int64),
        pl.lit(seq, pl.Int32).alias("seq"),
        body.alias("body"),
    )


def concat(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """All writers' line frames in one, typed even when empty."""
    parts = [p for p in parts if p.height]
    if not parts:
        return pl.DataFrame(schema=LINE_COLUMNS)
    return pl.concat(parts, how="vertical_relaxed")


def stamp_syslog(tz: str) -> Callable[[pl.Expr], pl.Expr]:
    """RFC 3164 time stamps in zone tz, without year: `Jan  1 00:00:00`."""
    return lambda dt: dt.dt.convert_time_zone(tz).dt.strftime("%b %e %H:%M:%S")


def stamp_local(tz: str) -> Callable[[pl.Expr], pl.Expr]:
    """`2026-01-01 00:00:00` wall time in tz (Exim mainlog)."""
    return lambda dt: dt.dt.convert_time_zone(tz).dt.strftime("%Y-%m-%d %H:%M:%S")


def _stamps(t: pl.Series, fmt: Callable[[pl.Expr], pl.Expr], millis: bool) -> pl.Series:
    """Format each distinct second once, then gather: far cheaper than strftime per line."""
    sec = t // US
    uniq = sec.unique().sort()
    text = pl.select(fmt(pl.from_epoch(uniq, time_unit="s").dt.replace_time_zone("UTC"))).to_series()
    idx = uniq.search_sorted(sec)
    out = text.gather(idx)
    if millis:
        ms = ((t % US) // 1000).cast(pl.String).str.zfill(3)
        out = pl.select(pl.concat_str([out, pl.lit("."), ms, pl.lit("Z")])).to_series()
    return out


def open_out(path: Path) -> IO[bytes]:
    """The output file, gzip-compressed when its name ends in .gz."""
    if path.suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=3)
    return open(path, "wb")


def write_lines(
    all_lines: pl.DataFrame,
    path: Path,
    fmt: Callable[[pl.Expr], pl.Expr],
    sep: str = " ",
    header: str = "",
    millis: bool = False,
    newline: str = "\n",
) -> int:
    """Sort lines by time, stamp and write them; returns the number of lines written."""
    ordered = all_lines.sort(["t", "grp", "seq"])
    with open_out(path) as f:
        if header:
            f.write(header.encode("utf-8"))
        for start in range(0, ordered.height, CHUNK):
            part = ordered.slice(start, CHUNK)
            stamps = _stamps(part["t"], fmt, millis)
            text = pl.select(pl.concat_str([pl.lit(stamps), pl.lit(sep), pl.lit(part["body"])]).alias("line"))
            text.write_csv(f, include_header=False, quote_style="never", line_terminator=newline)
    return ordered.height
