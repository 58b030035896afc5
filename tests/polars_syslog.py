"""The Polars syslog envelope the reference parsers (tests/polars_<format>.py) share; the compiled
parsers read it in rust/src/syslog.rs, and tests/test_<format>_rust.py hold the two equal.

The syslog envelope shared by Postfix, Sendmail and syslog-forwarded Exim lines.

    Jun 13 10:00:00 mx1 postfix/smtpd[123]: 3F1A22C01: client=...          RFC 3164: no year, no zone
    2026-06-13T10:00:00.123456+02:00 mx1 postfix/smtpd[123]: ...            RFC 3339 / ISO 8601

Both shapes may appear in one file. RFC 3164 times get their year from ``ctx.year`` (rolling
over at New Year) or, failing that, from the file's modification time, and their zone from
``ctx.timezone``; the DST fall-back hour, which happens twice, is resolved by the order of lines.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from msgtrace.ingest.formats.compiled import wall_to_utc
from msgtrace.ingest.formats.context import ParseContext
from msgtrace.ingest.schema import TIME

_MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}

# Short captures only: the body is sliced off by the header's length, never captured.
_HEADER = (
    r"^(?:<\d{1,3}>(?:1 )?)?"
    r"(?:([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d:\d\d:\d\d)(?:\.\d+)?"
    r"|(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r" (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: "
)


# The common case, one short onepass regex: "Jun 13 10:00:00 host prog[pid]: body". A line it matches
# is one the old fast path took (_FAST) and gets the same fields: host and program hold no ':' and
# no space, the pid is digits, so the line's first ": " is the one that ends the tag (the stamp's
# colons are followed by digits) and the body starts two bytes after it. Any other line (a host or
# program with ':', an RFC 3339 stamp, a `<PRI>`, odd spacing, no syslog at all) takes the general
# paths below, unchanged.
_CLEAN = r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ([^ :]+) ([^ \[:]+)(?:\[(\d+)\])?: "
# What decided the old split between the position cut and the regex path; still decides it for the rest.
_FAST = r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d [^ ]+ [^ ]+: "
_OUT = ["line_no", "line", "time", "host", "program", "pid", "body", "ok"]
_STAMP_COLS = ["_mon", "_day", "_hms", "_iso"]


def split(lines: pl.DataFrame, ctx: ParseContext, lead: str | None = None) -> pl.DataFrame:
    """Split syslog lines into time (UTC), host, program, pid and body; `ok` is false for non-syslog lines.

    `lines` has columns line_no and line. Rows keep their order; nothing is dropped.
    `lead`, a regex with one group, asks for one more column, `lead`: what that group captures
    when the regex matches at the start of the body (Postfix's queue id), else null; `body` then
    holds what follows the match. It is matched in the same pass as the envelope, so it should keep
    that pass onepass: each repeat ending at a character it excludes, no overlapping alternatives.
    """
    df = _split_clean(lines, lead)
    if df.get_column("_stamp").null_count():
        df = _mend(lines, df, lead)
    return _finish(df, ctx).select(_OUT + (["lead"] if lead else []))


def _split_clean(lines: pl.DataFrame, lead: str | None) -> pl.DataFrame:
    """Every row through _CLEAN; `_stamp` (the first 16 characters) is null where it did not match."""
    line = pl.col("line")
    g = line.str.extract_groups(_CLEAN + (f"({lead})?" if lead else ""))
    # byte offsets from str.find: the body is cut from the bytes, so a non-ASCII body cannot shift it
    body_at = line.str.find(": ", literal=True) + 2
    if lead:
        body_at = body_at + g.struct.field("4").str.len_bytes().fill_null(0)
    df = lines.with_columns(
        g.struct.field("1").alias("host"),
        g.struct.field("2").alias("program"),
        g.struct.field("3").alias("pid"),
        line.cast(pl.Binary).bin.slice(body_at).cast(pl.String).alias("body"),
        line.str.slice(0, 16).alias("_stamp"),
        *([g.struct.field("5").alias("lead")] if lead else []),
    )
    clean = pl.col("host").is_not_null()
    return df.with_columns(
        pl.when(clean).then("_stamp").alias("_stamp"),
        clean.alias("ok"),
        *[pl.lit(None, pl.String).alias(c) for c in _STAMP_COLS],
    )


def _mend(lines: pl.DataFrame, df: pl.DataFrame, lead: str | None) -> pl.DataFrame:
    """Rows _CLEAN did not match, through the general paths, merged back in the input order."""
    clean = df.get_column("_stamp").is_not_null()
    odd = lines.with_row_index("_i").filter(~clean)
    fast = odd.select(pl.col("line").str.contains(_FAST)).to_series()

    def like_clean(part: pl.DataFrame) -> pl.DataFrame:
        part = part.with_columns(pl.lit(None, pl.String).alias("_stamp"))
        if lead:
            g = pl.col("body").str.extract_groups(f"^({lead})")
            body = pl.col("body").cast(pl.Binary).bin.slice(g.struct.field("1").str.len_bytes().fill_null(0))
            part = part.with_columns(g.struct.field("2").alias("lead"), body.cast(pl.String).alias("body"))
        return part.select("_i", *df.columns)

    parts = [
        df.with_row_index("_i").filter(clean),
        like_clean(_split_fast(odd.filter(fast))),
        like_clean(_split_regex(odd.filter(~fast))),
    ]
    return pl.concat(parts).sort("_i").drop("_i")


def _split_fast(lines: pl.DataFrame) -> pl.DataFrame:
    """RFC 3164 lines: fixed-width timestamp, then host, tag and body separated by spaces."""
    f = lines.with_columns(
        pl.col("line").str.slice(0, 3).alias("_mon"),
        pl.col("line").str.slice(4, 2).str.strip_chars_start().alias("_day"),
        pl.col("line").str.slice(7, 8).alias("_hms"),
        pl.col("line").str.slice(16).str.splitn(" ", 3).alias("_s"),
    )
    f = f.with_columns(
        pl.col("_s").struct.field("field_0").alias("host"),
        pl.col("_s").struct.field("field_1").str.strip_suffix(":").alias("_tag"),
        pl.col("_s").struct.field("field_2").fill_null("").alias("body"),
    )
    tag = pl.col("_tag").str.extract_groups(r"^([^\[]+)(?:\[(\d+)\])?$")
    return f.with_columns(
        tag.struct.field("1").alias("program"),
        tag.struct.field("2").alias("pid"),
        pl.lit(None, pl.String).alias("_iso"),
        pl.lit(True).alias("ok"),
    ).drop("_s", "_tag")


def _split_regex(lines: pl.DataFrame) -> pl.DataFrame:
    """Everything else: RFC 3339 timestamps, priority prefixes, odd spacing; short captures only."""
    g = pl.col("line").str.extract_groups(_HEADER)
    df = lines.with_columns(
        g.struct.field("1").alias("_mon"),
        g.struct.field("2").alias("_day"),
        g.struct.field("3").alias("_hms"),
        g.struct.field("4").alias("_iso"),
        g.struct.field("5").alias("host"),
        g.struct.field("6").alias("program"),
        g.struct.field("7").alias("pid"),
        pl.col("line").str.extract(_HEADER, 0).str.len_chars().alias("_hlen"),
    )
    return df.with_columns(
        pl.col("line").str.slice(pl.col("_hlen").fill_null(0)).alias("body"),
        pl.col("_hlen").is_not_null().alias("ok"),
    ).drop("_hlen")


def _finish(df: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """Timestamps to UTC, worked out once per run of consecutive lines with the same stamp (a busy
    log writes a dozen lines a second), then spread over the run.

    That gives every line what _times gives it alone: the year steps only where the month changes
    from the line before, and a line is in the DST second pass when it is ten minutes behind the
    latest earlier time, so the run's later lines get what its first one gets. Lines off the
    _CLEAN path (null `_stamp`) are runs of their own.
    """
    stamp = pl.col("_stamp")
    new_run = df.select(stamp.is_null() | stamp.ne_missing(stamp.shift(1))).to_series()
    runs = (
        df.select("_stamp", *_STAMP_COLS)
        .filter(new_run)
        .select(
            pl.coalesce("_mon", stamp.str.slice(0, 3)).alias("_mon"),
            pl.coalesce("_day", stamp.str.slice(4, 2).str.strip_chars_start()).alias("_day"),
            pl.coalesce("_hms", stamp.str.slice(7, 8)).alias("_hms"),
            "_iso",
        )
    )
    time = _times(runs, ctx)
    time = time.gather(new_run.cum_sum() - 1)
    return df.with_columns(time.alias("time"), (pl.col("ok") & time.is_not_null()).alias("ok"))


def _times(df: pl.DataFrame, ctx: ParseContext) -> pl.Series:
    """UTC times of rows in line order: RFC 3339 ones carry their offset; RFC 3164 ones need year and zone."""
    has_iso = df.get_column("_iso").is_not_null().any()
    if has_iso:
        iso = pl.col("_iso").str.replace("T", " ", literal=True)
        df = df.with_columns(
            iso.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%#z", strict=False, time_zone="UTC").alias("_iso_utc"),
            iso.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False).alias("_iso_local"),
        )
    else:
        df = df.with_columns(
            pl.lit(None, dtype=TIME).alias("_iso_utc"), pl.lit(None, dtype=pl.Datetime("us")).alias("_iso_local")
        )
    df = _rfc3164_local(df, ctx)
    df = df.with_columns(pl.coalesce(pl.col("_local"), pl.col("_iso_local")).alias("_local"))
    if ctx.timezone == "UTC":
        local_utc = pl.col("_local").dt.replace_time_zone("UTC")
    else:
        local_utc = localize(pl.col("_local"), ctx, "syslog")
    df = df.with_columns(local_utc.alias("_local_utc"))
    remember_max_local(df, "_local", ctx, "syslog")
    return df.select(pl.coalesce(pl.col("_iso_utc"), pl.col("_local_utc")).cast(TIME).alias("time")).to_series()


def _rfc3164_local(df: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """Naive local datetimes for RFC 3164 rows, with the year inferred."""
    month = pl.col("_mon").replace_strict(_MONTHS, default=None, return_dtype=pl.Int32)
    day = pl.col("_day").cast(pl.Int32, strict=False)
    df = df.with_columns(month.alias("_m"), day.alias("_d"))
    if ctx.year is not None:
        # Explicit year for the first line; +1 each time the month drops by more than six
        # (December -> January). A December line right after January ones is a late line of the
        # old year (processes interleave around midnight): -1, and the next January line is +1
        # again. A jump ahead (March -> October: a gap in the log) keeps the year.
        state = ctx.state.setdefault("syslog", {})
        last = state.get("last_month") or 0
        base = state.get("rollovers", 0)
        prev = pl.col("_m").forward_fill().shift(1).fill_null(last)
        late = (prev == 1) & (pl.col("_m") == 12)
        step = pl.when(prev <= 0).then(0).when(pl.col("_m") - prev < -6).then(1).when(late).then(-1)
        roll = step.otherwise(0).fill_null(0).cast(pl.Int32).cum_sum() + base
        df = df.with_columns(roll.alias("_roll"))
        months = df.get_column("_m").drop_nulls()
        if months.len():
            state["last_month"] = int(months[-1])
            state["rollovers"] = int(df.get_column("_roll")[-1])
        year = pl.lit(ctx.year) + pl.col("_roll").fill_null(0)
    else:
        # No year given: the file was last written at ctx.reference, so a line dated after that
        # (with a day of slack for clock skew) belongs to the year before.
        ref = ctx.reference_local()
        ref_ord = ref.month * 100 + ref.day + 1
        year = pl.when(pl.col("_m") * 100 + pl.col("_d") > ref_ord).then(ref.year - 1).otherwise(ref.year)
    # strptime over "YYYY Mon D HH:MM:SS": impossible stamps (Feb 30, 25:00) become null, not errors
    stamp = pl.concat_str([year.cast(pl.String), pl.col("_mon"), pl.col("_day"), pl.col("_hms")], separator=" ")
    local = stamp.str.to_datetime("%Y %b %d %H:%M:%S", strict=False)
    return df.with_columns(local.alias("_local"))


def localize(local: pl.Expr, ctx: ParseContext, state_key: str) -> pl.Expr:
    """Naive local datetimes -> UTC in ctx.timezone, resolving DST edges.

    Spring forward: a time in the skipped hour cannot exist; it is read in the zone's offset
    before the change (a clock not yet moved forward). Fall back: an hour happens twice; a row whose wall
    time is at least ten minutes behind the latest wall time seen before it is in the second
    pass (the later instant); otherwise the first. Carried across chunks in ctx.state.
    """
    state = ctx.state.setdefault(state_key, {})
    seen = state.get("max_local")
    running = local.cum_max().forward_fill().shift(1)  # a non-syslog line (null) must not reset it
    if seen is not None:
        running = pl.max_horizontal(running.fill_null(pl.lit(seen)), pl.lit(seen))
    return wall_to_utc(local, (running - local) >= pl.duration(minutes=10), ctx.timezone)


def remember_max_local(df: pl.DataFrame, local_col: str, ctx: ParseContext, state_key: str) -> None:
    """Record the latest wall time of a chunk so the next chunk resolves DST consistently."""
    value = df.get_column(local_col).max()
    if isinstance(value, dt.datetime):
        state = ctx.state.setdefault(state_key, {})
        prev = state.get("max_local")
        state["max_local"] = value if prev is None or value > prev else prev
