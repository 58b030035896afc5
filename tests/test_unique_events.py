"""unique_events: the cheap hash pre-check must never change what a full unique would keep."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from msgtrace.ingest.schema import EVENT_KEY, unique_events

_row = st.fixed_dictionaries(
    {
        "source": st.sampled_from(["a", "b"]),
        "line_no": st.integers(0, 3),
        "kind": st.sampled_from(["deliver", "removed"]),
        "recipient": st.one_of(st.none(), st.sampled_from(["x@example.org", "y@example.org"])),
        "detail": st.integers(0, 9),  # tells which of two equal keys was kept
    }
)
_SCHEMA = {"source": pl.String, "line_no": pl.Int64, "kind": pl.String, "recipient": pl.String, "detail": pl.Int64}


@given(st.lists(_row, max_size=12))
@settings(max_examples=200, deadline=None)
def test_same_as_a_full_unique(rows: list[dict]) -> None:
    df = pl.DataFrame(rows, schema=_SCHEMA)
    expected = df.unique(EVENT_KEY, keep="first", maintain_order=True)
    assert unique_events(df).equals(expected, null_equal=True)


def test_nothing_repeated_returns_the_frame_itself() -> None:
    df = pl.DataFrame({"source": ["a", "a"], "line_no": [1, 1], "kind": ["deliver"] * 2, "recipient": ["x", None]})
    assert unique_events(df) is df


@given(st.lists(_row, max_size=12), st.booleans())
@settings(max_examples=200, deadline=None)
def test_lines_in_order_same_as_a_full_unique(rows: list[dict], one_source: bool) -> None:
    """A flush's parsed lines of one file in line order: only the events of one line are checked."""
    if one_source:
        rows = [{**r, "source": "a"} for r in rows]
    rows.sort(key=lambda r: (r["source"], r["line_no"]))
    df = pl.DataFrame(rows, schema=_SCHEMA)
    expected = df.unique(EVENT_KEY, keep="first", maintain_order=True)
    assert unique_events(df).equals(expected, null_equal=True)


def test_lines_in_order_without_repeats_return_the_frame_itself() -> None:
    df = pl.DataFrame(
        {"source": ["a"] * 4, "line_no": [1, 2, 2, 5], "kind": ["deliver"] * 4, "recipient": ["x", "x", "y", None]}
    )
    assert unique_events(df) is df
