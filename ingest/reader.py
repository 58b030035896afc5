"""Finding log files and reading complete lines from them in bounded chunks.

A file is known by the fingerprint of its first line, not by its path: `mail.log` renamed to
`mail.log.1` and later compressed to `mail.log.1.gz` is the same source, so its lines are never
read twice. A partial last line (no newline yet) is left for the next read.

Many files share a first line (rsyslog starts each with the same `[origin ...] start`), so the
first line only names a family of candidates: every chunk carries the Marks of the bytes read
(the file's head and the bytes just before its end offset), which the checkpoint keeps, and
before resuming at an offset the pipeline checks that the file's bytes there are those marks
(read_prefix). A damaged archive (truncated or corrupt .gz, .bz2, .xz) yields its readable lines,
then raises Damaged.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import lzma
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow as pa

from msgtrace._core import split_lines
from msgtrace.defaults import CHUNK_BYTES
from msgtrace.errors import MsgtraceError
from msgtrace.ingest.corebuffers import remember_block

COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
FINGERPRINT_BYTES = 4096  # of the identifying head; enough to tell files apart, cheap to read
_ROTATED = re.compile(r"^(?P<base>.+?)(?:\.(?P<n>\d+)|-(?P<date>\d{8,10}))?(?:\.(?:gz|bz2|xz))?$")


HEAD_BYTES = 4096  # the head of a file that its checkpoint identifies it by
TAIL_BYTES = 4096  # the bytes before a checkpoint's offset that must be the same when resuming
_ARCHIVE_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)  # gzip.BadGzipFile is an OSError


class ReadError(MsgtraceError):
    """A path that cannot be read."""


class Damaged(ReadError):
    """An archive ends early or is corrupt: the lines before `offset` were read, nothing after."""

    def __init__(self, path: Path, offset: int, line: int) -> None:
        super().__init__(
            f"{path} is damaged (truncated or corrupt) after line {line:,} (byte {offset:,} of its content); "
            "the lines before are stored"
            if offset
            else f"{path} is damaged (truncated or corrupt): nothing in it can be read"
        )
        self.offset, self.line = offset, line


@dataclass
class Marks:
    """What the content of a file up to an offset looks like: enough to tell it from another file
    that starts with the same line, without keeping the file's text."""

    head: bytes  # the first min(offset, HEAD_BYTES) bytes
    recent: bytes  # the last min(offset, TAIL_BYTES) bytes before the offset
    newlines: int = -1  # newlines before the offset, when counted (-1: not counted)
    complete: bool = True  # False: the content ends before the offset
    broken: bool = False  # an archive that could not be decompressed to the offset (unfinished or damaged)

    def advance(self, carry: bytes, data: bytes, end: int) -> Marks:
        """The marks after the block `carry` + `data[:end]` was read on from the offset."""
        # slices first: a block is megabytes, and neither side needs more than a few KiB of it
        head = self.head
        if len(head) < HEAD_BYTES:
            head = (head + carry[:HEAD_BYTES] + data[: min(end, HEAD_BYTES)])[:HEAD_BYTES]
        recent = (self.recent + carry[-TAIL_BYTES:] + data[max(0, end - TAIL_BYTES) : end])[-TAIL_BYTES:]
        return Marks(head=head, recent=recent)


def digest(data: bytes) -> str:
    """A short hash of some bytes, for a checkpoint."""
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass
class Chunk:
    """Complete lines read from a source: line numbers continue from the previous chunk."""

    lines: pl.DataFrame  # line_no (Int64), line (String)
    end_offset: int  # byte offset (in the decompressed stream) just after the last complete line
    end_line: int  # line number of the next line
    marks: Marks | None = None  # of the content up to end_offset (when reading began at 0 or at known marks)


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
            return _first_line(f, path)
    except OSError as e:
        raise ReadError(f"cannot read {path}: {e}") from e


def _read_head(f: BinaryIO, path: Path, size: int = 64 * 1024, salvage: bool = True) -> bytes:
    """The first `size` bytes of the content; of a damaged archive, as many as can be decompressed
    (unless not `salvage`: an archive still being written is not damaged, only unfinished)."""
    try:
        return f.read(size)
    except _ARCHIVE_ERRORS as e:  # EOFError: a truncated .gz, or one still being written
        if not is_compressed(path) or not salvage:
            raise ReadError(f"cannot read {path}: {e}") from e
    head = b""
    for piece in _decompress_leniently(path, 0):
        head += piece
        if len(head) >= size:
            break
    if b"\n" not in head:
        raise Damaged(path, 0, 0)
    return head[:size]


def _first_line(f: BinaryIO, path: Path, salvage: bool = True) -> bytes | None:
    """The identifying head of a file: its first line, or, when it opens with `#` header lines (an
    Exchange tracking log: every file starts `#Software: Microsoft Exchange Server`), the header
    up to and including the first data line. None until that much is complete."""
    head = _read_head(f, path, salvage=salvage).removeprefix(b"\xef\xbb\xbf")
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


def fingerprint_open(f: BinaryIO, path: Path, salvage: bool = True) -> str | None:
    """The fingerprint of an open file, which is left at offset 0 (so a rotation cannot swap files)."""
    fp = _hash(_first_line(f, path, salvage))
    f.seek(0)
    return fp


def sample_lines(path: Path, n: int = 20, salvage: bool = True) -> list[str]:
    """The first n lines, decoded leniently, for format detection."""
    try:
        with open_binary(path) as f:
            head = _read_head(f, path, salvage=salvage)
    except OSError as e:
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


GLOB_CHARS = "*?["


def is_glob(arg: str) -> bool:
    """Whether a path argument is a pattern (expanded again at every watcher rescan)."""
    return any(c in arg for c in GLOB_CHARS)


def matches(arg: str) -> list[Path]:
    """What a path argument names now: the pattern's matches, or the path itself if it exists."""
    if is_glob(arg):
        return [Path(m) for m in glob.glob(arg)]
    return [Path(arg)] if os.path.exists(arg) else []


def files_under(directory: Path) -> list[Path]:
    """Every file below a directory, sorted, hidden files and folders left out."""
    return [q for q in sorted(directory.rglob("*")) if q.is_file() and not any(s.startswith(".") for s in q.parts)]


def discover(paths: list[str]) -> list[Path]:
    """Expand files, directories and globs into readable files, rotated series in age order."""
    found: list[Path] = []
    for arg in paths:
        named = matches(arg)
        if not named:
            raise ReadError(f"no such file or directory: {arg}")
        for p in named:
            if p.is_dir():
                found.extend(files_under(p))
            elif p.is_file():
                found.append(p)
            else:
                raise ReadError(f"no such file or directory: {arg}")
    return order_series(found)


def order_series(paths: list[Path]) -> list[Path]:
    """Paths without duplicates, each rotated series oldest first (mail.log.1 before mail.log)."""
    return sorted(dict.fromkeys(paths), key=_series_key)


def lines_frame(
    data: bytes,
    first_line_no: int,
    carry: bytes = b"",
    end: int | None = None,
    skip: int = 0,
    window: int | None = None,
) -> pl.DataFrame:
    """The lines of the block `carry` + `data[:end]` (its first `skip` bytes left out; each line
    ends with a newline) as a frame of line_no (Int64, from first_line_no) and line (String).

    Split in compiled code (rust/src/lines.rs, which says how a line is read: as Polars' CSV
    reader read it before): each line's string view points into `data` itself, so the text is
    not copied; only a line that starts in `carry` or is not valid UTF-8 is. `window`: how far
    apart the data buffers start (rust/src/lines.rs WINDOW; tests pass a small one).
    """
    n, views, windows, own = split_lines(carry, data, len(data) if end is None else end, skip, window)
    remember_block(data)  # the parsers read the lines' text in it (corebuffers.line_views)
    whole = pa.py_buffer(data)
    buffers = [whole.slice(start, stop - start) for start, stop in windows] + [pa.py_buffer(b) for b in own]
    text = pa.Array.from_buffers(pa.string_view(), n, [None, pa.py_buffer(views), *buffers], null_count=0)
    line_no = pl.int_range(first_line_no, first_line_no + n, dtype=pl.Int64, eager=True)
    return pl.DataFrame([line_no.alias("line_no"), pl.Series("line", text)])


def read_chunks(path: Path, offset: int, line_no: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Complete lines from byte `offset` (of the decompressed content) on, in chunks of about chunk_bytes."""
    try:
        f = open_binary(path)
    except OSError as e:
        raise ReadError(f"cannot read {path}: {e}") from e
    with f:
        yield from read_open(f, path, offset, line_no, chunk_bytes)


def read_open(
    f: BinaryIO,
    path: Path,
    offset: int,
    line_no: int,
    chunk_bytes: int = CHUNK_BYTES,
    marks: Marks | None = None,
    salvage: bool = True,
) -> Iterator[Chunk]:
    """Like read_chunks, from a file the caller opened (and fingerprinted) with open_binary(path).

    `marks`: read_prefix's marks of the content before `offset`, which left f at offset; the
    chunks then carry the marks of what they end at (as they do when reading starts at 0).
    A damaged archive yields its readable complete lines, then raises Damaged (ReadError at the
    damage when not `salvage`).
    """
    if marks is None:
        if offset == 0:
            marks = Marks(head=b"", recent=b"")
        elif is_compressed(path):
            _skip(f, offset, path)
        else:
            f.seek(offset)
    carry, salvaging = b"", False
    pieces = _pieces(f, chunk_bytes)
    while True:
        try:
            data = next(pieces, b"")
        except _ARCHIVE_ERRORS as e:
            if not is_compressed(path) or salvaging or not salvage:
                raise ReadError(f"cannot read {path}: {e}") from e
            pieces, carry, salvaging = _decompress_leniently(path, offset), b"", True
            continue
        if not data:
            if salvaging:
                raise Damaged(path, offset, line_no)
            return
        # the block is carry + data[:end]: handed over in its two parts, not joined (8 MiB copied)
        end = data.rfind(b"\n") + 1
        if not end:
            carry += data
            continue
        skip = 3 if offset == 0 and (carry + data[:3]).startswith(b"\xef\xbb\xbf") else 0
        frame = lines_frame(data, line_no, carry, end, skip)
        marks = marks.advance(carry, data, end) if marks is not None else None
        offset += len(carry) + end
        line_no += frame.height
        carry = data[end:]
        yield Chunk(lines=frame, end_offset=offset, end_line=line_no, marks=marks)


def _pieces(f: BinaryIO, size: int) -> Iterator[bytes]:
    while data := f.read(size):
        yield data


def _decompress_leniently(path: Path, skip: int) -> Iterator[bytes]:
    """The content of an archive from byte `skip` on, as far as it can be decompressed: stream by
    stream (gzip members, bz2 and xz streams) with the raw decompressors, which give every byte
    they can before a truncation or corruption (the file objects of gzip, bz2 and lzma drop the
    last buffer's worth when they fail)."""
    new = {
        ".gz": lambda: zlib.decompressobj(wbits=31),
        ".bz2": bz2.BZ2Decompressor,
        ".xz": lzma.LZMADecompressor,
    }[path.suffix]
    with open(path, "rb") as raw:
        d = new()
        while data := raw.read(1024 * 1024):
            while data:
                try:
                    out = d.decompress(data)
                except _ARCHIVE_ERRORS:
                    return
                data = b""
                if d.eof:  # the next stream, if any
                    data, d = d.unused_data, new()
                cut = min(skip, len(out))
                out, skip = out[cut:], skip - cut
                if out:
                    yield out


def read_prefix(f: BinaryIO, path: Path, offset: int, count_lines: bool = False) -> Marks:
    """The marks of the content before `offset`, leaving f there (when it is long enough).

    A plain file is read at its head and before the offset only, unless `count_lines`; an
    archive is decompressed up to the offset (as resuming it needs anyway). `complete` is False
    when the content ends (or cannot be read) before the offset.
    """
    if not is_compressed(path) and not count_lines:
        f.seek(0)
        head = f.read(min(offset, HEAD_BYTES))
        start = max(0, offset - TAIL_BYTES)
        f.seek(start)
        recent = f.read(offset - start)
        return Marks(head=head, recent=recent, complete=len(recent) == offset - start)
    f.seek(0)
    head, recent, newlines, done, broken = b"", b"", 0, 0, False
    pieces: Iterator[bytes] | None = None
    while done < offset:
        try:
            data = f.read(min(offset - done, 16 * 1024 * 1024)) if pieces is None else next(pieces, b"")
        except _ARCHIVE_ERRORS:
            # A .gz still being written (or damaged): the file object drops the whole failed read,
            # so take what the raw decompressor gives from here. Without this the head of an
            # unfinished archive looked empty, unlike the file read before, which was then taken
            # for another file and read again (every event doubled).
            pieces, broken = _decompress_leniently(path, done), True
            continue
        data = data[: offset - done]
        if not data:
            break
        if len(head) < HEAD_BYTES:
            head = (head + data)[:HEAD_BYTES]
        recent = (recent + data[-TAIL_BYTES:])[-TAIL_BYTES:]
        newlines += data.count(b"\n")
        done += len(data)
    return Marks(
        head=head, recent=recent, newlines=newlines if count_lines else -1, complete=done == offset, broken=broken
    )


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
