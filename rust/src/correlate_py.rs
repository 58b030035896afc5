//! The Python face of the correlator (correlate.rs): its columns in from bytes, its rows out as
//! Arrow buffers (the layout parse_postfix hands out, assembled by ingest/correlate.py).

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::columns::{BoolCol, I64Col};
use crate::correlate::{self, Input, Rows, Sparse, Split, ViewCol};
use crate::string_column;

const NONE: u32 = u32::MAX;

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

fn item<'py>(d: &'py PyDict, k: &str) -> PyResult<&'py PyAny> {
    d.get_item(k)
        .ok_or_else(|| PyValueError::new_err(format!("correlate_events: no {k:?} in the input")))
}

fn bytes_of<'py>(d: &'py PyDict, k: &str) -> PyResult<&'py [u8]> {
    Ok(item(d, k)?.downcast::<PyBytes>()?.as_bytes())
}

/// (views, [buffers], validity) -> a string column of `rows` rows
fn view_col<'py>(name: &str, rows: usize, t: &'py PyAny) -> PyResult<ViewCol<'py>> {
    read_view_col("correlate_events", name, rows, t)
}

/// (views, [buffers], validity), as ingest/corebuffers.views gives it -> a string column of
/// `rows` rows; `caller` names the function in the error.
pub(crate) fn read_view_col<'py>(
    caller: &str,
    name: &str,
    rows: usize,
    t: &'py PyAny,
) -> PyResult<ViewCol<'py>> {
    let t: &PyTuple = t.downcast()?;
    let views: &PyBytes = t.get_item(0)?.downcast()?;
    let buffers: &PyList = t.get_item(1)?.downcast()?;
    let valid: &PyBytes = t.get_item(2)?.downcast()?;
    let buffers: Vec<&[u8]> = buffers
        .iter()
        .map(|b| b.downcast::<PyBytes>().map(PyBytes::as_bytes))
        .collect::<Result<_, _>>()?;
    ViewCol::new(name, rows, views.as_bytes(), buffers, valid.as_bytes())
        .map_err(|m| PyValueError::new_err(format!("{caller}: {m}")))
}

/// (rows as int64 bytes, [string columns]) -> a sparse subset of `n` events
fn sparse<'py>(name: &str, n: usize, t: &'py PyAny) -> PyResult<Sparse<'py>> {
    let t: &PyTuple = t.downcast()?;
    let rows_bytes: &PyBytes = t.get_item(0)?.downcast()?;
    let rows: Vec<u32> = le_i64(rows_bytes.as_bytes())
        .into_iter()
        .map(|r| {
            if r >= 0 && (r as u64) < n as u64 {
                Ok(r as u32)
            } else {
                Err(PyValueError::new_err(format!(
                    "correlate_events: {name}: row {r} of {n} events"
                )))
            }
        })
        .collect::<PyResult<_>>()?;
    let cols: &PyList = t.get_item(1)?.downcast()?;
    let cols = cols
        .iter()
        .map(|c| view_col(name, rows.len(), c))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Sparse { rows, cols })
}

fn index_col(v: &[u32]) -> I64Col {
    let mut c = I64Col::default();
    for i in v {
        c.push(if *i == NONE {
            None
        } else {
            Some(i64::from(*i))
        });
    }
    c
}

fn i64_col(v: &[i64]) -> I64Col {
    let mut c = I64Col::default();
    for x in v {
        c.push(Some(*x));
    }
    c
}

fn fixed<'py>(py: Python<'py>, name: &str, c: &I64Col) -> &'py PyTuple {
    PyTuple::new(
        py,
        [
            name.into_py(py),
            "i64".into_py(py),
            c.valid.len().into_py(py),
            c.valid.nulls().into_py(py),
            PyBytes::new(py, c.valid.bytes()).into_py(py),
            PyBytes::new(py, &c.value_bytes()).into_py(py),
            py.None(),
        ],
    )
}

fn row_columns<'py>(py: Python<'py>, r: &Rows) -> PyResult<&'py PyList> {
    let cols = PyList::empty(py);
    let indices: [(&str, &Vec<u32>); 11] = [
        ("msg", &r.msg),
        ("from_ip", &r.from_ip),
        ("size", &r.size),
        ("sender", &r.sender),
        ("message_id", &r.message_id),
        ("subject", &r.subject),
        ("recipient", &r.recipient),
        ("member_orig", &r.member_orig),
        ("outcome", &r.outcome),
        ("latest", &r.latest),
        ("orig", &r.orig),
    ];
    for (name, v) in indices.iter() {
        cols.append(fixed(py, name, &index_col(v)))?;
    }
    cols.append(fixed(py, "received", &i64_col(&r.received)))?;
    cols.append(fixed(py, "last_event", &i64_col(&r.last_event)))?;
    cols.append(string_column(py, "message_trace_id", &r.trace_id.0))?;
    cols.append(string_column(py, "queue_ids", &r.queue_ids.0))?;
    cols.append(string_column(py, "status_text", &r.status_text.0))?;
    cols.append(string_column(py, "detail_text", &r.detail_text.0))?;
    let mut inc = BoolCol::default();
    for b in &r.incomplete {
        inc.push(*b);
    }
    cols.append(PyTuple::new(
        py,
        [
            "incomplete".into_py(py),
            "bool".into_py(py),
            inc.bits.len().into_py(py),
            0usize.into_py(py),
            PyBytes::new(py, b"").into_py(py),
            PyBytes::new(py, inc.bits.bytes()).into_py(py),
            py.None(),
        ],
    ))?;
    Ok(cols)
}

fn split_columns<'py>(py: Python<'py>, s: &Split) -> PyResult<&'py PyDict> {
    let d = PyDict::new(py);
    d.set_item("inst", fixed(py, "inst", &index_col(&s.inst_of)))?;
    let copies: Vec<i64> = s.copies.iter().map(|c| i64::from(*c)).collect();
    d.set_item("copies", fixed(py, "copies", &i64_col(&copies)))?;
    d.set_item("first", fixed(py, "first", &index_col(&s.inst_first)))?;
    d.set_item(
        "inst_start",
        fixed(py, "inst_start", &i64_col(&s.inst_start)),
    )?;
    d.set_item("root", fixed(py, "root", &index_col(&s.inst_root)))?;
    Ok(d)
}

/// Correlate events into message rows (see correlate.rs and ingest/correlate.py).
///
/// cols: a dict of time, line_no, nrcpt (int64 bytes), kind, status, flags (one byte a row),
/// host, queue_id, source ((views, [buffers], validity bytes)), hand, client, rcpt ((rows as
/// int64 bytes, [string columns])); reuse_gap and window in microseconds; split: also return
/// the instances (message_events). Returns a dict: rows (a list of columns, as parse_postfix's)
/// and, when asked, split.
#[pyfunction]
pub fn correlate_events<'py>(
    py: Python<'py>,
    cols: &PyDict,
    reuse_gap: i64,
    window: i64,
    split: bool,
) -> PyResult<&'py PyDict> {
    let time = le_i64(bytes_of(cols, "time")?);
    let n = time.len();
    let inp = Input {
        line_no: le_i64(bytes_of(cols, "line_no")?),
        nrcpt: le_i64(bytes_of(cols, "nrcpt")?),
        kind: bytes_of(cols, "kind")?,
        status: bytes_of(cols, "status")?,
        flags: bytes_of(cols, "flags")?,
        host: view_col("host", n, item(cols, "host")?)?,
        queue_id: view_col("queue_id", n, item(cols, "queue_id")?)?,
        source: view_col("source", n, item(cols, "source")?)?,
        hand: sparse("hand", n, item(cols, "hand")?)?,
        client: sparse("client", n, item(cols, "client")?)?,
        rcpt: sparse("rcpt", n, item(cols, "rcpt")?)?,
        time,
        reuse_gap,
        window,
    };
    let result = py.allow_threads(|| catch_unwind(AssertUnwindSafe(|| correlate::run(&inp))));
    let (rows, sp) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(msg)) => {
            return Err(PyValueError::new_err(format!(
                "the correlator cannot read its input: {msg}"
            )))
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            return Err(PyValueError::new_err(format!(
                "the correlator failed on {n} events: {what}"
            )));
        }
    };
    let out = PyDict::new(py);
    out.set_item("rows", row_columns(py, &rows)?)?;
    if split {
        out.set_item("split", split_columns(py, &sp)?)?;
    }
    Ok(out)
}

/// MessageTraceIds (ingest/traceid.py): keys as (views, [buffers], validity bytes), Received
/// as int64 microseconds bytes and one validity byte a row. Returns a string column as
/// parse_postfix's.
#[pyfunction]
pub fn message_trace_ids<'py>(
    py: Python<'py>,
    keys: &PyAny,
    received: &PyBytes,
    received_valid: &PyBytes,
) -> PyResult<&'py PyTuple> {
    let received = le_i64(received.as_bytes());
    let keys = view_col("keys", received.len(), keys)?;
    let valid = received_valid.as_bytes();
    let result = py.allow_threads(|| {
        catch_unwind(AssertUnwindSafe(|| {
            crate::traceid::trace_ids(&keys, &received, valid)
        }))
    });
    match result {
        Ok(Ok(col)) => Ok(string_column(py, "message_trace_id", &col)),
        Ok(Err(msg)) => Err(PyValueError::new_err(format!("message_trace_ids: {msg}"))),
        Err(_) => Err(PyValueError::new_err("message_trace_ids failed (a bug)")),
    }
}
