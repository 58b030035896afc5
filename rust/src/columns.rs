//! Arrow column buffers built in Rust and handed to Python as bytes, where pyarrow assembles
//! them (`pyarrow.Array.from_buffers`): Debian packages no arrow crate, and the layout is simple.
//!
//! A column is a validity bitmap (bit i set: row i is not null; least significant bit first),
//! plus for strings 64-bit offsets and UTF-8 data (pyarrow's large_string), for numbers the
//! values themselves (a null row holds 0).

/// Bit `i` of a bitmap (least significant bit first; false past its end).
fn bit_at(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).map_or(false, |b| (b >> (i % 8)) & 1 == 1)
}

/// A validity bitmap, grown one row at a time.
#[derive(Default)]
pub struct Validity {
    bits: Vec<u8>,
    len: usize,
    nulls: usize,
}

impl Validity {
    pub fn push(&mut self, valid: bool) {
        if self.len % 8 == 0 {
            self.bits.push(0);
        }
        if valid {
            if let Some(last) = self.bits.last_mut() {
                *last |= 1 << (self.len % 8);
            }
        } else {
            self.nulls += 1;
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn nulls(&self) -> usize {
        self.nulls
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bits
    }
}

/// A nullable UTF-8 column in Arrow's string_view layout, which Polars takes without a copy
/// (its own string columns are views): per row a 16-byte view, the length then either the
/// text itself (up to 12 bytes) or its first 4 bytes, buffer 0 and the offset in `data`.
///
/// Nulls are not written: an event fills 3 to 6 of its 17 text fields, and a null row's view
/// and validity bit are zeros, so `views` and `bits` end at the last non-null row and the rows
/// after it are implied (padded with zeros where the column is copied out: `views_into`,
/// `bits_into`). A push of a null only counts the row.
pub struct StrCol {
    views: Vec<u8>,
    data: Vec<u8>,
    /// validity (bit i set: row i not null), up to the byte of the last non-null row
    bits: Vec<u8>,
    rows: usize,
    nulls: usize,
    /// the view of the last text longer than 12 bytes: the same text again (the host, the
    /// program of a run of lines) points at the same bytes, not at a copy
    last_long: Option<[u8; 16]>,
}

/// The longest text a view's 32-bit offset can reach in one data buffer.
const VIEW_DATA_MAX: usize = u32::MAX as usize;

impl StrCol {
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        StrCol {
            views: Vec::with_capacity(rows * 16),
            data: Vec::with_capacity(bytes),
            bits: Vec::with_capacity(rows / 8 + 1),
            rows: 0,
            nulls: 0,
            last_long: None,
        }
    }

    /// Appends a row; false (nothing appended) when the column's text would pass 4 GiB.
    #[inline]
    pub fn push(&mut self, value: Option<&str>) -> bool {
        match value {
            None => {
                self.rows += 1;
                self.nulls += 1;
                true
            }
            Some(v) => self.push_text(v.as_bytes()),
        }
    }

    fn push_text(&mut self, v: &[u8]) -> bool {
        if v.len() > 12 && self.data.len() + v.len() > VIEW_DATA_MAX {
            return false;
        }
        let row = self.rows;
        // the null rows since the last text: zero views and validity bits
        if self.views.len() < row * 16 {
            self.views.resize(row * 16, 0);
        }
        if self.bits.len() <= row / 8 {
            self.bits.resize(row / 8 + 1, 0);
        }
        let entry = if v.len() <= 12 {
            view(v, 0, 0)
        } else {
            match self.last_long.filter(|last| self.repeats(last, v)) {
                Some(last) => last,
                None => {
                    let entry = view(v, 0, self.data.len());
                    self.data.extend_from_slice(v);
                    self.last_long = Some(entry);
                    entry
                }
            }
        };
        self.views.extend_from_slice(&entry);
        if let Some(b) = self.bits.get_mut(row / 8) {
            *b |= 1 << (row % 8);
        }
        self.rows += 1;
        true
    }

    /// Whether the long text of view `last` (in `data`) is `v`.
    fn repeats(&self, last: &[u8; 16], v: &[u8]) -> bool {
        let word = |at: usize| -> usize {
            let mut w = [0u8; 4];
            if let Some(src) = last.get(at..at + 4) {
                w.copy_from_slice(src);
            }
            u32::from_le_bytes(w) as usize
        };
        let (len, offset) = (word(0), word(12));
        len == v.len() && self.data.get(offset..offset + len) == Some(v)
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn nulls(&self) -> usize {
        self.nulls
    }

    /// The texts longer than 12 bytes, which the views point into.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The null rows after the last text written out (zero views and validity bits): the views
    /// and the validity are then complete, and `views`/`bits` hand them out as they are.
    pub fn pad(&mut self) {
        self.views.resize(self.rows * 16, 0);
        self.bits.resize((self.rows + 7) / 8, 0);
    }

    /// Every row's view, when padded (else only up to the last text).
    pub fn views(&self) -> &[u8] {
        &self.views
    }

    /// The validity bitmap, when padded (else only up to the last text).
    pub fn bits(&self) -> &[u8] {
        &self.bits
    }

    /// The views of every row into `out` (16 bytes a row, zeroed by the caller).
    pub fn views_into(&self, out: &mut [u8]) {
        if let Some(dst) = out.get_mut(..self.views.len()) {
            dst.copy_from_slice(&self.views);
        }
    }

    /// The validity bitmap of every row into `out` (a byte per 8 rows, zeroed by the caller).
    pub fn bits_into(&self, out: &mut [u8]) {
        let n = self.bits.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), self.bits.get(..n)) {
            dst.copy_from_slice(src);
        }
    }
}

/// The 16-byte string_view entry of `text`: its length and the text itself when it has 12 bytes
/// or fewer, else its length, first 4 bytes, and where it lies (data buffer `buffer`, `offset`);
/// built on the stack, appended by the caller in one copy.
pub fn view(text: &[u8], buffer: usize, offset: usize) -> [u8; 16] {
    let mut view = [0u8; 16];
    put(&mut view, 0, &(text.len() as u32).to_le_bytes());
    if text.len() <= 12 {
        put(&mut view, 4, text);
    } else {
        put(&mut view, 4, text.get(..4).unwrap_or(&[0; 4]));
        put(&mut view, 8, &(buffer as u32).to_le_bytes());
        put(&mut view, 12, &(offset as u32).to_le_bytes());
    }
    view
}

/// `bytes` into `view` at `at` (the callers' lengths fit: a view has 16 bytes).
fn put(view: &mut [u8; 16], at: usize, bytes: &[u8]) {
    if let Some(dst) = view.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// The text of row `row` of a string_view column (views and its data buffers), when the view
/// points inside them and the bytes are UTF-8.
pub fn view_str<'a>(views: &'a [u8], buffers: &[&'a [u8]], row: usize) -> Option<&'a str> {
    let view = views.get(row * 16..row * 16 + 16)?;
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = view.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let len = word(0)?;
    let bytes = if len <= 12 {
        view.get(4..4 + len)?
    } else {
        let (buffer, offset) = (word(8)?, word(12)?);
        buffers.get(buffer)?.get(offset..offset + len)?
    };
    std::str::from_utf8(bytes).ok()
}

/// A string_view column's rows as text, each data buffer checked for UTF-8 once (the lines of a
/// batch lie in one buffer, the block read): a row's text is then a slice of checked text,
/// which is UTF-8 when it starts and ends on character boundaries, what `str::get` checks.
/// A buffer that is not UTF-8 as a whole (or a view inside no buffer) is checked row by row.
pub struct Lines<'a> {
    views: &'a [u8],
    buffers: &'a [&'a [u8]],
    texts: Vec<Option<&'a str>>,
}

impl<'a> Lines<'a> {
    pub fn new(views: &'a [u8], buffers: &'a [&'a [u8]]) -> Self {
        let texts = buffers
            .iter()
            .map(|b| std::str::from_utf8(b).ok())
            .collect();
        Lines {
            views,
            buffers,
            texts,
        }
    }

    /// The text of `row` (view_str's answer).
    pub fn get(&self, row: usize) -> Option<&'a str> {
        let view = self.views.get(row * 16..row * 16 + 16)?;
        let word = |at: usize| -> Option<usize> {
            let b: [u8; 4] = view.get(at..at + 4)?.try_into().ok()?;
            Some(u32::from_le_bytes(b) as usize)
        };
        let len = word(0)?;
        if len > 12 {
            let (buffer, offset) = (word(8)?, word(12)?);
            if let Some(Some(text)) = self.texts.get(buffer) {
                return text.get(offset..offset + len);
            }
        }
        view_str(self.views, self.buffers, row)
    }
}

/// A number that goes into an Arrow buffer as its little-endian bytes.
pub trait Number: Copy + Default {
    fn write(self, out: &mut Vec<u8>);
}

impl Number for i64 {
    fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Number for f64 {
    fn write(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// A nullable column of 64-bit numbers.
#[derive(Default)]
pub struct NumCol<T: Number> {
    pub values: Vec<T>,
    pub valid: Validity,
}

impl<T: Number> NumCol<T> {
    pub fn push(&mut self, value: Option<T>) {
        self.values.push(value.unwrap_or_default());
        self.valid.push(value.is_some());
    }

    pub fn value_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.values.len() * 8);
        for v in &self.values {
            v.write(&mut out);
        }
        out
    }
}

pub type I64Col = NumCol<i64>;
pub type F64Col = NumCol<f64>;

/// A non-null boolean column, bit-packed like a validity bitmap.
#[derive(Default)]
pub struct BoolCol {
    pub bits: Validity,
}

impl BoolCol {
    pub fn push(&mut self, value: bool) {
        self.bits.push(value);
    }
}

impl Validity {
    /// Appends another bitmap's rows after this one's (a byte copy when this one ends on a byte).
    pub fn extend_from(&mut self, other: &Validity) {
        if self.len % 8 == 0 {
            self.bits.extend_from_slice(&other.bits);
            self.len += other.len;
            self.nulls += other.nulls;
            return;
        }
        for i in 0..other.len {
            self.push(bit_at(&other.bits, i));
        }
    }
}

// Emptied for reuse, the allocations kept: a parser that keeps its columns from one batch to the
// next writes into memory already mapped, not fresh pages the kernel must zero first.

impl Validity {
    pub fn clear(&mut self) {
        self.bits.clear();
        self.len = 0;
        self.nulls = 0;
    }
}

impl StrCol {
    /// Appends another column's rows (its long texts' views moved to where its data lands);
    /// false, nothing appended, when the column's text would pass 4 GiB.
    pub fn append(&mut self, other: &StrCol) -> bool {
        let base = self.data.len();
        if base + other.data.len() > VIEW_DATA_MAX {
            return false;
        }
        if other.views.is_empty() {
            // only nulls: counted, nothing written
            self.rows += other.rows;
            self.nulls += other.nulls;
            return true;
        }
        let start = self.rows;
        self.views.resize(start * 16, 0);
        self.views.reserve(other.views.len());
        for v in other.views.chunks_exact(16) {
            let mut view: [u8; 16] = match v.try_into() {
                Ok(a) => a,
                Err(_) => continue,
            };
            let word = |at: usize| -> u32 {
                let mut w = [0u8; 4];
                if let Some(src) = view.get(at..at + 4) {
                    w.copy_from_slice(src);
                }
                u32::from_le_bytes(w)
            };
            if word(0) > 12 {
                let offset = word(12) as usize + base;
                put(&mut view, 12, &(offset as u32).to_le_bytes());
            }
            self.views.extend_from_slice(&view);
        }
        self.data.extend_from_slice(&other.data);
        if start % 8 == 0 {
            self.bits.resize(start / 8, 0);
            self.bits.extend_from_slice(&other.bits);
        } else {
            let written = other.views.len() / 16;
            self.bits.resize((start + written - 1) / 8 + 1, 0);
            for i in 0..written {
                let set = bit_at(&other.bits, i);
                let row = start + i;
                if let (true, Some(b)) = (set, self.bits.get_mut(row / 8)) {
                    *b |= 1 << (row % 8);
                }
            }
        }
        self.rows += other.rows;
        self.nulls += other.nulls;
        true
    }

    pub fn clear(&mut self) {
        self.views.clear();
        self.data.clear();
        self.bits.clear();
        self.rows = 0;
        self.nulls = 0;
        self.last_long = None;
    }
}

impl<T: Number> NumCol<T> {
    /// Appends another column's rows.
    pub fn append(&mut self, other: &Self) {
        self.values.extend_from_slice(&other.values);
        self.valid.extend_from(&other.valid);
    }

    pub fn clear(&mut self) {
        self.values.clear();
        self.valid.clear();
    }
}

impl BoolCol {
    pub fn clear(&mut self) {
        self.bits.clear();
    }
}

// Rows put in another order: `order` lists each row once (row `order[i]` becomes row i). A
// string column's long texts stay where they are in `data` (a view says where), so only views,
// bits and values move.

impl Validity {
    /// Whether row `row` is set (false past the end).
    pub fn get(&self, row: usize) -> bool {
        row < self.len && bit_at(&self.bits, row)
    }

    pub fn permute(&mut self, order: &[usize]) {
        let mut out = Validity::default();
        for &row in order {
            out.push(self.get(row));
        }
        *self = out;
    }
}

impl StrCol {
    pub fn permute(&mut self, order: &[usize]) {
        let mut views = vec![0u8; order.len() * 16];
        let mut bits = vec![0u8; (order.len() + 7) / 8];
        for (i, &row) in order.iter().enumerate() {
            if !bit_at(&self.bits, row) {
                continue; // a null: zero view, zero bit
            }
            if let (Some(dst), Some(src)) = (
                views.get_mut(i * 16..i * 16 + 16),
                self.views.get(row * 16..row * 16 + 16),
            ) {
                dst.copy_from_slice(src);
            }
            if let Some(b) = bits.get_mut(i / 8) {
                *b |= 1 << (i % 8);
            }
        }
        self.views = views;
        self.bits = bits;
        self.rows = order.len();
        self.last_long = None;
    }
}

impl<T: Number> NumCol<T> {
    pub fn permute(&mut self, order: &[usize]) {
        self.values = order
            .iter()
            .map(|&row| self.values.get(row).copied().unwrap_or_default())
            .collect();
        self.valid.permute(order);
    }
}

impl BoolCol {
    pub fn permute(&mut self, order: &[usize]) {
        self.bits.permute(order);
    }
}
