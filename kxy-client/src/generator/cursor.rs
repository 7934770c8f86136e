//! The cursor: where a generator's hot path takes IDs, without locks.
//!
//! The current segment is one of two *slots*. Which slot is current, and how
//! far into it we are, live in one 64-bit word, `epoch << 32 | offset`:
//! taking `n` IDs is a single `fetch_add(n)` on it. The epoch says which
//! segment the offset belongs to, so an offset can never be paired with a
//! segment it was not taken from. That is the bug a separate "next" counter
//! and "end" field would have: a thread that read the counter just before a
//! segment switch could check it against the new segment's end and hand out
//! an ID of the gap or one someone else also gets.
//!
//! Installing a segment (under the generator's lock, never on the hot path)
//! writes the *other* slot, tagged with the next epoch, and then publishes
//! the new word. A reader checks the slot's tag against its epoch before and
//! after reading it (a seqlock): the slot it reads is only rewritten two
//! switches later, and the tags catch a reader that slept through both.
//!
//! Offsets past a segment's end keep counting (every failed take adds to
//! them); the lock holder clamps them back, and `n` is bounded, so they never
//! carry into the epoch.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering, fence};

use kxy_core::Segment;

/// The longest segment a cursor holds. Offsets must stay below 2^32 even
/// after many failed takes of up to [`MAX_TAKE`] each.
pub const MAX_SEGMENT_LEN: u64 = 1 << 31;

/// The most IDs one take may ask for.
pub const MAX_TAKE: u32 = 1 << 16;

/// A slot tag no epoch uses: the slot is being written or was never filled.
const INVALID: u32 = u32::MAX;

const OFFSET_MASK: u64 = 0xFFFF_FFFF;

/// What a take found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// `n` consecutive IDs starting here. `crossed_prefetch` is true for the
    /// one take that passed the segment's prefetch mark.
    Taken { first: i64, crossed_prefetch: bool },
    /// The segment of `epoch` has fewer than `n` IDs left (or there is none).
    Empty { epoch: u32 },
}

/// One buffered segment. Fields are atomics only so that a reader racing a
/// rewrite is well-defined; the tag tells whether what it read is usable.
struct Slot {
    tag: AtomicU32,
    first: AtomicI64,
    len: AtomicU32,
    /// Offset at which the next segment should be fetched.
    prefetch_at: AtomicU32,
}

impl Slot {
    const fn empty() -> Self {
        Slot {
            tag: AtomicU32::new(INVALID),
            first: AtomicI64::new(0),
            len: AtomicU32::new(0),
            prefetch_at: AtomicU32::new(u32::MAX),
        }
    }
}

/// Aligned to a cache line of its own: every take writes `word`, and
/// nothing else a take reads (the generator's fork generation, in
/// particular) may share its line, or two threads taking at once would
/// fetch the line shared for that read and then again exclusive for the
/// `fetch_add`.
#[repr(align(64))]
pub struct Cursor {
    word: AtomicU64,
    slots: [Slot; 2],
}

impl Cursor {
    /// A cursor with no segment: every take is `Empty { epoch: 0 }` until the
    /// first [`Cursor::install`].
    pub const fn new() -> Self {
        Cursor {
            word: AtomicU64::new(0),
            slots: [Slot::empty(), Slot::empty()],
        }
    }

    /// Takes `n` (1..=[`MAX_TAKE`]) consecutive IDs from the current segment.
    #[inline]
    pub fn take(&self, n: u32) -> Take {
        debug_assert!((1..=MAX_TAKE).contains(&n));
        // Acquire pairs with install's Release store of the word, so the
        // slot contents written before it are visible.
        let word = self.word.fetch_add(u64::from(n), Ordering::Acquire);
        let epoch = (word >> 32) as u32;
        let offset = (word & OFFSET_MASK) as u32;
        let slot = &self.slots[(epoch & 1) as usize];

        if slot.tag.load(Ordering::Acquire) != epoch {
            return Take::Empty { epoch };
        }
        let first = slot.first.load(Ordering::Relaxed);
        let len = slot.len.load(Ordering::Relaxed);
        let prefetch_at = slot.prefetch_at.load(Ordering::Relaxed);
        // Seqlock check: if the slot was rewritten while we read it, the
        // tag has changed (install invalidates it before writing).
        fence(Ordering::Acquire);
        if slot.tag.load(Ordering::Relaxed) != epoch {
            return Take::Empty { epoch };
        }
        let end = u64::from(offset) + u64::from(n);
        if end > u64::from(len) {
            return Take::Empty { epoch };
        }
        Take::Taken {
            first: first + i64::from(offset),
            crossed_prefetch: offset <= prefetch_at && u64::from(prefetch_at) < end,
        }
    }

    /// The epoch of the current segment.
    pub fn epoch(&self) -> u32 {
        (self.word.load(Ordering::Acquire) >> 32) as u32
    }

    /// Makes `segment` current under a new epoch and returns that epoch. The
    /// prefetch mark is set after `prefetch_after` IDs of it.
    ///
    /// Callers serialize installs (the generator's lock) and pass segments
    /// of at most [`MAX_SEGMENT_LEN`] IDs.
    pub fn install(&self, segment: Segment, prefetch_after: u32) -> u32 {
        let len = segment.len();
        assert!(
            (1..=MAX_SEGMENT_LEN).contains(&len),
            "segment of {len} IDs does not fit a cursor"
        );
        let epoch = self.epoch().wrapping_add(1);
        // Skip the tag value that means "invalid", landing on an odd epoch
        // so that consecutive epochs still alternate slots.
        let epoch = if epoch == INVALID { 1 } else { epoch };
        let slot = &self.slots[(epoch & 1) as usize];
        slot.tag.store(INVALID, Ordering::Relaxed);
        // Orders the invalidation before the writes below for any reader
        // that sees one of them (pairs with the reader's Acquire fence).
        fence(Ordering::Release);
        slot.first.store(segment.start, Ordering::Relaxed);
        slot.len.store(len as u32, Ordering::Relaxed);
        slot.prefetch_at
            .store(prefetch_after.min(len as u32 - 1), Ordering::Relaxed);
        slot.tag.store(epoch, Ordering::Release);
        self.word.store(u64::from(epoch) << 32, Ordering::Release);
        epoch
    }

    /// Brings a run-away offset of the current epoch back to the segment's
    /// length, so failed takes can never carry into the epoch bits.
    /// Called under the generator's lock.
    pub fn clamp(&self, epoch: u32) {
        let slot = &self.slots[(epoch & 1) as usize];
        let len = if slot.tag.load(Ordering::Acquire) == epoch {
            slot.len.load(Ordering::Relaxed)
        } else {
            0
        };
        let clamped = (u64::from(epoch) << 32) | u64::from(len);
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let same_epoch = (word >> 32) as u32 == epoch;
                (same_epoch && (word & OFFSET_MASK) > u64::from(len)).then_some(clamped)
            });
    }

    /// Forgets the current segment: every take is `Empty` until the next
    /// [`Cursor::install`]. For a forked child, whose cursor holds the
    /// parent's segment; it may be called while the parent's lock is held
    /// (by a thread that no longer exists), so it writes every field an
    /// interrupted install might have left half-written.
    pub fn forget(&self) {
        for slot in &self.slots {
            slot.tag.store(INVALID, Ordering::Relaxed);
        }
        let epoch = self.epoch().wrapping_add(1);
        let epoch = if epoch == INVALID { 1 } else { epoch };
        // Release: a thread that sees the new word sees the invalid tags.
        self.word.store(u64::from(epoch) << 32, Ordering::Release);
    }

    /// How many IDs of the current segment are left (0 if none).
    pub fn remaining(&self) -> u64 {
        let word = self.word.load(Ordering::Acquire);
        let epoch = (word >> 32) as u32;
        let slot = &self.slots[(epoch & 1) as usize];
        if slot.tag.load(Ordering::Acquire) != epoch {
            return 0;
        }
        u64::from(slot.len.load(Ordering::Relaxed)).saturating_sub(word & OFFSET_MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    fn seg(start: i64, end: i64) -> Segment {
        Segment { start, end }
    }

    #[test]
    fn takes_in_order_then_reports_empty() {
        let cursor = Cursor::new();
        assert_eq!(cursor.take(1), Take::Empty { epoch: 0 });
        let epoch = cursor.install(seg(101, 105), 2);
        assert_eq!(epoch, 1);
        let firsts: Vec<Take> = (0..5).map(|_| cursor.take(1)).collect();
        assert_eq!(
            firsts,
            vec![
                Take::Taken {
                    first: 101,
                    crossed_prefetch: false
                },
                Take::Taken {
                    first: 102,
                    crossed_prefetch: false
                },
                Take::Taken {
                    first: 103,
                    crossed_prefetch: true
                },
                Take::Taken {
                    first: 104,
                    crossed_prefetch: false
                },
                Take::Taken {
                    first: 105,
                    crossed_prefetch: false
                },
            ]
        );
        assert_eq!(cursor.take(1), Take::Empty { epoch: 1 });
        assert_eq!(cursor.remaining(), 0);
    }

    #[test]
    fn runs_are_contiguous_and_never_straddle_a_segment() {
        let cursor = Cursor::new();
        cursor.install(seg(1, 10), 5);
        assert_eq!(
            cursor.take(4),
            Take::Taken {
                first: 1,
                crossed_prefetch: false
            }
        );
        assert_eq!(
            cursor.take(4),
            Take::Taken {
                first: 5,
                crossed_prefetch: true
            }
        );
        // Only 2 left: a run of 4 is refused rather than split.
        assert_eq!(cursor.take(4), Take::Empty { epoch: 1 });
        cursor.clamp(1);
        assert_eq!(cursor.remaining(), 0);
        cursor.install(seg(50, 59), 5);
        assert_eq!(
            cursor.take(4),
            Take::Taken {
                first: 50,
                crossed_prefetch: false
            }
        );
    }

    #[test]
    fn clamping_stops_offsets_from_growing() {
        let cursor = Cursor::new();
        cursor.install(seg(1, 3), 1);
        for _ in 0..100 {
            cursor.take(MAX_TAKE);
        }
        cursor.clamp(1);
        assert_eq!(cursor.word.load(Ordering::Relaxed), (1u64 << 32) | 3);
    }

    #[test]
    fn a_forgotten_segment_hands_out_nothing_until_the_next_install() {
        let cursor = Cursor::new();
        cursor.install(seg(1, 100), 20);
        assert!(matches!(cursor.take(1), Take::Taken { first: 1, .. }));
        cursor.forget();
        let Take::Empty { epoch } = cursor.take(1) else {
            panic!("a forgotten segment must not be taken from");
        };
        assert_eq!(cursor.remaining(), 0);
        cursor.clamp(epoch);
        cursor.install(seg(500, 600), 20);
        assert!(matches!(cursor.take(1), Take::Taken { first: 500, .. }));
    }

    #[test]
    fn a_small_prefetch_mark_is_kept_within_the_segment() {
        let cursor = Cursor::new();
        cursor.install(seg(7, 7), 100);
        assert_eq!(
            cursor.take(1),
            Take::Taken {
                first: 7,
                crossed_prefetch: true
            }
        );
    }

    /// Many threads take while one thread installs segment after segment:
    /// every ID handed out belongs to an installed segment and none twice.
    #[test]
    fn concurrent_takes_and_installs_never_repeat_or_invent_ids() {
        const SEGMENTS: i64 = 2_000;
        const LEN: i64 = 64;
        let cursor = Arc::new(Cursor::new());
        // Segments with gaps between them, so a mis-paired offset would
        // produce an ID in a gap and be caught.
        let segment = |i: i64| seg(i * 1000 + 1, i * 1000 + LEN);
        cursor.install(segment(0), 0);
        let installed = Arc::new(Mutex::new(1i64));
        let mut threads = Vec::new();
        for t in 0..4 {
            let (cursor, installed) = (Arc::clone(&cursor), Arc::clone(&installed));
            threads.push(std::thread::spawn(move || {
                let mut got = Vec::new();
                let n = [1, 1, 3, 7][t];
                loop {
                    match cursor.take(n) {
                        Take::Taken { first, .. } => got.extend(first..first + i64::from(n)),
                        Take::Empty { epoch } => {
                            let mut next = installed.lock().unwrap();
                            if *next == SEGMENTS {
                                return got;
                            }
                            if cursor.epoch() == epoch {
                                cursor.clamp(epoch);
                                cursor.install(segment(*next), 0);
                                *next += 1;
                            }
                        }
                    }
                }
            }));
        }
        let mut seen = HashSet::new();
        for t in threads {
            for id in t.join().unwrap() {
                let in_segment = (id - 1) % 1000 < LEN && id >= 1;
                assert!(in_segment, "{id} is in no installed segment");
                assert!(seen.insert(id), "{id} was handed out twice");
            }
        }
        assert!(
            seen.len() as i64 > SEGMENTS * LEN / 2,
            "takes happened: {}",
            seen.len()
        );
    }
}
