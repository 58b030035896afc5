"""What a parser needs to know beyond the lines themselves: time, zone, naming; never the clock."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import polars as pl


@dataclass
class ParseContext:
    """Per-source settings, plus `state` carried from one chunk of the same source to the next."""

    timezone: str = "UTC"  # IANA zone of timestamps that carry none (RFC 3164 syslog)
    year: int | None = None  # year of the first RFC 3164 line; None: infer from `reference`
    reference: dt.datetime = field(default_factory=lambda: dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    organization: str | None = None  # None: derived from the host name
    source: str = ""  # fingerprint of the source file, stored with every event
    host: str | None = None  # host for formats whose lines do not name one (Exim mainlog, Exchange)
    state: dict = field(default_factory=dict)  # parser state carried between chunks of one source

    def reference_local(self) -> dt.datetime:
        """The reference time (file mtime) as wall time in the configured zone."""
        return self.reference.astimezone(ZoneInfo(self.timezone))


def organization_expr(host: pl.Expr, ctx: ParseContext) -> pl.Expr:
    """--organization, else the domain of the host name (mx1.example.org -> example.org), else the host."""
    if ctx.organization:
        return pl.lit(ctx.organization)
    # a handful of distinct hosts per batch: derive once per host, not once per line; both sides
    # of the mapping come from the same ordered unique list so each host keeps its own domain
    hosts = host.unique(maintain_order=True)
    domains = pl.coalesce(hosts.str.extract(r"^[^.]+\.(.+\..+)$", 1), hosts)
    return host.replace_strict(hosts, domains, default="").fill_null("")


def organization_column(host: pl.Series, ctx: ParseContext) -> pl.Expr:
    """organization_expr for a batch's host column: one literal when the batch has one host (a
    log is usually one server's), which saves a lookup per event."""
    if ctx.organization or host.is_empty() or host.null_count() or not (host == host[0]).all():
        return organization_expr(pl.col(host.name), ctx)
    return pl.lit(_domain(host[0]), pl.String)


@functools.lru_cache(maxsize=256)
def _domain(host: str) -> str:
    """organization_expr of one host, remembered: the batches of a log name the same host, and
    working it out (a regex compiled, a query run) cost more than the rest of a batch's columns."""
    return pl.select(organization_expr(pl.lit(host), ParseContext())).item()
