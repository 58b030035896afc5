//! Exim mainlog lines -> events, one line at a time: what tests/polars_exim.py (the vectorised
//! reference, once ingest/formats/exim.py) does with filters over a batch. Each function names
//! the Python function or expression it stands for.
//!
//! An Exim line comes bare (`2026-03-03 09:15:01 [+0100] [pid] id <= ...`), behind a syslog
//! header (syslog.rs's envelope, with its year and zone inference and its own state) or behind a
//! journald one (`host exim[pid]: ...`). The hot shapes (a bare stamp, the id, arrivals and
//! deliveries) are read by hand on ASCII lines; any line that is not ASCII, where a hand reader
//! would have to know what Unicode calls a digit or a blank, goes through the reference's own
//! regexes (Polars runs them with this same regex crate), as do the rare shapes.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use memchr::memchr;
use memchr::memmem::Finder;
use regex::Regex;

use crate::columns;
use crate::fxhash::{FxMap, FxSet};
use crate::postfix::Event;
use crate::spam::Spam;
use crate::spare;
use crate::syslog::{self, chars, Stamp, Years};
use crate::{Out, Time};

const DETAIL_MAX: usize = 300;
/// A wall time this far behind the latest one before it is in the DST fall-back's second pass.
const SECOND_PASS_MICROS: i64 = 10 * 60 * 1_000_000;
/// alias groups carried to the next batch at most (exim._MAX_CARRIED)
const MAX_CARRIED: usize = 100_000;

/// The literals searched in every line, their searchers built once a batch (memmem's setup
/// costs more than the search of a short line).
struct Finders {
    exim: Finder<'static>,
    size: Finder<'static>,
    msgid: Finder<'static>,
    parent: Finder<'static>,
    host: Finder<'static>,
    transport: Finder<'static>,
    qt: Finder<'static>,
    subject: Finder<'static>,
    for_list: Finder<'static>,
    response: Finder<'static>,
    rejected: Finder<'static>,
    defer: Finder<'static>,
    colon: Finder<'static>,
}

impl Finders {
    fn new() -> Self {
        Finders {
            exim: Finder::new(" exim"),
            size: Finder::new(" S="),
            msgid: Finder::new(" id="),
            parent: Finder::new(" R="),
            host: Finder::new(" H="),
            transport: Finder::new(" T="),
            qt: Finder::new(" QT="),
            subject: Finder::new(" T=\""),
            for_list: Finder::new(" for "),
            response: Finder::new(" C=\""),
            rejected: Finder::new("rejected "),
            defer: Finder::new("defer ("),
            colon: Finder::new(": "),
        }
    }
}

pub struct Patterns {
    k: Finders,
    env: syslog::Patterns,
    digit: Regex,
    fast: Regex,
    ts: Regex,
    journal: Regex,
    sender: Regex,
    size: Regex,
    msgid: Regex,
    parent: Regex,
    client: Regex,
    addr: Regex,
    hname: Regex,
    hip: Regex,
    transport: Regex,
    qt: Regex,
    domain: Regex,
    first_parent: Regex,
    literal: Regex,
    trailer: Regex,
    dsn: Regex,
    dur: Regex,
    f_sender: Regex,
    rejected_from: Regex,
    rcpt_angle: Regex,
    rcpt_bare: Regex,
    noise: Regex,
    spam: Spam,
}

fn re(p: &str) -> Regex {
    Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}"))
}

impl Patterns {
    pub fn new() -> Self {
        Patterns {
            k: Finders::new(),
            env: syslog::Patterns::new(),
            digit: re(r"^\d"),
            fast: re(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?:\[\d+\] )?[^\[+\-]"),
            ts: re(
                r"^(?:(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?)(?: ([+-]\d{4}))? )?(?:\[\d+\] )?",
            ),
            journal: re(r"^(\S+) (exim[\w.-]*)(?:\[\d+\])?: "),
            sender: re(r"^.= (\S+)"),
            size: re(r" S=(\d+)"),
            msgid: re(r" id=(\S+)"),
            parent: re(r" R=(\S+)"),
            client: re(
                r"(?:^| )H=(?:(?P<client_host>[^\s(\[]\S*) )?(?:\([^)]*\) )?\[(?P<client_ip>[^\]]+)\]",
            ),
            addr: re(
                r"^\S\S (?P<disp>\|[^<(]*[^<( ]|\S+)(?: \((?P<parents>[^)]*)\))?(?: <(?P<top>[^>]*)>)?",
            ),
            hname: re(r" H=(\S+)"),
            hip: re(r" H=\S+ \[([^\]]+)\]"),
            transport: re(r" T=(\S+)"),
            qt: re(r" QT=(\S+)"),
            domain: re(r"@([^@\s]+)$"),
            first_parent: re(r"^([^,\s]+)"),
            literal: re(r"^\[([^\]]+)\]"),
            trailer: re(r#""(?: \w+=\S*)*$"#),
            dsn: re(r"\d\d\d[ -]([245]\.\d\d?\d?\.\d\d?\d?)"),
            dur: re(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$"),
            f_sender: re(r"(?:^| )F=(?:<([^>]*)>|(\S+))"),
            rejected_from: re(r"rejected (?:from|MAIL) <([^>]*)>"),
            rcpt_angle: re(r"rejected RCPT <([^>]*)>"),
            rcpt_bare: re(r"rejected RCPT ([^\s:<>]+)"),
            noise: re(concat!(
                r"^(?:(?:Start|End) .*queue run|too many recipients|ignoring |SMTP |no MAIL in SMTP|no host name found|no IP address found|unexpected disc",
                r"|exim |Connection|TLS |H=|U=|F=|Warning:|cwd=|rejected |daemon |pid |listening |Authentication |sender verify ",
                r"|SIGHUP|tls_|\S+ authenticator failed)"
            )),
            spam: Spam::new(),
        }
    }
}

// ---- small readers ------------------------------------------------------------------------------

fn group<'a>(c: &regex::Captures<'a>, i: usize) -> Option<&'a str> {
    c.get(i).map(|m| m.as_str())
}

fn capture<'a>(r: &Regex, text: &'a str, i: usize) -> Option<&'a str> {
    r.captures(text).and_then(|c| group(&c, i))
}

/// What regex `\s` is on an ASCII byte (Unicode White_Space: includes the vertical tab).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn is_digit(c: Option<u8>) -> bool {
    c.map_or(false, |c| c.is_ascii_digit())
}

/// The end of the run of non-blank bytes of ASCII `t` from `at`.
fn word_end(t: &[u8], at: usize) -> usize {
    let mut i = at;
    while t.get(i).map_or(false, |c| !is_space(*c)) {
        i += 1;
    }
    i
}

/// `key(\S+)` on ASCII text: the first occurrence of `key` followed by a non-blank.
fn after_key<'a>(t: &'a str, key: &Finder) -> Option<&'a str> {
    let b = t.as_bytes();
    for at in key.find_iter(b) {
        let start = at + key.needle().len();
        let end = word_end(b, start);
        if end > start {
            return t.get(start..end);
        }
    }
    None
}

/// The first `]` at or after `from`, when at least one byte precedes it (`[^\]]+\]`).
fn close_after(b: &[u8], from: usize, close: u8) -> Option<usize> {
    let k = from + memchr(close, b.get(from..)?)?;
    if k > from {
        Some(k)
    } else {
        None
    }
}

/// The first occurrence of `close` at or after `from` (`[^x]*x`).
fn find_byte(b: &[u8], from: usize, close: u8) -> Option<usize> {
    Some(from + memchr(close, b.get(from..)?)?)
}

/// `t` from byte `at`, then its first DETAIL_MAX characters (common.tail_from).
fn tail_from(t: &str, at: Option<usize>) -> Option<&str> {
    at.and_then(|a| t.get(a..)).map(|s| chars(s, DETAIL_MAX))
}

fn skip_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => s.get(at..).unwrap_or(""),
        None => "",
    }
}

// ---- envelope -------------------------------------------------------------------------------------

/// The fast path's test (`_envelope`'s `fast`, before the " exim" test) by hand on ASCII.
fn fast_ascii(b: &[u8]) -> bool {
    let d = |i: usize| is_digit(b.get(i).copied());
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    if !digits.iter().all(|i| d(*i))
        || !at(4, b'-')
        || !at(7, b'-')
        || !at(10, b' ')
        || !at(13, b':')
        || !at(16, b':')
        || !at(19, b' ')
    {
        return false;
    }
    let next_ok = |i: usize| b.get(i).map_or(false, |c| !matches!(c, b'[' | b'+' | b'-'));
    if at(20, b'[') {
        let mut j = 21;
        while d(j) {
            j += 1;
        }
        j > 21 && at(j, b']') && at(j + 1, b' ') && next_ok(j + 2)
    } else {
        next_ok(20)
    }
}

/// The fast path's rest: after the 19-character stamp, its space and a `[pid] ` that closes
/// within the 12 characters after the stamp (as `_envelope` cuts it, characters and bytes mixed).
fn fast_rest(line: &str) -> &str {
    let after = skip_chars(line, 20);
    let pid = if after.starts_with('[') {
        chars(after, 12)
            .as_bytes()
            .windows(2)
            .position(|w| w == b"] ")
            .map(|i| i + 2)
    } else {
        None
    };
    skip_chars(line, 20 + pid.unwrap_or(0))
}

/// `_TS` at the start of an ASCII body: (stamp, zone, length of the match).
fn ts_ascii(body: &str) -> (Option<&str>, Option<&str>, usize) {
    let b = body.as_bytes();
    let d = |i: usize| is_digit(b.get(i).copied());
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let mut stamp = None;
    let mut zone = None;
    let mut end = 0;
    let shape = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        .iter()
        .all(|i| d(*i))
        && at(4, b'-')
        && at(7, b'-')
        && at(10, b' ')
        && at(13, b':')
        && at(16, b':');
    if shape {
        // (?:\.\d{1,6})? is greedy, and what follows needs a blank: a longer fraction fails
        let mut s_end = 19;
        if at(19, b'.') {
            let mut j = 20;
            while d(j) && j < 26 {
                j += 1;
            }
            if j > 20 {
                s_end = j;
            }
        }
        let try_at = |s_end: usize| -> Option<(Option<usize>, usize)> {
            // (?: ([+-]\d{4}))? then the blank
            if at(s_end, b' ')
                && (at(s_end + 1, b'+') || at(s_end + 1, b'-'))
                && (2..6).all(|k| d(s_end + k))
                && at(s_end + 6, b' ')
            {
                return Some((Some(s_end + 1), s_end + 7));
            }
            if at(s_end, b' ') {
                return Some((None, s_end + 1));
            }
            None
        };
        if let Some((z, e)) = try_at(s_end) {
            stamp = body.get(..s_end);
            zone = z.and_then(|z| body.get(z..z + 5));
            end = e;
        }
    }
    // (?:\[\d+\] )?
    if at(end, b'[') {
        let mut j = end + 1;
        while d(j) {
            j += 1;
        }
        if j > end + 1 && at(j, b']') && at(j + 1, b' ') {
            end = j + 2;
        }
    }
    (stamp, zone, end)
}

/// One line's time and where its Exim part starts (`_envelope`); None: a blank line, dropped.
struct Envelope<'a> {
    time: Option<Time>,
    host: Option<&'a str>,
    program: Option<&'a str>,
    rest: &'a str,
}

/// The running state of the times: the syslog envelope's (year, latest wall time) and Exim's
/// own latest wall time, each as the reference keeps it.
pub struct Clock {
    years: Years,
    stamps: syslog::BsdCache,
    syslog_running: Option<i64>,
    exim_running: Option<i64>,
    /// a slow line with " exim" went through syslog.split (the reference then touches its state)
    pub any_pre: bool,
}

impl Clock {
    fn exim_local(&mut self, local: i64) -> Time {
        let second_pass = self
            .exim_running
            .map_or(false, |r| r - local >= SECOND_PASS_MICROS);
        self.exim_running = Some(self.exim_running.map_or(local, |r| r.max(local)));
        Time {
            local: Some(local),
            utc: None,
            second_pass,
        }
    }

    /// syslog.split's time of a line with a syslog stamp (None: no valid time).
    fn syslog_time(&mut self, stamp: Stamp) -> Option<Time> {
        let (utc, local) = match stamp {
            Stamp::Bsd { mon, day, hms } => {
                (None, self.stamps.local(&mut self.years, mon, day, hms))
            }
            Stamp::Iso(iso) => syslog::iso(iso),
        };
        let second_pass = match (self.syslog_running, local) {
            (Some(r), Some(l)) => r - l >= SECOND_PASS_MICROS,
            _ => false,
        };
        if let Some(l) = local {
            self.syslog_running = Some(self.syslog_running.map_or(l, |r| r.max(l)));
        }
        if utc.is_some() || local.is_some() {
            Some(Time {
                local,
                utc,
                second_pass,
            })
        } else {
            None
        }
    }
}

fn envelope<'a>(
    p: &Patterns,
    clock: &mut Clock,
    line: &'a str,
    ascii: bool,
) -> Option<Envelope<'a>> {
    let fast = if ascii {
        fast_ascii(line.as_bytes())
    } else {
        p.fast.is_match(line)
    };
    let has_exim = p.k.exim.find(line.as_bytes()).is_some();
    if fast && !has_exim {
        let local = syslog::iso(chars(line, 19)).1;
        return Some(Envelope {
            time: local.map(|l| clock.exim_local(l)),
            host: None,
            program: None,
            rest: fast_rest(line),
        });
    }
    if !line.chars().any(|c| !c.is_whitespace()) {
        return None;
    }
    let (mut stime, mut host, mut program, mut body) = (None, None, None, line);
    if has_exim {
        clock.any_pre = true;
        let env = syslog::split(&p.env, line);
        let time = env.stamp.and_then(|s| clock.syslog_time(s));
        let exim = env.program.map_or(false, |prog| prog.starts_with("exim"));
        if time.is_some() && exim {
            stime = time;
            host = env.host;
            program = env.program;
            body = env.full_body;
        } else if let Some(c) = p.journal.captures(line) {
            host = group(&c, 1);
            program = group(&c, 2);
            body = line.get(c.get(0).map_or(0, |m| m.end())..).unwrap_or("");
        }
    }
    let (stamp, zone, end) = if ascii {
        ts_ascii(body)
    } else {
        match p.ts.captures(body) {
            Some(c) => (group(&c, 1), group(&c, 2), c.get(0).map_or(0, |m| m.end())),
            None => (None, None, 0),
        }
    };
    let rest = body.get(end..).unwrap_or("");
    let time = match (stamp, zone) {
        (Some(s), None) => syslog::iso(s).1.map(|l| clock.exim_local(l)),
        (Some(s), Some(z)) => zoned(s, z).map(|utc| Time {
            local: None,
            utc: Some(utc),
            second_pass: false,
        }),
        _ => None,
    };
    Some(Envelope {
        time: time.or(stime),
        host,
        program,
        rest,
    })
}

/// `_ts + " " + _tz` read with "%Y-%m-%d %H:%M:%S%.f %z": UTC microseconds.
fn zoned(stamp: &str, zone: &str) -> Option<i64> {
    let local = syslog::iso(stamp).1?;
    let z = zone.as_bytes();
    let sign = match z.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let num = |s: Option<&str>| -> Option<i64> {
        let s = s?;
        if s.len() == 2 && s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (h, m) = (num(zone.get(1..3))?, num(zone.get(3..5))?);
    if zone.len() != 5 || m > 59 || h * 3600 + m * 60 >= 86400 {
        return None;
    }
    Some(local - sign * (h * 3600 + m * 60) * 1_000_000)
}

// ---- the id and the reject test -------------------------------------------------------------------

/// `_ID` at the start of the rest: the id's length (16 or 23), or None.
fn id_len(rest: &str) -> Option<usize> {
    let b = rest.as_bytes();
    let run = |from: usize, n: usize| {
        (from..from + n).all(|i| b.get(i).map_or(false, |c| c.is_ascii_alphanumeric()))
    };
    let dash = |i: usize| b.get(i) == Some(&b'-');
    let end_ok = |i: usize| b.get(i).map_or(true, |c| *c == b' ');
    if !run(0, 6) || !dash(6) {
        return None;
    }
    let short = run(7, 6) && dash(13) && run(14, 2) && end_ok(16);
    let long = run(7, 11) && dash(18) && run(19, 4) && end_ok(23);
    if !(short || long) {
        return None;
    }
    // the reference takes the id's length from its 14th character, not from which shape matched
    Some(if dash(13) { 16 } else { 23 })
}

/// `_is_reject`: `(?:^| )(?:temporarily )?rejected (?:RCPT|MAIL|after DATA|from <|by |during |DKIM)`.
fn is_reject(p: &Patterns, t: &str) -> bool {
    let b = t.as_bytes();
    p.k.rejected.find_iter(b).any(|i| {
        (i == 0 || b.get(i - 1) == Some(&b' '))
            && [
                "RCPT",
                "MAIL",
                "after DATA",
                "from <",
                "by ",
                "during ",
                "DKIM",
            ]
            .iter()
            .any(|w| {
                b.get(i + 9..)
                    .map_or(false, |r| r.starts_with(w.as_bytes()))
            })
    })
}

/// str.find(`(?:temporarily )?rejected `): where the reject's detail starts.
fn reject_at(p: &Patterns, t: &str) -> Option<usize> {
    let r = p.k.rejected.find(t.as_bytes())?;
    let before = t.get(..r).unwrap_or("");
    Some(if before.ends_with("temporarily ") {
        r - 12
    } else {
        r
    })
}

// ---- one event per line -------------------------------------------------------------------------

/// An event with the texts a rule builds (Event borrows them when it is written out).
#[derive(Default)]
struct Ev<'a> {
    kind: &'static str,
    queue_id: Option<&'a str>,
    status: Option<&'static str>,
    sender: Option<&'a str>,
    recipient: Option<Cow<'a, str>>,
    orig_recipient: Option<&'a str>,
    message_id: Option<String>,
    subject: Option<Cow<'a, str>>,
    client_host: Option<&'a str>,
    client_ip: Option<&'a str>,
    relay: Option<&'a str>,
    to_ip: Option<&'a str>,
    size: Option<i64>,
    nrcpt: Option<i64>,
    delay: Option<f64>,
    dsn: Option<&'a str>,
    detail: Option<Cow<'a, str>>,
    next_queue_id: Option<&'a str>,
}

impl<'a> Ev<'a> {
    fn event(&self) -> Event<'_> {
        Event {
            kind: self.kind,
            queue_id: self.queue_id,
            status: self.status,
            sender: self.sender,
            recipient: self.recipient.as_deref(),
            orig_recipient: self.orig_recipient,
            message_id: self.message_id.as_deref(),
            subject: self.subject.as_deref().map(Cow::Borrowed),
            client_host: self.client_host,
            client_ip: self.client_ip.map(Cow::Borrowed),
            relay: self.relay,
            to_ip: self.to_ip.map(Cow::Borrowed),
            size: self.size,
            nrcpt: self.nrcpt,
            delay: self.delay,
            dsn: self.dsn,
            detail: self.detail.as_deref().map(Cow::Borrowed),
            next_queue_id: self.next_queue_id,
        }
    }
}

/// `client`: client_host and client_ip of `H=name (helo) [ip]:port`, by hand on ASCII.
fn client_ascii<'a>(p: &Patterns, t: &'a str) -> (Option<&'a str>, Option<&'a str>) {
    let b = t.as_bytes();
    let ip_at = |q: usize| -> Option<&str> {
        if b.get(q) != Some(&b'[') {
            return None;
        }
        let k = close_after(b, q + 1, b']')?;
        t.get(q + 1..k)
    };
    let helo_ip = |q: usize| -> Option<&str> {
        if b.get(q) == Some(&b'(') {
            if let Some(k) = find_byte(b, q + 1, b')') {
                if b.get(k + 1) == Some(&b' ') {
                    if let Some(ip) = ip_at(k + 2) {
                        return Some(ip);
                    }
                }
            }
        }
        ip_at(q)
    };
    let at = |p: usize| -> Option<(Option<&str>, Option<&str>)> {
        if let Some(c) = b.get(p) {
            if !is_space(*c) && *c != b'(' && *c != b'[' {
                let e = word_end(b, p);
                if b.get(e) == Some(&b' ') {
                    if let Some(ip) = helo_ip(e + 1) {
                        return Some((t.get(p..e), Some(ip)));
                    }
                }
            }
        }
        helo_ip(p).map(|ip| (None, Some(ip)))
    };
    if t.starts_with("H=") {
        if let Some(found) = at(2) {
            return found;
        }
    }
    for i in p.k.host.find_iter(b) {
        if let Some(found) = at(i + 3) {
            return found;
        }
    }
    (None, None)
}

fn client<'a>(p: &Patterns, t: &'a str, ascii: bool) -> (Option<&'a str>, Option<&'a str>) {
    if ascii {
        return client_ascii(p, t);
    }
    match p.client.captures(t) {
        Some(c) => (group(&c, 1), group(&c, 2)),
        None => (None, None),
    }
}

/// ` T="((?:[^"\\]|\\.)*)"`: the first quoted subject that closes.
fn subject<'a>(p: &Patterns, t: &'a str) -> Option<&'a str> {
    let b = t.as_bytes();
    'next: for at in p.k.subject.find_iter(b) {
        let start = at + 4;
        let mut i = start;
        loop {
            match b.get(i) {
                None => continue 'next,
                Some(b'"') => return t.get(start..i),
                Some(b'\\') => {
                    if matches!(b.get(i + 1), None | Some(b'\n')) {
                        continue 'next;
                    }
                    // `.` is a whole character
                    let next = t.get(i + 1..).and_then(|s| s.chars().next());
                    i += 1 + next.map_or(1, char::len_utf8);
                }
                Some(_) => i += 1,
            }
        }
    }
    None
}

/// replace_all(`\\(["\\])`, "$1")
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n @ ('"' | '\\')) = it.peek().copied() {
                out.push(n);
                it.next();
                continue;
            }
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// ` for ([^"]+)$`: the recipients that end an arrival line.
fn for_list<'a>(p: &Patterns, t: &'a str) -> Option<&'a str> {
    let b = t.as_bytes();
    let from = memchr::memrchr(b'"', b).map_or(0, |q| q + 1);
    let i = from + p.k.for_list.find(b.get(from..)?)?;
    let list = t.get(i + 5..)?;
    if list.is_empty() {
        None
    } else {
        Some(list)
    }
}

/// `_receives` (and `_bounces`): an arrival line's event, and its bounce of a parent.
fn receive<'a>(p: &Patterns, qid: &'a str, t: &'a str, ascii: bool) -> (Ev<'a>, Option<Ev<'a>>) {
    let (sender, size, msgid, parent) = if ascii {
        let b = t.as_bytes();
        let end = word_end(b, 3);
        let size = p.k.size.find_iter(b).find_map(|i| {
            let mut j = i + 3;
            while is_digit(b.get(j).copied()) {
                j += 1;
            }
            if j > i + 3 {
                t.get(i + 3..j)
            } else {
                None
            }
        });
        let sender = if end > 3 { t.get(3..end) } else { None };
        (
            sender,
            size,
            after_key(t, &p.k.msgid),
            after_key(t, &p.k.parent),
        )
    } else {
        (
            capture(&p.sender, t, 1),
            capture(&p.size, t, 1),
            capture(&p.msgid, t, 1),
            capture(&p.parent, t, 1),
        )
    };
    let (client_host, client_ip) = client(p, t, ascii);
    let sender = sender.map(|s| if s == "<>" { "" } else { s });
    let nrcpt = for_list(p, t).map(|l| l.bytes().filter(|c| *c == b' ').count() as i64 + 1);
    let ev = Ev {
        kind: "receive",
        queue_id: Some(qid),
        sender,
        message_id: msgid.map(|m| ["<", m, ">"].concat()), // concat: format! costs ten times more
        subject: subject(p, t).map(unescape),
        client_host,
        client_ip,
        size: size.and_then(|s| s.parse().ok()),
        nrcpt,
        ..Default::default()
    };
    let bounce = match (sender, parent) {
        (Some(""), Some(parent)) => Some(Ev {
            kind: "bounce",
            queue_id: Some(parent),
            next_queue_id: Some(qid),
            ..Default::default()
        }),
        _ => None,
    };
    (ev, bounce)
}

/// `_ADDR` by hand on ASCII: the final address (or pipe), its parents and the original.
fn addr_ascii(t: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
    let b = t.as_bytes();
    let two = |i: usize| b.get(i).map_or(false, |c| !is_space(*c));
    if !two(0) || !two(1) || b.get(2) != Some(&b' ') {
        return (None, None, None);
    }
    let p = 3;
    let mut end = None;
    if b.get(p) == Some(&b'|') {
        // \|[^<(]*[^<( ]: up to the last non-blank before a `<` or `(`
        let mut r = p + 1;
        while b.get(r).map_or(false, |c| *c != b'<' && *c != b'(') {
            r += 1;
        }
        end = (p + 1..r)
            .rev()
            .find(|k| b.get(*k) != Some(&b' '))
            .map(|k| k + 1);
    }
    let end = match end {
        Some(e) => e,
        None => {
            let e = word_end(b, p);
            if e == p {
                return (None, None, None);
            }
            e
        }
    };
    let disp = t.get(p..end);
    let mut pos = end;
    let mut parents = None;
    if b.get(pos..).map_or(false, |r| r.starts_with(b" (")) {
        if let Some(k) = find_byte(b, pos + 2, b')') {
            parents = t.get(pos + 2..k);
            pos = k + 1;
        }
    }
    let mut top = None;
    if b.get(pos..).map_or(false, |r| r.starts_with(b" <")) {
        if let Some(k) = find_byte(b, pos + 2, b'>') {
            top = t.get(pos + 2..k);
        }
    }
    (disp, parents, top)
}

/// ` H=\S+ \[([^\]]+)\]` by hand on ASCII.
fn hip_ascii<'a>(p: &Patterns, t: &'a str) -> Option<&'a str> {
    let b = t.as_bytes();
    for i in p.k.host.find_iter(b) {
        let s = i + 3;
        let e = word_end(b, s);
        if e > s && b.get(e..).map_or(false, |r| r.starts_with(b" [")) {
            if let Some(k) = close_after(b, e + 2, b']') {
                return t.get(e + 2..k);
            }
        }
    }
    None
}

/// `"(?: \w+=\S*)*$` removed from an ASCII response (the quote that closes C="..." and the
/// fields after it).
fn strip_trailer_ascii(raw: &str) -> &str {
    let b = raw.as_bytes();
    for q in memchr::memchr_iter(b'"', b) {
        let mut i = q + 1;
        let ok = loop {
            match b.get(i) {
                None => break true,
                Some(b' ') => {}
                Some(_) => break false,
            }
            let w = i + 1;
            let mut j = w;
            while b
                .get(j)
                .map_or(false, |c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                j += 1;
            }
            if j == w || b.get(j) != Some(&b'=') {
                break false;
            }
            i = word_end(b, j + 1);
        };
        if ok {
            return raw.get(..q).unwrap_or(raw);
        }
    }
    raw
}

/// `\d\d\d[ -]([245]\.\d\d?\d?\.\d\d?\d?)` by hand on ASCII.
fn dsn_ascii(raw: &str) -> Option<&str> {
    let b = raw.as_bytes();
    let d = |i: usize| is_digit(b.get(i).copied());
    let upto3 = |from: usize| -> usize {
        let mut j = from;
        while j < from + 3 && d(j) {
            j += 1;
        }
        j
    };
    for i in 0..b.len() {
        if !(d(i) && d(i + 1) && d(i + 2) && matches!(b.get(i + 3), Some(b' ' | b'-'))) {
            continue;
        }
        let s = i + 4;
        if !matches!(b.get(s), Some(b'2' | b'4' | b'5')) || b.get(s + 1) != Some(&b'.') {
            continue;
        }
        let a = upto3(s + 2);
        if a == s + 2 || b.get(a) != Some(&b'.') {
            continue;
        }
        let c = upto3(a + 1);
        if c == a + 1 {
            continue;
        }
        return raw.get(s..c);
    }
    None
}

/// `_seconds`: an Exim duration (`1h2m3s`, `0.349s`) in seconds, once per distinct value.
fn seconds<'a>(p: &Patterns, cache: &mut FxMap<&'a str, Option<f64>>, d: &'a str) -> Option<f64> {
    if let Some(v) = cache.get(d) {
        return *v;
    }
    let v = if p.digit.is_match(d) {
        p.dur.captures(d).map(|c| {
            let units = [604800.0, 86400.0, 3600.0, 60.0, 1.0];
            let mut sum = 0.0;
            for (i, n) in units.iter().enumerate() {
                // a part that is no float (digits other than ASCII) counts 0, as fill_null(0)
                let part: f64 = group(&c, i + 1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
                sum += part * n;
            }
            sum
        })
    } else {
        None
    };
    cache.insert(d, v);
    v
}

const STATUS: [(&str, &str); 6] = [
    ("=>", "Delivered"),
    ("->", "Delivered"),
    (">>", "Delivered"),
    ("*>", "Delivered"),
    ("==", "Pending"),
    ("**", "Failed"),
];

/// `_deliveries`: one recipient's delivery, deferral or failure.
fn deliver<'a>(
    p: &Patterns,
    cache: &mut FxMap<&'a str, Option<f64>>,
    qid: &'a str,
    t: &'a str,
    ascii: bool,
) -> Ev<'a> {
    let flag = t.get(..2).unwrap_or("");
    let ((disp, parents, top), hname, hip, transport, qt) = if ascii {
        (
            addr_ascii(t),
            after_key(t, &p.k.host),
            hip_ascii(p, t),
            after_key(t, &p.k.transport),
            after_key(t, &p.k.qt),
        )
    } else {
        let a = match p.addr.captures(t) {
            Some(c) => (group(&c, 1), group(&c, 2), group(&c, 3)),
            None => (None, None, None),
        };
        (
            a,
            capture(&p.hname, t, 1),
            capture(&p.hip, t, 1),
            capture(&p.transport, t, 1),
            capture(&p.qt, t, 1),
        )
    };
    let b = t.as_bytes();
    let at = if flag == "**" {
        p.k.colon.find(b).map(|i| i + 2)
    } else if flag == "==" {
        p.k.defer.find(b)
    } else {
        p.k.response.find(b).map(|i| i + 4)
    };
    let pfr = disp.map_or(false, |d| {
        d.starts_with('|') || d.starts_with('/') || d.starts_with('>') || d == ":blackhole:"
    });
    let domain = top.and_then(|top| {
        if ascii {
            let k = memchr::memrchr(b'@', top.as_bytes())?;
            let rest = top.get(k + 1..)?;
            if rest.is_empty() || rest.bytes().any(is_space) {
                None
            } else {
                Some(rest)
            }
        } else {
            capture(&p.domain, top, 1)
        }
    });
    let recipient: Option<Cow<str>> = if pfr {
        let parent = parents.and_then(|s| {
            if ascii {
                let b = s.as_bytes();
                let e = b
                    .iter()
                    .position(|c| *c == b',' || is_space(*c))
                    .unwrap_or(b.len());
                if e > 0 {
                    s.get(..e)
                } else {
                    None
                }
            } else {
                capture(&p.first_parent, s, 1)
            }
        });
        parent.or(top).or(disp).map(Cow::Borrowed)
    } else {
        match (disp, domain) {
            (Some(d), Some(dom)) if !d.contains('@') => Some(Cow::Owned([d, "@", dom].concat())),
            (d, _) => d.map(Cow::Borrowed),
        }
    };
    let literal = hname.and_then(|h| {
        if ascii {
            let hb = h.as_bytes();
            if hb.first() != Some(&b'[') {
                return None;
            }
            let k = close_after(hb, 1, b']')?;
            h.get(1..k)
        } else {
            capture(&p.literal, h, 1)
        }
    });
    let raw = tail_from(t, at);
    let relay = (if literal.is_none() { hname } else { None })
        .or(if pfr {
            disp.map(|d| chars(d, 200))
        } else {
            None
        })
        .or(transport);
    let orig = match (top, &recipient) {
        (Some(top), Some(r)) if top.to_lowercase() != r.to_lowercase() => Some(top),
        _ => None,
    };
    let response: Option<Cow<str>> = raw.map(|r| {
        if r.is_ascii() {
            Cow::Borrowed(strip_trailer_ascii(r))
        } else {
            p.trailer.replacen(r, 1, "")
        }
    });
    let detail = match flag {
        "*>" => Some(response.unwrap_or(Cow::Borrowed("delivery suppressed"))),
        "=>" | "->" | ">>" => response,
        _ => raw.map(Cow::Borrowed),
    };
    let dsn = raw.and_then(|r| {
        if r.is_ascii() {
            dsn_ascii(r)
        } else {
            capture(&p.dsn, r, 1)
        }
    });
    Ev {
        kind: "deliver",
        queue_id: Some(qid),
        status: STATUS.iter().find(|(f, _)| *f == flag).map(|(_, s)| *s),
        recipient,
        orig_recipient: orig,
        relay,
        to_ip: hip.or(literal),
        detail,
        dsn,
        delay: qt.and_then(|q| seconds(p, cache, q)),
        ..Default::default()
    }
}

/// `_rejects`: a message refused before it was queued (no queue id, even after DATA).
fn reject<'a>(p: &Patterns, t: &'a str, ascii: bool) -> Ev<'a> {
    let sender = match p.f_sender.captures(t) {
        Some(c) => group(&c, 1).or_else(|| group(&c, 2)),
        None => None,
    }
    .or_else(|| capture(&p.rejected_from, t, 1));
    let recipient = capture(&p.rcpt_angle, t, 1).or_else(|| capture(&p.rcpt_bare, t, 1));
    let detail = tail_from(t, reject_at(p, t));
    let (client_host, client_ip) = client(p, t, ascii);
    let status = detail.map(|d| p.spam.status(d));
    Ev {
        kind: "reject",
        status,
        sender,
        recipient: recipient.map(Cow::Borrowed),
        detail: detail.map(Cow::Borrowed),
        client_host,
        client_ip,
        ..Default::default()
    }
}

/// `_message_lines`: Completed / removed, deliberate freezes (held), the rest as info.
fn message_line<'a>(qid: &'a str, t: &'a str) -> Ev<'a> {
    let hold = t.starts_with("frozen by ") || t.starts_with("Frozen by the system filter");
    let removed = t == "Completed" || t.starts_with("removed by ");
    Ev {
        kind: if removed {
            "removed"
        } else if hold {
            "hold"
        } else {
            "info"
        },
        queue_id: Some(qid),
        status: if hold { Some("Quarantined") } else { None },
        detail: if t == "Completed" {
            None
        } else {
            Some(Cow::Borrowed(chars(t, DETAIL_MAX)))
        },
        ..Default::default()
    }
}

// ---- the batch ----------------------------------------------------------------------------------

/// What the batch carries in (ParseContext.state["syslog"] and ["exim"], and the context).
pub struct Carried {
    pub year: Option<i64>,
    pub reference_year: i64,
    pub reference_ordinal: i64,
    pub last_month: i64,
    pub rollovers: i64,
    pub syslog_max_local: Option<i64>,
    pub exim_max_local: Option<i64>,
    /// None: no alias groups carried (the key is absent, or empty)
    pub aliases: Vec<[String; 4]>,
    pub host: String,
}

pub struct Parsed {
    pub out: Out,
    pub unknown: Vec<i64>,
    pub any_pre: bool,
    pub months_seen: bool,
    pub last_month: i64,
    pub rollovers: i64,
    pub syslog_max_local: Option<i64>,
    pub exim_max_local: Option<i64>,
    /// None: the expansions did not run (no alias carried, no original address in the batch)
    pub aliases: Option<Vec<[String; 4]>>,
}

/// A delivery with an original address, for `_expansions`.
struct Member<'a> {
    key: (&'a str, &'a str, &'a str),
    recipient: String,
    time: Time,
    program: &'a str,
    line_no: i64,
}

thread_local! {
    /// Compiled once a thread, not once a batch: the compile and the regexes' warmed-up lazy
    /// DFAs would otherwise be paid again by every batch (a followed log's are small).
    static PATTERNS: Patterns = Patterns::new();
}

pub fn parse(
    views: &[u8],
    buffers: &[&[u8]],
    line_nos: &[i64],
    carried: &Carried,
    at: &AtomicUsize,
) -> Result<Parsed, String> {
    PATTERNS.with(|p| parse_with(p, views, buffers, line_nos, carried, at))
}

fn parse_with(
    p: &Patterns,
    views: &[u8],
    buffers: &[&[u8]],
    line_nos: &[i64],
    carried: &Carried,
    at: &AtomicUsize,
) -> Result<Parsed, String> {
    let rows = line_nos.len();
    if views.len() != rows * 16 {
        return Err(format!("{} bytes of views for {} lines", views.len(), rows));
    }
    let mut out = spare::columns(rows);
    let mut unknown = Vec::new();
    let years = Years::carried(
        carried.year,
        carried.reference_year,
        carried.reference_ordinal,
        carried.last_month,
        carried.rollovers,
    );
    let mut clock = Clock {
        years,
        stamps: syslog::BsdCache::default(),
        syslog_running: carried.syslog_max_local,
        exim_running: carried.exim_max_local,
        any_pre: false,
    };
    let mut cache: FxMap<&str, Option<f64>> = FxMap::default();
    let mut members: Vec<Member> = Vec::new();
    let mut done: FxSet<(&str, &str)> = FxSet::default();
    let ctx_host = carried.host.as_str();
    let lines = columns::Lines::new(views, buffers);
    for row in 0..rows {
        at.store(row, Ordering::Relaxed);
        let line = lines.get(row).ok_or_else(|| {
            format!("line {row}: its view points outside the buffers, or its text is not UTF-8")
        })?;
        let line_no = line_nos.get(row).copied().unwrap_or_default();
        let ascii = line.is_ascii();
        let env = match envelope(p, &mut clock, line, ascii) {
            Some(e) => e,
            None => continue, // a blank line: neither an event nor unknown
        };
        let host = env.host.unwrap_or(ctx_host);
        let program = env.program.unwrap_or("exim");
        let rest = env.rest;
        let time = match env.time {
            Some(t) => t,
            None => {
                unknown.push(row as i64);
                continue;
            }
        };
        let idl = id_len(rest);
        let (qid, text) = match idl {
            Some(n) => (rest.get(..n), rest.get(n + 1..).unwrap_or("")),
            None => (None, rest),
        };
        let qid = match qid {
            Some(q) => q,
            None => {
                if is_reject(p, text) {
                    out.push(
                        line_no,
                        &time,
                        host,
                        program,
                        &reject(p, text, ascii).event(),
                    )?;
                } else if !p.noise.is_match(text) {
                    unknown.push(row as i64);
                }
                continue;
            }
        };
        let flag = chars(text, 3);
        if flag == "<= " || flag == "(= " {
            let (ev, bounce) = receive(p, qid, text, ascii);
            out.push(line_no, &time, host, program, &ev.event())?;
            if let Some(b) = bounce {
                out.push(line_no, &time, host, program, &b.event())?;
            }
        } else if STATUS
            .iter()
            .any(|(f, _)| flag.strip_prefix(f) == Some(" "))
        {
            let ev = deliver(p, &mut cache, qid, text, ascii);
            if let (Some(orig), Some(r)) = (ev.orig_recipient, &ev.recipient) {
                members.push(Member {
                    key: (host, qid, orig),
                    recipient: r.to_string(),
                    time: Time {
                        local: time.local,
                        utc: time.utc,
                        second_pass: time.second_pass,
                    },
                    program,
                    line_no,
                });
            }
            out.push(line_no, &time, host, program, &ev.event())?;
        } else if is_reject(p, text) {
            out.push(
                line_no,
                &time,
                host,
                program,
                &reject(p, text, ascii).event(),
            )?;
        } else {
            if text == "Completed" {
                done.insert((qid, host));
            }
            out.push(
                line_no,
                &time,
                host,
                program,
                &message_line(qid, text).event(),
            )?;
        }
    }
    at.store(rows, Ordering::Relaxed);
    let lines_read = out.line_no.values.len();
    let aliases = if carried.aliases.is_empty() && members.is_empty() {
        None
    } else {
        Some(expansions(&mut out, &members, &carried.aliases, &done)?)
    };
    // the expansions, decided once every line was read, go after their member's line: the
    // events in line order (the pipeline's checks for one file's lines in order take their
    // fast path; the reference lists them last)
    out.merge_tail_by_line(lines_read);
    let (months_seen, last_month, rollovers) = clock.years.outcome();
    Ok(Parsed {
        out,
        unknown,
        any_pre: clock.any_pre,
        months_seen,
        last_month,
        rollovers,
        syslog_max_local: clock.syslog_running,
        exim_max_local: clock.exim_running,
        aliases,
    })
}

/// `_expansions`: one `expand` event per original address that several final addresses share,
/// over this batch's deliveries and the groups carried in; the groups with a single member so
/// far, whose message is not Completed in this batch, are carried on.
fn expansions(
    out: &mut Out,
    members: &[Member],
    carried: &[[String; 4]],
    done: &FxSet<(&str, &str)>,
) -> Result<Vec<[String; 4]>, String> {
    struct Group<'m> {
        key: (&'m str, &'m str, &'m str),
        seen: FxSet<String>,
        first_recipient: &'m str,
        first_member: Option<&'m Member<'m>>,
    }
    let mut index: FxMap<(&str, &str, &str), usize> = FxMap::default();
    let mut groups: Vec<Group> = Vec::new();
    let rows = members
        .iter()
        .map(|m| (m.key, m.recipient.as_str(), Some(m)))
        .chain(
            carried
                .iter()
                .map(|[h, q, o, r]| ((h.as_str(), q.as_str(), o.as_str()), r.as_str(), None)),
        );
    for (key, recipient, member) in rows {
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                key,
                seen: FxSet::default(),
                first_recipient: recipient,
                first_member: None,
            });
            groups.len() - 1
        });
        if let Some(g) = groups.get_mut(i) {
            g.seen.insert(recipient.to_lowercase());
            if g.first_member.is_none() {
                g.first_member = member;
            }
        }
    }
    let mut singles: Vec<[String; 4]> = Vec::new();
    for g in &groups {
        let (host, qid, orig) = g.key;
        let n = g.seen.len();
        if n == 1 {
            if !done.contains(&(qid, host)) {
                singles.push([
                    host.to_string(),
                    qid.to_string(),
                    orig.to_string(),
                    g.first_recipient.to_string(),
                ]);
            }
        } else if let Some(m) = g.first_member {
            let detail = format!("expanded to {n} recipients");
            let ev = Event {
                kind: "expand",
                queue_id: Some(qid),
                status: Some("Expanded"),
                recipient: Some(orig),
                detail: Some(Cow::Owned(detail)),
                ..Default::default()
            };
            out.push(m.line_no, &m.time, host, m.program, &ev)?;
        }
    }
    let cut = singles.len().saturating_sub(MAX_CARRIED);
    Ok(singles.split_off(cut))
}

// ---- the Python side's call ---------------------------------------------------------------------

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

fn state_int(state: &PyDict, k: &str, default: i64) -> PyResult<i64> {
    match state.get_item(k) {
        Some(v) if !v.is_none() => v.extract(),
        _ => Ok(default),
    }
}

fn state_opt(state: &PyDict, k: &str) -> PyResult<Option<i64>> {
    match state.get_item(k) {
        Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
        _ => Ok(None),
    }
}

/// _core.parse_exim (see lib.rs): the batch in, the event columns and the state out.
pub fn py_parse<'py>(
    py: Python<'py>,
    views: &PyBytes,
    buffers: &PyList,
    line_nos: &PyBytes,
    state: &PyDict,
) -> PyResult<&'py PyDict> {
    let aliases: Vec<[String; 4]> = match state.get_item("aliases") {
        Some(v) if !v.is_none() => {
            let list: &PyList = v.downcast()?;
            let mut out = Vec::with_capacity(list.len());
            for item in list.iter() {
                // tuples as the parser leaves them, lists once the checkpoint file was read back
                let row: Vec<String> = item.extract()?;
                let n = row.len();
                out.push(<[String; 4]>::try_from(row).map_err(|_| {
                    PyValueError::new_err(format!(
                        "a carried Exim alias group has {n} fields, not 4 (host, id, original, recipient)"
                    ))
                })?);
            }
            out
        }
        _ => Vec::new(),
    };
    let carried = Carried {
        year: state_opt(state, "year")?,
        reference_year: state_int(state, "reference_year", 1970)?,
        reference_ordinal: state_int(state, "reference_ordinal", 102)?,
        last_month: state_int(state, "last_month", 0)?,
        rollovers: state_int(state, "rollovers", 0)?,
        syslog_max_local: state_opt(state, "max_local")?,
        exim_max_local: state_opt(state, "exim_max_local")?,
        aliases,
        host: match state.get_item("host") {
            Some(v) if !v.is_none() => v.extract()?,
            _ => String::new(),
        },
    };
    let buffers = crate::data_buffers(buffers)?;
    let views = views.as_bytes();
    let line_nos = crate::le_i64(line_nos.as_bytes());
    let (parsed, parse_seconds) = crate::run_batch(py, "Exim", &line_nos, |at| {
        parse(views, &buffers, &line_nos, &carried, at)
    })?;
    let mut parsed = parsed;
    let out = crate::batch_result(py, &mut parsed.out, &parsed.unknown, parse_seconds)?;
    out.set_item("any_pre", parsed.any_pre)?;
    out.set_item("months_seen", parsed.months_seen)?;
    out.set_item("last_month", parsed.last_month)?;
    out.set_item("rollovers", parsed.rollovers)?;
    out.set_item("max_local", parsed.syslog_max_local)?;
    out.set_item("exim_max_local", parsed.exim_max_local)?;
    match parsed.aliases {
        Some(rows) => {
            let list = PyList::empty(py);
            for r in rows {
                list.append(PyTuple::new(py, r.iter().map(String::as_str)))?;
            }
            out.set_item("aliases", list)?
        }
        None => out.set_item("aliases", py.None())?,
    }
    spare::keep(parsed.out);
    Ok(out)
}
