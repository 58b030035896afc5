//! Times as Polars' `str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC", strict=False)` reads
//! them (chrono's parser, which it runs), for the Exchange parser: the event's date-time and the
//! origin time message-info starts with. Microseconds since the epoch; None where Polars gives null.

/// chrono's scan::number: 1 to `max` ASCII digits (what is left, the value).
fn number(s: &str, max: usize) -> Option<(&str, i64)> {
    let b = s.as_bytes();
    let mut n: i64 = 0;
    let mut i = 0;
    while i < max {
        match b.get(i) {
            Some(c) if c.is_ascii_digit() => {
                n = n.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
                i += 1;
            }
            _ => break,
        }
    }
    if i == 0 {
        return None;
    }
    Some((s.get(i..)?, n))
}

/// Microseconds of `%Y-%m-%dT%H:%M:%S%.fZ` as Polars' str.to_datetime reads it (chrono's parser):
/// blanks before each number, a year of up to 4 digits or signed of any length, 1 or 2 digits
/// elsewhere, an optional fraction (truncated past 9 digits), a leap second as the next second.
pub fn stamp(s: &str) -> Option<i64> {
    let s = s.trim_start();
    let (s, year) = if let Some(r) = s.strip_prefix('-') {
        let (r, v) = number(r, usize::MAX)?;
        (r, -v)
    } else if let Some(r) = s.strip_prefix('+') {
        number(r, usize::MAX)?
    } else {
        number(s, 4)?
    };
    let (s, month) = number(s.strip_prefix('-')?.trim_start(), 2)?;
    let (s, day) = number(s.strip_prefix('-')?.trim_start(), 2)?;
    let (s, hour) = number(s.strip_prefix('T')?.trim_start(), 2)?;
    let (s, minute) = number(s.strip_prefix(':')?.trim_start(), 2)?;
    let (s, second) = number(s.strip_prefix(':')?.trim_start(), 2)?;
    let (s, nanos) = match s.strip_prefix('.') {
        Some(r) => {
            let (rest, v) = number(r, 9)?;
            let digits = r.len() - rest.len();
            let scaled = v * 10i64.pow(9 - digits as u32);
            (
                rest.trim_start_matches(|c: char| c.is_ascii_digit()),
                scaled,
            )
        }
        None => (s, 0),
    };
    if s != "Z" {
        return None;
    }
    // chrono's date range
    if !(-262_144..=262_143).contains(&year) {
        return None;
    }
    crate::syslog::micros(year, month, day, hour, minute, second, nanos / 1000)
}

/// The event time: a stamp whose year a datetime holds (the reference's is_between(1, 9999)).
pub fn event_time(s: &str, bounds: (i64, i64)) -> Option<i64> {
    stamp(s).filter(|t| (bounds.0..bounds.1).contains(t))
}

/// The origin time message-info starts with (_ISO): `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`.
/// Only ASCII digits: a Unicode digit the pattern takes makes the time unreadable all the same.
pub fn origin(info: &str) -> Option<i64> {
    let b = info.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() {
        return None;
    }
    for (i, want) in shape.iter().enumerate() {
        let c = *b.get(i)?;
        let ok = if *want == b'd' {
            c.is_ascii_digit()
        } else {
            c == *want
        };
        if !ok {
            return None;
        }
    }
    let mut end = shape.len();
    if b.get(end) == Some(&b'.') {
        let digits = b
            .get(end + 1..)?
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > 0 && b.get(end + 1 + digits) == Some(&b'Z') {
            end += 1 + digits;
        }
    }
    if b.get(end) != Some(&b'Z') {
        return None;
    }
    stamp(info.get(..=end)?)
}
