//! The syslog envelope, as ingest/formats/syslog.py splits it (that module documents the shapes):
//! time, host, program, pid and body of a line, and the queue-id `lead` cut off the body.
//!
//! The common shape (`Jun 13 10:00:00 host prog[pid]: body`, the Python side's _CLEAN) is read by
//! hand, byte by byte; a line it does not fit (a host or program with ':', an RFC 3339 stamp, a
//! `<PRI>`, odd spacing, a digit outside ASCII) takes the very regexes of the Python side, which
//! Polars runs with this same regex crate, so both agree on every line.

use regex::Regex;

/// The Python side's _FAST, _HEADER and the fast path's tag pattern.
pub struct Patterns {
    fast: Regex,
    header: Regex,
    tag: Regex,
    lead: Regex,
}

impl Patterns {
    pub fn new() -> Self {
        Patterns {
            fast: Regex::new(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d [^ ]+ [^ ]+: ").expect("fast"),
            header: Regex::new(concat!(
                r"^(?:<\d{1,3}>(?:1 )?)?",
                r"(?:([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d:\d\d:\d\d)(?:\.\d+)?",
                r"|(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))",
                r" (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: "
            ))
            .expect("header"),
            tag: Regex::new(r"^([^\[]+)(?:\[(\d+)\])?$").expect("tag"),
            lead: Regex::new(r"^(([0-9A-Za-z]{5,24}): )").expect("lead"),
        }
    }
}

/// What a line's timestamp says, before the year and zone are applied.
#[derive(Clone, Copy)]
pub enum Stamp<'a> {
    /// RFC 3164: month name, day (leading blanks stripped), HH:MM:SS
    Bsd {
        mon: &'a str,
        day: &'a str,
        hms: &'a str,
    },
    /// RFC 3339 / ISO 8601, as matched
    Iso(&'a str),
}

/// One line's envelope; `stamp` is None when the line has no syslog header at all.
pub struct Envelope<'a> {
    pub stamp: Option<Stamp<'a>>,
    pub host: Option<&'a str>,
    pub program: Option<&'a str>,
    pub pid: Option<&'a str>,
    /// the body after the tag, the lead included (what the Python side rebuilds as lead + ": " + body)
    pub full_body: &'a str,
    /// the body after the lead
    pub body: &'a str,
    pub lead: Option<&'a str>,
}

/// `_CLEAN` by hand on the bytes; None where it does not match with ASCII digits (the regex
/// paths then decide, with Unicode digits as Polars reads `\d`).
fn clean(line: &str) -> Option<Envelope<'_>> {
    let b = line.as_bytes();
    // [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d and a space: the 16 bytes of the stamp, as an array
    // (its indices are constants)
    let head: [u8; 16] = b.get(..16)?.try_into().ok()?;
    let stamp = head[0].is_ascii_uppercase()
        && head[1].is_ascii_lowercase()
        && head[2].is_ascii_lowercase()
        && head[3] == b' '
        && (head[4] == b' ' || head[4].is_ascii_digit())
        && head[5].is_ascii_digit()
        && head[6] == b' '
        && head[7].is_ascii_digit()
        && head[8].is_ascii_digit()
        && head[9] == b':'
        && head[10].is_ascii_digit()
        && head[11].is_ascii_digit()
        && head[12] == b':'
        && head[13].is_ascii_digit()
        && head[14].is_ascii_digit()
        && head[15] == b' ';
    if !stamp {
        return None;
    }
    // host: [^ :]+ then a space
    let rest = b.get(16..)?;
    let host_len = rest.iter().position(|c| *c == b' ' || *c == b':')?;
    if host_len == 0 || rest.get(host_len) != Some(&b' ') {
        return None;
    }
    let (host_start, host_end) = (16, 16 + host_len);
    // program: [^ \[:]+
    let prog_start = host_end + 1;
    let rest = b.get(prog_start..)?;
    let prog_len = rest
        .iter()
        .position(|c| *c == b' ' || *c == b'[' || *c == b':')?;
    if prog_len == 0 {
        return None;
    }
    let prog_end = prog_start + prog_len;
    let mut i = prog_end;
    let mut pid = None;
    if b.get(i) == Some(&b'[') {
        let pid_start = i + 1;
        let n = b
            .get(pid_start..)?
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n == 0 || b.get(pid_start + n) != Some(&b']') {
            return None;
        }
        pid = Some(line.get(pid_start..pid_start + n)?);
        i = pid_start + n + 1;
    }
    if b.get(i..i + 2) != Some(b": ") {
        return None;
    }
    let full_body = line.get(i + 2..)?;
    let (lead, body) = cut_lead(full_body);
    // the stamp's bytes are ASCII: cut on character boundaries
    let day = if head[4] == b' ' {
        line.get(5..6)?
    } else {
        line.get(4..6)?
    };
    Some(Envelope {
        stamp: Some(Stamp::Bsd {
            mon: line.get(0..3)?,
            day,
            hms: line.get(7..15)?,
        }),
        host: Some(line.get(host_start..host_end)?),
        program: Some(line.get(prog_start..prog_end)?),
        pid,
        full_body,
        body,
        lead,
    })
}

/// `([0-9A-Za-z]{5,24}): ` at the start of the body: the run of ASCII letters and digits there,
/// when 5 to 24 long and followed by ": ".
fn cut_lead(body: &str) -> (Option<&str>, &str) {
    let b = body.as_bytes();
    let n = b.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
    if (5..=24).contains(&n) && b.get(n) == Some(&b':') && b.get(n + 1) == Some(&b' ') {
        if let (Some(lead), Some(rest)) = (body.get(..n), body.get(n + 2..)) {
            return (Some(lead), rest);
        }
    }
    (None, body)
}

/// The first `n` characters of `s` (Polars' str.slice(0, n)).
pub fn chars(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    // n ASCII bytes are n characters (most texts): no walk over the characters
    if s.as_bytes().get(..n).map_or(false, |head| head.is_ascii()) {
        return s.get(..n).unwrap_or(s);
    }
    match s.char_indices().nth(n) {
        Some((at, _)) => s.get(..at).unwrap_or(s),
        None => s,
    }
}

/// `s` without its first `n` characters (Polars' str.slice(n)).
fn skip_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => s.get(at..).unwrap_or(""),
        None => "",
    }
}

fn with_lead<'a>(p: &Patterns, mut env: Envelope<'a>) -> Envelope<'a> {
    if let Some(c) = p.lead.captures(env.full_body) {
        if let (Some(all), Some(id)) = (c.get(1), c.get(2)) {
            env.lead = Some(id.as_str());
            env.body = env.full_body.get(all.end()..).unwrap_or("");
        }
    }
    env
}

/// The envelope of one line (as syslog.split gives it, before the time is known).
pub fn split<'a>(p: &Patterns, line: &'a str) -> Envelope<'a> {
    if let Some(env) = clean(line) {
        return env;
    }
    if p.fast.is_match(line) {
        // _split_fast: fixed-width stamp, then host, tag and body separated by single spaces
        let rest = skip_chars(line, 16);
        let mut parts = rest.splitn(3, ' ');
        let host = parts.next();
        let tag = parts.next().map(|t| t.strip_suffix(':').unwrap_or(t));
        let body = parts.next().unwrap_or("");
        let (mut program, mut pid) = (None, None);
        if let Some(c) = tag.and_then(|t| p.tag.captures(t)) {
            program = c.get(1).map(|m| m.as_str());
            pid = c.get(2).map(|m| m.as_str());
        }
        let stamp = Stamp::Bsd {
            mon: chars(line, 3),
            day: chars(skip_chars(line, 4), 2).trim_start(),
            hms: chars(skip_chars(line, 7), 8),
        };
        let env = Envelope {
            stamp: Some(stamp),
            host,
            program,
            pid,
            full_body: body,
            body,
            lead: None,
        };
        return with_lead(p, env);
    }
    if let Some(c) = p.header.captures(line) {
        let g = |i: usize| c.get(i).map(|m| m.as_str());
        let stamp = match (g(1), g(2), g(3), g(4)) {
            (_, _, _, Some(iso)) => Some(Stamp::Iso(iso)),
            (Some(mon), Some(day), Some(hms), None) => Some(Stamp::Bsd { mon, day, hms }),
            _ => None,
        };
        let end = c.get(0).map_or(0, |m| m.end());
        let body = line.get(end..).unwrap_or("");
        if stamp.is_some() {
            let env = Envelope {
                stamp,
                host: g(5),
                program: g(6),
                pid: g(7),
                full_body: body,
                body,
                lead: None,
            };
            return with_lead(p, env);
        }
    }
    Envelope {
        stamp: None,
        host: None,
        program: None,
        pid: None,
        full_body: line,
        body: line,
        lead: None,
    }
}

// ---- time -------------------------------------------------------------------------------------

const MICROS_PER_SECOND: i64 = 1_000_000;

fn month_number(mon: &str) -> Option<i64> {
    let names = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    names.iter().position(|m| *m == mon).map(|i| i as i64 + 1)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// An ASCII-digit field of 1 to `max` digits as a number.
fn number(s: &str, min: usize, max: usize) -> Option<i64> {
    if s.len() < min || s.len() > max || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Microseconds since the epoch of a wall time, as chrono (Polars' strptime) accepts it:
/// a valid date, hour < 24, minute < 60, second <= 60 (a leap second reads as the next second).
pub fn micros(year: i64, month: i64, day: i64, h: i64, mi: i64, s: i64, frac: i64) -> Option<i64> {
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + h) * 60 + mi) * 60 * MICROS_PER_SECOND + s * MICROS_PER_SECOND + frac)
}

fn hms(s: &str) -> Option<(i64, i64, i64)> {
    let mut it = s.split(':');
    let h = number(it.next()?, 1, 2)?;
    let m = number(it.next()?, 2, 2)?;
    let sec = number(it.next()?, 2, 2)?;
    if it.next().is_some() {
        return None;
    }
    Some((h, m, sec))
}

/// An RFC 3164 stamp's month (None for a name that is no month).
pub fn bsd_month(mon: &str) -> Option<i64> {
    month_number(mon)
}

/// Naive local microseconds of an RFC 3164 stamp in `year` ("%Y %b %d %H:%M:%S").
pub fn bsd_local(year: i64, month: i64, day: &str, hms_text: &str) -> Option<i64> {
    if !(0..=9999).contains(&year) {
        return None;
    }
    let d = number(day, 1, 2)?;
    let (h, m, s) = hms(hms_text)?;
    micros(year, month, d, h, m, s, 0)
}

/// The last RFC 3164 stamp read and what it gave: a log writes some ten lines a second, so most
/// lines repeat the stamp of the line before, and the month name, the day and the calendar are
/// then not read again.
#[derive(Default)]
pub struct BsdCache {
    /// month name, day length, day, HH:MM:SS (None: no stamp yet, or one of other lengths)
    key: Option<[u8; 14]>,
    month: Option<i64>,
    day: Option<i64>,
    year: i64,
    local: Option<i64>,
}

fn stamp_key(mon: &str, day: &str, hms: &str) -> Option<[u8; 14]> {
    if mon.len() != 3 || day.len() > 2 || hms.len() != 8 {
        return None;
    }
    let mut key = [0u8; 14];
    key.get_mut(0..3)?.copy_from_slice(mon.as_bytes());
    *key.get_mut(3)? = day.len() as u8;
    key.get_mut(4..4 + day.len())?
        .copy_from_slice(day.as_bytes());
    key.get_mut(6..14)?.copy_from_slice(hms.as_bytes());
    Some(key)
}

impl BsdCache {
    /// Naive local microseconds of an RFC 3164 stamp, the year from `years` (which moves on with
    /// every stamp, repeated or not): bsd_month, bsd_day, years.year and bsd_local.
    pub fn local(&mut self, years: &mut Years, mon: &str, day: &str, hms: &str) -> Option<i64> {
        let key = stamp_key(mon, day, hms);
        let repeated = key.is_some() && key == self.key;
        if !repeated {
            self.month = bsd_month(mon);
            self.day = bsd_day(day);
        }
        let year = years.year(self.month, self.day);
        if repeated && year == self.year {
            return self.local;
        }
        let local = self.month.and_then(|m| bsd_local(year, m, day, hms));
        *self = BsdCache {
            key,
            month: self.month,
            day: self.day,
            year,
            local,
        };
        local
    }
}

/// An RFC 3164 day as Polars casts it to Int32 (for the year inference without a year).
pub fn bsd_day(day: &str) -> Option<i64> {
    if day.is_empty() || !day.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    day.parse().ok()
}

/// An ISO stamp as the Python side reads it: (UTC micros when it names an offset, naive local
/// micros when it names none). "%Y-%m-%d %H:%M:%S%.f%#z" and "%Y-%m-%d %H:%M:%S%.f".
pub fn iso(text: &str) -> (Option<i64>, Option<i64>) {
    let parse = || -> Option<(i64, Option<i64>)> {
        let b = text.as_bytes();
        // \d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d, ASCII digits (others fail the strptime)
        let year = number(text.get(0..4)?, 4, 4)?;
        let month = number(text.get(5..7)?, 2, 2)?;
        let day = number(text.get(8..10)?, 2, 2)?;
        let h = number(text.get(11..13)?, 2, 2)?;
        let mi = number(text.get(14..16)?, 2, 2)?;
        let s = number(text.get(17..19)?, 2, 2)?;
        if b.get(4) != Some(&b'-')
            || b.get(7) != Some(&b'-')
            || b.get(13) != Some(&b':')
            || b.get(16) != Some(&b':')
        {
            return None;
        }
        let mut i = 19;
        let mut frac = 0;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut j = start;
            while b.get(j).map_or(false, |c| c.is_ascii_digit()) {
                j += 1;
            }
            if j == start {
                return None;
            }
            let digits = text.get(start..j)?;
            // microseconds: the first six digits, padded
            let mut us = 0;
            for k in 0..6 {
                us = us * 10 + digits.as_bytes().get(k).map_or(0, |c| i64::from(c - b'0'));
            }
            frac = us;
            i = j;
        }
        let local = micros(year, month, day, h, mi, s, frac)?;
        let rest = text.get(i..)?;
        if rest.is_empty() {
            return Some((local, None));
        }
        let offset = if rest == "Z" {
            0
        } else {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest.get(1..)?.chars().filter(|c| *c != ':').collect();
            let oh = number(digits.get(0..2)?, 2, 2)?;
            let om = number(digits.get(2..4)?, 2, 2)?;
            if digits.len() != 4 || om > 59 || oh * 3600 + om * 60 >= 86400 {
                return None;
            }
            sign * (oh * 3600 + om * 60) * MICROS_PER_SECOND
        };
        Some((local, Some(local - offset)))
    };
    match parse() {
        Some((_, Some(utc))) => (Some(utc), None),
        Some((local, None)) => (None, Some(local)),
        None => (None, None),
    }
}

/// What the year inference carries between chunks (ctx.state["syslog"]).
pub struct YearState {
    pub last_month: i64,
    pub rollovers: i64,
}

/// The year of RFC 3164 lines: ctx.year plus the New Year rollovers counted so far, or
/// (no year given) from the reference date. Mirrors syslog._rfc3164_local.
pub enum Years {
    Given {
        year: i64,
        state: YearState,
        prev: i64,
        seen: bool,
    },
    Reference {
        year: i64,
        ordinal: i64,
    },
}

impl Years {
    /// The year of a line with month `m` (None: no valid month) and day `d`.
    pub fn year(&mut self, m: Option<i64>, d: Option<i64>) -> i64 {
        match self {
            Years::Given {
                year,
                state,
                prev,
                seen,
            } => {
                if let Some(m) = m {
                    let step = if *prev <= 0 {
                        0
                    } else if m - *prev < -6 {
                        1
                    } else if *prev == 1 && m == 12 {
                        -1
                    } else {
                        0
                    };
                    state.rollovers += step;
                    *prev = m;
                    state.last_month = m;
                    *seen = true;
                }
                *year + state.rollovers
            }
            Years::Reference { year, ordinal } => match (m, d) {
                (Some(m), Some(d)) if m * 100 + d > *ordinal => *year - 1,
                _ => *year,
            },
        }
    }
}

impl Years {
    /// The inference as a batch starts: ctx.year with the carried last month and rollovers, or
    /// (no year given) the reference date's year and month*100 + day + 1.
    pub fn carried(
        year: Option<i64>,
        reference_year: i64,
        reference_ordinal: i64,
        last_month: i64,
        rollovers: i64,
    ) -> Self {
        match year {
            Some(year) => Years::Given {
                year,
                state: YearState {
                    last_month,
                    rollovers,
                },
                prev: last_month,
                seen: false,
            },
            None => Years::Reference {
                year: reference_year,
                ordinal: reference_ordinal,
            },
        }
    }

    /// What the batch carries on: (a month was seen, the last month, the rollovers).
    pub fn outcome(&self) -> (bool, i64, i64) {
        match self {
            Years::Given { state, seen, .. } => (*seen, state.last_month, state.rollovers),
            Years::Reference { .. } => (false, 0, 0),
        }
    }
}
