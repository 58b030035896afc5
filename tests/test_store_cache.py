"""The column cache of a long-lived reader (msgtrace.store.cache, `msgtrace web --cache-mb`): the
same answers as reading Parquet, new files seen by the next query, its memory bounded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from msgtrace import message_trace
from msgtrace.store import ColumnCache, Store, reading_through
from tests.helpers_store import frame, msg, synthetic, utc, write_store

NOW = "2026-05-20T00:00:00Z"
DAY = dt.date(2026, 5, 10)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path / "store", synthetic(6000, utc(2026, 5, 9), 3))


def traces(store: Path) -> list[pl.DataFrame]:
    """A few searches of the shapes the web page answers: a day, a sender, wildcards, statuses, paging."""
    window = {"start_date": "2026-05-10", "end_date": "2026-05-11", "now": NOW, "max_age_days": 0}
    some = message_trace(store, **window, page_size=1).row(0, named=True)
    return [
        message_trace(store, **window),
        message_trace(store, **window, sender_address=some["SenderAddress"]),
        message_trace(store, **window, recipient_address="*@" + some["RecipientAddress"].split("@")[1]),
        message_trace(store, **window, status=["Failed", "Pending"], direction="Inbound"),
        message_trace(store, **window, page=3, page_size=50),
        message_trace(store, **window, result_size=20),
        message_trace(store, start_date="2026-05-09", end_date="2026-05-12", now=NOW, max_age_days=0),
    ]


def one_day(store: Path, day: str = "2026-05-10") -> pl.DataFrame:
    end = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    return message_trace(store, start_date=day, end_date=end, now=NOW, max_age_days=0)


def test_answers_equal_those_read_from_parquet(store: Path) -> None:
    expected = traces(store)
    cache = ColumnCache(256 * 2**20)
    with reading_through(store, cache):
        first, again = traces(store), traces(store)
    assert cache.size > 0
    for e, f, a in zip(expected, first, again, strict=True):
        assert e.height > 0
        assert f.equals(e) and a.equals(e)


def test_outside_its_context_nothing_reads_through_the_cache(store: Path) -> None:
    cache = ColumnCache(256 * 2**20)
    with reading_through(store.parent / "other", cache):
        one_day(store)
    one_day(store)
    assert cache.size == 0


def test_superseded_rows_stay_dropped_and_new_files_are_seen_at_once(store: Path) -> None:
    with reading_through(store, ColumnCache(256 * 2**20)):
        old = one_day(store).row(0, named=True)
        # a flush of the watcher: the message's new state in an append file superseding its old rows
        new = msg(old["Received"], old["SenderAddress"], old["RecipientAddress"], status="Failed")
        new["message_trace_id"] = old["MessageTraceId"]
        stale = pl.DataFrame(
            {"message_trace_id": [old["MessageTraceId"]], "received": [old["Received"]]},
            schema={"message_trace_id": pl.String, "received": pl.Datetime("us", "UTC")},
        )
        Store(store).messages.replace(frame([new]), stale, {DAY})
        after = one_day(store)
    rows = after.filter(pl.col("MessageTraceId") == old["MessageTraceId"])
    assert rows.get_column("Status").to_list() == ["Failed"]
    assert after.equals(one_day(store))


def test_memory_stays_within_the_budget(store: Path) -> None:
    cache = ColumnCache(1)  # smaller than any day: nothing is kept, answers are unchanged
    with reading_through(store, cache):
        got = one_day(store)
    assert cache.size <= 1
    assert got.equals(one_day(store))


def test_a_long_window_reads_parquet_and_leaves_the_cache_alone(store: Path) -> None:
    cache = ColumnCache(256 * 2**20, max_partitions=2)
    with reading_through(store, cache):
        message_trace(store, start_date="2026-05-09", end_date="2026-05-12", now=NOW, max_age_days=0)
        assert cache.size == 0
        one_day(store)
        assert cache.size > 0


def test_least_recently_used_files_go_first(store: Path) -> None:
    big = ColumnCache(2**40)
    with reading_through(store, big):
        one_day(store)
    cache = ColumnCache(int(big.size * 1.5))
    with reading_through(store, cache):
        for day in ("2026-05-09", "2026-05-10", "2026-05-11"):
            one_day(store, day)
            assert 0 < cache.size <= cache.max_bytes
    held = {Path(k[0]).parent.name for k in cache._entries}
    assert held == {"date=2026-05-11"}


def test_concurrent_searches_share_one_cache(store: Path) -> None:
    """A server's requests run in threads: answers stay right and the budget holds while they
    fill and evict the same entries."""
    from concurrent.futures import ThreadPoolExecutor

    days = ["2026-05-09", "2026-05-10", "2026-05-11"]
    expected = {d: one_day(store, d) for d in days}
    big = ColumnCache(2**40)
    with reading_through(store, big):
        one_day(store)
    cache = ColumnCache(int(big.size * 1.5))  # room for one day and a half: constant eviction

    def search(i: int) -> bool:
        day = days[i % 3]
        with reading_through(store, cache):
            return one_day(store, day).equals(expected[day])

    with ThreadPoolExecutor(6) as pool:
        assert all(pool.map(search, range(36)))
    assert 0 < cache.size <= cache.max_bytes
    assert cache.size == sum(e.size for e in cache._entries.values())
