"""Render the model as an Exchange 2016/2019 message tracking log (MSGTRK*.LOG: BOM, CRLF, `#Fields`).

2026-01-01T08:00:01.123Z,203.0.113.9,mail7.gmx.de,192.0.2.25,MX1,08DE...;2026-01-01T08:00:01.123Z;0,MX1\\Default Frontend MX1,SMTP,RECEIVE,...
...,ROUTING,EXPAND,...,ann@example.org;bob@example.org,,...,staff@example.org,...          (a group)
...,STOREDRIVER,DELIVER,...,ann@example.org;bob@example.org,250 2.1.5 RecipientSuccessfullyDelivered,...
...,198.51.100.4,mx00.emig.gmx.net,...,SMTP,SEND,...,c@gmx.de,250 2.6.0 Queued mail for delivery,...
...,SMTP,DEFER,...,d@web.de,"451 4.4.0 Primary target IP address responded with: ..., but that did not succeed.",...
...,DSN,DSN,...                                                                               (a bounce notice)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from msgtrace.generate import model as M
from msgtrace.generate.render import HEX, concat, encode, lines, write_lines
from msgtrace.generate.truth import Rules

NAME = "exchange"
# Mailbox submissions (STOREDRIVER) belong to the MSGTRKMS file; this log is the Transport service's,
# where users' mail arrives over SMTP on the Client Frontend: no local submission of its own.
FEATURES = M.Features(content_filter=False, rejects=False, pickup=False)
RULES = Rules(millis=True, subject="all", rcpts_on_receive=True, dsn_subject=True, to_ip_on_failure=False)
VERSION = "15.02.1118.007"
MY_IP = "192.0.2.25"
FIELDS = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,"
    "internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,"
    "recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,"
    "message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,"
    "transport-traffic-type,log-id,schema-version"
).split(",")


def _q(e: pl.Expr) -> pl.Expr:
    """A CSV field: quoted (quotes doubled) when it holds a comma or a quote."""
    return (
        pl.when(e.str.contains(r'[,"]'))
        .then(pl.format('"{}"', e.str.replace_all('"', '""', literal=True)))
        .otherwise(e)
    )


# Only these can hold a comma or a quote; quoting is checked there alone (the rest are ids, IPs, addresses).
_FREE_TEXT = {"recipient-status", "message-subject"}


def _row(**values: pl.Expr | str) -> pl.Expr:
    """The fields after date-time, in #Fields order; missing ones empty."""
    out = []
    for name in FIELDS[1:]:
        v = values.get(name.replace("-", "_"), "")
        e = pl.lit(v) if isinstance(v, str) else v.cast(pl.String)
        out.append(_q(e) if name in _FREE_TEXT and not isinstance(v, str) else e)
    return pl.concat_str(out, separator=",")


def _guid(rng: np.random.Generator, n: int) -> pl.Series:
    h = (encode(rng.integers(0, 1 << 63, n), HEX, 16) + encode(rng.integers(0, 1 << 63, n), HEX, 16)).str.to_lowercase()
    return pl.select(
        pl.format(
            "{}-{}-{}-{}-{}",
            h.str.slice(0, 8),
            h.str.slice(8, 4),
            h.str.slice(12, 4),
            h.str.slice(16, 4),
            h.str.slice(20, 12),
        )
    ).to_series()


def render(model: M.Model, **_: object) -> pl.DataFrame:
    """Every tracking-log line of the model (t, grp, seq, body after the time stamp)."""
    rng = np.random.default_rng(model.cfg.seed + 404)
    n = model.msgs.height
    server = model.cfg.host.split(".")[0].upper()
    iso = pl.from_epoch(pl.col("t0"), time_unit="us").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    msgs = model.msgs.with_columns(
        _guid(rng, n).alias("nid"),
        _guid(rng, n).alias("logid"),
        (pl.lit(64712272257893, pl.Int64) + pl.col("m") * 3).alias("iid"),
        pl.when(pl.col("sender") == "").then(pl.lit("<>")).otherwise("sender").alias("rpath"),
        iso.alias("iso"),
    )
    envelope = model.rcpts.group_by("m", maintain_order=True).agg(
        pl.coalesce("orig", "addr").unique(maintain_order=True).str.join(";").alias("env")
    )
    msgs = msgs.join(envelope, on="m", how="left").join(
        msgs.select(pl.col("m").alias("parent"), pl.col("msgid").alias("pmsgid")), on="parent", how="left"
    )
    common = dict(
        internal_message_id=pl.col("iid"),
        message_id=pl.col("msgid"),
        network_message_id=pl.col("nid"),
        total_bytes=pl.col("size"),
        message_subject=pl.col("subject"),
        sender_address=pl.col("sender"),
        return_path=pl.col("rpath"),
        transport_traffic_type="Email",
        log_id=pl.col("logid"),
        schema_version=VERSION,
    )
    kind = pl.col("kind")
    smtp_in = msgs.filter(kind.is_in([M.INBOUND, M.OUTBOUND]))
    receive = _row(
        client_ip=pl.col("client_ip"),
        client_hostname=pl.col("client_host"),
        server_ip=MY_IP,
        server_hostname=server,
        source_context=pl.format("08DE{};{};0", pl.col("nid").str.slice(0, 8).str.to_uppercase(), "iso"),
        connector_id=pl.when("submission")
        .then(pl.lit(f"{server}\\Client Frontend {server}"))
        .otherwise(pl.lit(f"{server}\\Default Frontend {server}")),
        source="SMTP",
        event_id="RECEIVE",
        recipient_address=pl.col("env"),
        recipient_count=pl.col("nrcpt"),
        message_info=pl.format("{};SRV={}", "iso", pl.lit(server)),
        directionality=pl.when("submission").then(pl.lit("Originating")).otherwise(pl.lit("Incoming")),
        original_client_ip=pl.col("client_ip"),
        **common,
    )
    submit = _row(
        client_hostname=model.cfg.host,
        server_hostname=model.cfg.host,
        source="STOREDRIVER",
        event_id="RECEIVE",
        recipient_address=pl.col("env"),
        recipient_count=pl.col("nrcpt"),
        message_info=pl.col("iso"),
        directionality="Originating",
        **common,
    )
    dsn = _row(
        server_hostname=model.cfg.host,
        source="DSN",
        event_id="DSN",
        recipient_address=pl.col("env"),
        recipient_count=pl.col("nrcpt"),
        reference=pl.col("pmsgid"),
        message_info=pl.col("iso"),
        directionality="Originating",
        **common,
    )
    return concat(
        [
            lines(smtp_in, pl.col("t0"), 1, receive),
            lines(msgs.filter(kind == M.LOCAL), pl.col("t0"), 1, submit),
            lines(msgs.filter(kind == M.DSN), pl.col("t0"), 1, dsn),
            *_routing(model, msgs, common),
            *_outcomes(model, msgs, common),
        ]
    )


def _routing(model: M.Model, msgs: pl.DataFrame, common: dict) -> list[pl.DataFrame]:
    """EXPAND for a group with several members, REDIRECT for a one-to-one rewrite, just after arrival."""
    groups = (
        model.rcpts.filter(pl.col("orig").is_not_null())
        .group_by("m", "orig", maintain_order=True)
        .agg(pl.col("addr").str.join(";").alias("members"), pl.len().alias("n"))
        .join(msgs, on="m")
    )
    body = _row(
        server_hostname=model.cfg.host,
        source="ROUTING",
        event_id=pl.when(pl.col("n") > 1).then(pl.lit("EXPAND")).otherwise(pl.lit("REDIRECT")),
        recipient_address=pl.col("members"),
        recipient_count=pl.col("n"),
        related_recipient_address=pl.col("orig"),
        **common,
    )
    return [lines(groups, pl.col("t0") + 1_000, 2, body)]


def _outcomes(model: M.Model, msgs: pl.DataFrame, common: dict) -> list[pl.DataFrame]:
    """SEND/DELIVER (recipients delivered together share a line), DEFER and FAIL per recipient."""
    a = model.attempts.join(model.rcpts.select("r", "addr", "mode", "relay_host", "relay_ip"), on="r", how="left")
    a = a.with_columns(
        pl.when(pl.col("result") == M.SENT).then(pl.lit(-1, pl.Int64)).otherwise("r").alias("split"),
        (pl.col("mode") == M.SMTP).alias("smtp"),
    )
    g = a.group_by(
        "m", "k", "smtp", "relay_host", "relay_ip", "result", "reason", "to_ip", "split", maintain_order=True
    ).agg(pl.col("addr").str.join(";").alias("to"), pl.len().alias("n"), pl.col("t").min(), pl.col("grp").first())
    g = g.join(msgs.drop("grp"), on="m", how="left")
    res, smtp, why = pl.col("result"), pl.col("smtp"), pl.col("reason")
    event = (
        pl.when(res == M.SENT)
        .then(pl.when(smtp).then(pl.lit("SEND")).otherwise(pl.lit("DELIVER")))
        .when(res == M.DEFERRED)
        .then(pl.lit("DEFER"))
        .otherwise(pl.lit("FAIL"))
    )
    status = (
        pl.when((res == M.SENT) & smtp)
        .then(pl.lit("250 2.6.0 Queued mail for delivery"))
        .when(res == M.SENT)
        .then(pl.lit("250 2.1.5 RecipientSuccessfullyDelivered"))
        .when((res == M.DEFERRED) & smtp & (pl.col("to_ip") == ""))
        .then(
            pl.lit("451 4.4.397 Error communicating with target host. -> 421 4.4.2 Connection dropped due to TimedOut")
        )
        .when((res == M.DEFERRED) & smtp)
        .then(
            pl.lit(
                '451 4.4.0 Primary target IP address responded with: "451 4.7.1 Greylisted, please try again later." '
                "Attempted failover to alternate host, but that did not succeed."
            )
        )
        .when(res == M.DEFERRED)
        .then(pl.lit("432 4.3.2 STOREDRV.Deliver; mailbox quota exceeded"))
        .when(res == M.EXPIRED)
        .then(pl.lit("550 4.4.7 QUEUE.Expired;Message expired"))
        .when(smtp & (why == M.R_UNKNOWN))
        .then(pl.lit("550 5.1.1 Remote server returned: User unknown (recipient address rejected)"))
        .when(smtp)
        .then(pl.lit("550 5.7.1 Delivery not authorized, message refused"))
        .otherwise(pl.lit("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"))
    )
    sent_smtp = (res == M.SENT) & smtp
    body = _row(
        client_hostname=model.cfg.host,
        server_ip=pl.when(sent_smtp).then("relay_ip").otherwise(pl.lit("")),
        server_hostname=pl.when(smtp).then("relay_host").otherwise(pl.lit(model.cfg.host)),
        connector_id=pl.when(smtp).then(pl.lit("Internet")).otherwise(pl.lit("")),
        source=pl.when(smtp).then(pl.lit("SMTP")).otherwise(pl.lit("STOREDRIVER")),
        event_id=event,
        recipient_address=pl.col("to"),
        recipient_status=status,
        recipient_count=pl.col("n"),
        message_info=pl.col("iso"),
        directionality=pl.when(pl.col("kind") == M.INBOUND).then(pl.lit("Incoming")).otherwise(pl.lit("Originating")),
        **common,
    )
    return [lines(g, pl.col("t"), 10, body)]


def write(rendered: pl.DataFrame, path: Path, model: M.Model, tz: str) -> int:
    """The tracking log: UTF-8 BOM, `#` header, CRLF lines, UTC times with milliseconds."""
    start = pl.select(
        pl.from_epoch(pl.lit(model.cfg.start_us), time_unit="us").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    ).item()
    header = (
        "\ufeff#Software: Microsoft Exchange Server\r\n"
        f"#Version: {VERSION}\r\n"
        "#Log-type: Message Tracking Log\r\n"
        f"#Date: {start}\r\n"
        f"#Fields: {','.join(FIELDS)}\r\n"
    )
    utc = lambda dt: dt.dt.strftime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
    return write_lines(rendered, path, utc, sep=",", header=header, millis=True, newline="\r\n")
