"""msgtrace.ingest.currentrows against the per-row bookkeeping it replaced (the reference below):
the same counts and rows after random flushes, stale rows given as ids or as a filter."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from msgtrace.ingest.currentrows import MAX_PIECES, ROW_SCHEMA, CurrentRows
from msgtrace.ingest.currentrows import _by_day as by_received_day
from msgtrace.ingest.traceid import message_trace_ids

T0 = dt.datetime(2026, 5, 1, 22, tzinfo=dt.UTC)


def reference_after(current: dict[dt.date, pl.DataFrame], rows: pl.DataFrame, stale: pl.Expr | pl.DataFrame) -> None:
    """The bookkeeping of ingest.pipeline before currentrows: one row a row, per day of Received,
    each flush anti-joining the day's rows with the superseded and rewritten ids."""
    new = by_received_day(rows.select(list(ROW_SCHEMA)))
    if isinstance(stale, pl.DataFrame):
        gone = by_received_day(stale.select("message_trace_id", "received"))
        days = set(new) | set(gone)
    else:
        gone, days = {}, set(current) | set(new)
    for day in days:
        kept = current.get(day)
        if kept is not None:
            if not isinstance(stale, pl.DataFrame):
                kept = kept.filter(~stale)
            dropped = [f[day].select("message_trace_id") for f in (gone, new) if day in f]
            if dropped:
                kept = kept.join(pl.concat(dropped), on="message_trace_id", how="anti")
        parts = [p for p in (kept, new.get(day)) if p is not None]
        current[day] = pl.concat(parts) if len(parts) > 1 else parts[0]


def _messages(rng: random.Random, n: int) -> pl.DataFrame:
    """n messages of a pool of queue ids, Received over two days: host, queue_id, received, id."""
    queue = [f"{rng.randrange(16**10):010X}" for _ in range(n)]
    received = [T0 + dt.timedelta(seconds=rng.randrange(2 * 86400)) for _ in range(n)]
    df = pl.DataFrame(
        {"host": ["mx1.example.org" if rng.random() < 0.5 else "mx2" for _ in range(n)], "queue_id": queue},
        schema={"host": pl.String, "queue_id": pl.String},
    ).with_columns(pl.Series("received", received, dtype=ROW_SCHEMA["received"]))
    key = df.select(pl.concat_str(["host", "queue_id"], separator="|")).to_series()
    return df.with_columns(message_trace_ids(key, df.get_column("received")).alias("message_trace_id"))


def _rows(msgs: pl.DataFrame, rng: random.Random) -> pl.DataFrame:
    """A flush's rows: each message 1 to 3 recipients."""
    reps = pl.Series([rng.randint(1, 3) for _ in range(msgs.height)])
    return msgs.with_columns(reps.alias("_n")).select(pl.exclude("_n").repeat_by(pl.col("_n")).explode())


def _stale_filter(msgs: pl.DataFrame) -> pl.Expr:
    """A filter like supersede.stale_rows: rows whose host|queue id|Received is one of these."""
    keys = msgs.select(
        pl.concat_str(["host", "queue_id", pl.col("received").dt.epoch("us").cast(pl.String)])
    ).to_series()
    key = pl.concat_str(["host", "queue_id", pl.col("received").dt.epoch("us").cast(pl.String)])
    return (pl.col("queue_id") != "") & key.is_in(keys.implode())


@pytest.mark.parametrize("seed", range(6))
def test_current_rows_match_the_per_row_reference(seed: int) -> None:
    rng = random.Random(seed)
    pool = _messages(rng, 400)
    ours, reference = CurrentRows(), {}
    for _ in range(MAX_PIECES + 8):  # past a merge of a day's pieces
        touched = pool.sample(rng.randint(0, 60), seed=rng.randrange(1 << 30))
        rows = _rows(touched, rng)
        older = pool.sample(rng.randint(0, 20), seed=rng.randrange(1 << 30))
        kind = rng.random()
        if kind < 0.15:
            stale: pl.Expr | pl.DataFrame = _stale_filter(older)
        elif kind < 0.3:
            stale = rows.select("message_trace_id", "received").clear()
        else:
            stale = older.select("message_trace_id", "received")
        ours.after(rows, stale)
        reference_after(reference, rows, stale)
        want = pl.concat([pl.DataFrame(schema=ROW_SCHEMA), *(reference[d] for d in sorted(reference))])
        assert ours.rows == want.height
        assert ours.messages == sum(df.get_column("message_trace_id").n_unique() for df in reference.values())
        assert sorted(ours.frame().rows()) == sorted(want.rows())
    assert len(ours) == len([d for d, df in reference.items() if df.height])


def test_empty() -> None:
    current = CurrentRows()
    current.after(
        pl.DataFrame(schema=ROW_SCHEMA), pl.DataFrame(schema=ROW_SCHEMA).select("message_trace_id", "received")
    )
    assert (current.rows, current.messages, len(current)) == (0, 0, 0)
    assert current.frame().schema == pl.Schema(ROW_SCHEMA)
