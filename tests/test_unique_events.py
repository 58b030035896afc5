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


@given(st.lists(_row, max_size=12))
@settings(max_examples=200, deadline=None)
def test_same_as_a_full_unique(rows: list[dict]) -> None:
    df = pl.DataFrame(
        rows,
        schema={
            "source": pl.String,
            "line_no": pl.Int64,
            "kind": pl.String,
            "recipient": pl.String,
            "detail": pl.Int64,
        },
    )
    expected = df.unique(EVENT_KEY, keep="first", maintain_order=True)
    assert unique_events(df).equals(expected, null_equal=True)


def test_nothing_repeated_returns_the_frame_itself() -> None:
    df = pl.DataFrame({"source": ["a", "a"], "line_no": [1, 1], "kind": ["deliver"] * 2, "recipient": ["x", None]})
    assert unique_events(df) is df
