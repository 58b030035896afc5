"""A slow, plain-Python reading of Postfix logs, one line at a time: the oracle the store is
checked against (tests/test_postfix_differential.py).

It shares no code with the vectorised path (ingest/): its own line regexes, its own syslog
time stamps (RFC 3164 with year and DST inference, RFC 3339), its own correlation with dicts and
loops. It implements the rules as the README states them ("How log outcomes map to statuses")
and as issue 10 wants them; where the two differ from what the code does, the differential test
names the rule. Every rule below carries the name the test uses for it.

    rows = reference_rows(path.read_text(), year=2020, timezone="UTC")

gives one dict per (message, recipient) with received (UTC ISO text), sender (None when the log
never names it), recipient ("" while no recipient is known), status, queue_ids, message_id,
subject, from_ip and to_ip (of the outcome that decided the status).

The rules, by the names the differential test uses:

- instances: a queue id starts a new message after `removed` (in a later second) or after six
  days of silence. received is the first line of the first queue id; from_ip its client=.
- content-filter hand-off: `status=sent (... queued as NEWQID)` to a loopback address continues
  the message under NEWQID (the instance of NEWQID nearest in time, within an hour); until
  NEWQID is seen the recipient is Pending. queue_ids lists the ids in order of their first line.
- statuses (README "How log outcomes map to statuses"): a recipient's latest outcome wins (sent
  Delivered, deferred Pending, bounced/expired/other Failed); several to= sharing an orig_to=
  make an Expanded row, one a None row (unless that address has an outcome of its own); a hold,
  discard, qmgr expiry, amavis Blocked, or a reject naming no recipient decides every recipient
  still open, and a Quarantined/FilteredAsSpam one also a delivery logged up to 10 s after it;
  NOQUEUE rejects are rows of their own (FilteredAsSpam when the reason names a blocklist or
  spam, else None); a message with no recipient yet is one GettingStatus row.
- sender: qmgr's from= (with size) before pickup's before a reject/hold trailer's, a full
  address before a bare local part. message_id: the earliest line naming it (cleanup, else the
  amavis verdict); subject: the earliest (header_checks, else amavis).
- subject-from-amavis (issue 10 item 8): amavis Passed/Blocked lines name Subject "..." (quotes
  doubled, a decoded one followed by " (raw: ...)") and Message-ID, under Queue-ID, else queued_as.

Issue 10's correlation rules (being fixed on another branch; the test lists the cases they decide):

- local-forward: local(8) `status=sent (forwarded as NEWQID)` continues the message as a hand-off does.
- own-ip-filter: `queued as NEWQID` from a relay at the IP of the instance's own tag
  (`postfix-170.55.103.23/smtp` -> relay=170.55.103.23[...]:2501) is a content-filter hand-off.
- orig-to-on-filter-hop: the orig_to= of a linked hand-off counts for Expanded/None rows.
- bare-local-orig-to: orig_to=<root> beside to=<root@host> names the same address unqualified: no row.
- no-data-session: a queue id with only client= whose smtpd session then disconnects without
  DATA (no `data=N`, N >= 1, on its disconnect line) is no message.
- unknown-sender: a message whose from= lies outside the log has sender None (the store: null),
  not "" (the null sender `<>` of bounces).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

UTC = dt.UTC
MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}

# ---------------------------------------------------------------------------------------------
# the syslog envelope

RFC3164 = re.compile(
    r"""^(?:<\d{1,3}>(?:1\ )?)?
    (?P<mon>[A-Z][a-z]{2})\ {1,2}(?P<day>\d{1,2})\ (?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)(?:\.\d+)?
    \ (?P<host>\S+)\ (?P<prog>[^\s\[:]+)(?:\[\d+\])?:\ (?P<body>.*)$""",
    re.X,
)
RFC3339 = re.compile(
    r"""^(?:<\d{1,3}>(?:1\ )?)?
    (?P<date>\d{4}-\d\d-\d\d)[T\ ](?P<time>\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?(?P<off>Z|[+-]\d\d:?\d\d)?
    \ (?P<host>\S+)\ (?P<prog>[^\s\[:]+)(?:\[\d+\])?:\ (?P<body>.*)$""",
    re.X,
)


class Clock:
    """Local wall times -> UTC, line by line, as the README says: the year of RFC 3164 lines steps
    at New Year (a December line among January ones is a late line of the old year), and in the
    autumn the repeated hour is the second pass when a line is ten minutes or more behind the
    latest wall time seen before it. A time in the spring gap is read in the old offset."""

    def __init__(self, year: int, timezone: str) -> None:
        self.year = year
        self.zone = ZoneInfo(timezone)
        self.last_month: int | None = None
        self.latest_wall: dt.datetime | None = None

    def rfc3164(self, mon: str, day: int, h: int, mi: int, s: int) -> dt.datetime | None:
        month = MONTHS[mon] if mon in MONTHS else None
        if month is None:
            return None
        if self.last_month is not None:
            if month - self.last_month < -6:
                self.year += 1
            elif self.last_month == 1 and month == 12:
                self.year -= 1
        self.last_month = month
        try:
            wall = dt.datetime(self.year, month, day, h, mi, s)
        except ValueError:  # Feb 30: no such time, no syslog line
            return None
        return self._zoned(wall)

    def rfc3339(self, date: str, time: str, frac: str | None, off: str | None) -> dt.datetime | None:
        micro = int((frac or "0")[:6].ljust(6, "0"))
        try:
            wall = dt.datetime.fromisoformat(f"{date}T{time}").replace(microsecond=micro)
        except ValueError:
            return None
        if off is None:
            return self._zoned(wall)
        if off == "Z":
            return wall.replace(tzinfo=UTC)
        sign = 1 if off[0] == "+" else -1
        digits = off[1:].replace(":", "")
        delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return (wall - sign * delta).replace(tzinfo=UTC)

    def _zoned(self, wall: dt.datetime) -> dt.datetime:
        second_pass = self.latest_wall is not None and self.latest_wall - wall >= dt.timedelta(minutes=10)
        self._saw(wall)
        first, later = wall.replace(tzinfo=self.zone, fold=0), wall.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == later.utcoffset():
            return first.astimezone(UTC)
        in_gap = first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) != wall
        # fold=0 in a gap is the offset before the change; in the repeated hour, the first pass
        return (later if second_pass and not in_gap else first).astimezone(UTC)

    def _saw(self, wall: dt.datetime) -> None:
        if self.latest_wall is None or wall > self.latest_wall:
            self.latest_wall = wall


# ---------------------------------------------------------------------------------------------
# one line -> the facts it states

HEX_QID = re.compile(r"[0-9A-F]{5,24}")
LONG_QID = re.compile(r"[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,20}")
LEAD = re.compile(r"([0-9A-Za-z]{5,24}): (.*)$")
DELIVERY_DAEMONS = {"smtp", "lmtp", "local", "virtual", "pipe", "error", "retry", "discard"}
STATUS_OF = {"sent": "Delivered", "deferred": "Pending", "bounced": "Failed", "expired": "Failed"}
SPAMMY = re.compile(
    r"spam|blocked using|block ?list|black ?list|dnsbl|dnslist|\brbl\b|spamcop|barracudacentral|sorbs|uceprotect"
    r"|junk|\bUBE\b|bulk mail|listed (?:at|in|on|by) |realtime blackhole",
    re.I,
)
IP = re.compile(r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)")
INSTANCE_IP = re.compile(r"^postfix-(\d{1,3}(?:\.\d{1,3}){3})/")


@dataclass
class Fact:
    """What one line says about one queue id (or, queue_id None, about a NOQUEUE reject)."""

    n: int  # line number
    time: dt.datetime
    host: str
    queue_id: str | None
    kind: str
    status: str | None = None
    sender: str | None = None
    recipient: str | None = None
    orig: str | None = None
    message_id: str | None = None
    subject: str | None = None
    client_ip: str | None = None
    size: int | None = None
    nrcpt: int | None = None
    to_ip: str | None = None
    next_qid: str | None = None
    program: str = ""
    filter_hop: bool = False  # a hand-off to a content filter (or a local forward), by its shape alone

    @property
    def second(self) -> dt.datetime:
        return self.time.replace(microsecond=0)


def is_queue_id(text: str) -> bool:
    return bool(HEX_QID.fullmatch(text) or LONG_QID.fullmatch(text))


def an_ip(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.removeprefix("IPv6:").removeprefix("ipv6:")
    return text.lower() if IP.fullmatch(text) else None


def spam_or_none(reason: str) -> str:
    """FilteredAsSpam when the reason (addresses and host[ip] names aside) names a blocklist or spam."""
    bare = re.sub(r"<[^>]*>|\S+@\S+", "", re.sub(r"<[^>]*>|[^\s\[]*\[[^\]]*\]", "", reason))
    return "FilteredAsSpam" if SPAMMY.search(bare) else "None"


def envelope(text: str) -> tuple[str | None, str | None]:
    """Sender and recipient of a reject/hold line's trailer `; from=<a> to=<b>`."""
    m = re.search(r"; from=<([^>]*)>(?:,? to=<([^>]*)>)?", text)
    return (m.group(1), m.group(2)) if m else (None, None)


def reject_reason(text: str) -> str:
    verb = re.match(r"(?:NOQUEUE: )?[a-z_-]+: ", text)
    reason = text[verb.end() :] if verb else text
    trailer = r"; from=<[^>]*>,?(?: to=<[^>]*>,?)?(?: proto=[A-Z]+,?)?(?: helo=<[^>]*>)?"
    return re.sub(trailer, "", reason, count=1)


def read_line(n: int, line: str, clock: Clock) -> list[Fact]:
    m = RFC3164.match(line)
    if m:
        time = clock.rfc3164(m["mon"], int(m["day"]), int(m["h"]), int(m["mi"]), int(m["s"]))
    else:
        m = RFC3339.match(line)
        if not m:
            return []
        time = clock.rfc3339(m["date"], m["time"], m["frac"], m["off"])
    if time is None:
        return []
    host, prog, body = m["host"], m["prog"], m["body"]
    if prog.startswith("amavis"):
        return amavis_facts(n, time, host, body)
    if not prog.startswith("postfix"):
        return []
    lead = LEAD.match(body)
    if lead and is_queue_id(lead.group(1)):
        return [queue_fact(n, time, host, prog, lead.group(1), lead.group(2))]
    return noqueue_facts(n, time, host, body)


def noqueue_facts(n: int, time: dt.datetime, host: str, body: str) -> list[Fact]:
    # smtpd NOQUEUE: reject: RCPT from h[ip]: 554 5.7.1 ... blocked using zen.spamhaus.org; from=<a> to=<b> ...
    if not re.match(r"(?:NOQUEUE: (?:reject|discard|milter-reject): |proxy-reject: )", body) or "; from=<" not in body:
        return []
    sender, recipient = envelope(body)
    ip = re.search(r"(?:from|RCPT from|MAIL from|END-OF-MESSAGE from|DATA from) [^\[\s,]*\[([^\]]*)\]", body)
    screen = re.search(r"from \[([0-9A-Fa-f:.]+)\]:\d+", body)
    client = an_ip(ip.group(1)) if ip else None
    if client is None and screen:
        client = an_ip(screen.group(1))
    status = spam_or_none(reject_reason(body))
    return [Fact(n, time, host, None, "reject", status, sender, recipient, client_ip=client)]


def queue_fact(n: int, time: dt.datetime, host: str, prog: str, qid: str, rest: str) -> Fact:
    daemon = prog.rsplit("/", 1)[-1]
    fact = Fact(n, time, host, qid, "info", program=prog)
    if daemon == "smtpd" and rest.startswith("client="):
        fact.kind = "client"
        m = re.search(r"orig_client=[^\[\s,]*\[([^\]]*)\]", rest) or re.match(r"client=[^\[\s,]*\[([^\]]*)\]", rest)
        fact.client_ip = an_ip(m.group(1)) if m else None
    elif rest.startswith("message-id="):
        fact.kind, fact.message_id = "msgid", rest[len("message-id=") :].rstrip()
    elif daemon == "qmgr" and rest.startswith("from=<"):
        m = re.match(r"from=<([^>]*)>, s(?:ize=([0-9]+), nrcpt=([0-9]+)|(tatus=expired))", rest)
        if m and m.group(4):
            fact.kind, fact.status, fact.sender = "hold", "Failed", m.group(1)
        elif m:
            fact.kind, fact.sender, fact.size, fact.nrcpt = "receive", m.group(1), int(m.group(2)), int(m.group(3))
    elif daemon == "pickup" and "from=<" in rest:
        fact.kind, fact.sender = "receive", re.search(r"from=<([^>]*)>", rest).group(1)  # type: ignore[union-attr]
    elif rest == "removed":
        fact.kind = "removed"
    elif daemon in DELIVERY_DAEMONS and rest.startswith("to="):
        delivery(fact, rest, daemon)
    elif daemon == "bounce" and "notification: " in rest:
        fact.kind = "bounce"
    elif re.match(r"(?:milter-)?reject: ", rest):
        sender, recipient = envelope(rest)
        if "; from=<" in rest:
            fact.kind, fact.status = "reject", spam_or_none(reject_reason(rest))
            fact.sender, fact.recipient = sender, recipient
    elif re.match(r"(?:milter-)?(?:hold|discard): ", rest) or rest == "placed on hold":
        fact.kind = "hold"
        fact.status = "FilteredAsSpam" if "discard: " in rest[:16] else "Quarantined"
        fact.sender, fact.recipient = envelope(rest)
    elif re.match(r"(?:warning|info): header Subject: ", rest):
        fact.kind = "subject"
        m = re.match(r"(?:warning|info): header Subject: (.*?) from (?:\S*\[|local; )", rest)
        fact.subject = m.group(1) if m else None
    return fact


def delivery(fact: Fact, rest: str, daemon: str) -> None:
    # smtp 3F1A22C01: to=<bob@x>, orig_to=<b@x>, relay=mx.x[203.0.113.7]:25, delay=1.2, delays=..., dsn=2.0.0, status=sent (250 ...)
    who = re.match(r"to=<?([^>,\s]*)>?, (?:orig_to=<?([^>,\s]*)>?, )?relay=([^,\[\s]*)(?:\[([^\]]*)\])?", rest)
    how = re.search(r", delay=([\d.]+), .*?dsn=(\d\.\d{1,3}\.\d{1,3}), status=([a-z-]+)", rest)
    if not who or not how or "deliverable" in how.group(3):
        return  # an address probe, or a shape this reading does not know: informational
    raw = how.group(3)
    fact.kind, fact.status = "deliver", STATUS_OF.get(raw, "Failed")
    fact.recipient, fact.orig, fact.to_ip = who.group(1), who.group(2), an_ip(who.group(4))
    reply = rest[rest.index(", status=") + 9 :].removeprefix(raw).removeprefix(" (").removesuffix(")")[:300]
    if raw != "sent":
        return
    queued = re.search(r"queued as ([0-9A-Za-z]+)\)?$", reply)
    forwarded = re.fullmatch(r"forwarded as ([0-9A-Za-z]+)", reply)
    loopback = fact.to_ip is not None and (fact.to_ip.startswith("127.") or fact.to_ip == "::1")
    own = INSTANCE_IP.match(fact.program)
    if queued and loopback:
        fact.next_qid, fact.filter_hop = queued.group(1), True  # rule: content-filter hand-off
    elif queued and own and fact.to_ip == own.group(1):
        fact.next_qid, fact.filter_hop = queued.group(1), True  # rule: own-ip-filter (issue 10)
    elif forwarded and daemon == "local":
        fact.next_qid, fact.filter_hop = forwarded.group(1), True  # rule: local-forward (issue 10)
    if fact.filter_hop:
        fact.kind, fact.status = "handoff", "Pending"


AMAVIS_VERDICT = re.compile(r"^\([0-9-]+\) (?P<verdict>Passed|Blocked) (?P<what>[A-Z-]+)?")


def amavis_facts(n: int, time: dt.datetime, host: str, body: str) -> list[Fact]:
    # amavis[2]: (2-11) Passed CLEAN {RelayedInbound}, ... Queue-ID: 4Pb..., Message-ID: <m>, ..., queued_as: 4Pc..., Subject: "s", ...
    m = AMAVIS_VERDICT.match(body)
    if not m:
        return []
    facts = []
    queue_id = re.search(r"Queue-ID: ([0-9A-Za-z]+)", body)
    if m["verdict"] == "Blocked" and m["what"] and queue_id:
        banks = re.search(r"\{[^}]*\}", body)
        status = "Failed"
        if banks and "Quarantined" in banks.group(0):
            status = "Quarantined"
        elif m["what"] == "SPAM":
            status = "FilteredAsSpam"
        facts.append(Fact(n, time, host, queue_id.group(1), "hold", status, program="amavis"))
    subject = re.search(r', Subject: "((?:[^"]|"")*)"', body)
    message_id = re.search(r", Message-ID: (<[^<>]*>)", body)
    qid = queue_id or re.search(r"queued_as: ([0-9A-Za-z]+)", body)
    if qid and (subject or message_id):
        text = None
        if subject:
            text = subject.group(1).replace('""', '"')
            raw = text.find(" (raw: ")
            if raw >= 0 and text.endswith(")"):
                text = text[:raw]
        facts.append(
            Fact(
                n,
                time,
                host,
                qid.group(1),
                "subject",
                subject=text,
                message_id=message_id.group(1) if message_id else None,
                program="amavis",
            )
        )
    return facts


# ---------------------------------------------------------------------------------------------
# facts -> messages


@dataclass
class Instance:
    """One message under one queue id: a queue id is used again after `removed` or a long silence."""

    key: int
    host: str
    queue_id: str
    facts: list[Fact] = field(default_factory=list)
    parent: Instance | None = None

    @property
    def start(self) -> dt.datetime:
        return self.facts[0].time

    def root(self) -> Instance:
        node, steps = self, 0
        while node.parent is not None and steps < 4:  # filter chains are short (smtpd -> amavis -> signer)
            node, steps = node.parent, steps + 1
        return node


REUSE_GAP = dt.timedelta(days=6)
HANDOFF_WINDOW = dt.timedelta(hours=1)


def instances(facts: list[Fact]) -> list[Instance]:
    by_qid: dict[tuple[str, str], list[Fact]] = defaultdict(list)
    for f in facts:
        by_qid[(f.host, f.queue_id)].append(f)  # type: ignore[index]
    out: list[Instance] = []
    for (host, qid), fs in by_qid.items():
        fs.sort(key=lambda f: (f.second, f.n))
        current: Instance | None = None
        for f in fs:
            if current is not None:
                prev = current.facts[-1]
                new = (prev.kind == "removed" and f.second > prev.second) or f.time - prev.time > REUSE_GAP
                if new:
                    current = None
            if current is None:
                current = Instance(len(out), host, qid)
                out.append(current)
            current.facts.append(f)
    return out


def link(insts: list[Instance]) -> set[tuple[int, str]]:
    """Each re-queued instance gets the hand-off that names it as parent; returns the linked hand-offs."""
    by_qid: dict[tuple[str, str], list[Instance]] = defaultdict(list)
    for i in insts:
        by_qid[(i.host, i.queue_id)].append(i)
    hops = sorted(
        ((f, i) for i in insts for f in i.facts if f.kind == "handoff" and f.next_qid),
        key=lambda p: (p[0].time, p[0].n),
    )
    linked: set[tuple[int, str]] = set()
    for f, parent in hops:
        near = [c for c in by_qid.get((f.host, f.next_qid), []) if abs(c.start - f.time) <= HANDOFF_WINDOW]  # type: ignore[arg-type]
        if not near:
            continue
        child = min(near, key=lambda c: abs(c.start - f.time))
        if child is parent:
            continue
        if child.parent is None:
            child.parent = parent
        if child.parent is parent:
            linked.add((parent.key, f.next_qid))  # type: ignore[arg-type]
    return linked


def reference_rows(text: str, year: int, timezone: str) -> list[dict]:
    clock = Clock(year, timezone)
    facts: list[Fact] = []
    lines = text.splitlines()
    for n, line in enumerate(lines):
        facts.extend(read_line(n, line, clock))
    queued = [f for f in facts if f.queue_id is not None]
    insts = instances(queued)
    linked = link(insts)
    nodata = sessions_without_data(lines, insts)
    chains: dict[int, list[Instance]] = defaultdict(list)
    for i in insts:
        chains[i.root().key].append(i)
    rows = []
    for root_key, members in chains.items():
        root = insts[root_key]
        if root.key in nodata and len(members) == 1:
            continue
        if all(f.kind == "info" for f in root.facts):
            continue  # only lines this reading cannot interpret: no message
        rows.extend(message_rows(root, members, linked))
    for f in facts:
        if f.queue_id is None:
            rows.append(row(f.time, f.sender, f.recipient or "", f.status, "", "", "", f.client_ip or ""))
    return rows


def sessions_without_data(lines: list[str], insts: list[Instance]) -> set[int]:
    """Instances with only client= whose smtpd session then disconnected without a DATA command."""
    candidates = {
        i.key: i
        for i in insts
        if all(f.kind in ("client", "info") for f in i.facts) and any(f.kind == "client" for f in i.facts)
    }
    if not candidates:
        return set()
    pid_of = {}
    for key, inst in candidates.items():
        line = lines[inst.facts[0].n]
        m = re.search(r"\[(\d+)\]: ", line)
        if m:
            pid_of[key] = (inst.host, m.group(1), inst.facts[0].n)
    out = set()
    for key, (host, pid, n) in pid_of.items():
        for later in lines[n + 1 : n + 20_000]:
            if f"[{pid}]: " not in later or f" {host} " not in later:
                continue
            if "]: disconnect from " in later:
                if not re.search(r" data=[1-9]", later):
                    out.add(key)
                break
            lead = LEAD.match(later.split(f"[{pid}]: ", 1)[1])
            if lead and is_queue_id(lead.group(1)):
                break  # the session went on to another transaction
    return out


def row(received, sender, recipient, status, queue_ids, message_id, subject, from_ip, to_ip="") -> dict:
    return {
        "received": received.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "sender": sender,
        "recipient": recipient,
        "status": status,
        "queue_ids": queue_ids,
        "message_id": message_id,
        "subject": subject,
        "from_ip": from_ip,
        "to_ip": to_ip or "",
    }


def first_by_time(facts: list[Fact], kinds: set[str], attr: str):
    for f in sorted(facts, key=lambda f: (f.time, f.n)):
        if f.kind in kinds and getattr(f, attr) is not None:
            return getattr(f, attr)
    return None


def message_rows(root: Instance, members: list[Instance], linked: set[tuple[int, str]]) -> list[dict]:
    chain = [f for i in members for f in i.facts]
    order = sorted(members, key=lambda i: (i.facts[0].second, i.facts[0].n))
    queue_ids = " ".join(dict.fromkeys(i.queue_id for i in order))
    from_ip = first_by_time(root.facts, {"client", "receive"}, "client_ip") or ""
    message_id = first_by_time(chain, {"msgid", "receive", "subject"}, "message_id") or ""
    subject = first_by_time(chain, {"subject", "receive"}, "subject") or ""
    sender = envelope_sender(chain)
    outcomes: dict[str, Fact] = {}
    owner = {id(f): i for i in members for f in i.facts}
    decided = []
    for f in sorted(chain, key=lambda f: (f.second, f.n)):
        if f.kind not in ("deliver", "handoff", "reject", "expand", "hold") or f.recipient is None:
            continue
        hop_linked = f.kind == "handoff" and (owner[id(f)].key, f.next_qid) in linked
        decided.append((f, hop_linked))
        if not hop_linked:
            outcomes[f.recipient.lower()] = f
    state = {r: (f.recipient, f.status, f.time, f.to_ip) for r, f in outcomes.items()}
    # aliases: several members sharing an orig_to -> Expanded, one -> None (a one-to-one rewrite);
    # rule orig-to-on-filter-hop (issue 10): a linked hand-off's orig_to= counts as well
    members_of: dict[str, tuple[str, set[str], dt.datetime]] = {}
    for f, _ in decided:
        if f.orig is None or f.orig.lower() == f.recipient.lower():  # type: ignore[union-attr]
            continue
        if "@" not in f.orig and f.recipient.lower().split("@")[0] == f.orig.lower():  # type: ignore[union-attr]
            continue  # rule bare-local-orig-to: orig_to=<root> beside to=<root@host> is the same address, unqualified
        name, seen, first = members_of.get(f.orig.lower(), (f.orig, set(), f.time))
        seen.add(f.recipient.lower())  # type: ignore[union-attr]
        members_of[f.orig.lower()] = (name, seen, min(first, f.time))
    for key, (name, seen, first) in members_of.items():
        if key not in state:
            state[key] = (name, "Expanded" if len(seen) > 1 else "None", first, None)
    hold = last_hold(chain)
    rows = []
    if not state:
        state[""] = ("", None, None, None)
    for recipient, status, when, to_ip in state.values():
        if hold is not None:
            hold_status, hold_time = hold
            still_open = status in (None, "GettingStatus", "Pending")
            just_before = hold_status != "Failed" and when is not None and when <= hold_time + dt.timedelta(seconds=10)
            if still_open or just_before:
                status = hold_status
        status = status or "GettingStatus"
        rows.append(row(root.start, sender, recipient, status, queue_ids, message_id, subject, from_ip, to_ip))
    return rows


def envelope_sender(chain: list[Fact]) -> str | None:
    """qmgr's from= (with size) first, then pickup's, then a reject/hold trailer's; a full address
    before a bare local part. None when no line names it (rule unknown-sender, issue 10)."""

    def rank(f: Fact) -> tuple:
        bare = not ("@" in f.sender or f.sender == "")  # type: ignore[operator]
        kind = 0 if f.kind == "receive" and f.size is not None else 1 if f.kind == "receive" else 2
        return (bare, kind, f.time, f.n)

    named = [f for f in chain if f.sender is not None]
    return min(named, key=rank).sender if named else None


def last_hold(chain: list[Fact]) -> tuple[str, dt.datetime] | None:
    """The last whole-message decision: a hold/discard/expiry, or a reject naming no recipient."""
    holds = [
        f for f in chain if f.status is not None and (f.kind == "hold" or (f.kind == "reject" and f.recipient is None))
    ]
    if not holds:
        return None
    f = max(holds, key=lambda f: (f.second, f.n))
    return f.status, f.time  # type: ignore[return-value]
