"""The rows `msgtrace trace` must return for a generated log: the ground truth, from the model.

One row per (message, recipient) the log reveals, with the contract's columns except
MessageTraceId (a hash the generator cannot predict):

- Received: the message's first line, at the log's precision (seconds; Exchange milliseconds), UTC.
- A recipient is known once a line names it: Postfix, Exim and Sendmail name recipients only when
  they deliver, so a message with no delivery yet is ONE row with RecipientAddress "" and
  GettingStatus; Exchange names them all on RECEIVE.
- Status: the latest attempt in the log (deferred Pending, sent Delivered, bounced/expired Failed).
- Aliases: several members sharing one original address give that address an Expanded row; a
  single member (a one-to-one rewrite) gives the original address a row with status None.
- Before-queue rejects: a row each, None or FilteredAsSpam (blocklists), no MessageId, no Size.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from msgtrace.generate import model as M
from msgtrace.ingest.schema import TIME

COLUMNS: dict[str, pl.DataType] = {
    "Organization": pl.String,
    "MessageId": pl.String,
    "Received": TIME,
    "SenderAddress": pl.String,
    "RecipientAddress": pl.String,
    "Subject": pl.String,
    "Status": pl.String,
    "ToIP": pl.String,
    "FromIP": pl.String,
    "Size": pl.Int64,
}
_STATUS = {M.SENT: "Delivered", M.DEFERRED: "Pending", M.BOUNCED: "Failed", M.EXPIRED: "Failed"}


@dataclass(frozen=True)
class Rules:
    """What a format's log reveals."""

    millis: bool = False  # Received precision
    subject: str = "logged"  # "logged": where header_checks (subj_logged) or amavis (cf) logs it; "all"; "none"
    rcpts_on_receive: bool = False  # recipients named at arrival (Exchange)
    dsn_msgid: bool = True  # a bounce notice's Message-ID is logged
    dsn_size: bool = True
    dsn_subject: bool = False
    reject_size: int | None = None  # Sendmail logs `size=0` for a session whose recipients were all refused
    dsn_received_at_delivery: bool = False
    to_ip_on_failure: bool = True  # a deferral/bounce names the relay's IP (Exchange: only SEND does)  # the notice's first line is its delivery (Sendmail: no from=)


def truth(model: M.Model, rules: Rules) -> pl.DataFrame:
    """The expected trace rows, sorted like the trace (Received descending, then recipient)."""
    msgs = model.msgs
    org = model.cfg.domain
    dsn = pl.col("kind") == M.DSN
    unit = 1000 if rules.millis else 1_000_000
    if rules.subject == "all":
        subject = pl.when(dsn & ~pl.lit(rules.dsn_subject)).then(pl.lit("")).otherwise("subject")
    elif rules.subject == "logged":
        # the amavis verdict line names the Subject of every message it passed (Postfix)
        filtered = pl.col("cf") & (pl.col("th") < model.cfg.end_us)
        subject = pl.when(pl.col("subj_logged") | filtered).then("subject").otherwise(pl.lit(""))
    else:
        subject = pl.lit("")
    head = msgs.select(
        "m",
        "kind",
        "reject",
        pl.lit(org).alias("Organization"),
        pl.when(dsn & ~pl.lit(rules.dsn_msgid)).then(pl.lit("")).otherwise("msgid").alias("MessageId"),
        (pl.col("t0") // unit * unit).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("Received"),
        pl.col("sender").alias("SenderAddress"),
        subject.alias("Subject"),
        pl.col("client_ip").alias("FromIP"),
        pl.when(dsn & ~pl.lit(rules.dsn_size)).then(None).otherwise("size").cast(pl.Int64).alias("Size"),
    )
    rejects = (
        head.filter(pl.col("kind") == M.REJECT)
        .join(model.rcpts.select("m", pl.col("addr").alias("RecipientAddress")), on="m", how="left")
        .with_columns(
            pl.lit("").alias("MessageId"),
            pl.lit("").alias("Subject"),
            pl.lit("").alias("ToIP"),
            pl.lit(rules.reject_size, pl.Int64).alias("Size"),
            pl.when(pl.col("reject").is_in([M.REJ_BLOCKLIST, M.REJ_DBL]))
            .then(pl.lit("FilteredAsSpam"))
            .otherwise(pl.lit("None"))
            .alias("Status"),
        )
    )
    rows = _recipient_rows(model, rules)
    queued = head.filter(pl.col("kind") != M.REJECT)
    if rules.dsn_received_at_delivery:
        logged = model.attempts.get_column("m").unique().implode()
        queued = queued.filter((pl.col("kind") != M.DSN) | pl.col("m").is_in(logged))
    with_rcpt = queued.join(rows, on="m", how="inner")
    # a message nobody was named for yet: one row, recipient unknown
    without = queued.join(rows.select("m").unique(), on="m", how="anti").with_columns(
        pl.lit("").alias("RecipientAddress"), pl.lit("GettingStatus").alias("Status"), pl.lit("").alias("ToIP")
    )
    out = pl.concat([with_rcpt, without, rejects], how="diagonal_relaxed")
    out = out.select([pl.col(c).cast(t) for c, t in COLUMNS.items()])
    return sort(out)


def sort(rows: pl.DataFrame) -> pl.DataFrame:
    """Trace order (Received descending, then recipient), every column breaking ties."""
    keys = list(COLUMNS)
    keys.remove("Received")
    return rows.sort(["Received", *keys], descending=[True] + [False] * len(keys), nulls_last=True)


def _recipient_rows(model: M.Model, rules: Rules) -> pl.DataFrame:
    """(m, RecipientAddress, Status, ToIP) for every recipient the log names, aliases included."""
    latest = model.attempts.sort("t").group_by("r").agg(pl.col("result").last(), pl.col("to_ip").last())
    rc = model.rcpts.join(latest, on="r", how="left" if rules.rcpts_on_receive else "inner")
    rc = rc.with_columns(
        pl.col("result").replace_strict(_STATUS, default="GettingStatus", return_dtype=pl.String).alias("Status"),
        pl.col("to_ip").fill_null(""),
    )
    if not rules.to_ip_on_failure:
        rc = rc.with_columns(pl.when(pl.col("result") == M.SENT).then("to_ip").otherwise(pl.lit("")).alias("to_ip"))
    members = rc.filter(pl.col("orig").is_not_null()).group_by("m", "orig").agg(pl.len().alias("n"))
    aliases = members.select(
        "m",
        pl.col("orig").alias("RecipientAddress"),
        pl.when(pl.col("n") > 1).then(pl.lit("Expanded")).otherwise(pl.lit("None")).alias("Status"),
        pl.lit("").alias("ToIP"),
    )
    plain = rc.select("m", pl.col("addr").alias("RecipientAddress"), "Status", pl.col("to_ip").alias("ToIP"))
    return pl.concat([plain, aliases])


def to_contract(store_rows: pl.DataFrame) -> pl.DataFrame:
    """Store rows (MESSAGE_SCHEMA names) as truth columns, sorted like `truth` for comparison."""
    names = {
        "organization": "Organization",
        "message_id": "MessageId",
        "received": "Received",
        "sender_address": "SenderAddress",
        "recipient_address": "RecipientAddress",
        "subject": "Subject",
        "status": "Status",
        "to_ip": "ToIP",
        "from_ip": "FromIP",
        "size": "Size",
    }
    out = store_rows.select([pl.col(k).alias(v) for k, v in names.items()])
    return sort(out.select([pl.col(c).cast(t) for c, t in COLUMNS.items()]))
