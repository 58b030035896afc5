"""Render the model as an Exim mainlog (local time stamps, no host or program field).

1vAbCd-000Xyz-AB <= anna@gmx.de H=mail7.gmx.de [203.0.113.9]:41234 I=[192.0.2.25]:25 P=esmtps X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no S=5120 id=abc@gmx.de T="Invoice #12"
1vAbCd-000Xyz-AB => bob@example.org R=local_user T=dovecot_lmtp C="250 2.0.0 <bob@example.org> k3j2 Saved"
1vAbCd-000Xyz-AB == carl@web.de R=dnslookup T=remote_smtp defer (-44) H=mx-ha03.web.de [198.51.100.7]: SMTP error ...
1vAbCd-000Xyz-AB ** dora@gmx.de R=dnslookup T=remote_smtp H=mx00.emig.gmx.net [198.51.100.4]: SMTP error ...: 550 5.1.1 ...
1vAbCe-000Xz0-CD <= <> R=1vAbCd-000Xyz-AB U=Debian-exim P=local S=2345 T="Undelivered Mail Returned to Sender"
1vAbCd-000Xyz-AB Completed
H=(helo.example) [203.0.113.66]:5123 I=[192.0.2.25]:25 F=<x@y.z> rejected RCPT <bob@example.org>: 203.0.113.66 is listed in zen.spamhaus.org
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from msgtrace.generate import model as M
from msgtrace.generate.render import B62, HEX, US, concat, encode, lines, stamp_local, write_lines
from msgtrace.generate.truth import Rules

NAME = "exim"
FEATURES = M.Features(content_filter=False)
RULES = Rules(subject="all", dsn_msgid=False, dsn_subject=True)
MY_IP = "192.0.2.25"
TLS = "X=TLS1.3:TLS_AES_256_GCM_SHA384:256"

_REJECT = {
    M.REJ_BLOCKLIST: pl.format("{} is listed in zen.spamhaus.org", "client_ip"),
    M.REJ_DBL: pl.format("Sender domain {} is listed in dbl.spamhaus.org", "sdom"),
    M.REJ_UNKNOWN: pl.lit("Unknown user"),
    M.REJ_RELAY: pl.lit("relay not permitted"),
}


def message_ids(t_us: np.ndarray, seed: int) -> pl.Series:
    """Exim ids (pre-4.97 form): base-62 seconds, a unique 'pid', base-62 sub-second."""
    rng = np.random.default_rng(seed + 202)
    pid = rng.permutation(len(t_us)) * 7 + 4000
    return encode(t_us // US, B62, 6) + "-" + encode(pid, B62, 6) + "-" + encode((t_us % US) // 400, B62, 2)


def _client() -> pl.Expr:
    """H=name [ip]:port, or H=(helo) [ip]:port when the client has no reverse name."""
    port = 20000 + pl.col("pid") % 40000
    return (
        pl.when(pl.col("client_host") == "unknown")
        .then(pl.format("H=({}) [{}]:{}", "sdom", "client_ip", port))
        .otherwise(pl.format("H={} [{}]:{}", "client_host", "client_ip", port))
    )


def render(model: M.Model, **_: object) -> pl.DataFrame:
    """Every mainlog line of the model (t, grp, seq, body)."""
    msgs = model.msgs.with_columns(
        message_ids(model.msgs["t0"].to_numpy(), model.cfg.seed).alias("id"),
        pl.col("sender").str.extract(r"@(.+)$", 1).fill_null("localhost").alias("sdom"),
        pl.col("msgid").str.strip_prefix("<").str.strip_suffix(">").alias("bare_id"),
    )
    msgs = msgs.join(msgs.select(pl.col("m").alias("parent"), pl.col("id").alias("pid_")), on="parent", how="left")
    kind = pl.col("kind")
    sender = pl.when(pl.col("sender") == "").then(pl.lit("<>")).otherwise("sender")
    arrival = (
        pl.when(kind == M.INBOUND)
        .then(
            pl.format(
                '{} <= {} {} I=[{}]:25 P=esmtps {} CV=no S={} id={} T="{}"',
                "id",
                sender,
                _client(),
                pl.lit(MY_IP),
                pl.lit(TLS),
                "size",
                "bare_id",
                "subject",
            )
        )
        .when(kind == M.OUTBOUND)
        .then(
            pl.format(
                '{} <= {} H=({}) [{}]:{} I=[{}]:587 P=esmtpsa {} CV=no A=dovecot_plain:{} S={} id={} T="{}"',
                "id",
                sender,
                "client_host",
                "client_ip",
                20000 + pl.col("pid") % 40000,
                pl.lit(MY_IP),
                pl.lit(TLS),
                "sender",
                "size",
                "bare_id",
                "subject",
            )
        )
        .when(kind == M.LOCAL)
        .then(pl.format('{} <= {} U=www-data P=local S={} id={} T="{}"', "id", sender, "size", "bare_id", "subject"))
        .otherwise(pl.format('{} <= <> R={} U=Debian-exim P=local S={} T="{}"', "id", "pid_", "size", "subject"))
    )
    rej = msgs.filter(kind == M.REJECT).join(model.rcpts.select("m", pl.col("addr").alias("rcpt")), on="m")
    reason = pl.lit("")
    for code, text in _REJECT.items():
        reason = pl.when(pl.col("reject") == code).then(text).otherwise(reason)
    return concat(
        [
            lines(msgs.filter(kind != M.REJECT), pl.col("t0"), 1, arrival),
            lines(
                rej,
                pl.col("t0"),
                1,
                pl.format(
                    "{} I=[{}]:25 F=<{}> rejected RCPT <{}>: {}", _client(), pl.lit(MY_IP), "sender", "rcpt", reason
                ),
            ),
            *_deliveries(model, msgs),
        ]
    )


def _deliveries(model: M.Model, msgs: pl.DataFrame) -> list[pl.DataFrame]:
    a = model.attempts.join(
        model.rcpts.select("r", "addr", "orig", "mode", "relay_host", "relay_ip"), on="r", how="left"
    ).join(msgs.select("m", "id"), on="m", how="left")
    a = a.with_columns(pl.Series("remote", encode(a["token"].to_numpy(), HEX, 11, strip=True)))
    res, mode, why = pl.col("result"), pl.col("mode"), pl.col("reason")
    smtp = mode == M.SMTP
    # the first address of a delivery pass to one relay is "=>", the others delivered with it "->"
    first = pl.col("t").rank("ordinal").over("m", "k", "relay_host", "result") == 1
    who = pl.when(pl.col("orig").is_not_null()).then(pl.format("{} <{}>", "addr", "orig")).otherwise("addr")
    route = pl.when(smtp).then(pl.lit("R=dnslookup T=remote_smtp")).otherwise(pl.lit("R=local_user T=dovecot_lmtp"))
    host = pl.format("H={} [{}]", "relay_host", "relay_ip")
    sent = (
        pl.when(smtp)
        .then(pl.format('{} {} CV=yes C="250 2.0.0 Ok: queued as {}"', host, pl.lit(TLS), "remote"))
        .otherwise(pl.format('C="250 2.0.0 <{}> {} Saved"', "addr", "remote"))
    )
    defer = (
        pl.when(smtp & (pl.col("to_ip") == ""))
        .then(pl.lit("defer (110): Connection timed out"))
        .when(smtp)
        .then(
            pl.format(
                "defer (-44) {}: SMTP error from remote mail server after RCPT TO:<{}>: "
                "451 4.7.1 Greylisted, please try again later",
                host,
                "addr",
            )
        )
        .otherwise(pl.format("defer (-45): LMTP error after RCPT TO:<{}>: 452 4.2.2 Quota exceeded", "addr"))
    )
    fail = (
        pl.when(res == M.EXPIRED)
        .then(pl.lit(": retry timeout exceeded"))
        .when(smtp & (why == M.R_UNKNOWN))
        .then(
            pl.format(
                " {}: SMTP error from remote mail server after RCPT TO:<{}>: 550 5.1.1 <{}>: Recipient address "
                "rejected: User unknown",
                host,
                "addr",
                "addr",
            )
        )
        .when(smtp)
        .then(
            pl.format(
                " {}: SMTP error from remote mail server after end of data: 554 5.7.1 Message rejected as spam", host
            )
        )
        .otherwise(pl.format(": LMTP error after RCPT TO:<{}>: 550 5.1.1 User doesn't exist", "addr"))
    )
    body = (
        pl.when(res == M.SENT)
        .then(
            pl.format(
                "{} {} {} {} {}", "id", pl.when(first).then(pl.lit("=>")).otherwise(pl.lit("->")), who, route, sent
            )
        )
        .when(res == M.DEFERRED)
        .then(pl.format("{} == {} {} {}", "id", who, route, defer))
        .otherwise(pl.format("{} ** {} {}{}", "id", who, route, fail))
    )
    n_rcpt = model.rcpts.group_by("m").len("n")
    done = (
        a.group_by("m")
        .agg(
            (pl.col("result") != M.DEFERRED).sum().alias("final"),
            pl.col("t").max(),
            pl.col("grp").first(),
            pl.col("id").first(),
        )
        .join(n_rcpt, on="m")
        .filter((pl.col("final") == pl.col("n")) & (pl.col("t") + 15_000 < model.cfg.end_us))
    )
    return [
        lines(a, pl.col("t"), 10, body),
        lines(done, pl.col("t") + 15_000, 12, pl.format("{} Completed", "id")),
    ]


def write(rendered: pl.DataFrame, path: Path, model: M.Model, tz: str) -> int:
    """The mainlog: `YYYY-MM-DD HH:MM:SS` wall time in tz, then the body."""
    return write_lines(rendered, path, stamp_local(tz))
