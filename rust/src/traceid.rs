//! MessageTraceIds (ingest/traceid.py) in compiled code: per message, FNV-1a of
//! "key|received microseconds" with two bases, laid out as a UUIDv7 (the first 48 bits are the
//! Received time in milliseconds). The numpy version it replaced is kept as the test reference
//! (tests/numpy_traceid.py); the ids must never change.

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
        scratch.push(b'|');
        push_decimal(scratch, r);
    }
    let a = fnv1a(BASIS_A, scratch);
    let b = fnv1a(BASIS_B, scratch);
    // Polars' dt.epoch("ms") floors; a null Received counts as 0
    let ms = (received.map_or(0, |r| r.div_euclid(1000)) as u64) & ((1u64 << 48) - 1);
    let hi = (ms << 16) | 0x7000 | (a & 0x0FFF);
    let lo = 0x8000_0000_0000_0000u64 | (((a >> 12) ^ (b << 9)) & 0x3FFF_FFFF_FFFF_FFFF);
    out.clear();
    push_uuid(out, hi, lo);
}

/// A queued message's id: its key is "host|queue id" (None when either is null, as concat_str
/// gives null), with `scratch` and `key` as working space.
pub fn message_trace_id(
    host: Option<&[u8]>,
    queue_id: Option<&[u8]>,
    received: i64,
    key: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    out: &mut String,
) {
    let joined = match (host, queue_id) {
        (Some(h), Some(q)) => {
            key.clear();
            key.extend_from_slice(h);
            key.push(b'|');
            key.extend_from_slice(q);
            Some(key.as_slice())
        }
        _ => None,
    };
    trace_id(joined, Some(received), scratch, out);
}

/// The 16 bytes (hi then lo, big-endian) as lowercase hex in the 8-4-4-4-12 layout, by hand:
/// the formatting machinery cost more than the hashing.
fn push_uuid(text: &mut String, hi: u64, lo: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in hi
        .to_be_bytes()
        .iter()
        .chain(lo.to_be_bytes().iter())
        .enumerate()
    {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        for nibble in [byte >> 4, byte & 0xF] {
            text.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
}

/// `v` in decimal, as Rust's `{}` writes it.
fn push_decimal(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(slot) = digits.get_mut(at) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or(&[]));
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
