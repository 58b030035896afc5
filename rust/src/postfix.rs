//! Postfix (and amavis) lines -> events, one line at a time: what tests/polars_postfix.py (the
//! vectorised reference) does with filters over a batch. The handlers, their tests and their
//! order are that module's; each comment names the Python function it stands for.
//!
//! Hot shapes (client=, message-id=, qmgr from=, removed, the regular delivery line) are read by
//! hand; the rest, and any line whose text is not ASCII where a hand reader would have to know
//! what Unicode calls a digit or a blank, go through the Python side's own regexes.

use std::borrow::Cow;

use memchr::memmem;
use regex::Regex;

use crate::fxhash::FxMap;
use crate::spam::Spam;
use crate::syslog::chars;

pub const DETAIL_MAX: usize = 300;

/// One event; every text borrows from the line unless a rule rewrites it.
#[derive(Default)]
pub struct Event<'a> {
    pub kind: &'static str,
    pub queue_id: Option<&'a str>,
    pub status: Option<&'static str>,
    pub sender: Option<&'a str>,
    pub recipient: Option<&'a str>,
    pub orig_recipient: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub subject: Option<Cow<'a, str>>,
    pub client_host: Option<&'a str>,
    pub client_ip: Option<Cow<'a, str>>,
    pub relay: Option<&'a str>,
    pub to_ip: Option<Cow<'a, str>>,
    pub size: Option<i64>,
    pub nrcpt: Option<i64>,
    pub delay: Option<f64>,
    pub dsn: Option<&'a str>,
    pub detail: Option<Cow<'a, str>>,
    pub next_queue_id: Option<&'a str>,
}

pub struct Patterns {
    noise: Regex,
    names: Regex,
    spam: Spam,
    ip_literal: Regex,
    reject_host_ip: Regex,
    postscreen_ip: Regex,
    client: Regex,
    orig_client: Regex,
    pickup_from: Regex,
    delivery: Regex,
    to: Regex,
    outcome: Regex,
    queued_as: Regex,
    forwarded: Regex,
    own_ip: Regex,
    bounce: Regex,
    subject: Regex,
    amavis_blocked: Regex,
    amavis_quarantined: Regex,
    amavis_raw: Regex,
}

fn re(p: &str) -> Regex {
    Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}"))
}

impl Patterns {
    pub fn new() -> Self {
        Patterns {
            noise: re(concat!(
                r"^(?:connect from|disconnect from|lost connection|timeout after|warning:|error:|fatal:|panic:",
                r"|statistics:|Anonymous TLS|Trusted TLS|Untrusted TLS|Verified TLS|SSL_accept|TLS |setting up TLS",
                r"|improper command pipelining|too many errors|NOQUEUE:|proxy-accept|CONNECT from|PASS |DNSBL rank",
                r"|discarding EHLO keywords|addr \S+ listed by domain|Connection |SSL |lost connection",
                r"|HANGUP|COMMAND |PREGREET|BARE NEWLINE|NON-SMTP|DISCONNECT|WHITELISTED|BLACKLISTED|PASS NEW|PASS OLD",
                r"|daemon started|reload|terminating|starting|stopping|refreshing|mail system|(?:Placed|Released|Deleted|Requeued)[ :]",
                r"|connect to |SSL_connect error|(?:WHITELIST|ALLOWLIST) VETO|ALLOWLISTED|DENYLISTED|bare <LF>|using backwards-compatible",
                r"|max |cache |table |host |begin |end |conversation|certificate|client=|dict_|match_|premature|",
                r"Trusted|Untrusted|Verified|Anonymous|message repeated)"
            )),
            names: re(r"<[^>]*>|[^\s\[]*\[[^\]]*\]"),
            spam: Spam::new(),
            ip_literal: re(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$"),
            reject_host_ip: re(
                r"(?:from|RCPT from|MAIL from|END-OF-MESSAGE from|DATA from) ([^\[\s,]*)\[([^\]]*)\]",
            ),
            postscreen_ip: re(r"from \[([0-9A-Fa-f:.]+)\]:\d+"),
            client: re(r"^client=([^\[\s,]*)\[([^\]]*)\]"),
            orig_client: re(r"orig_client=([^\[\s,]*)\[([^\]]*)\]"),
            pickup_from: re(r"from=<([^>]*)>"),
            delivery: re(concat!(
                r"^to=<([^<>,\s]*)>, (?:orig_to=<([^<>,\s]*)>, )?relay=([^,\[\]\s]*)(?:\[([^\[\],\s]*)\](?::\d+)?)?, ",
                r"(?:conn_use=\d+, )?delay=([0-9.]+), delays=[0-9./]*, dsn=([0-9]\.[0-9]{1,3}\.[0-9]{1,3}), status=([a-z-]+)"
            )),
            to: re(
                r"^to=<?([^>,\s]*)>?, (?:orig_to=<?([^>,\s]*)>?, )?relay=([^,\[\s]*)(?:\[([^\]]*)\])?",
            ),
            outcome: re(r", delay=([\d.]+), .*?dsn=(\d\.\d{1,3}\.\d{1,3}), status=([a-z-]+)"),
            queued_as: re(r"queued as ([0-9A-Za-z]+)\)?$"),
            forwarded: re(r"^forwarded as ([0-9A-Za-z]+)$"),
            own_ip: re(r"^[^/]*?-([0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:]*)/"),
            bounce: re(r"notification: ([0-9A-Za-z]+)$"),
            subject: re(r"^(?:warning|info): header Subject: (.*?) from (?:\S*\[|local; )"),
            amavis_blocked: re(r"\) Blocked [A-Z-]+ "),
            amavis_quarantined: re(r"\{[^}]*Quarantined[^}]*\}"),
            amavis_raw: re(r" \(raw: .*\)$"),
        }
    }
}

const DELIVERY_DAEMONS: [&str; 8] = [
    "smtp", "lmtp", "local", "virtual", "pipe", "error", "retry", "discard",
];

fn group<'a>(c: &regex::Captures<'a>, i: usize) -> Option<&'a str> {
    c.get(i).map(|m| m.as_str())
}

fn capture<'a>(r: &Regex, text: &'a str, i: usize) -> Option<&'a str> {
    r.captures(text).and_then(|c| group(&c, i))
}

/// std's substring search: no searcher to build per call (memmem::find's costs more than the
/// search on a line).
fn contains(text: &str, needle: &str) -> bool {
    text.contains(needle)
}

/// What regex `\s` is on an ASCII byte (Unicode White_Space: includes the vertical tab).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Whether `text` starts with one of these literals (an anchored alternation of literals, as
/// `^(?:milter-)?reject: ` is).
fn starts_with_any(text: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| text.starts_with(p))
}

pub fn clip(text: &str) -> &str {
    chars(text, DETAIL_MAX)
}

/// common.ip_or_null: the value when it is an IP literal ("IPv6:"/"ipv6:" prefix stripped), lowercased.
fn ip_or_null<'a>(p: &Patterns, value: Option<&'a str>) -> Option<Cow<'a, str>> {
    let v = value?;
    let v = v.strip_prefix("IPv6:").unwrap_or(v);
    let v = v.strip_prefix("ipv6:").unwrap_or(v);
    if v.is_ascii() {
        if !ascii_ip_literal(v) {
            return None;
        }
        if v.bytes().any(|c| c.is_ascii_uppercase()) {
            return Some(Cow::Owned(v.to_ascii_lowercase()));
        }
        return Some(Cow::Borrowed(v));
    }
    if p.ip_literal.is_match(v) {
        return Some(Cow::Owned(v.to_lowercase()));
    }
    None
}

/// IP_LITERAL on ASCII text: `\d{1,3}(?:\.\d{1,3}){3}` or `[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*`, whole.
fn ascii_ip_literal(v: &str) -> bool {
    let b = v.as_bytes();
    if dotted_quad(b) {
        return true;
    }
    let colon = match b.iter().position(|c| *c == b':') {
        Some(c) => c,
        None => return false,
    };
    let (head, tail) = (
        b.get(..colon).unwrap_or(&[]),
        b.get(colon + 1..).unwrap_or(&[]),
    );
    head.iter().all(|c| c.is_ascii_hexdigit() || *c == b':')
        && tail
            .iter()
            .all(|c| c.is_ascii_hexdigit() || *c == b':' || *c == b'.')
}

/// `\d{1,3}(?:\.\d{1,3}){3}` whole, on ASCII: four runs of 1 to 3 digits between dots.
fn dotted_quad(b: &[u8]) -> bool {
    let (mut parts, mut run) = (1, 0);
    for &c in b {
        if c == b'.' {
            if !(1..=3).contains(&run) {
                return false;
            }
            parts += 1;
            run = 0;
        } else if c.is_ascii_digit() {
            run += 1;
        } else {
            return false;
        }
    }
    parts == 4 && (1..=3).contains(&run)
}

/// `prefix([^\[\s,]*)\[([^\]]*)\]` anchored right after `prefix`, on ASCII text.
fn ascii_host_ip(text: &str) -> Option<(&str, &str)> {
    let b = text.as_bytes();
    let n = b
        .iter()
        .take_while(|c| !(**c == b'[' || **c == b',' || is_space(**c)))
        .count();
    if b.get(n) != Some(&b'[') {
        return None;
    }
    let ip_len = b.get(n + 1..)?.iter().position(|c| *c == b']')?;
    Some((text.get(..n)?, text.get(n + 1..n + 1 + ip_len)?))
}

/// The parsed delivery fields (recipient, orig_to, relay, ip, delay, dsn, status).
type Delivery<'a> = [Option<&'a str>; 7];

/// _DELIVERY by hand on ASCII text; None where it does not match.
fn ascii_delivery(rest: &str) -> Option<Delivery<'_>> {
    let b = rest.as_bytes();
    let mut i = 0;
    let lit = |i: &mut usize, s: &str| -> Option<()> {
        if b.get(*i..*i + s.len())? == s.as_bytes() {
            *i += s.len();
            Some(())
        } else {
            None
        }
    };
    let run = |i: &mut usize, ok: &dyn Fn(u8) -> bool| -> (usize, usize) {
        let start = *i;
        while b.get(*i).map_or(false, |c| ok(*c)) {
            *i += 1;
        }
        (start, *i)
    };
    let addr = |c: u8| !(c == b'<' || c == b'>' || c == b',' || is_space(c));
    lit(&mut i, "to=<")?;
    let (rs, re_) = run(&mut i, &addr);
    lit(&mut i, ">, ")?;
    let mut orig = None;
    if b.get(i..i + 9) == Some(b"orig_to=<") {
        let mut j = i + 9;
        let (os, oe) = run(&mut j, &addr);
        if b.get(j..j + 3) == Some(b">, ") {
            orig = Some(rest.get(os..oe)?);
            i = j + 3;
        }
    }
    lit(&mut i, "relay=")?;
    let (ls, le) = run(&mut i, &|c| {
        !(c == b',' || c == b'[' || c == b']' || is_space(c))
    });
    let mut ip = None;
    if b.get(i) == Some(&b'[') {
        let mut j = i + 1;
        let (is_, ie) = run(&mut j, &|c| {
            !(c == b'[' || c == b']' || c == b',' || is_space(c))
        });
        if b.get(j) == Some(&b']') {
            j += 1;
            if b.get(j) == Some(&b':') && b.get(j + 1).map_or(false, |c| c.is_ascii_digit()) {
                j += 1;
                run(&mut j, &|c| c.is_ascii_digit());
            }
            ip = Some(rest.get(is_..ie)?);
            i = j;
        }
    }
    lit(&mut i, ", ")?;
    if b.get(i..i + 9) == Some(b"conn_use=") {
        let mut j = i + 9;
        let (s, e) = run(&mut j, &|c| c.is_ascii_digit());
        if e > s && b.get(j..j + 2) == Some(b", ") {
            i = j + 2;
        }
    }
    lit(&mut i, "delay=")?;
    let (ds, de) = run(&mut i, &|c| c.is_ascii_digit() || c == b'.');
    if de == ds {
        return None;
    }
    lit(&mut i, ", delays=")?;
    run(&mut i, &|c| c.is_ascii_digit() || c == b'.' || c == b'/');
    lit(&mut i, ", dsn=")?;
    let dsn_start = i;
    if !b.get(i)?.is_ascii_digit() || b.get(i + 1) != Some(&b'.') {
        return None;
    }
    i += 2;
    for last in [false, true] {
        let (s, e) = run(&mut i, &|c| c.is_ascii_digit());
        if !(1..=3).contains(&(e - s)) {
            return None;
        }
        if !last {
            lit(&mut i, ".")?;
        }
    }
    let dsn_end = i;
    lit(&mut i, ", status=")?;
    let (ss, se) = run(&mut i, &|c| c.is_ascii_lowercase() || c == b'-');
    if se == ss {
        return None;
    }
    Some([
        Some(rest.get(rs..re_)?),
        orig,
        Some(rest.get(ls..le)?),
        ip,
        Some(rest.get(ds..de)?),
        Some(rest.get(dsn_start..dsn_end)?),
        Some(rest.get(ss..se)?),
    ])
}

/// `(?:from|RCPT from|MAIL from|END-OF-MESSAGE from|DATA from) ([^\[\s,]*)\[([^\]]*)\]` on
/// ASCII text: every alternative ends in "from" (and none of their heads holds one), so the
/// leftmost match is at the first "from " followed by a host and a bracketed IP.
fn ascii_reject_host_ip(text: &str) -> Option<(&str, &str)> {
    text.match_indices("from ")
        .find_map(|(at, _)| text.get(at + 5..).and_then(ascii_host_ip))
}

/// `text` without its first `; from=<[^>]*>,?(?: to=<[^>]*>,?)?(?: proto=[A-Z]+,?)?(?: helo=<[^>]*>)?`
/// (the envelope trailer of a reject), on any text: the optional parts after the sender are
/// each taken where they match, as the greedy regex does with nothing after them.
fn without_trailer(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let start = match text.find("; from=<") {
        Some(s) => s,
        None => return Cow::Borrowed(text),
    };
    // `<[^>]*>` after `name`: where it ends
    let bracketed = |i: usize, name: &[u8]| -> Option<usize> {
        let open = i + name.len();
        if b.get(i..open)? != name {
            return None;
        }
        Some(open + memchr::memchr(b'>', b.get(open..)?)? + 1)
    };
    let comma = |i: usize| if b.get(i) == Some(&b',') { i + 1 } else { i };
    let mut end = match bracketed(start, b"; from=<") {
        Some(e) => comma(e),
        None => return Cow::Borrowed(text), // no '>' after the first: none after a later one
    };
    if let Some(e) = bracketed(end, b" to=<") {
        end = comma(e);
    }
    if b.get(end..end + 7) == Some(b" proto=") {
        let n = b.get(end + 7..).map_or(0, |t| {
            t.iter().take_while(|c| c.is_ascii_uppercase()).count()
        });
        if n > 0 {
            end = comma(end + 7 + n);
        }
    }
    if let Some(e) = bracketed(end, b" helo=<") {
        end = e;
    }
    match (text.get(..start), text.get(end..)) {
        (Some(head), Some(tail)) => Cow::Owned([head, tail].concat()),
        _ => Cow::Borrowed(text),
    }
}

/// `; from=<([^>]*)>`: the sender of a reject/hold trailer (the first "; from=<" with a '>' after it).
fn env_sender(text: &str) -> Option<&str> {
    let at = text.find("; from=<")? + 8;
    let rest = text.get(at..)?;
    rest.get(..memchr::memchr(b'>', rest.as_bytes())?)
}

/// `; from=<[^>]*>,? to=<([^>]*)>`: the recipient of a trailer, at the first "; from=<" that has one.
fn env_recipient(text: &str) -> Option<&str> {
    for (at, _) in text.match_indices("; from=<") {
        let rest = text.get(at + 8..)?;
        let close = memchr::memchr(b'>', rest.as_bytes())?; // none here: none after a later one either
        let after = rest.get(close + 1..)?;
        let after = after.strip_prefix(',').unwrap_or(after);
        if let Some(to) = after.strip_prefix(" to=<") {
            return to.get(..memchr::memchr(b'>', to.as_bytes())?);
        }
    }
    None
}

/// `^((?:NOQUEUE: )?[a-z_-]+: )`: the length of the verb a reject line starts with, 0 for none.
fn verb_len(text: &str) -> usize {
    let start = if text.starts_with("NOQUEUE: ") { 9 } else { 0 };
    let b = text.as_bytes().get(start..).unwrap_or(&[]);
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_lowercase() || **c == b'_' || **c == b'-')
        .count();
    if n > 0 && b.get(n) == Some(&b':') && b.get(n + 1) == Some(&b' ') {
        start + n + 2
    } else {
        0
    }
}

/// `Queue-ID: ([0-9A-Za-z]+)`: the first "Queue-ID: " followed by a letter or digit, and that run.
fn amavis_queue_id(body: &str) -> Option<&str> {
    word_after(body, "Queue-ID: ")
}

/// `needle([0-9A-Za-z]+)`: the first `needle` followed by an ASCII letter or digit, and that run.
fn word_after<'a>(body: &'a str, needle: &str) -> Option<&'a str> {
    for (at, _) in body.match_indices(needle) {
        let rest = body.get(at + needle.len()..)?;
        let n = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
        if n > 0 {
            return rest.get(..n);
        }
    }
    None
}

/// `^\([0-9-]+\) (?:Passed|Blocked) `: amavis's verdict line (every class in it is ASCII).
fn amavis_verdict(body: &str) -> bool {
    let rest = match body.strip_prefix('(') {
        Some(r) => r,
        None => return false,
    };
    let n = rest
        .bytes()
        .take_while(|c| c.is_ascii_digit() || *c == b'-')
        .count();
    n > 0
        && rest.get(n..).map_or(false, |t| {
            t.starts_with(") Passed ") || t.starts_with(") Blocked ")
        })
}

/// `, Subject: "((?:[^"]|"")*)"` on any text: after the first `, Subject: "`, the text up to the
/// first quote that is not one of a doubled pair; with none before the end, the regex backs off
/// to the start of the last doubled pair (whose first quote then closes it); no quote, no match
/// (a later `, Subject: "` would bring a quote after this one).
fn amavis_subject(body: &str) -> Option<&str> {
    let needle = ", Subject: \"";
    let rest = body.get(body.find(needle)? + needle.len()..)?;
    let b = rest.as_bytes();
    let (mut i, mut last_pair) = (0, None);
    while let Some(q) = b.get(i..).and_then(|t| memchr::memchr(b'"', t)) {
        let q = i + q;
        if b.get(q + 1) != Some(&b'"') {
            return rest.get(..q);
        }
        last_pair = Some(q);
        i = q + 2;
    }
    rest.get(..last_pair?)
}

/// `, Message-ID: (<[^<>]*>)` on any text: the first `, Message-ID: <` whose run of characters
/// other than '<' and '>' ends at a '>'.
fn amavis_msgid(body: &str) -> Option<&str> {
    let needle = ", Message-ID: <";
    for (at, _) in body.match_indices(needle) {
        let open = at + needle.len() - 1;
        let inner = body.as_bytes().get(open + 1..)?;
        if let Some(n) = memchr::memchr2(b'<', b'>', inner) {
            if inner.get(n) == Some(&b'>') {
                return body.get(open..open + n + 2);
            }
        }
    }
    None
}

/// `^(?:warning|info): header Subject: (.*?) from (?:\S*\[|local; )` on ASCII text: the text up
/// to the first " from " (no newline before it: `.` stops there) followed by "local; " or by a
/// run of non-blanks that holds a '['.
fn ascii_subject(rest: &str) -> Option<&str> {
    let body = rest
        .strip_prefix("warning: header Subject: ")
        .or_else(|| rest.strip_prefix("info: header Subject: "))?;
    let b = body.as_bytes();
    let newline = memchr::memchr(b'\n', b).unwrap_or(b.len());
    let mut from = 0;
    // every " from ", overlapping ones too (" from from h[ip]")
    while let Some(i) = b.get(from..).and_then(|t| memmem::find(t, b" from ")) {
        let at = from + i;
        if at > newline {
            return None;
        }
        let after = b.get(at + 6..).unwrap_or(&[]);
        let bracket = after
            .iter()
            .take_while(|c| !is_space(**c))
            .any(|c| *c == b'[');
        if bracket || after.starts_with(b"local; ") {
            return body.get(..at);
        }
        from = at + 1;
    }
    None
}

enum QmgrFrom<'a> {
    Received(&'a str, &'a str, &'a str),
    Expired(&'a str),
}

/// `^from=<([^>]*)>, s(?:ize=([0-9]+), nrcpt=([0-9]+)|(tatus=expired))` by hand (every class in
/// it is ASCII, so this holds for any text).
fn qmgr_from(rest: &str) -> Option<QmgrFrom<'_>> {
    let after = rest.strip_prefix("from=<")?;
    let close = memchr::memchr(b'>', after.as_bytes())?;
    let sender = after.get(..close)?;
    let tail = after.get(close + 1..)?.strip_prefix(", s")?;
    if let Some(t) = tail.strip_prefix("ize=") {
        let n = t.bytes().take_while(u8::is_ascii_digit).count();
        let t2 = t.get(n..)?.strip_prefix(", nrcpt=")?;
        let m = t2.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || m == 0 {
            return None;
        }
        return Some(QmgrFrom::Received(sender, t.get(..n)?, t2.get(..m)?));
    }
    if tail.starts_with("tatus=expired") {
        return Some(QmgrFrom::Expired(sender));
    }
    None
}

/// A smtpd session: (host, program, pid).
pub type Session<'a> = (&'a str, &'a str, Option<&'a str>);

/// One Postfix line's envelope, as the handlers see it.
pub struct Line<'a> {
    pub host: &'a str,
    pub program: &'a str,
    pub pid: Option<&'a str>,
    pub full_body: &'a str,
    pub body: &'a str,
    pub lead: Option<&'a str>,
}

/// The parser's state within a batch: the smtpd sessions seen (for nodata events), and the
/// client=/disconnect lines of the batch in order (for the sessions left open at its end).
pub struct Sessions<'a> {
    pub last: FxMap<Session<'a>, Option<&'a str>>,
    pub lines: Vec<(Session<'a>, Option<&'a str>)>,
}

fn daemon(program: &str) -> Option<&str> {
    // ([^/]+)$
    let d = program
        .rfind('/')
        .map_or(Some(program), |at| program.get(at + 1..))?;
    if d.is_empty() {
        None
    } else {
        Some(d)
    }
}

/// A batch's parser: the thread's compiled patterns (lib.rs keeps them from batch to batch) and
/// the batch's own memo of the program names' own IP.
pub struct Parser<'p> {
    p: &'p Patterns,
    own_ip: FxMap<String, Option<String>>,
}

impl<'p> Parser<'p> {
    pub fn new(p: &'p Patterns) -> Self {
        Parser {
            p,
            own_ip: FxMap::default(),
        }
    }

    /// The events of a line from a postfix program (`program` starts with "postfix").
    /// Appends the events of a line from a postfix program to `events`; true when the line
    /// is an unknown one.
    pub fn postfix<'a>(
        &mut self,
        line: &Line<'a>,
        sessions: &mut Sessions<'a>,
        events: &mut Vec<Event<'a>>,
    ) -> bool {
        let qid = line.lead.filter(|l| self.is_qid(l));
        let mut unknown = false;
        if let Some(qid) = qid {
            self.with_queue_id(line, qid, events);
        } else {
            let body = line.full_body;
            if starts_with_any(
                body,
                &[
                    "NOQUEUE: reject: ",
                    "NOQUEUE: discard: ",
                    "NOQUEUE: milter-reject: ",
                    "proxy-reject: ",
                ],
            ) {
                events.push(self.reject(body, None));
            } else if !(body.starts_with("connect from") // the commonest of _NOISE's prefixes
                || body.starts_with("disconnect from")
                || self.p.noise.is_match(body))
            {
                unknown = true;
            }
        }
        // _sessions_without_data: smtpd client= and disconnect lines, in log order
        if line.program.ends_with("/smtpd") {
            let client = qid.is_some() && line.body.starts_with("client=");
            let disconnect = qid.is_none() && line.body.starts_with("disconnect from ");
            if client || disconnect {
                let key = (line.host, line.program, line.pid);
                if disconnect && !contains(line.body, " data=") && line.pid.is_some() {
                    // a join on a null pid matches nothing (Polars' join_asof)
                    if let Some(Some(open)) = sessions.last.get(&key) {
                        events.push(Event {
                            kind: "nodata",
                            queue_id: Some(open),
                            detail: Some(Cow::Borrowed(clip(line.body))),
                            ..Default::default()
                        });
                    }
                }
                sessions.last.insert(key, qid);
                sessions.lines.push((key, qid));
            }
        }
        unknown
    }

    /// _QID on a lead (5-24 ASCII letters and digits): upper-case hex, or 10-20 characters of
    /// the vowel-free base-52 alphabet of long queue ids.
    fn is_qid(&self, lead: &str) -> bool {
        let b = lead.as_bytes();
        if (5..=24).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
        {
            return true;
        }
        let vowel = |c: u8| {
            matches!(
                c,
                b'A' | b'E' | b'I' | b'O' | b'U' | b'a' | b'e' | b'i' | b'o' | b'u'
            )
        };
        (10..=20).contains(&b.len()) && b.iter().all(|c| c.is_ascii_alphanumeric() && !vowel(*c))
    }

    fn with_queue_id<'a>(&mut self, line: &Line<'a>, qid: &'a str, events: &mut Vec<Event<'a>>) {
        let rest = line.body;
        let daemon = daemon(line.program);
        let key = chars(rest, 2);
        let start = events.len();
        let ev = |kind: &'static str| Event {
            kind,
            queue_id: Some(qid),
            ..Default::default()
        };
        // _client
        if key == "cl" && daemon == Some("smtpd") && rest.starts_with("client=") {
            let mut e = ev("client");
            let (host, ip) = self.host_ip(rest, "client=", &self.p.client);
            let (mut host, mut ip) = (host, ip_or_null(self.p, ip));
            if contains(rest, "orig_client=") {
                if let Some(c) = self.p.orig_client.captures(rest) {
                    host = group(&c, 1).or(host);
                    ip = ip_or_null(self.p, group(&c, 2)).or(ip);
                }
            }
            e.client_host = host;
            e.client_ip = ip;
            events.push(e);
        }
        // _msgid
        if key == "me" && rest.starts_with("message-id=") {
            let mut e = ev("msgid");
            e.message_id = Some(rest.strip_prefix("message-id=").unwrap_or(rest).trim_end());
            events.push(e);
        }
        // _qmgr_from
        if key == "fr" && daemon == Some("qmgr") && rest.starts_with("from=<") {
            match qmgr_from(rest) {
                Some(QmgrFrom::Expired(sender)) => {
                    let mut e = ev("hold");
                    e.status = Some("Failed");
                    e.sender = Some(sender);
                    e.detail = Some(Cow::Borrowed(clip(rest)));
                    events.push(e);
                }
                Some(QmgrFrom::Received(sender, size, nrcpt)) => {
                    let mut e = ev("receive");
                    e.sender = Some(sender);
                    // a value too big for Int64 is null, the line still counts
                    e.size = size.parse().ok();
                    e.nrcpt = nrcpt.parse().ok();
                    events.push(e);
                }
                None => {}
            }
        }
        // _pickup
        if daemon == Some("pickup") && contains(rest, "from=<") {
            let mut e = ev("receive");
            e.sender = capture(&self.p.pickup_from, rest, 1);
            events.push(e);
        }
        // _removed
        if key == "re" && rest == "removed" {
            events.push(ev("removed"));
        }
        // _deliveries
        if key == "to"
            && daemon.map_or(false, |d| DELIVERY_DAEMONS.contains(&d))
            && rest.starts_with("to=")
        {
            if let Some(e) = self.delivery(line, qid, rest) {
                events.push(e);
            }
        }
        // _bounce
        if daemon == Some("bounce") && contains(rest, "notification: ") {
            let mut e = ev("bounce");
            e.next_queue_id = capture(&self.p.bounce, rest, 1);
            e.detail = Some(Cow::Borrowed(clip(rest)));
            events.push(e);
        }
        // _rejects_with_qid
        if (key == "re" || key == "mi") && starts_with_any(rest, &["reject: ", "milter-reject: "]) {
            events.push(self.reject(rest, Some(qid)));
        }
        // _holds
        if key == "mi" || key == "ho" || key == "pl" || key == "di" {
            let held =
                starts_with_any(rest, &["hold: ", "milter-hold: "]) || rest == "placed on hold";
            if held || starts_with_any(rest, &["discard: ", "milter-discard: "]) {
                let mut e = ev("hold");
                e.status = Some(if held {
                    "Quarantined"
                } else {
                    "FilteredAsSpam"
                });
                e.sender = env_sender(rest);
                e.recipient = env_recipient(rest);
                e.detail = Some(Cow::Borrowed(clip(rest)));
                events.push(e);
            }
        }
        // _subject
        if (key == "wa" || key == "in")
            && starts_with_any(
                rest,
                &["warning: header Subject: ", "info: header Subject: "],
            )
        {
            let mut e = ev("subject");
            e.subject = if rest.is_ascii() {
                ascii_subject(rest)
            } else {
                capture(&self.p.subject, rest, 1)
            }
            .map(Cow::Borrowed);
            events.push(e);
        }
        // info: a queue-id line no handler claimed
        if events.len() == start {
            let mut e = ev("info");
            e.detail = Some(Cow::Borrowed(clip(rest)));
            events.push(e);
        }
    }

    /// `^prefix([^\[\s,]*)\[([^\]]*)\]`: by hand on ASCII text, else the regex.
    fn host_ip<'a>(
        &self,
        text: &'a str,
        prefix: &str,
        r: &Regex,
    ) -> (Option<&'a str>, Option<&'a str>) {
        if text.is_ascii() {
            match text.strip_prefix(prefix).and_then(ascii_host_ip) {
                Some((h, i)) => (Some(h), Some(i)),
                None => (None, None),
            }
        } else {
            match r.captures(text) {
                Some(c) => (group(&c, 1), group(&c, 2)),
                None => (None, None),
            }
        }
    }

    fn delivery<'a>(&mut self, line: &Line<'a>, qid: &'a str, rest: &'a str) -> Option<Event<'a>> {
        let fast = if rest.is_ascii() {
            ascii_delivery(rest)
        } else {
            self.p.delivery.captures(rest).map(|c| {
                let mut f: Delivery = [None; 7];
                for (i, v) in f.iter_mut().enumerate() {
                    *v = group(&c, i + 1);
                }
                f
            })
        };
        let fields = match fast {
            Some(f) => f,
            None => {
                let mut f: Delivery = [None; 7];
                if let Some(c) = self.p.to.captures(rest) {
                    for (i, v) in f.iter_mut().take(4).enumerate() {
                        *v = group(&c, i + 1);
                    }
                }
                if let Some(c) = self.p.outcome.captures(rest) {
                    for (i, v) in f.iter_mut().skip(4).enumerate() {
                        *v = group(&c, i + 1);
                    }
                }
                f
            }
        };
        let [recipient, orig, relay, ip, delay, dsn, raw] = fields;
        let raw = raw?;
        if contains(raw, "deliverable") {
            return None; // address verification probes deliver nothing
        }
        let status = match raw {
            "sent" => "Delivered",
            "deferred" => "Pending",
            _ => "Failed",
        };
        let response = rest
            .find(", status=")
            .and_then(|at| rest.get(at + 9..))
            .map(|r| {
                let r = r.strip_prefix(raw).unwrap_or(r);
                let r = r.strip_prefix(" (").unwrap_or(r);
                r.strip_suffix(')').unwrap_or(r)
            });
        let detail = response.map(clip);
        let to_ip = ip_or_null(self.p, ip);
        let sent = raw == "sent";
        let mut next = None;
        if sent {
            if let Some(d) = detail {
                if relay == Some("local") {
                    next = capture(&self.p.forwarded, d, 1);
                }
                if next.is_none() {
                    next = self.queued_as(d);
                }
            }
        }
        let mut handoff = false;
        if next.is_some() {
            let loopback = to_ip
                .as_deref()
                .map_or(false, |ip| ip.starts_with("127.") || ip == "::1");
            let own = match (self.own_ip(line.program), to_ip.as_deref()) {
                (Some(own), Some(ip)) => own == ip,
                _ => false,
            };
            handoff = loopback || relay == Some("local") || own;
        }
        Some(Event {
            kind: if handoff { "handoff" } else { "deliver" },
            queue_id: Some(qid),
            status: Some(if handoff { "Pending" } else { status }),
            recipient,
            orig_recipient: orig,
            relay,
            to_ip,
            delay: delay.and_then(|d| d.parse().ok()),
            dsn,
            detail: detail.map(Cow::Borrowed),
            next_queue_id: next,
            ..Default::default()
        })
    }

    /// `queued as ([0-9A-Za-z]+)\)?$`: what follows the last "queued as " must be the id to the end.
    fn queued_as<'a>(&self, detail: &'a str) -> Option<&'a str> {
        let at = detail.rfind("queued as ")?;
        let tail = detail.get(at + 10..)?;
        let id = tail.strip_suffix(')').unwrap_or(tail);
        if !id.is_empty() && id.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Some(id);
        }
        // an id followed by "))" or the like: the regex decides (it never matches more than this)
        capture(&self.p.queued_as, detail, 1)
    }

    /// The IP a multi-instance Postfix names itself by (`postfix-170.55.103.23/smtp`), per program.
    fn own_ip(&mut self, program: &str) -> Option<String> {
        if let Some(v) = self.own_ip.get(program) {
            return v.clone();
        }
        let v = capture(&self.p.own_ip, program, 1).map(str::to_string);
        self.own_ip.insert(program.to_string(), v.clone());
        v
    }

    /// _rejects: a reject line (with its queue id, or NOQUEUE) as an event.
    fn reject<'a>(&self, text: &'a str, qid: Option<&'a str>) -> Event<'a> {
        let p = &self.p;
        let (host, ip) = if text.is_ascii() {
            match ascii_reject_host_ip(text) {
                Some((h, i)) => (Some(h), Some(i)),
                None => (None, None),
            }
        } else {
            match p.reject_host_ip.captures(text) {
                Some(c) => (group(&c, 1), group(&c, 2)),
                None => (None, None),
            }
        };
        let client_ip =
            ip_or_null(p, ip).or_else(|| ip_or_null(p, capture(&p.postscreen_ip, text, 1)));
        let verb = verb_len(text);
        let reason = without_trailer(text.get(verb..).unwrap_or(""));
        let has_envelope = contains(text, "; from=<");
        let status = if has_envelope {
            let named = p.names.replace_all(&reason, "");
            Some(p.spam.status(&named))
        } else {
            None
        };
        let detail = Some(match reason {
            Cow::Borrowed(r) => Cow::Borrowed(clip(r)),
            Cow::Owned(r) => Cow::Owned(clip(&r).to_string()),
        });
        Event {
            kind: if has_envelope { "reject" } else { "info" },
            queue_id: qid,
            status,
            sender: env_sender(text),
            recipient: env_recipient(text),
            client_host: host,
            client_ip,
            detail,
            ..Default::default()
        }
    }

    /// _amavis_blocked and _amavis_headers on an amavis line's body.
    pub fn amavis<'a>(&self, body: &'a str, events: &mut Vec<Event<'a>>) {
        let p = &self.p;

        // the regex needs its literal: most amavis lines are Passed ones
        if contains(body, ") Blocked ")
            && p.amavis_blocked.is_match(body)
            && contains(body, "Queue-ID: ")
        {
            let status = if p.amavis_quarantined.is_match(body) {
                "Quarantined"
            } else if contains(body, "Blocked SPAM") {
                "FilteredAsSpam"
            } else {
                "Failed"
            };
            let at = body.find(") ").map_or(0, |a| a + 2);
            events.push(Event {
                kind: "hold",
                queue_id: amavis_queue_id(body),
                status: Some(status),
                detail: Some(Cow::Borrowed(clip(body.get(at..).unwrap_or("")))),
                ..Default::default()
            });
        }
        let names = contains(body, ", Subject: \"") || contains(body, "Message-ID: ");
        if names && amavis_verdict(body) {
            let qid = amavis_queue_id(body).or_else(|| word_after(body, "queued_as: "));
            if let Some(qid) = qid {
                let subject = amavis_subject(body).map(|s| {
                    let s = if contains(s, "\"\"") {
                        Cow::Owned(s.replace("\"\"", "\""))
                    } else {
                        Cow::Borrowed(s)
                    };
                    if !contains(&s, " (raw: ") {
                        return s; // what the regex needs
                    }
                    match p.amavis_raw.replacen(&s, 1, "") {
                        Cow::Borrowed(_) => s,
                        Cow::Owned(o) => Cow::Owned(o),
                    }
                });
                events.push(Event {
                    kind: "subject",
                    queue_id: Some(qid),
                    subject,
                    message_id: amavis_msgid(body),
                    ..Default::default()
                });
            }
        }
    }
}
