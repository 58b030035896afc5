//! Exchange message tracking logs -> events: what tests/polars_exchange.py (the vectorised
//! reference, ingest/formats/exchange.py before issue 16) does with Polars' CSV reader and
//! expressions over a batch, one line at a time. Each comment names the Python function it
//! stands for; ingest/formats/exchange.py passes the lines in and makes the frame.
//!
//! A batch is cut into sections at its `#Fields` lines (the first takes the layout carried from
//! the batch before). A section's lines are split the way the reference splits them: by its CSV
//! reader when no line derails it, else all of them by its per-line regex (csvsplit.rs); then
//! each row gives its events in the reference's order: the message rows of the section, its
//! one-recipient rows, its several-recipient rows, then the rows of rewritten addresses.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use regex::Regex;

use crate::columns::{self, F64Col, I64Col, StrCol};
use crate::csvsplit::{self, Projection};
use crate::isotime::{event_time, origin};
use crate::postfix::clip;

/// The columns the parser reads (the reference's _USED), in this order in a row.
const USED: [&str; 21] = [
    "date-time",
    "client-ip",
    "client-hostname",
    "server-ip",
    "server-hostname",
    "source-context",
    "source",
    "event-id",
    "internal-message-id",
    "message-id",
    "network-message-id",
    "recipient-address",
    "recipient-status",
    "total-bytes",
    "recipient-count",
    "related-recipient-address",
    "reference",
    "message-subject",
    "sender-address",
    "return-path",
    "message-info",
];
const DATE_TIME: usize = 0;
const CLIENT_IP: usize = 1;
const CLIENT_HOSTNAME: usize = 2;
const SERVER_IP: usize = 3;
const SERVER_HOSTNAME: usize = 4;
const SOURCE_CONTEXT: usize = 5;
const SOURCE: usize = 6;
const EVENT_ID: usize = 7;
const INTERNAL_ID: usize = 8;
const MESSAGE_ID: usize = 9;
const NETWORK_ID: usize = 10;
const RECIPIENT: usize = 11;
const RECIPIENT_STATUS: usize = 12;
const TOTAL_BYTES: usize = 13;
const RECIPIENT_COUNT: usize = 14;
const RELATED: usize = 15;
const REFERENCE: usize = 16;
const SUBJECT: usize = 17;
const SENDER_ADDRESS: usize = 18;
const RETURN_PATH: usize = 19;
const MESSAGE_INFO: usize = 20;

/// The 2010 layout (26 fields); 2013 adds network-message-id after message-id (27), 2016 three
/// at the end (30). A section with no header is read by the layout of its lines' width.
const F2010: [&str; 26] = [
    "date-time",
    "client-ip",
    "client-hostname",
    "server-ip",
    "server-hostname",
    "source-context",
    "connector-id",
    "source",
    "event-id",
    "internal-message-id",
    "message-id",
    "recipient-address",
    "recipient-status",
    "total-bytes",
    "recipient-count",
    "related-recipient-address",
    "reference",
    "message-subject",
    "sender-address",
    "return-path",
    "message-info",
    "directionality",
    "tenant-id",
    "original-client-ip",
    "original-server-ip",
    "custom-data",
];

fn layout_of_width(width: usize) -> Option<Vec<&'static str>> {
    let mut f: Vec<&str> = F2010.to_vec();
    match width {
        26 => Some(f),
        27 | 30 => {
            f.insert(11, "network-message-id");
            if width == 30 {
                f.extend(["transport-traffic-type", "log-id", "schema-version"]);
            }
            Some(f)
        }
        _ => None,
    }
}

fn slot_of(name: &str) -> Option<usize> {
    USED.iter().position(|u| *u == name)
}

type Fields<'a> = [Option<Cow<'a, str>>; 21];

fn no_fields<'a>() -> Fields<'a> {
    Default::default()
}

/// One data line split into the used columns, and (once it has a time) what every rule reads of it.
struct Row<'a> {
    row: usize,
    line_no: i64,
    f: Fields<'a>,
    /// microseconds
    time: i64,
    class: Class,
    /// how many recipients recipient-address lists (0: none)
    n: usize,
}

impl<'a> Row<'a> {
    fn new(row: usize, line_no: i64) -> Self {
        Row {
            row,
            line_no,
            f: no_fields(),
            time: 0,
            class: Class::Info,
            n: 0,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Receive,
    Deliver,
    Expand,
    Rewrite,
    Info,
}

/// _CLASS: what an event-id contributes.
fn class(program: &str) -> Class {
    match program {
        "RECEIVE" | "SUBMIT" | "DSN" => Class::Receive,
        "EXPAND" => Class::Expand,
        "RESOLVE" | "REDIRECT" => Class::Rewrite,
        _ if outcome(program).is_some() => Class::Deliver,
        _ => Class::Info,
    }
}

/// _OUTCOME: the status an outcome event gives its recipients.
fn outcome(program: &str) -> Option<&'static str> {
    match program {
        "DELIVER" | "DUPLICATEDELIVER" | "SEND" => Some("Delivered"),
        "FAIL" | "SUBMITFAIL" | "BADMAIL" | "DROP" => Some("Failed"),
        "DEFER" | "SUBMITDEFER" => Some("Pending"),
        _ => None,
    }
}

impl<'a> Row<'a> {
    fn get(&self, slot: usize) -> Option<&str> {
        self.f.get(slot).and_then(|v| v.as_deref())
    }
    fn program(&self) -> &str {
        self.get(EVENT_ID).unwrap_or("")
    }
    fn queue_id(&self) -> Option<&str> {
        self.get(NETWORK_ID).or_else(|| self.get(INTERNAL_ID))
    }
    fn sender(&self) -> Option<&str> {
        match self.get(RETURN_PATH) {
            Some("<>") => Some(""),
            Some(rp) => Some(rp),
            None => self.get(SENDER_ADDRESS),
        }
    }
}

/// One event row, before it goes into the columns.
#[derive(Default)]
struct Ev<'s> {
    kind: &'static str,
    status: Option<&'static str>,
    recipient: Option<&'s str>,
    orig_recipient: Option<Cow<'s, str>>,
    client_host: Option<&'s str>,
    client_ip: Option<&'s str>,
    relay: Option<&'s str>,
    to_ip: Option<&'s str>,
    size: Option<i64>,
    nrcpt: Option<i64>,
    delay: Option<f64>,
    dsn: Option<Cow<'s, str>>,
    detail: Option<Cow<'s, str>>,
}

pub const STRING_FIELDS: [&str; 15] = [
    "program",
    "queue_id",
    "kind",
    "status",
    "sender",
    "recipient",
    "orig_recipient",
    "message_id",
    "subject",
    "client_host",
    "client_ip",
    "relay",
    "to_ip",
    "dsn",
    "detail",
];

const TOO_BIG: &str =
    "the batch's events hold more than 4 GiB of text: parse it in smaller batches";

struct Out {
    line_no: I64Col,
    time: I64Col,
    strings: Vec<StrCol>,
    size: I64Col,
    nrcpt: I64Col,
    delay: F64Col,
}

/// Column sets a thread may keep (a section's four and the batch's own).
const SPARE_SETS: usize = 5;
/// The rows a kept column set may have room for (a pipeline batch, 8 MiB of lines, is some
/// 20,000 Exchange lines): a bigger batch's columns, a whole file parsed at once, are freed.
const SPARE_ROWS_MAX: usize = 200_000;

thread_local! {
    /// The column sets of the thread's last batch, emptied for its next one: rows are written
    /// into memory already mapped, not into vectors grown by doubling from empty (the copies of
    /// their reallocations were an eighth of the parse's instructions) and fresh pages.
    static SPARE: RefCell<Vec<Out>> = const { RefCell::new(Vec::new()) };
}

/// A column set for `rows` rows: one of the thread's spare ones emptied, else a new one.
fn spare_columns(rows: usize) -> Out {
    match SPARE.with(|s| s.borrow_mut().pop()) {
        Some(mut o) => {
            o.clear();
            o
        }
        None => Out::new(rows),
    }
}

/// A column set no longer needed (its rows copied on), kept for the thread's next batch.
fn keep_columns(o: Out) {
    if o.line_no.values.capacity() <= SPARE_ROWS_MAX {
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < SPARE_SETS {
                s.push(o);
            }
        });
    }
}

impl Out {
    fn clear(&mut self) {
        self.line_no.clear();
        self.time.clear();
        for c in self.strings.iter_mut() {
            c.clear();
        }
        self.size.clear();
        self.nrcpt.clear();
        self.delay.clear();
    }

    fn new(rows: usize) -> Self {
        Out {
            line_no: I64Col::default(),
            time: I64Col::default(),
            strings: (0..STRING_FIELDS.len())
                .map(|_| StrCol::with_capacity(rows, rows * 8))
                .collect(),
            size: I64Col::default(),
            nrcpt: I64Col::default(),
            delay: F64Col::default(),
        }
    }

    /// Another list's rows after this one's.
    fn append(&mut self, other: &Out) -> Result<(), String> {
        self.line_no.append(&other.line_no);
        self.time.append(&other.time);
        for (col, o) in self.strings.iter_mut().zip(&other.strings) {
            if !col.append(o) {
                return Err(TOO_BIG.to_string());
            }
        }
        self.size.append(&other.size);
        self.nrcpt.append(&other.nrcpt);
        self.delay.append(&other.delay);
        Ok(())
    }

    fn push(&mut self, r: &Row, e: &Ev) -> Result<(), String> {
        self.line_no.push(Some(r.line_no));
        self.time.push(Some(r.time));
        let values: [Option<&str>; 15] = [
            Some(r.program()),
            r.queue_id(),
            Some(e.kind),
            e.status,
            r.sender(),
            e.recipient,
            e.orig_recipient.as_deref(),
            r.get(MESSAGE_ID),
            r.get(SUBJECT),
            e.client_host,
            e.client_ip,
            e.relay,
            e.to_ip,
            e.dsn.as_deref(),
            e.detail.as_deref(),
        ];
        for (col, v) in self.strings.iter_mut().zip(values) {
            if !col.push(v) {
                return Err(TOO_BIG.to_string());
            }
        }
        self.size.push(e.size);
        self.nrcpt.push(e.nrcpt);
        self.delay.push(e.delay);
        Ok(())
    }
}

/// The reference's regexes for the rare shapes (compiled on first use: most batches need none).
#[derive(Default)]
struct Patterns {
    spam: Option<Regex>,
    next_status: Option<Regex>,
    dsn: Option<Regex>,
}

fn re(p: &str) -> Regex {
    Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}"))
}

impl Patterns {
    /// _SPAM (common.SPAM_REASON and Exchange's own words)
    fn spam(&mut self) -> &Regex {
        self.spam.get_or_insert_with(|| {
            re(concat!(
                r"(?i)spam|blocked using|block ?list|black ?list|dnsbl|dnslist|\brbl\b|spamcop|barracudacentral",
                r"|sorbs|uceprotect|junk|\bUBE\b|bulk mail|listed (?:at|in|on|by) |realtime blackhole",
                r"|content ?filter|(?-u:\bSCL\b)|phish",
            ))
        })
    }
    /// _NEXT_STATUS
    fn next_status(&mut self) -> &Regex {
        self.next_status.get_or_insert_with(|| {
            re(r";\s*(\d{3}[ -]|\d\.\d{1,3}\.\d{1,3}(?-u:\b)|(?:To|Cc|Bcc)(?-u:\b))")
        })
    }
    /// _DSN
    fn dsn(&mut self) -> &Regex {
        self.dsn
            .get_or_insert_with(|| re(r"^(?:\d{3}[ -])?([245]\.\d{1,3}\.\d{1,3})"))
    }
}

/// str::trim (Polars' strip_chars), without the Unicode scan when both ends are plain ASCII.
fn trim(s: &str) -> &str {
    let plain = |c: Option<&u8>| c.map_or(false, |c| *c > b' ' && c.is_ascii());
    let b = s.as_bytes();
    if plain(b.first()) && plain(b.last()) {
        s
    } else {
        s.trim()
    }
}

/// Python's str.strip(): Unicode whitespace and the four ASCII separators \x1c-\x1f.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// _DSN's capture, read by hand where the text the pattern can reach is ASCII.
fn dsn<'s>(p: &mut Patterns, own: &'s str) -> Option<Cow<'s, str>> {
    let b = own.as_bytes();
    if !b.iter().take(13).all(u8::is_ascii) {
        return p
            .dsn()
            .captures(own)
            .and_then(|c| c.get(1))
            .map(|m| Cow::Owned(m.as_str().to_string()));
    }
    let core = |at: usize| -> Option<usize> {
        if !matches!(b.get(at), Some(b'2' | b'4' | b'5')) || b.get(at + 1) != Some(&b'.') {
            return None;
        }
        let run = |from: usize| {
            b.iter()
                .skip(from)
                .take_while(|c| c.is_ascii_digit())
                .count()
        };
        let r1 = run(at + 2);
        if !(1..=3).contains(&r1) || b.get(at + 2 + r1) != Some(&b'.') {
            return None;
        }
        let from = at + 3 + r1;
        let r2 = run(from).min(3);
        if r2 == 0 {
            return None;
        }
        Some(from + r2)
    };
    let prefixed = b.len() >= 4
        && b.iter().take(3).all(u8::is_ascii_digit)
        && matches!(b.get(3), Some(b' ' | b'-'));
    let (start, end) = match prefixed.then(|| core(4)).flatten() {
        Some(end) => (4, end),
        None => (0, core(0)?),
    };
    own.get(start..end).map(Cow::Borrowed)
}

/// The recipient-status of a line listing several recipients, cut before each token that
/// starts a status (_NEXT_STATUS), as `str.replace_all(...).str.split(_SEP)` cuts it.
fn statuses<'s>(p: &mut Patterns, status: &'s str) -> Vec<Cow<'s, str>> {
    if !status.contains(';') {
        return status.split('\x1f').map(Cow::Borrowed).collect();
    }
    match p.next_status().replace_all(status, "\x1f${1}") {
        Cow::Borrowed(s) => s.split('\x1f').map(Cow::Borrowed).collect(),
        Cow::Owned(s) => s.split('\x1f').map(|x| Cow::Owned(x.to_string())).collect(),
    }
}

/// The delay of an outcome line: its time less the origin time in message-info, in seconds.
fn delay(r: &Row) -> Option<f64> {
    let o = origin(r.get(MESSAGE_INFO)?)?;
    let seconds = (r.time - o) as f64 / 1e6;
    Some((seconds * 1e6).round() / 1e6)
}

/// The events of one section, kept apart until it is read through (a quote that derails the
/// reader sends the whole section to the regex). They are in line order, each line's message row,
/// then its recipients' rows, then its rewrites' rows: the order of the log, in which the
/// pipeline's checks for one file's lines in order (ingest/openset.py orphans) take their fast
/// path, and the events files are written in time order. (The Polars reference gives all of a
/// section's message rows first, then its one-recipient rows, its several-recipient rows and the
/// rewrites' rows: the same events, which the tests sort by line to compare.) Each line is read
/// once, while it is in cache.
struct Section {
    out: Out,
    unknown: Vec<usize>,
}

impl Section {
    fn new(lines: usize) -> Self {
        Section {
            out: spare_columns(lines * 2),
            unknown: Vec::new(),
        }
    }
}

struct Parser {
    out: Out,
    unknown: Vec<usize>,
    patterns: Patterns,
    bounds: (i64, i64),
    /// false: every section by the regex (the tests' way to compare the two paths)
    reader: bool,
}

type Line<'a> = (usize, i64, &'a str);

impl Parser {
    /// A section's lines (the reference's _rows, then _events): by the CSV reader when no line
    /// derails it, else by the regex; with no layout, each line by the layout of its width.
    fn section(&mut self, lines: &[Line], names: Option<&[String]>) -> Result<(), String> {
        if lines.is_empty() {
            return Ok(());
        }
        let sec = match names.filter(|n| !n.is_empty()) {
            Some(names) => {
                let proj = Projection::new(names, slot_of);
                if proj.is_empty() {
                    // no column the parser reads (the reference fails on such a header): nothing maps
                    self.unknown.extend(lines.iter().map(|l| l.0));
                    return Ok(());
                }
                let read = if self.reader {
                    self.by_reader(lines, &proj)?
                } else {
                    None
                };
                match read {
                    Some(sec) => sec,
                    None => {
                        let mut sec = Section::new(lines.len());
                        let mut spans = Vec::new();
                        for line in lines {
                            self.regex_row(&mut sec, line, Some(&proj), &mut spans)?;
                        }
                        sec
                    }
                }
            }
            None => self.by_width(lines)?,
        };
        self.take(sec)
    }

    /// _split_csv: the section as Polars' CSV reader reads it; None when it would fail (a quote
    /// derails it, or the first row has fewer fields than the header names).
    fn by_reader(&mut self, lines: &[Line], proj: &Projection) -> Result<Option<Section>, String> {
        let mut sec = Section::new(lines.len());
        for (k, &(row, line_no, line)) in lines.iter().enumerate() {
            let last = k + 1 == lines.len();
            // the reader skips a byte-order mark where its buffer starts
            let line = if k == 0 {
                let l = line.strip_prefix('\u{feff}').unwrap_or(line);
                if csvsplit::reader_field_count(l) < proj.width {
                    return Ok(None);
                }
                l
            } else {
                line
            };
            let mut r = Row::new(row, line_no);
            if !csvsplit::polars_line(line, proj, last, &mut r.f) {
                return Ok(None);
            }
            self.row_events(&mut sec, &mut r)?;
        }
        Ok(Some(sec))
    }

    /// No layout (a file read from its middle): the regex over each line, mapped by the
    /// standard layout of its width.
    fn by_width(&mut self, lines: &[Line]) -> Result<Section, String> {
        let mut sec = Section::new(lines.len());
        let mut spans = Vec::new();
        let layouts: Vec<(usize, Projection)> = [26, 27, 30]
            .into_iter()
            .filter_map(|w| layout_of_width(w).map(|f| (w, Projection::new(&f, slot_of))))
            .collect();
        for line in lines {
            let text = line.2.strip_suffix('\r').unwrap_or(line.2);
            let width = csvsplit::regex_fields(text, &mut spans);
            match layouts.iter().find(|(w, _)| Some(*w) == width) {
                Some((_, proj)) => self.regex_row(&mut sec, line, Some(proj), &mut spans)?,
                None => sec.unknown.push(line.0),
            }
        }
        Ok(sec)
    }

    /// _split_regex for one line: its fields when the matches cover it, else an unknown line.
    fn regex_row(
        &mut self,
        sec: &mut Section,
        &(row, line_no, line): &Line,
        proj: Option<&Projection>,
        spans: &mut Vec<(usize, usize)>,
    ) -> Result<(), String> {
        let text = line.strip_suffix('\r').unwrap_or(line);
        let proj = match (csvsplit::regex_fields(text, spans), proj) {
            (Some(_), Some(p)) => p,
            _ => {
                sec.unknown.push(row);
                return Ok(());
            }
        };
        let mut r = Row::new(row, line_no);
        for (pos, (a, b)) in spans.iter().enumerate() {
            if let Some(slot) = proj.slot_at(pos) {
                if let Some(v) = r.f.get_mut(slot) {
                    *v = csvsplit::unquote_regex(text.get(*a..*b).unwrap_or(""));
                }
            }
        }
        self.row_events(sec, &mut r)
    }

    /// The events of one row (_events): none, and an unknown line, without a time or an event-id.
    fn row_events(&mut self, sec: &mut Section, r: &mut Row) -> Result<(), String> {
        let time = r.f[DATE_TIME]
            .as_deref()
            .and_then(|s| event_time(s, self.bounds));
        let (time, program) = match (time, r.f[EVENT_ID].as_deref()) {
            (Some(t), Some(p)) => (t, p),
            _ => {
                sec.unknown.push(r.row);
                return Ok(());
            }
        };
        r.time = time;
        r.class = class(program);
        r.n = r.f[RECIPIENT]
            .as_deref()
            .map_or(0, |s| memchr::memchr_iter(b';', s.as_bytes()).count() + 1);
        // a line with no message id (NOTIFYMAPI: an item seen in an Outbox) traces nothing
        if r.queue_id().is_none() {
            return Ok(());
        }
        let r = &*r;
        self.message_row(&mut sec.out, r)?;
        if listed(r) {
            self.listed_rows(&mut sec.out, r)?;
        }
        self.rewrites(&mut sec.out, r)
    }

    /// A section read through: its events after the batch's.
    fn take(&mut self, sec: Section) -> Result<(), String> {
        if self.out.line_no.values.is_empty() {
            keep_columns(std::mem::replace(&mut self.out, sec.out));
        } else {
            self.out.append(&sec.out)?;
            keep_columns(sec.out);
        }
        self.unknown.extend(sec.unknown);
        Ok(())
    }

    /// _message_rows: receive lines, and lines that decide nothing or name no recipient.
    fn message_row(&mut self, out: &mut Out, r: &Row) -> Result<(), String> {
        if !(matches!(r.class, Class::Receive | Class::Info) || r.n == 0) {
            return Ok(());
        }
        let receive = r.class == Class::Receive;
        let int = |slot: usize| -> Option<i64> {
            if receive {
                r.get(slot).and_then(|s| s.parse().ok())
            } else {
                None
            }
        };
        let e = Ev {
            kind: if receive { "receive" } else { "info" },
            size: int(TOTAL_BYTES),
            nrcpt: int(RECIPIENT_COUNT),
            client_host: if receive {
                r.get(CLIENT_HOSTNAME)
            } else {
                None
            },
            client_ip: if r.program() == "RECEIVE" && r.get(SOURCE) == Some("SMTP") {
                r.get(CLIENT_IP)
            } else {
                None
            },
            detail: r
                .get(SOURCE_CONTEXT)
                .or_else(|| r.get(REFERENCE))
                .map(|d| Cow::Borrowed(clip(d))),
            ..Ev::default()
        };
        out.push(r, &e)
    }

    /// _listed and _recipient_rows: one row per listed recipient, its outcome or GettingStatus.
    fn listed_rows(&mut self, out: &mut Out, r: &Row) -> Result<(), String> {
        let rcpt = r.get(RECIPIENT).unwrap_or("");
        let status = r.get(RECIPIENT_STATUS);
        let delay = if r.class == Class::Deliver {
            delay(r)
        } else {
            None
        };
        if r.n == 1 {
            return self.listed_row(
                out,
                r,
                trim(rcpt),
                status.map(|s| Cow::Borrowed(trim(s))),
                0,
                delay,
            );
        }
        let pieces = status.map(|s| statuses(&mut self.patterns, s));
        for (i, recipient) in rcpt.split(';').enumerate() {
            let own = pieces.as_ref().and_then(|v| {
                let piece = if v.len() == 1 { v.first() } else { v.get(i) };
                piece.map(|s| match s {
                    Cow::Borrowed(b) => Cow::Borrowed(trim(b)),
                    Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
                })
            });
            self.listed_row(out, r, trim(recipient), own, i, delay)?;
        }
        Ok(())
    }

    fn listed_row(
        &mut self,
        out: &mut Out,
        r: &Row,
        recipient: &str,
        own: Option<Cow<str>>,
        i: usize,
        delay: Option<f64>,
    ) -> Result<(), String> {
        if recipient.is_empty() {
            return Ok(());
        }
        let program = r.program();
        let is_outcome = r.class == Class::Deliver;
        let status = if is_outcome {
            let spam = matches!(program, "FAIL" | "DROP") && {
                let parts: Vec<&str> = [own.as_deref(), r.get(SOURCE_CONTEXT)]
                    .iter()
                    .flatten()
                    .copied()
                    .collect();
                self.patterns.spam().is_match(&parts.join(" "))
            };
            if spam {
                Some("FilteredAsSpam")
            } else {
                outcome(program)
            }
        } else {
            Some("GettingStatus")
        };
        let e = Ev {
            kind: "deliver",
            status,
            recipient: Some(recipient),
            orig_recipient: orig(r, recipient, i),
            relay: if is_outcome {
                r.get(SERVER_HOSTNAME)
            } else {
                None
            },
            to_ip: if program == "SEND" {
                r.get(SERVER_IP)
            } else {
                None
            },
            dsn: if is_outcome {
                own.as_deref().and_then(|o| dsn(&mut self.patterns, o))
            } else {
                None
            },
            detail: if is_outcome {
                own.as_deref()
                    .or_else(|| r.get(SOURCE_CONTEXT))
                    .map(|d| Cow::Owned(clip(d).to_string()))
            } else {
                None
            },
            delay: if is_outcome {
                delay.filter(|d| *d >= 0.0)
            } else {
                None
            },
            ..Ev::default()
        };
        out.push(r, &e)
    }

    /// _rewrites: the addresses EXPAND, RESOLVE and REDIRECT lines replaced.
    fn rewrites(&mut self, out: &mut Out, r: &Row) -> Result<(), String> {
        let expand = r.class == Class::Expand;
        if !(expand || r.class == Class::Rewrite) {
            return Ok(());
        }
        let related = match r.get(RELATED) {
            Some(s) => s,
            None => return Ok(()),
        };
        let rcpt = r.get(RECIPIENT);
        let new: Option<Vec<String>> = rcpt.map(|s| {
            s.to_lowercase()
                .split(';')
                .map(|x| x.trim().to_string())
                .collect()
        });
        let verb = if expand {
            "expanded to "
        } else if r.program() == "RESOLVE" {
            "resolved to "
        } else {
            "redirected to "
        };
        let detail = rcpt.map(|s| Cow::Owned(clip(&format!("{verb}{s}")).to_string()));
        for rel in related.split(';').map(str::trim) {
            if rel.is_empty() {
                continue;
            }
            // an address resolved to itself is not a rewrite
            let keep = expand
                || new
                    .as_ref()
                    .map_or(false, |n| !n.contains(&rel.to_lowercase()));
            if !keep {
                continue;
            }
            let e = Ev {
                kind: if expand { "expand" } else { "deliver" },
                status: Some(if expand { "Expanded" } else { "None" }),
                recipient: Some(rel),
                detail: detail.clone(),
                ..Ev::default()
            };
            out.push(r, &e)?;
        }
        Ok(())
    }
}

/// The rows of a line listing recipients: not info, some recipient, and not the Mailbox
/// Transport Submission's own RECEIVE (a null source makes the reference's test null: dropped).
fn listed(r: &Row) -> bool {
    if r.class == Class::Info || r.n == 0 {
        return false;
    }
    r.class != Class::Receive || r.get(SOURCE).map_or(false, |s| s != "STOREDRIVER")
}

/// _orig: the group of an EXPAND member, or the address a RESOLVE/REDIRECT rewrote.
fn orig<'s>(r: &'s Row, recipient: &str, i: usize) -> Option<Cow<'s, str>> {
    if !matches!(r.class, Class::Expand | Class::Rewrite) {
        return None;
    }
    let related = r.get(RELATED)?;
    let several =
        (r.class == Class::Rewrite && r.n > 1).then(|| related.split(';').collect::<Vec<_>>());
    let piece = match several {
        Some(v) if v.len() == r.n => v.get(i).copied(),
        _ => related.split(';').next(),
    }?;
    let o = piece.trim();
    if o.to_lowercase() == recipient.to_lowercase() {
        None
    } else {
        Some(Cow::Borrowed(o))
    }
}

/// What a batch gives back.
struct Parsed {
    out: Out,
    unknown: Vec<usize>,
    /// the last `#Fields` layout of the batch, None when it has no header line
    fields: Option<Vec<String>>,
}

fn parse(
    views: &[u8],
    buffers: &[&[u8]],
    line_nos: &[i64],
    carried: Option<Vec<String>>,
    reader: bool,
    at: &AtomicUsize,
) -> Result<Parsed, String> {
    let rows = line_nos.len();
    if views.len() != rows * 16 {
        return Err(format!("{} bytes of views for {} lines", views.len(), rows));
    }
    let bounds = (
        crate::syslog::micros(1, 1, 1, 0, 0, 0, 0).unwrap_or(i64::MIN),
        crate::syslog::micros(10000, 1, 1, 0, 0, 0, 0).unwrap_or(i64::MAX),
    );
    let mut p = Parser {
        out: spare_columns(0),
        unknown: Vec::new(),
        patterns: Patterns::default(),
        bounds,
        reader,
    };
    let mut layout = carried;
    let mut seen_header = false;
    let mut section: Vec<(usize, i64, &str)> = Vec::new();
    let lines = columns::Lines::new(views, buffers);
    for row in 0..rows {
        let line = lines.get(row).ok_or_else(|| {
            format!("line {row}: its view points outside the buffers, or its text is not UTF-8")
        })?;
        let line_no = line_nos.get(row).copied().unwrap_or_default();
        if let Some(head) = line.strip_prefix("#Fields:") {
            at.store(row, Ordering::Relaxed);
            p.section(&section, layout.as_deref())?;
            section.clear();
            layout = Some(py_strip(head).split(',').map(str::to_string).collect());
            seen_header = true;
        } else if !(line.starts_with('#') || line.is_empty() || line == "\r") {
            section.push((row, line_no, line));
        }
    }
    at.store(rows, Ordering::Relaxed);
    p.section(&section, layout.as_deref())?;
    // the reference sorts its unknown lines by number
    p.unknown
        .sort_by_key(|r| (line_nos.get(*r).copied().unwrap_or_default(), *r));
    Ok(Parsed {
        out: p.out,
        unknown: p.unknown,
        fields: if seen_header { layout } else { None },
    })
}

/// Parse a batch of Exchange message tracking log lines.
///
/// views, buffers: the lines as an Arrow string_view column (as for parse_postfix; a leading
/// byte-order mark already stripped); line_nos: little-endian int64 line numbers; fields: the
/// `#Fields` layout carried from the batch before (a list of names, or None); reader: false
/// reads every section by the regex fallback (tests compare the two paths with it).
/// Returns a dict: columns (name, kind, len, null_count, validity, values or views, data),
/// unknown (int64 rows, by line number), fields (the batch's last layout, or None).
#[pyfunction]
pub fn parse_exchange<'py>(
    py: Python<'py>,
    views: &PyBytes,
    buffers: &PyList,
    line_nos: &PyBytes,
    fields: Option<Vec<String>>,
    reader: bool,
) -> PyResult<&'py PyDict> {
    let buffers = crate::data_buffers(buffers)?;
    let views = views.as_bytes();
    let line_nos = crate::le_i64(line_nos.as_bytes());
    let started = std::time::Instant::now();
    let parsed = crate::batch::guarded_at(
        py,
        "Exchange",
        "in the section ending at line",
        &line_nos,
        |at| parse(views, &buffers, &line_nos, fields, reader, at),
    )?;
    let parse_seconds = started.elapsed().as_secs_f64();
    let mut o = parsed.out;
    let cols = PyList::empty(py);
    for (name, c) in [("line_no", &o.line_no), ("_time", &o.time)] {
        cols.append(crate::fixed_column(
            py,
            name,
            "i64",
            &c.valid,
            &c.value_bytes(),
        ))?;
    }
    for (name, c) in STRING_FIELDS.iter().zip(o.strings.iter_mut()) {
        cols.append(crate::text_column(py, name, c))?;
    }
    for (name, c) in [("size", &o.size), ("nrcpt", &o.nrcpt)] {
        cols.append(crate::fixed_column(
            py,
            name,
            "i64",
            &c.valid,
            &c.value_bytes(),
        ))?;
    }
    cols.append(crate::fixed_column(
        py,
        "delay",
        "f64",
        &o.delay.valid,
        &o.delay.value_bytes(),
    ))?;
    let out = PyDict::new(py);
    out.set_item("rows", o.line_no.values.len())?;
    out.set_item("parse_seconds", parse_seconds)?;
    out.set_item("columns", cols)?;
    let unknown: Vec<u8> = parsed
        .unknown
        .iter()
        .flat_map(|r| (*r as i64).to_le_bytes())
        .collect();
    out.set_item("unknown", PyBytes::new(py, &unknown))?;
    out.set_item("fields", parsed.fields)?;
    keep_columns(o);
    Ok(out)
}
