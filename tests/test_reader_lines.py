"""The reader's lines frame (reader.lines_frame, split in rust/src/lines.rs) is the one Polars' CSV
reader made before: the same text for every line, whatever the bytes (carriage returns, byte
order marks, invalid UTF-8, NUL bytes), wherever the block is cut between the bytes carried over
from the last read and the new ones, and however the text is spread over data buffers."""

from __future__ import annotations

import io

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from msgtrace.ingest.reader import lines_frame


def csv_lines(block: bytes, first_line_no: int) -> pl.DataFrame:
    """The reader's frame as Polars' CSV reader made it (ingest/reader.py's _to_frame until it was
    split in Rust): the reference."""
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
    except pl.exceptions.PolarsError:  # a NUL byte: the reader split the block in Python
        text = block.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        df = pl.DataFrame({"line": text.split("\n")[: block.count(b"\n")]}, schema={"line": pl.String})
    df = df.with_columns(pl.col("line").fill_null("").str.strip_suffix("\r"))
    return df.with_row_index("line_no", offset=first_line_no).with_columns(pl.col("line_no").cast(pl.Int64))


def same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert_frame_equal(got, want)
    # the views read as Polars' own strings do, in comparisons and kernels alike
    assert (got.get_column("line") == want.get_column("line")).all()
    assert got.get_column("line").str.len_bytes().to_list() == want.get_column("line").str.len_bytes().to_list()


@pytest.mark.parametrize(
    "block",
    [
        b"",
        b"\n",
        b"a\n\nb\n",
        b"a\r\n\r\nb\n",
        b"a\r\r\n\r\r\n\r\r\r\n",  # the terminator's \r and strip_suffix's: two go, not three
        b"a\rb\n",
        b"\xef\xbb\xbf\xef\xbb\xbfmark twice\n",  # the CSV reader skipped one more mark
        b"x\n\xef\xbb\xbfa mark inside the block stays\n",
        b"two \xff\xfe bad bytes, a cut \xe2\x82 sequence, a surrogate \xed\xa0\x80 and more\n",
        b"NUL\x00inside\r\r\n\xef\xbb\xbfand a mark\n",  # the Python split: one \r goes, the mark stays
        b"a line of more than twelve bytes\nshort\n" * 3,
    ],
)
def test_the_lines_are_those_of_the_csv_reader(block: bytes) -> None:
    same(lines_frame(block, 7), csv_lines(block, 7))


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(
            [b"a", b"a longer piece of text", b"\r", b"\n", b"\xef\xbb\xbf", b"\xef", b"\xbb\xbf", b"\xff", b"\xe2\x82"]
            + [b"\xc3\xa9", b'"', b",", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\x80", b"\x00", b"\t"]
        ),
        max_size=60,
    ),
    cut=st.integers(0, 10_000),
    tail=st.binary(max_size=4).filter(lambda b: b"\n" not in b),
    skip_mark=st.booleans(),
    window=st.sampled_from([None, 1, 5, 16, 64]),
)
def test_any_block_any_carry_any_window(
    pieces: list[bytes], cut: int, tail: bytes, skip_mark: bool, window: int | None
) -> None:
    block = b"".join(pieces) + b"\n"
    skip = 3 if skip_mark and block.startswith(b"\xef\xbb\xbf") else 0
    cut %= len(block) + 1
    carry, data = block[:cut], block[cut:] + tail  # the bytes after the last newline are no line
    want = csv_lines(block[skip:], 3)
    try:
        got = lines_frame(data, 3, carry, len(block) - cut, skip, window)
    except ValueError as e:  # a small window: a line longer than it is refused, never misread
        assert window is not None and "bytes (at most" in str(e)
        return
    same(got, want)


def test_a_line_longer_than_a_window_is_an_error_not_a_wrong_line() -> None:
    with pytest.raises(ValueError, match="a line of 40 bytes"):
        lines_frame(b"short\n" + b"x" * 40 + b"\n", 0, window=16)


def test_the_parsers_read_a_blocks_lines_in_place() -> None:
    # corebuffers.line_windows hands the data buffers of a frame lines_frame made as windows of
    # the block read (no copy), with the very bytes line_views copies; the extension checks a
    # window against its block
    from msgtrace import _core
    from msgtrace.ingest import corebuffers

    data = b"".join(
        f"Jun 13 10:00:{i % 60:02d} mx1 postfix/qmgr[1]: 3F1A22C{i:03d}: removed\n".encode() for i in range(50)
    )
    frame = lines_frame(data, 0, carry=b"Jun 13 10:00:00 mx1 postfix/qmgr[1]: ", window=512)
    views, copies = corebuffers.line_views(frame.get_column("line"))
    views_too, windows = corebuffers.line_windows(frame.get_column("line"))
    assert views == views_too and any(isinstance(w, tuple) for w in windows)
    for copy, window in zip(copies, windows, strict=True):
        block, offset, length = window if isinstance(window, tuple) else (window, 0, len(window))
        assert block is data or isinstance(window, bytes)
        assert block[offset : offset + length] == copy
    line_nos = frame.get_column("line_no").to_numpy().tobytes()
    in_place = _core.parse_postfix(views, windows, line_nos, {"year": 2026})
    copied = _core.parse_postfix(views, copies, line_nos, {"year": 2026})
    assert (
        in_place["rows"] == copied["rows"] == 49 and in_place["columns"] == copied["columns"]
    )  # the first line: no queue id
    with pytest.raises(ValueError, match="passes its block"):
        _core.parse_postfix(views, [(data, len(data) - 4, 8)], line_nos, {"year": 2026})
