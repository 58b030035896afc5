//! A block of complete log lines split into an Arrow string_view column (ingest/reader.py's
//! lines frame), read as Polars' CSV reader read it before (`separator="\x00"`, no quotes,
//! `utf8-lossy`, then `str.strip_suffix("\r")`), without copying the text: each line's view
//! points into the bytes read from the file. Only a line that is not valid UTF-8 as read (its
//! bad bytes replaced by U+FFFD), or that starts in the bytes left over from the last read, is
//! copied, into a buffer of its own.
//!
//! What the CSV reader did, kept exactly:
//! - a line ends at `\n`; a `\r` before it is the terminator's (`\r\n`) and one more is taken off
//!   by strip_suffix: up to two trailing `\r` go;
//! - a byte order mark at the very start of the block is skipped;
//! - invalid UTF-8 becomes U+FFFD as Rust's (and Python's) lossy decoding does, one per maximal
//!   invalid subpart;
//! - a block holding a NUL byte, which that reader refused, was split by Python instead (decoded
//!   lossily, NUL -> U+FFFD, one trailing `\r` taken off, no mark skipped): so is it here.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

/// A view's data offset is 32 bits: the read bytes are handed over in windows starting every
/// WINDOW bytes, each up to 2 * WINDOW long, so a line of up to WINDOW bytes fits in the window
/// it starts in; an own buffer holds up to 2 * WINDOW - 1 bytes. (The tests pass a small window.)
pub const WINDOW: usize = 1 << 31;
const BOM: &[u8] = b"\xef\xbb\xbf";

/// The lines of `carry` + `data[..end]` (the first `skip` bytes left out) as views.
pub struct Split {
    pub lines: usize,
    /// 16 bytes a line
    pub views: Vec<u8>,
    /// (start, stop) in `data` of the data buffers 0..windows.len()
    pub windows: Vec<(usize, usize)>,
    /// the copied lines' text: buffers windows.len().. of the views
    pub own: Vec<Vec<u8>>,
}

/// How a line's text is read.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Polars' CSV reader: up to two trailing `\r` off, lossy UTF-8
    Csv,
    /// the Python split of a block with a NUL: one trailing `\r` off, lossy UTF-8, NUL -> U+FFFD
    Nul,
}

struct Builder {
    views: Vec<u8>,
    window: usize,
    windows: usize,
    own: Vec<Vec<u8>>,
}

impl Builder {
    /// A line held in `data` at `start` (its bytes `text`, valid UTF-8).
    fn borrowed(&mut self, start: usize, text: &[u8]) -> Result<(), String> {
        if text.len() <= 12 {
            self.inline(text);
            return Ok(());
        }
        let window = start / self.window;
        let offset = start - window * self.window;
        if text.len() > self.window {
            return Err(format!(
                "a line of {} bytes (at most {} are read)",
                text.len(),
                self.window
            ));
        }
        self.long(text, window, offset);
        Ok(())
    }

    /// A line whose (repaired) text is copied into an own buffer.
    fn owned(&mut self, text: &[u8]) -> Result<(), String> {
        if text.len() <= 12 {
            self.inline(text);
            return Ok(());
        }
        let own_max = 2 * self.window - 1;
        if text.len() > own_max {
            return Err(format!(
                "a line of {} bytes (at most {own_max} are read)",
                text.len()
            ));
        }
        let full = self
            .own
            .last()
            .map_or(true, |b| b.len() + text.len() > own_max);
        if full {
            self.own.push(Vec::new());
        }
        let index = self.windows + self.own.len() - 1;
        let buffer = match self.own.last_mut() {
            Some(b) => b,
            None => return Err("no own buffer".to_string()),
        };
        let offset = buffer.len();
        buffer.extend_from_slice(text);
        self.long(text, index, offset);
        Ok(())
    }

    fn inline(&mut self, text: &[u8]) {
        self.views
            .extend_from_slice(&crate::columns::view(text, 0, 0));
    }

    fn long(&mut self, text: &[u8], buffer: usize, offset: usize) {
        self.views
            .extend_from_slice(&crate::columns::view(text, buffer, offset));
    }
}

/// A line without its terminator's `\r` (and strip_suffix's in Csv mode).
fn trimmed(line: &[u8], mode: Mode) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match mode {
        Mode::Csv => line.strip_suffix(b"\r").unwrap_or(line),
        Mode::Nul => line,
    }
}

/// The text of a line that is not valid UTF-8 as read, or holds a NUL (Nul mode).
fn repaired(line: &[u8], mode: Mode) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    match mode {
        Mode::Nul => text.replace('\0', "\u{fffd}").into_bytes(),
        Mode::Csv => text.into_owned().into_bytes(),
    }
}

/// One line (`line`, at `start` in `data` when `in_data`) into the views.
fn add(b: &mut Builder, line: &[u8], start: Option<usize>, mode: Mode) -> Result<(), String> {
    let line = trimmed(line, mode);
    let clean = std::str::from_utf8(line).is_ok()
        && (mode == Mode::Csv || memchr::memchr(0, line).is_none());
    match (clean, start) {
        (true, Some(start)) => b.borrowed(start, line),
        (true, None) => b.owned(line),
        (false, _) => b.owned(&repaired(line, mode)),
    }
}

/// The lines of `carry` + `data[..end]`, the first `skip` bytes of that left out; every line ends
/// with `\n` (bytes after the last one are no line). Err for a line too long for a view.
pub fn split(
    carry: &[u8],
    data: &[u8],
    end: usize,
    skip: usize,
    window: usize,
) -> Result<Split, String> {
    if window == 0 || window > WINDOW {
        return Err(format!("a window of {window} bytes (1 to {WINDOW})"));
    }
    let data = data.get(..end).unwrap_or(data);
    // the block as two parts: what is left of carry after the skip, then data (after the rest of it)
    let head = carry.get(skip..).unwrap_or(&[]);
    let data_from = skip.saturating_sub(carry.len()).min(data.len());
    let nul = memchr::memchr(0, head).is_some()
        || memchr::memchr(0, data.get(data_from..).unwrap_or(&[])).is_some();
    let mode = if nul { Mode::Nul } else { Mode::Csv };
    let mut b = Builder {
        views: Vec::with_capacity(data.len() / 8),
        window,
        windows: if data.is_empty() {
            1
        } else {
            (data.len() - 1) / window + 1
        },
        own: Vec::new(),
    };
    // the position in data of the next line's start; the first line may start in head
    let mut pos = data_from;
    let mut pending: Vec<u8> = Vec::new(); // a line begun in head
    let mut in_head = !head.is_empty();
    if mode == Mode::Csv {
        // the CSV reader skipped a byte order mark at the start of what it was given
        if head.starts_with(BOM) {
            pending.extend_from_slice(head.get(3..).unwrap_or(&[]));
        } else if head.len() < 3 && !head.is_empty() {
            // a mark split between carry and data: look at both
            let mut first = head.to_vec();
            first.extend_from_slice(data.get(pos..pos + 3 - head.len()).unwrap_or(&[]));
            if first.starts_with(BOM) {
                pos += 3 - head.len();
                in_head = false;
            } else {
                pending.extend_from_slice(head);
            }
        } else if head.is_empty() {
            if data.get(pos..).map_or(false, |d| d.starts_with(BOM)) {
                pos += 3;
            }
        } else {
            pending.extend_from_slice(head);
        }
    } else {
        pending.extend_from_slice(head);
    }
    let mut lines = 0;
    if in_head {
        // lines wholly inside head, then the one that runs on into data
        let mut rest: &[u8] = &pending;
        let mut owned_lines: Vec<&[u8]> = Vec::new();
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            owned_lines.push(rest.get(..nl).unwrap_or(&[]));
            rest = rest.get(nl + 1..).unwrap_or(&[]);
        }
        for line in owned_lines {
            add(&mut b, line, None, mode)?;
            lines += 1;
        }
        if !rest.is_empty() {
            match memchr::memchr(b'\n', data.get(pos..).unwrap_or(&[])) {
                Some(nl) => {
                    let mut line = rest.to_vec();
                    line.extend_from_slice(data.get(pos..pos + nl).unwrap_or(&[]));
                    add(&mut b, &line, None, mode)?;
                    lines += 1;
                    pos += nl + 1;
                }
                None => pos = data.len(), // no newline after: no line
            }
        }
    }
    while let Some(nl) = memchr::memchr(b'\n', data.get(pos..).unwrap_or(&[])) {
        add(
            &mut b,
            data.get(pos..pos + nl).unwrap_or(&[]),
            Some(pos),
            mode,
        )?;
        lines += 1;
        pos += nl + 1;
    }
    let windows = (0..b.windows)
        .map(|k| (k * window, data.len().min(k * window + 2 * window)))
        .collect();
    Ok(Split {
        lines,
        views: b.views,
        windows,
        own: b.own,
    })
}

/// Split a block of complete lines (ingest/reader.py): `carry` + `data[:end]`, its first `skip`
/// bytes left out (a byte order mark), every line ending with `\n`; `window`: see WINDOW.
///
/// Returns (lines, views, windows, own): the 16-byte string views, the (start, stop) slices of
/// `data` that are data buffers 0..len(windows), and the buffers after them (the copied lines).
#[pyfunction]
pub fn split_lines<'py>(
    py: Python<'py>,
    carry: &PyBytes,
    data: &PyBytes,
    end: usize,
    skip: usize,
    window: Option<usize>,
) -> PyResult<&'py PyTuple> {
    let window = window.unwrap_or(WINDOW);
    let (carry, data) = (carry.as_bytes(), data.as_bytes());
    let s = py
        .allow_threads(|| split(carry, data, end, skip, window))
        .map_err(PyValueError::new_err)?;
    let windows = s.windows.to_object(py);
    let own = PyList::new(py, s.own.iter().map(|o| PyBytes::new(py, o)));
    Ok(PyTuple::new(
        py,
        [
            s.lines.into_py(py),
            PyBytes::new(py, &s.views).into_py(py),
            windows,
            own.into_py(py),
        ],
    ))
}
