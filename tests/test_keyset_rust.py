"""The flush's bookkeeping by the compiled core (ingest/keyset.py over rust/src/keyset.rs) against the
Polars joins it replaced (tests/polars_keyset.py, the reference): flushes simulated over golden
fixtures, generated logs of every format and the shared corpus (the open set carried from flush to
flush, related events, orphans, the superseded rows, the update and its expiry compared at each), and frames made at
random with null, empty, long and non-ASCII keys."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import polars as pl
import pytest

from msgtrace.generate import generate
from msgtrace.ingest.correlate import correlate
from msgtrace.ingest.keyset import Keys, alive
from msgtrace.ingest.openset import OpenSet, _essentials, orphans, queue_keys
from msgtrace.ingest.schema import EVENT_SCHEMA, unique_events
from msgtrace.ingest.supersede import previous_rows
from tests import polars_keyset as ref
from tests.conftest import CORPUS, FIXTURES
from tests.test_correlate_rust import FORMATS, _corpus_events, parse, read

KEY = ["host", "queue_id"]


def _open_set(events: pl.DataFrame) -> OpenSet:
    """An OpenSet holding `events`, without a store (only update and related are used)."""
    s = OpenSet.__new__(OpenSet)
    s.events = events
    return s


def _same_rows(got: pl.DataFrame, want: pl.DataFrame, what: str) -> None:
    """The same rows in any order."""
    assert got.schema == want.schema, what
    a, b = got.sort(got.columns, nulls_last=True), want.sort(want.columns, nulls_last=True)
    assert a.equals(b, null_equal=True), f"{what}: {a.height} rows vs {b.height}"


def _in_time_order(ev: pl.DataFrame) -> pl.DataFrame:
    """Events sorted by time, source and line, ties in their order (the reference sorts the open
    events it keeps of a message; openset._essentials keeps them in the frame's own order)."""
    return ev.sort("time", "source", "line_no", maintain_order=True)


def _flushes(events: pl.DataFrame, size: int, lifetime: dt.timedelta) -> None:
    """The events in flushes of `size` events, the open set carried: each step of the compiled
    bookkeeping equals the Polars one (related events in the same order; the open set's rows,
    which openset._essentials keeps in the frame's order and the reference sorts by time)."""
    open_events = pl.DataFrame(schema=EVENT_SCHEMA)
    for start in range(0, max(events.height, 1), size):
        parsed = unique_events(events.slice(start, size))
        keys = Keys(parsed)
        related = _open_set(open_events).related(parsed, keys)
        assert related.equals(ref.related_events(open_events, queue_keys(parsed)), null_equal=True)
        _same_rows(orphans(parsed, related, keys), ref.orphans(parsed, related), "orphans")
        everything = pl.concat([related, parsed], how="vertical_relaxed")
        rows = correlate(everything, lifetime)
        _same_rows(previous_rows(rows, related), ref.previous_rows(rows, related), "previous_rows")
        want = ref.update(open_events, everything, rows, lifetime)
        for touched in ([Keys(related), keys], None):
            s = _open_set(open_events)
            s.update(everything, rows, lifetime, touched)
            _same_rows(s.events, want, "the open set")
        open_events = want


def _check(events: pl.DataFrame, sizes: tuple[int, ...] = (7, 150, 100_000)) -> None:
    for size in sizes:
        _flushes(events, size, dt.timedelta(days=6))
    _flushes(events, 150, dt.timedelta(minutes=10))  # expiry within a log


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden_fixtures(fmt: str) -> None:
    for log in sorted((FIXTURES / fmt).rglob("*.log")):
        _check(parse(fmt, read(log)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", [1, 2])
def test_generated_logs(tmp_path: Path, fmt: str, seed: int) -> None:
    log = tmp_path / f"{fmt}.log"
    generate(fmt, log, lines=4000, start="2026-03-28", days=2, tz="UTC", seed=seed)
    events = parse(fmt, read(log), year=2026)
    assert events.height
    _check(events, sizes=(500, 100_000))
    _check(events.sample(fraction=1.0, shuffle=True, seed=seed), sizes=(500,))  # out of line order


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_corpus(corpus: Path, fmt: str) -> None:
    for p in sorted((CORPUS / fmt).rglob("*")):
        if p.is_file() and not p.name.endswith(".tsv"):
            _check(_corpus_events(str(p.relative_to(CORPUS))), sizes=(1000,))


# ---- frames made at random ---------------------------------------------------------------------

_TEXT = ["", "a", "mx1", "mx1.example.org", "A1B2C3D4E5", "A1B2C3D4E5F6G7H8", "é漢\U0001f600", "x" * 40, "\x00"]


def _text(rng: random.Random, nulls: float = 0.1) -> str | None:
    return None if rng.random() < nulls else rng.choice(_TEXT)


def _random_events(rng: random.Random, n: int) -> pl.DataFrame:
    kinds = ["receive", "deliver", "reject", "info", "removed", "handoff", None]
    t0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    rows = [
        {
            "time": None if rng.random() < 0.05 else t0 + dt.timedelta(minutes=rng.randrange(0, 20_000)),
            "host": _text(rng),
            "queue_id": _text(rng),
            "next_queue_id": _text(rng, 0.7),
            "kind": rng.choice(kinds),
            "recipient": rng.choice([None, "b@x.org", "B@X.org", "c@x.org", "É@x.org"]),
            "status": rng.choice([None, "GettingStatus", "Pending", "Delivered"]),
            "source": rng.choice(["s", "t"]),
            "line_no": i,
        }
        for i in range(n)
    ]
    return pl.DataFrame(rows, schema={c: EVENT_SCHEMA[c] for c in rows[0]}).select(
        pl.col(c) if c in rows[0] else pl.lit(None, t).alias(c) for c, t in EVENT_SCHEMA.items()
    )


@pytest.mark.parametrize("seed", range(6))
def test_random_frames(seed: int) -> None:
    rng = random.Random(seed)
    a, b = _random_events(rng, 300), _random_events(rng, 200)
    keys = Keys(a)
    want = a.join(queue_keys(b), on=KEY, how="semi")
    assert a.filter(Keys(b).named_by(a)).equals(want, null_equal=True)
    assert a.filter(keys.rows_named(b)).equals(a.join(b.select(KEY).unique(), on=KEY, how="semi"), null_equal=True)
    assert len(keys) == queue_keys(a).drop_nulls().height
    assert keys.related(b).equals(ref.related_events(b, queue_keys(a)), null_equal=True)
    assert _in_time_order(_essentials(a)).equals(ref.essentials(a), null_equal=True)
    newest = a.get_column("time").max()
    assert isinstance(newest, dt.datetime)
    cutoff = newest - dt.timedelta(days=3)
    assert a.filter(alive(a, cutoff)).equals(ref.expire(a, dt.timedelta(days=3)), null_equal=True)
    _flushes(a.drop_nulls("time"), 40, dt.timedelta(days=2))  # (a parser gives every event a time)


def test_empty_frames() -> None:
    empty = pl.DataFrame(schema=EVENT_SCHEMA)
    keys = Keys(empty)
    assert len(keys) == 0 and keys.first_rows().len() == 0
    assert keys.related(empty).height == 0
    assert keys.named_by(empty).len() == 0
    assert _essentials(empty).height == 0
    _flushes(empty, 10, dt.timedelta(days=6))
