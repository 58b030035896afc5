"""Property tests: the engine's answer equals a brute-force Python filter and sort over every row."""

from __future__ import annotations

import datetime as dt
import ipaddress
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msgtrace import message_trace
from msgtrace.ingest.schema import STATUSES
from msgtrace.query.engine import trace
from msgtrace.query.filters import TraceFilter
from msgtrace.query.paging import Paging
from tests.helpers_store import msg, trace_id, utc, write_store

NOW = utc(2026, 6, 14, 12)
BASE = utc(2026, 6, 11)
ADDRESSES = ["alice@example.com", "Alice@Example.COM", "bob@example.org", "bob@contoso.com", "carol@contoso.com",
             "", "x@y", "Carol@Contoso.com"]  # fmt: skip
PATTERNS = ["alice@example.com", "*@contoso.com", "bob@*", "*@EXAMPLE.com", "*", "<>", "carol@contoso.com",
            "*contoso*", "x@y"]  # fmt: skip
IPS = ["192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "2001:DB8:0:0::1", "2001:0db8::0001", "IPv6:2001:db8::1",
       "2001:db8::2", "198.51.100.7", "", None]  # fmt: skip
QUERY_IPS = ["192.0.2.1", "2001:db8::1", "2001:db8:0::2", "198.51.100.7", "203.0.113.1"]
SUBJECTS = ["Hello", "hello world", "Invoice 42", "WORLD news", "", None]
MESSAGE_IDS = ["<a@x>", "<b@x>", "c@x", None]

# Times on a coarse grid so that ties on Received (and on the V2 cursor) are common.
times = st.integers(min_value=0, max_value=4 * 24 * 4).map(lambda q: BASE + dt.timedelta(minutes=15 * q))

rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "received": times,
            "sender": st.sampled_from(ADDRESSES),
            "recipient": st.sampled_from(ADDRESSES),
            "status": st.sampled_from(STATUSES),
            "from_ip": st.sampled_from(IPS),
            "to_ip": st.sampled_from(IPS),
            "subject": st.sampled_from(SUBJECTS),
            "message_id": st.sampled_from(MESSAGE_IDS),
            "key": st.integers(0, 3),
        }
    ),
    max_size=40,
)

filters_strategy = st.fixed_dictionaries(
    {},
    optional={
        "start_date": times.filter(lambda t: t <= NOW),
        "sender_address": st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2),
        "recipient_address": st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2),
        "status": st.lists(st.sampled_from([s.upper() for s in STATUSES]), min_size=1, max_size=3),
        "from_ip": st.sampled_from(QUERY_IPS),
        "to_ip": st.sampled_from(QUERY_IPS),
        "subject": st.sampled_from(["hello", "WORLD", "42", "o"]),
        "subject_filter_type": st.sampled_from(["Contains", "StartsWith", "EndsWith"]),
        "message_id": st.lists(st.sampled_from(["a@x", "<b@x>", "<c@x>", "zzz"]), min_size=1, max_size=2),
    },
).map(lambda f: f if "subject" in f else {k: v for k, v in f.items() if k != "subject_filter_type"})
# (--subject-filter-type without --subject is an error)


def build_rows(specs: list[dict[str, object]]) -> list[dict[str, object]]:
    """Rows unique per (message_trace_id, recipient), as the store guarantees."""
    rows, seen = [], set()
    for s in specs:
        received = s["received"]
        assert isinstance(received, dt.datetime)
        tid = trace_id(received, f"{s['sender']}|{s['key']}")
        if (tid, s["recipient"]) in seen:
            continue
        seen.add((tid, s["recipient"]))
        rows.append(msg(received, str(s["sender"]), str(s["recipient"]), status=s["status"], from_ip=s["from_ip"],
                        to_ip=s["to_ip"], subject=s["subject"], message_id=s["message_id"],
                        message_trace_id=tid))  # fmt: skip
    return rows


def address_ok(value: object, patterns: list[str]) -> bool:
    v = str(value or "").lower()
    for p in patterns:
        p = "" if p == "<>" else p.lower()
        if p == "*" or (p.startswith("*") and p.endswith("*") and p.strip("*") in v):
            return True
        if p.startswith("*") and not p.endswith("*") and v.endswith(p[1:]):
            return True
        if p.endswith("*") and not p.startswith("*") and v.startswith(p[:-1]):
            return True
        if "*" not in p and v == p:
            return True
    return False


def ip_ok(stored: object, query: str) -> bool:
    if not stored:
        return False
    text = str(stored)
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    a, q = ipaddress.ip_address(text), ipaddress.ip_address(query)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None and q.version == 4:
        return a.ipv4_mapped == q
    return a == q


def subject_ok(stored: object, text: str, kind: str) -> bool:
    s, t = str(stored or "").lower(), text.lower()
    return s.startswith(t) if kind == "StartsWith" else s.endswith(t) if kind == "EndsWith" else t in s


def brute_force(rows: list[dict[str, object]], f: dict[str, object]) -> list[tuple[object, ...]]:
    start = f.get("start_date", NOW - dt.timedelta(hours=48))
    out = []
    for r in rows:
        if not (start <= r["received"] < NOW):  # type: ignore[operator]
            continue
        if "sender_address" in f and not address_ok(r["sender_address"], f["sender_address"]):  # type: ignore[arg-type]
            continue
        if "recipient_address" in f and not address_ok(r["recipient_address"], f["recipient_address"]):  # type: ignore[arg-type]
            continue
        if "status" in f and str(r["status"]).upper() not in f["status"]:  # type: ignore[operator]
            continue
        if "from_ip" in f and not ip_ok(r["from_ip"], str(f["from_ip"])):
            continue
        if "to_ip" in f and not ip_ok(r["to_ip"], str(f["to_ip"])):
            continue
        if "subject" in f and not subject_ok(r["subject"], str(f["subject"]), str(f.get("subject_filter_type"))):
            continue
        if "message_id" in f:
            wanted = {m if m.startswith("<") else f"<{m}>" for m in f["message_id"]}  # type: ignore[union-attr]
            if r["message_id"] is None or (r["message_id"] not in wanted and f"<{r['message_id']}>" not in wanted):
                continue
        out.append(r)
    out.sort(key=lambda r: (r["recipient_address"], r["message_trace_id"]))
    out.sort(key=lambda r: r["received"], reverse=True)  # stable: ties keep recipient order
    return [(r["received"], r["recipient_address"], r["message_trace_id"]) for r in out]


def keys(df: pl.DataFrame) -> list[tuple[object, ...]]:
    return list(df.select("Received", "RecipientAddress", "MessageTraceId").iter_rows())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=rows_strategy, f=filters_strategy, page_size=st.integers(1, 7))
def test_trace_equals_brute_force(specs: list[dict[str, object]], f: dict[str, object], page_size: int) -> None:
    rows = build_rows(specs)
    with tempfile.TemporaryDirectory() as tmp:
        store = write_store(Path(tmp) / "s", rows)
        params = {**f, "now": NOW, "timezone": "UTC"}
        expected = brute_force(rows, f)
        got = message_trace(store, **params)
        assert keys(got) == expected
        assert got["Index"].to_list() == list(range(len(expected)))
        page = 2
        paged = message_trace(store, page=page, page_size=page_size, **params)
        assert keys(paged) == expected[(page - 1) * page_size : page * page_size]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=rows_strategy, result_size=st.integers(1, 5))
def test_v2_cursor_walk_equals_full_result(specs: list[dict[str, object]], result_size: int) -> None:
    rows = build_rows(specs)
    with tempfile.TemporaryDirectory() as tmp:
        store = write_store(Path(tmp) / "s", rows)
        expected = brute_force(rows, {})
        start, end, after = NOW - dt.timedelta(hours=48), NOW, None
        seen: list[tuple[object, ...]] = []
        for _ in range(len(expected) + 2):
            flt = TraceFilter.from_params(now=NOW, start_date=start, end_date=end, starting_recipient_address=after)
            result = trace(store, flt, Paging.from_params(result_size=result_size, starting_recipient_address=after))
            seen.extend(keys(result.rows))
            if not result.more:
                break
            end, after = result.rows["Received"][-1], result.rows["RecipientAddress"][-1]
        assert seen == expected
