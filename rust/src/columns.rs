//! Arrow column buffers built in Rust and handed to Python as bytes, where pyarrow assembles
//! them (`pyarrow.Array.from_buffers`): Debian packages no arrow crate, and the layout is simple.
//!
//! A column is a validity bitmap (bit i set: row i is not null; least significant bit first),
//! plus for strings 64-bit offsets and UTF-8 data (pyarrow's large_string), for numbers the
//! values themselves (a null row holds 0).

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

/// A nullable UTF-8 column (Arrow large_string).
pub struct StrCol {
    pub offsets: Vec<i64>,
    pub data: Vec<u8>,
    pub valid: Validity,
}

impl StrCol {
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StrCol {
            offsets,
            data: Vec::with_capacity(bytes),
            valid: Validity::default(),
        }
    }

    pub fn push(&mut self, value: Option<&str>) {
        if let Some(v) = value {
            self.data.extend_from_slice(v.as_bytes());
        }
        self.valid.push(value.is_some());
        self.offsets.push(self.data.len() as i64);
    }

    pub fn offset_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.offsets.len() * 8);
        for o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        out
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
