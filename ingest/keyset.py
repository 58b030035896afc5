"""The flush's (host, queue id) bookkeeping by the compiled core (rust/src/keyset.rs).

A flush's keys (every queue id its 200,000 events name, hand-off targets included) are hashed
once into a Keys; the open set's related events, the open events a flush replaces, the events a
re-opened message keeps and the ones that expire are masks or rows over it, in place of Polars
joins that hashed every key again at each step (the joins are the test reference,
tests/polars_keyset.py). Keys compare as text, so the results are exactly the joins'; as in a
join, a null host or queue id matches nothing.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from msgtrace import _core
from msgtrace.ingest.corebuffers import views

# openset._essentials' classes (rust/src/keyset.rs): 0 always kept
_KEEP, _DELIVER, _REJECT, _RECEIVE, _INFO = range(5)
_US = dt.timedelta(microseconds=1)


def _mask(raw: bytes) -> pl.Series:
    return pl.Series(np.frombuffer(raw, dtype=np.bool_))


def _rows(raw: bytes) -> pl.Series:
    return pl.Series(np.frombuffer(raw, dtype=np.int64))


def _pair(ev: pl.DataFrame, qid: str = "queue_id") -> tuple:
    return views(ev.get_column("host")), views(ev.get_column(qid))


class Keys:
    """The (host, queue_id) keys a frame's events name as queue id or hand-off target
    (openset.queue_keys), hashed once."""

    def __init__(self, ev: pl.DataFrame) -> None:
        self._set = _core.KeySet(*_pair(ev), views(ev.get_column("next_queue_id")))
        self.height = ev.height  # of the frame the keys are of

    def __len__(self) -> int:
        return len(self._set)

    def named_by(self, ev: pl.DataFrame) -> pl.Series:
        """Whether each event's (host, queue_id) is one of the keys."""
        return _mask(self._set.contains(*_pair(ev)))

    def rows_named(self, keys: pl.DataFrame) -> pl.Series:
        """Whether each row of the frame these keys are of has one of the (host, queue_id) `keys`
        as its queue id: no row hashed again."""
        return _mask(self._set.rows_named(*_pair(keys)))

    def first_rows(self) -> pl.Series:
        """The first row of the frame naming each key as its queue id, ascending."""
        return _rows(self._set.first_rows())

    def related(self, events: pl.DataFrame) -> pl.DataFrame:
        """openset.related_events over a frame in memory: the events of these keys, following
        content-filter links, in the order the Polars search finds them."""
        if not events.height or not len(self):
            return events.clear()
        rows = _rows(self._set.related_rows(*_pair(events), views(events.get_column("next_queue_id"))))
        if not rows.is_sorted():  # rows found by a hand-off come after those of their queue ids
            return events[rows]
        # the usual case: a filter, cheaper than a gather of string views
        found = np.zeros(events.height, dtype=np.bool_)
        found[rows.to_numpy()] = True
        return events.filter(pl.Series(found))


def essentials_keep(ev: pl.DataFrame, order: pl.Series) -> pl.Series:
    """openset._essentials' filter: whether each event is kept, the events taken in `order`
    (their row numbers sorted by time, source and line_no)."""
    kind = pl.col("kind")
    outcome = kind.is_in(["deliver", "reject"]) & pl.col("recipient").is_not_null()
    cls = (
        pl.when(outcome & (kind == "deliver"))
        .then(_DELIVER)
        .when(outcome)
        .then(_REJECT)
        .when(kind == "receive")
        .then(_RECEIVE)
        .when(kind == "info")
        .then(_INFO)
        .otherwise(_KEEP)
    )
    getting = pl.col("status").eq("GettingStatus").cast(pl.UInt8).fill_null(2)
    parts = ev.select(cls.cast(pl.UInt8).alias("cls"), getting.alias("getting"), pl.col("recipient").str.to_lowercase())
    keep = _core.essentials_keep(
        *_pair(ev),
        views(parts.get_column("recipient")),
        parts.get_column("cls").to_numpy().tobytes(),
        parts.get_column("getting").to_numpy().tobytes(),
        order.cast(pl.Int64).to_numpy().tobytes(),
    )
    return _mask(keep)


def alive(ev: pl.DataFrame, cutoff: dt.datetime) -> pl.Series:
    """Whether each event's (host, queue_id) logged an event at or after `cutoff`."""
    micros = ev.get_column("time").dt.epoch("us")
    cut = (cutoff - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // _US
    mask = _core.alive_rows(
        *_pair(ev),
        micros.fill_null(0).to_numpy().astype(np.int64).tobytes(),
        micros.is_not_null().to_numpy().astype(np.uint8).tobytes(),
        cut,
    )
    return _mask(mask)
