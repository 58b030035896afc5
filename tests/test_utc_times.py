"""compiled.utc_times (the zone looked up once per wall-clock second of a batch) gives every line
the time utc_expr (wall_to_utc per line, Polars' zone rules) gives it: around DST changes of
whole hours, half hours, a skipped day, and the old offsets of odd seconds, repeated hours in
either pass, fractions of a second, lines out of order, stamps that name their offset."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_series_equal

from msgtrace.ingest.formats.compiled import utc_times, wall_to_utc
from msgtrace.ingest.formats.context import ParseContext
from msgtrace.ingest.schema import TIME


def utc_expr(ctx: ParseContext) -> pl.Expr:
    """The reference: every line's wall time through wall_to_utc (the parsers' way before
    utc_times), a stamp naming its offset as logged."""
    utc = pl.col("_utc").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    local = pl.col("_local").cast(pl.Datetime("us"))
    if ctx.timezone == "UTC":
        return pl.coalesce(utc, local.dt.replace_time_zone("UTC")).cast(TIME)
    return pl.coalesce(utc, wall_to_utc(local, pl.col("_second"), ctx.timezone)).cast(TIME)


_US = 1_000_000

# (zone, a wall time at one of its changes)
CHANGES = [
    ("Europe/Berlin", dt.datetime(2026, 3, 29, 2, 0)),  # an hour skipped
    ("Europe/Berlin", dt.datetime(2026, 10, 25, 2, 30)),  # an hour repeated
    ("America/New_York", dt.datetime(2026, 11, 1, 1, 0)),
    ("Australia/Lord_Howe", dt.datetime(2026, 4, 5, 1, 45)),  # half an hour repeated
    ("Australia/Lord_Howe", dt.datetime(2026, 10, 4, 2, 15)),  # half an hour skipped
    ("Pacific/Apia", dt.datetime(2011, 12, 30, 0, 0)),  # a whole day skipped: no time at all
    ("Pacific/Apia", dt.datetime(2011, 12, 31, 0, 0)),
    ("Africa/Monrovia", dt.datetime(1972, 1, 7, 0, 20)),  # -0:44:30 -> 0:00: 44.5 minutes skipped
    ("Europe/Amsterdam", dt.datetime(1937, 7, 1, 0, 0)),  # +0:19:32 -> +0:20: 28 seconds skipped
    ("UTC", dt.datetime(2026, 6, 1, 12, 0)),
]


def _micros(t: dt.datetime) -> int:
    return (t - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


def _events(center: dt.datetime, seed: int, shuffle: bool) -> pl.DataFrame:
    """Wall times every second (a few with a fraction) for two hours around `center`, a random
    pass each, some lines without a time and some whose stamp named its offset."""
    rng = np.random.default_rng(seed)
    seconds = np.arange(-3600, 3601)
    fraction = np.where(rng.random(len(seconds)) < 0.2, rng.integers(0, _US, len(seconds)), 0)
    local = _micros(center) + seconds * _US + fraction
    second = rng.random(len(local)) < 0.5
    utc = np.where(rng.random(len(local)) < 0.05, local - 3600 * _US, 0)
    df = pl.DataFrame(
        {
            "_local": pl.Series(local, dtype=pl.Int64),
            "_utc": pl.Series(utc, dtype=pl.Int64),
            "_second": second,
            "no_time": rng.random(len(local)) < 0.02,
        }
    ).with_columns(
        pl.when(pl.col("no_time")).then(None).otherwise(pl.col("_local")).alias("_local"),
        pl.when(pl.col("_utc") == 0).then(None).otherwise(pl.col("_utc")).alias("_utc"),
    )
    if shuffle:
        df = df.sample(fraction=1.0, shuffle=True, seed=seed)
    return df.drop("no_time")


@pytest.mark.parametrize(("zone", "center"), CHANGES)
@pytest.mark.parametrize("shuffle", [False, True])
def test_one_lookup_a_second_reads_every_line_as_wall_to_utc(zone: str, center: dt.datetime, shuffle: bool) -> None:
    ctx = ParseContext(timezone=zone)
    events = _events(center, seed=len(zone) + center.year, shuffle=shuffle)
    want = events.select(utc_expr(ctx).alias("time")).to_series()
    assert_series_equal(utc_times(events, ctx), want)
    # the same with no stamp naming its offset, and with every one naming it
    for utc in (pl.lit(None, pl.Int64), pl.col("_local") - 7 * _US):
        other = events.with_columns(utc.alias("_utc"))
        assert_series_equal(utc_times(other, ctx), other.select(utc_expr(ctx).alias("time")).to_series())


def test_the_skipped_day_has_no_time() -> None:
    ctx = ParseContext(timezone="Pacific/Apia")
    events = pl.DataFrame(
        {"_local": [_micros(dt.datetime(2011, 12, 30, 12, 0))], "_utc": [None], "_second": [False]},
        schema={"_local": pl.Int64, "_utc": pl.Int64, "_second": pl.Boolean},
    )
    assert utc_times(events, ctx).to_list() == [None]
