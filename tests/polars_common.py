"""Expressions the reference parsers (tests/polars_<format>.py) share; the compiled parsers have
their own (rust/src/spam.rs for the spam reasons)."""

from __future__ import annotations

import polars as pl

# A reject or drop whose reason names a blocklist or spam policy is FilteredAsSpam, not None.
SPAM_REASON = (
    r"(?i)spam|blocked using|block ?list|black ?list|dnsbl|dnslist|\brbl\b|spamcop|barracudacentral"
    r"|sorbs|uceprotect|junk|\bUBE\b|bulk mail|listed (?:at|in|on|by) |realtime blackhole"
)

# An IPv4 or IPv6 literal (loose: enough to tell an address from a socket path or a name).
IP_LITERAL = r"^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$"

DETAIL_MAX = 300


def spam_reason(reason: pl.Expr) -> pl.Expr:
    """True when a reject reason names a blocklist, RBL/DNSBL or spam (addresses aside: spamela@example.org is no reason)."""
    return reason.str.replace_all(r"<[^>]*>|\S+@\S+", "").str.contains(SPAM_REASON).fill_null(False)


def reject_status(reason: pl.Expr) -> pl.Expr:
    """None, or FilteredAsSpam when the reject reason names a blocklist or spam."""
    return pl.when(spam_reason(reason)).then(pl.lit("FilteredAsSpam")).otherwise(pl.lit("None"))


def from_byte(text: pl.Expr, start: pl.Expr) -> pl.Expr:
    """`text` from byte offset `start`, as str.find gives it (str.slice counts characters: the
    two differ once a line holds non-ASCII text, an SMTPUTF8 address say); null when start is."""
    return text.cast(pl.Binary).bin.slice(start).cast(pl.String)


def tail_from(text: pl.Expr, start: pl.Expr) -> pl.Expr:
    """`text` from byte offset `start` (as str.find gives it), at most DETAIL_MAX characters; null when start is."""
    return from_byte(text, start).str.slice(0, DETAIL_MAX)


def ip_or_null(value: pl.Expr) -> pl.Expr:
    """The value when it is an IP literal (IPv6 zone/`IPv6:` prefix stripped), else null."""
    v = value.str.strip_prefix("IPv6:").str.strip_prefix("ipv6:")
    return pl.when(v.str.contains(IP_LITERAL)).then(v.str.to_lowercase()).otherwise(None)


def clip(text: pl.Expr, limit: int = DETAIL_MAX) -> pl.Expr:
    """Truncate free text for the events table (never a regex capture of a long span)."""
    return text.str.slice(0, limit)


def seconds_from_dhms(value: pl.Expr) -> pl.Expr:
    """`D+HH:MM:SS` or `HH:MM:SS` (Sendmail delay=) as float seconds."""
    parts = value.str.extract_groups(r"^(?:(\d+)\+)?(\d+):(\d\d):(\d\d)$")
    d = parts.struct.field("1").cast(pl.Float64, strict=False).fill_null(0)
    h = parts.struct.field("2").cast(pl.Float64, strict=False)
    m = parts.struct.field("3").cast(pl.Float64, strict=False)
    s = parts.struct.field("4").cast(pl.Float64, strict=False)
    return d * 86400 + h * 3600 + m * 60 + s
