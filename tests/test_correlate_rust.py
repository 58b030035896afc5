"""The compiled correlator (ingest/correlate.py over msgtrace._core, on the production path)
against the Polars correlator it replaced (tests/polars_correlate.py, kept as the reference):
the same message rows (frame-equal after one sort), and the same events for message_events and
events_of_messages, on every golden fixture of the four formats, the shared corpus, generated
logs over seeds, the follow fixtures, and event frames mutated at random (shuffled, times
duplicated, lines removed, queue ids reused, kinds, statuses and fields replaced or nulled).

Where the reference's own result depends on an unstable sort (two events of one line for one
recipient, equal in every sort key) the two may differ by design; no input here has such ties
with different values (see rust/src/correlate.rs on ties).
"""

from __future__ import annotations

import datetime as dt
import random
import tarfile
import time
from pathlib import Path

import polars as pl
import pytest

from msgtrace import _core
from msgtrace.defaults import QUEUE_LIFETIME
from msgtrace.generate import generate
from msgtrace.ingest import correlate as rust
from msgtrace.ingest.corebuffers import views
from msgtrace.ingest.formats import parser
from msgtrace.ingest.formats.context import ParseContext
from msgtrace.ingest.schema import EVENT_SCHEMA, KINDS, STATUSES
from tests import polars_correlate as ref
from tests.conftest import CORPUS, FIXTURES

FORMATS = ("postfix", "exim", "sendmail", "exchange")


def frame(lines: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"line_no": range(len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String})


def read(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", errors="replace").splitlines()


def parse(fmt: str, lines: list[str], source: str = "s", **ctx: object) -> pl.DataFrame:
    context = ParseContext(source=source, **{"year": 2026, "host": "mx1.example.com", **ctx})  # type: ignore[arg-type]
    return parser(fmt).parse(frame(lines), context).events


def _sorted(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(df.columns, nulls_last=True)


def _same_frames(got: pl.DataFrame, want: pl.DataFrame, what: str) -> None:
    assert got.schema == want.schema, what
    a, b = _sorted(got), _sorted(want)
    if not a.equals(b):
        only_a = a.join(b, on=a.columns, how="anti", nulls_equal=True)
        only_b = b.join(a, on=a.columns, how="anti", nulls_equal=True)
        pytest.fail(
            f"{what}: {a.height} rows vs {b.height}\nrust only: {only_a.head(3).to_dicts()}\n"
            f"polars only: {only_b.head(3).to_dicts()}"
        )


def assert_same(events: pl.DataFrame, queue_lifetime: dt.timedelta = QUEUE_LIFETIME, details: int = 8) -> pl.DataFrame:
    """correlate() of both on `events`; message_events for a few messages and
    events_of_messages for all of them."""
    got = rust.correlate(events, queue_lifetime)
    want = ref.correlate(events, queue_lifetime)
    _same_frames(got, want, "correlate")
    queued = want.filter(pl.col("queue_id") != "").unique("message_trace_id", keep="first", maintain_order=True)
    for m in queued.head(details).iter_rows(named=True):
        args = (events, m["host"], m["queue_id"], m["received"], queue_lifetime)
        _same_frames(rust.message_events(*args), ref.message_events(*args), f"message_events {m['queue_id']}")
    keys = queued.select("host", "queue_id", "received", "message_trace_id")
    _same_frames(
        rust.events_of_messages(events, keys, queue_lifetime),
        ref.events_of_messages(events, keys, queue_lifetime),
        "events_of_messages",
    )
    return got


# ---- golden fixtures, follow fixtures ------------------------------------------------------------


def _fixture_logs() -> list[tuple[str, Path]]:
    return [(fmt, p) for fmt in FORMATS for p in sorted((FIXTURES / fmt).rglob("*.log"))]


@pytest.mark.parametrize(("fmt", "log"), _fixture_logs(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_golden_fixture(fmt: str, log: Path) -> None:
    events = parse(fmt, read(log))
    rows = assert_same(events)
    assert rows.height or not events.height or fmt != "postfix" or log.stem == "foreign_lines"
    # a short queue lifetime splits more messages by silence
    assert_same(events, dt.timedelta(minutes=5))


def test_follow_fixtures_together() -> None:
    logs = sorted((FIXTURES / "follow").glob("*.log"))
    events = pl.concat([parse("postfix", read(p), source=p.stem) for p in logs])
    assert_same(events, details=40)


def test_empty_and_noqueue_only() -> None:
    empty = pl.DataFrame(schema=EVENT_SCHEMA)
    assert_same(empty)
    lines = [
        "Jun 13 10:00:00 mx1 postfix/smtpd[901]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 "
        "Service unavailable; from=<spam@x.org> to=<b@y.org> proto=ESMTP helo=<x>"
    ] * 3
    assert assert_same(parse("postfix", lines)).height == 3


# ---- the shared corpus ---------------------------------------------------------------------------


def _corpus_files() -> list[str]:
    if not CORPUS.is_dir():
        return ["absent"]
    out = []
    for fmt in FORMATS:
        for p in sorted((CORPUS / fmt).rglob("*")):
            if p.is_file() and not p.name.endswith(".tsv"):
                out.append(str(p.relative_to(CORPUS)))
    return out


def _corpus_events(name: str) -> pl.DataFrame:
    fmt = name.split("/", 1)[0]
    path = CORPUS / name
    if name.endswith(".tar.gz"):
        # every member its own source (Exim's test logs reuse ids across files): one frame
        parts = []
        with tarfile.open(path) as tar:
            for m in tar:
                if m.isfile():
                    data = tar.extractfile(m).read()  # type: ignore[union-attr]
                    lines = data.decode("utf-8", errors="replace").splitlines()
                    parts.append(parse(fmt, lines, source=m.name, year=2020))
        return pl.concat(parts)
    return parse(fmt, read(path), year=2020)


@pytest.mark.slow
@pytest.mark.parametrize("name", _corpus_files())
def test_corpus_file(corpus: Path, name: str) -> None:
    events = _corpus_events(name)
    assert_same(events, details=4)
    assert_same(events, dt.timedelta(minutes=10), details=0)


# ---- generated logs ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_logs(tmp_path: Path, fmt: str, seed: int) -> None:
    log = tmp_path / f"{fmt}.log"
    generate(fmt, log, lines=4000, start="2026-03-28", days=2, tz="UTC", seed=seed)
    events = parse(fmt, read(log), year=2026)
    assert events.height
    assert_same(events, details=5)


# ---- mutated event frames ------------------------------------------------------------------------

_PAYLOAD = ["status", "sender", "recipient", "orig_recipient", "message_id", "subject", "client_ip", "to_ip"]
_PAYLOAD += ["next_queue_id", "size", "nrcpt", "detail", "program", "relay", "dsn", "delay", "organization"]


def _mutate(rng: random.Random, ev: pl.DataFrame) -> pl.DataFrame:
    """One random mutation of an events frame (never a null host or time: the reference's own
    order is undefined for messages of a null host, and no parser emits a null time)."""
    n = ev.height
    rows = [rng.randrange(n) for _ in range(max(1, n // rng.choice([3, 10, 30])))]
    idx = pl.Series("i", sorted(set(rows)), dtype=pl.UInt32)
    hit = pl.int_range(pl.len(), dtype=pl.UInt32).is_in(idx.implode())
    # the events of one line share its time: a time changes for whole lines
    lines = ev.get_column("line_no").gather(idx).unique()
    line_hit = pl.col("line_no").is_in(lines.implode())
    op = rng.randrange(9)
    if op >= 3 and op != 7:
        # a field changes only on a line with one event: two events of one line equal in every
        # sort key but different in value are the ties the reference leaves undefined
        hit = hit & (pl.len().over(["source", "line_no"]) == 1)
    if op == 0:  # shuffled
        return ev.sample(fraction=1.0, shuffle=True, seed=rng.randrange(1 << 30))
    if op == 1:  # lines removed
        return ev.filter(~hit)
    if op == 2:  # times duplicated: lines' times cut to the second or the minute (every event of a line keeps one time)
        return ev.with_columns(
            pl.when(line_hit).then(pl.col("time").dt.truncate(rng.choice(["1s", "1m"]))).otherwise("time").alias("time")
        )
    if op == 3:  # queue ids reused: rows take another row's queue id (or next_queue_id)
        other = ev.get_column("queue_id").drop_nulls().unique().sort()
        if not other.len():
            return ev
        pick = pl.Series([other[rng.randrange(other.len())] for _ in range(n)], dtype=pl.String)
        col = rng.choice(["queue_id", "next_queue_id"])
        return ev.with_columns(pl.when(hit).then(pick).otherwise(pl.col(col)).alias(col))
    if op == 4:  # kinds replaced (an unknown kind and null too)
        kinds = [*KINDS, "bogus", None]
        pick = pl.Series([rng.choice(kinds) for _ in range(n)], dtype=pl.String)
        return ev.with_columns(pl.when(hit).then(pick).otherwise(pl.col("kind")).alias("kind"))
    if op == 5:  # statuses replaced
        pick = pl.Series([rng.choice([*STATUSES, "odd", None]) for _ in range(n)], dtype=pl.String)
        return ev.with_columns(pl.when(hit).then(pick).otherwise(pl.col("status")).alias("status"))
    if op == 6:  # a payload field nulled
        col = rng.choice(_PAYLOAD)
        return ev.with_columns(pl.when(hit).then(None).otherwise(pl.col(col)).alias(col))
    if op == 7:  # times moved by up to a few hours (silences, hand-offs outside the window)
        shift = pl.duration(seconds=rng.choice([-7200, -3600, -30, 1, 9, 11, 3600, 5400]))
        return ev.with_columns(pl.when(line_hit).then(pl.col("time") + shift).otherwise("time").alias("time"))
    # recipients' case changed, an orig_recipient copied from the recipient or another row
    if rng.random() < 0.3:
        return ev.with_columns(
            pl.when(hit).then(pl.col("recipient").str.to_uppercase()).otherwise("recipient").alias("recipient")
        )
    src = pl.col("recipient").str.to_uppercase() if rng.random() < 0.5 else pl.col("recipient").shift(1)
    return ev.with_columns(pl.when(hit).then(src).otherwise("orig_recipient").alias("orig_recipient"))


def _fuzz_bases() -> list[pl.DataFrame]:
    # each file its own source, as the pipeline stores them (the event order is per source and line)
    bases = [parse("postfix", read(p), source=p.stem) for p in sorted((FIXTURES / "postfix").glob("*.log"))]
    bases = [pl.concat(bases[:6]), pl.concat(bases[6:])]
    bases += [
        pl.concat([parse(f, read(p), source=p.stem) for p in sorted((FIXTURES / f).glob("*.log"))]) for f in FORMATS[1:]
    ]
    return [b.filter(pl.col("host").is_not_null()) for b in bases]


def test_fuzz_mutated_events(tmp_path: Path) -> None:
    """Bounded in time (a few seconds): mutations stacked on the fixtures' events, through both."""
    rng = random.Random(16)
    bases = _fuzz_bases()
    log = tmp_path / "g.log"
    generate("postfix", log, lines=1500, start="2026-03-28", days=0.2, tz="UTC", seed=7)
    bases.append(parse("postfix", read(log)))
    deadline = time.monotonic() + 8
    rounds = 0
    while time.monotonic() < deadline or rounds < len(bases):
        ev = bases[rounds % len(bases)]
        for _ in range(rng.randint(1, 4)):
            ev = _mutate(rng, ev)
        lifetime = rng.choice([QUEUE_LIFETIME, dt.timedelta(minutes=2), dt.timedelta(seconds=1)])
        assert_same(ev, lifetime, details=3)
        rounds += 1
    assert rounds >= len(bases)


# ---- the extension's promise: bad input is an exception, never a crash ----------------------------


def test_the_extension_names_input_it_cannot_read() -> None:
    ev = parse("postfix", read(FIXTURES / "postfix" / "basic_delivery.log"))
    good = rust._run(ev, QUEUE_LIFETIME, split=False)
    assert good["rows"]

    def call(**changes: object) -> None:
        cols = rust._inputs(ev)
        cols.update(changes)
        _core.correlate_events(cols, 1, 1, True)

    host_views, buffers, valid = views(ev.get_column("host"))
    with pytest.raises(ValueError, match="host: "):
        call(host=(host_views[:-16], buffers, valid))  # a row short
    bad = bytearray(host_views)
    bad[0:4] = (40).to_bytes(4, "little")  # a long text in buffer 0 past its end
    bad[8:16] = bytes(8)
    with pytest.raises(ValueError, match="points outside the buffers"):
        call(host=(bytes(bad), [b""], valid))
    with pytest.raises(ValueError, match="unequal length"):
        call(kind=b"\x00")
    with pytest.raises(ValueError, match="row 99999"):
        call(hand=((99999).to_bytes(8, "little"), []))
    with pytest.raises(ValueError, match='no "time"'):
        _core.correlate_events({}, 1, 1, False)


def test_events_without_a_time_are_refused() -> None:
    ev = parse("postfix", read(FIXTURES / "postfix" / "basic_delivery.log")).with_columns(
        pl.lit(None, EVENT_SCHEMA["time"]).alias("time")
    )
    with pytest.raises(ValueError, match="without a time"):
        rust.correlate(ev)
