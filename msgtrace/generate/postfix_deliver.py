"""Postfix delivery lines: one `to=` line per attempt, the qmgr line of each retry pass, expiry, removal.

postfix/smtp[913]: 3A9C1F4012: to=<b@gmx.de>, relay=mx00.emig.gmx.net[198.51.100.4]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F2A1B)
postfix/smtp[913]: 3A9C1F4012: to=<c@web.de>, relay=none, delay=30, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to mx-ha03.web.de[198.51.100.7]:25: Connection timed out)
postfix/qmgr[112]: 3A9C1F4012: from=<a@example.org>, size=5120, nrcpt=2 (queue active)       (each retry)
postfix/qmgr[112]: 3A9C1F4012: from=<a@example.org>, status=expired, returned to sender
postfix/local[77]: 5D4C3B2A1F: to=<ann@example.org>, orig_to=<staff@example.org>, relay=local, ..., status=sent (delivered to mailbox)
"""

from __future__ import annotations

import polars as pl

from msgtrace.generate import model as M
from msgtrace.generate.render import HEX, US, encode, lines, num

_DAEMON = {M.SMTP: "smtp", M.LMTP: "lmtp", M.VIRTUAL: "virtual", M.LOCALD: "local"}


def _response() -> tuple[pl.Expr, pl.Expr]:
    """(dsn, response text) of an attempt, by delivery mode, result and reason."""
    mode, res, why = pl.col("mode"), pl.col("pres"), pl.col("reason")
    said = pl.format("host {}[{}] said: ", "relay_host", "relay_ip")
    lmtp = pl.format("host {}[private/dovecot-lmtp] said: ", "relay_host")
    smtp, sent, deferred, bounced = mode == M.SMTP, res == M.SENT, res == M.DEFERRED, res == M.BOUNCED
    rows = [
        (smtp & sent, "2.0.0", pl.format("250 2.0.0 Ok: queued as {}", "remote")),
        (
            smtp & deferred & (why == M.R_TIMEOUT),
            "4.4.1",
            pl.format("connect to {}[{}]:25: Connection timed out", "relay_host", "relay_ip"),
        ),
        (
            smtp & deferred,
            "4.7.1",
            pl.format(
                "{}450 4.7.1 <{}>: Recipient address rejected: Greylisted, see https://postgrey.schweikert.ch/help/{}.html "
                "(in reply to RCPT TO command)",
                said,
                "addr",
                "rdom",
            ),
        ),
        (
            smtp & bounced & (why == M.R_UNKNOWN),
            "5.1.1",
            pl.format(
                "{}550 5.1.1 <{}>: Recipient address rejected: User unknown in virtual mailbox table "
                "(in reply to RCPT TO command)",
                said,
                "addr",
            ),
        ),
        (
            smtp & bounced,
            "5.7.1",
            pl.format("{}554 5.7.1 Message rejected as spam by content filter (in reply to end of DATA command)", said),
        ),
        ((mode == M.LMTP) & sent, "2.0.0", pl.format("250 2.0.0 <{}> {} Saved", "addr", "remote")),
        (
            (mode == M.LMTP) & deferred,
            "4.2.2",
            pl.format(
                "{}452 4.2.2 <{}> Quota exceeded (mailbox for user is full) (in reply to RCPT TO command)", lmtp, "addr"
            ),
        ),
        (
            mode == M.LMTP,
            "5.1.1",
            pl.format("{}550 5.1.1 <{}> User doesn't exist: {} (in reply to RCPT TO command)", lmtp, "addr", "addr"),
        ),
        ((mode == M.VIRTUAL) & sent, "2.0.0", pl.lit("delivered to maildir")),
        (
            (mode == M.VIRTUAL) & deferred,
            "4.2.2",
            pl.lit("maildir delivery failed: error writing message: Disk quota exceeded"),
        ),
        (mode == M.VIRTUAL, "5.1.1", pl.format('unknown user: "{}"', "addr")),
        (sent, "2.0.0", pl.lit("delivered to mailbox")),
        (deferred, "4.2.0", pl.lit("temporary failure. Command output: procmail: Quota exceeded")),
        (pl.lit(True), "5.1.1", pl.format('unknown user: "{}"', pl.col("addr").str.extract(r"^([^@]+)", 1))),
    ]
    dsn = pl.when(rows[0][0]).then(pl.lit(rows[0][1]))
    text = pl.when(rows[0][0]).then(rows[0][2])
    for cond, code, resp in rows[1:]:
        dsn = dsn.when(cond).then(pl.lit(code))
        text = text.when(cond).then(resp)
    return dsn.otherwise(pl.lit("5.0.0")), text.otherwise(pl.lit(""))


def deliveries(model: M.Model, msgs: pl.DataFrame, qmgr: int) -> list[pl.DataFrame]:
    """to= lines, retry-pass qmgr lines, expiry and removal, for every attempt in the window."""
    a = model.attempts.join(
        model.rcpts.select("r", "addr", "orig", "mode", "relay_host", "relay_ip"), on="r", how="left"
    ).join(msgs.select("m", "fq", "tq", "sender", "fsize", "nrcpt"), on="m", how="left")
    a = a.with_columns(
        # Postfix logs an expiry as a last deferral plus a qmgr line for the whole message
        pl.when(pl.col("result") == M.EXPIRED).then(pl.lit(M.DEFERRED, pl.Int8)).otherwise("result").alias("pres"),
        pl.Series("remote", encode(a["token"].to_numpy(), HEX, 11, strip=True)),
        pl.col("addr").str.extract(r"@(.+)$", 1).alias("rdom"),
    )
    dsn, text = _response()
    relay = (
        pl.when(pl.col("mode") == M.LMTP)
        .then(pl.format("{}[private/dovecot-lmtp]", "relay_host"))
        .when(pl.col("mode") == M.VIRTUAL)
        .then(pl.lit("virtual"))
        .when(pl.col("mode") == M.LOCALD)
        .then(pl.lit("local"))
        .when(pl.col("to_ip") == "")
        .then(pl.lit("none"))
        .otherwise(pl.format("{}[{}]:25", "relay_host", "relay_ip"))
    )
    delay = ((pl.col("t") - pl.col("tq")) / US).clip(0.01)
    c, d = (pl.col("token") % 50) / 100, (pl.col("token") // 50 % 30) / 100
    delays = pl.format("{}/{}/{}/{}", num((delay - c - d - 0.01).clip(0)), pl.lit("0.01"), num(c), num(d))
    status = pl.col("pres").replace_strict(
        {M.SENT: "sent", M.DEFERRED: "deferred", M.BOUNCED: "bounced"}, return_dtype=pl.String
    )
    orig = pl.when(pl.col("orig").is_not_null()).then(pl.format("orig_to=<{}>, ", "orig")).otherwise(pl.lit(""))
    daemon = pl.col("mode").replace_strict(_DAEMON, return_dtype=pl.String)
    body = pl.format(
        "postfix/{}[{}]: {}: to=<{}>, {}relay={}, delay={}, delays={}, dsn={}, status={} ({})",
        daemon,
        "pid",
        "fq",
        "addr",
        orig,
        relay,
        num(delay),
        delays,
        dsn,
        status,
        text,
    )
    passes = (
        a.filter(pl.col("k") > 0)
        .group_by("m", "k")
        .agg(
            pl.col("t").min(),
            pl.col("grp").first(),
            pl.col("fq").first(),
            pl.col("sender").first(),
            pl.col("fsize").first(),
            pl.col("nrcpt").first(),
        )
    )
    expired = (
        a.filter(pl.col("result") == M.EXPIRED)
        .group_by("m")
        .agg(pl.col("t").max(), pl.col("grp").first(), pl.col("fq").first(), pl.col("sender").first())
    )
    n_rcpt = model.rcpts.group_by("m").len("n")
    done = (
        a.group_by("m")
        .agg(
            (pl.col("result") != M.DEFERRED).sum().alias("final"),
            pl.col("t").max(),
            pl.col("grp").first(),
            pl.col("fq").first(),
        )
        .join(n_rcpt, on="m")
        .filter((pl.col("final") == pl.col("n")) & (pl.col("t") + 15_000 < model.cfg.end_us))
    )
    return [
        lines(a, pl.col("t"), 10, body),
        lines(
            passes,
            pl.col("t") - 5_000,
            9,
            pl.format(
                "postfix/qmgr[{}]: {}: from=<{}>, size={}, nrcpt={} (queue active)",
                qmgr,
                "fq",
                "sender",
                "fsize",
                "nrcpt",
            ),
        ),
        lines(
            expired,
            pl.col("t") + 1_000,
            11,
            pl.format("postfix/qmgr[{}]: {}: from=<{}>, status=expired, returned to sender", qmgr, "fq", "sender"),
        ),
        lines(done, pl.col("t") + 15_000, 12, pl.format("postfix/qmgr[{}]: {}: removed", qmgr, "fq")),
    ]
