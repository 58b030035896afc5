"""What the wrappers of the compiled parsers (msgtrace._core) share: the lines handed over as
Arrow string views without a copy, the returned Arrow buffers made a frame, wall times to UTC in
the context's zone (Polars' zone rules), the unknown lines, the constant columns of the events
table, and the syslog state carried between batches (under the keys the Polars envelope, tests/polars_syslog.py,
keeps, so a checkpoint reads the same whichever parser wrote it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from msgtrace.ingest.corebuffers import DataBuffer, frame, line_windows
from msgtrace.ingest.formats import Parsed, ParserFailed
from msgtrace.ingest.formats.context import ParseContext, organization_column
from msgtrace.ingest.schema import EVENT_SCHEMA, TIME, conform

_EPOCH = dt.datetime(1970, 1, 1)
_US = dt.timedelta(microseconds=1)


def parse(
    core: Callable[[bytes, list[DataBuffer], bytes, dict[str, Any]], dict[str, Any]],
    lines: pl.DataFrame,
    ctx: ParseContext,
    name: str,
    state_in: Callable[[ParseContext], dict],
    state_out: Callable[[ParseContext, dict], None],
) -> Parsed:
    """One batch through a compiled parser `core`: its input, the state carried in and out
    (state_in, state_out), and its output as events and unknown lines."""
    views, buffers = line_windows(lines.get_column("line"))
    try:
        out = core(views, buffers, line_numbers(lines), state_in(ctx))
    except ValueError as e:
        raise ParserFailed(str(e)) from None
    state_out(ctx, out)
    events = frame(out["columns"])
    unknown_rows = rows(out["unknown"])
    unknown = (
        lines.select("line_no", "line")[unknown_rows] if unknown_rows.len() else lines.select("line_no", "line").clear()
    )
    events = events.with_columns(utc_times(events, ctx))
    if events.get_column("time").null_count():
        # a wall time the zone skips by more than an hour (no instant reads it): no time, unknown
        lost = events.filter(pl.col("time").is_null()).get_column("line_no").unique()
        events = events.filter(pl.col("time").is_not_null())
        more = lines.select("line_no", "line").filter(pl.col("line_no").is_in(lost.implode()))
        unknown = pl.concat([unknown, more]).sort("line_no")
    return Parsed(events=finish(events.drop("_local", "_utc", "_second"), ctx, name), unknown=unknown)


def micros(value: object) -> int | None:
    """A naive datetime of the carried state as microseconds since the epoch (what Rust reads)."""
    return (value - _EPOCH) // _US if isinstance(value, dt.datetime) else None


def wall_time(us: int) -> dt.datetime:
    """The inverse of micros."""
    return _EPOCH + us * _US


def syslog_state_in(ctx: ParseContext) -> dict:
    """The syslog envelope's carried state (ctx.state["syslog"]: year inference, latest wall time)
    and the year or reference date, as the compiled parsers read them."""
    syslog = ctx.state.get("syslog", {})
    state = {
        "year": ctx.year,
        "last_month": syslog.get("last_month") or 0,
        "rollovers": syslog.get("rollovers", 0),
        "max_local": micros(syslog.get("max_local")),
    }
    if ctx.year is None:
        ref = ctx.reference_local()
        state.update(reference_year=ref.year, reference_ordinal=ref.month * 100 + ref.day + 1)
    return state


def syslog_state_out(ctx: ParseContext, out: dict) -> None:
    """The syslog envelope's state for the next batch, under the keys tests/polars_syslog.py keeps."""
    if ctx.year is not None:
        syslog = ctx.state.setdefault("syslog", {})
        if out["months_seen"]:
            syslog["last_month"], syslog["rollovers"] = out["last_month"], out["rollovers"]
    if ctx.timezone != "UTC":
        ctx.state.setdefault("syslog", {})
    if out["max_local"] is not None:
        ctx.state.setdefault("syslog", {})["max_local"] = wall_time(out["max_local"])


def wall_to_utc(local: pl.Expr, second_pass: pl.Expr, tz: str) -> pl.Expr:
    """Naive wall times in zone `tz` -> UTC: the later instant of a repeated hour where `second_pass`,
    else the earlier; a time in a skipped hour is read in the offset before the change."""
    earliest = local.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    latest = local.dt.replace_time_zone(tz, ambiguous="latest", non_existent="null")
    shifted = (local + pl.duration(hours=1)).dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    gap = shifted  # 02:30 in a skipped hour is 03:30 new offset, the same instant as 02:30 old offset
    value = pl.when(second_pass).then(latest).otherwise(earliest)
    return pl.coalesce(value, gap).dt.convert_time_zone("UTC")


def utc_times(events: pl.DataFrame, ctx: ParseContext) -> pl.Series:
    """Event times in UTC, as the column "time", from the Rust side's columns (_utc, _local,
    _second): as logged where the stamp names an offset, else the wall time in ctx.timezone.

    In a zone other than UTC the three zone lookups of wall_to_utc are paid per run of lines in
    the same wall-clock second (and pass), not per line: a zone's transitions fall on whole
    seconds, so within a second every wall time is read with the same offset (or none), and the
    line's time is its wall time plus the offset found for its second's start. A batch has some
    ten lines a second; its runs of one second are looked up, then each line takes its run's.
    """
    utc = events.get_column("_utc").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if utc.null_count() == 0:  # every stamp names its offset
        return utc.cast(TIME).alias("time")
    local = events.get_column("_local")
    if ctx.timezone == "UTC":
        wall = local.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    else:
        wall = _zone_wall_times(events, ctx.timezone)
    return (wall if utc.null_count() == utc.len() else utc.fill_null(wall)).cast(TIME).alias("time")


def _zone_wall_times(events: pl.DataFrame, tz: str) -> pl.Series:
    """The events' wall times (_local, _second) in zone `tz` as UTC instants, looked up per run of
    one wall-clock second (see utc_times); null where the zone skips the wall time."""
    local = events.get_column("_local")
    key = (local // 1_000_000) * 2 + events.get_column("_second").cast(pl.Int64)  # the second, and the pass
    runs = pl.DataFrame({"key": key.rle().struct.field("value")}).select(
        start=(pl.col("key") // 2) * 1_000_000, second=pl.col("key") % 2 == 1
    )
    read = runs.select(
        wall_to_utc(pl.col("start").cast(pl.Datetime("us")), pl.col("second"), tz).cast(pl.Int64) - pl.col("start")
    )
    offset = read.to_series().gather(key.rle_id())  # null where the zone skips the wall time
    return (local + offset).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def finish(events: pl.DataFrame, ctx: ParseContext, name: str) -> pl.DataFrame:
    """The events with organization, format and source, in EVENT_SCHEMA's order and types."""
    if not events.height:
        return conform(pl.DataFrame(schema=EVENT_SCHEMA), EVENT_SCHEMA)
    events = events.with_columns(
        organization_column(events.get_column("host"), ctx).alias("organization"),
        pl.lit(name).alias("format"),
        pl.lit(ctx.source).alias("source"),
    )
    return in_schema(events)


def in_schema(events: pl.DataFrame) -> pl.DataFrame:
    """The events in EVENT_SCHEMA's order and types: a plain select when the types are those
    already (the schema read once: each `.schema` builds it anew, 20 times cost more than the select)."""
    schema = events.schema
    if all(schema.get(c) == t for c, t in EVENT_SCHEMA.items()):
        return events.select(list(EVENT_SCHEMA))
    return conform(events, EVENT_SCHEMA)


def line_numbers(lines: pl.DataFrame) -> bytes:
    """The batch's line numbers as little-endian int64 bytes."""
    return lines.get_column("line_no").cast(pl.Int64).to_numpy().tobytes()


def rows(data: bytes) -> pl.Series:
    """Row numbers handed back as one int64 buffer (a log of foreign lines is all unknown: no list per line)."""
    return pl.Series("row", np.frombuffer(data, dtype=np.int64))
