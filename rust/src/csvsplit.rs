//! One line of a CSV log split into fields, the two ways tests/polars_exchange.py (the reference)
//! does it: as Polars' CSV reader reads it (its fast path), and as its per-line regex does (the
//! fallback when one quote derails the reader, or when no header names the columns).
//!
//! Polars' reader, for one line of the batch joined back together (each line ends in `\n`):
//! - a field that starts with `"` runs to the first `,` or newline after an even number of
//!   quotes (counted from its opening one); any other field runs to the first `,` or newline;
//! - a field kept (projected) loses one trailing `\r`; a quoted one must then end in `"` (else the
//!   reader fails), and inside it each quote not preceded by a dropped one is dropped;
//!   an empty unquoted field is null, `""` the empty string;
//! - after the last projected field the rest of the line is skipped up to the first newline
//!   outside quotes, counted from there;
//! - the rows are counted by the parity of all quotes: a line with an odd number of them makes
//!   the counts disagree, and the reader fails (or returns fewer rows).
//!
//! The reference gives the whole section to the regex when the reader fails on any line, so
//! `polars_line` says per line whether the reader would get through it.

use std::borrow::Cow;

/// Which field positions are read, and where their values go.
pub struct Projection {
    /// position in the line -> slot in the row (None: not read)
    slots: Vec<Option<usize>>,
    /// the last position read
    last: usize,
    /// how many names the layout has (the reader wants at least as many fields on its first row)
    pub width: usize,
}

impl Projection {
    /// `slot_of(name)`: the slot a column name fills, if it is read; the first of repeated names wins.
    pub fn new<S: AsRef<str>>(names: &[S], slot_of: impl Fn(&str) -> Option<usize>) -> Self {
        let mut slots = vec![None; names.len()];
        let mut taken: Vec<usize> = Vec::new();
        let mut last = 0;
        for (i, n) in names.iter().enumerate() {
            if let Some(s) = slot_of(n.as_ref()) {
                if !taken.contains(&s) {
                    taken.push(s);
                    if let Some(x) = slots.get_mut(i) {
                        *x = Some(s);
                    }
                    last = i;
                }
            }
        }
        Projection {
            slots,
            last,
            width: names.len(),
        }
    }

    /// No column of the layout is one the parser reads.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// The slot the field at `position` fills, if it is read.
    pub fn slot_at(&self, position: usize) -> Option<usize> {
        self.slots.get(position).copied().flatten()
    }
}

/// The field starting at `pos` as the reader's splitter finds it: its end (the position of the
/// delimiter, or `b.len()` for the line's own end), whether it is quoted, and whether it is a
/// quoted field still open at the end of the line (the reader runs on into what follows).
fn reader_field(b: &[u8], pos: usize) -> (usize, bool, bool) {
    if b.get(pos) == Some(&b'"') {
        let mut in_field = false;
        let mut i = pos;
        while let Some(&c) = b.get(i) {
            if c == b'"' {
                in_field = !in_field;
            } else if !in_field && (c == b',' || c == b'\n') {
                return (i, true, false);
            }
            i += 1;
        }
        (b.len(), true, in_field)
    } else {
        let rest = b.get(pos..).unwrap_or(&[]);
        let end = memchr::memchr2(b',', b'\n', rest).map_or(b.len(), |j| pos + j);
        (end, false, false)
    }
}

/// Polars' escape_field: the text inside the quotes, each quote not following a dropped one dropped.
fn unescape_reader(f: &str) -> Cow<'_, str> {
    let inner = f.get(1..f.len().saturating_sub(1)).unwrap_or("");
    if !inner.contains('"') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut prev_quote = false;
    for c in inner.chars() {
        if c == '"' {
            if prev_quote {
                out.push('"');
            }
            prev_quote = !prev_quote;
        } else {
            prev_quote = false;
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether the reader's row count agrees on this line: an even number of quotes and no newline
/// inside the line outside quotes (the parity of all quotes is what the reader counts rows by).
fn parity_ok(b: &[u8]) -> bool {
    skip_rest_ok(b, false)
}

/// How many fields the reader's splitter finds on a line (the first row's count is checked
/// against the layout's width): it splits the line alone, so a quoted field still open at its
/// end is its last field.
pub fn reader_field_count(line: &str) -> usize {
    let b = line.as_bytes();
    let mut pos = 0;
    let mut n = 0;
    loop {
        let (end, _, _) = reader_field(b, pos);
        n += 1;
        if end >= b.len() || b.get(end) == Some(&b'\n') {
            return n;
        }
        pos = end + 1;
    }
}

/// The projected fields of one line as Polars' CSV reader reads them, into `out` (slots not
/// filled stay None); false when the reader would fail on the line or run it into another row.
/// `last`: the line ends the reader's buffer, where a field or a skip that runs past the line
/// just ends (mid-buffer it would swallow the next line).
pub fn polars_line<'a>(
    line: &'a str,
    p: &Projection,
    last: bool,
    out: &mut [Option<Cow<'a, str>>],
) -> bool {
    let b = line.as_bytes();
    let plain = memchr::memchr2(b'"', b'\n', b).is_none();
    if plain {
        return plain_line(line, p, out);
    }
    if !parity_ok(b) {
        return false;
    }
    let mut pos = 0;
    let mut idx = 0;
    loop {
        let (end, quoted, open) = reader_field(b, pos);
        let slot = p.slot_at(idx);
        if open {
            // the field takes the rest of the buffer, its final newline too: read, it is not
            // properly escaped; skipped, the row ends with it
            return last && slot.is_none();
        }
        let at_eol = end >= b.len();
        if !at_eol && b.get(end) == Some(&b'\n') {
            return false; // a newline inside the line ends the row early
        }
        if let Some(slot) = slot {
            let mut f = line.get(pos..end).unwrap_or("");
            if let Some(s) = f.strip_suffix('\r') {
                f = s;
            }
            let value = if quoted {
                if f.len() < 2 || !f.ends_with('"') {
                    return false; // "Field is not properly escaped": the reader fails
                }
                Some(unescape_reader(f))
            } else if f.is_empty() {
                None
            } else {
                Some(Cow::Borrowed(f))
            };
            if let Some(o) = out.get_mut(slot) {
                *o = value;
            }
        }
        if at_eol {
            return true;
        }
        if idx == p.last {
            // the rest is skipped up to the first newline outside quotes counted from here
            return plain || skip_rest_ok(b.get(end..).unwrap_or(&[]), last);
        }
        pos = end + 1;
        idx += 1;
    }
}

/// polars_line for a line without quotes or newlines (nearly every line): fields end at commas.
fn plain_line<'a>(line: &'a str, p: &Projection, out: &mut [Option<Cow<'a, str>>]) -> bool {
    let b = line.as_bytes();
    let mut commas = memchr::memchr_iter(b',', b);
    let mut start = 0;
    let mut idx = 0;
    loop {
        let end = commas.next().unwrap_or(b.len());
        if let Some(slot) = p.slot_at(idx) {
            let f = line.get(start..end).unwrap_or("");
            let f = f.strip_suffix('\r').unwrap_or(f);
            if let Some(o) = out.get_mut(slot) {
                *o = if f.is_empty() {
                    None
                } else {
                    Some(Cow::Borrowed(f))
                };
            }
        }
        if end >= b.len() || idx == p.last {
            return true;
        }
        start = end + 1;
        idx += 1;
    }
}

/// The rest of a line after the last field read reaches the line's end outside quotes (counted
/// from its first byte), or runs past it at the end of the buffer.
fn skip_rest_ok(rest: &[u8], last: bool) -> bool {
    let mut odd = false;
    for &c in rest {
        if c == b'"' {
            odd = !odd;
        } else if c == b'\n' && !odd {
            return false;
        }
    }
    !odd || last
}

/// The fields of one line as the reference's regex `(?:"(?:[^"]|"")*"|[^,"][^,]*|)(?:,|$)` finds
/// them (each without its delimiter) into `spans`, when the matches cover the whole line; the
/// width counts an empty last field after a final comma. None: some text lies between matches.
pub fn regex_fields(text: &str, spans: &mut Vec<(usize, usize)>) -> Option<usize> {
    spans.clear();
    let b = text.as_bytes();
    let mut pos = 0;
    let mut last_comma = false;
    if b.is_empty() {
        spans.push((0, 0));
        return Some(1);
    }
    while pos < b.len() {
        let (end, next) = match b.get(pos) {
            Some(b'"') => {
                let mut i = pos + 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
                // the closing quote must be followed by the delimiter or the end
                match b.get(i + 1) {
                    None => (i + 1, i + 1),
                    Some(b',') => (i + 1, i + 2),
                    Some(_) => return None,
                }
            }
            Some(b',') => (pos, pos + 1),
            _ => match memchr::memchr(b',', b.get(pos..).unwrap_or(&[])) {
                Some(j) => (pos + j, pos + j + 1),
                None => (b.len(), b.len()),
            },
        };
        last_comma = next > end;
        spans.push((pos, end));
        pos = next;
    }
    Some(spans.len() + usize::from(last_comma))
}

/// A field the regex matched, as the reference's _unquote makes it: quotes off and `""`
/// undoubled; the empty string is null.
pub fn unquote_regex(f: &str) -> Option<Cow<'_, str>> {
    let v = if f.len() >= 2 && f.starts_with('"') && f.ends_with('"') {
        let inner = f.get(1..f.len() - 1).unwrap_or("");
        if inner.contains("\"\"") {
            Cow::Owned(inner.replace("\"\"", "\""))
        } else {
            Cow::Borrowed(inner)
        }
    } else {
        Cow::Borrowed(f)
    };
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}
