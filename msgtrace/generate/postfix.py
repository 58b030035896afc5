"""Render the model as a Postfix syslog (RFC 3164 envelope added by render.write).

One message, as Postfix logs it (amavis and the 10025 re-injection only for filtered mail):

    postfix/smtpd[4242]: connect from mail7.gmx.de[203.0.113.9]
    postfix/smtpd[4242]: 3A9C1F4012: client=mail7.gmx.de[203.0.113.9]
    postfix/cleanup[771]: 3A9C1F4012: message-id=<...>
    postfix/qmgr[112]: 3A9C1F4012: from=<a@gmx.de>, size=5120, nrcpt=2 (queue active)
    postfix/smtp[913]: 3A9C1F4012: to=<b@example.org>, relay=127.0.0.1[127.0.0.1]:10024, ..., status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 1B2C3D4E5F)
    postfix/lmtp[914]: 1B2C3D4E5F: to=<b@example.org>, relay=mx1.example.org[private/dovecot-lmtp], ..., status=sent (250 2.0.0 <b@example.org> k3j2 Saved)
    postfix/bounce[99]: 1B2C3D4E5F: sender non-delivery notification: 9F8E7D6C5B
    postfix/qmgr[112]: 1B2C3D4E5F: removed
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from msgtrace.generate import model as M
from msgtrace.generate.postfix_deliver import deliveries as _deliveries
from msgtrace.generate.render import B51, B52, HEX, US, concat, encode, lines, num, stamp_syslog, write_lines
from msgtrace.generate.truth import Rules

NAME = "postfix"
FEATURES = M.Features()

_REJECT = {
    M.REJ_BLOCKLIST: "554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; "
    "https://www.spamhaus.org/query/ip/{ip}",
    M.REJ_DBL: "554 5.7.1 Service unavailable; Sender address [{sdom}] blocked using dbl.spamhaus.org; "
    "https://www.spamhaus.org/query/dbl?domain={sdom}",
    M.REJ_UNKNOWN: "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
    M.REJ_RELAY: "454 4.7.1 <{rcpt}>: Relay access denied",
}


def queue_ids(t_us: np.ndarray, inode: np.ndarray, long: bool) -> pl.Series:
    """Postfix queue ids: hex microseconds + hex inode, or (enable_long_queue_ids) base-52 time + 'z' + inode."""
    usec = t_us % US
    if long:
        sec = encode(t_us // US, B52, 6)
        return sec + encode(usec, B52, 4) + "z" + encode(inode, B51, 6, strip=True)
    return encode(usec, HEX, 5) + encode(inode, HEX, 8, strip=True)


def _with_ids(model: M.Model, long: bool) -> pl.DataFrame:
    msgs = model.msgs
    rng = np.random.default_rng(model.cfg.seed + 101)
    n = msgs.height
    cf = msgs["cf"].to_numpy()
    inode = rng.permutation(n + int(cf.sum())) + 0x11000
    ino2 = np.zeros(n, dtype=np.int64)
    ino2[cf] = inode[n:]
    t2 = msgs["th"].to_numpy() - 50_000
    msgs = msgs.with_columns(
        queue_ids(msgs["t0"].to_numpy(), inode[:n], long).alias("qid"),
        queue_ids(np.maximum(t2, 0), ino2, long).alias("qid2"),
    )
    # the queue id deliveries and bounces are logged under, and when that queue file was made
    return msgs.with_columns(
        pl.when("cf").then("qid2").otherwise("qid").alias("fq"),
        pl.when("cf").then(pl.col("th") - 50_000).otherwise("t0").alias("tq"),
        pl.when("cf").then("size2").otherwise("size").alias("fsize"),
        pl.when("submission")
        .then(pl.lit("postfix/submission/smtpd"))
        .otherwise(pl.lit("postfix/smtpd"))
        .alias("smtpd"),
        pl.format("{}[{}]", "client_host", "client_ip").alias("client"),
        pl.col("sender").str.extract(r"@(.+)$", 1).fill_null("").alias("sdom"),
    )


def render(model: M.Model, long_ids: bool = False) -> pl.DataFrame:
    """Every Postfix line of the model (t, grp, seq, body); render.write stamps and sorts them."""
    cfg = model.cfg
    msgs = _with_ids(model, long_ids)
    qmgr = 1000 + cfg.seed % 5000
    cleanup = pl.format("postfix/cleanup[{}]: ", 2000 + pl.col("pid") % 7)
    queued = msgs.filter(pl.col("kind") != M.REJECT)
    smtpd = msgs.filter(pl.col("kind").is_in([M.INBOUND, M.OUTBOUND, M.REJECT]))
    received = queued.filter(pl.col("kind").is_in([M.INBOUND, M.OUTBOUND]))
    sasl = (
        pl.when("submission").then(pl.format(", sasl_method=PLAIN, sasl_username={}", "sender")).otherwise(pl.lit(""))
    )
    parts = [
        lines(
            smtpd,
            pl.col("t0") - 50_000 - pl.col("pid") % 900 * 1000,
            0,
            pl.format("{}[{}]: connect from {}", "smtpd", "pid", "client"),
        ),
        lines(received, pl.col("t0"), 1, pl.format("{}[{}]: {}: client={}{}", "smtpd", "pid", "qid", "client", sasl)),
        lines(
            queued.filter(pl.col("kind") == M.LOCAL),
            pl.col("t0"),
            1,
            pl.format("postfix/pickup[{}]: {}: uid={} from=<{}>", qmgr + 7, "qid", 1000 + pl.col("pid") % 50, "sender"),
        ),
        lines(
            received.filter("subj_logged"),
            pl.col("t0") + pl.col("d_clean") - 1,
            2,
            pl.format(
                "{}{}: warning: header Subject: {} from {}; from=<{}> to=<{}> proto=ESMTP helo=<{}>",
                cleanup,
                "qid",
                "subject",
                "client",
                "sender",
                "first_rcpt",
                "client_host",
            ),
        ),
        lines(queued, pl.col("t0") + pl.col("d_clean"), 3, pl.format("{}{}: message-id={}", cleanup, "qid", "msgid")),
        lines(
            queued,
            pl.col("t0") + pl.col("d_qmgr"),
            4,
            pl.format(
                "postfix/qmgr[{}]: {}: from=<{}>, size={}, nrcpt={} (queue active)",
                qmgr,
                "qid",
                "sender",
                "size",
                "nrcpt",
            ),
        ),
        lines(
            received,
            pl.col("t0") + pl.col("d_qmgr") + 5_000,
            6,
            pl.format(
                "{}[{}]: disconnect from {} ehlo=1 mail=1 rcpt={} data=1 quit=1 commands={}",
                "smtpd",
                "pid",
                "client",
                "nrcpt",
                pl.col("nrcpt") + 4,
            ),
        ),
        *_rejects(msgs.filter(pl.col("kind") == M.REJECT), model),
        *_filtered(model, msgs, qmgr, cleanup),
        *_bounce_notices(msgs, qmgr),
        *_deliveries(model, msgs, qmgr),
    ]
    return concat(parts)


def _rejects(rej: pl.DataFrame, model: M.Model) -> list[pl.DataFrame]:
    rej = rej.join(model.rcpts.select("m", pl.col("addr").alias("rcpt")), on="m", how="left")
    reason = pl.lit("")
    for code, text in _REJECT.items():
        piece = pl.format(
            text.replace("{ip}", "{}").replace("{sdom}", "{}").replace("{rcpt}", "{}"),
            *[pl.col({"ip": "client_ip", "sdom": "sdom", "rcpt": "rcpt"}[k]) for k in _fields(text)],
        )
        reason = pl.when(pl.col("reject") == code).then(piece).otherwise(reason)
    body = pl.format(
        "{}[{}]: NOQUEUE: reject: RCPT from {}: {}; from=<{}> to=<{}> proto=ESMTP helo=<{}>",
        "smtpd",
        "pid",
        "client",
        reason,
        "sender",
        "rcpt",
        "client_host",
    )
    return [
        lines(rej, pl.col("t0"), 1, body),
        lines(
            rej,
            pl.col("t0") + 120_000,
            6,
            pl.format(
                "{}[{}]: disconnect from {} ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4", "smtpd", "pid", "client"
            ),
        ),
    ]


def _fields(text: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", text)


def _filtered(model: M.Model, msgs: pl.DataFrame, qmgr: int, cleanup: pl.Expr) -> list[pl.DataFrame]:
    """amavis hand-off: QID2 arrives from localhost on the 10025 listener, then QID1 is handed off."""
    cf = msgs.filter(pl.col("cf") & (pl.col("th") < model.cfg.end_us))
    th = pl.col("th")
    smtpd = pl.format("postfix/smtpd[{}]: ", 30000 + pl.col("pid") % 9000)
    hand = cf.join(model.rcpts.select("m", "addr", "r"), on="m").with_columns(
        pl.col("r").rank("ordinal").over("m").alias("i")
    )
    delay = (th - pl.col("t0")) / US
    return [
        lines(cf, th - 60_000, 0, pl.format("{}connect from localhost[127.0.0.1]", smtpd)),
        lines(cf, th - 50_000, 1, pl.format("{}{}: client=localhost[127.0.0.1]", smtpd, "qid2")),
        lines(cf, th - 40_000, 3, pl.format("{}{}: message-id={}", cleanup, "qid2", "msgid")),
        lines(
            cf,
            th - 30_000,
            4,
            pl.format(
                "postfix/qmgr[{}]: {}: from=<{}>, size={}, nrcpt={} (queue active)",
                qmgr,
                "qid2",
                "sender",
                "size2",
                "nrcpt",
            ),
        ),
        lines(
            cf,
            th - 20_000,
            6,
            pl.format(
                "{}disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt={} data=1 quit=1 commands={}",
                smtpd,
                "nrcpt",
                pl.col("nrcpt") + 4,
            ),
        ),
        lines(
            cf,
            th - 10_000,
            7,
            pl.format(
                "amavis[{}]: ({}-{}) Passed CLEAN {}, [{}]:{} [{}] <{}> -> <{}>, Queue-ID: {}, "
                'Message-ID: {}, mail_id: {}, Hits: -0.{}, size: {}, queued_as: {}, Subject: "{}", From: <{}>, {} ms',
                5000 + pl.col("pid") % 4,
                5000 + pl.col("pid") % 4,
                pl.col("pid") % 100,
                pl.lit("{RelayedInbound}"),
                "client_ip",
                20000 + pl.col("pid"),
                "client_ip",
                "sender",
                "first_rcpt",
                "qid",
                "msgid",
                pl.col("qid2").str.reverse(),
                pl.col("pid") % 10,
                "size",
                "qid2",
                pl.col("subject").str.replace_all('"', '""', literal=True),
                "sender",
                80 + pl.col("pid") % 900,
            ),
        ),
        lines(
            hand,
            th + pl.col("i"),
            8,
            pl.format(
                "postfix/smtp[{}]: {}: to=<{}>, relay=127.0.0.1[127.0.0.1]:10024, delay={}, delays={}/0/0/{}, dsn=2.0.0, "
                "status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as {})",
                6000 + pl.col("pid") % 40,
                "qid",
                "addr",
                num(delay),
                num(delay * 0.6),
                num(delay * 0.4),
                "qid2",
            ),
        ),
        lines(cf, th + 1_000, 9, pl.format("postfix/qmgr[{}]: {}: removed", qmgr, "qid")),
    ]


def _bounce_notices(msgs: pl.DataFrame, qmgr: int) -> list[pl.DataFrame]:
    """The bounce daemon's line naming the DSN's queue id (cleanup/qmgr of the DSN come from `queued`)."""
    dsn = msgs.filter(pl.col("kind") == M.DSN).join(
        msgs.select(pl.col("m").alias("parent"), pl.col("fq").alias("pfq")), on="parent"
    )
    return [
        lines(
            dsn,
            pl.col("t0") + 2_000,
            5,
            pl.format(
                "postfix/bounce[{}]: {}: sender non-delivery notification: {}", 900 + pl.col("pid") % 5, "pfq", "qid"
            ),
        )
    ]


RULES = Rules()


def write(rendered: pl.DataFrame, path: Path, model: M.Model, tz: str) -> int:
    """The log file: RFC 3164 time stamps in tz, the host name, the body."""
    return write_lines(rendered, path, stamp_syslog(tz), sep=f" {model.cfg.host} ")
