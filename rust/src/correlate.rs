//! The correlator (ingest/correlate.py) in compiled code: events in, one row per (message,
//! recipient) out, with hash maps and per-group sorts instead of Polars group_by/joins.
//!
//! Python hands the columns it needs: host, queue_id and source as Arrow string views, kind and
//! status as small codes, per-row flags, times, and three sparse string subsets (the rows with a
//! next_queue_id, with a client_ip, with a recipient). What comes back names, per output row,
//! the INDEX of the event that supplies each field (null: none), plus the few values computed
//! here (received, queue_ids, alias status and detail, last_event, incomplete); Python gathers
//! the strings with Polars, so no text is copied per row here.
//!
//! The rules are those of the Polars correlator, kept as the reference in
//! tests/polars_correlate.py (the equivalence test compares the two). Its ties are reproduced:
//! - Polars' single-key sorts and `sort_by(..).first()` in an aggregation are stable: the first
//!   of equal keys in frame order, and frame order is the events' input order (filters and left
//!   joins keep it); here that is the smaller event index.
//! - Its multi-key frame sorts (`sort(["_decided", *_ORDER])`, `sort(_ORDER)`) are not stable;
//!   equal keys there mean two events of one line for one recipient. Here the event index breaks
//!   the tie (the later event wins `last()`), a deterministic choice the reference cannot promise.
//! - join_asof "nearest": of two instances equally far from the hand-off, the later one.

use std::borrow::Cow;

use crate::columns::StrCol;
use crate::fxhash::{FxMap, FxSet};
use crate::traceid;

// kind codes, as ingest/correlate.py _KIND_CODES sends them (0: null)
pub const K_NULL: u8 = 0;
pub const K_CLIENT: u8 = 2;
pub const K_RECEIVE: u8 = 3;
pub const K_MSGID: u8 = 4;
pub const K_SUBJECT: u8 = 5;
pub const K_DELIVER: u8 = 6;
pub const K_HANDOFF: u8 = 7;
pub const K_NODATA: u8 = 8;
pub const K_EXPAND: u8 = 10;
pub const K_HOLD: u8 = 11;
pub const K_REJECT: u8 = 12;
pub const K_REMOVED: u8 = 13;
pub const K_INFO: u8 = 14;

// status codes, as ingest/correlate.py _STATUS_CODES sends them
pub const S_NULL: u8 = 0;
pub const S_GETTING: u8 = 2;
pub const S_PENDING: u8 = 3;
pub const S_FAILED: u8 = 4;
pub const S_QUARANTINED: u8 = 5;
/// Delivered, Expanded, None, FilteredAsSpam: final, and neither Failed nor Quarantined
pub const S_FINAL: u8 = 6;

// per-row flags, as ingest/correlate.py _flags() packs them
const F_MESSAGE_ID: u8 = 1;
const F_SUBJECT: u8 = 2;
const F_SIZE: u8 = 4;
const F_CLEANUP: u8 = 8; // program ends with "cleanup"
const F_SENDER: u8 = 16; // sender not null
const F_BARE: u8 = 32; // sender without "@" and not "" (a bare local part)
const F_NRCPT: u8 = 64;
const F_LINE_NO: u8 = 128;

/// A hold decides a "sent" logged up to this long after it (amavis answers 250 after deciding).
const HOLD_AFTER_MICROS: i64 = 10 * 1_000_000;
/// chains are short: smtpd -> amavis -> dkim signer at most (the reference's 4 joins)
const CHAIN_HOPS: usize = 4;
const NONE: u32 = u32::MAX;

/// A nullable string column in Arrow's string_view layout, every view checked once up front.
pub struct ViewCol<'a> {
    views: &'a [u8],
    buffers: Vec<&'a [u8]>,
    valid: &'a [u8],
}

impl<'a> ViewCol<'a> {
    pub fn new(
        name: &str,
        rows: usize,
        views: &'a [u8],
        buffers: Vec<&'a [u8]>,
        valid: &'a [u8],
    ) -> Result<Self, String> {
        if views.len() != rows * 16 || valid.len() != rows {
            return Err(format!(
                "{name}: {} bytes of views and {} of validity for {rows} rows",
                views.len(),
                valid.len()
            ));
        }
        let col = ViewCol {
            views,
            buffers,
            valid,
        };
        for row in 0..rows {
            if col.valid.get(row).map_or(false, |v| *v != 0) && col.slice(row).is_none() {
                return Err(format!(
                    "{name}: row {row}: its view points outside the buffers"
                ));
            }
        }
        Ok(col)
    }

    fn slice(&self, row: usize) -> Option<&'a [u8]> {
        let view = self.views.get(row * 16..row * 16 + 16)?;
        let word = |at: usize| -> Option<usize> {
            let b: [u8; 4] = view.get(at..at + 4)?.try_into().ok()?;
            Some(u32::from_le_bytes(b) as usize)
        };
        let len = word(0)?;
        if len <= 12 {
            view.get(4..4 + len)
        } else {
            let (buffer, offset) = (word(8)?, word(12)?);
            self.buffers.get(buffer)?.get(offset..offset + len)
        }
    }

    /// The bytes of a row, None when null (views were checked in new()).
    pub fn get(&self, row: usize) -> Option<&'a [u8]> {
        if self.valid.get(row).map_or(true, |v| *v == 0) {
            return None;
        }
        self.slice(row)
    }
}

/// A subset of the events (rows ascending) with some string columns of theirs.
pub struct Sparse<'a> {
    pub rows: Vec<u32>,
    pub cols: Vec<ViewCol<'a>>,
}

pub struct Input<'a> {
    pub time: Vec<i64>,
    pub line_no: Vec<i64>,
    pub nrcpt: Vec<i64>,
    pub kind: &'a [u8],
    pub status: &'a [u8],
    pub flags: &'a [u8],
    pub host: ViewCol<'a>,
    pub queue_id: ViewCol<'a>,
    pub source: ViewCol<'a>,
    /// rows with a next_queue_id: [next_queue_id, to_ip]
    pub hand: Sparse<'a>,
    /// rows of kind client or receive with a client_ip: [client_ip]
    pub client: Sparse<'a>,
    /// rows of an outcome kind with a recipient: [recipient, orig_recipient]
    pub rcpt: Sparse<'a>,
    pub reuse_gap: i64,
    pub window: i64,
}

fn push_str(col: &mut StrCol, v: Option<&str>) -> Result<(), String> {
    if col.push(v) {
        Ok(())
    } else {
        Err("more than 4 GiB of text in one output column".to_string())
    }
}

/// A text column of the output (a StrCol that starts empty).
pub struct TextCol(pub StrCol);

impl Default for TextCol {
    fn default() -> Self {
        TextCol(StrCol::with_capacity(0, 0))
    }
}

/// One output row (message, recipient): event indices (NONE: null) and computed values.
#[derive(Default)]
pub struct Rows {
    pub msg: Vec<u32>,
    pub received: Vec<i64>,
    /// the message's MessageTraceId (traceid.rs), one text a message: its rows share its bytes
    pub trace_id: TextCol,
    pub queue_ids: TextCol,
    pub from_ip: Vec<u32>,
    pub size: Vec<u32>,
    pub sender: Vec<u32>,
    pub message_id: Vec<u32>,
    pub subject: Vec<u32>,
    pub recipient: Vec<u32>,
    pub member_orig: Vec<u32>,
    pub outcome: Vec<u32>,
    pub status_text: TextCol,
    pub detail_text: TextCol,
    pub latest: Vec<u32>,
    pub orig: Vec<u32>,
    pub last_event: Vec<i64>,
    pub incomplete: Vec<bool>,
}

/// The split into messages, for message_events / events_of_messages.
pub struct Split {
    /// per event: its instance (NONE for an event without queue id)
    pub inst_of: Vec<u32>,
    /// per event: how many times the reference's join repeats it (0 for no queue id)
    pub copies: Vec<u32>,
    /// per instance: its first event, its start and its root
    pub inst_first: Vec<u32>,
    pub inst_start: Vec<i64>,
    pub inst_root: Vec<u32>,
}

/// The order of events: (_sec, source, line_no), nulls first, then the event index.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
struct Key {
    sec: i64,
    source: u32,
    line: Option<i64>,
    idx: u32,
}

/// What the passes read of one event, packed in one cache line's half: a message's events lie
/// all over the input, and one read then brings every field.
#[derive(Clone, Copy, Default)]
struct Ev {
    time: i64,
    line: i64,
    source: u32,
    inst: u32,
    rcpt: u32,
    kind: u8,
    status: u8,
    flags: u8,
}

struct Ctx {
    ev: Vec<Ev>,
}

impl Ctx {
    fn at(&self, e: usize) -> Ev {
        self.ev.get(e).copied().unwrap_or_default()
    }

    fn key(&self, e: usize) -> Key {
        let v = self.at(e);
        Key {
            sec: v.time.div_euclid(1_000_000),
            source: v.source,
            line: if v.flags & F_LINE_NO != 0 {
                Some(v.line)
            } else {
                None
            },
            idx: e as u32,
        }
    }

    fn sec(&self, e: usize) -> i64 {
        self.at(e).time.div_euclid(1_000_000)
    }

    fn kind(&self, e: usize) -> u8 {
        self.ev.get(e).map_or(K_NULL, |v| v.kind)
    }

    fn status(&self, e: usize) -> u8 {
        self.ev.get(e).map_or(S_NULL, |v| v.status)
    }

    fn flag(&self, e: usize, f: u8) -> bool {
        self.ev.get(e).map_or(false, |v| v.flags & f != 0)
    }

    fn time(&self, e: usize) -> i64 {
        self.ev.get(e).map_or(0, |v| v.time)
    }

    fn inst(&self, e: usize) -> u32 {
        self.ev.get(e).map_or(NONE, |v| v.inst)
    }

    fn rcpt(&self, e: usize) -> u32 {
        self.ev.get(e).map_or(NONE, |v| v.rcpt)
    }
}

fn get<T: Copy + Default>(v: &[T], i: usize) -> T {
    v.get(i).copied().unwrap_or_default()
}

fn get_u32(v: &[u32], i: usize) -> u32 {
    v.get(i).copied().unwrap_or(NONE)
}

/// Each row's string as a small id (NONE: null), in first-appearance order, and the distinct
/// strings: for the few-valued columns (host, source), whose rows come in long runs, so the
/// previous row's value is compared before any hashing.
fn intern<'a>(col: &ViewCol<'a>, rows: usize) -> (Vec<u32>, Vec<&'a [u8]>) {
    let mut ids: FxMap<&[u8], u32> = FxMap::default();
    let mut distinct: Vec<&'a [u8]> = Vec::new();
    let mut of_row = Vec::with_capacity(rows);
    let mut last: Option<(&[u8], u32)> = None;
    for r in 0..rows {
        let v = match col.get(r) {
            Some(v) => v,
            None => {
                of_row.push(NONE);
                continue;
            }
        };
        let id = match last {
            Some((l, id)) if l == v => id,
            _ => {
                let next = distinct.len() as u32;
                let id = *ids.entry(v).or_insert_with(|| {
                    distinct.push(v);
                    next
                });
                last = Some((v, id));
                id
            }
        };
        of_row.push(id);
    }
    (of_row, distinct)
}

/// Rank of each row's source among the distinct sources by their bytes (0: null), so the
/// order compares integers.
fn source_ranks(source: &ViewCol, rows: usize) -> Vec<u32> {
    let (of_row, first) = intern(source, rows);
    let mut order: Vec<u32> = (0..first.len() as u32).collect();
    order.sort_by(|a, b| first.get(*a as usize).cmp(&first.get(*b as usize)));
    let mut rank = vec![0u32; first.len()];
    for (r, id) in order.iter().enumerate() {
        if let Some(slot) = rank.get_mut(*id as usize) {
            *slot = r as u32 + 1;
        }
    }
    of_row
        .into_iter()
        .map(|id| {
            if id == NONE {
                0
            } else {
                get(&rank, id as usize)
            }
        })
        .collect()
}

/// Members of buckets (bucket per item, NONE: in none), each bucket in item order.
fn buckets(of: &[u32], count: usize) -> (Vec<usize>, Vec<u32>) {
    let mut starts = vec![0usize; count + 1];
    for b in of {
        if let Some(s) = starts.get_mut(*b as usize + 1) {
            *s += 1;
        }
    }
    for i in 0..count {
        let prev = get(&starts, i);
        if let Some(s) = starts.get_mut(i + 1) {
            *s += prev;
        }
    }
    let mut fill = starts.clone();
    let mut members = vec![0u32; get(&starts, count)];
    for (item, b) in of.iter().enumerate() {
        if let Some(at) = fill.get_mut(*b as usize) {
            if let Some(slot) = members.get_mut(*at) {
                *slot = item as u32;
            }
            *at += 1;
        }
    }
    (starts, members)
}

fn bucket<'v>(starts: &[usize], members: &'v [u32], b: usize) -> &'v [u32] {
    members
        .get(get(starts, b)..get(starts, b + 1))
        .unwrap_or(&[])
}

fn lower(bytes: &[u8]) -> Result<Cow<'_, str>, String> {
    let s = std::str::from_utf8(bytes).map_err(|_| "a recipient is not UTF-8".to_string())?;
    // Polars' str.to_lowercase is Rust's (final sigma included)
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Ok(Cow::Borrowed(s))
    } else {
        Ok(Cow::Owned(s.to_lowercase()))
    }
}

struct Latest {
    best: (bool, Key),
    best_idx: u32,
    orig: Option<((bool, Key), u32)>,
}

struct Member {
    first_orig: u32,
    first_recipient: u32,
    first_time: i64,
    members: FxSet<String>,
}

// (status code, last_event before the fill, recipient, member orig, latest, orig,
// alias status and detail)
struct Pre {
    code: u8,
    status_at: u32,
    last: Option<i64>,
    recipient: u32,
    member_orig: u32,
    latest: u32,
    orig: u32,
    text: Option<(&'static str, String)>,
}

pub fn run(inp: &Input) -> Result<(Rows, Split), String> {
    let n = inp.time.len();
    if inp.line_no.len() != n
        || inp.nrcpt.len() != n
        || inp.kind.len() != n
        || inp.status.len() != n
        || inp.flags.len() != n
    {
        return Err(format!("columns of unequal length ({n} times)"));
    }
    let source_rank = source_ranks(&inp.source, n);
    let mut ctx = Ctx {
        ev: (0..n)
            .map(|e| Ev {
                time: get(&inp.time, e),
                line: get(&inp.line_no, e),
                source: get(&source_rank, e),
                inst: NONE,
                rcpt: NONE,
                kind: get(inp.kind, e),
                status: get(inp.status, e),
                flags: get(inp.flags, e),
            })
            .collect(),
    };
    drop(source_rank);
    // 1. instances: the events of one (host, queue id) in order; a new instance at the first,
    // after `removed` in a later second, or after a silence longer than the reuse gap. A null
    // host equals nothing (the reference's `==` is null there): each such event stands alone.
    let mut group_of = vec![NONE; n];
    let (host_id, _) = intern(&inp.host, n);
    let mut groups: FxMap<(u32, &[u8]), u32> = FxMap::default();
    groups.reserve(n / 4);
    let mut n_groups = 0u32;
    for (e, slot) in group_of.iter_mut().enumerate() {
        let q = match inp.queue_id.get(e) {
            Some(q) => q,
            None => continue,
        };
        *slot = match get_u32(&host_id, e) {
            NONE => {
                n_groups += 1;
                n_groups - 1
            }
            h => *groups.entry((h, q)).or_insert_with(|| {
                n_groups += 1;
                n_groups - 1
            }),
        };
    }
    let (g_starts, mut g_members) = buckets(&group_of, n_groups as usize);
    let mut inst_of = vec![NONE; n];
    let mut inst_first: Vec<u32> = Vec::new();
    let mut inst_start: Vec<i64> = Vec::new();
    let mut inst_group: Vec<u32> = Vec::new();
    let mut group_insts = vec![0usize; n_groups as usize + 1];
    for g in 0..n_groups as usize {
        let lo = get(&g_starts, g);
        let hi = get(&g_starts, g + 1);
        let slice = g_members.get_mut(lo..hi).unwrap_or(&mut []);
        slice.sort_unstable_by_key(|e| ctx.key(*e as usize));
        let mut prev: Option<usize> = None;
        for e in slice.iter().map(|e| *e as usize) {
            let new = match prev {
                None => true,
                Some(p) => {
                    (ctx.kind(p) == K_REMOVED && ctx.sec(e) > ctx.sec(p))
                        || ctx.time(e).saturating_sub(ctx.time(p)) > inp.reuse_gap
                }
            };
            if new {
                inst_first.push(e as u32);
                inst_start.push(ctx.time(e));
                inst_group.push(g as u32);
            }
            if let Some(slot) = inst_of.get_mut(e) {
                *slot = inst_first.len() as u32 - 1;
            }
            prev = Some(e);
        }
        if let Some(slot) = group_insts.get_mut(g + 1) {
            *slot = inst_first.len();
        }
    }
    let n_insts = inst_first.len();
    // each group's instances by start, for the nearest-start lookup (the reference sorts
    // insts by inst_start; within one key starts differ, so no tie)
    let mut by_start: Vec<u32> = (0..n_insts as u32).collect();
    for g in 0..n_groups as usize {
        let (lo, hi) = (get(&group_insts, g), get(&group_insts, g + 1));
        if let Some(s) = by_start.get_mut(lo..hi) {
            s.sort_by_key(|i| (get(&inst_start, *i as usize), *i));
        }
    }

    // 2. chains. An instance's first client_ip, by event order (sort_by(_ORDER).first())
    let mut client_first: Vec<Option<(Key, usize)>> = vec![None; n_insts];
    let client_ip = inp.client.cols.first().ok_or("no client_ip column")?;
    for (s, e) in inp.client.rows.iter().enumerate() {
        let e = *e as usize;
        if ctx.kind(e) != K_CLIENT {
            continue;
        }
        let i = get_u32(&inst_of, e);
        if let Some(slot) = client_first.get_mut(i as usize) {
            let k = ctx.key(e);
            if slot.map_or(true, |(best, _)| k < best) {
                *slot = Some((k, s));
            }
        }
    }
    let next_qid = inp.hand.cols.first().ok_or("no next_queue_id column")?;
    let to_ip = inp.hand.cols.get(1).ok_or("no to_ip column")?;
    // hand-offs by time (a stable sort: equal times in input order)
    let mut hand: Vec<(i64, usize, usize)> = inp
        .hand
        .rows
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            let k = ctx.kind(**e as usize);
            (k == K_HANDOFF || k == K_DELIVER) && get_u32(&inst_of, **e as usize) != NONE
        })
        .map(|(s, e)| (ctx.time(*e as usize), *e as usize, s))
        .collect();
    hand.sort_unstable();
    let mut parent = vec![NONE; n_insts];
    let mut link_count: FxMap<(u32, &[u8]), u32> = FxMap::default();
    for (t, e, s) in hand {
        let (h, q) = match (get_u32(&host_id, e), next_qid.get(s)) {
            (h, Some(q)) if h != NONE => (h, q),
            _ => continue, // a null key joins nothing
        };
        let g = match groups.get(&(h, q)) {
            Some(g) => *g as usize,
            None => continue,
        };
        let cands = by_start
            .get(get(&group_insts, g)..get(&group_insts, g + 1))
            .unwrap_or(&[]);
        let at = cands.partition_point(|i| get(&inst_start, *i as usize) <= t);
        let before = at.checked_sub(1).and_then(|b| cands.get(b)).copied();
        let after = cands.get(at).copied();
        let target = match (before, after) {
            (Some(b), Some(a)) => {
                let (db, da) = (
                    t.saturating_sub(get(&inst_start, b as usize)),
                    get(&inst_start, a as usize).saturating_sub(t),
                );
                if da <= db {
                    a
                } else {
                    b
                }
            }
            (Some(b), None) => b,
            (None, Some(a)) => a,
            (None, None) => continue,
        };
        if get(&inst_start, target as usize).saturating_sub(t).abs() > inp.window {
            continue;
        }
        let from = get_u32(&inst_of, e);
        if target == from {
            continue;
        }
        if ctx.kind(e) == K_DELIVER {
            // a delivery is a hand-off only when the target was handed over by the IP it was sent to
            let client = client_first
                .get(target as usize)
                .copied()
                .flatten()
                .and_then(|(_, cs)| client_ip.get(cs));
            match (client, to_ip.get(s)) {
                (Some(c), Some(t)) if c == t => {}
                _ => continue,
            }
        }
        if let Some(slot) = parent.get_mut(target as usize) {
            if *slot == NONE {
                *slot = from;
                *link_count.entry((from, q)).or_insert(0) += 1;
            }
        }
    }
    let mut root: Vec<u32> = (0..n_insts as u32).collect();
    for _ in 0..CHAIN_HOPS {
        for r in root.iter_mut() {
            let up = get_u32(&parent, *r as usize);
            if up != NONE {
                *r = up;
            }
        }
    }
    // `_linked`, and the repeats of the reference's join on (inst, next_queue_id)
    let mut linked = vec![false; n];
    let mut copies: Vec<u32> = inst_of
        .iter()
        .map(|i| if *i == NONE { 0 } else { 1 })
        .collect();
    for (s, e) in inp.hand.rows.iter().enumerate() {
        let e = *e as usize;
        let i = get_u32(&inst_of, e);
        let q = match next_qid.get(s) {
            Some(q) if i != NONE => q,
            _ => continue,
        };
        if let Some(c) = link_count.get(&(i, q)) {
            if let Some(slot) = copies.get_mut(e) {
                *slot = *c;
            }
            let k = ctx.kind(e);
            if let Some(slot) = linked.get_mut(e) {
                *slot = k == K_HANDOFF || k == K_DELIVER;
            }
        }
    }

    // 3. per root: the events of its chain in input order, its instances
    let root_of_event: Vec<u32> = inst_of
        .iter()
        .map(|i| {
            if *i == NONE {
                NONE
            } else {
                get_u32(&root, *i as usize)
            }
        })
        .collect();
    let (c_starts, c_members) = buckets(&root_of_event, n_insts);
    let (i_starts, i_members) = buckets(&root, n_insts);
    let mut rcpt_pos = vec![NONE; n];
    for (s, e) in inp.rcpt.rows.iter().enumerate() {
        if let Some(slot) = rcpt_pos.get_mut(*e as usize) {
            *slot = s as u32;
        }
    }
    let recipient = inp.rcpt.cols.first().ok_or("no recipient column")?;
    let orig_col = inp.rcpt.cols.get(1).ok_or("no orig_recipient column")?;
    let mut client_pos = vec![false; n];
    for e in &inp.client.rows {
        if let Some(slot) = client_pos.get_mut(*e as usize) {
            *slot = true;
        }
    }

    for (e, v) in ctx.ev.iter_mut().enumerate() {
        v.inst = get_u32(&inst_of, e);
        v.rcpt = get_u32(&rcpt_pos, e);
    }
    let ctx = ctx;
    let mut rows = Rows::default();
    // scratch space, reused message after message (no allocation per message)
    let mut insts: Vec<(Key, u32)> = Vec::new();
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut queue_ids: Vec<u8> = Vec::new();
    let mut latest: Vec<Latest> = Vec::new();
    let mut latest_at: FxMap<Cow<str>, usize> = FxMap::default();
    let mut members: Vec<Member> = Vec::new();
    let mut members_at: FxMap<Cow<str>, usize> = FxMap::default();
    let mut pre: Vec<Pre> = Vec::new();
    let mut finals: Vec<(bool, u8)> = Vec::new();
    let (mut key, mut hashed, mut trace_id) = (Vec::new(), Vec::new(), String::new());
    for r in 0..n_insts {
        if get_u32(&root, r) != r as u32 {
            continue; // a root is its own root; the others' events join no message
        }
        let chain = bucket(&c_starts, &c_members, r);
        let rooted = || {
            chain
                .iter()
                .map(|e| *e as usize)
                .filter(|e| ctx.inst(*e) == r as u32)
        };
        let first = match rooted().next() {
            Some(e) => e,
            None => continue,
        };
        let mut has_start = false;
        let mut has_state = false;
        let mut any_nodata = false;
        let mut only_probe = true; // null kinds are left out, as all() leaves nulls out
        for e in rooted() {
            let k = ctx.kind(e);
            has_start |= k == K_CLIENT || k == K_RECEIVE;
            has_state |= k != K_NULL && k != K_INFO;
            any_nodata |= k == K_NODATA;
            only_probe &= k == K_NULL || k == K_CLIENT || k == K_INFO || k == K_NODATA;
        }
        if !has_state || (any_nodata && only_probe) {
            continue;
        }
        // the earliest by (time, input order): sort_by("time").first()
        let earliest = |events: &mut dyn Iterator<Item = usize>| -> u32 {
            events
                .min_by_key(|e| (ctx.time(*e), *e))
                .map_or(NONE, |e| e as u32)
        };
        let from_ip = earliest(&mut rooted().filter(|e| {
            let k = ctx.kind(*e);
            (k == K_CLIENT || k == K_RECEIVE) && get(&client_pos, *e)
        }));
        let is_receive = |e: &usize| ctx.kind(*e) == K_RECEIVE;
        let size_root = earliest(&mut rooted().filter(|e| is_receive(e) && ctx.flag(*e, F_SIZE)));
        let nrcpt_at = earliest(&mut rooted().filter(|e| is_receive(e) && ctx.flag(*e, F_NRCPT)));
        let nrcpt = if nrcpt_at == NONE {
            None
        } else {
            Some(get(&inp.nrcpt, nrcpt_at as usize))
        };
        let all = || chain.iter().map(|e| *e as usize);
        let mut has_end = false;
        let mut last_time = i64::MIN;
        for e in all() {
            let k = ctx.kind(e);
            has_end |= k == K_REMOVED || (k == K_REJECT && ctx.flag(e, F_CLEANUP));
            last_time = last_time.max(ctx.time(e));
        }
        // the sender: qualified before bare, then receive with size, receive, other; then time
        let sender = all()
            .filter(|e| ctx.flag(*e, F_SENDER))
            .min_by_key(|e| {
                let k = ctx.kind(*e);
                let rank = if k == K_RECEIVE && ctx.flag(*e, F_SIZE) {
                    0
                } else if k == K_RECEIVE {
                    1
                } else {
                    2
                };
                (ctx.flag(*e, F_BARE), rank, ctx.time(*e), *e)
            })
            .map_or(NONE, |e| e as u32);
        let message_id = earliest(&mut all().filter(|e| {
            let k = ctx.kind(*e);
            (k == K_MSGID || k == K_RECEIVE || k == K_SUBJECT) && ctx.flag(*e, F_MESSAGE_ID)
        }));
        let subject = earliest(&mut all().filter(|e| {
            let k = ctx.kind(*e);
            (k == K_SUBJECT || k == K_RECEIVE) && ctx.flag(*e, F_SUBJECT)
        }));
        let size = if size_root != NONE {
            size_root
        } else {
            earliest(&mut all().filter(|e| is_receive(e) && ctx.flag(*e, F_SIZE)))
        };
        // the latest hold by event order (sort(_ORDER).last())
        let hold = all()
            .filter(|e| {
                let k = ctx.kind(*e);
                (k == K_HOLD || (k == K_REJECT && ctx.rcpt(*e) == NONE)) && ctx.status(*e) != S_NULL
            })
            .max_by_key(|e| ctx.key(*e));
        // the queue ids by their instance's first event, each once
        insts.clear();
        insts.extend(bucket(&i_starts, &i_members, r).iter().map(|i| {
            let f = get_u32(&inst_first, *i as usize);
            (ctx.key(f as usize), f)
        }));
        insts.sort_unstable();
        seen.clear();
        for (_, f) in &insts {
            if let Some(q) = inp.queue_id.get(*f as usize) {
                if !seen.contains(&q) {
                    seen.push(q);
                }
            }
        }
        queue_ids.clear();
        for (i, q) in seen.iter().enumerate() {
            if i > 0 {
                queue_ids.push(b' ');
            }
            queue_ids.extend_from_slice(q);
        }
        let queue_ids =
            std::str::from_utf8(&queue_ids).map_err(|_| "a queue id is not UTF-8".to_string())?;

        // recipients: the latest decided outcome per lowercase address (undecided sort first),
        // and the aliases' members
        latest.clear();
        latest_at.clear();
        members.clear();
        members_at.clear();
        for e in all() {
            let s = ctx.rcpt(e);
            if s == NONE {
                continue;
            }
            let rec = match recipient.get(s as usize) {
                Some(v) => v,
                None => continue,
            };
            let rl = lower(rec)?;
            let orig = orig_col.get(s as usize);
            if !get(&linked, e) {
                let decided = ctx.status(e) != S_GETTING;
                let k = (decided, ctx.key(e));
                let at = match latest_at.get(&rl) {
                    Some(at) => *at,
                    None => {
                        latest.push(Latest {
                            best: k,
                            best_idx: e as u32,
                            orig: None,
                        });
                        latest_at.insert(rl.clone(), latest.len() - 1);
                        latest.len() - 1
                    }
                };
                if let Some(l) = latest.get_mut(at) {
                    if k >= l.best {
                        l.best = k;
                        l.best_idx = e as u32;
                    }
                    if orig.is_some() && l.orig.map_or(true, |(ok, _)| k >= ok) {
                        l.orig = Some((k, e as u32));
                    }
                }
            }
            if let (Some(o), true) = (orig, ctx.kind(e) != K_EXPAND) {
                let ol = lower(o)?;
                let qualified = rl.len() > ol.len()
                    && rl.starts_with(ol.as_ref())
                    && rl.as_bytes().get(ol.len()) == Some(&b'@');
                if ol != rl && !qualified {
                    let at = match members_at.get(&ol) {
                        Some(at) => *at,
                        None => {
                            members.push(Member {
                                first_orig: e as u32,
                                first_recipient: e as u32,
                                first_time: ctx.time(e),
                                members: FxSet::default(),
                            });
                            members_at.insert(ol, members.len() - 1);
                            members.len() - 1
                        }
                    };
                    if let Some(m) = members.get_mut(at) {
                        m.first_time = m.first_time.min(ctx.time(e));
                        if !m.members.contains(rl.as_ref()) {
                            m.members.insert(rl.into_owned());
                        }
                    }
                }
            }
        }
        pre.clear();
        pre.extend(latest.iter().map(|l| Pre {
            code: ctx.status(l.best_idx as usize),
            status_at: l.best_idx,
            last: Some(ctx.time(l.best_idx as usize)),
            recipient: l.best_idx,
            member_orig: NONE,
            latest: l.best_idx,
            orig: l.orig.map_or(NONE, |(_, e)| e),
            text: None,
        }));
        let outcomes = pre.len() as i64;
        // an alias that is also delivered to itself keeps its own delivery row
        for (ol, at) in &members_at {
            if latest_at.contains_key(ol) {
                continue;
            }
            let m = match members.get(*at) {
                Some(m) => m,
                None => continue,
            };
            let text = if m.members.len() > 1 {
                (
                    "Expanded",
                    format!("expanded to {} recipients", m.members.len()),
                )
            } else {
                let who = recipient
                    .get(ctx.rcpt(m.first_recipient as usize) as usize)
                    .unwrap_or(b"");
                (
                    "None",
                    format!("redirected to {}", String::from_utf8_lossy(who)),
                )
            };
            pre.push(Pre {
                code: S_FINAL,
                status_at: NONE,
                last: Some(m.first_time),
                recipient: NONE,
                member_orig: m.first_orig,
                latest: NONE,
                orig: NONE,
                text: Some(text),
            });
        }
        if pre.is_empty() {
            pre.push(Pre {
                code: S_NULL,
                status_at: NONE,
                last: None,
                recipient: NONE,
                member_orig: NONE,
                latest: NONE,
                orig: NONE,
                text: None,
            });
        }
        // holds, then whether the message is complete
        finals.clear();
        for p in &pre {
            let caught = match hold {
                Some(h) => {
                    let open = p.code == S_NULL || p.code == S_GETTING || p.code == S_PENDING;
                    open || (ctx.status(h) != S_FAILED
                        && p.last.map_or(false, |t| {
                            t <= ctx.time(h).saturating_add(HOLD_AFTER_MICROS)
                        }))
                }
                None => false,
            };
            let code = if caught {
                ctx.status(hold.unwrap_or_default())
            } else {
                p.code
            };
            finals.push((caught, if code == S_NULL { S_GETTING } else { code }));
        }
        let held = finals.iter().any(|(_, c)| *c == S_QUARANTINED);
        let all_final = finals
            .iter()
            .all(|(_, c)| *c == S_FAILED || *c == S_QUARANTINED || *c == S_FINAL);
        let counted = nrcpt.map_or(false, |n| outcomes >= n) && !held;
        let incomplete = !has_start || !(all_final && (has_end || counted));
        let received = get(&inst_start, r);
        traceid::message_trace_id(
            inp.host.get(first),
            inp.queue_id.get(first),
            received,
            &mut key,
            &mut hashed,
            &mut trace_id,
        );
        for (p, (caught, _)) in pre.iter().zip(&finals) {
            let caught = *caught;
            rows.msg.push(first as u32);
            rows.received.push(received);
            push_str(&mut rows.trace_id.0, Some(&trace_id))?;
            push_str(&mut rows.queue_ids.0, Some(queue_ids))?;
            rows.from_ip.push(from_ip);
            rows.size.push(size);
            rows.sender.push(sender);
            rows.message_id.push(message_id);
            rows.subject.push(subject);
            rows.recipient.push(p.recipient);
            rows.member_orig.push(p.member_orig);
            let (status_text, detail_text) = match (&p.text, caught) {
                (Some((s, d)), false) => (Some(*s), Some(d.clone())),
                _ => (None, None),
            };
            rows.outcome.push(match (caught, hold) {
                (true, Some(h)) => h as u32,
                _ => p.status_at,
            });
            push_str(&mut rows.status_text.0, status_text)?;
            push_str(&mut rows.detail_text.0, detail_text.as_deref())?;
            rows.latest.push(p.latest);
            rows.orig.push(p.orig);
            rows.last_event.push(p.last.unwrap_or(last_time));
            rows.incomplete.push(incomplete);
        }
    }
    let inst_root = root;
    Ok((
        rows,
        Split {
            inst_of,
            copies,
            inst_first,
            inst_start,
            inst_root,
        },
    ))
}
