"""`msgtrace report`: pflogsumm's sections and more, over any window, from the trace rows.

Every figure is a Polars group_by over the rows `msgtrace trace` would return with the same
filters (message rows plus their Direction): nothing here reads the store itself. Counting rules,
the same in every section:

- Rows: message rows (one per message and recipient), as `msgtrace summary` counts them;
- Messages: distinct MessageTraceIds among those rows;
- Bytes: the Size of each of those messages, counted once per group (a message to three
  recipients of one domain adds its size once to that domain, once to each recipient).

Hours and days are those of Received in the report's time zone. Reasons are the current state's
(a deferral later delivered counts as Delivered, not as a deferral), normalised so that the same
answer from different servers or about different recipients is one line.
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
_COLUMNS = [
    "received", "status", "sender_lower", "recipient_lower", "size", "message_trace_id", "relay", "dsn",
    "detail", "delay", "direction", "sender_address", "recipient_address",
]  # fmt: skip
NULL_SENDER = "<>"


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


def prepare(lf: pl.LazyFrame) -> pl.DataFrame:
    """The columns the report reads, once; `mid`, a hash of the MessageTraceId, groups cheaper than its text."""
    return lf.select(*[pl.col(c) for c in _COLUMNS], pl.col("message_trace_id").hash().alias("mid")).collect()


def tally(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Rows, Messages and Bytes per group of keys (see the module's counting rules)."""
    per_message = df.group_by([*keys, "mid"]).agg(
        pl.len().alias("Rows"), pl.col("size").first().fill_null(0).alias("Bytes")
    )
    return per_message.group_by(keys).agg(
        pl.col("Rows").sum().cast(pl.Int64),
        pl.len().cast(pl.Int64).alias("Messages"),
        pl.col("Bytes").sum().cast(pl.Int64),
    )


def _ordered(df: pl.DataFrame, col: str, order: tuple[str, ...]) -> pl.DataFrame:
    rank = {v: i for i, v in enumerate(order)}
    return (
        df.with_columns(pl.col(col).replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_o"))
        .sort("_o", col)
        .drop("_o")
    )


def domain(col: str) -> pl.Expr:
    """The domain of an address column (lowercase); `<>` for the null sender, `(no domain)` for a bare name."""
    c = pl.col(col)
    return (
        pl.when(c.is_null() | (c == ""))
        .then(pl.lit(NULL_SENDER))
        .otherwise(pl.coalesce(c.str.extract(r"@([^@]*)$"), pl.lit("(no domain)")))
    )


def address(col: str) -> pl.Expr:
    """An address for display: `<>` for the null sender."""
    c = pl.col(col)
    return pl.when(c.is_null() | (c == "")).then(pl.lit(NULL_SENDER)).otherwise(c)


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


def reasons(df: pl.DataFrame, n: int) -> pl.DataFrame:
    """Reason, Rows, Messages of these rows, most frequent first."""
    if not df.height:
        return pl.DataFrame(schema={"Reason": pl.String, "Rows": pl.Int64, "Messages": pl.Int64})
    keyed = df.with_columns(normalize_reason(pl.col("detail"), pl.col("dsn")).alias("Reason"))
    out = keyed.group_by("Reason").agg(
        pl.len().cast(pl.Int64).alias("Rows"), pl.col("mid").n_unique().cast(pl.Int64).alias("Messages")
    )
    return out.sort(["Rows", "Reason"], descending=[True, False]).head(n)


def percentiles(values: pl.Expr) -> list[pl.Expr]:
    """p50, p90, p99 (linear interpolation, as numpy.percentile) of delays in seconds."""
    return [values.quantile(q, interpolation="linear").alias(f"p{int(q * 100)}") for q in PERCENTILES]


# --- the report ----------------------------------------------------------------------------------------


def build(lf: pl.LazyFrame, options: ReportOptions) -> dict[str, Any]:
    """Every section of the report from the filtered message rows (stored columns plus `direction`)."""
    df = prepare(lf)
    n = options.top
    local = pl.col("received").dt.convert_time_zone(options.timezone)
    # per message: what is the same for all its rows (received, sender, size)
    messages = df.group_by("mid").agg(
        pl.col("received").first(),
        pl.col("sender_lower").first(),
        pl.len().cast(pl.Int64).alias("Rows"),
        pl.col("size").first().fill_null(0).alias("Bytes"),
    )

    def per_message(key: pl.Expr, name: str) -> pl.DataFrame:
        return messages.group_by(key.alias(name)).agg(
            pl.len().cast(pl.Int64).alias("Messages"),
            pl.col("Rows").sum().cast(pl.Int64),
            pl.col("Bytes").sum().cast(pl.Int64),
        )

    hours = per_message(local.dt.truncate("1h"), "Hour").sort("Hour")
    days = per_message(local.dt.date(), "Day").sort("Day")
    senders = per_message(address("sender_lower"), "Address")
    sender_domains = per_message(domain("sender_lower"), "Domain")
    has_rcpt = df.filter(pl.col("recipient_lower").fill_null("") != "")
    recipients = tally(has_rcpt.with_columns(pl.col("recipient_lower").alias("Address")), ["Address"])
    recipient_domains = tally(has_rcpt.with_columns(domain("recipient_lower").alias("Domain")), ["Domain"])
    relays = tally(df.filter(pl.col("relay").fill_null("") != "").rename({"relay": "Relay"}), ["Relay"])
    rejected = df.filter(
        pl.col("status").is_in(["None", "FilteredAsSpam"])
        & ~pl.col("detail").fill_null("").str.starts_with("redirected to")
    )
    return {
        "totals": _ordered(tally(df.rename({"status": "Status"}), ["Status"]), "Status", STATUSES),
        "by_direction": _ordered(tally(df.rename({"direction": "Direction"}), ["Direction"]), "Direction", DIRECTIONS),
        "by_hour": hours,
        "by_day": days,
        "top_senders": top(senders, "Address", n),
        "top_recipients": top(recipients, "Address", n),
        "top_sender_domains": top(sender_domains, "Domain", n),
        "top_recipient_domains": top(recipient_domains, "Domain", n),
        "deferral_reasons": reasons(df.filter(pl.col("status") == "Pending"), n),
        "bounce_reasons": reasons(df.filter(pl.col("status") == "Failed"), n),
        "reject_reasons": reasons(rejected, n),
        "delay": delays(df, n),
        "stuck": stuck(df, options),
        "top_relays": relays.sort(["Rows", "Relay"], descending=[True, False]).head(n),
    }


def delays(df: pl.DataFrame, n: int) -> dict[str, Any]:
    """Delivery delay percentiles of Delivered rows, overall and for the n busiest recipient domains."""
    delivered = df.filter((pl.col("status") == "Delivered") & pl.col("delay").is_not_null())
    overall = delivered.select(pl.len().cast(pl.Int64).alias("Rows"), *percentiles(pl.col("delay")))
    by_domain = (
        delivered.group_by(domain("recipient_lower").alias("Domain"))
        .agg(pl.len().cast(pl.Int64).alias("Rows"), *percentiles(pl.col("delay")))
        .sort(["Rows", "Domain"], descending=[True, False])
        .head(n)
    )
    return {"overall": overall, "by_domain": by_domain}


def stuck(df: pl.DataFrame, options: ReportOptions) -> dict[str, Any]:
    """Rows still Pending or GettingStatus, received more than stuck_hours before now, oldest first."""
    now = options.now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(hours=options.stuck_hours)
    rows = df.filter(pl.col("status").is_in(["Pending", "GettingStatus"]) & (pl.col("received") < cutoff))
    listed = (
        rows.sort("received", "recipient_lower")
        .head(STUCK_LIMIT)
        .select(
            pl.col("received").alias("Received"),
            ((pl.lit(now) - pl.col("received")).dt.total_seconds() / 3600).round(1).alias("AgeHours"),
            pl.col("status").alias("Status"),
            pl.col("sender_address").fill_null("").alias("SenderAddress"),
            pl.col("recipient_address").fill_null("").alias("RecipientAddress"),
            pl.col("message_trace_id").alias("MessageTraceId"),
            pl.col("detail").fill_null("").alias("Detail"),
        )
    )
    return {"hours": options.stuck_hours, "count": rows.height, "rows": listed}


def report_rows(store: Path, flt: Any, directions: tuple[str, ...]) -> pl.LazyFrame:
    """The rows a trace with this filter returns, with their direction, restricted to `directions`."""
    from msgtrace.query import engine
    from msgtrace.query.direction import store_local_domains, with_direction

    lf = with_direction(engine.scan(store, flt), store_local_domains(store))
    return lf.filter(pl.col("direction").is_in(list(directions))) if directions else lf


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
