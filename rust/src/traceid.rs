//! MessageTraceIds (ingest/traceid.py) in compiled code: per message, FNV-1a of
//! "key|received microseconds" with two bases, laid out as a UUIDv7 (the first 48 bits are the
//! Received time in milliseconds). The numpy version it replaced is kept as the test reference
//! (tests/numpy_traceid.py); the ids must never change.

use std::io::Write;

use crate::columns::StrCol;
use crate::correlate::ViewCol;

const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;
const BASIS_A: u64 = 0xCBF2_9CE4_8422_2325;
const BASIS_B: u64 = 0x8422_2325_CBF2_9CE4;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// One id into `out`: `key` (None: a null key) and the Received time in microseconds (None:
/// null); `scratch` holds the hashed text.
pub fn trace_id(
    key: Option<&[u8]>,
    received: Option<i64>,
    scratch: &mut Vec<u8>,
    out: &mut String,
) {
    scratch.clear();
    // concat_str: a null part makes the whole text null, which is hashed as ""
    if let (Some(k), Some(r)) = (key, received) {
        scratch.extend_from_slice(k);
        // infallible: io::Write for Vec<u8> never fails
        let _ = write!(scratch, "|{r}");
    }
    let a = fnv1a(BASIS_A, scratch);
    let b = fnv1a(BASIS_B, scratch);
    // Polars' dt.epoch("ms") floors; a null Received counts as 0
    let ms = (received.map_or(0, |r| r.div_euclid(1000)) as u64) & ((1u64 << 48) - 1);
    let hi = (ms << 16) | 0x7000 | (a & 0x0FFF);
    let lo = 0x8000_0000_0000_0000u64 | (((a >> 12) ^ (b << 9)) & 0x3FFF_FFFF_FFFF_FFFF);
    out.clear();
    // the 16 bytes (hi then lo, big-endian) as hex in the 8-4-4-4-12 layout
    let _ = std::fmt::Write::write_fmt(
        out,
        format_args!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xFFFF,
            hi & 0xFFFF,
            lo >> 48,
            lo & 0xFFFF_FFFF_FFFF
        ),
    );
}

/// The ids of a column of keys and Received times (valid: one byte a row, 0 for null).
pub fn trace_ids(
    keys: &ViewCol,
    received: &[i64],
    received_valid: &[u8],
) -> Result<StrCol, String> {
    if received_valid.len() != received.len() {
        return Err(format!(
            "{} validity bytes for {} times",
            received_valid.len(),
            received.len()
        ));
    }
    let mut col = StrCol::with_capacity(received.len(), received.len() * 36);
    let mut scratch = Vec::new();
    let mut id = String::with_capacity(36);
    for (row, r) in received.iter().enumerate() {
        let valid = received_valid.get(row).map_or(false, |v| *v != 0);
        trace_id(
            keys.get(row),
            if valid { Some(*r) } else { None },
            &mut scratch,
            &mut id,
        );
        if !col.push(Some(&id)) {
            return Err("more than 4 GiB of trace ids".to_string());
        }
    }
    Ok(col)
}
