"""`msgtrace report`: pflogsumm's sections and more, over any window, from the trace rows.

Every figure is a Polars group_by over the rows `msgtrace trace` would return with the same
filters (message rows plus their Direction): nothing here reads the store itself. Counting rules:

- Rows: message rows (one per message and recipient), as `msgtrace summary` counts them;
- Messages: distinct MessageTraceIds among those rows;
- Bytes: in the sections about messages as they came in (per hour, per day, senders, sender
  domains) each message's Size once ("bytes received"); in the sections about recipients
  (statuses, directions, recipients, recipient domains, relays) the Size once per row, i.e. per
  recipient ("bytes delivered", as pflogsumm counts them).

Hours and days are those of Received in the report's time zone. Reasons are the current state's
(a deferral later delivered counts as Delivered, not as a deferral), normalised so that the same
answer from different servers or about different recipients is one line.

Fast by design: the rows are read once for the counts (the columns they need, a 64-bit hash of
the MessageTraceId as message key), once for the rows with a reason (their texts), once for the
stuck rows; message-level counts use one "first row of its message" flag instead of a distinct
count; sender domains are summed from the per-sender counts (a message has one sender); reply
texts are normalised once per distinct shape, not once per row.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from msgtrace.ingest.schema import STATUSES
from msgtrace.query.direction import DIRECTIONS

# The json keys, in this order (the list, then the additions: relays and the window).
SECTIONS = (
    "totals", "by_direction", "by_hour", "by_day", "top_senders", "top_recipients", "top_sender_domains",
    "top_recipient_domains", "deferral_reasons", "bounce_reasons", "reject_reasons", "delay", "stuck",
    "top_relays", "window",
)  # fmt: skip
DEFAULT_TOP = 10
DEFAULT_STUCK_HOURS = 4.0
STUCK_LIMIT = 100
PERCENTILES = (0.5, 0.9, 0.99)
NULL_SENDER = "<>"
NO_DOMAIN = "(no domain)"
# statuses whose rows carry a reason: deferral, bounce, reject
_REASON_STATUSES = ["Pending", "Failed", "None", "FilteredAsSpam"]


@dataclass(frozen=True)
class ReportOptions:
    """How the report is cut: its time zone (hours, days), `now` (stuck), how many top entries."""

    timezone: str = "UTC"
    now: dt.datetime | None = None
    stuck_hours: float = DEFAULT_STUCK_HOURS
    top: int = DEFAULT_TOP


def polars_zone(tz: dt.tzinfo | None) -> str:
    """A time zone Polars understands for a tzinfo from query.dates.zone (None: the machine's)."""
    if tz is None:
        from msgtrace.ingest.localzone import local_zone

        return str(local_zone())
    key = getattr(tz, "key", None)
    if key:
        return str(key)
    offset = tz.utcoffset(None) or dt.timedelta(0)
    if offset == dt.timedelta(0):
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# --- building blocks ---------------------------------------------------------------------------------


def message_key() -> pl.Expr:
    """A 64-bit hash of the MessageTraceId: groups and counts faster than the GUID text."""
    return pl.col("message_trace_id").hash().alias("mid")


_COUNT_COLUMNS = ("received", "status", "sender_lower", "recipient_lower", "size", "relay", "delay", "direction")


def counts_rows(lf: pl.LazyFrame, columns: tuple[str, ...] = _COUNT_COLUMNS) -> pl.DataFrame:
    """The columns the counts need, read once; `first` marks the first row of each message."""
    return (
        lf.select(*columns, message_key())
        .with_columns(pl.col("size").fill_null(0), pl.col("mid").is_first_distinct().alias("first"))
        .collect()
    )


def domain_of(col: pl.Expr) -> pl.Expr:
    """The domain of an address (after its last @); `<>` for the null sender, `(no domain)` for a bare name."""
    return (
        pl.when(col.is_null() | (col == "") | (col == NULL_SENDER))
        .then(pl.lit(NULL_SENDER))
        .when(col.str.contains("@", literal=True))
        .then(col.str.split("@").list.last())
        .otherwise(pl.lit(NO_DOMAIN))
    )


def address(c: pl.Expr) -> pl.Expr:
    """An address for display: `<>` for the null sender."""
    return pl.when(c.is_null() | (c == "")).then(pl.lit(NULL_SENDER)).otherwise(c)


def per_message(df: pl.DataFrame, key: pl.Expr, name: str) -> pl.DataFrame:
    """Messages, Rows, Bytes (each message once) per key, for keys every row of a message shares."""
    return df.group_by(key.alias(name)).agg(
        pl.col("first").sum().cast(pl.Int64).alias("Messages"),
        pl.len().cast(pl.Int64).alias("Rows"),
        pl.col("size").filter(pl.col("first")).sum().cast(pl.Int64).alias("Bytes"),
    )


def per_row(df: pl.DataFrame, key: pl.Expr, name: str) -> pl.DataFrame:
    """Rows, Messages (distinct), Bytes (per row) per key, for keys that differ between a message's rows."""
    return df.group_by(key.alias(name)).agg(
        pl.len().cast(pl.Int64).alias("Rows"),
        pl.col("mid").n_unique().cast(pl.Int64).alias("Messages"),
        pl.col("size").sum().cast(pl.Int64).alias("Bytes"),
    )


def _ordered(df: pl.DataFrame, col: str, order: tuple[str, ...]) -> pl.DataFrame:
    rank = {v: i for i, v in enumerate(order)}
    o = pl.col(col).replace_strict(rank, default=len(rank), return_dtype=pl.Int64)
    return df.sort(o, pl.col(col)).select(col, "Rows", "Messages", "Bytes")


def top(df: pl.DataFrame, label: str, n: int) -> dict[str, pl.DataFrame]:
    """The n largest groups by message count and by bytes (ties by label)."""
    by_count = df.sort(["Messages", "Rows", label], descending=[True, True, False]).head(n)
    by_bytes = df.sort(["Bytes", label], descending=[True, False]).head(n)
    return {"by_count": by_count, "by_bytes": by_bytes}


# Reply texts, normalised: one line per kind of answer, whoever it was about.
_LEADING = [
    r"^host \S+ said: ",  # Postfix smtp: host mx.example.com[1.2.3.4] said: 550 ...
    r"^(?:RCPT|MAIL|DATA|END-OF-MESSAGE|CONNECT|EHLO|HELO) from \S+: ",  # Postfix smtpd NOQUEUE reject
    r"^SMTP error from remote mail server after [^:]*(?::<[^>]*>)?: ",  # Exim
    r"^Deferred: ",  # Sendmail
]
_DSN_REPLY = r"\b([245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}\b.*)$"


def normalize_reason(text: pl.Expr, dsn: pl.Expr) -> pl.Expr:
    """DSN code plus the reply, with addresses, host names, IPs, ids and numbers taken out.

    `host mx.example.com[192.0.2.1] said: 550 5.1.1 <bob@example.com>: Recipient address
    rejected: User unknown (in reply to RCPT TO command)` becomes
    `550 5.1.1 <*>: Recipient address rejected: User unknown`.
    """
    t = text.fill_null("")
    for pattern in _LEADING:
        t = t.str.replace(pattern, "")
    t = pl.coalesce(t.str.extract(_DSN_REPLY), t)
    code = t.str.extract(r"^([245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\b)?)")
    rest = t.str.slice(code.str.len_chars().fill_null(0))
    rest = (
        rest.str.replace(r"\s*\(in reply to [^)]*\)\s*$", "")
        .str.replace(r";\s*from=<.*$", "")  # Postfix reject: ; from=<a> to=<b> proto=ESMTP helo=<h>
        .str.replace_all(r"<[^<>]*>", "<*>")
        .str.replace_all(r"[\w.+=-]+@[\w.-]+", "*")
        .str.replace_all(r"[\w.-]+\[[^\[\]]*\]", "*[*]")
        .str.replace_all(r"\[[^\[\]]*\]", "[*]")
        # kept whole: blocklist names and nested SMTP replies ({...} shields them from the rules below)
        .str.replace_all(r"(blocked using|listed (?:in|at)) ([\w.-]+)", "${1} {${2}}")
        .str.replace_all(r"\b([245]\d\d)[ -]([245]\.\d{1,3}\.\d{1,3})\b", "{${1}_${2}}")
        .str.replace_all(r"(^|[^\w.{-])(?:[a-z0-9-]+\.)+[a-z]{2,}\b", "${1}*")  # host and domain names
        .str.replace_all(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", "*")
        .str.replace_all(r"\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}\b", "*")  # IPv6
        .str.replace_all(r"\b[0-9A-F]{8,}\b", "*")  # queue ids
        .str.replace_all(r"(^|[^\w.{])\d+", "${1}*")
        .str.replace_all(r"\{(\d{3})_([^}]*)\}", "${1} ${2}")
        .str.replace_all(r"\{([^}]*)\}", "${1}")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )
    reason = pl.concat_str([code.fill_null("").str.strip_chars(), rest], separator=" ").str.strip_chars()
    with_dsn = pl.when(code.is_null() & dsn.is_not_null() & (dsn != "")).then(
        pl.concat_str([dsn, reason], separator=" ")
    )
    return with_dsn.otherwise(reason).str.strip_chars()


def reasons_rows(lf: pl.LazyFrame) -> pl.DataFrame:
    """The rows with a reason (deferred, bounced, rejected), their Reason normalised.

    Addresses (`<...>`) and bracketed IPs are cut first, in one cheap pass over the rows; what
    is left has few distinct shapes, and the full normalisation runs once per shape.
    """
    rows = (
        lf.filter(pl.col("status").is_in(_REASON_STATUSES))
        .select(
            "status",
            "dsn",
            message_key(),
            pl.col("detail")
            .fill_null("")
            .str.replace_all(r"<[^<>]*>", "<*>")
            .str.replace_all(r"\[[^\[\]]*\]", "[*]")
            .alias("shape"),
        )
        .with_columns(pl.struct("dsn", "shape").hash().alias("kid"))
        .collect()
    )
    if rows.is_empty():  # no regex to run (a dashboard's piece of a day often has no such row)
        return rows.select("status", "mid", pl.lit(None, pl.String).alias("Reason"), "shape")
    shapes = rows.unique("kid").select("kid", normalize_reason(pl.col("shape"), pl.col("dsn")).alias("Reason"))
    return rows.join(shapes, on="kid", how="left").select("status", "mid", "Reason", "shape")


def reason_counts(rows: pl.DataFrame) -> pl.DataFrame:
    """Reason, Rows, Messages of these rows (reasons_rows)."""
    return rows.group_by("Reason").agg(
        pl.len().cast(pl.Int64).alias("Rows"), pl.col("mid").n_unique().cast(pl.Int64).alias("Messages")
    )


def reasons(counts: pl.DataFrame, n: int) -> pl.DataFrame:
    """The n most frequent reasons of reason_counts."""
    return counts.sort(["Rows", "Reason"], descending=[True, False]).head(n)


# --- the report ----------------------------------------------------------------------------------------


# A report is made in two steps: `partial` counts a set of rows into small tables whose figures
# add up across sets of rows that share no message (two partitions, two files of a compacted
# store); `finish` turns the sum of partials (`merge`) into the sections. A month is then the
# sum of its days, and a day already counted (query.report_store) need not be read again.
Partial = dict[str, pl.DataFrame]
# the partial's tables: name -> what identifies a row of it (the rest are additive counts)
PARTIAL_KEYS: dict[str, tuple[str, ...]] = {
    "status": ("Status",),
    "direction": ("Direction",),
    "minute": ("Minute",),  # Received to the minute (UTC): any zone's hours and days are unions of them
    "minute_status": ("Minute", "Status"),  # rows per minute and status (the dashboard's chart)
    "sender": ("Address",),
    "recipient": ("Address",),
    "recipient_domain": ("Domain",),
    "relay": ("Relay",),
    "deferral": ("Reason",),
    "bounce": ("Reason",),
    "reject": ("Reason",),
    "delay": ("rcpt_domain", "delay"),  # Delivered rows' delays, counted by value: percentiles stay exact
    "open": (),  # the Pending and GettingStatus rows themselves (stuck depends on `now`)
}


def partial(lf: pl.LazyFrame, tables: tuple[str, ...] | None = None) -> Partial:
    """The report's counts of these rows (stored columns plus `direction`), to be merged and finished.

    tables: only these of PARTIAL_KEYS (None: all); then only the columns they need are read
    (without `direction` unless that table is asked for), so a dashboard's cut day costs less."""
    want = tuple(PARTIAL_KEYS) if tables is None else tables
    columns = tuple(c for c in _COUNT_COLUMNS if c in _BASE_COLUMNS or c in want)
    if tables is not None:
        # the columns of these tables read once (a piece of a day: one scan instead of two or three)
        read = [*columns, "message_trace_id"]
        read += ["dsn", "detail"] if {"deferral", "bounce", "reject"} & set(want) else []
        read += _OPEN_COLUMNS if "open" in want else []
        lf = lf.select(list(dict.fromkeys(read))).collect().lazy()
    df = counts_rows(lf, columns).with_columns(domain_of(pl.col("recipient_lower")).alias("rcpt_domain"))
    out: Partial = {}
    if {"deferral", "bounce", "reject"} & set(want):
        with_reason = reasons_rows(lf)
        rejected = with_reason.filter(
            pl.col("status").is_in(["None", "FilteredAsSpam"]) & ~pl.col("shape").str.starts_with("redirected to")
        )
        out["deferral"] = reason_counts(with_reason.filter(pl.col("status") == "Pending"))
        out["bounce"] = reason_counts(with_reason.filter(pl.col("status") == "Failed"))
        out["reject"] = reason_counts(rejected)
    minute = pl.col("received").dt.truncate("1m")
    makers = {
        "status": lambda: per_row(df, pl.col("status"), "Status"),
        "direction": lambda: per_row(df, pl.col("direction"), "Direction"),
        "minute": lambda: per_message(df, minute, "Minute"),
        "minute_status": lambda: df.group_by(minute.alias("Minute"), pl.col("status").alias("Status")).agg(
            pl.len().cast(pl.Int64).alias("Rows")
        ),
        "sender": lambda: per_message(df, pl.col("sender_lower"), "Address"),
        "recipient": lambda: per_row(df, pl.col("recipient_lower"), "Address"),
        "recipient_domain": lambda: per_row(df, pl.col("rcpt_domain"), "Domain"),
        "relay": lambda: per_row(df, pl.col("relay"), "Relay"),
        "delay": lambda: (
            df.filter((pl.col("status") == "Delivered") & pl.col("delay").is_not_null())
            .group_by("rcpt_domain", "delay")
            .agg(pl.len().cast(pl.Int64).alias("count"))
        ),
        "open": lambda: lf.filter(pl.col("status").is_in(["Pending", "GettingStatus"])).select(_OPEN_COLUMNS).collect(),
    }
    for name in PARTIAL_KEYS:
        if name in want and name not in out:
            out[name] = makers[name]()
    return {name: out[name] for name in PARTIAL_KEYS if name in want}


# read whichever tables are asked for (the others add relay, delay, direction)
_BASE_COLUMNS = ("received", "status", "sender_lower", "recipient_lower", "size")


_OPEN_COLUMNS = ["received", "status", "sender_address", "recipient_address", "message_trace_id", "detail"]


def merge(parts: list[Partial]) -> Partial:
    """The partial of the union of the partials' rows (which share no message)."""
    if len(parts) == 1:
        return parts[0]
    out: Partial = {}
    for name, keys in PARTIAL_KEYS.items():
        if name not in parts[0]:
            continue  # a partial of some tables only (partial's `tables`)
        stacked = pl.concat([p[name] for p in parts], how="vertical")
        if not keys:
            out[name] = stacked
            continue
        counts = [c for c in stacked.columns if c not in keys]
        out[name] = stacked.group_by(list(keys)).agg(pl.col(counts).sum())
    return out


def finish(p: Partial, options: ReportOptions) -> dict[str, Any]:
    """Every section of the report from the partial of its rows."""
    n = options.top
    local = pl.col("Minute").dt.convert_time_zone(options.timezone)
    sums = pl.col("Messages", "Rows", "Bytes").sum()
    # grouped on the stored text, labelled (null and "" merged) here: far fewer values to touch
    senders = relabel(p["sender"], "Address", address(pl.col("Address")))
    sender_domains = relabel(senders, "Domain", domain_of(pl.col("Address")))
    recipients = p["recipient"].filter(pl.col("Address").fill_null("") != "")
    recipient_domains = p["recipient_domain"].filter(pl.col("Domain") != NULL_SENDER)
    relays = p["relay"].filter(pl.col("Relay").fill_null("") != "")
    return {
        "totals": _ordered(p["status"], "Status", STATUSES),
        "by_direction": _ordered(p["direction"], "Direction", DIRECTIONS),
        "by_hour": p["minute"].group_by(local.dt.truncate("1h").alias("Hour")).agg(sums).sort("Hour"),
        "by_day": p["minute"].group_by(local.dt.date().alias("Day")).agg(sums).sort("Day"),
        "top_senders": top(senders, "Address", n),
        "top_recipients": top(recipients, "Address", n),
        "top_sender_domains": top(sender_domains, "Domain", n),
        "top_recipient_domains": top(recipient_domains, "Domain", n),
        "deferral_reasons": reasons(p["deferral"], n),
        "bounce_reasons": reasons(p["bounce"], n),
        "reject_reasons": reasons(p["reject"], n),
        "delay": delays(p["delay"], n),
        "stuck": stuck(p["open"], options),
        "top_relays": relays.sort(["Rows", "Relay"], descending=[True, False]).head(n),
    }


def build(lf: pl.LazyFrame, options: ReportOptions) -> dict[str, Any]:
    """Every section of the report from the filtered message rows (stored columns plus `direction`)."""
    return finish(partial(lf), options)


def relabel(df: pl.DataFrame, name: str, label: pl.Expr) -> pl.DataFrame:
    """Per-message counts regrouped by a label of their key (additive: a message has one sender)."""
    return df.group_by(label.alias(name)).agg(pl.col("Messages", "Rows", "Bytes").sum())


def delays(counted: pl.DataFrame, n: int) -> dict[str, Any]:
    """Delivery delay percentiles of Delivered rows, overall and for the n busiest recipient domains.

    counted: the rows' (rcpt_domain, delay) pairs and how many rows have each (a month of a busy
    server has millions of rows but some ten thousand distinct pairs)."""
    counted = counted.filter(pl.col("delay").is_not_null())
    per_domain = counted.group_by("rcpt_domain").agg(pl.col("count").sum())
    busiest = per_domain.sort(["count", "rcpt_domain"], descending=[True, False]).head(n)
    overall = pl.DataFrame(
        [{"Rows": int(counted.get_column("count").sum()), **weighted_percentiles(counted)}],
        schema=_DELAY_SCHEMA,
    )
    rows = []
    for domain, count in busiest.iter_rows():
        mine = counted.filter(pl.col("rcpt_domain") == domain)
        rows.append({"Domain": domain, "Rows": int(count), **weighted_percentiles(mine)})
    by_domain = pl.DataFrame(rows, schema={"Domain": pl.String, **_DELAY_SCHEMA}).sort(
        ["Rows", "Domain"], descending=[True, False]
    )
    return {"overall": overall, "by_domain": by_domain}


_DELAY_SCHEMA: dict[str, pl.DataType] = {
    "Rows": pl.Int64(),
    **{f"p{int(q * 100)}": pl.Float64() for q in PERCENTILES},
}


def weighted_percentiles(counted: pl.DataFrame) -> dict[str, float | None]:
    """p50, p90, p99 of the delays `counted` holds with their counts: the values Polars' (and
    numpy's) linear interpolation gives over the rows themselves, found by cumulative counts
    instead of spreading millions of values out again."""
    import numpy as np

    values = counted.get_column("delay").to_numpy()
    counts = counted.get_column("count").to_numpy()
    if not len(values):
        return {f"p{int(q * 100)}": None for q in PERCENTILES}
    order = np.argsort(values, kind="stable")
    values, cum = values[order], np.cumsum(counts[order])
    out: dict[str, float | None] = {}
    for q in PERCENTILES:
        at = (int(cum[-1]) - 1) * q
        lo, hi = math.floor(at), math.ceil(at)
        low = values[np.searchsorted(cum, lo, side="right")]
        high = values[np.searchsorted(cum, hi, side="right")]
        # the same arithmetic as Polars' linear quantile, so the figures are equal, not just close
        out[f"p{int(q * 100)}"] = float(low) if low == high else float((at - lo) * (high - low) + low)
    return out


def stuck(open_rows: pl.DataFrame, options: ReportOptions) -> dict[str, Any]:
    """Rows still Pending or GettingStatus, received more than stuck_hours before now, oldest first."""
    now = options.now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(hours=options.stuck_hours)
    rows = (
        open_rows.lazy()
        .filter(pl.col("status").is_in(["Pending", "GettingStatus"]) & (pl.col("received") < cutoff))
        .select(
            pl.col("received").alias("Received"),
            ((pl.lit(now) - pl.col("received")).dt.total_seconds() / 3600).round(1).alias("AgeHours"),
            pl.col("status").alias("Status"),
            pl.col("sender_address").fill_null("").alias("SenderAddress"),
            pl.col("recipient_address").fill_null("").alias("RecipientAddress"),
            pl.col("message_trace_id").alias("MessageTraceId"),
            pl.col("detail").fill_null("").alias("Detail"),
        )
        .collect()
    )
    listed = rows.sort("Received", pl.col("RecipientAddress").str.to_lowercase()).head(STUCK_LIMIT)
    return {"hours": options.stuck_hours, "count": rows.height, "rows": listed}


def report_rows(store: Path, flt: Any) -> pl.LazyFrame:
    """The rows a trace with this filter returns (its --direction included), with their direction."""
    from msgtrace.query import engine

    return engine.scan(store, flt, every_row_direction=True)


# --- rendering ------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    from msgtrace.query.output import text_times

    if isinstance(value, pl.DataFrame):
        df = value.with_columns(
            pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%:z")
            for c, t in value.schema.items()
            if isinstance(t, pl.Datetime) and t.time_zone not in (None, "UTC")
        )
        df = text_times(df).with_columns(pl.col(c).cast(pl.String) for c, t in df.schema.items() if t == pl.Date)
        return df.to_dicts()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def to_json(report: dict[str, Any]) -> str:
    """The report as one JSON object, keys in SECTIONS order; times ISO 8601 (UTC with Z, local with offset)."""
    import json

    return json.dumps({k: _jsonable(report[k]) for k in SECTIONS if k in report}, indent=1, ensure_ascii=False) + "\n"
