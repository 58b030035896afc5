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


def counts_rows(lf: pl.LazyFrame) -> pl.DataFrame:
    """The columns the counts need, read once; `first` marks the first row of each message."""
    return (
        lf.select(
            "received",
            "status",
            "sender_lower",
            "recipient_lower",
            "size",
            "relay",
            "delay",
            "direction",
            message_key(),
        )  # fmt: skip
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
    shapes = rows.unique("kid").select("kid", normalize_reason(pl.col("shape"), pl.col("dsn")).alias("Reason"))
    return rows.join(shapes, on="kid", how="left").select("status", "mid", "Reason", "shape")


def reasons(rows: pl.DataFrame, n: int) -> pl.DataFrame:
    """Reason, Rows, Messages of these rows, most frequent first."""
    out = rows.group_by("Reason").agg(
        pl.len().cast(pl.Int64).alias("Rows"), pl.col("mid").n_unique().cast(pl.Int64).alias("Messages")
    )
    return out.sort(["Rows", "Reason"], descending=[True, False]).head(n)


def percentiles(values: pl.Expr) -> list[pl.Expr]:
    """p50, p90, p99 (linear interpolation, as numpy.percentile) of delays in seconds."""
    return [values.quantile(q, interpolation="linear").alias(f"p{int(q * 100)}") for q in PERCENTILES]


# --- the report ----------------------------------------------------------------------------------------


def build(lf: pl.LazyFrame, options: ReportOptions) -> dict[str, Any]:
    """Every section of the report from the filtered message rows (stored columns plus `direction`)."""
    df = counts_rows(lf).with_columns(domain_of(pl.col("recipient_lower")).alias("rcpt_domain"))
    n = options.top
    local = pl.col("received").dt.convert_time_zone(options.timezone)
    # group on the stored text, label (and merge null with "") after: far fewer values to touch
    senders = relabel(per_message(df, pl.col("sender_lower"), "Address"), "Address", address(pl.col("Address")))
    sender_domains = relabel(senders, "Domain", domain_of(pl.col("Address")))
    recipients = per_row(df, pl.col("recipient_lower"), "Address").filter(pl.col("Address").fill_null("") != "")
    recipient_domains = per_row(df, pl.col("rcpt_domain"), "Domain").filter(pl.col("Domain") != NULL_SENDER)
    relays = per_row(df, pl.col("relay"), "Relay").filter(pl.col("Relay").fill_null("") != "")
    with_reason = reasons_rows(lf)
    rejected = with_reason.filter(
        pl.col("status").is_in(["None", "FilteredAsSpam"]) & ~pl.col("shape").str.starts_with("redirected to")
    )
    return {
        "totals": _ordered(per_row(df, pl.col("status"), "Status"), "Status", STATUSES),
        "by_direction": _ordered(per_row(df, pl.col("direction"), "Direction"), "Direction", DIRECTIONS),
        "by_hour": per_message(df, local.dt.truncate("1h"), "Hour").sort("Hour"),
        "by_day": per_message(df, local.dt.date(), "Day").sort("Day"),
        "top_senders": top(senders, "Address", n),
        "top_recipients": top(recipients, "Address", n),
        "top_sender_domains": top(sender_domains, "Domain", n),
        "top_recipient_domains": top(recipient_domains, "Domain", n),
        "deferral_reasons": reasons(with_reason.filter(pl.col("status") == "Pending"), n),
        "bounce_reasons": reasons(with_reason.filter(pl.col("status") == "Failed"), n),
        "reject_reasons": reasons(rejected, n),
        "delay": delays(df, n),
        "stuck": stuck(lf, options),
        "top_relays": relays.sort(["Rows", "Relay"], descending=[True, False]).head(n),
    }


def relabel(df: pl.DataFrame, name: str, label: pl.Expr) -> pl.DataFrame:
    """Per-message counts regrouped by a label of their key (additive: a message has one sender)."""
    return df.group_by(label.alias(name)).agg(pl.col("Messages", "Rows", "Bytes").sum())


def delays(df: pl.DataFrame, n: int) -> dict[str, Any]:
    """Delivery delay percentiles of Delivered rows, overall and for the n busiest recipient domains."""
    delivered = (
        df.select("status", "rcpt_domain", "delay")
        .filter((pl.col("status") == "Delivered") & pl.col("delay").is_not_null())
        .drop("status")
    )
    overall = delivered.select(pl.len().cast(pl.Int64).alias("Rows"), *percentiles(pl.col("delay")))
    busiest = (
        delivered.group_by("rcpt_domain")
        .len()
        .sort(["len", "rcpt_domain"], descending=[True, False])
        .head(n)
        .get_column("rcpt_domain")
    )
    by_domain = (
        delivered.filter(pl.col("rcpt_domain").is_in(busiest.implode()))
        .group_by(pl.col("rcpt_domain").alias("Domain"))
        .agg(pl.len().cast(pl.Int64).alias("Rows"), *percentiles(pl.col("delay")))
        .sort(["Rows", "Domain"], descending=[True, False])
    )
    return {"overall": overall, "by_domain": by_domain}


def stuck(lf: pl.LazyFrame, options: ReportOptions) -> dict[str, Any]:
    """Rows still Pending or GettingStatus, received more than stuck_hours before now, oldest first."""
    now = options.now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(hours=options.stuck_hours)
    rows = (
        lf.filter(pl.col("status").is_in(["Pending", "GettingStatus"]) & (pl.col("received") < cutoff))
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
