"""Files inside a partition: which are current, how new ones are named, their footers, how they are written.

A partition directory holds immutable files named ``g<generation>-<kind>.parquet``:

- ``g000007-a``: appends rows; its Parquet key-value metadata may carry ``msgtrace.deletes``,
  the MessageTraceIds whose rows in files of *lower* generations are superseded (a message whose
  state changed is re-written whole in this file, and its old rows are dropped in the same
  atomic step: one rename);
- ``g000009-r000005``: replaces the files of generations 5 to 8 (read, no longer written);
- ``g000012-c``: holds every current row as of its generation, deletes applied: replaces
  everything below it (compaction).

Many writers share a partition: each writer's files carry its tag, ``g000007-a.mx2.parquet``,
and form a group of their own (generations, deletes and compaction never cross groups: a
writer's messages are its own MTA's). Files without a tag are the group of the store's default
writer, the one that wrote the store before writers had names (msgtrace.store.table.Store).

Every messages file also records its rows per status (``msgtrace.status_counts``, JSON), so a
count by status over whole days sums file footers (query.summary); a file without the key
is counted by reading its rows.

A reader keeps every file that no newer file replaces. A rewrite writes its new file first
and deletes the replaced ones after, so a query that lists the directory at any instant sees
every row exactly once, and a crash between the two steps leaves only garbage that the next
write removes. Generations only grow; one process per writer (msgtrace.store.lock).

This is the store's protocol: only msgtrace.store.table (the `Table` that owns a table's files)
uses it; everything else reads and writes through `Store` / `Table` (tests/test_store_boundary.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import PurePath  # a local Path or an ObjectPath (msgtrace.storepath)

import polars as pl

from msgtrace.ingest.schema import MESSAGE_SCHEMA, PARTITION_KEY
from msgtrace.ingest.terminal import neutralize
from msgtrace.store.fs import FileSystem

DELETES_KEY = "msgtrace.deletes"
ROW_GROUP_SIZE = 256_000  # rows: a day's sender lookup reads a few groups, statistics prune the rest
# Messages files only: {status: rows} of the rows in the file itself (deletes not applied), so a
# count by status over whole days reads file footers instead of rows (query.summary).
STATUS_COUNTS_KEY = "msgtrace.status_counts"
_FILE = re.compile(r"^g(\d{6,})-(a|c|r(\d{6,}))(?:\.([A-Za-z0-9][A-Za-z0-9._-]*))?\.parquet$")
# a writer's name: its tag in file names and its folder of state (a host name fits)
WRITER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def partition_dir(table_dir: PurePath, day: dt.date) -> PurePath:
    """The directory of one day's partition."""
    return table_dir / f"{PARTITION_KEY}={day.isoformat()}"


def partition_days(fs: FileSystem, table_dir: PurePath) -> list[dt.date]:
    """Every day that has a partition directory, sorted."""
    days = []
    for name in fs.list_dirs(table_dir):
        if name.startswith(PARTITION_KEY + "="):
            try:
                days.append(dt.date.fromisoformat(name.split("=", 1)[1]))
            except ValueError:
                continue
    return sorted(days)


Generations = dict[str, list[tuple[int, int, PurePath]]]


def _generations(fs: FileSystem, part: PurePath, tag: str | None = None) -> Generations:
    """Per writer's tag ("" for untagged files): (generation, lowest generation it replaces, path),
    oldest first; `-a` files replace nothing. `tag`: that writer's files only."""
    out: Generations = {}
    for name in fs.list(part):
        m = _FILE.match(name)
        if m and (tag is None or (m.group(4) or "") == tag):
            gen = int(m.group(1))
            kind = m.group(2)
            low = gen if kind == "a" else (0 if kind == "c" else int(m.group(3)))
            out.setdefault(m.group(4) or "", []).append((gen, low, part / name))
    for gens in out.values():
        gens.sort()
    return out


def owner(path: PurePath) -> str:
    """The tag of the writer whose file this is ("" for an untagged file)."""
    m = _FILE.match(path.name)
    if not m:
        raise ValueError(f"not a partition file: {path}")
    return m.group(4) or ""


def current_files(fs: FileSystem, part: PurePath, tag: str | None = None) -> list[PurePath]:
    """The files a reader must scan: those no newer file of their writer replaces; each writer's
    oldest first (writers in name order). `tag`: that writer's files only."""
    groups = _generations(fs, part, tag)
    return [p for t in sorted(groups) for p in _current(groups[t])]


def _current(gens: list[tuple[int, int, PurePath]]) -> list[PurePath]:
    current: list[PurePath] = []
    covered_from = None  # generations >= this (and below the replacing file) are replaced
    for gen, low, path in reversed(gens):
        if covered_from is not None and gen >= covered_from:
            continue
        current.append(path)
        if low < gen:
            covered_from = low if covered_from is None else min(covered_from, low)
    return current[::-1]


def superseded_files(fs: FileSystem, part: PurePath, tag: str) -> list[PurePath]:
    """One writer's files that a newer file of its own made obsolete (safe for it to delete)."""
    gens = _generations(fs, part, tag).get(tag, [])
    current = set(_current(gens))
    return [p for _, _, p in gens if p not in current]


def next_file(fs: FileSystem, part: PurePath, complete: bool, tag: str) -> PurePath:
    """The name for a writer's next file in this partition: an append or a complete file."""
    gens = _generations(fs, part, tag).get(tag, [])
    gen = gens[-1][0] + 1 if gens else 1
    suffix = f".{tag}" if tag else ""
    return part / f"g{gen:06d}-{'c' if complete else 'a'}{suffix}.parquet"


def generation(path: PurePath) -> int:
    """The generation number in a partition file's name."""
    m = _FILE.match(path.name)
    if not m:
        raise ValueError(f"not a partition file: {path}")
    return int(m.group(1))


def metadata_of(fs: FileSystem, path: PurePath) -> dict[str, str]:
    """A Parquet file's key-value metadata (its footer only)."""
    return pl.read_parquet_metadata(fs.uri(path), storage_options=fs.storage_options())


def deletes_of(fs: FileSystem, path: PurePath, metadata: dict[str, str] | None = None) -> list[str]:
    """The MessageTraceIds an append file supersedes in older files of its writer (none for other files).

    `metadata`: the file's key-value metadata when the caller has already read it.
    """
    m = _FILE.match(path.name)
    if not m or m.group(2) != "a":
        return []
    text = (metadata if metadata is not None else metadata_of(fs, path)).get(DELETES_KEY, "")
    return text.split() if text else []


def status_counts_metadata(counts: pl.DataFrame) -> dict[str, str]:
    """The key-value metadata that records a messages file's row count per status.

    `counts` has one row per status: the columns `status` and `len`, as `rows.group_by("status").len()`
    gives. The messages table's writer adds it by itself; a file written piece by piece needs the
    counts before its first piece, since they go in the schema's metadata (see the messages
    compaction in msgtrace.store.table).

    Returns {} (no key: readers count the file's rows instead) when a status is null, because
    a JSON object cannot have a null key.
    """
    pairs = dict(zip(counts.get_column("status").to_list(), counts.get_column("len").to_list(), strict=True))
    if None in pairs:
        return {}
    return {STATUS_COUNTS_KEY: json.dumps({k: int(v) for k, v in pairs.items()}, separators=(",", ":"), sort_keys=True)}


def status_counts_of(metadata: dict[str, str]) -> dict[str, int] | None:
    """The per-status row counts recorded in a file's metadata; None when absent or malformed."""
    text = metadata.get(STATUS_COUNTS_KEY)
    if text is None:
        return None
    try:
        counts = json.loads(text)
    except ValueError:
        return None
    if not isinstance(counts, dict) or not all(type(n) is int and n >= 0 for n in counts.values()):
        return None
    return counts


def by_writer(files: list[PurePath]) -> list[list[PurePath]]:
    """Files grouped by (partition, writer), each group oldest first: deletes and replacement
    work inside a group only."""
    groups: dict[tuple[PurePath, str], list[PurePath]] = {}
    for f in files:
        groups.setdefault((f.parent, owner(f)), []).append(f)
    return [sorted(g, key=generation) for g in groups.values()]


def supersedes_rows(fs: FileSystem, files: list[PurePath]) -> bool:
    """Whether some of a partition's current files drop rows of older ones: readers then filter,
    and footer row counts overstate what a query sees. A writer's oldest current file's deletes
    hit nothing current."""
    return any(deletes_of(fs, f) for group in by_writer(files) for f in group[1:])


def superseded_ids(
    fs: FileSystem, files: list[PurePath], deletes: Callable[[PurePath], list[str]] | None = None
) -> dict[PurePath, set[str]]:
    """For each current file, the MessageTraceIds whose rows in it newer files of its partition and
    writer supersede (empty for most files; always empty for a writer's newest file).

    `deletes`: how to read a file's deletes (default deletes_of: its footer)."""
    read = deletes or (lambda f: deletes_of(fs, f))
    out: dict[PurePath, set[str]] = {}
    for group in by_writer(files):
        newer: set[str] = set()
        for f in reversed(group):
            out[f] = set(newer)
            newer.update(read(f))
    return {f: out[f] for f in files}


def scan_files(
    fs: FileSystem, files: list[PurePath], schema: dict[str, pl.DataType], deletes: bool = True, **scan_options: object
) -> pl.LazyFrame:
    """A lazy scan of current partition files with superseded rows dropped.

    A file's rows are dropped when a newer file of its partition lists their MessageTraceId in
    its deletes, so readers see each message once, whether or not the partition is compacted.
    Files without such deletes (the usual case after compaction) are scanned together.
    `deletes=False`: the table never writes deletes (events), so no footer is read for them.
    """
    options = {"schema": schema, "hive_partitioning": False, "storage_options": fs.storage_options(), **scan_options}
    plain: list[PurePath] = []
    filtered: list[pl.LazyFrame] = []
    for f, gone in superseded_ids(fs, files).items() if deletes else ((f, set()) for f in files):
        if gone:
            lf = pl.scan_parquet(fs.uri(f), **options)  # type: ignore[arg-type]
            filtered.append(lf.filter(~pl.col("message_trace_id").is_in(sorted(gone))))
        else:
            plain.append(f)
    parts = [pl.scan_parquet([fs.uri(f) for f in plain], **options)] if plain else []  # type: ignore[arg-type]
    parts += filtered
    if not parts:
        return pl.LazyFrame(schema=schema)
    return parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")


def footer_problem(fs: FileSystem, path: PurePath) -> str | None:
    """Why a Parquet file's footer cannot be read (one neutralised line), or None when it can."""
    try:
        if fs.size(path) == 0:
            return "empty file"
        metadata_of(fs, path)
    except (FileNotFoundError, PermissionError):
        return None  # replaced by a compaction meanwhile, or not ours to read: not damage
    except (OSError, pl.exceptions.PolarsError, ValueError) as e:
        return one_line_reason(e)
    return None


def read_problem(fs: FileSystem, path: PurePath, schema: dict[str, pl.DataType]) -> str | None:
    """Why a Parquet file cannot be read whole (footer or pages), or None: the thorough check."""
    problem = footer_problem(fs, path)
    if problem is not None:
        return problem
    try:
        pl.scan_parquet(
            fs.uri(path), schema=schema, hive_partitioning=False, storage_options=fs.storage_options()
        ).collect()
    except FileNotFoundError:
        return None
    except (OSError, pl.exceptions.PolarsError, ValueError) as e:
        return one_line_reason(e)
    return None


def one_line_reason(e: BaseException) -> str:
    """An error's first line without the library's prefixes, control characters escaped."""
    lines = str(e).strip().splitlines() or [type(e).__name__]
    text = lines[0].removeprefix("parquet: ").removeprefix("File out of specification: ")
    return neutralize(text)[:200]


def footer_rows(fs: FileSystem, path: PurePath) -> int:
    """A file's row count from its footer alone."""
    if fs.is_local:
        import pyarrow.parquet as pq  # here, not at the top: `msgtrace trace` never needs it

        return pq.read_metadata(fs.uri(path)).num_rows
    lf = pl.scan_parquet(fs.uri(path), storage_options=fs.storage_options(), hive_partitioning=False)
    return int(lf.select(pl.len()).collect().item())  # Polars answers a count from the footer


class ParquetFileWriter:
    """One Parquet file written by pyarrow from frames of one schema, a row group at a time, its
    key-value metadata given at the end (a streaming writer records there what it has counted).

    Frames go to pyarrow as Arrow string views, as Polars holds them: converting them to the large
    strings of Polars' default Arrow export copied every string (35 ms of the 135 ms that writing a
    flush's 237,000 events costs; 45 of 270 for a day's 181,000 message rows) for the same Parquet
    pages. The Arrow schema is not stored in the footer: it would name those views to other Arrow
    readers, and the Parquet types say all there is (UTF-8 strings, UTC microsecond times).
    """

    def __init__(self, where: str | PurePath, schema: dict[str, pl.DataType], options: dict[str, object]) -> None:
        import pyarrow.parquet as pq  # here, not at the top: `msgtrace trace` never writes

        self._schema = pl.DataFrame(schema=schema).to_arrow(compat_level=pl.CompatLevel.newest()).schema
        self._writer = pq.ParquetWriter(str(where), self._schema, store_schema=False, **options)

    def write(self, df: pl.DataFrame) -> None:
        """Add rows (the schema's columns, in order): row groups of up to ROW_GROUP_SIZE rows."""
        self._writer.write_table(df.to_arrow(compat_level=pl.CompatLevel.newest()), row_group_size=ROW_GROUP_SIZE)

    def close(self, metadata: dict[str, str] | None = None) -> None:
        """Finish the file (its footer), with this key-value metadata."""
        if metadata:
            self._writer.add_key_value_metadata(metadata)
        self._writer.close()


def write_with_pyarrow(
    fs: FileSystem, df: pl.DataFrame, path: PurePath, metadata: dict[str, str], options: dict[str, object]
) -> None:
    """Write df (already in its table's schema and column order) atomically with pyarrow's writer
    and these options (EVENT_OPTIONS, MESSAGE_OPTIONS)."""
    with fs.atomic_path(path, ".parquet") as tmp:
        writer = ParquetFileWriter(tmp, dict(df.schema), options)
        try:
            writer.write(df)
        finally:
            writer.close(metadata)


def write_with_polars(fs: FileSystem, df: pl.DataFrame, path: PurePath, metadata: dict[str, str]) -> None:
    """Write df atomically with Polars' writer (zstd, statistics)."""
    with fs.atomic_path(path, ".parquet") as tmp:
        df.write_parquet(
            tmp, compression="zstd", row_group_size=ROW_GROUP_SIZE, statistics=True, metadata=metadata or None
        )


# Events files (appends and compactions), written by pyarrow (Polars' writer has no per-column options). bench/events_write.py
# measured the choice on the 1.54 M events of 2 M generated Postfix lines: 1.34 CPU-s to write
# instead of 2.12 (Polars, zstd, every statistic and dictionary), 21.6 MB instead of 24.2, and
# no query that reads events slower. Dictionaries only where values repeat: building one for
# near-unique columns (detail, message_id, queue ids, sizes, delays) costs hashing and ends in
# the plain fallback anyway. Statistics only on the columns readers filter on (time, host, queue
# ids, source, kind, status...): min/max of free text prunes nothing. Times and line numbers
# grow within a file: delta-encoded, smaller than plain.
EVENT_DICTIONARY = [
    "host", "organization", "format", "program", "kind", "status", "sender", "recipient", "orig_recipient",
    "subject", "client_host", "client_ip", "relay", "to_ip", "nrcpt", "dsn", "source",
]  # fmt: skip
EVENT_STATISTICS = [
    "time", "host", "organization", "format", "program", "queue_id", "kind", "status", "next_queue_id", "source",
    "line_no",
]  # fmt: skip
EVENT_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "use_dictionary": EVENT_DICTIONARY,
    "write_statistics": EVENT_STATISTICS,
    "column_encoding": {"time": "DELTA_BINARY_PACKED", "line_no": "DELTA_BINARY_PACKED"},
}


# Message rows are what every trace reads: pyarrow's files answer a filtered scan ~25% faster in
# Polars than Polars' own (measured: 30 days + recipient, 107 vs 172 ms over 8 days), so they are
# worth its slower write. Chosen as for the events (a day's 181,000 rows of 2 M generated Postfix
# lines): dictionaries only where values repeat (not ids, queue ids, sizes, times or the reason
# text: hashing them ends in the plain fallback), statistics only on the columns a trace, detail,
# follow or report filters on: 190 instead of 215 ms to write, 9.0 MB instead of 10.1. Received is
# plain, not delta-encoded: decoding the deltas made `msgtrace report` over 10 M Postfix lines'
# rows 10% slower (1.48 against 1.35 s in process, best of 3, interleaved) for no smaller store
# (79 MB either way) and no faster trace.
MESSAGE_PLAIN = ["message_id", "received", "size", "message_trace_id", "queue_id", "queue_ids", "detail", "last_event"]
MESSAGE_STATISTICS = [
    "organization", "message_id", "received", "sender_lower", "recipient_lower", "subject", "status", "to_ip",
    "from_ip", "message_trace_id", "host", "queue_id",
]  # fmt: skip

MESSAGE_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "use_dictionary": [c for c in MESSAGE_SCHEMA if c not in MESSAGE_PLAIN],
    "write_statistics": MESSAGE_STATISTICS,
}


# State frames (the open events) are rewritten at every flush and always read whole, so a cheap
# codec pays and statistics prune nothing (bench/events_write.py, the 2 M-line store's open
# events: lz4 16-21 instead of zstd's 28-40 ms CPU to write, no slower to read). pyarrow's writer,
# not Polars': the open events of a 2 M-line Exchange log (84,000 events) took 43 instead of
# 65-89 ms CPU to write at each of its ~20 flushes, the same 2.2 MB, and read back no slower.
STATE_OPTIONS: dict[str, object] = {"compression": "lz4", "use_dictionary": True, "write_statistics": False}


def write_state(fs: FileSystem, df: pl.DataFrame, path: PurePath) -> None:
    """Write a state frame (already in its schema, its columns in order) atomically."""
    write_with_pyarrow(fs, df, path, {}, STATE_OPTIONS)


_DUCKDB_TYPES = {pl.String: "VARCHAR", pl.Int64: "BIGINT", pl.Float64: "DOUBLE", pl.Boolean: "BOOLEAN"}


def duckdb_view(name: str, table_dir: PurePath, schema: dict[str, pl.DataType], deletes: bool = True) -> str:
    """`CREATE OR REPLACE VIEW name AS ...`: this protocol in DuckDB's SQL, for readers of the store
    outside msgtrace (msgtrace.duckdb).

    The view lists the partitions each time it is read, so it follows new files, compactions and
    deletes like a msgtrace reader: a file is current unless a newer `-c` (or `-r`) file of its
    partition and writer replaces it (legacy `-r` files are taken one level deep: writers no longer
    make them), and a row is dropped when a newer current file of its partition and writer lists its
    MessageTraceId in `msgtrace.deletes`. It adds `date`, the partition's UTC day, so a filter on
    it opens only those days' files.
    """
    root = str(table_dir).replace("'", "''")
    glob = f"'{root}/{PARTITION_KEY}=*/g*.parquet'"
    # generation, kind and writer tag (empty: the default writer's untagged files), as _FILE
    name_re = "'g([0-9]{6,})-(a|c|r[0-9]{6,})(?:\\.([A-Za-z0-9][A-Za-z0-9._-]*))?\\.parquet$'"
    columns = ",\n  ".join(
        f"CAST(m.{c} AS {'TIMESTAMPTZ' if isinstance(t, pl.Datetime) else _DUCKDB_TYPES[t.base_type()]}) AS {c}"
        for c, t in schema.items()
    )
    gone = (
        f"""gone AS (
  SELECT l.file, unnest(string_split(decode(d.value), ' ')) AS id
  FROM live l JOIN live n ON n.part = l.part AND n.writer = l.writer AND n.gen > l.gen
  JOIN parquet_kv_metadata({glob}) d ON d.file_name = n.file AND decode(d.key) = '{DELETES_KEY}'
  WHERE n.kind = 'a'
)"""
        if deletes
        else "gone AS (SELECT NULL::VARCHAR AS file, NULL::VARCHAR AS id WHERE false)"
    )
    return f"""CREATE OR REPLACE VIEW {name} AS
WITH named AS (
  SELECT file,
    regexp_replace(file, '[/\\\\][^/\\\\]*$', '') AS part,
    CAST(regexp_extract(file, {name_re}, 1) AS BIGINT) AS gen,
    regexp_extract(file, {name_re}, 2) AS kind,
    regexp_extract(file, {name_re}, 3) AS writer
  FROM glob({glob})
  WHERE regexp_matches(file, {name_re})
), spans AS (
  SELECT *, CASE kind WHEN 'a' THEN gen WHEN 'c' THEN 0 ELSE CAST(substr(kind, 2) AS BIGINT) END AS low FROM named
), live AS (
  SELECT s.* FROM spans s
  WHERE NOT EXISTS (
    SELECT 1 FROM spans n WHERE n.part = s.part AND n.writer = s.writer AND n.low <= s.gen AND s.gen < n.gen
  )
), {gone}
SELECT
  {columns},
  m.{PARTITION_KEY}
FROM read_parquet({glob}, filename = true, hive_partitioning = true, union_by_name = true) m
WHERE m.filename IN (SELECT file FROM live)
  AND NOT EXISTS (SELECT 1 FROM gone g WHERE g.file = m.filename AND g.id = m.message_trace_id)
"""
