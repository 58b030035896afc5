"""Reading log files: complete lines in chunks, offsets, compression, fingerprints, rotated series."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msgtrace.defaults import CHUNK_BYTES
from msgtrace.ingest.reader import ReadError, discover, fingerprint, read_chunks, sample_lines

LINES = [
    "Jun 13 10:00:00 mx1 postfix/qmgr[900]: 3F1A22C01: removed",
    "",
    "Jun 13 10:00:01 mx1 postfix/smtpd[1]: caf\u00e9 \u2603 \"quoted\" 'single', commas",
    "   ",
    "Jun 13 10:00:02 mx1 postfix/smtpd[1]: tab\there",
]


def lines_of(path: Path, offset: int = 0, line_no: int = 0, chunk_bytes: int = CHUNK_BYTES) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for chunk in read_chunks(path, offset, line_no, chunk_bytes):
        out.extend(chunk.lines.select("line_no", "line").rows())
    return out


def test_lines_numbers_and_blank_lines(tmp_path: Path) -> None:
    p = tmp_path / "mail.log"
    p.write_text("\n".join(LINES) + "\n")
    assert lines_of(p) == list(enumerate(LINES))


def test_partial_last_line_waits_and_reading_resumes_at_the_offset(tmp_path: Path) -> None:
    p = tmp_path / "mail.log"
    p.write_bytes(b"one\ntwo\nthr")
    chunks = list(read_chunks(p, 0, 0))
    assert [c.lines.get_column("line").to_list() for c in chunks] == [["one", "two"]]
    assert (chunks[-1].end_offset, chunks[-1].end_line) == (8, 2)
    with p.open("ab") as f:
        f.write(b"ee\nfour\n")
    assert lines_of(p, 8, 2) == [(2, "three"), (3, "four")]


def test_crlf_bom_and_bad_bytes(tmp_path: Path) -> None:
    p = tmp_path / "mail.log"
    p.write_bytes(b"\xef\xbb\xbfone\r\ntwo \xff\xfe\r\nNUL\x00inside\n")
    assert lines_of(p) == [(0, "one"), (1, "two \ufffd\ufffd"), (2, "NUL\ufffdinside")]


@pytest.mark.parametrize(("suffix", "opener"), [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)])
def test_compressed_files_and_offsets_into_them(tmp_path: Path, suffix: str, opener) -> None:
    p = tmp_path / f"mail.log.1{suffix}"
    with opener(p, "wt") as f:
        f.write("\n".join(LINES) + "\n")
    assert lines_of(p) == list(enumerate(LINES))
    first = len(LINES[0].encode()) + 1
    assert lines_of(p, first, 1) == list(enumerate(LINES))[1:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"), max_size=40),
        max_size=30,
    ),
    chunk=st.integers(1, 64),
)
def test_any_chunk_size_gives_the_same_lines(tmp_path: Path, lines: list[str], chunk: int) -> None:
    p = tmp_path / "mail.log"
    p.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    got = lines_of(p, chunk_bytes=chunk)
    assert got == list(enumerate(lines))
    ends = [c.end_offset for c in read_chunks(p, 0, 0, chunk)]
    assert ends == sorted(ends) and (not ends or ends[-1] == p.stat().st_size)


def test_fingerprint_follows_the_content_not_the_name(tmp_path: Path) -> None:
    live = tmp_path / "mail.log"
    live.write_text("\n".join(LINES) + "\n")
    fp = fingerprint(live)
    rotated = tmp_path / "mail.log.1"
    shutil.move(live, rotated)
    with rotated.open("rb") as src, gzip.open(tmp_path / "mail.log.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert fingerprint(rotated) == fp == fingerprint(tmp_path / "mail.log.1.gz")
    other = tmp_path / "other.log"
    other.write_text(LINES[2] + "\n")
    assert fingerprint(other) != fp


def test_no_fingerprint_before_the_first_line_is_complete(tmp_path: Path) -> None:
    p = tmp_path / "mail.log"
    p.write_bytes(b"")
    assert fingerprint(p) is None
    p.write_bytes(b"Jun 13 10:00:00 mx1 postfix")
    assert fingerprint(p) is None
    p.write_bytes(b"Jun 13 10:00:00 mx1 postfix\n")
    assert fingerprint(p) is not None


def test_sample_lines_for_detection(tmp_path: Path) -> None:
    p = tmp_path / "mail.log.gz"
    with gzip.open(p, "wt") as f:
        f.write("\ufeff" + "\r\n".join(LINES) + "\r\n")
    assert sample_lines(p, 3) == LINES[:3]


def test_rotated_series_oldest_first(tmp_path: Path) -> None:
    names = ["mail.log", "mail.log.1", "mail.log.2.gz", "mail.log.10.gz", "mail.err", "maillog-20260612.gz", "maillog"]
    for n in names:
        (tmp_path / n).write_text("x\n")
    (tmp_path / ".hidden.log").write_text("x\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mail.log").write_text("x\n")
    got = [str(p.relative_to(tmp_path)) for p in discover([str(tmp_path)])]
    assert got == [
        "mail.err",
        "mail.log.10.gz",
        "mail.log.2.gz",
        "mail.log.1",
        "mail.log",
        "maillog-20260612.gz",
        "maillog",
        "sub/mail.log",
    ]
    assert [p.name for p in discover([str(tmp_path / "mail.log*")])] == [
        "mail.log.10.gz",
        "mail.log.2.gz",
        "mail.log.1",
        "mail.log",
    ]
    # the same file named twice is read once
    assert len(discover([str(tmp_path / "mail.log"), str(tmp_path / "mail.log")])) == 1


def test_missing_paths_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="no such file or directory"):
        discover([str(tmp_path / "nope.log")])
    with pytest.raises(ReadError, match="no such file or directory"):
        discover([str(tmp_path / "nope*.log")])


def test_a_truncated_archive_is_a_read_error(tmp_path: Path) -> None:
    p = tmp_path / "mail.log.1.gz"
    data = gzip.compress(("\n".join(LINES * 200) + "\n").encode())
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError):
        lines_of(p)
