//! Sendmail syslog lines -> events, one line at a time: what tests/polars_sendmail.py (the
//! vectorised reference) does with filters over a batch. Its categories, their order and every
//! field rule are that module's; each comment names the Python function it stands for.
//!
//! The reference reads each field by its own search (`, size=(\d+)`, ...), its fast paths being a
//! shortcut that gives what those searches give. Here each search is done by hand on ASCII text;
//! on text that is not ASCII, where a hand reader would have to know what Unicode calls a digit,
//! a blank or a word character, the very regexes of the reference run instead.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use regex::Regex;

use crate::batch::{self, Clock, SyslogIn};
use crate::columns;
use crate::fxhash::FxMap;
use crate::postfix::{clip, Event};
use crate::spare;
use crate::syslog;
use crate::{le_i64, Out, Time};

/// Sendmail's own lines that say nothing about a message's fate: dropped, not unknown (_NOISE).
const NOISE: [&str; 22] = [
    "did not issue MAIL",
    "lost input channel",
    "SMTP outgoing connect",
    "Milter: no active filter",
    "Milter (",
    "AUTH=",
    "STARTTLS",
    "rejecting commands from",
    "timeout waiting",
    "done; ",
    "connect from",
    "starting daemon",
    "alias database",
    "ruleset=",
    "tls_",
    "accepting connections",
    "rejecting connections",
    "restarting ",
    "Authentication-Warning",
    "[rejected]",
    "grew WorkList",
    "runqueue",
];

/// What a `QID: NEWQID: ` line says after the new id (_DSN).
const DSN_WORDS: [&str; 4] = [
    "DSN: ",
    "return to sender: ",
    "sender notify: ",
    "postmaster notify: ",
];

struct Patterns {
    facility: Regex,
    program: Regex,
    noise: Regex,
    discard: Regex,
    spam_addr: Regex,
    spam: Regex,
    spam_ascii: Regex,
    // the reference's per-field searches, for text that is not ASCII
    sender: Regex,
    size: Regex,
    nrcpts: Regex,
    msgid: Regex,
    ctladdr: Regex,
    delay: Regex,
    mailer: Regex,
    dsn: Regex,
    ruleset: Regex,
    arg1: Regex,
    milter_from: Regex,
    milter_to: Regex,
    reject_dsn: Regex,
    seconds: Regex,
}

/// The patterns, compiled once per process (a batch is some 40,000 lines; compiling the Unicode
/// classes of two dozen regexes was a fiftieth of its parse).
static PATTERNS: Mutex<Option<Arc<(Patterns, syslog::Patterns)>>> = Mutex::new(None);

fn patterns() -> Arc<(Patterns, syslog::Patterns)> {
    let mut cached = PATTERNS.lock().unwrap_or_else(|e| e.into_inner());
    cached
        .get_or_insert_with(|| Arc::new((Patterns::new(), syslog::Patterns::new())))
        .clone()
}

fn re(p: &str) -> Regex {
    Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}"))
}

impl Patterns {
    fn new() -> Self {
        let noise: Vec<String> = NOISE.iter().map(|s| regex::escape(s)).collect();
        Patterns {
            facility: re(r"^([A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d) <\w+\.\w+> "),
            program: re(r"^(?:sendmail|sm-[\w-]+)$"),
            noise: re(&noise.join("|")),
            discard: re(r"(?i)^milter.*\bdiscard"),
            spam_addr: re(r"<[^>]*>|\S+@\S+"),
            // common.SPAM_REASON; on ASCII text an ASCII word boundary is the Unicode one and
            // lets the regex run as a DFA
            spam: re(concat!(
                r"(?i)spam|blocked using|block ?list|black ?list|dnsbl|dnslist|\brbl\b|spamcop|barracudacentral",
                r"|sorbs|uceprotect|junk|\bUBE\b|bulk mail|listed (?:at|in|on|by) |realtime blackhole"
            )),
            spam_ascii: re(concat!(
                r"(?i)spam|blocked using|block ?list|black ?list|dnsbl|dnslist|(?-u:\b)rbl(?-u:\b)|spamcop|barracudacentral",
                r"|sorbs|uceprotect|junk|(?-u:\b)UBE(?-u:\b)|bulk mail|listed (?:at|in|on|by) |realtime blackhole"
            )),
            sender: re(r"^from=<?([^,\s>]*)"),
            size: re(r", size=(\d+)"),
            nrcpts: re(r", nrcpts=(\d+)"),
            msgid: re(r", msgid=([^,\s]+)"),
            ctladdr: re(r", ctladdr=<?([^,\s>]*)"),
            delay: re(r", delay=([\d+:]+)"),
            mailer: re(r", mailer=([^,\s]+)"),
            dsn: re(r", dsn=([\d.]+)"),
            ruleset: re(r"^ruleset=(\w+)"),
            arg1: re(r", arg1=<?([^,\s>]*)"),
            milter_from: re(r"(?:^|: )from=<?([^,\s>]*)"),
            milter_to: re(r"(?:^|: )to=<?([^,\s>]*)"),
            reject_dsn: re(r"^\d{3} ([245]\.\d{1,3}\.\d{1,3})"),
            seconds: re(r"^(?:(\d+)\+)?(\d+):(\d\d):(\d\d)$"),
        }
    }
}

fn capture<'a>(r: &Regex, text: &'a str) -> Option<&'a str> {
    r.captures(text).and_then(|c| c.get(1)).map(|m| m.as_str())
}

/// Where `needle` starts in `hay`, every place in order. The needles here start with a byte a
/// line holds a handful of (',', ':', '.'): testing each of those is cheaper than setting up a
/// substring searcher per search, and tries every start as a regex search does.
fn find_all<'h>(hay: &'h [u8], needle: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
    let first = needle.first().copied().unwrap_or(0);
    memchr::memchr_iter(first, hay)
        .filter(move |at| hay.get(*at..).map_or(false, |h| h.starts_with(needle)))
}

fn find(text: &str, needle: &str) -> Option<usize> {
    find_all(text.as_bytes(), needle.as_bytes()).next()
}

fn contains(text: &str, needle: &str) -> bool {
    find(text, needle).is_some()
}

/// What regex `\s` is on an ASCII byte (Unicode White_Space: includes the vertical tab).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `[^,\s]` on ASCII
fn not_comma_space(c: u8) -> bool {
    !(c == b',' || is_space(c))
}

/// The length of the run of bytes `ok` accepts at the start of `b`.
fn run(b: &[u8], ok: impl Fn(u8) -> bool) -> usize {
    b.iter().take_while(|c| ok(**c)).count()
}

/// `needle(X+)`, X a class of ASCII bytes: the run after the first `needle` that has one at
/// least `min` long. (A class that excludes only ASCII bytes reads any UTF-8 text this way.)
fn run_after<'a>(
    text: &'a str,
    needle: &str,
    min: usize,
    ok: impl Fn(u8) -> bool,
) -> Option<&'a str> {
    let b = text.as_bytes();
    for at in find_all(b, needle.as_bytes()) {
        let start = at + needle.len();
        let n = run(b.get(start..).unwrap_or(&[]), &ok);
        if n >= min {
            return text.get(start..start + n);
        }
    }
    None
}

/// `<?([^,\s>]*)` at the start of `rest` (ASCII): an address without its `<`.
fn address_tail(rest: &str) -> Option<&str> {
    let rest = rest.strip_prefix('<').unwrap_or(rest);
    let n = run(rest.as_bytes(), |c| {
        !(c == b',' || c == b'>' || is_space(c))
    });
    rest.get(..n)
}

/// `needle<?([^,\s>]*)` (ASCII): the address after the first `needle`.
fn address_after<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    let at = find(text, needle)? + needle.len();
    address_tail(text.get(at..)?)
}

/// `(?:^|: )name<?([^,\s>]*)` (ASCII): the address after `name` at the start or after ": ".
fn milter_address<'a>(text: &'a str, name: &str, after_colon: &str) -> Option<&'a str> {
    if let Some(rest) = text.strip_prefix(name) {
        return address_tail(rest);
    }
    address_after(text, after_colon)
}

/// `, relay=([^ ,]+)`
fn relay_name(text: &str) -> Option<&str> {
    run_after(text, ", relay=", 1, |c| c != b' ' && c != b',')
}

/// `, relay=[^ ,]+ \[([^\]]+)\]`: the first `, relay=` with a bracketed address after its name.
fn relay_ip(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    for at in find_all(b, b", relay=") {
        let start = at + 8;
        let n = run(b.get(start..).unwrap_or(&[]), |c| c != b' ' && c != b',');
        if n == 0 || b.get(start + n..start + n + 2) != Some(b" [") {
            continue;
        }
        let ip = start + n + 2;
        match memchr::memchr(b']', b.get(ip..).unwrap_or(&[])) {
            Some(len) if len > 0 => return text.get(ip..ip + len),
            _ => continue,
        }
    }
    None
}

/// `^\[(?:IPv6:)?([^\]]+)\]$`: the address of a relay named by a bare literal.
fn bracketed(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('[')?.strip_suffix(']')?;
    if inner.contains(']') {
        return None;
    }
    match inner.strip_prefix("IPv6:") {
        Some(rest) if !rest.is_empty() => Some(rest),
        _ if !inner.is_empty() => Some(inner),
        _ => None,
    }
}

/// _relay_columns: (name, address) of a `relay=`: a bare `[ip]` is an address, `IPv6:` and the
/// FQDN's final dot go.
fn relay_columns<'a>(
    name: Option<&'a str>,
    ip: Option<&'a str>,
) -> (Option<&'a str>, Option<&'a str>) {
    let literal = name.and_then(bracketed);
    let host = match literal {
        None => name.map(|n| n.strip_suffix('.').unwrap_or(n)),
        Some(_) => None,
    };
    let addr = ip.map(|i| i.strip_prefix("IPv6:").unwrap_or(i)).or(literal);
    (host, addr)
}

/// A run of 8 to 20 ASCII letters and digits at the start of `text`, followed by ": " (the queue
/// id a sendmail line leads with, _QID_LEAD): (the id, what follows the ": ").
fn queue_id_lead(text: &str) -> Option<(&str, &str)> {
    let b = text.as_bytes();
    let n = run(b, |c| c.is_ascii_alphanumeric());
    if (8..=20).contains(&n) && b.get(n..n + 2) == Some(b": ") {
        return Some((text.get(..n)?, text.get(n + 2..)?));
    }
    None
}

/// _HANDOFF: `Sent (NEWQID Message accepted for delivery)`: the local MTA's new queue id.
fn handoff_id(detail: &str) -> Option<&str> {
    let rest = detail.strip_prefix("Sent (")?;
    let n = run(rest.as_bytes(), |c| c.is_ascii_alphanumeric());
    let tail = rest.get(n..)?;
    if (8..=20).contains(&n) && tail.starts_with(" Message accepted for delivery)") {
        return rest.get(..n);
    }
    None
}

/// `(?i)^milter.*\bdiscard` on ASCII text.
fn discards(text: &str) -> bool {
    let b = text.as_bytes();
    if !b
        .get(..6)
        .map_or(false, |h| h.eq_ignore_ascii_case(b"milter"))
    {
        return false;
    }
    let end = memchr::memchr(b'\n', b).unwrap_or(b.len()); // `.` stops at a newline
    (6..end).any(|p| {
        b.get(p..p + 7).map_or(false, |w| {
            p + 7 <= end && w.eq_ignore_ascii_case(b"discard")
        }) && b.get(p - 1).map_or(false, |c| !is_word(*c))
    })
}

/// `^\d{3} ([245]\.\d{1,3}\.\d{1,3})` on ASCII text.
fn reject_dsn(detail: &str) -> Option<&str> {
    let b = detail.as_bytes();
    if run(b.get(..3)?, |c| c.is_ascii_digit()) != 3 || b.get(3) != Some(&b' ') {
        return None;
    }
    if !matches!(b.get(4), Some(b'2' | b'4' | b'5')) || b.get(5) != Some(&b'.') {
        return None;
    }
    let mid = run(b.get(6..).unwrap_or(&[]), |c| c.is_ascii_digit());
    if !(1..=3).contains(&mid) || b.get(6 + mid) != Some(&b'.') {
        return None;
    }
    let last = run(b.get(7 + mid..).unwrap_or(&[]), |c| c.is_ascii_digit()).min(3);
    if last == 0 {
        return None;
    }
    detail.get(4..7 + mid + last)
}

/// `^(?:(\d+)\+)?(\d+):(\d\d):(\d\d)$` on ASCII text: the groups.
fn dhms(s: &str) -> Option<[Option<&str>; 4]> {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    let (day, rest) = match s.find('+') {
        Some(i) => {
            let day = s.get(..i)?;
            if !digits(day) {
                return None; // a '+' the day group does not take fails the rest too
            }
            (Some(day), s.get(i + 1..)?)
        }
        None => (None, s),
    };
    let mut parts = rest.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !digits(h) || !digits(m) || !digits(sec) {
        return None;
    }
    if m.len() != 2 || sec.len() != 2 {
        return None;
    }
    Some([day, Some(h), Some(m), Some(sec)])
}

/// One line's envelope fields the events carry.
struct Sink<'o, 't> {
    out: &'o mut Out,
    line_no: i64,
    time: &'t Time,
    host: &'t str,
    program: &'t str,
}

impl Sink<'_, '_> {
    fn push(&mut self, e: &Event) -> Result<(), String> {
        self.out
            .push(self.line_no, self.time, self.host, self.program, e)
    }
}

/// What a line is, after its handler ran.
enum Outcome {
    Events,
    Noise,
    Unknown,
    /// `QID: <a@b>... text`: decided at the end of the batch (_address_lines)
    Address,
}

struct Parser<'p> {
    p: &'p Patterns,
}

impl Parser<'_> {
    /// _PROGRAM: `^(?:sendmail|sm-[\w-]+)$`
    fn is_sendmail(&self, program: &str) -> bool {
        if program == "sendmail" {
            return true;
        }
        match program.strip_prefix("sm-") {
            Some(rest) if rest.is_ascii() => {
                !rest.is_empty() && rest.bytes().all(|c| is_word(c) || c == b'-')
            }
            Some(_) => self.p.program.is_match(program),
            None => false,
        }
    }

    /// The line without the BSD syslog facility tag (`<mail.notice>`) after its time (_FACILITY).
    fn without_facility<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let b = line.as_bytes();
        let plain_stamp = b.len() > 16
            && b.first().map_or(false, u8::is_ascii_uppercase)
            && b.get(1..3)
                .map_or(false, |m| m.iter().all(u8::is_ascii_lowercase))
            && b.get(3) == Some(&b' ')
            && b.get(4).map_or(false, |c| *c == b' ' || c.is_ascii_digit())
            && b.get(5).map_or(false, u8::is_ascii_digit)
            && b.get(6..16).map_or(false, |t| {
                t.iter().enumerate().all(|(i, c)| match i {
                    0 | 9 => *c == b' ',
                    3 | 6 => *c == b':',
                    _ => c.is_ascii_digit(),
                })
            });
        // a plain RFC 3164 stamp followed by anything but '<' has no tag; else the regex decides
        if plain_stamp && b.get(16) != Some(&b'<') {
            return Cow::Borrowed(line);
        }
        match self.p.facility.captures(line) {
            Some(c) => match (c.get(0), c.get(1)) {
                (Some(all), Some(stamp)) => Cow::Owned(format!(
                    "{} {}",
                    stamp.as_str(),
                    line.get(all.end()..).unwrap_or("")
                )),
                _ => Cow::Borrowed(line),
            },
            None => Cow::Borrowed(line),
        }
    }

    /// common.spam_reason: the reason names a blocklist or spam (addresses aside).
    fn spam(&self, reason: &str) -> bool {
        let plain = if reason.contains('<') || reason.contains('@') {
            self.p.spam_addr.replace_all(reason, "")
        } else {
            Cow::Borrowed(reason)
        };
        let spam = if plain.is_ascii() {
            &self.p.spam_ascii
        } else {
            &self.p.spam
        };
        spam.is_match(&plain)
    }

    /// _seconds: a `delay=` as seconds (`1+00:00:15`: a day and 15 s); a day that is no number
    /// counts as none, as the reference's fill_null(0) has it.
    fn seconds(&self, delay: &str) -> Option<f64> {
        let groups: [Option<&str>; 4] = if delay.is_ascii() {
            dhms(delay)?
        } else {
            let c = self.p.seconds.captures(delay)?;
            let g = |i: usize| c.get(i).map(|m| m.as_str());
            [g(1), g(2), g(3), g(4)]
        };
        let f = |v: Option<&str>| v.and_then(|s| s.parse::<f64>().ok());
        let day = f(groups[0]).unwrap_or(0.0);
        let (h, m, s) = (f(groups[1])?, f(groups[2])?, f(groups[3])?);
        Some(day * 86400.0 + h * 3600.0 + m * 60.0 + s)
    }

    /// The events of one sendmail line's text (after its queue id, NOQUEUE cut): the reference's
    /// categories, in its order.
    fn line(&self, qid: Option<&str>, text: &str, sink: &mut Sink) -> Result<Outcome, String> {
        if let Some(qid) = qid {
            if text.starts_with("from=") {
                self.receive(qid, text, sink)?;
                return Ok(Outcome::Events);
            }
            if text.starts_with("to=") {
                self.deliver(qid, text, sink)?;
                return Ok(Outcome::Events);
            }
        }
        if (text.starts_with("ruleset=") || text.starts_with("Milter"))
            && contains(text, ", reject=")
        {
            self.reject(qid, text, sink)?;
            return Ok(Outcome::Events);
        }
        if let Some(qid) = qid {
            if let Some((next, rest)) = queue_id_lead(text) {
                if DSN_WORDS.iter().any(|w| rest.starts_with(w)) {
                    // _bounces: this message caused a DSN, queued as `next`
                    let at = find(text, ": ").map_or(0, |a| a + 2);
                    sink.push(&Event {
                        kind: "bounce",
                        queue_id: Some(qid),
                        next_queue_id: Some(next),
                        detail: Some(Cow::Borrowed(clip(text.get(at..).unwrap_or("")))),
                        ..Default::default()
                    })?;
                    return Ok(Outcome::Events);
                }
            }
            if text.starts_with('<') {
                return Ok(Outcome::Address);
            }
        }
        if self.p.noise.is_match(text) {
            return Ok(Outcome::Noise);
        }
        match qid {
            Some(qid) => {
                self.message_line(qid, text, sink)?;
                Ok(Outcome::Events)
            }
            None => Ok(Outcome::Unknown),
        }
    }

    /// _receives: `from=<sender>, size=, nrcpts=, msgid=, relay=`.
    fn receive(&self, qid: &str, text: &str, sink: &mut Sink) -> Result<(), String> {
        let p = &self.p;
        let (sender, size, nrcpt, msgid) = if text.is_ascii() {
            let digits = |c: u8| c.is_ascii_digit();
            (
                address_tail(text.get(5..).unwrap_or("")),
                run_after(text, ", size=", 1, digits),
                run_after(text, ", nrcpts=", 1, digits),
                run_after(text, ", msgid=", 1, not_comma_space),
            )
        } else {
            (
                capture(&p.sender, text),
                capture(&p.size, text),
                capture(&p.nrcpts, text),
                capture(&p.msgid, text),
            )
        };
        let (host, ip) = relay_columns(relay_name(text), relay_ip(text));
        let wrapped: String;
        let message_id = match msgid {
            Some(m) if m.starts_with('<') => Some(m),
            Some(m) => {
                wrapped = format!("<{m}>");
                Some(wrapped.as_str())
            }
            None => None,
        };
        sink.push(&Event {
            kind: "receive",
            queue_id: Some(qid),
            sender,
            // a value too big for Int64 (or of other digits than ASCII ones) is null
            size: size.and_then(|s| s.parse().ok()),
            nrcpt: nrcpt.and_then(|s| s.parse().ok()),
            message_id,
            // relay=user@localhost (local submission) names no client host
            client_host: if ip.is_some() { host } else { None },
            client_ip: ip.map(Cow::Borrowed),
            ..Default::default()
        })
    }

    /// _deliveries: `to=<a>,<b>, ... stat=`: one deliver event per recipient, or a handoff to
    /// the local MTA's new queue id.
    fn deliver(&self, qid: &str, text: &str, sink: &mut Sink) -> Result<(), String> {
        let p = &self.p;
        let (ctl, delay, mailer, dsn) = if text.is_ascii() {
            (
                address_after(text, ", ctladdr="),
                run_after(text, ", delay=", 1, |c| {
                    c.is_ascii_digit() || c == b'+' || c == b':'
                }),
                run_after(text, ", mailer=", 1, not_comma_space),
                run_after(text, ", dsn=", 1, |c| c.is_ascii_digit() || c == b'.'),
            )
        } else {
            (
                capture(&p.ctladdr, text),
                capture(&p.delay, text),
                capture(&p.mailer, text),
                capture(&p.dsn, text),
            )
        };
        let (name, to_ip) = relay_columns(relay_name(text), relay_ip(text));
        let detail = find(text, ", stat=").map(|at| clip(text.get(at + 7..).unwrap_or("")));
        let relay = name.or(to_ip).or(mailer);
        let next = detail.and_then(handoff_id);
        let loopback = to_ip.map_or(false, |ip| ip.starts_with("127.") || ip == "::1")
            || relay == Some("localhost");
        let handoff = next.is_some() && loopback;
        let starts = |w: &str| detail.map_or(false, |d| d.starts_with(w));
        let status = if handoff {
            None
        } else if starts("Sent") {
            Some("Delivered")
        } else if starts("Deferred") || starts("queued") {
            Some("Pending")
        } else if starts("Cannot send message") {
            Some("Failed") // expired in the queue
        } else if dsn.map_or(false, |d| d.starts_with('2')) {
            Some("Delivered")
        } else if dsn.map_or(false, |d| d.starts_with('4')) {
            Some("Pending")
        } else {
            Some("Failed")
        };
        let seconds = delay.and_then(|d| self.seconds(d));
        // to=<a>,<b> up to the first ", ", one item per recipient
        let to_end = find(text, ", ").unwrap_or(text.len());
        for item in text.get(3..to_end).unwrap_or("").split(',') {
            let r = item.trim_matches(' ');
            let r = r.strip_prefix('<').unwrap_or(r);
            let r = r.strip_suffix('>').unwrap_or(r);
            // delivery to a program or file: the address it was for is the controlling address
            let prog = r.starts_with('|') || r.starts_with("\"|") || r.starts_with('/');
            sink.push(&Event {
                kind: if handoff { "handoff" } else { "deliver" },
                queue_id: Some(qid),
                status,
                recipient: if prog && ctl.is_some() { ctl } else { Some(r) },
                relay,
                to_ip: to_ip.map(Cow::Borrowed),
                dsn,
                delay: seconds,
                detail: detail.map(Cow::Borrowed),
                next_queue_id: if handoff { next } else { None },
                ..Default::default()
            })?;
        }
        Ok(())
    }

    /// _rejects: `ruleset=check_* ... reject=` and milter rejects.
    fn reject(&self, qid: Option<&str>, text: &str, sink: &mut Sink) -> Result<(), String> {
        let p = &self.p;
        let (ruleset, arg1, from, to) = if text.is_ascii() {
            (
                text.strip_prefix("ruleset=")
                    .and_then(|r| r.get(..run(r.as_bytes(), is_word)))
                    .filter(|r| !r.is_empty()),
                address_after(text, ", arg1="),
                milter_address(text, "from=", ": from="),
                milter_address(text, "to=", ": to="),
            )
        } else {
            (
                capture(&p.ruleset, text),
                capture(&p.arg1, text),
                capture(&p.milter_from, text),
                capture(&p.milter_to, text),
            )
        };
        let (client_host, client_ip) = relay_columns(relay_name(text), relay_ip(text));
        let detail = find(text, ", reject=").map(|at| clip(text.get(at + 9..).unwrap_or("")));
        let (spam, dsn) = match detail {
            Some(d) if d.is_ascii() => (self.spam(d), reject_dsn(d)),
            Some(d) => (self.spam(d), capture(&p.reject_dsn, d)),
            None => (false, None),
        };
        let sender = if ruleset == Some("check_mail") {
            arg1
        } else {
            None
        };
        let recipient = if ruleset == Some("check_rcpt") {
            arg1
        } else {
            None
        };
        sink.push(&Event {
            kind: "reject",
            queue_id: qid,
            status: Some(if spam { "FilteredAsSpam" } else { "None" }),
            sender: sender.or(from),
            recipient: recipient.or(to),
            client_host,
            client_ip: client_ip.map(Cow::Borrowed),
            dsn,
            detail: detail.map(Cow::Borrowed),
            ..Default::default()
        })
    }

    /// _message_lines: other lines of a queue id: a milter quarantine/discard holds the message.
    fn message_line(&self, qid: &str, text: &str, sink: &mut Sink) -> Result<(), String> {
        let quarantine = contains(text, "quarantine=");
        let discard = if text.is_ascii() {
            discards(text)
        } else {
            self.p.discard.is_match(text)
        };
        sink.push(&Event {
            kind: if quarantine || discard {
                "hold"
            } else {
                "info"
            },
            queue_id: Some(qid),
            status: if quarantine {
                Some("Quarantined")
            } else if discard {
                Some("FilteredAsSpam")
            } else {
                None
            },
            detail: Some(Cow::Borrowed(clip(text))),
            ..Default::default()
        })
    }

    /// _address_lines: `QID: <a@b>... User unknown`, a recipient refused at RCPT when logged
    /// before the queue id's first `from=` line of the batch; later, it is info.
    fn address_line(&self, a: &Pending, refused: bool, out: &mut Out) -> Result<(), String> {
        let text = a.text;
        let recipient = text
            .strip_prefix('<')
            .and_then(|r| r.get(..memchr::memchr(b'>', r.as_bytes())?));
        let detail = find(text, "... ").map(|at| clip(text.get(at + 4..).unwrap_or("")));
        let status = if refused {
            Some(if detail.map_or(false, |d| self.spam(d)) {
                "FilteredAsSpam"
            } else {
                "None"
            })
        } else {
            None
        };
        let time = Time {
            local: a.local,
            utc: a.utc,
            second_pass: a.second_pass,
        };
        let e = Event {
            kind: if refused { "reject" } else { "info" },
            queue_id: Some(a.qid),
            status,
            recipient,
            detail: detail.map(Cow::Borrowed),
            ..Default::default()
        };
        out.push(a.line_no, &time, a.host, a.program, &e)
    }
}

/// An address line waiting for the batch's first `from=` of its queue id.
struct Pending<'a> {
    line_no: i64,
    local: Option<i64>,
    utc: Option<i64>,
    second_pass: bool,
    host: &'a str,
    program: &'a str,
    qid: &'a str,
    text: &'a str,
}

/// Noise lines with a wall time (and no offset): the Python side drops those its zone cannot
/// read (a skipped hour of more than one), as the reference has them among the unknown lines.
#[derive(Default)]
struct Dropped {
    rows: Vec<i64>,
    local: Vec<i64>,
    second: Vec<u8>,
}

struct Parsed {
    out: Out,
    unknown: Vec<i64>,
    dropped: Dropped,
    state: batch::SyslogOut,
}

fn parse(
    views: &[u8],
    buffers: &[&[u8]],
    line_nos: &[i64],
    carried: &SyslogIn,
    at: &AtomicUsize,
) -> Result<Parsed, String> {
    let rows = line_nos.len();
    if views.len() != rows * 16 {
        return Err(format!("{} bytes of views for {} lines", views.len(), rows));
    }
    let cached = patterns();
    let (p, env_patterns) = &*cached;
    let parser = Parser { p };
    // every line's text first, the facility tag cut (a handful of lines own a new text)
    let mut texts: Vec<Cow<str>> = Vec::with_capacity(rows);
    let lines = columns::Lines::new(views, buffers);
    for row in 0..rows {
        at.store(row, Ordering::Relaxed);
        let line = lines.get(row).ok_or_else(|| {
            format!("line {row}: its view points outside the buffers, or its text is not UTF-8")
        })?;
        texts.push(parser.without_facility(line));
    }
    let mut clock = Clock::new(carried);
    // a to= line may name several recipients: room for a quarter more events than lines
    let mut out = spare::columns(rows + rows / 4);
    let mut unknown = Vec::new();
    let mut dropped = Dropped::default();
    let mut receives: Vec<(&str, &str, i64)> = Vec::new();
    let mut addresses: Vec<Pending> = Vec::new();
    for (row, line) in texts.iter().enumerate() {
        at.store(row, Ordering::Relaxed);
        let line: &str = line;
        let line_no = line_nos.get(row).copied().unwrap_or_default();
        let env = syslog::split(env_patterns, line);
        let time = clock.time(env.stamp);
        let (time, host, program) = match (time, env.host, env.program) {
            (Some(t), Some(h), Some(p)) if parser.is_sendmail(p) => (t, h, p),
            _ => {
                // not a sendmail syslog line: unknown unless blank
                if !line.trim().is_empty() {
                    unknown.push(row as i64);
                }
                continue;
            }
        };
        let (qid, body) = match queue_id_lead(env.full_body) {
            Some((q, b)) => (Some(q), b),
            None => (None, env.full_body),
        };
        let text = match (qid, body.strip_prefix("NOQUEUE: ")) {
            (None, Some(rest)) => rest,
            _ => body,
        };
        let mut sink = Sink {
            out: &mut out,
            line_no,
            time: &time,
            host,
            program,
        };
        match parser.line(qid, text, &mut sink)? {
            Outcome::Events => {
                if text.starts_with("from=") {
                    if let Some(q) = qid {
                        receives.push((host, q, line_no));
                    }
                }
            }
            Outcome::Noise => {
                if let (Some(l), None) = (time.local, time.utc) {
                    dropped.rows.push(row as i64);
                    dropped.local.push(l);
                    dropped.second.push(u8::from(time.second_pass));
                }
            }
            Outcome::Unknown => unknown.push(row as i64),
            Outcome::Address => {
                if let Some(q) = qid {
                    addresses.push(Pending {
                        line_no,
                        local: time.local,
                        utc: time.utc,
                        second_pass: time.second_pass,
                        host,
                        program,
                        qid: q,
                        text,
                    });
                }
            }
        }
    }
    at.store(rows, Ordering::Relaxed);
    let lines_read = out.line_no.values.len();
    if !addresses.is_empty() {
        let mut first_from: FxMap<(&str, &str), i64> = FxMap::default();
        for &(host, qid, line_no) in &receives {
            let e = first_from.entry((host, qid)).or_insert(line_no);
            *e = (*e).min(line_no);
        }
        for a in &addresses {
            let refused = first_from
                .get(&(a.host, a.qid))
                .map_or(false, |first| a.line_no < *first);
            parser.address_line(a, refused, &mut out)?;
        }
    }
    // the address lines' events, decided once every line was read, go to their lines: the
    // events in line order (as in Exim's expansions)
    out.merge_tail_by_line(lines_read);
    Ok(Parsed {
        out,
        unknown,
        dropped,
        state: clock.state(),
    })
}

/// Parse a batch of Sendmail syslog lines.
///
/// views, buffers, line_nos: as parse_postfix takes them; state: a dict with year (int or None),
/// reference_year, reference_ordinal, last_month, rollovers, max_local (naive local
/// microseconds or None).
/// Returns a dict: columns (name, kind, len, null_count, validity, values or views, data),
/// unknown (int64 rows), dropped (int64 rows, their int64 local times and a byte each, the
/// DST second pass: noise lines), and the state keys updated.
#[pyfunction]
pub fn parse_sendmail<'py>(
    py: Python<'py>,
    views: &PyBytes,
    buffers: &PyList,
    line_nos: &PyBytes,
    state: &PyDict,
) -> PyResult<&'py PyDict> {
    let carried = SyslogIn::from_dict(state)?;
    let buffers = crate::data_buffers(buffers)?;
    let views = views.as_bytes();
    let line_nos = le_i64(line_nos.as_bytes());
    let started = std::time::Instant::now();
    let mut parsed = batch::guarded(py, "Sendmail", &line_nos, |at| {
        parse(views, &buffers, &line_nos, &carried, at)
    })?;
    let out = PyDict::new(py);
    out.set_item("rows", parsed.out.line_no.values.len())?;
    out.set_item("parse_seconds", started.elapsed().as_secs_f64())?;
    out.set_item("columns", batch::columns(py, &mut parsed.out)?)?;
    out.set_item(
        "unknown",
        PyBytes::new(py, &batch::i64_bytes(&parsed.unknown)),
    )?;
    let d = &parsed.dropped;
    out.set_item(
        "dropped",
        (
            PyBytes::new(py, &batch::i64_bytes(&d.rows)),
            PyBytes::new(py, &batch::i64_bytes(&d.local)),
            PyBytes::new(py, &d.second),
        ),
    )?;
    batch::put_state(out, &parsed.state)?;
    spare::keep(parsed.out);
    Ok(out)
}
