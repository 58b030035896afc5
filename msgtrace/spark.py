"""The trace over a store as Spark DataFrames: `msgtrace trace` for a cluster (`pip install msgtrace[spark]`).

    from pyspark.sql import SparkSession
    from msgtrace.spark import message_rows, message_trace, status_counts
    spark = SparkSession.builder.getOrCreate()
    df = message_trace(spark, "data/store", sender_address="*@contoso.com", start_date="2026-06-13")
    month = message_rows(spark, "data/store", start_date="2026-06-01", end_date="2026-07-01", max_age_days=0)

The parameters are those of msgtrace.api (message_trace, message_trace_lazy, status_counts), each
validated by the same code (a bad one raises the same QueryError). The store tells which files
the window's days hold and which of their rows newer files supersede (Store.messages.live_files),
so Spark reads only those files and sees each message once. The filters, Direction and the
order are the Polars ones (msgtrace.query.filters, msgtrace.query.direction, msgtrace.query.engine)
written as Spark columns; tests/test_spark.py checks that the rows are the same.

One difference: the 1,000,000-row limit of one query does not apply (it protects the memory of one
process; a Spark frame is computed by the cluster). `follow=True` is the exception: its
end-to-end rows are computed by the library on the driver (msgtrace.query.follow) and handed to
Spark, so they are exactly the CLI's but one machine's work.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from msgtrace.api import StoreLike

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from msgtrace.query.filters import TraceFilter
    from msgtrace.query.paging import Paging

__all__ = ["message_rows", "message_trace", "spark_schema", "status_counts"]

_PAGING = ("page", "page_size", "result_size")


def message_trace(spark: SparkSession, store: StoreLike = None, **params: Any) -> DataFrame:
    """The rows `msgtrace trace` gives (msgtrace.api.message_trace's parameters): the contract's
    columns, StartDate, EndDate, Index and Direction, newest first; a V1 page or a V2 cursor page
    when paging parameters are given, else every row."""
    from pyspark.sql import functions as F

    from msgtrace.query.paging import Paging

    paging_args = {k: params.pop(k, None) for k in _PAGING}
    flt = _filter(params)
    paging = Paging.from_params(**paging_args, starting_recipient_address=flt.starting_recipient, default="all")
    rows = _filtered(spark, store, flt)
    order = _order()
    if paging.mode == "v1":
        rows = rows.orderBy(*order).offset(paging.offset).limit(paging.page_size)
    elif paging.mode == "v2":
        rows = _cursor_page(rows, paging)
    return _contract(rows, flt, paging).orderBy(F.col("Index"))


def message_rows(spark: SparkSession, store: StoreLike = None, **params: Any) -> DataFrame:
    """Every stored column (snake case, as msgtrace.api.message_trace_lazy) plus `direction` of the
    rows that pass the filters, unsorted and unpaged: what a batch job aggregates."""
    return _filtered(spark, store, _filter(params))


def status_counts(spark: SparkSession, store: StoreLike = None, **params: Any) -> DataFrame:
    """`msgtrace summary` (msgtrace.api.status_counts): Status and Count of the rows message_trace
    would return, statuses present only, in the contract's order."""
    from pyspark.sql import functions as F

    from msgtrace.ingest.schema import STATUSES

    counts = _filtered(spark, store, _filter(params)).groupBy("status").count()
    rank = F.array_position(F.array(*[F.lit(s) for s in STATUSES]), F.col("status"))
    known = F.when(rank > 0, rank).otherwise(F.lit(len(STATUSES) + 1))
    return (
        counts.orderBy(F.col("status").isNull(), known, F.col("status"))
        .select(F.col("status").alias("Status"), F.col("count").alias("Count"))
        .coalesce(1)
    )


def spark_schema() -> Any:
    """MESSAGE_SCHEMA as a Spark StructType (the explicit schema every read uses)."""
    import polars as pl
    from pyspark.sql import types as T

    from msgtrace.ingest.schema import MESSAGE_SCHEMA

    kinds = {pl.String: T.StringType(), pl.Int64: T.LongType(), pl.Float64: T.DoubleType(), pl.Boolean: T.BooleanType()}
    return T.StructType(
        [
            T.StructField(c, T.TimestampType() if isinstance(t, pl.Datetime) else kinds[t.base_type()], True)
            for c, t in MESSAGE_SCHEMA.items()
        ]
    )


# ---- reading --------------------------------------------------------------------------------


def _filter(params: dict[str, Any]) -> TraceFilter:
    """The library's own validation (msgtrace.api): the same parameters, the same errors."""
    from msgtrace.query.filters import TraceFilter

    return TraceFilter.from_params(**params)


def _filtered(spark: SparkSession, store: StoreLike, flt: TraceFilter) -> DataFrame:
    from msgtrace.query.direction import store_local_domains
    from msgtrace.query.engine import needed_days, resolve_store
    from msgtrace.store import Store

    root = resolve_store(store)
    if flt.follow:
        return _followed(spark, root, flt)
    table = Store(root).messages
    rows = _read(spark, table.live_files(needed_days(table, flt)))
    rows = rows.filter(_expr(flt)).withColumn("direction", _direction(store_local_domains(root)))
    if flt.directions:
        rows = rows.filter(rows["direction"].isin(list(flt.directions)))
    return rows


def _followed(spark: SparkSession, root: Path, flt: TraceFilter) -> DataFrame:
    """follow=True: the end-to-end rows computed by the library on the driver (query.follow: the
    rows `msgtrace trace --follow` gives, from the window's files and the hours around them), as
    a Spark DataFrame: one machine's work, as for the CLI, whatever the cluster."""
    import pyarrow as pa
    from pyspark.sql import types as T

    from msgtrace.query.engine import filtered, needed_files, reading
    from msgtrace.store import Store

    table = Store(root).messages
    rows = reading(root, lambda: filtered(root, needed_files(table, flt), flt).collect())
    arrow = rows.to_arrow()
    # Polars hands strings over as large or view strings; Spark's Arrow reader takes plain ones
    text = (pa.types.is_large_string, pa.types.is_string_view)
    arrow = arrow.cast(
        pa.schema([pa.field(f.name, pa.string() if any(t(f.type) for t in text) else f.type) for f in arrow.schema])
    )
    schema = T.StructType([*spark_schema().fields, T.StructField("direction", T.StringType(), True)])
    return spark.createDataFrame(arrow, schema=schema)


def _read(spark: SparkSession, live: list[tuple[PurePath, frozenset[str]]]) -> DataFrame:
    """The rows of these files in the store's schema, each file's superseded rows dropped."""
    from pyspark.sql import functions as F

    schema = spark_schema()
    names = schema.fieldNames()

    def read(paths: list[PurePath]) -> DataFrame:
        # the schema's columns only: Spark would add the `date=` of the paths as a column
        return spark.read.schema(schema).parquet(*[str(p) for p in paths]).select(*names)

    plain = [f for f, gone in live if not gone]
    parts = [read(plain)] if plain else []
    parts += [read([f]).filter(~F.col("message_trace_id").isin(sorted(gone))) for f, gone in live if gone]
    if not parts:
        return spark.createDataFrame([], schema)
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


# ---- the filters, Direction and the order, as query.filters / query.direction / query.engine ----


def _expr(flt: TraceFilter) -> Column:
    from pyspark.sql import functions as F

    received = F.col("received")
    window = (received >= F.lit(flt.start)) & (received < F.lit(flt.end))
    if flt.starting_recipient is not None:
        after = (received == F.lit(flt.end)) & (
            F.coalesce(F.col("recipient_address"), F.lit("")) > flt.starting_recipient
        )
        window = (received >= F.lit(flt.start)) & ((received < F.lit(flt.end)) | after)
    e = window
    if flt.message_trace_id:
        e &= F.col("message_trace_id") == flt.message_trace_id
    if flt.senders:
        e &= _address_match(F.col("sender_lower"), flt.senders)
    if flt.recipients:
        e &= _address_match(F.col("recipient_lower"), flt.recipients)
    if flt.message_ids:
        e &= F.col("message_id").isin(list(flt.message_ids))
    if flt.statuses:
        e &= F.col("status").isin(list(flt.statuses))
    if flt.from_ip:
        e &= _ip_match(F.col("from_ip"), flt.from_ip)
    if flt.to_ip:
        e &= _ip_match(F.col("to_ip"), flt.to_ip)
    if flt.subject:
        low, s = F.lower(F.col("subject")), flt.subject.lower()
        kind = flt.subject_filter_type
        e &= low.startswith(s) if kind == "StartsWith" else low.endswith(s) if kind == "EndsWith" else low.contains(s)
    return e


def _address_match(col: Column, patterns: tuple[str, ...]) -> Column:
    """query.filters.address_match: exact addresses and leading/trailing `*` wildcards."""
    from pyspark.sql import functions as F

    exact = [p for p in patterns if "*" not in p]
    parts: list[Column] = [col.isin(exact)] if exact else []
    for p in patterns:
        if p.strip("*") == "" and "*" in p:
            return F.lit(True)
        if p.startswith("*") and p.endswith("*"):
            parts.append(col.contains(p.strip("*")))
        elif p.startswith("*"):
            parts.append(col.endswith(p[1:]))
        elif p.endswith("*"):
            parts.append(col.startswith(p[:-1]))
    expr = parts[0]
    for part in parts[1:]:
        expr = expr | part
    return expr


def _ip_match(col: Column, ip: str) -> Column:
    """query.filters.ip_match: IPv4 also as ::ffff:a.b.c.d; IPv6 in any notation."""
    from pyspark.sql import functions as F

    from msgtrace.query.filters import ipv6_forms

    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return col.isin([ip, "::ffff:" + ip])
    text = F.regexp_replace(F.regexp_replace(F.lower(col), "^ipv6:", ""), "(^|:)0+([0-9a-f])", "$1$2")
    return text.isin(ipv6_forms(addr))


def _direction(local_domains: tuple[str, ...]) -> Column:
    """query.direction.direction_expr (each row's Organization stands for the local domains when
    the store has none)."""
    from pyspark.sql import functions as F

    def blank(c: str) -> Column:
        return F.col(c).isNull() | (F.col(c) == "")

    def local(c: str) -> Column:
        domains = sorted({d.strip().lower() for d in local_domains if d.strip()})
        if domains:
            test = F.lit(False)
            for d in domains:
                test = test | F.col(c).endswith("@" + d)
        else:
            test = F.col(c).endswith(F.concat(F.lit("@"), F.lower(F.col("organization"))))
        return F.coalesce(test, F.lit(False))

    delivered_here = (F.col("status") == "Delivered") & blank("to_ip") & ~blank("relay")
    from_here = (
        blank("from_ip") | F.col("from_ip").startswith("127.") | F.col("from_ip").isin("::1", "::ffff:127.0.0.1")
    )
    sender, recipient = local("sender_lower") | from_here, local("recipient_lower") | delivered_here
    return F.when(sender & recipient, "Local").when(sender, "Outbound").otherwise("Inbound")


def _order() -> list[Column]:
    """query.engine's order: Received descending, then RecipientAddress, then MessageTraceId."""
    from pyspark.sql import functions as F

    return [
        F.col("received").desc(),
        F.coalesce(F.col("recipient_address"), F.lit("")).asc(),
        F.coalesce(F.col("message_trace_id"), F.lit("")).asc(),
    ]


def _cursor_page(rows: DataFrame, paging: Paging) -> DataFrame:
    """The V2 page (query.engine._cursor_page): the first result_size rows, and every further row
    sharing (Received, RecipientAddress) with the last of them, so the cursor never splits a tie."""
    from pyspark.sql import functions as F

    rcpt = F.coalesce(F.col("recipient_address"), F.lit(""))
    head = rows.orderBy(*_order()).limit(paging.result_size)
    last = head.orderBy(F.col("received").asc(), rcpt.desc()).limit(1).select("received", rcpt.alias("_rcpt"))
    tied = rows.withColumn("_rcpt", rcpt).join(F.broadcast(last), ["received", "_rcpt"]).drop("_rcpt")
    return head.unionByName(tied).dropDuplicates(["message_trace_id", "recipient_address"])


def _contract(rows: DataFrame, flt: TraceFilter, paging: Paging) -> DataFrame:
    """query.engine.contract_frame: contract columns, absent strings "" (an unknown sender stays
    null), the window echoed, Index in the order (from the page's offset), Direction."""
    import polars as pl
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from msgtrace.ingest.schema import CONTRACT_COLUMNS, MESSAGE_SCHEMA

    cols = []
    for c, name in CONTRACT_COLUMNS.items():
        text = MESSAGE_SCHEMA[c] == pl.String and c != "sender_address"
        cols.append((F.coalesce(F.col(c), F.lit("")) if text else F.col(c)).alias(name))
    index = F.row_number().over(Window.orderBy(*_order())) - 1 + F.lit(paging.offset)
    return rows.select(
        *cols,
        F.lit(flt.start).cast(T.TimestampType()).alias("StartDate"),
        F.lit(flt.end).cast(T.TimestampType()).alias("EndDate"),
        index.cast(T.LongType()).alias("Index"),
        F.col("direction").alias("Direction"),
    )
