"""The engine over small hand-made stores: exact rows, order, paging, pruning, the Python API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from msgtrace import message_trace, message_trace_lazy
from msgtrace.ingest import schema
from msgtrace.query import engine, paging
from msgtrace.query.filters import QueryError, TraceFilter
from msgtrace.query.paging import Paging
from msgtrace.store import MessagesTable, Store
from tests.helpers_store import frame, msg, next_file, synthetic, trace_id, utc, write_store

NOW = "2026-06-14T12:00:00Z"
T1 = utc(2026, 6, 13, 10, 0, 0)
T_SPAM = utc(2026, 6, 13, 23, 30, 0, 250000)
T_BOUNCE = utc(2026, 6, 14, 9, 0, 0)
T_OLD = utc(2026, 6, 12, 8, 0, 0)
TID1 = trace_id(T1, "m1")


def rows() -> list[dict[str, object]]:
    return [
        msg(T1, "Alice@Example.com", "bob@example.org", message_trace_id=TID1, message_id="<m1@example.com>"),
        msg(T1, "Alice@Example.com", "Carol@Example.org", message_trace_id=TID1, message_id="<m1@example.com>",
            status="Failed", to_ip="2001:db8::7"),
        msg(T_OLD, "dave@fabrikam.com", "alice@example.com", status="Pending", subject="Invoice 42",
            from_ip="2001:db8:0:0:0:0:0:25", to_ip=None),
        msg(T_BOUNCE, "", "alice@example.com", subject="Undelivered Mail Returned to Sender", from_ip=None,
            message_id=None),
        msg(T_SPAM, "Eve@Contoso.com", "bob@example.org", status="FilteredAsSpam", subject="WIN a prize",
            message_id="<spam1@contoso.com>", to_ip=None, size=None),
    ]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path / "store", rows())


def run(store: Path, **kw: object) -> pl.DataFrame:
    kw.setdefault("now", NOW)
    kw.setdefault("timezone", "UTC")
    return message_trace(store, **kw)


def recipients(df: pl.DataFrame) -> list[tuple[str, str]]:
    return list(zip(df["SenderAddress"].to_list(), df["RecipientAddress"].to_list(), strict=True))


def test_default_window_exact_rows(store: Path) -> None:
    # Direction after the contract's columns: the organization example.com is the local domain
    df = run(store)
    assert df.columns == list(engine.OUTPUT_COLUMNS)
    assert df.schema["Received"] == pl.Datetime("us", "UTC")
    assert df.schema["StartDate"] == pl.Datetime("us", "UTC")
    assert df.to_dicts() == [
        {
            "Organization": "example.com", "MessageId": "", "Received": T_BOUNCE, "SenderAddress": "",
            "RecipientAddress": "alice@example.com", "Subject": "Undelivered Mail Returned to Sender",
            "Status": "Delivered", "ToIP": "203.0.113.7", "FromIP": "", "Size": 1234,
            "MessageTraceId": trace_id(T_BOUNCE, ""), "StartDate": utc(2026, 6, 12, 12),
            "EndDate": utc(2026, 6, 14, 12), "Index": 0, "Direction": "Local",
        },
        {
            "Organization": "example.com", "MessageId": "<spam1@contoso.com>", "Received": T_SPAM,
            "SenderAddress": "Eve@Contoso.com", "RecipientAddress": "bob@example.org", "Subject": "WIN a prize",
            "Status": "FilteredAsSpam", "ToIP": "", "FromIP": "198.51.100.2", "Size": None,
            "MessageTraceId": trace_id(T_SPAM, "Eve@Contoso.com"), "StartDate": utc(2026, 6, 12, 12),
            "EndDate": utc(2026, 6, 14, 12), "Index": 1, "Direction": "Inbound",
        },
        # same Received: ties broken by RecipientAddress ascending ("C" sorts before "b")
        {
            "Organization": "example.com", "MessageId": "<m1@example.com>", "Received": T1,
            "SenderAddress": "Alice@Example.com", "RecipientAddress": "Carol@Example.org", "Subject": "Hello",
            "Status": "Failed", "ToIP": "2001:db8::7", "FromIP": "198.51.100.2", "Size": 1234,
            "MessageTraceId": TID1, "StartDate": utc(2026, 6, 12, 12), "EndDate": utc(2026, 6, 14, 12),
            "Index": 2, "Direction": "Outbound",
        },
        {
            "Organization": "example.com", "MessageId": "<m1@example.com>", "Received": T1,
            "SenderAddress": "Alice@Example.com", "RecipientAddress": "bob@example.org", "Subject": "Hello",
            "Status": "Delivered", "ToIP": "203.0.113.7", "FromIP": "198.51.100.2", "Size": 1234,
            "MessageTraceId": TID1, "StartDate": utc(2026, 6, 12, 12), "EndDate": utc(2026, 6, 14, 12),
            "Index": 3, "Direction": "Outbound",
        },
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"sender_address": "alice@example.com"}, [("Alice@Example.com", "Carol@Example.org"),
                                                    ("Alice@Example.com", "bob@example.org")]),
        ({"sender_address": "*@CONTOSO.com"}, [("Eve@Contoso.com", "bob@example.org")]),
        ({"sender_address": "eve@*,alice@*"}, [("Eve@Contoso.com", "bob@example.org"),
                                               ("Alice@Example.com", "Carol@Example.org"),
                                               ("Alice@Example.com", "bob@example.org")]),
        ({"sender_address": "<>"}, [("", "alice@example.com")]),
        ({"recipient_address": ["carol@example.org", "nobody@x"]}, [("Alice@Example.com", "Carol@Example.org")]),
        ({"recipient_address": "BOB@*", "sender_address": "*@example.com"},
         [("Alice@Example.com", "bob@example.org")]),
        ({"message_id": "spam1@contoso.com"}, [("Eve@Contoso.com", "bob@example.org")]),
        ({"message_id": "<spam1@contoso.com>"}, [("Eve@Contoso.com", "bob@example.org")]),
        ({"message_id": "<SPAM1@contoso.com>"}, []),  # Message-IDs match exactly
        ({"status": "failed,filteredasspam"}, [("Eve@Contoso.com", "bob@example.org"),
                                               ("Alice@Example.com", "Carol@Example.org")]),
        ({"to_ip": "2001:DB8:0::7"}, [("Alice@Example.com", "Carol@Example.org")]),
        ({"from_ip": "198.51.100.2", "status": "Delivered"}, [("Alice@Example.com", "bob@example.org")]),
        ({"subject": "prize"}, [("Eve@Contoso.com", "bob@example.org")]),
        ({"subject": "win", "subject_filter_type": "StartsWith"}, [("Eve@Contoso.com", "bob@example.org")]),
        ({"subject": "win", "subject_filter_type": "EndsWith"}, []),
        ({"subject": "TO SENDER", "subject_filter_type": "endswith"}, [("", "alice@example.com")]),
        ({"message_trace_id": TID1.upper()}, [("Alice@Example.com", "Carol@Example.org"),
                                              ("Alice@Example.com", "bob@example.org")]),
        ({"message_trace_id": TID1, "recipient_address": "bob@example.org"},
         [("Alice@Example.com", "bob@example.org")]),
        ({"sender_address": "nobody@nowhere"}, []),
    ],
)  # fmt: skip
def test_filters_exact(store: Path, kw: dict[str, object], expected: list[tuple[str, str]]) -> None:
    assert recipients(run(store, **kw)) == expected


def test_explicit_window_and_ipv6_from_ip(store: Path) -> None:
    df = run(store, start_date="06/12/2026", end_date="06/13/2026 10:00 AM", from_ip="2001:db8::25")
    assert recipients(df) == [("dave@fabrikam.com", "alice@example.com")]
    # EndDate is exclusive: 10:00:00 itself is out, 10:00:01 takes both rows of that message in
    assert run(store, start_date="2026-06-13", end_date="2026-06-13T10:00:00Z").height == 0
    assert run(store, start_date="2026-06-13", end_date="2026-06-13T10:00:01Z").height == 2


def test_window_in_another_zone(store: Path) -> None:
    # 06/14/2026 in Paris starts at 22:00 UTC on the 13th: the spam at 23:30 UTC is on "the 14th".
    df = run(store, start_date="06/14/2026", end_date="06/15/2026", timezone="Europe/Paris")
    assert recipients(df) == [("", "alice@example.com"), ("Eve@Contoso.com", "bob@example.org")]
    assert df["StartDate"][0] == utc(2026, 6, 13, 22)


def test_v1_paging_and_index(store: Path) -> None:
    page2 = run(store, page=2, page_size=3)
    assert page2["Index"].to_list() == [3]
    assert page2["RecipientAddress"].to_list() == ["bob@example.org"]
    assert run(store, page=3, page_size=3).height == 0
    result = engine.trace(store, TraceFilter.from_params(now=NOW), Paging.from_params(1, 3))
    assert (result.total, result.rows["Index"].to_list()) == (4, [0, 1, 2])


def test_v2_cursor_walks_every_row_once(store: Path) -> None:
    everything = run(store)
    seen: list[dict[str, object]] = []
    end, after = "2026-06-14T12:00:00Z", None
    for _ in range(10):
        flt = TraceFilter.from_params(
            now=NOW, start_date="2026-06-12T12:00:00Z", end_date=end, starting_recipient_address=after
        )
        result = engine.trace(store, flt, Paging.from_params(result_size=1, starting_recipient_address=after))
        seen.extend(result.rows.drop("StartDate", "EndDate", "Index").to_dicts())
        if not result.more:
            break
        end, after = result.rows["Received"][-1], result.rows["RecipientAddress"][-1]
    assert seen == everything.drop("StartDate", "EndDate", "Index").to_dicts()


def test_v2_more_flag(store: Path) -> None:
    flt = TraceFilter.from_params(now=NOW)
    assert engine.trace(store, flt, Paging.from_params(result_size=3)).more
    assert not engine.trace(store, flt, Paging.from_params(result_size=4)).more


def test_row_limit(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "MAX_ROWS", 3)
    with pytest.raises(QueryError) as e:
        run(store, page=1)
    assert str(e.value) == (
        "the query matches 4 rows, more than the 3-row limit of one query: "
        "split the date window (start_date/end_date) into smaller intervals"
    )
    assert run(store, sender_address="alice@example.com").height == 2


def test_paging_equals_slicing_with_many_ties(tmp_path: Path) -> None:
    df = synthetic(3000, utc(2026, 6, 13), 1, seed=3)
    # collapse times to a few values so ties (same Received) cross page boundaries
    df = df.with_columns(pl.col("received").dt.truncate("6h"))
    store = write_store(tmp_path / "s", df)
    full = run(store, start_date="2026-06-13", end_date="2026-06-14")
    assert full.height == 3000
    for page, size in [(1, 7), (2, 500), (5, 333), (9, 333), (10, 333), (3, 1000)]:
        got = run(store, start_date="2026-06-13", end_date="2026-06-14", page=page, page_size=size)
        assert got.equals(full.slice((page - 1) * size, size)), (page, size)


# --- which files are opened ----------------------------------------------------------------------


def spy_files(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    opened: list[Path] = []
    real = engine.open_files

    def spy(table: MessagesTable, files: list[Path], columns: list[str] | None = None) -> pl.LazyFrame:
        opened.extend(files)
        return real(table, files, columns)

    monkeypatch.setattr(engine, "open_files", spy)
    return opened


def test_one_day_query_opens_only_that_days_files(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = spy_files(monkeypatch)
    run(store, start_date="2026-06-13", end_date="2026-06-14")
    assert opened and {p.parent.name for p in opened} == {"date=2026-06-13"}


def test_one_day_query_survives_corrupt_files_in_other_days(store: Path) -> None:
    for day in (dt.date(2026, 6, 12), dt.date(2026, 6, 14)):
        next_file(store, "messages", day).write_bytes(b"not parquet at all")
    df = run(store, start_date="2026-06-13", end_date="2026-06-14")
    assert df.height == 3
    # a query that opens them fails, naming the file (issue 11: was the reader's error, naming none)
    with pytest.raises(QueryError, match=r"^damaged store file .*/messages/date=2026-06-1[24]/g\d+-a\.parquet \("):
        run(store)


def test_trace_id_lookup_opens_one_partition(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = spy_files(monkeypatch)
    df = run(store, message_trace_id=TID1, start_date="2026-06-10", max_age_days=0)
    assert df.height == 2
    assert {p.parent.name for p in opened} == {"date=2026-06-13"}


def test_only_current_files_are_read(tmp_path: Path) -> None:
    store = tmp_path / "s"
    table, day = Store(store).messages, dt.date(2026, 6, 13)
    table.write(day, frame([msg(T1, recipient="old@x"), msg(T1, recipient="gone@x")]), complete=True)
    # a rewrite: g2-c supersedes g1 (not yet deleted), then g3-a appends
    table.write(day, frame([msg(T1, recipient="old@x", status="Failed")]), complete=True)
    table.write(day, frame([msg(T_SPAM, recipient="new@x")]))
    assert [p.name for p in table.current_files(day)] == ["g000002-c.parquet", "g000003-a.parquet"]
    df = run(store, start_date="2026-06-13", end_date="2026-06-14")
    assert df.select("RecipientAddress", "Status").rows() == [("new@x", "Delivered"), ("old@x", "Failed")]


def test_store_is_plain_hive_parquet(store: Path) -> None:
    import pyarrow.dataset as ds

    table = ds.dataset(store / "messages", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 5
    assert str(table.schema.field("received").type) == "timestamp[us, tz=UTC]"
    assert sorted({str(d) for d in table.column("date").to_pylist()}) == [
        "2026-06-12", "2026-06-13", "2026-06-14",
    ]  # fmt: skip


# --- Python API ----------------------------------------------------------------------------------


def test_lazy_variant_has_filters_applied(store: Path) -> None:
    lf = message_trace_lazy(store, now=NOW, sender_address="*@example.com")
    assert isinstance(lf, pl.LazyFrame)
    df = lf.collect()
    # every stored column, then the derived direction
    assert list(df.columns) == [*schema.MESSAGE_SCHEMA, "direction"]
    assert sorted(df["recipient_address"].to_list()) == ["Carol@Example.org", "bob@example.org"]


def test_store_from_env_and_missing_store(store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MSGTRACE_STORE", str(store))
    assert message_trace(now=NOW).height == 4
    with pytest.raises(QueryError, match="^store '.*nowhere' does not exist: pass store=DIR or set MSGTRACE_STORE$"):
        message_trace(tmp_path / "nowhere", now=NOW)


def test_empty_store_is_an_empty_result(tmp_path: Path) -> None:
    (tmp_path / "empty" / "messages").mkdir(parents=True)  # a store nothing was ingested into yet
    df = run(tmp_path / "empty")
    assert df.height == 0 and df.columns == list(engine.OUTPUT_COLUMNS)


def test_api_validates_paging(store: Path) -> None:
    with pytest.raises(QueryError, match=r"^invalid page_size 5001: use 1 to 5000$"):
        run(store, page_size=5001)
    with pytest.raises(QueryError, match="cannot be combined"):
        run(store, page=1, result_size=10)


def test_v2_page_never_splits_a_cursor_tie(tmp_path: Path) -> None:
    # three messages received in the same microsecond by the same recipient
    same = [msg(T1, f"s{i}@x", "bob@example.org", message_trace_id=trace_id(T1, str(i))) for i in range(3)]
    store = write_store(tmp_path / "s", [*same, msg(T_OLD, "z@x", "a@x")])
    flt = TraceFilter.from_params(now=NOW, start_date="2026-06-12")
    first = engine.trace(store, flt, Paging.from_params(result_size=2))
    assert (first.rows.height, first.more) == (3, True)
    assert first.rows["Index"].to_list() == [0, 1, 2]
    only_ties = TraceFilter.from_params(now=NOW, start_date="2026-06-13")
    assert (engine.trace(store, only_ties, Paging.from_params(result_size=1)).rows.height, False) == (3, False)
    assert not engine.trace(store, only_ties, Paging.from_params(result_size=1)).more


def test_a_file_removed_after_listing_is_retried(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = engine.needed_files

    def listing_then_compaction(table: MessagesTable, flt: TraceFilter) -> list[Path]:
        files = real(table, flt)
        if not calls:  # the first listing names a file that a compaction then deletes
            files = [*files, files[0].with_name("g999998-a.parquet")]
        calls.append(1)
        return files

    monkeypatch.setattr(engine, "needed_files", listing_then_compaction)
    assert run(store).height == 4
    assert len(calls) == 2


def test_long_window_reads_existing_partitions(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened = spy_files(monkeypatch)
    df = run(store, start_date="2000-01-01", end_date="2030-01-01", max_age_days=0)
    assert df.height == 5
    assert sorted({p.parent.name for p in opened}) == ["date=2026-06-12", "date=2026-06-13", "date=2026-06-14"]
