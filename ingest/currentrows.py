"""The rows a batch run leaves current: what a trace over all days returns of the rows it wrote.

A run's report counts them (stored rows, stored messages), so they are followed flush by flush:
each flush's rows come in, and the rows of the messages it supersedes or writes again drop out.
Kept compact, for a long run holds millions of them (10 M Postfix lines: 1.8 M rows):

- one entry a message, not a row: its MessageTraceId as 16 bytes, the host, queue id and
  Received a flush's `stale` filter reads, and its number of rows;
- per UTC day of Received (an id names its Received, so no message is in two days), each day a
  list of pieces, one a flush, each in buffers of its own: a flush adds a piece and filters only
  the pieces that lose entries. Rewriting a whole day's frame at every flush (a one-day log: every
  row of the run, each flush) made the allocator hold several times the frame's size: Exchange
  2 M lines, 120 MB of rows kept, ~400 MB more resident at the end.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from msgtrace.ingest.schema import MESSAGE_SCHEMA

# What a trace row keeps of each message here: enough to apply a flush's `stale` to it.
ROW_SCHEMA = {c: MESSAGE_SCHEMA[c] for c in ("message_trace_id", "host", "queue_id", "received")}
# A day's pieces are merged into one past this many (a long one-day log: one piece a flush).
MAX_PIECES = 32
_ID = "id"  # the MessageTraceId's 16 bytes (its hex digits decoded)
_ROWS = "rows"


class CurrentRows:
    """A run's current message rows, per UTC day of Received, one entry a message."""

    def __init__(self) -> None:
        self._days: dict[dt.date, list[pl.DataFrame]] = {}

    def __len__(self) -> int:
        """Days that hold current rows of the run."""
        return sum(1 for pieces in self._days.values() if pieces)

    @property
    def rows(self) -> int:
        """Current rows, one per (message, recipient)."""
        return sum(int(p.get_column(_ROWS).sum()) for pieces in self._days.values() for p in pieces)

    @property
    def messages(self) -> int:
        """Current messages (an id is in one piece of one day only)."""
        return sum(p.height for pieces in self._days.values() for p in pieces)

    def after(self, rows: pl.DataFrame, stale: pl.Expr | pl.DataFrame) -> None:
        """The current rows after a flush wrote `rows` superseding `stale` (as MessagesTable.replace
        applies it): the rows of a superseded message or of a message written again drop out, the
        new rows come in. Only the days of the new and the stale rows can change, unless `stale` is
        a filter (lines read out of order), which is applied to every day."""
        new = _by_day(_per_message(rows))
        dropped = {day: [piece.select(_ID)] for day, piece in new.items()}
        if isinstance(stale, pl.DataFrame):
            for day, gone in _by_day(_ids(stale.select("message_trace_id", "received"))).items():
                dropped.setdefault(day, []).append(gone.select(_ID))
        else:
            for day, pieces in self._days.items():
                self._days[day] = [_keep(p, ~stale) for p in pieces]
        for day, ids in dropped.items():
            pieces = self._days.get(day)
            if pieces:
                self._days[day] = _without(pieces, pl.concat(ids).get_column(_ID))
        for day, piece in new.items():
            pieces = self._days.setdefault(day, [])
            pieces.append(piece)
            if len(pieces) > MAX_PIECES:
                self._days[day] = [pl.concat(pieces, rechunk=True)]

    def by_day(self) -> dict[dt.date, pl.DataFrame]:
        """The current rows of each day, one a row again (ROW_SCHEMA; for tests and inspection)."""
        out = {}
        for day in sorted(self._days):
            pieces = [p for p in self._days[day] if p.height]
            if pieces:
                out[day] = _as_rows(pl.concat(pieces))
        return out

    def frame(self) -> pl.DataFrame:
        """Every current row, one a row (ROW_SCHEMA), days in order."""
        return pl.concat([pl.DataFrame(schema=ROW_SCHEMA), *self.by_day().values()])


def _per_message(rows: pl.DataFrame) -> pl.DataFrame:
    """One entry a message of a flush's rows (host, queue id and Received are the message's), its
    strings in buffers of their own: cut from the rows, they would keep every buffer of the flush's
    events alive (Polars string views share buffers)."""
    msgs = rows.group_by("message_trace_id").agg(
        pl.col("host").first(), pl.col("queue_id").first(), pl.col("received").first(), pl.len().alias(_ROWS)
    )
    return _ids(msgs.with_columns(_owned("host"), _owned("queue_id")))


def _ids(df: pl.DataFrame) -> pl.DataFrame:
    """message_trace_id (the canonical 8-4-4-4-12 hex text, msgtrace.ingest.traceid) as its 16 bytes."""
    raw = pl.col("message_trace_id").str.replace_all("-", "", literal=True).str.decode("hex")
    return df.select(raw.alias(_ID), pl.exclude("message_trace_id"))


def _id_text() -> pl.Expr:
    """The inverse of _ids: 16 bytes as the MessageTraceId's text."""
    hexed = pl.col(_ID).bin.encode("hex")
    parts = [hexed.str.slice(at, n) for at, n in ((0, 8), (8, 4), (12, 4), (16, 4), (20, 12))]
    return pl.concat_str(parts, separator="-").alias("message_trace_id")


def _owned(column: str) -> pl.Expr:
    """A string column in buffers of its own (concatenating builds new ones; null stays null)."""
    return pl.concat_str([pl.col(column), pl.lit("")]).alias(column)


def _by_day(df: pl.DataFrame) -> dict[dt.date, pl.DataFrame]:
    """Entries split by the UTC day of `received` (a null one: under date.min)."""
    if not df.height:
        return {}
    day = pl.col("received").dt.date().fill_null(dt.date.min).alias("_day")
    parts = df.with_columns(day).partition_by("_day", as_dict=True, include_key=False)
    return {key[0]: part for key, part in parts.items()}


def _keep(piece: pl.DataFrame, keep: pl.Expr) -> pl.DataFrame:
    """A piece's entries whose rows `keep` (an expression over ROW_SCHEMA) holds for, as a filter
    keeps them (null: not kept); the piece itself when it holds for all."""
    mask = piece.select(_id_text(), "host", "queue_id", "received").select(keep.fill_null(False)).to_series()
    return piece if mask.all() else piece.filter(mask)


def _without(pieces: list[pl.DataFrame], ids: pl.Series) -> list[pl.DataFrame]:
    """The pieces without the entries of these ids; a piece losing none is kept as it is. The
    day's ids are probed at once (one hash set of `ids`), a zero-copy slice of the answer a piece."""
    if not ids.len():
        return pieces
    all_ids = pl.concat([p.get_column(_ID) for p in pieces], rechunk=False)
    hit = all_ids.is_in(ids.implode())
    if not hit.any():
        return pieces
    out, at = [], 0
    for p in pieces:
        gone = hit.slice(at, p.height)
        at += p.height
        out.append(p.filter(~gone) if gone.any() else p)
    return out


def _as_rows(entries: pl.DataFrame) -> pl.DataFrame:
    """Entries back to one line a row (each message's `rows` times)."""
    repeat = pl.int_ranges(0, pl.col(_ROWS)).alias("_n")
    return entries.with_columns(_id_text(), repeat).explode("_n").select(list(ROW_SCHEMA))
