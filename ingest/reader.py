"""Finding log files and reading complete lines from them in bounded chunks.

A file is known by the fingerprint of its first line, not by its path: `mail.log` renamed to
`mail.log.1` and later compressed to `mail.log.1.gz` is the same source, so its lines are never
read twice. A partial last line (no newline yet) is left for the next read.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import io
import lzma
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

from msgtrace.defaults import CHUNK_BYTES

COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
FINGERPRINT_BYTES = 4096  # of the identifying head; enough to tell files apart, cheap to read
_ROTATED = re.compile(r"^(?P<base>.+?)(?:\.(?P<n>\d+)|-(?P<date>\d{8,10}))?(?:\.(?:gz|bz2|xz))?$")


class ReadError(Exception):
    """A path that cannot be read."""


@dataclass
class Chunk:
    """Complete lines read from a source: line numbers continue from the previous chunk."""

    lines: pl.DataFrame  # line_no (Int64), line (String)
    end_offset: int  # byte offset (in the decompressed stream) just after the last complete line
    end_line: int  # line number of the next line


def is_compressed(path: Path) -> bool:
    """Whether the path names a compressed archive we can read."""
    return path.suffix in COMPRESSED


def open_binary(path: Path) -> BinaryIO:
    """Open a plain or compressed file for reading bytes of its content."""
    opener = COMPRESSED.get(path.suffix)
    return opener(path, "rb") if opener else open(path, "rb")  # type: ignore[return-value]


def first_line(path: Path) -> bytes | None:
    """The first complete line (without newline), or None while the file has none."""
    try:
        with open_binary(path) as f:
            return _first_line(f)
    except OSError as e:
        raise ReadError(f"cannot read {path}: {e}") from e


def _first_line(f: BinaryIO) -> bytes | None:
    """The identifying head of a file: its first line, or, when it opens with `#` header lines (an
    Exchange tracking log: every file starts `#Software: Microsoft Exchange Server`), the header
    up to and including the first data line. None until that much is complete."""
    try:
        head = f.read(64 * 1024)
    except (OSError, EOFError, lzma.LZMAError) as e:  # EOFError: a .gz still being written
        raise ReadError(f"cannot read {getattr(f, 'name', '?')}: {e}") from e
    head = head.removeprefix(b"\xef\xbb\xbf")
    start = 0
    while True:
        end = head.find(b"\n", start)
        if end < 0:
            return None
        if not head.startswith(b"#", start):
            return head[:end].rstrip(b"\r")
        start = end + 1


def _hash(line: bytes | None) -> str | None:
    if line is None or not line.strip():
        return None
    return hashlib.sha256(line[-FINGERPRINT_BYTES:]).hexdigest()[:16]


def fingerprint(path: Path) -> str | None:
    """A stable id for a log file's content: a hash of its first line (None while it has none)."""
    return _hash(first_line(path))


def fingerprint_open(f: BinaryIO) -> str | None:
    """The fingerprint of an open file, which is left at offset 0 (so a rotation cannot swap files)."""
    fp = _hash(_first_line(f))
    f.seek(0)
    return fp


def sample_lines(path: Path, n: int = 20) -> list[str]:
    """The first n lines, decoded leniently, for format detection."""
    try:
        with open_binary(path) as f:
            head = f.read(64 * 1024)
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise ReadError(f"cannot read {path}: {e}") from e
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    return [line.rstrip("\r") for line in text.split("\n")[:n]]


def _series_key(path: Path) -> tuple[str, int, str]:
    """Sort key putting a rotated series oldest first: mail.log.3.gz, mail.log.2.gz, mail.log.1, mail.log."""
    m = _ROTATED.match(path.name)
    assert m is not None
    base = str(path.parent / m.group("base"))
    if m.group("n") is not None:
        return (base, -int(m.group("n")), "")
    if m.group("date") is not None:
        return (base, 0, m.group("date"))  # dated rotations sort by date, before the live file
    return (base, 1, "")


def discover(paths: list[str]) -> list[Path]:
    """Expand files, directories and globs into readable files, rotated series in age order."""
    found: list[Path] = []
    for arg in paths:
        matches = glob.glob(arg) if any(c in arg for c in "*?[") else [arg]
        if not matches:
            raise ReadError(f"no such file or directory: {arg}")
        for m in matches:
            p = Path(m)
            if p.is_dir():
                found.extend(
                    q for q in sorted(p.rglob("*")) if q.is_file() and not any(s.startswith(".") for s in q.parts)
                )
            elif p.is_file():
                found.append(p)
            else:
                raise ReadError(f"no such file or directory: {arg}")
    return order_series(found)


def order_series(paths: list[Path]) -> list[Path]:
    """Paths without duplicates, each rotated series oldest first (mail.log.1 before mail.log)."""
    return sorted(dict.fromkeys(paths), key=_series_key)


def _to_frame(block: bytes, first_line_no: int) -> pl.DataFrame:
    """Lines of a block of complete lines as a frame (Polars' reader: no Python loop per line)."""
    try:
        df = pl.read_csv(
            io.BytesIO(block),
            has_header=False,
            separator="\x00",
            quote_char=None,
            new_columns=["line"],
            schema={"line": pl.String},
            encoding="utf8-lossy",
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        # a NUL byte inside a line: fall back to a plain split (rare)
        text = block.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        df = pl.DataFrame({"line": text.split("\n")[: block.count(b"\n")]}, schema={"line": pl.String})
    df = df.with_columns(pl.col("line").fill_null("").str.strip_suffix("\r"))
    return df.with_row_index("line_no", offset=first_line_no).with_columns(pl.col("line_no").cast(pl.Int64))


def read_chunks(path: Path, offset: int, line_no: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Complete lines from byte `offset` (of the decompressed content) on, in chunks of about chunk_bytes."""
    try:
        f = open_binary(path)
    except OSError as e:
        raise ReadError(f"cannot read {path}: {e}") from e
    with f:
        yield from read_open(f, path, offset, line_no, chunk_bytes)


def read_open(f: BinaryIO, path: Path, offset: int, line_no: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Like read_chunks, from a file the caller opened (and fingerprinted) with open_binary(path)."""
    if offset:
        if is_compressed(path):
            _skip(f, offset, path)
        else:
            f.seek(offset)
    carry = b""
    while True:
        try:
            data = f.read(chunk_bytes)
        except (OSError, EOFError, lzma.LZMAError) as e:
            raise ReadError(f"cannot read {path}: {e}") from e
        if not data:
            return
        data = carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        block, carry = data[: cut + 1], data[cut + 1 :]
        if offset == 0 and block.startswith(b"\xef\xbb\xbf"):
            block_for_frame = block[3:]
        else:
            block_for_frame = block
        frame = _to_frame(block_for_frame, line_no)
        offset += len(block)
        line_no += frame.height
        yield Chunk(lines=frame, end_offset=offset, end_line=line_no)


def _skip(f: BinaryIO, n: int, path: Path) -> None:
    while n > 0:
        try:
            got = f.read(min(n, 16 * 1024 * 1024))
        except (OSError, EOFError, lzma.LZMAError) as e:  # EOFError: a .gz still being written
            raise ReadError(f"cannot read {path}: {e}") from e
        if not got:
            return
        n -= len(got)


def file_size(path: Path) -> int:
    """Size on disk (compressed size for archives)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
