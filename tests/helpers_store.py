"""Build message stores for query tests: small hand-made ones and large synthetic ones."""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from pathlib import Path

import polars as pl

from msgtrace.ingest import schema
from msgtrace.store import Store
from msgtrace.store import files as store_files

UTC = dt.UTC
_HEX = dict(enumerate("0123456789abcdef"))


def utc(*args: int) -> dt.datetime:
    """A UTC datetime from year, month, day[, hour, minute, second, microsecond]."""
    return dt.datetime(*args, tzinfo=UTC)


def trace_id(received: dt.datetime, key: str = "") -> str:
    """A UUIDv7-layout GUID whose first 48 bits are received in Unix milliseconds."""
    ms = (received - utc(1970, 1, 1)) // dt.timedelta(milliseconds=1)
    rand = int.from_bytes(hashlib.sha256(f"{received.isoformat()}|{key}".encode()).digest()[:10], "big")
    rand_a = rand >> 68 & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def msg(
    received: dt.datetime,
    sender: str = "alice@example.com",
    recipient: str = "bob@example.org",
    **fields: object,
) -> dict[str, object]:
    """One message row with sensible defaults; any MESSAGE_SCHEMA column can be overridden."""
    row: dict[str, object] = {
        "organization": "example.com",
        "message_id": f"<{zlib.crc32(f'{received}|{sender}'.encode())}@mx.example.com>",
        "received": received,
        "sender_address": sender,
        "recipient_address": recipient,
        "subject": "Hello",
        "status": "Delivered",
        "to_ip": "203.0.113.7",
        "from_ip": "198.51.100.2",
        "size": 1234,
        "message_trace_id": trace_id(received, sender),
        "host": "mx1",
        "format": "postfix",
    }
    row.update(fields)
    row["sender_lower"] = None if row["sender_address"] is None else str(row["sender_address"]).lower()
    row["recipient_lower"] = None if row["recipient_address"] is None else str(row["recipient_address"]).lower()
    return row


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Rows as a MESSAGE_SCHEMA frame."""
    if not rows:
        return pl.DataFrame(schema=schema.MESSAGE_SCHEMA)
    names = list(schema.MESSAGE_SCHEMA)
    data = {c: [r.get(c) for r in rows] for c in names}
    return pl.DataFrame(data, schema=schema.MESSAGE_SCHEMA)


def write_store(store: Path, df: pl.DataFrame | list[dict[str, object]], complete: bool = True) -> Path:
    """Write rows into <store>/messages/date=.../ as one new file per day; returns the store."""
    if isinstance(df, list):
        df = frame(df)
    table = Store(store).messages
    table.dir.mkdir(parents=True, exist_ok=True)
    df = df.with_columns(pl.col("received").dt.date().alias("_day"))
    for (day,), part_df in df.partition_by("_day", as_dict=True).items():
        table.write(day, schema.conform(part_df.drop("_day"), schema.MESSAGE_SCHEMA), complete=complete)
    return store


def next_file(store: Path, table: str, day: dt.date, tag: str | None = None) -> Path:
    """The name the next append file of a day's partition gets: for tests that put a file of
    their own there (a damaged one, one written as older msgtrace versions did). `tag`: whose
    file it is ("" the default writer's); by default the writer of the partition's newest file."""
    t = Store(store).table(table)
    if tag is None:
        current = t.current_files(day)
        tag = store_files.owner(current[-1]) if current else ""
    return Path(store_files.next_file(t.fs, t.partition(day), False, tag))


def _hex(x: pl.Expr, digits: int) -> pl.Expr:
    nibbles = [
        ((x // (16 ** (digits - 1 - k))) % 16).replace_strict(_HEX, return_dtype=pl.String) for k in range(digits)
    ]
    return pl.concat_str(nibbles)


def synthetic(n: int, start: dt.datetime, days: int, seed: int = 0) -> pl.DataFrame:
    """n rows over `days` days from start: two recipients per message, pseudo-random fields."""
    step_us = days * 86_400_000_000 // max(n // 2, 1)
    m = pl.int_range(0, n, dtype=pl.Int64) // 2
    h = m.hash(seed)
    hr = pl.int_range(0, n, dtype=pl.Int64).hash(seed + 1)
    start_us = int((start - utc(1970, 1, 1)) / dt.timedelta(microseconds=1))
    received_us = pl.lit(start_us) + m * step_us + (h % max(step_us // 2, 1)).cast(pl.Int64)
    sender = pl.concat_str(
        [pl.lit("user"), (h % 5000).cast(pl.String), pl.lit("@dom"), (h % 200).cast(pl.String), pl.lit(".example")]
    )
    recipient = pl.concat_str(
        [pl.lit("rcpt"), (hr % 20000).cast(pl.String), pl.lit("@Dest"), (hr % 50).cast(pl.String), pl.lit(".test")]
    )
    ms = received_us // 1000
    tid = pl.concat_str(
        [
            _hex(ms // 65536, 8),
            pl.lit("-"),
            _hex(ms % 65536, 4),
            pl.lit("-7"),
            _hex(h % 4096, 3),
            pl.lit("-"),
            _hex(8 + h % 4, 1),
            _hex((h // 4) % 4096, 3),
            pl.lit("-"),
            _hex((h // 65536) % (16**12), 12),
        ]
    )
    ip = pl.concat_str(
        [pl.lit("10."), (h % 250).cast(pl.String), pl.lit("."), (hr % 250).cast(pl.String), pl.lit(".1")]
    )
    statuses = dict(enumerate(schema.STATUSES))
    df = pl.select(
        organization=pl.lit("example.com"),
        message_id=pl.concat_str([pl.lit("<"), m.cast(pl.String), pl.lit("@mx.example.com>")]),
        received=received_us.cast(pl.Datetime("us", "UTC")),
        sender_address=sender,
        recipient_address=recipient,
        subject=pl.concat_str([pl.lit("Report "), (h % 1000).cast(pl.String)]),
        status=(hr % 8).replace_strict(statuses, return_dtype=pl.String),
        to_ip=ip,
        from_ip=ip,
        size=(h % 100_000).cast(pl.Int64),
        message_trace_id=tid,
        sender_lower=sender,
        recipient_lower=recipient.str.to_lowercase(),
    )
    return schema.conform(df, schema.MESSAGE_SCHEMA)
