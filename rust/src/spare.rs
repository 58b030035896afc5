//! The event columns of a thread's last batch, emptied for its next one (every parser's): writing
//! into memory already mapped, not into fresh pages the kernel must fault in and zero, which was
//! a quarter of a parse's CPU when each batch allocated its own (Exim 1.20 -> 0.85 us a line).

use std::cell::RefCell;

use crate::Out;

/// Events a kept set of columns may have room for (a pipeline batch, 8 MiB of lines, is some
/// 40,000-60,000 lines): the columns of a bigger batch, a whole file parsed at once, are freed.
const SPARE_EVENTS_MAX: usize = 200_000;

thread_local! {
    static SPARE: RefCell<Option<Out>> = const { RefCell::new(None) };
}

impl Out {
    /// Every column emptied, its allocations kept.
    fn clear(&mut self) {
        self.line_no.clear();
        self.local.clear();
        self.utc.clear();
        self.second.clear();
        for c in self.strings.iter_mut() {
            c.clear();
        }
        self.size.clear();
        self.nrcpt.clear();
        self.delay.clear();
    }
}

/// Columns for a batch: the thread's spare ones emptied, else `Out::new(rows)`.
pub fn columns(rows: usize) -> Out {
    match SPARE.with(|s| s.borrow_mut().take()) {
        Some(mut o) => {
            o.clear();
            o
        }
        None => Out::new(rows),
    }
}

/// The batch's columns, once copied out to Python, kept for this thread's next batch.
pub fn keep(o: Out) {
    if o.line_no.values.capacity() <= SPARE_EVENTS_MAX {
        SPARE.with(|s| *s.borrow_mut() = Some(o));
    }
}
