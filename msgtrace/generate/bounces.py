"""Bounce notices: a message of its own, from <>, to the sender, for each delivery pass that failed recipients."""

from __future__ import annotations

import numpy as np
import polars as pl

from msgtrace.generate import names
from msgtrace.generate.consts import BOUNCED, DSN, EXPIRED, LMTP, SENT, SMTP, US


def bounces(
    rng: np.random.Generator, cfg, pools: names.Pools, msgs: pl.DataFrame, rcpts: pl.DataFrame, attempts: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Add the bounce notices (messages, recipients, delivery attempts) the failures cause."""
    fails = (
        attempts.filter(pl.col("result").is_in([BOUNCED, EXPIRED]))
        .join(msgs.select("m", "kind", "sender", "sender_dom", "size"), on="m")
        .filter((pl.col("kind") != DSN) & (pl.col("sender") != ""))
    )
    d = (
        fails.group_by("m", "k")
        .agg(
            pl.col("t").max(),
            pl.col("grp").first(),
            pl.col("sender").first(),
            pl.col("sender_dom").first(),
            pl.col("size").first(),
        )
        .with_columns((pl.col("t") + 10_000).alias("t0"))
        .filter(pl.col("t0") < cfg.end_us)
        .sort("t0", "m")
    )
    n = d.height
    if not n:
        return msgs, rcpts, attempts
    base_m = msgs.height
    new_m = np.arange(base_m, base_m + n)
    t0 = d["t0"].to_numpy()
    sdom = d["sender_dom"].to_numpy()
    local = sdom < 0
    dsn_msgs = pl.DataFrame(
        {
            "m": new_m,
            "grp": d["grp"].to_numpy(),
            "kind": np.full(n, DSN, dtype=np.int8),
            "t0": t0,
            "sender": [""] * n,
            "sender_dom": np.full(n, -1),
            "client_host": [""] * n,
            "client_ip": [""] * n,
            "submission": np.zeros(n, bool),
            "size": 2200 + np.minimum(d["size"].to_numpy(), 8000) + rng.integers(0, 900, n),
            "msgid": [
                f"<{a}.{b}@{cfg.host}>" for a, b in zip(t0 // US, rng.integers(1 << 40, 1 << 62, n), strict=True)
            ],
            "subject": ["Undelivered Mail Returned to Sender"] * n,
            "subj_logged": np.zeros(n, bool),
            "cf": np.zeros(n, bool),
            "th": np.zeros(n, np.int64),
            "d_clean": np.zeros(n, np.int64),
            "d_qmgr": np.full(n, 1_000, np.int64),
            "t_first": t0 + rng.integers(20_000, 300_000, n),
            "reject": np.full(n, -1),
            "parent": d["m"].to_numpy(),
            "pid": rng.integers(1000, 60000, n),
            "nrcpt": np.ones(n, np.uint32),
            "first_rcpt": d["sender"],
        }
    )
    new_r = np.arange(rcpts.height, rcpts.height + n)
    dsn_rcpts = pl.DataFrame(
        {
            "m": new_m,
            "addr": d["sender"],
            "orig": pl.Series([None] * n, dtype=pl.String),
            "mode": np.where(local, LMTP, SMTP).astype(np.int8),
            "relay_host": np.where(local, cfg.host, pools.mx_host[np.maximum(sdom, 0)]),
            "relay_ip": np.where(local, "", pools.mx_ip[np.maximum(sdom, 0)]),
            "plan": np.zeros(n, np.int8),
            "grp": d["grp"].to_numpy(),
            "r": new_r,
        }
    )
    dsn_att = pl.DataFrame(
        {
            "r": new_r,
            "m": new_m,
            "grp": d["grp"].to_numpy(),
            "k": np.zeros(n, np.int32),
            "t": dsn_msgs["t_first"].to_numpy() + rng.integers(0, 200_000, n),
            "result": np.full(n, SENT, np.int8),
            "reason": np.zeros(n, np.int8),
            "token": rng.integers(1 << 36, 1 << 44, n),
            "pid": rng.integers(1000, 60000, n),
            "to_ip": dsn_rcpts["relay_ip"],
        }
    ).filter(pl.col("t") < cfg.end_us)
    msgs = pl.concat([msgs, dsn_msgs], how="diagonal_relaxed")
    rcpts = pl.concat([rcpts, dsn_rcpts], how="diagonal_relaxed")
    attempts = pl.concat([attempts, dsn_att], how="diagonal_relaxed")
    return msgs, rcpts, attempts
