//! What a compiled parser of a syslog format does around its handlers, whatever the format: the
//! carried state in and out (ctx.state["syslog"]: the year's rollovers, the latest wall time for
//! the DST fall-back hour), the time of each line, the event columns handed to Python, and a
//! panic turned into a ValueError naming the line. parse_sendmail (sendmail.rs) uses these;
//! parse_postfix and parse_exim (lib.rs's batch_result) take the event columns from here and do
//! the rest inline.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::columns::{NumCol, Number};
use crate::syslog::{self, BsdCache, Stamp, YearState, Years};
use crate::{text_column, Out, Time, SECOND_PASS_MICROS, STRING_FIELDS};

/// ctx.state["syslog"] and the context as the batch starts (see postfix.py's _state_in).
pub struct SyslogIn {
    year: Option<i64>,
    reference_year: i64,
    reference_ordinal: i64,
    last_month: i64,
    rollovers: i64,
    max_local: Option<i64>,
}

impl SyslogIn {
    /// From the state dict: year (int or None), reference_year, reference_ordinal, last_month,
    /// rollovers, max_local (naive local microseconds or None).
    pub fn from_dict(state: &PyDict) -> PyResult<Self> {
        let int = |k: &str, default: i64| -> PyResult<i64> {
            match state.get_item(k) {
                Some(v) if !v.is_none() => v.extract(),
                _ => Ok(default),
            }
        };
        let maybe = |k: &str| -> PyResult<Option<i64>> {
            match state.get_item(k) {
                Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
                _ => Ok(None),
            }
        };
        Ok(SyslogIn {
            year: maybe("year")?,
            reference_year: int("reference_year", 1970)?,
            reference_ordinal: int("reference_ordinal", 102)?,
            last_month: int("last_month", 0)?,
            rollovers: int("rollovers", 0)?,
            max_local: maybe("max_local")?,
        })
    }
}

/// The year inference and the latest wall time, line after line.
pub struct Clock {
    years: Years,
    stamps: BsdCache,
    running: Option<i64>,
}

/// What the batch carries out: set under ctx.state["syslog"] by the Python side.
pub struct SyslogOut {
    months_seen: bool,
    last_month: i64,
    rollovers: i64,
    max_local: Option<i64>,
}

impl Clock {
    pub fn new(c: &SyslogIn) -> Self {
        let years = match c.year {
            Some(year) => Years::Given {
                year,
                state: YearState {
                    last_month: c.last_month,
                    rollovers: c.rollovers,
                },
                prev: c.last_month,
                seen: false,
            },
            None => Years::Reference {
                year: c.reference_year,
                ordinal: c.reference_ordinal,
            },
        };
        Clock {
            years,
            stamps: BsdCache::default(),
            running: c.max_local,
        }
    }

    /// The time of a line with this stamp (every line's stamp, in line order: the year and the
    /// latest wall time move on with each); None when the line is no syslog line (no stamp, or
    /// one that names no valid time).
    pub fn time(&mut self, stamp: Option<Stamp>) -> Option<Time> {
        let (utc, local) = match stamp {
            Some(Stamp::Bsd { mon, day, hms }) => {
                (None, self.stamps.local(&mut self.years, mon, day, hms))
            }
            Some(Stamp::Iso(iso)) => syslog::iso(iso),
            None => (None, None),
        };
        let second_pass = match (self.running, local) {
            (Some(r), Some(l)) => r - l >= SECOND_PASS_MICROS,
            _ => false,
        };
        if let Some(l) = local {
            self.running = Some(self.running.map_or(l, |r| r.max(l)));
        }
        if stamp.is_some() && (utc.is_some() || local.is_some()) {
            Some(Time {
                local,
                utc,
                second_pass,
            })
        } else {
            None
        }
    }

    pub fn state(&self) -> SyslogOut {
        let (months_seen, last_month, rollovers) = match &self.years {
            Years::Given { state, seen, .. } => (*seen, state.last_month, state.rollovers),
            Years::Reference { .. } => (false, 0, 0),
        };
        SyslogOut {
            months_seen,
            last_month,
            rollovers,
            max_local: self.running,
        }
    }
}

/// The carried state's keys in the result dict (what postfix.py's _state_out reads).
pub fn put_state(out: &PyDict, s: &SyslogOut) -> PyResult<()> {
    out.set_item("months_seen", s.months_seen)?;
    out.set_item("last_month", s.last_month)?;
    out.set_item("rollovers", s.rollovers)?;
    out.set_item("max_local", s.max_local)?;
    Ok(())
}

/// Little-endian int64 bytes of a list of numbers (row numbers, times).
pub fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The event columns as (name, kind, len, null_count, validity, values or views, data) tuples.
pub fn columns<'py>(py: Python<'py>, o: &mut Out) -> PyResult<&'py PyList> {
    let cols = PyList::empty(py);
    let fixed = [
        ("line_no", &o.line_no),
        ("_local", &o.local),
        ("_utc", &o.utc),
    ];
    for (name, c) in fixed {
        cols.append(number_column(py, name, "i64", c)?)?;
    }
    cols.append(PyTuple::new(
        py,
        [
            "_second".into_py(py),
            "bool".into_py(py),
            o.second.bits.len().into_py(py),
            0usize.into_py(py),
            PyBytes::new(py, b"").into_py(py),
            PyBytes::new(py, o.second.bits.bytes()).into_py(py),
            py.None(),
        ],
    ))?;
    for (name, c) in STRING_FIELDS.iter().zip(o.strings.iter_mut()) {
        cols.append(text_column(py, name, c))?;
    }
    for (name, c) in [("size", &o.size), ("nrcpt", &o.nrcpt)] {
        cols.append(number_column(py, name, "i64", c)?)?;
    }
    cols.append(number_column(py, "delay", "f64", &o.delay)?)?;
    Ok(cols)
}

/// A number's 8 little-endian bytes, written straight into the Python bytes.
pub trait Le8: Number {
    fn le8(self) -> [u8; 8];
}

impl Le8 for i64 {
    fn le8(self) -> [u8; 8] {
        self.to_le_bytes()
    }
}

impl Le8 for f64 {
    fn le8(self) -> [u8; 8] {
        self.to_le_bytes()
    }
}

/// fixed_column of a number column, its values written into the bytes object itself: not first
/// into a fresh Vec (new pages to fault in, every batch) that is then copied.
fn number_column<'py, T: Le8>(
    py: Python<'py>,
    name: &str,
    kind: &str,
    c: &NumCol<T>,
) -> PyResult<&'py PyTuple> {
    let values = PyBytes::new_with(py, c.values.len() * 8, |b| {
        for (dst, v) in b.chunks_exact_mut(8).zip(&c.values) {
            dst.copy_from_slice(&v.le8());
        }
        Ok(())
    })?;
    Ok(PyTuple::new(
        py,
        [
            name.into_py(py),
            kind.into_py(py),
            c.valid.len().into_py(py),
            c.valid.nulls().into_py(py),
            PyBytes::new(py, c.valid.bytes()).into_py(py),
            values.into_py(py),
            py.None(),
        ],
    ))
}

/// Runs `parse` without the GIL, a panic caught: an Err or a panic becomes a ValueError that
/// names the format and (for a panic) the line it was reading (`at`, the row it stores).
pub fn guarded<T, F>(py: Python<'_>, format: &str, line_nos: &[i64], parse: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&AtomicUsize) -> Result<T, String> + Send,
{
    guarded_at(py, format, "on line", line_nos, parse)
}

/// guarded, the panic's place named `place` (e.g. "in the section ending at line": a parser
/// that stores in `at` where its current stretch of lines ends, not the line itself).
pub fn guarded_at<T, F>(
    py: Python<'_>,
    format: &str,
    place: &str,
    line_nos: &[i64],
    parse: F,
) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&AtomicUsize) -> Result<T, String> + Send,
{
    let at = AtomicUsize::new(0);
    let result = py.allow_threads(|| catch_unwind(AssertUnwindSafe(|| parse(&at))));
    match result {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(msg)) => Err(PyValueError::new_err(format!(
            "the {format} parser cannot read its input: {msg}"
        ))),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            let row = at.load(Ordering::Relaxed);
            let no = line_nos
                .get(row)
                .map_or_else(|| "?".to_string(), |n| n.to_string());
            Err(PyValueError::new_err(format!(
                "the {format} parser failed {place} {no} (row {row} of the batch): {what}"
            )))
        }
    }
}
