"""Render the model as a Sendmail syslog (sm-mta, RFC 3164 envelope added by render.write_lines).

sm-mta[4100]: 6011AbCd004100: from=<anna@gmx.de>, size=5120, class=0, nrcpts=2, msgid=<x@gmx.de>, proto=ESMTP, daemon=MTA, relay=mail7.gmx.de [203.0.113.9]
sm-mta[4107]: 6011AbCd004100: to=<bob@example.org>,<eve@example.org>, delay=00:00:01, xdelay=00:00:01, mailer=local, pri=125120, dsn=2.0.0, stat=Sent
sm-mta[4107]: 6011AbCd004100: to=<c@web.de>, delay=00:00:02, xdelay=00:00:02, mailer=esmtp, pri=125120, relay=mx-ha03.web.de. [198.51.100.7], dsn=4.7.1, stat=Deferred: 451 4.7.1 Greylisted, please try again later
sm-mta[4107]: 6011AbCd004100: 6011AbCe004107: DSN: User unknown
sm-mta[4109]: 6011AbCf004109: ruleset=check_rcpt, arg1=<x@example.org>, relay=[203.0.113.66], reject=550 5.7.1 <x@example.org>... Rejected: 203.0.113.66 listed at zen.spamhaus.org
sm-mta[4109]: 6011AbCf004109: from=<spam@y.z>, size=0, class=0, nrcpts=0, proto=ESMTP, daemon=MTA, relay=[203.0.113.66]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from msgtrace.generate import model as M
from msgtrace.generate.render import B60, HEX, US, concat, encode, lines, stamp_syslog, write_lines
from msgtrace.generate.truth import Rules

NAME = "sendmail"
# no local submission (the MSP's own queue id would make it two messages), no alias log, no expiry line
FEATURES = M.Features(content_filter=False, pickup=False, aliases=False, expire=False)
RULES = Rules(subject="none", dsn_msgid=False, dsn_size=False, reject_size=0, dsn_received_at_delivery=True)

_REJECT = {
    M.REJ_BLOCKLIST: pl.format("550 5.7.1 <{}>... Rejected: {} listed at zen.spamhaus.org", "rcpt", "client_ip"),
    M.REJ_DBL: pl.format("550 5.7.1 <{}>... Mail from {} refused, listed at dbl.spamhaus.org", "rcpt", "sdom"),
    M.REJ_UNKNOWN: pl.format("550 5.1.1 <{}>... User unknown", "rcpt"),
    M.REJ_RELAY: pl.format("550 5.7.1 <{}>... Relaying denied", "rcpt"),
}


def queue_ids(t_us: np.ndarray, seed: int) -> tuple[pl.Series, np.ndarray]:
    """Sendmail queue ids (year, month, day, h, m, s in base 60, UTC; two sequence chars; the pid), and the pids."""
    rng = np.random.default_rng(seed + 303)
    u = rng.permutation(len(t_us))
    pid = 1000 + (u // 3600) * 97 + u % 97  # one-to-one with u: (u % 3600, pid) never repeats
    d = pl.from_epoch(pl.Series(t_us // US), time_unit="s")
    parts = [(d.dt.year() - 1900) % 60, d.dt.month() - 1, d.dt.day(), d.dt.hour(), d.dt.minute(), d.dt.second()]
    stamp = [encode(p.to_numpy(), B60, 1) for p in parts]
    qid = stamp[0] + stamp[1] + stamp[2] + stamp[3] + stamp[4] + stamp[5] + encode(u % 3600, B60, 2)
    return qid + pl.Series(pid).cast(pl.String).str.zfill(6), pid


def _relay(host: str, ip: str) -> pl.Expr:
    """`name [ip]`, `[ip]` without a name, `[IPv6:...]` for IPv6."""
    lit = pl.when(pl.col(ip).str.contains(":")).then(pl.format("[IPv6:{}]", ip)).otherwise(pl.format("[{}]", ip))
    return pl.when(pl.col(host).is_in(["unknown", ""])).then(lit).otherwise(pl.format("{} {}", host, lit))


def _dhms(seconds: pl.Expr) -> pl.Expr:
    s = seconds.cast(pl.Int64).clip(0)
    hms = pl.format(
        "{}:{}:{}",
        (s // 3600 % 24).cast(pl.String).str.zfill(2),
        (s // 60 % 60).cast(pl.String).str.zfill(2),
        (s % 60).cast(pl.String).str.zfill(2),
    )
    return pl.when(s >= 86400).then(pl.format("{}+{}", s // 86400, hms)).otherwise(hms)


def render(model: M.Model, **_: object) -> pl.DataFrame:
    """Every sm-mta line of the model (t, grp, seq, body)."""
    qid, pid = queue_ids(model.msgs["t0"].to_numpy(), model.cfg.seed)
    msgs = model.msgs.with_columns(
        qid.alias("qid"),
        pl.Series("spid", pid),
        pl.col("sender").str.extract(r"@(.+)$", 1).fill_null("").alias("sdom"),
    )
    kind = pl.col("kind")
    mta = pl.format("sm-mta[{}]: {}: ", "spid", "qid")
    daemon = (
        pl.when("submission").then(pl.lit("proto=ESMTPSA, daemon=MSA")).otherwise(pl.lit("proto=ESMTP, daemon=MTA"))
    )
    received = msgs.filter(kind.is_in([M.INBOUND, M.OUTBOUND]))
    rej = msgs.filter(kind == M.REJECT).join(model.rcpts.select("m", pl.col("addr").alias("rcpt")), on="m")
    reason = pl.lit("")
    for code, text in _REJECT.items():
        reason = pl.when(pl.col("reject") == code).then(text).otherwise(reason)
    dsn = msgs.filter(kind == M.DSN).join(
        msgs.select(pl.col("m").alias("parent"), pl.col("qid").alias("pq"), pl.col("spid").alias("ppid")), on="parent"
    )
    first_fail = (
        model.attempts.filter(pl.col("result") == M.BOUNCED)
        .sort("t")
        .group_by("m")
        .agg(pl.col("reason").first().alias("why"), pl.col("to_ip").first().alias("fail_ip"))
    )
    dsn = dsn.join(first_fail.rename({"m": "parent"}), on="parent", how="left")
    return concat(
        [
            lines(
                received,
                pl.col("t0"),
                1,
                pl.format(
                    "{}from=<{}>, size={}, class=0, nrcpts={}, msgid={}, {}, relay={}",
                    mta,
                    "sender",
                    "size",
                    "nrcpt",
                    "msgid",
                    daemon,
                    _relay("client_host", "client_ip"),
                ),
            ),
            lines(
                rej,
                pl.col("t0"),
                1,
                pl.format(
                    "{}ruleset=check_rcpt, arg1=<{}>, relay={}, reject={}",
                    mta,
                    "rcpt",
                    _relay("client_host", "client_ip"),
                    reason,
                ),
            ),
            lines(
                rej,
                pl.col("t0") + 150_000,
                2,
                pl.format(
                    "{}from=<{}>, size=0, class=0, nrcpts=0, proto=ESMTP, daemon=MTA, relay={}",
                    mta,
                    "sender",
                    _relay("client_host", "client_ip"),
                ),
            ),
            lines(
                dsn,
                pl.col("t0"),
                5,
                pl.format(
                    "sm-mta[{}]: {}: {}: DSN: {}",
                    "ppid",
                    "pq",
                    "qid",
                    pl.when(pl.col("why") == M.R_SPAM)
                    .then(pl.lit("Service unavailable"))
                    .otherwise(pl.lit("User unknown")),
                ),
            ),
            *_deliveries(model, msgs),
        ]
    )


def _deliveries(model: M.Model, msgs: pl.DataFrame) -> list[pl.DataFrame]:
    """One to= line per delivery pass, relay and outcome: recipients sharing them are listed together."""
    a = model.attempts.join(model.rcpts.select("r", "addr", "mode", "relay_host", "relay_ip"), on="r", how="left")
    a = a.join(msgs.select("m", "qid", "spid", "t0", "size", "kind"), on="m", how="left")
    # the DSN's delivery is its first line: sendmail logs no from= for it
    a = a.with_columns(pl.when(pl.col("kind") == M.DSN).then(pl.col("t0")).otherwise("t").alias("t"))
    g = a.group_by("m", "k", "mode", "relay_host", "to_ip", "result", "reason", maintain_order=True).agg(
        pl.format("<{}>", "addr").str.join(",").alias("to"),
        pl.col("t").min(),
        pl.col("grp").first(),
        pl.col("qid").first(),
        pl.col("spid").first(),
        pl.col("t0").first(),
        pl.col("size").first(),
        pl.col("token").first(),
        pl.col("relay_ip").first(),
    )
    g = g.with_columns(pl.Series("remote", encode(g["token"].to_numpy(), HEX, 11, strip=True)))
    res, smtp, why = pl.col("result"), pl.col("mode") == M.SMTP, pl.col("reason")
    relay = (
        pl.when(~smtp)
        .then(pl.lit(""))
        .when(pl.col("to_ip") == "")
        .then(pl.format(", relay={}.", "relay_host"))
        .otherwise(
            pl.format(
                ", relay={}. {}",
                "relay_host",
                pl.when(pl.col("relay_ip").str.contains(":"))
                .then(pl.format("[IPv6:{}]", "relay_ip"))
                .otherwise(pl.format("[{}]", "relay_ip")),
            )
        )
    )
    stat = (
        pl.when((res == M.SENT) & smtp)
        .then(pl.format("dsn=2.0.0, stat=Sent (OK id={})", "remote"))
        .when(res == M.SENT)
        .then(pl.lit("dsn=2.0.0, stat=Sent"))
        .when((res == M.DEFERRED) & smtp & (pl.col("to_ip") == ""))
        .then(pl.format("dsn=4.0.0, stat=Deferred: Connection timed out with {}.", "relay_host"))
        .when((res == M.DEFERRED) & smtp)
        .then(pl.lit("dsn=4.7.1, stat=Deferred: 451 4.7.1 Greylisted, please try again later"))
        .when(res == M.DEFERRED)
        .then(pl.lit("dsn=4.2.2, stat=Deferred: 452 4.2.2 Quota exceeded"))
        .when(smtp & (why == M.R_SPAM))
        .then(pl.lit("dsn=5.7.1, stat=Service unavailable"))
        .otherwise(pl.lit("dsn=5.1.1, stat=User unknown"))
    )
    delay = _dhms((pl.col("t") - pl.col("t0")) / US)
    mailer = pl.when(smtp).then(pl.lit("esmtp")).otherwise(pl.lit("local"))
    body = pl.format(
        "sm-mta[{}]: {}: to={}, delay={}, xdelay={}, mailer={}, pri={}{}, {}",
        10000 + pl.col("token") % 50000,
        "qid",
        "to",
        delay,
        _dhms(pl.col("token") % 3),
        mailer,
        30000 + pl.col("size") + 90000 * pl.col("k"),
        relay,
        stat,
    )
    return [lines(g, pl.col("t"), 10, body)]


def write(rendered: pl.DataFrame, path: Path, model: M.Model, tz: str) -> int:
    """The log file: RFC 3164 time stamps in tz, the host name, the body."""
    return write_lines(rendered, path, stamp_syslog(tz), sep=f" {model.cfg.host} ")
