"""Direction of a message row (Inbound, Outbound, Local), derived at query time.

Like the EAC's Direction column: `Inbound` is mail from outside to a local recipient,
`Outbound` mail from a local sender (or a trusted client) to outside, `Local` both inside.
Nothing is stored: the direction is computed from the stored columns and the store's local
domains each time a query needs it, so changing the local domains (`--local-domains` on
ingest or watch) re-derives every row at once, old rows included, without rewriting a file.

Who is local:
- a recipient whose domain is a local domain, or who was delivered here (Delivered through a
  transport with no remote ToIP: local, virtual, pipe, an LMTP socket, an Exchange mailbox);
- a sender whose domain is a local domain, or any sender whose client is this server itself
  (no FromIP: pickup, sendmail(1), a bounce the server wrote; or a loopback address).
The local domains are the store's configured ones; without any, each row's Organization (by
default the mail host's domain, e.g. example.org for mx1.example.org) stands for them.
A row neither of whose ends is local (an outside client relaying to outside, normally refused)
counts as Inbound: it came in from outside.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import polars as pl

DIRECTIONS = ("Inbound", "Outbound", "Local")
COLUMN = "direction"
_BY_LOWER = {d.lower(): d for d in DIRECTIONS}


def normalize_direction(value: str, option: str = "--direction", valid: Iterable[str] = DIRECTIONS) -> str:
    """The canonical spelling of a direction, or QueryError naming the option and the valid values."""
    from msgtrace.query.filters import QueryError

    allowed = tuple(valid)
    for d in allowed:
        if d.lower() == value.strip().lower():
            return d
    raise QueryError(f"invalid {option} {value!r}: valid values are {', '.join(allowed)}")


def loopback(col: str) -> pl.Expr:
    """Whether an IP column names this machine itself: 127.0.0.0/8, ::1, or 127.0.0.1 IPv4-mapped."""
    return pl.col(col).str.starts_with("127.") | pl.col(col).is_in(["::1", "::ffff:127.0.0.1"])


def _blank(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col) == "")


def _in_domains(col: str, domains: tuple[str, ...], organizations: Iterable[str] | None) -> pl.Expr:
    """Whether the address column ends in @ one of the local domains (or its row's Organization).

    Literal suffix tests are what make this cheap (about 20 times faster than extracting the
    domain): configured domains are literals, and so are the Organizations when the caller
    lists them; else each row's Organization is read.
    """
    c = pl.col(col)
    if domains:
        return pl.any_horizontal([c.str.ends_with("@" + d) for d in domains]).fill_null(False)
    if organizations is not None:
        orgs = sorted({o for o in organizations if o})
        if not orgs:
            return pl.lit(False)
        if len(orgs) == 1:
            return c.str.ends_with("@" + orgs[0].lower()).fill_null(False)
        chain = pl.when(pl.col("organization") == orgs[0]).then(c.str.ends_with("@" + orgs[0].lower()))
        for o in orgs[1:]:
            chain = chain.when(pl.col("organization") == o).then(c.str.ends_with("@" + o.lower()))
        return chain.otherwise(pl.lit(False)).fill_null(False)
    suffix = pl.concat_str([pl.lit("@"), pl.col("organization").str.to_lowercase()])
    return c.str.ends_with(suffix).fill_null(False)


def direction_expr(local_domains: Iterable[str] = (), organizations: Iterable[str] | None = None) -> pl.Expr:
    """The Direction of each message row (MESSAGE_SCHEMA columns) as Inbound, Outbound or Local.

    organizations: every Organization value among the rows, when the caller knows them (faster).
    """
    domains = tuple(sorted({d.strip().lower() for d in local_domains if d.strip()}))
    return _direction_expr(domains, None if organizations is None else tuple(organizations))


@functools.lru_cache(maxsize=64)
def _direction_expr(domains: tuple[str, ...], organizations: tuple[str, ...] | None) -> pl.Expr:
    # built once per set of domains: a web search would otherwise spend a millisecond building it
    # (expressions are immutable, so one can serve every query)
    delivered_here = (pl.col("status") == "Delivered") & _blank("to_ip") & ~_blank("relay")
    from_here = _blank("from_ip") | loopback("from_ip")
    local_sender = _in_domains("sender_lower", domains, organizations) | from_here
    local_recipient = _in_domains("recipient_lower", domains, organizations) | delivered_here
    return (
        pl.when(local_sender & local_recipient)
        .then(pl.lit("Local"))
        .when(local_sender)
        .then(pl.lit("Outbound"))
        .otherwise(pl.lit("Inbound"))
        .alias(COLUMN)
    )


def with_direction(
    lf: pl.LazyFrame, local_domains: Iterable[str] = (), organizations: Iterable[str] | None = None
) -> pl.LazyFrame:
    """lf with a `direction` column (computed only if a later step reads it)."""
    return lf.with_columns(direction_expr(local_domains, organizations))


def store_local_domains(store: Path) -> tuple[str, ...]:
    """The store's configured local domains (`--local-domains` of ingest/watch), () when none."""
    from msgtrace.ingest.storeconfig import read_config

    return tuple(read_config(store).get("local_domains", ()))
