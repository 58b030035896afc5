"""Pools of realistic names (addresses, hosts, IPs, subjects) drawn once per seed, then indexed.

Pools are small (thousands of entries) and built with a Python loop once; the simulation picks
from them with numpy index arrays, so the cost per message is an integer, never a string operation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FIRST = (
    "alice bob carol dave erin frank grace heidi ivan judy mallory nina oscar peggy rupert sybil trent "
    "victor walter xavier yvonne zoe anna ben chloe dan eva felix gina hugo iris jack kate leo mia noah "
    "olga paul quinn rosa sam tara uma vera will yara zack"
).split()
_LAST = "smith jones brown miller davis garcia wilson moore taylor lee martin clark lewis walker hall".split()
_ROLES = "info sales support billing noreply newsletter admin hr office orders contact jobs".split()
_EXT_DOMAINS = (
    "gmail.com outlook.com yahoo.com hotmail.com gmx.de web.de orange.fr free.fr icloud.com proton.me "
    "example.com example.net contoso.com fabrikam.com northwind.org tailspin.io wingtip.co.uk "
    "adatum.de litware.fr lucerne.net woodgrove.com fourthcoffee.com alpineski.ch treyresearch.net"
).split()
# MX names of some receiving domains, so deliveries look like real relays.
_MX = {
    "gmail.com": "gmail-smtp-in.l.google.com",
    "outlook.com": "outlook-com.olc.protection.outlook.com",
    "hotmail.com": "hotmail-com.olc.protection.outlook.com",
    "yahoo.com": "mta7.am0.yahoodns.net",
    "gmx.de": "mx00.emig.gmx.net",
    "web.de": "mx-ha03.web.de",
    "icloud.com": "mx01.mail.icloud.com",
}
_V6_MX = ("gmail.com", "outlook.com", "hotmail.com")
_WORDS = (
    "invoice meeting report update order shipment reminder welcome newsletter weekly monthly quarterly "
    "project budget review agenda draft final contract offer proposal schedule holiday party lunch "
    "password reset account security alert receipt payment confirmation ticket request question"
).split()
_PREFIX = ("", "", "", "Re: ", "Fwd: ", "RE: ", "[list] ")


@dataclass(frozen=True)
class Pools:
    """String pools and the facts attached to each entry (domain of an address, relay of a domain)."""

    local_users: np.ndarray  # local parts at the host's domain
    ext_addrs: np.ndarray  # external addresses
    ext_domain: np.ndarray  # index into ext_domains for each external address
    ext_domains: np.ndarray
    mx_host: np.ndarray  # per external domain
    mx_ip: np.ndarray  # per external domain
    client_hosts: np.ndarray  # reverse names of clients ("unknown" when none)
    client_ips: np.ndarray
    subjects: np.ndarray
    aliases: np.ndarray  # local alias names (lists, role accounts)


def ipv4(rng: np.random.Generator, n: int) -> np.ndarray:
    """Public-looking IPv4 addresses (no private, loopback or multicast first octets)."""
    first = rng.choice(np.array([x for x in range(11, 224) if x not in (100, 127, 169, 172, 192)]), n)
    rest = rng.integers(1, 255, size=(n, 3))
    return np.array([f"{a}.{b}.{c}.{d}" for a, (b, c, d) in zip(first, rest, strict=True)])


def ipv6(rng: np.random.Generator, n: int) -> np.ndarray:
    """Global IPv6 addresses in canonical compressed form (as Postfix logs them)."""
    pre = rng.choice(np.array(["2001:db8", "2a00:1450", "2a02:168", "2607:f8b0", "2a01:4f8"]), n)
    g = rng.integers(1, 0xFFFF, size=(n, 3))
    return np.array([f"{p}:{a:x}:{b:x}::{c:x}" for p, (a, b, c) in zip(pre, g, strict=True)])


def build(rng: np.random.Generator, n_local: int = 400, n_ext: int = 6000, n_clients: int = 3000) -> Pools:
    """Draw the pools for one simulation."""
    users = sorted({f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}" for _ in range(n_local)} | set(_ROLES))
    domains = np.array(_EXT_DOMAINS)
    dom_idx = rng.integers(0, len(domains), n_ext)
    ext = []
    for i, d in enumerate(dom_idx):
        style = i % 4
        if style == 0:
            local = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}"
        elif style == 1:
            local = f"{rng.choice(_FIRST)}{rng.integers(1, 999)}"
        elif style == 2:
            local = str(rng.choice(_ROLES))
        else:
            local = f"{rng.choice(_FIRST)[0]}{rng.choice(_LAST)}"
        ext.append(f"{local}@{domains[d]}")
    mx_host = np.array([_MX.get(d, f"mx{1 + i % 3}.{d}") for i, d in enumerate(domains)])
    v4 = ipv4(rng, len(domains))
    v6 = ipv6(rng, len(domains))
    mx_ip = np.array([v6[i] if d in _V6_MX else v4[i] for i, d in enumerate(domains)])
    c_ip = np.concatenate([ipv4(rng, n_clients - n_clients // 8), ipv6(rng, n_clients // 8)])
    rng.shuffle(c_ip)
    c_host = np.array(
        ["unknown" if i % 5 == 0 else f"mail{i % 97}.{domains[i % len(domains)]}" for i in range(n_clients)]
    )
    subjects = []
    for i in range(500):
        words = " ".join(rng.choice(_WORDS, size=1 + i % 5))
        subjects.append(f"{_PREFIX[i % len(_PREFIX)]}{words.capitalize()} #{rng.integers(100, 99999)}")
    aliases = np.array(["staff", "sales-team", "it", "accounts", "postmaster", "abuse", "board", "devs"])
    return Pools(
        local_users=np.array(users),
        ext_addrs=np.array(ext),
        ext_domain=dom_idx,
        ext_domains=domains,
        mx_host=mx_host,
        mx_ip=mx_ip,
        client_hosts=c_host,
        client_ips=c_ip,
        subjects=np.array(subjects),
        aliases=aliases,
    )
