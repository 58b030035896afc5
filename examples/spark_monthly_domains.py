"""A monthly report per recipient domain over a msgtrace store, as a Spark job.

    PYSPARK_PYTHON=$(command -v python) spark-submit examples/spark_monthly_domains.py \
        --store data/store --month 2026-06 [--out report.csv]

For each recipient domain: messages, recipient rows, and how many of those were Delivered,
Failed or still pending (Pending, GettingStatus). The rows are those `msgtrace trace` gives for
the month's window (UTC), each message once, read from that month's partitions only
(msgtrace.spark.message_rows). Prints the table; --out also writes it as CSV.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys


def month_window(text: str) -> tuple[str, str]:
    """The month's [start, end) as ISO dates, or ValueError."""
    first = dt.datetime.strptime(text, "%Y-%m").date()
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first.isoformat(), following.isoformat()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="the store (default $MSGTRACE_STORE, else data/store)")
    parser.add_argument("--month", required=True, help="the month, YYYY-MM (UTC)")
    parser.add_argument("--out", default=None, help="also write the report to this CSV file")
    args = parser.parse_args()
    try:
        start, end = month_window(args.month)
    except ValueError:
        print(f"Error: --month {args.month!r}: expected YYYY-MM, e.g. 2026-06", file=sys.stderr)
        return 2

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from msgtrace.errors import MsgtraceError
    from msgtrace.spark import message_rows

    spark = SparkSession.builder.appName("msgtrace monthly domains").getOrCreate()
    try:
        # max_age_days=0: a report may look back further than the 90 days a trace allows
        rows = message_rows(spark, args.store, start_date=start, end_date=end, timezone="UTC", max_age_days=0)
    except MsgtraceError as e:
        print(f"Error: {e}", file=sys.stderr)
        spark.stop()
        return 2
    status = F.col("status")
    report = (
        rows.withColumn("domain", F.coalesce(F.regexp_extract("recipient_lower", r"@([^@]+)$", 1), F.lit("")))
        .groupBy("domain")
        .agg(
            F.countDistinct("message_trace_id").alias("messages"),
            F.count(F.lit(1)).alias("recipients"),
            F.sum((status == "Delivered").cast("long")).alias("delivered"),
            F.sum((status == "Failed").cast("long")).alias("failed"),
            F.sum(status.isin("Pending", "GettingStatus").cast("long")).alias("pending"),
        )
        .orderBy(F.col("recipients").desc(), "domain")
    )
    result = report.collect()  # one row per domain: small
    spark.createDataFrame(result, report.schema).show(50, truncate=False)
    if args.out:
        with open(args.out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(report.columns)
            writer.writerows([list(r) for r in result])
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
