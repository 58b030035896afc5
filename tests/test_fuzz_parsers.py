"""Fuzz: random and mutated log lines never crash a parser, never vanish, never break the store.

Real lines (tests/fixtures and, when present, the shared corpus) are mutated by a seeded random
generator, so every run tries the same cases and a failure reproduces. Bounded: a few thousand
lines per format, a few seconds in all.

What must hold:
- the parser raises nothing, and every line it returns is one it was given, as an event or as
  an unknown line, never both; lines of no mail-log shape at all (random words) are unknown,
  not dropped (a line of the format's own shape but no interest, such as `disconnect from`, is
  dropped by design: ingest.formats);
- `msgtrace ingest` of the mutated log reads every line, exits 0 (lines a parser cannot take
  are stored, unknown, or written to --rejects), and the store answers trace and status.
"""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from msgtrace.ingest import formats
from msgtrace.ingest.formats import ParseContext
from msgtrace.query.cli import cli
from tests.conftest import CORPUS, FIXTURES

FORMATS = ["postfix", "exim", "sendmail", "exchange"]
SEED = 20261201
BATCHES = 6
BATCH_LINES = 250
# Characters that matter to the parsers' captures: separators, brackets, digits, quotes, wide
# and combining characters, controls.
ALPHABET = list("=<>,:;[]()\"' .@-_/\\#0123456789azAZ") + ["é", "日", "\u0301", "\x1b", "\t", "\x00", "\u202e"]
HUGE = ["99999999999999999999999", "-1", "1e308", "NaN", "", "0x1F", "4294967296"]


def real_lines(fmt: str) -> tuple[list[str], list[str]]:
    """(header lines kept at the top unmutated, body lines) from the fixtures and the corpus."""
    files = sorted((FIXTURES / fmt).glob("*.log"))
    if CORPUS.is_dir():
        files += sorted(p for p in (CORPUS / fmt).rglob("*") if p.is_file() and not p.name.endswith((".gz", ".md")))
    header: list[str] = []
    body: list[str] = []
    for f in files:
        for line in f.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff").splitlines():
            if fmt == "exchange" and line.startswith("#"):
                if line.startswith("#Fields") and not header:
                    header.append(line)
                continue
            if line.strip():
                body.append(line)
    return header, body


def mutate(rng: random.Random, line: str, others: list[str], numbers: bool = True) -> str:
    """One of several edits a damaged or hostile log could make to a real line; `numbers`: also
    numbers out of any column's range."""
    if not line:
        return rng.choice(ALPHABET)
    i, j = sorted(rng.randrange(len(line) + 1) for _ in range(2))
    op = rng.randrange(9)
    if op == 0:
        return line[:i]  # cut short (a torn write)
    if op == 1:
        return line[:i] + line[j:]  # a span lost
    if op == 2:
        return line[:j] + line[i:j] + line[j:]  # a span doubled
    if op == 3:
        return line[:i] + "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 6))) + line[j:]
    if op == 4:
        other = rng.choice(others)
        return line[:i] + other[rng.randrange(len(other) + 1) :]  # two lines spliced
    if op == 5 and numbers:
        digits = [k for k, ch in enumerate(line) if ch.isdigit()]
        if digits:
            k = rng.choice(digits)
            end = k
            while end < len(line) and line[end].isdigit():
                end += 1
            return line[:k] + rng.choice(HUGE) + line[end:]  # a number out of range
        return line + rng.choice(HUGE)
    if op in (5, 6):
        words = line.split(" ")
        a, b = rng.randrange(len(words)), rng.randrange(len(words))
        words[a], words[b] = words[b], words[a]
        return " ".join(words)
    if op == 7:
        return line[:i] + line[i:j].upper() + line[j:]
    return line[:i] + rng.choice([",", "=", "<", ">", "[", "]", '"', ":"]) * rng.randrange(1, 40) + line[i:]


def garbage(rng: random.Random) -> str:
    """A line of random words: no mail log's shape."""
    return " ".join(
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(1, 9)))
        for _ in range(rng.randrange(1, 12))
    )


def fuzz_log(fmt: str, rng: random.Random, n: int, numbers: bool = True) -> tuple[list[str], set[int]]:
    """Header plus n lines: real, mutated and garbage ones; also the line numbers of the garbage."""
    header, body = real_lines(fmt)
    assert body, f"no {fmt} lines found"
    lines = list(header)
    junk: set[int] = set()
    for _ in range(n):
        pick = rng.random()
        if pick < 0.15:
            lines.append(rng.choice(body))
        elif pick < 0.9:
            lines.append(mutate(rng, rng.choice(body), body, numbers))
        else:
            junk.add(len(lines))
            lines.append(garbage(rng))
    return lines, junk


NUMBERS = [pytest.param(False, id="in-range-numbers"), pytest.param(True, id="huge-numbers")]


@pytest.mark.parametrize("numbers", NUMBERS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_parsers_survive_mutated_lines_and_lose_none(fmt: str, numbers: bool) -> None:
    rng = random.Random(f"{SEED}-{fmt}-{numbers}")
    parser = formats.parser(fmt)
    ctx = ParseContext(timezone="UTC", year=2026, source="fuzz", host="mx1.example.org")
    first = 0
    for _ in range(BATCHES):
        lines, junk = fuzz_log(fmt, rng, BATCH_LINES, numbers)
        batch = pl.DataFrame(
            {"line_no": range(first, first + len(lines)), "line": lines},
            schema={"line_no": pl.Int64, "line": pl.String},
        )
        parsed = parser.parse(batch, ctx)  # must not raise
        given = set(batch.get_column("line_no").to_list())
        stored = set(parsed.events.get_column("line_no").to_list())
        unknown = set(parsed.unknown.get_column("line_no").to_list())
        assert stored <= given and unknown <= given
        assert not stored & unknown, "a line both stored and unknown"
        missing = {first + k for k in junk} - unknown
        assert not missing, (
            f"random lines neither stored nor unknown: {[lines[k - first] for k in sorted(missing)][:3]}"
        )
        first += len(lines)


@pytest.mark.parametrize("numbers", NUMBERS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_ingest_of_a_mutated_log_reads_every_line_and_the_store_answers(
    fmt: str, numbers: bool, tmp_path: Path
) -> None:
    rng = random.Random(f"{SEED}-ingest-{fmt}-{numbers}")
    lines, _ = fuzz_log(fmt, rng, 600, numbers)
    log, store, rejects = tmp_path / f"{fmt}.log", tmp_path / "store", tmp_path / "rejects.txt"
    log.write_text("\n".join(line.replace("\r", " ").replace("\n", " ") for line in lines) + "\n", encoding="utf-8")
    runner = CliRunner(env={"MSGTRACE_NOW": "2026-06-14T12:00:00Z", "MSGTRACE_STORE": None})
    r = runner.invoke(
        cli,
        ["ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026", "--format", fmt,
         "--host", "mx1.example.org", "--rejects", str(rejects), str(log)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert f"Ingested 1 files, {len(lines):,} lines" in r.stdout
    r = runner.invoke(cli, ["trace", "--store", str(store), "--max-age-days", "0", "--start-date", "1970-01-02",
                            "--end-date", "2200-01-01", "--timezone", "UTC", "--output", "jsonl"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["status", "--store", str(store)])
    assert r.exit_code == 0 and "Damaged" not in r.stdout, r.output


def parse_lines(fmt: str, lines: list[str]) -> formats.Parsed:
    batch = pl.DataFrame({"line_no": range(len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String})
    return formats.parser(fmt).parse(batch, ParseContext(timezone="UTC", year=2026, source="f", host="mx1"))


def test_exchange_year_minus_one_is_an_unknown_line_not_a_crash() -> None:
    """Found by the fuzz: %Y reads "-1", and a year -1 event broke ingest (no datetime holds it)."""
    header, body = real_lines("exchange")
    line = next(x for x in body if x.startswith("20"))
    parsed = parse_lines("exchange", [*header, "-1" + line[4:]])
    assert parsed.events.height == 0
    assert parsed.unknown.get_column("line_no").to_list() == [len(header)]


def test_postfix_numbers_beyond_int64_do_not_fail_the_batch() -> None:
    big = "99999999999999999999999"
    parsed = parse_lines(
        "postfix",
        [f"Apr 30 15:40:42 mx1 postfix/qmgr[23452]: A0AC6614A6: from=<>, size={big}, nrcpt={big} (queue active)"],
    )
    assert parsed.events.height + parsed.unknown.height == 1
