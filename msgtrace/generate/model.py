"""A format-independent, seeded simulation of a mail server's traffic, built column-wise with numpy.

`simulate` returns four tables (times are UTC microseconds, int64):

    msgs      one row per message: arrival t0, kind, sender, client, size, message-id, subject,
              content-filter hand-off time, and for bounce notices (DSNs) the parent message
    rcpts     one row per delivered address: address, orig (alias it came from), delivery mode, outcome
    attempts  one row per delivery attempt inside the window: time, result, reason
    (rejects are messages of kind REJECT with one rcpt row and no attempt)

Writers (postfix.py, exim.py, ...) render these to log lines; truth.py renders them to trace rows.
Everything is vectorised: a Python loop runs only over retry *passes*, never over messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from msgtrace.generate import names
from msgtrace.generate.bounces import bounces
from msgtrace.generate.consts import (  # noqa: F401  (re-exported: writers use model.SENT etc.)
    BOUNCED,
    DEFERRED,
    DSN,
    EXPIRED,
    INBOUND,
    LMTP,
    LOCAL,
    LOCALD,
    OUTBOUND,
    P_BOUNCE,
    P_DEFER_BOUNCE,
    P_DEFER_SENT,
    P_SENT,
    P_STUCK,
    R_GREYLIST,
    R_QUOTA,
    R_SPAM,
    R_TIMEOUT,
    R_UNKNOWN,
    REJ_BLOCKLIST,
    REJ_DBL,
    REJ_RELAY,
    REJ_UNKNOWN,
    REJECT,
    SENT,
    SMTP,
    US,
    VIRTUAL,
)


@dataclass(frozen=True)
class Features:
    """What the simulated server does; each format switches off what its MTA cannot log."""

    content_filter: bool = True  # amavis on 10024/10025, re-queued under a new id (Postfix)
    pickup: bool = True  # local submission (sendmail(1) / pickup)
    aliases: bool = True
    dsn: bool = True  # bounce notices as messages of their own
    rejects: bool = True  # before-queue rejects
    expire: bool = True  # undeliverable mail expires after queue_lifetime


@dataclass(frozen=True)
class Config:
    """One simulation: window, host, seed and features."""

    start_us: int
    end_us: int
    host: str = "mx1.example.org"
    seed: int = 1
    features: Features = field(default_factory=Features)
    queue_lifetime_s: float = 5 * 86400

    @property
    def domain(self) -> str:
        """The host's mail domain (mx1.example.org -> example.org)."""
        parts = self.host.split(".")
        return ".".join(parts[1:]) if len(parts) > 2 else self.host


@dataclass
class Model:
    """The simulated traffic; see the module docstring."""

    cfg: Config
    msgs: pl.DataFrame
    rcpts: pl.DataFrame
    attempts: pl.DataFrame

    def clip(self, n_groups: int, end_us: int) -> Model:
        """The first n arrival groups as a log that ends at end_us: later lines were not written yet."""
        cfg = Config(
            self.cfg.start_us, end_us, self.cfg.host, self.cfg.seed, self.cfg.features, self.cfg.queue_lifetime_s
        )
        msgs = self.msgs.filter((pl.col("grp") < n_groups) & (pl.col("t0") < end_us))
        keep = pl.col("m").is_in(msgs["m"].implode())
        attempts = self.attempts.filter(keep & (pl.col("t") < end_us))
        return Model(cfg, msgs, self.rcpts.filter(keep), attempts)


def _arrivals(rng: np.random.Generator, cfg: Config, n: int) -> np.ndarray:
    """n arrival times over the window, busier by day than by night (UTC hour is close enough)."""
    minutes = max(1, (cfg.end_us - cfg.start_us) // (60 * US))
    hour = ((cfg.start_us // (60 * US) + np.arange(minutes)) // 60) % 24
    weight = 1.0 + 0.8 * np.sin((hour - 8) / 24 * 2 * np.pi).clip(0) + 0.2
    p = weight / weight.sum()
    minute = rng.choice(minutes, size=n, p=p)
    t = cfg.start_us + minute * 60 * US + rng.integers(0, 60 * US, n)
    return np.sort(np.minimum(t, cfg.end_us - 1))


def _pick(rng: np.random.Generator, n: int, probs: dict[int, float]) -> np.ndarray:
    keys = np.array(list(probs))
    p = np.array(list(probs.values()), dtype=float)
    return keys[rng.choice(len(keys), size=n, p=p / p.sum())]


def simulate(cfg: Config, n_messages: int) -> Model:
    """Simulate n_messages arrivals (plus the bounce notices they cause) inside the window."""
    rng = np.random.default_rng(cfg.seed)
    pools = names.build(rng)
    f = cfg.features
    m = n_messages
    t0 = _arrivals(rng, cfg, m)
    kind = _pick(
        rng, m, {INBOUND: 0.55, OUTBOUND: 0.2, LOCAL: 0.08 if f.pickup else 0, REJECT: 0.17 if f.rejects else 0}
    )
    msgs = _messages(rng, cfg, pools, t0, kind)
    rcpts = _recipients(rng, cfg, pools, msgs)
    msgs = msgs.join(
        rcpts.group_by("m").agg(
            pl.coalesce("orig", "addr").n_unique().alias("nrcpt"),
            pl.coalesce("orig", "addr").first().alias("first_rcpt"),
        ),
        on="m",
        how="left",
    )
    attempts = _attempts(rng, cfg, msgs, rcpts)
    if f.dsn:
        msgs, rcpts, attempts = bounces(rng, cfg, pools, msgs, rcpts, attempts)
    return Model(cfg, msgs.sort("m"), rcpts.sort("r"), attempts.sort("t"))


def _messages(rng, cfg: Config, pools: names.Pools, t0: np.ndarray, kind: np.ndarray) -> pl.DataFrame:
    m = len(t0)
    ext = rng.integers(0, len(pools.ext_addrs), m)
    user = rng.integers(0, len(pools.local_users), m)
    is_local_sender = np.isin(kind, [OUTBOUND, LOCAL])
    # some inbound mail is itself a bounce from elsewhere: the null sender
    null_sender = (kind == INBOUND) & (rng.random(m) < 0.02)
    client = rng.integers(0, len(pools.client_ips), m)
    has_client = kind != LOCAL
    size = np.exp(rng.normal(8.6, 1.3, m)).astype(np.int64) + 400
    # the content filter sees inbound mail that an access map sends to it (FILTER smtp-amavis:)
    cf = cfg.features.content_filter & (kind == INBOUND) & (rng.random(m) < 0.5)
    d_clean = rng.integers(20_000, 400_000, m)
    d_qmgr = d_clean + rng.integers(2_000, 80_000, m)
    th = np.where(cf, t0 + d_qmgr + rng.integers(150_000, 3 * US, m), 0)
    t_first = np.where(cf, th + rng.integers(40_000, US, m), t0 + d_qmgr + rng.integers(30_000, 1_500_000, m))
    # a backlog now and then: the first delivery waits minutes in the active queue
    t_first = t_first + np.where(rng.random(m) < 0.02, rng.integers(60 * US, 1200 * US, m), 0)
    df = pl.DataFrame(
        {
            "m": np.arange(m, dtype=np.int64),
            "grp": np.arange(m, dtype=np.int64),
            "kind": kind.astype(np.int8),
            "t0": t0,
            "_user": pools.local_users[user],
            "_ext": pools.ext_addrs[ext],
            "_local": is_local_sender,
            "_null": null_sender,
            "sender_dom": np.where(is_local_sender | null_sender, -1, pools.ext_domain[ext]),
            "client_host": np.where(has_client, pools.client_hosts[client], ""),
            "client_ip": np.where(has_client, pools.client_ips[client], ""),
            "submission": kind == OUTBOUND,
            "size": size,
            "size2": size + rng.integers(500, 1500, m),
            "_token": rng.integers(1 << 40, 1 << 62, m),
            "_mdom": np.where(is_local_sender, cfg.domain, pools.ext_domains[pools.ext_domain[ext]]),
            "subject": pools.subjects[rng.integers(0, len(pools.subjects), m)],
            "subj_logged": (rng.random(m) < 0.3) & has_client,
            "cf": cf,
            "th": th,
            "d_clean": d_clean,
            "d_qmgr": d_qmgr,
            "t_first": t_first,
            "reject": np.where(
                kind == REJECT,
                _pick(rng, m, {REJ_BLOCKLIST: 0.45, REJ_DBL: 0.1, REJ_UNKNOWN: 0.3, REJ_RELAY: 0.15}),
                -1,
            ),
            "parent": np.full(m, -1, dtype=np.int64),
            "pid": rng.integers(1000, 60000, m),
        }
    )
    sender = (
        pl.when(pl.col("_null"))
        .then(pl.lit(""))
        .when(pl.col("_local"))
        .then(pl.col("_user") + "@" + cfg.domain)
        .otherwise(pl.col("_ext"))
    )
    msgid = pl.format("<{}.{}@{}>", pl.col("t0") // US, pl.col("_token"), pl.col("_mdom"))
    return df.with_columns(sender.alias("sender"), msgid.alias("msgid")).drop(
        "_user", "_ext", "_local", "_null", "_token", "_mdom"
    )


def _recipients(rng, cfg: Config, pools: names.Pools, msgs: pl.DataFrame) -> pl.DataFrame:
    kind = msgs["kind"].to_numpy()
    cf = msgs["cf"].to_numpy()
    m = len(kind)
    n = _pick(rng, m, {1: 0.7, 2: 0.13, 3: 0.07, 4: 0.04, 6: 0.03, 9: 0.02, 20: 0.01})
    n = np.where(kind == REJECT, 1, n)
    mi = np.repeat(np.arange(m), n)
    k = kind[mi]
    nr = len(mi)
    to_local = (k == INBOUND) | (k == REJECT) | (rng.random(nr) < 0.2)
    # an alias on inbound mail: a list (2-4 members) or a one-to-one rewrite/forward
    alias = cfg.features.aliases & (k == INBOUND) & ~cf[mi] & (rng.random(nr) < 0.06)
    members = np.where(alias, _pick(rng, nr, {1: 0.5, 2: 0.2, 3: 0.2, 4: 0.1}), 1)
    row = np.repeat(np.arange(nr), members)
    mi, k, to_local, alias = mi[row], k[row], to_local[row], alias[row]
    forward = alias & (members[row] == 1) & (rng.random(len(row)) < 0.5)
    to_local = to_local & ~forward
    nr = len(row)
    user = pools.local_users[rng.integers(0, len(pools.local_users), nr)]
    ext_i = rng.integers(0, len(pools.ext_addrs), nr)
    dom = pools.ext_domain[ext_i]
    unknown_user = (k == REJECT) & (msgs["reject"].to_numpy()[mi] == REJ_UNKNOWN)
    local_part = np.where(unknown_user, np.char.add("x", rng.integers(1000, 9999, nr).astype(str)), user)
    addr = np.where(to_local, np.char.add(np.char.add(local_part.astype(str), "@"), cfg.domain), pools.ext_addrs[ext_i])
    orig = np.where(alias, np.char.add(pools.aliases[rng.integers(0, len(pools.aliases), nr)], "@" + cfg.domain), "")
    mode = np.where(~to_local, SMTP, np.where(alias, LOCALD, np.where(rng.random(nr) < 0.75, LMTP, VIRTUAL)))
    plan = np.where(
        to_local,
        _pick(rng, nr, {P_SENT: 0.96, P_BOUNCE: 0.015, P_DEFER_SENT: 0.02, P_DEFER_BOUNCE: 0.005}),
        _pick(rng, nr, {P_SENT: 0.88, P_BOUNCE: 0.03, P_DEFER_SENT: 0.065, P_DEFER_BOUNCE: 0.01, P_STUCK: 0.015}),
    )
    df = pl.DataFrame(
        {
            "m": mi.astype(np.int64),
            "addr": addr,
            "orig": orig,
            "mode": mode.astype(np.int8),
            "relay_host": np.where(to_local, cfg.host, pools.mx_host[dom]),
            "relay_ip": np.where(to_local, "", pools.mx_ip[dom]),
            "plan": plan.astype(np.int8),
        }
    ).with_columns(pl.when(pl.col("orig") == "").then(None).otherwise("orig").alias("orig"))
    # one address once per message (a member may also be a direct recipient)
    df = df.unique(["m", "addr"], keep="first", maintain_order=True)
    df = df.with_columns(pl.col("m").cast(pl.Int64).alias("grp"), pl.int_range(pl.len(), dtype=pl.Int64).alias("r"))
    return df


def _backoff(rng, n: int, k_max: int) -> np.ndarray:
    """Cumulative retry offsets (seconds) per deferred message: Postfix-style doubling to 4000 s."""
    base = np.minimum(300.0 * 2.0 ** np.arange(k_max), 4000.0)
    gaps = base[None, :] + rng.uniform(0, 90, size=(n, k_max))
    return np.cumsum(gaps, axis=1)


def _attempts(rng, cfg: Config, msgs: pl.DataFrame, rcpts: pl.DataFrame) -> pl.DataFrame:
    """Delivery attempts of every recipient of queued messages, clipped to the window."""
    kind = msgs["kind"].to_numpy()
    t_first = msgs["t_first"].to_numpy()
    queued = rcpts.filter(pl.col("m").is_in(np.nonzero(kind != REJECT)[0]))
    mi = queued["m"].to_numpy()
    plan = queued["plan"].to_numpy()
    nr = len(mi)
    deferred = plan >= P_DEFER_SENT
    k_max = int(np.ceil(cfg.queue_lifetime_s / 4000)) + 12
    dm = np.unique(mi[deferred])
    sched = _backoff(rng, len(dm), k_max)
    row_of = np.searchsorted(dm, mi)
    target = np.exp(rng.normal(np.log(1800), 1.6, nr)).clip(200, 3 * 86400)
    target = np.where(plan == P_STUCK, cfg.queue_lifetime_s, target)
    n_retry = np.zeros(nr, dtype=np.int64)
    if len(dm):
        d_idx = np.nonzero(deferred)[0]
        n_retry[d_idx] = (sched[row_of[d_idx]] < target[d_idx, None]).sum(axis=1) + 1
    n_att = 1 + n_retry
    ai = np.repeat(np.arange(nr), n_att)
    k = np.arange(len(ai)) - np.repeat(np.cumsum(n_att) - n_att, n_att)
    offset = rng.integers(0, 400_000, nr)
    s = np.zeros(len(ai))
    has = k > 0
    s[has] = sched[row_of[ai[has]], k[has] - 1]
    t = t_first[mi[ai]] + offset[ai] + (s * US).astype(np.int64)
    last = k == n_att[ai] - 1
    p = plan[ai]
    result = np.full(len(ai), DEFERRED, dtype=np.int8)
    result[last & ((p == P_SENT) | (p == P_DEFER_SENT))] = SENT
    result[last & ((p == P_BOUNCE) | (p == P_DEFER_BOUNCE))] = BOUNCED
    if cfg.features.expire:
        result[last & (p == P_STUCK)] = EXPIRED
    n = len(ai)
    mode = queued["mode"].to_numpy()[ai]
    reason = np.where(
        result == DEFERRED,
        np.where(mode == SMTP, _pick(rng, n, {R_GREYLIST: 0.5, R_TIMEOUT: 0.5}), R_QUOTA),
        np.where(mode == SMTP, _pick(rng, n, {R_UNKNOWN: 0.7, R_SPAM: 0.3}), R_UNKNOWN),
    )
    reason = np.where(result == EXPIRED, R_TIMEOUT, reason)
    df = pl.DataFrame(
        {
            "r": queued["r"].to_numpy()[ai],
            "m": mi[ai],
            "grp": queued["grp"].to_numpy()[ai],
            "k": k.astype(np.int32),
            "t": t,
            "result": result,
            "reason": reason.astype(np.int8),
            "token": rng.integers(1 << 36, 1 << 44, n),
            "pid": rng.integers(1000, 60000, n),
        }
    )
    # a connection that timed out reached no relay: no ToIP in any format
    to_ip = pl.when(
        (pl.col("mode") != SMTP) | (pl.col("result").is_in([DEFERRED, EXPIRED]) & (pl.col("reason") == R_TIMEOUT))
    )
    df = (
        df.join(queued.select("r", "mode", "relay_ip"), on="r", how="left")
        .with_columns(to_ip.then(pl.lit("")).otherwise("relay_ip").alias("to_ip"))
        .drop("mode", "relay_ip")
    )
    return df.filter(pl.col("t") < cfg.end_us)
