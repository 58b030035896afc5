"""What the equivalence tests of the compiled parsers share (tests/test_<format>_rust.py): both
parsers over the same lines in the same batches, and their events, unknown lines and carried
state compared."""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from msgtrace.ingest.formats.context import ParseContext


def frame(lines: list[str], first: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.DataFrame(
        {"line_no": range(first, first + len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String}
    )


def _sorted(events: pl.DataFrame) -> pl.DataFrame:
    # one line may give two events in either order, and a reference may group its events by kind
    return events.sort(events.columns, nulls_last=True)


def run(module: ModuleType, lines: list[str], cuts: list[int], ctx: ParseContext) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`module.parse` over `lines` in batches cut at `cuts`, one context: all events, all unknown lines."""
    events, unknown = [], []
    bounds = [0, *cuts, len(lines)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        parsed = module.parse(frame(lines[a:b], a), ctx)
        events.append(parsed.events)
        unknown.append(parsed.unknown)
    return pl.concat(events), pl.concat(unknown)


def assert_same(
    compiled: ModuleType, reference: ModuleType, lines: list[str], cuts: list[int] = (), /, **context: object
) -> pl.DataFrame:
    """Both parsers over `lines` in batches cut at `cuts`, with ParseContext(**context); the
    compiled parser's events and unknown lines."""
    ctx_rust, ctx_ref = ParseContext(**context), ParseContext(**context)  # type: ignore[arg-type]
    ev_rust, unk_rust = run(compiled, lines, list(cuts), ctx_rust)
    ev_ref, unk_ref = run(reference, lines, list(cuts), ctx_ref)
    assert ev_rust.schema == ev_ref.schema
    # the compiled parsers give the log's line order (the pipeline's in-order fast paths need it)
    assert ev_rust.get_column("line_no").is_sorted(), "the compiled parser's events are not in line order"
    got, want = _sorted(ev_rust), _sorted(ev_ref)
    if not got.equals(want):
        diff_a = got.join(want, on=got.columns, how="anti", nulls_equal=True)
        diff_b = want.join(got, on=got.columns, how="anti", nulls_equal=True)
        rows = sorted(set(diff_a.get_column("line_no")) | set(diff_b.get_column("line_no")))[:5]
        detail = [lines[r] if r < len(lines) else r for r in rows]
        pytest.fail(
            f"events differ on lines {rows}: {detail}\nrust: {diff_a.to_dicts()[:3]}\npolars: {diff_b.to_dicts()[:3]}"
        )
    assert unk_rust.equals(unk_ref), (unk_rust, unk_ref)
    assert ctx_rust.state == ctx_ref.state
    return ev_rust, unk_rust


def thirds(n: int) -> list[int]:
    """Three cuts through a log of n lines."""
    return sorted({n // 3, n // 2, (2 * n) // 3} - {0, n}) if n > 3 else []


def random_cuts(rng: random.Random, n: int, most: int = 6) -> list[int]:
    """Up to `most` random places to cut a log of n lines (never an empty batch)."""
    return sorted(set(rng.sample(range(1, n), min(most, n - 1)))) if n > 1 else []


def read(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", errors="replace").splitlines()


# What the fuzz tests insert: the characters the line shapes are made of, blanks that are not
# ASCII spaces and digits that are not ASCII digits (Unicode \s and \d, which the regexes read).
NOISE = [" ", ":", "[", "]", "<", ">", ",", ";", "=", "\t", "\x0b", "é", "٣", "\u00a0", "(", ")", '"', "/", "-"]
NOISE += ["Z", "T", "0", "9", "+", ".", "@", "|"]


def mutate(rng: random.Random, line: str) -> str:
    """`line` with one to four characters deleted or inserted, or cut short."""
    chars = list(line)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        at = rng.randrange(len(chars) + 1)
        if op < 0.4 and chars:
            del chars[min(at, len(chars) - 1)]
        elif op < 0.8:
            chars.insert(at, rng.choice(NOISE))
        else:
            cut = rng.randrange(len(chars) + 1)
            chars = chars[:cut]
    return "".join(chars)
