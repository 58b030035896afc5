//! msgtrace._core: the parsers and the correlator in compiled code (issue 16).
//!
//! `parse_postfix` (here), `parse_exim` (exim.rs), `parse_sendmail` (sendmail.rs) and
//! `parse_exchange` (exchange.rs) take a batch's lines as Polars' string views and data buffers,
//! read every line once (the syslog envelope or the format's own, then the handlers) and return
//! the events as Arrow buffers, the rows of the unknown lines and the state to carry to the next
//! batch; ingest/formats/compiled.py assembles the frame. `correlate_events` (correlate_py.rs)
//! joins events into message rows, `message_trace_ids` (traceid.rs) hashes their ids.
//!
//! No line can make it panic on purpose (every slice is taken with .get()); should a bug do it,
//! the panic is caught and raised as a ValueError naming the line.

// map_or(false, ..) and `% 8 == 0` rather than is_some_and / is_multiple_of: the crate builds
// with Debian's rustc 1.63 (bookworm's), not only a current rustup toolchain
#![allow(clippy::unnecessary_map_or, clippy::manual_is_multiple_of)]

mod batch;
mod columns;
mod correlate;
mod correlate_py;
mod csvsplit;
mod exchange;
mod exim;
mod fxhash;
mod isotime;
mod lines;
mod postfix;
mod sendmail;
mod spam;
mod spare;
mod syslog;
mod traceid;

use fxhash::{FxMap, FxSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use columns::{BoolCol, F64Col, I64Col, StrCol};
use postfix::{Event, Line, Sessions};
use syslog::{Stamp, Years};

/// A fall-back hour line is in the second pass when this far behind the latest wall time before it.
const SECOND_PASS_MICROS: i64 = 10 * 60 * 1_000_000;
/// smtpd sessions carried to the next batch at most (postfix._OPEN_SESSIONS_KEPT)
const OPEN_SESSIONS_KEPT: usize = 10_000;

const STRING_FIELDS: [&str; 17] = [
    "host",
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
    "next_queue_id",
];

struct Out {
    line_no: I64Col,
    local: I64Col,
    utc: I64Col,
    second: BoolCol,
    strings: Vec<StrCol>,
    size: I64Col,
    nrcpt: I64Col,
    delay: F64Col,
}

impl Out {
    /// The rows from `head` on (events decided once the batch's lines were read: Exim's
    /// expansions, Sendmail's address lines) merged into the rows before them, which are in line
    /// order: each goes after the rows of its line and of the lines before it, so the whole is
    /// in line order, as a stable sort by line number would put it.
    fn merge_tail_by_line(&mut self, head: usize) {
        let lines = &self.line_no.values;
        let line = |r: usize| lines.get(r).copied().unwrap_or_default();
        if head >= lines.len() {
            return;
        }
        let mut tail: Vec<usize> = (head..lines.len()).collect();
        tail.sort_by_key(|&r| line(r)); // stable: ties keep their order
        let mut order = Vec::with_capacity(lines.len());
        let mut rest = tail.into_iter().peekable();
        for h in 0..head {
            while let Some(&r) = rest.peek() {
                if line(r) >= line(h) {
                    break;
                }
                order.push(r);
                rest.next();
            }
            order.push(h);
        }
        order.extend(rest);
        self.line_no.permute(&order);
        self.local.permute(&order);
        self.utc.permute(&order);
        self.second.permute(&order);
        for c in self.strings.iter_mut() {
            c.permute(&order);
        }
        self.size.permute(&order);
        self.nrcpt.permute(&order);
        self.delay.permute(&order);
    }

    fn new(rows: usize) -> Self {
        let strings = (0..STRING_FIELDS.len())
            .map(|_| StrCol::with_capacity(rows, rows * 8))
            .collect();
        Out {
            line_no: I64Col::default(),
            local: I64Col::default(),
            utc: I64Col::default(),
            second: BoolCol::default(),
            strings,
            size: I64Col::default(),
            nrcpt: I64Col::default(),
            delay: F64Col::default(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        line_no: i64,
        time: &Time,
        host: &str,
        program: &str,
        e: &Event,
    ) -> Result<(), String> {
        self.line_no.push(Some(line_no));
        self.local.push(time.local);
        self.utc.push(time.utc);
        self.second.push(time.second_pass);
        let values: [Option<&str>; 17] = [
            Some(host),
            Some(program),
            e.queue_id,
            Some(e.kind),
            e.status,
            e.sender,
            e.recipient,
            e.orig_recipient,
            e.message_id,
            e.subject.as_deref(),
            e.client_host,
            e.client_ip.as_deref(),
            e.relay,
            e.to_ip.as_deref(),
            e.dsn,
            e.detail.as_deref(),
            e.next_queue_id,
        ];
        for (col, v) in self.strings.iter_mut().zip(values) {
            if !col.push(v) {
                return Err(
                    "the batch's events hold more than 4 GiB of text: parse it in smaller batches"
                        .to_string(),
                );
            }
        }
        self.size.push(e.size);
        self.nrcpt.push(e.nrcpt);
        self.delay.push(e.delay);
        Ok(())
    }
}

struct Time {
    local: Option<i64>,
    utc: Option<i64>,
    second_pass: bool,
}

/// A carried smtpd session: host, program, pid, queue id (each may be null in a checkpoint).
type OpenSession<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

/// What the batch carries in and out (ParseContext.state["syslog"] and ["postfix"]).
struct Carried {
    year: Option<i64>,
    reference_year: i64,
    reference_ordinal: i64,
    last_month: i64,
    rollovers: i64,
    max_local: Option<i64>,
    sessions: Vec<[Option<String>; 4]>,
}

struct Parsed {
    out: Out,
    unknown: Vec<i64>,
    months_seen: bool,
    last_month: i64,
    rollovers: i64,
    max_local: Option<i64>,
    /// None: no smtpd client=/disconnect line in the batch, the carried sessions stay as they were
    sessions: Option<Vec<[Option<String>; 4]>>,
}

thread_local! {
    /// Compiled once a thread, not once a batch (as exim.rs's): the compile and the regexes'
    /// warmed-up lazy DFAs were otherwise paid again by every batch.
    static PATTERNS: (postfix::Patterns, syslog::Patterns) =
        (postfix::Patterns::new(), syslog::Patterns::new());
}

fn parse(
    views: &[u8],
    buffers: &[&[u8]],
    line_nos: &[i64],
    carried: &Carried,
    at: &AtomicUsize,
) -> Result<Parsed, String> {
    PATTERNS.with(|(p, env)| parse_with(p, env, views, buffers, line_nos, carried, at))
}

fn parse_with(
    patterns: &postfix::Patterns,
    env_patterns: &syslog::Patterns,
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
    let mut parser = postfix::Parser::new(patterns);
    let mut out = spare::columns(rows / 2);
    let mut unknown = Vec::new();
    let mut years = Years::carried(
        carried.year,
        carried.reference_year,
        carried.reference_ordinal,
        carried.last_month,
        carried.rollovers,
    );
    let mut stamps = syslog::BsdCache::default();
    let mut running = carried.max_local;
    // the carried sessions first (their client= was in an earlier batch)
    let carried_keys: Vec<OpenSession> = carried
        .sessions
        .iter()
        .map(|[h, p, pid, q]| (h.as_deref(), p.as_deref(), pid.as_deref(), q.as_deref()))
        .collect();
    let mut sessions = Sessions {
        last: FxMap::default(),
        lines: Vec::new(),
    };
    for (h, p, pid, q) in &carried_keys {
        if let (Some(h), Some(p)) = (h, p) {
            sessions.last.insert((h, p, *pid), *q);
        }
    }
    let mut events: Vec<Event> = Vec::with_capacity(4); // one line's, reused line after line
    let lines = columns::Lines::new(views, buffers);
    for row in 0..rows {
        at.store(row, Ordering::Relaxed);
        let line = lines.get(row).ok_or_else(|| {
            format!("line {row}: its view points outside the buffers, or its text is not UTF-8")
        })?;
        let line_no = line_nos.get(row).copied().unwrap_or_default();
        let env = syslog::split(env_patterns, line);
        let (utc, local) = match env.stamp {
            Some(Stamp::Bsd { mon, day, hms }) => (None, stamps.local(&mut years, mon, day, hms)),
            Some(Stamp::Iso(iso)) => syslog::iso(iso),
            None => (None, None),
        };
        let second_pass = match (running, local) {
            (Some(r), Some(l)) => r - l >= SECOND_PASS_MICROS,
            _ => false,
        };
        if let Some(l) = local {
            running = Some(running.map_or(l, |r| r.max(l)));
        }
        let ok = env.stamp.is_some() && (utc.is_some() || local.is_some());
        if !ok {
            if !line.trim().is_empty() {
                unknown.push(row as i64);
            }
            continue;
        }
        let (host, program) = match (env.host, env.program) {
            (Some(h), Some(p)) => (h, p),
            _ => continue,
        };
        let time = Time {
            local,
            utc,
            second_pass,
        };
        if program.starts_with("postfix") {
            let l = Line {
                host,
                program,
                pid: env.pid,
                full_body: env.full_body,
                body: env.body,
                lead: env.lead,
            };
            events.clear();
            let unknown_line = parser.postfix(&l, &mut sessions, &mut events);
            for e in &events {
                out.push(line_no, &time, host, program, e)?;
            }
            if unknown_line {
                unknown.push(row as i64);
            }
        } else if program.starts_with("amavis") {
            events.clear();
            parser.amavis(env.body, &mut events);
            for e in &events {
                out.push(line_no, &time, host, program, e)?;
            }
        }
    }
    at.store(rows, Ordering::Relaxed);
    let sessions_out = if sessions.lines.is_empty() {
        None
    } else {
        Some(still_open(&carried_keys, &sessions))
    };
    let (months_seen, last_month, rollovers) = years.outcome();
    Ok(Parsed {
        out,
        unknown,
        months_seen,
        last_month,
        rollovers,
        max_local: running,
        sessions: sessions_out,
    })
}

/// postfix._still_open: the sessions whose last line so far is their client=: the carried ones
/// that logged nothing in this batch, then those of the batch's last OPEN_SESSIONS_KEPT lines
/// (in the order of their first line there), at most OPEN_SESSIONS_KEPT of them.
fn still_open(carried: &[OpenSession], s: &Sessions) -> Vec<[Option<String>; 4]> {
    let seen: FxSet<(&str, &str, Option<&str>)> = s.lines.iter().map(|(k, _)| *k).collect();
    let mut out: Vec<[Option<String>; 4]> = Vec::new();
    for (h, p, pid, q) in carried {
        let quiet = match (h, p) {
            (Some(h), Some(p)) => !seen.contains(&(*h, *p, *pid)),
            _ => true, // a key with a null host or program matches no line
        };
        if quiet {
            out.push([
                h.map(str::to_string),
                p.map(str::to_string),
                pid.map(str::to_string),
                q.map(str::to_string),
            ]);
        }
    }
    let tail = s
        .lines
        .get(s.lines.len().saturating_sub(OPEN_SESSIONS_KEPT)..)
        .unwrap_or(&[]);
    let mut order: Vec<(&str, &str, Option<&str>)> = Vec::new();
    let mut last: FxMap<(&str, &str, Option<&str>), Option<&str>> = FxMap::default();
    for (k, q) in tail {
        if last.insert(*k, *q).is_none() {
            order.push(*k);
        }
    }
    for k in order {
        if let Some(Some(q)) = last.get(&k) {
            out.push([
                Some(k.0.to_string()),
                Some(k.1.to_string()),
                k.2.map(str::to_string),
                Some(q.to_string()),
            ]);
        }
    }
    let cut = out.len().saturating_sub(OPEN_SESSIONS_KEPT);
    out.split_off(cut)
}

fn le_i64(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            i64::from_le_bytes(a)
        })
        .collect()
}

/// The data buffers of the lines as handed over (ingest/corebuffers.py line_windows): each a
/// bytes object, or (bytes, offset, length), a window of the block the reader read, read there.
pub(crate) fn data_buffers(buffers: &PyList) -> PyResult<Vec<&[u8]>> {
    buffers
        .iter()
        .map(|b| {
            if let Ok(bytes) = b.downcast::<PyBytes>() {
                return Ok(bytes.as_bytes());
            }
            let (block, offset, len): (&PyBytes, usize, usize) = b.extract()?;
            offset
                .checked_add(len)
                .and_then(|end| block.as_bytes().get(offset..end))
                .ok_or_else(|| {
                    pyo3::exceptions::PyValueError::new_err(format!(
                        "a data buffer's window {offset}+{len} passes its block's {} bytes",
                        block.as_bytes().len()
                    ))
                })
        })
        .collect()
}

/// A string column as the Python side assembles it (ingest/corebuffers.py frame), for every
/// pyfunction (the correlator's): text_column, through a padded copy of the views and validity.
pub(crate) fn string_column<'py>(py: Python<'py>, name: &str, c: &StrCol) -> &'py PyTuple {
    let mut views = vec![0u8; c.len() * 16];
    c.views_into(&mut views);
    let mut bits = vec![0u8; if c.nulls() > 0 { (c.len() + 7) / 8 } else { 0 }];
    c.bits_into(&mut bits);
    column_tuple(
        py,
        name,
        c,
        PyBytes::new(py, &bits),
        PyBytes::new(py, &views),
    )
}

/// string_column for the parsers' event columns: padded in place (only the null rows after
/// the last text are written), then copied once into the bytes objects.
pub(crate) fn text_column<'py>(py: Python<'py>, name: &str, c: &mut StrCol) -> &'py PyTuple {
    c.pad();
    let bits = PyBytes::new(py, if c.nulls() > 0 { c.bits() } else { b"" });
    column_tuple(py, name, c, bits, PyBytes::new(py, c.views()))
}

/// (name, "str", len, null_count, validity, views, data)
fn column_tuple<'py>(
    py: Python<'py>,
    name: &str,
    c: &StrCol,
    bits: &PyBytes,
    views: &PyBytes,
) -> &'py PyTuple {
    PyTuple::new(
        py,
        [
            name.into_py(py),
            "str".into_py(py),
            c.len().into_py(py),
            c.nulls().into_py(py),
            bits.into_py(py),
            views.into_py(py),
            PyBytes::new(py, c.data()).into_py(py),
        ],
    )
}

fn fixed_column<'py>(
    py: Python<'py>,
    name: &str,
    kind: &str,
    valid: &columns::Validity,
    values: &[u8],
) -> &'py PyTuple {
    PyTuple::new(
        py,
        [
            name.into_py(py),
            kind.into_py(py),
            valid.len().into_py(py),
            valid.nulls().into_py(py),
            PyBytes::new(py, valid.bytes()).into_py(py),
            PyBytes::new(py, values).into_py(py),
            py.None(),
        ],
    )
}

/// Runs one batch's parse through batch::guarded (the GIL released; its input error, or the panic
/// of a bug, the ValueError naming the line), timed: batch_result reports parse_seconds.
fn run_batch<T: Send>(
    py: Python<'_>,
    parser: &str,
    line_nos: &[i64],
    f: impl FnOnce(&AtomicUsize) -> Result<T, String> + Send,
) -> PyResult<(T, f64)> {
    let started = std::time::Instant::now();
    let parsed = batch::guarded(py, parser, line_nos, f)?;
    Ok((parsed, started.elapsed().as_secs_f64()))
}

/// What every parser returns of a batch: rows, parse_seconds, columns (the events' columns as
/// (name, kind, len, null_count, validity, values or views, data) tuples) and unknown (the
/// unknown lines' rows as little-endian int64); the caller adds the state it carries.
fn batch_result<'py>(
    py: Python<'py>,
    o: &mut Out,
    unknown: &[i64],
    parse_seconds: f64,
) -> PyResult<&'py PyDict> {
    let out = PyDict::new(py);
    out.set_item("rows", o.line_no.values.len())?;
    out.set_item("parse_seconds", parse_seconds)?;
    out.set_item("columns", batch::columns(py, o)?)?;
    let unknown: Vec<u8> = unknown.iter().flat_map(|r| r.to_le_bytes()).collect();
    out.set_item("unknown", PyBytes::new(py, &unknown))?;
    Ok(out)
}

/// Parse a batch of Postfix syslog lines.
///
/// views, buffers: the lines as an Arrow string_view column (16 bytes a line, and the data
/// buffers the long ones point into: what Polars hands out without a copy); line_nos: little-endian int64 line numbers; state: a dict with year (int or None),
/// reference_year, reference_ordinal, last_month, rollovers, max_local (naive local microseconds
/// or None) and sessions (list of [host, program, pid, queue_id]).
/// Returns a dict: columns (name, kind, len, null_count, validity, values or views, data),
/// unknown (int64 rows), and the state keys updated.
#[pyfunction]
fn parse_postfix<'py>(
    py: Python<'py>,
    views: &PyBytes,
    buffers: &PyList,
    line_nos: &PyBytes,
    state: &PyDict,
) -> PyResult<&'py PyDict> {
    let get = |k: &str| state.get_item(k);
    let int = |k: &str, default: i64| -> PyResult<i64> {
        match get(k) {
            Some(v) if !v.is_none() => v.extract(),
            _ => Ok(default),
        }
    };
    let sessions: Vec<[Option<String>; 4]> = match get("sessions") {
        Some(v) if !v.is_none() => {
            let list: &PyList = v.downcast()?;
            let mut out = Vec::with_capacity(list.len());
            for item in list.iter() {
                let row: Vec<Option<String>> = item.extract()?;
                let mut it = row.into_iter();
                out.push([
                    it.next().flatten(),
                    it.next().flatten(),
                    it.next().flatten(),
                    it.next().flatten(),
                ]);
            }
            out
        }
        _ => Vec::new(),
    };
    let carried = Carried {
        year: match get("year") {
            Some(v) if !v.is_none() => Some(v.extract()?),
            _ => None,
        },
        reference_year: int("reference_year", 1970)?,
        reference_ordinal: int("reference_ordinal", 102)?,
        last_month: int("last_month", 0)?,
        rollovers: int("rollovers", 0)?,
        max_local: match get("max_local") {
            Some(v) if !v.is_none() => Some(v.extract()?),
            _ => None,
        },
        sessions,
    };
    let buffers = crate::data_buffers(buffers)?;
    let views = views.as_bytes();
    let line_nos = le_i64(line_nos.as_bytes());
    let (parsed, parse_seconds) = run_batch(py, "Postfix", &line_nos, |at| {
        parse(views, &buffers, &line_nos, &carried, at)
    })?;
    let mut parsed = parsed;
    let out = batch_result(py, &mut parsed.out, &parsed.unknown, parse_seconds)?;
    out.set_item("months_seen", parsed.months_seen)?;
    out.set_item("last_month", parsed.last_month)?;
    out.set_item("rollovers", parsed.rollovers)?;
    out.set_item("max_local", parsed.max_local)?;
    match parsed.sessions {
        Some(s) => {
            let list = PyList::empty(py);
            for row in s {
                list.append(PyList::new(py, row.iter().map(|v| v.as_deref())))?;
            }
            out.set_item("sessions", list)?
        }
        None => out.set_item("sessions", py.None())?,
    }
    spare::keep(parsed.out);
    Ok(out)
}

/// Parse a batch of Exim mainlog lines (bare, syslog- or journald-prefixed): the arguments and
/// the result as parse_postfix's, the state with exim_max_local, host and aliases (rust/src/exim.rs).
#[pyfunction]
fn parse_exim<'py>(
    py: Python<'py>,
    views: &PyBytes,
    buffers: &PyList,
    line_nos: &PyBytes,
    state: &PyDict,
) -> PyResult<&'py PyDict> {
    exim::py_parse(py, views, buffers, line_nos, state)
}

#[pymodule]
fn _core(_py: Python<'_>, m: &PyModule) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parse_postfix, m)?)?;
    m.add_function(wrap_pyfunction!(correlate_py::correlate_events, m)?)?;
    m.add_function(wrap_pyfunction!(correlate_py::message_trace_ids, m)?)?;
    m.add_function(wrap_pyfunction!(exchange::parse_exchange, m)?)?;
    m.add_function(wrap_pyfunction!(sendmail::parse_sendmail, m)?)?;
    m.add_function(wrap_pyfunction!(parse_exim, m)?)?;
    m.add_function(wrap_pyfunction!(lines::split_lines, m)?)?;
    keyset::register(m)?;
    Ok(())
}

mod keyset;
