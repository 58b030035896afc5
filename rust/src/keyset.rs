//! The flush's (host, queue id) bookkeeping in compiled code (ingest/keyset.py): a flush's keys
//! are hashed once into a KeySet, and the open set's related events, its rows to keep and to
//! expire, and the essential events of a re-opened message are masks or row lists computed over
//! them, in place of Polars joins that hashed every key of 200,000 events again at each step.
//! Keys are compared as bytes, never by hash alone, so the results are exactly the joins'. The
//! Polars expressions they replace are the test reference (tests/polars_keyset.py).
//!
//! As in a Polars join, a null host or queue id matches nothing.

use std::hash::Hasher;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::correlate::ViewCol;
use crate::fxhash::{FxHasher, FxMap, FxSet};

/// A string column of `rows` rows (its validity's length) from (views, [buffers], validity), as
/// ingest/corebuffers.views gives it.
struct Col<'a> {
    text: ViewCol<'a>,
    rows: usize,
}

fn col<'py>(name: &str, t: &'py PyAny) -> PyResult<Col<'py>> {
    let valid: &PyBytes = t.downcast::<PyTuple>()?.get_item(2)?.downcast()?;
    let rows = valid.as_bytes().len();
    let text = crate::correlate_py::read_view_col("keyset", name, rows, t)?;
    Ok(Col { text, rows })
}

/// Host and queue id columns of one frame.
struct Pair<'a> {
    host: ViewCol<'a>,
    qid: ViewCol<'a>,
    rows: usize,
}

fn same_rows(what: &str, a: usize, b: usize) -> PyResult<()> {
    if a == b {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!(
            "keyset: {what}: {a} rows against {b}"
        )))
    }
}

fn pair<'py>(host: &'py PyAny, qid: &'py PyAny) -> PyResult<Pair<'py>> {
    let (host, qid) = (col("host", host)?, col("queue_id", qid)?);
    same_rows("host and queue_id", host.rows, qid.rows)?;
    Ok(Pair {
        host: host.text,
        qid: qid.text,
        rows: qid.rows,
    })
}

/// Runs `f` without the GIL (the flush runs beside the parsing thread); a panic (a bug) becomes a
/// ValueError.
fn guarded<T: Send>(py: Python<'_>, what: &str, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    py.allow_threads(|| catch_unwind(AssertUnwindSafe(f)))
        .map_err(|_| PyValueError::new_err(format!("keyset: {what} failed (a bug)")))
}

fn mask_bytes(py: Python<'_>, mask: &[bool]) -> PyObject {
    let bytes: Vec<u8> = mask.iter().map(|m| u8::from(*m)).collect();
    PyBytes::new(py, &bytes).into_py(py)
}

fn rows_bytes(py: Python<'_>, rows: &[usize]) -> PyObject {
    let bytes: Vec<u8> = rows
        .iter()
        .flat_map(|r| (*r as i64).to_le_bytes())
        .collect();
    PyBytes::new(py, &bytes).into_py(py)
}

const NONE: u32 = u32::MAX;

/// One key of a QidTable: its host's number, its queue id in the table's text, its hash.
struct QidKey {
    host: u32,
    start: usize,
    len: usize,
    hash: u64,
}

/// (host number, queue id) -> key number, open addressing: the queue ids in one buffer, so a
/// flush's tens of thousands of keys cost no allocation each (a map of boxed keys spent half of
/// the build in malloc and memmove).
#[derive(Default)]
struct QidTable {
    /// key numbers (NONE: empty), a power of two of them, at most half full
    slots: Vec<u32>,
    keys: Vec<QidKey>,
    text: Vec<u8>,
}

fn qid_hash(host: u32, qid: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write_u32(host);
    h.write(qid);
    // FxHash leaves queue ids of a few hex digits clustered: murmur3's finalizer spreads them
    let mut x = h.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^ (x >> 33)
}

impl QidTable {
    fn slot_of(&self, hash: u64) -> usize {
        (hash as usize) & self.slots.len().saturating_sub(1)
    }

    fn is(&self, k: u32, host: u32, qid: &[u8], hash: u64) -> bool {
        self.keys.get(k as usize).map_or(false, |key| {
            key.hash == hash
                && key.host == host
                && self.text.get(key.start..key.start + key.len) == Some(qid)
        })
    }

    /// The slot holding the key, or the empty slot where it would go (None: no slots).
    fn probe(&self, host: u32, qid: &[u8], hash: u64) -> Option<(usize, Option<u32>)> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = self.slot_of(hash);
        // at most half full: an empty slot ends every probe
        for _ in 0..self.slots.len() {
            match self.slots.get(i).copied()? {
                NONE => return Some((i, None)),
                k if self.is(k, host, qid, hash) => return Some((i, Some(k))),
                _ => i = (i + 1) & mask,
            }
        }
        None
    }

    fn find(&self, host: u32, qid: &[u8]) -> Option<u32> {
        self.probe(host, qid, qid_hash(host, qid))?.1
    }

    /// The key's number, added when new.
    fn add(&mut self, host: u32, qid: &[u8]) -> u32 {
        let hash = qid_hash(host, qid);
        if let Some((_, Some(k))) = self.probe(host, qid, hash) {
            return k;
        }
        if (self.keys.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let k = self.keys.len() as u32;
        if let Some((i, None)) = self.probe(host, qid, hash) {
            if let Some(slot) = self.slots.get_mut(i) {
                *slot = k;
            }
        }
        self.keys.push(QidKey {
            host,
            start: self.text.len(),
            len: qid.len(),
            hash,
        });
        self.text.extend_from_slice(qid);
        k
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![NONE; size]);
        let mask = size - 1;
        for k in old.into_iter().filter(|k| *k != NONE) {
            let hash = self.keys.get(k as usize).map_or(0, |key| key.hash);
            let mut i = self.slot_of(hash);
            while self.slots.get(i).map_or(false, |s| *s != NONE) {
                i = (i + 1) & mask;
            }
            if let Some(slot) = self.slots.get_mut(i) {
                *slot = k;
            }
        }
    }
}

/// The distinct (host, queue id) keys a frame names as queue id or hand-off target
/// (openset.queue_keys), numbered; per key the first row naming it as its queue id, per row the
/// number of its queue id's key.
#[pyclass(module = "msgtrace._core")]
pub struct KeySet {
    hosts: FxMap<Box<[u8]>, u32>,
    qids: QidTable,
    /// per key: the first row with it as queue id (None: named only as a hand-off target)
    first: Vec<Option<usize>>,
    /// per row of the frame: its queue id's key number (NONE: a null host or queue id)
    row_keys: Vec<u32>,
}

/// Finds keys in a KeySet, remembering the last host (rows of one host come in runs).
struct Finder<'s> {
    set: &'s KeySet,
    last: Option<(&'s [u8], u32)>,
}

impl<'s> Finder<'s> {
    fn new(set: &'s KeySet) -> Self {
        Finder { set, last: None }
    }

    fn host(&mut self, host: &[u8]) -> Option<u32> {
        if let Some((h, i)) = self.last {
            if h == host {
                return Some(i);
            }
        }
        let (h, i) = self.set.hosts.get_key_value(host)?;
        self.last = Some((h, *i));
        Some(*i)
    }

    fn find(&mut self, host: Option<&[u8]>, qid: Option<&[u8]>) -> Option<u32> {
        let h = self.host(host?)?;
        self.set.qids.find(h, qid?)
    }
}

impl KeySet {
    /// The key number of (host, queue id), added when new; `last_host`: the host met last.
    fn add<'a>(
        &mut self,
        host: Option<&'a [u8]>,
        qid: Option<&[u8]>,
        last_host: &mut Option<(&'a [u8], u32)>,
    ) -> u32 {
        let (host, qid) = match (host, qid) {
            (Some(h), Some(q)) => (h, q),
            _ => return NONE,
        };
        let h = match *last_host {
            Some((last, h)) if last == host => h,
            _ => {
                let n = self.hosts.len() as u32;
                let h = *self.hosts.entry(host.into()).or_insert(n);
                *last_host = Some((host, h));
                h
            }
        };
        let k = self.qids.add(h, qid);
        if k as usize == self.first.len() {
            self.first.push(None);
        }
        k
    }

    fn build(qid: &Pair, next: &ViewCol) -> KeySet {
        let mut set = KeySet {
            hosts: FxMap::default(),
            qids: QidTable::default(),
            first: Vec::new(),
            row_keys: Vec::with_capacity(qid.rows),
        };
        let mut last_host = None;
        for row in 0..qid.rows {
            let k = set.add(qid.host.get(row), qid.qid.get(row), &mut last_host);
            if let Some(first) = set.first.get_mut(k as usize) {
                if first.is_none() {
                    *first = Some(row);
                }
            }
            set.row_keys.push(k);
        }
        for row in 0..qid.rows {
            if next.get(row).is_some() {
                set.add(qid.host.get(row), next.get(row), &mut last_host);
            }
        }
        set
    }

    fn mask(&self, p: &Pair) -> Vec<bool> {
        let mut finder = Finder::new(self);
        (0..p.rows)
            .map(|row| finder.find(p.host.get(row), p.qid.get(row)).is_some())
            .collect()
    }

    /// Whether each row of the frame the set was built from has one of `p`'s keys as queue id.
    fn named_rows(&self, p: &Pair) -> Vec<bool> {
        let mut marked = vec![false; self.first.len()];
        let mut finder = Finder::new(self);
        for row in 0..p.rows {
            if let Some(k) = finder.find(p.host.get(row), p.qid.get(row)) {
                if let Some(m) = marked.get_mut(k as usize) {
                    *m = true;
                }
            }
        }
        self.row_keys
            .iter()
            .map(|k| marked.get(*k as usize).copied().unwrap_or(false))
            .collect()
    }
}

#[pymethods]
impl KeySet {
    /// The keys of a frame's host, queue_id and next_queue_id columns (each as
    /// corebuffers.views gives it).
    #[new]
    fn new(py: Python<'_>, host: &PyAny, qid: &PyAny, next: &PyAny) -> PyResult<Self> {
        let p = pair(host, qid)?;
        let next = col("next_queue_id", next)?;
        same_rows("queue_id and next_queue_id", p.rows, next.rows)?;
        guarded(py, "KeySet", || KeySet::build(&p, &next.text))
    }

    fn __len__(&self) -> usize {
        self.first.len()
    }

    /// One byte a row: whether the row's (host, queue id) is one of the keys.
    fn contains(&self, py: Python<'_>, host: &PyAny, qid: &PyAny) -> PyResult<PyObject> {
        let p = pair(host, qid)?;
        let mask = guarded(py, "contains", || self.mask(&p))?;
        Ok(mask_bytes(py, &mask))
    }

    /// The first row naming each key as its queue id, ascending (little-endian int64).
    fn first_rows(&self, py: Python<'_>) -> PyObject {
        let mut rows: Vec<usize> = self.first.iter().filter_map(|r| *r).collect();
        rows.sort_unstable();
        rows_bytes(py, &rows)
    }

    /// One byte a row of the frame the set was built from: whether its (host, queue id) is one
    /// of the (host, queue id) pairs given.
    fn rows_named(&self, py: Python<'_>, host: &PyAny, qid: &PyAny) -> PyResult<PyObject> {
        let p = pair(host, qid)?;
        let mask = guarded(py, "rows_named", || self.named_rows(&p))?;
        Ok(mask_bytes(py, &mask))
    }

    /// The rows of events (host, queue_id, next_queue_id) related to the keys, in
    /// openset.related_events' order (little-endian int64).
    fn related_rows(
        &self,
        py: Python<'_>,
        host: &PyAny,
        qid: &PyAny,
        next: &PyAny,
    ) -> PyResult<PyObject> {
        let p = pair(host, qid)?;
        let next = col("next_queue_id", next)?;
        same_rows("queue_id and next_queue_id", p.rows, next.rows)?;
        let rows = guarded(py, "related_rows", || self.related(&p, &next.text))?;
        Ok(rows_bytes(py, &rows))
    }
}

impl KeySet {
    /// openset.related_events over the open set in memory: rows naming a key as queue id, then
    /// those naming one as hand-off target, then twice more the same for the keys the rows found
    /// name that were not searched yet (the other side of hand-offs), each row once, in that order.
    fn related<'a>(&self, ev: &Pair<'a>, next: &ViewCol<'a>) -> Vec<usize> {
        let mut found = vec![false; ev.rows];
        let mut out: Vec<usize> = Vec::new();
        let mut finder = Finder::new(self);
        let hit = |h, q| finder.find(h, q).is_some();
        take_matching(ev, next, hit, &mut found, &mut out);
        let mut searched: FxSet<(&[u8], &[u8])> = FxSet::default();
        let mut scanned = 0; // rows found before hold only keys searched already
        for _ in 0..2 {
            let mut linked: FxSet<(&[u8], &[u8])> = FxSet::default();
            for &row in out.get(scanned..).unwrap_or(&[]) {
                for qid in [ev.qid.get(row), next.get(row)] {
                    if let (Some(h), Some(q)) = (ev.host.get(row), qid) {
                        if finder.find(Some(h), Some(q)).is_none() && !searched.contains(&(h, q)) {
                            linked.insert((h, q));
                        }
                    }
                }
            }
            scanned = out.len();
            if linked.is_empty() {
                break;
            }
            let hit = |h, q| match (h, q) {
                (Some(h), Some(q)) => linked.contains(&(h, q)),
                _ => false,
            };
            take_matching(ev, next, hit, &mut found, &mut out);
            searched.extend(linked);
        }
        out
    }
}

/// Rows not found yet whose queue id, then those whose hand-off target, is a `hit` key.
fn take_matching<'a>(
    ev: &Pair<'a>,
    next: &ViewCol<'a>,
    mut hit: impl FnMut(Option<&'a [u8]>, Option<&'a [u8]>) -> bool,
    found: &mut [bool],
    out: &mut Vec<usize>,
) {
    for target in [&ev.qid, next] {
        for row in 0..ev.rows {
            if let Some(f) = found.get_mut(row) {
                if !*f && hit(ev.host.get(row), target.get(row)) {
                    *f = true;
                    out.push(row);
                }
            }
        }
    }
}

// What openset._essentials decides of each event (ingest/keyset.py computes the class).
const KEEP: u8 = 0;
const OUTCOME_DELIVER: u8 = 1;
const OUTCOME_REJECT: u8 = 2;
const RECEIVE: u8 = 3;

/// The group an event's class is decided in: (host, queue id, class), and for an outcome the
/// recipient (lowercased) and whether it is a "no outcome yet" (0, 1, or 2 for a null status).
type Group<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, u8, Option<&'a [u8]>, u8);

fn group<'a>(p: &Pair<'a>, rcpt: &ViewCol<'a>, getting: &[u8], row: usize, class: u8) -> Group<'a> {
    let outcome = class == OUTCOME_DELIVER || class == OUTCOME_REJECT;
    let (r, g) = if outcome {
        (rcpt.get(row), getting.get(row).copied().unwrap_or(2))
    } else {
        (None, 0)
    };
    (p.host.get(row), p.qid.get(row), class, r, g)
}

/// openset._essentials' filter over events taken in `order` (their rows sorted by time): an
/// outcome, an info line and a receive line are kept when last of their group, a receive line
/// also when first; the rest always. The mask is by row, in the frame's own order.
fn essentials(
    p: &Pair,
    rcpt: &ViewCol,
    class: &[u8],
    getting: &[u8],
    order: &[usize],
) -> Vec<bool> {
    let class_of = |row: usize| class.get(row).copied().unwrap_or(KEEP);
    let mut keep = vec![true; p.rows];
    let mut seen: FxSet<Group> = FxSet::default();
    for &row in order.iter().rev() {
        let c = class_of(row);
        if c == KEEP {
            continue;
        }
        let last = seen.insert(group(p, rcpt, getting, row, c));
        if let Some(k) = keep.get_mut(row) {
            *k = last;
        }
    }
    seen.clear();
    for &row in order {
        if class_of(row) == RECEIVE && seen.insert(group(p, rcpt, getting, row, RECEIVE)) {
            if let Some(k) = keep.get_mut(row) {
                *k = true;
            }
        }
    }
    keep
}

/// A row order (little-endian int64 row numbers): every row of `rows` exactly once.
fn row_order(bytes: &[u8], rows: usize) -> PyResult<Vec<usize>> {
    let bad = || {
        PyValueError::new_err(format!(
            "keyset: the order is not a permutation of {rows} rows"
        ))
    };
    if bytes.len() != rows * 8 {
        return Err(bad());
    }
    let mut seen = vec![false; rows];
    let mut order = Vec::with_capacity(rows);
    for c in bytes.chunks_exact(8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let row = usize::try_from(i64::from_le_bytes(a)).map_err(|_| bad())?;
        match seen.get_mut(row) {
            Some(s) if !*s => *s = true,
            _ => return Err(bad()),
        }
        order.push(row);
    }
    Ok(order)
}

/// One byte a row of events: whether openset._essentials keeps it, the events taken in `order`
/// (little-endian int64 row numbers, sorted by time). classes: one byte a row (0 keep, 1 deliver
/// outcome, 2 reject outcome, 3 receive, 4 info); getting: one byte a row, whether the status is
/// GettingStatus (2: null).
#[pyfunction]
pub fn essentials_keep(
    py: Python<'_>,
    host: &PyAny,
    qid: &PyAny,
    recipient: &PyAny,
    classes: &PyBytes,
    getting: &PyBytes,
    order: &PyBytes,
) -> PyResult<PyObject> {
    let p = pair(host, qid)?;
    let rcpt = col("recipient", recipient)?;
    same_rows("queue_id and recipient", p.rows, rcpt.rows)?;
    let (class, getting) = (classes.as_bytes(), getting.as_bytes());
    same_rows("queue_id and class", p.rows, class.len())?;
    same_rows("queue_id and getting", p.rows, getting.len())?;
    let order = row_order(order.as_bytes(), p.rows)?;
    let keep = guarded(py, "essentials_keep", || {
        essentials(&p, &rcpt.text, class, getting, &order)
    })?;
    Ok(mask_bytes(py, &keep))
}

/// Whether each row's (host, queue id) has an event at or after `cutoff` (times: little-endian
/// int64 and one validity byte a row); a null key, or a key with no time, is not alive.
fn alive(p: &Pair, times: &[u8], valid: &[u8], cutoff: i64) -> Vec<bool> {
    let key = |row: usize| match (p.host.get(row), p.qid.get(row)) {
        (Some(h), Some(q)) => Some((h, q)),
        _ => None,
    };
    let time = |row: usize| -> Option<i64> {
        let bytes: [u8; 8] = times.get(row * 8..row * 8 + 8)?.try_into().ok()?;
        valid
            .get(row)
            .filter(|v| **v != 0)
            .map(|_| i64::from_le_bytes(bytes))
    };
    let mut last: FxMap<(&[u8], &[u8]), i64> = FxMap::default();
    for row in 0..p.rows {
        if let (Some(k), Some(t)) = (key(row), time(row)) {
            let l = last.entry(k).or_insert(t);
            *l = (*l).max(t);
        }
    }
    (0..p.rows)
        .map(|row| {
            key(row)
                .and_then(|k| last.get(&k))
                .map_or(false, |t| *t >= cutoff)
        })
        .collect()
}

/// One byte a row: whether the row's (host, queue id) logged an event at or after `cutoff`
/// (openset.OpenSet.update's expiry).
#[pyfunction]
pub fn alive_rows(
    py: Python<'_>,
    host: &PyAny,
    qid: &PyAny,
    times: &PyBytes,
    valid: &PyBytes,
    cutoff: i64,
) -> PyResult<PyObject> {
    let p = pair(host, qid)?;
    let (times, valid) = (times.as_bytes(), valid.as_bytes());
    same_rows("queue_id and times", p.rows * 8, times.len())?;
    same_rows("queue_id and validity", p.rows, valid.len())?;
    let mask = guarded(py, "alive_rows", || alive(&p, times, valid, cutoff))?;
    Ok(mask_bytes(py, &mask))
}

/// Adds the KeySet class and the functions above to msgtrace._core.
pub fn register(m: &PyModule) -> PyResult<()> {
    m.add_class::<KeySet>()?;
    m.add_function(wrap_pyfunction!(essentials_keep, m)?)?;
    m.add_function(wrap_pyfunction!(alive_rows, m)?)?;
    Ok(())
}
