"""msgtrace.spark in Spark local mode: the same rows as `msgtrace trace` (msgtrace.api) for
representative queries, the same errors, only the window's files read, and the spark-submit
example. Slow: a JVM starts (one SparkSession for the module)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from msgtrace import api
from msgtrace.errors import QueryError
from msgtrace.store import Store
from tests.conftest import ROOT
from tests.helpers_generated import NOW, superseding_store

pyspark = pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow

from msgtrace import spark as mspark  # noqa: E402  (needs pyspark)

BASE: dict[str, Any] = {"start_date": "2026-05-31", "end_date": "2026-06-04", "now": NOW, "timezone": "UTC"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return superseding_store(tmp_path_factory.mktemp("spark"))


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("msgtrace-tests")
        # nothing listens beyond the loopback (the driver would bind the host's address), no web UI
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()


def collected(df: Any) -> pl.DataFrame:
    out = pl.from_arrow(df.toArrow())
    assert isinstance(out, pl.DataFrame)
    times = [c for c, t in out.schema.items() if isinstance(t, pl.Datetime)]
    return out.with_columns(pl.col(c).dt.convert_time_zone("UTC").dt.cast_time_unit("us") for c in times)


QUERIES: list[dict[str, Any]] = [
    {},
    {"sender_address": "*@example.org", "status": ["Delivered", "failed"]},
    {"recipient_address": ["*@example.org", "*.net"], "direction": "Inbound"},
    {"sender_address": "<>"},
    {"from_ip": "2a00:1450:e31d:0a89:0::de4"},
    {"from_ip": "220.114.38.110"},
    {"subject": "re", "subject_filter_type": "StartsWith"},
    {"subject": "#1436"},
    {"status": "Pending,Failed,FilteredAsSpam", "direction": ["Outbound", "Local"]},
    # dates typed in a zone: midnight in Paris is 22:00 UTC the day before
    {"start_date": "06/01/2026 8:00 AM", "end_date": "2026-06-02", "timezone": "Europe/Paris"},
    {"page": 2, "page_size": 100},
    {"result_size": 37},
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: ",".join(q) or "window")
def test_the_same_rows_as_msgtrace_trace(spark: Any, store: Path, query: dict[str, Any]) -> None:
    params = {**BASE, **query}
    expected = api.message_trace(store, **params)
    assert expected.height > 0, "a query that finds nothing would prove little"
    got = collected(mspark.message_trace(spark, store, **params))
    assert got.schema == expected.schema
    assert got.equals(expected)


def test_a_v2_cursor_and_a_trace_id(spark: Any, store: Path) -> None:
    first = api.message_trace(store, **BASE, result_size=20)
    last = first.row(first.height - 1, named=True)
    cursor = {**BASE, "end_date": last["Received"], "starting_recipient_address": last["RecipientAddress"]}
    expected = api.message_trace(store, **cursor, result_size=20)
    assert collected(mspark.message_trace(spark, store, **cursor, result_size=20)).equals(expected)
    one = {**BASE, "message_trace_id": first["MessageTraceId"][3].upper()}
    assert collected(mspark.message_trace(spark, store, **one)).equals(api.message_trace(store, **one))


def test_status_counts_and_rows(spark: Any, store: Path) -> None:
    for query in ({}, {"sender_address": "*@example.org"}):
        params = {**BASE, **query}
        assert collected(mspark.status_counts(spark, store, **params)).equals(api.status_counts(store, **params))
    rows = collected(mspark.message_rows(spark, store, **BASE))
    lazy = api.message_trace_lazy(store, **BASE).collect()
    key = ["message_trace_id", "recipient_lower"]
    assert rows.sort(key).equals(lazy.select(rows.columns).sort(key))


def test_only_the_windows_files_are_read(spark: Any, store: Path) -> None:
    table = Store(store).messages
    day = table.days()[-1]
    df = mspark.message_rows(spark, store, **{**BASE, "start_date": str(day), "end_date": f"{day}T23:59:59Z"})
    read = {Path(f.removeprefix("file://")) for f in df.inputFiles()}
    assert read == set(table.current_files(day))
    assert all(f"date={day}" in str(f) for f in read) and len(table.days()) > 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "Bogus"}, "invalid status 'Bogus'"),
        ({"start_date": "2026-06-05", "end_date": "2026-06-01"}, "start_date 2026-06-05T00:00:00Z is after"),
        ({"page": 1, "result_size": 5}, "cannot be combined"),
    ],
)
def test_the_librarys_errors(spark: Any, store: Path, params: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        mspark.message_trace(spark, store, **{**BASE, **params})
    if "page" not in params:
        with pytest.raises(QueryError) as lib:
            api.message_trace(store, **{**BASE, **params})
        with pytest.raises(QueryError) as ours:
            mspark.status_counts(spark, store, **{**BASE, **params})
        assert str(ours.value) == str(lib.value)


def test_follow_gives_the_end_to_end_rows(spark: Any, tmp_path: Path) -> None:
    from tests.test_follow import API_WINDOW, HOSTS, LOGS, ingest

    store = tmp_path / "store"
    for host in HOSTS:
        ingest(store, LOGS / f"{host}.log")
    for query in ({}, {"status": "Failed"}, {"recipient_address": "dan@contoso.com"}, {"page": 1, "page_size": 3}):
        params = {**API_WINDOW, **query, "follow": True}
        expected = api.message_trace(store, **params)
        assert expected.height > 0
        assert collected(mspark.message_trace(spark, store, **params)).equals(expected)
    counts = mspark.status_counts(spark, store, **API_WINDOW, follow=True)
    assert collected(counts).equals(api.status_counts(store, **API_WINDOW, follow=True))


def test_the_spark_submit_example_writes_the_monthly_report(store: Path, tmp_path: Path) -> None:
    submit = Path(sys.executable).parent / "spark-submit"
    out = tmp_path / "report.csv"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    example = ROOT / "examples" / "spark_monthly_domains.py"
    loopback = ["--conf", "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.ui.enabled=false"]
    args = [str(submit), "--master", "local[1]", *loopback, str(example), "--store", str(store), "--month", "2026-06"]
    res = subprocess.run([*args, "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    got = pl.read_csv(out).sort("domain")
    rows = api.message_trace_lazy(store, start_date="2026-06-01", end_date="2026-07-01", now=NOW, max_age_days=0)
    expected = (
        rows.with_columns(pl.col("recipient_lower").str.extract(r"@([^@]+)$").fill_null("").alias("domain"))
        .group_by("domain")
        .agg(
            pl.col("message_trace_id").n_unique().alias("messages"),
            pl.len().alias("recipients"),
            (pl.col("status") == "Delivered").sum().alias("delivered"),
            (pl.col("status") == "Failed").sum().alias("failed"),
            pl.col("status").is_in(["Pending", "GettingStatus"]).sum().alias("pending"),
        )
        .sort("domain")
        .collect()
    )
    assert got.select(expected.columns).equals(expected, null_equal=True), (got, expected)
    # a bad month is refused before Spark starts
    bad = subprocess.run([sys.executable, *args[7:-1], "2026-13"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr == "Error: --month '2026-13': expected YYYY-MM, e.g. 2026-06\n"
