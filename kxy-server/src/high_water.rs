//! High-water marks: the highest ID this instance has handed out, per
//! counter, so it can tell when its store went backwards.
//!
//! A store that lost acknowledged increments (Redis restarted from an older
//! snapshot, a failover to a lagging replica, a restored backup) hands out
//! ranges again. An instance that remembers what it handed out sees it: a
//! segment that does not start above the mark it held *before asking* was
//! handed out already. (Comparing with the mark after the answer would be
//! wrong: concurrent answers of one counter arrive in any order.)
//!
//! The marks live in memory; a [`crate::witness`] journal keeps them across
//! restarts of the instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use kxy_core::{Segment, SegmentKey};

/// Per counter, the highest segment end this instance handed out.
#[derive(Default)]
pub struct HighWater {
    marks: Mutex<HashMap<SegmentKey, i64>>,
    /// Set by every raise; the witness writer takes it.
    dirty: AtomicBool,
}

/// A segment that lies at or below what was handed out before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WentBackwards {
    /// The mark held before the request: IDs up to it were handed out.
    pub expected_above: i64,
    pub got: Segment,
}

impl HighWater {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentKey, i64>> {
        // Every change is a single insert; a poisoned map is still sound.
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mark of `key`, to take before asking the store.
    pub fn get(&self, key: &SegmentKey) -> Option<i64> {
        self.lock().get(key).copied()
    }

    /// Checks `got` against the mark taken before asking (`before`), then
    /// raises the mark to its end if it passed.
    pub fn admit(
        &self,
        key: &SegmentKey,
        before: Option<i64>,
        got: Segment,
    ) -> Result<(), WentBackwards> {
        if let Some(mark) = before
            && got.start <= mark
        {
            return Err(WentBackwards {
                expected_above: mark,
                got,
            });
        }
        self.raise(key, got.end);
        Ok(())
    }

    /// Raises the mark of `key` to `end` (never lowers it).
    pub fn raise(&self, key: &SegmentKey, end: i64) {
        let mut marks = self.lock();
        match marks.get_mut(key) {
            Some(mark) if *mark >= end => return,
            Some(mark) => *mark = end,
            None => {
                marks.insert(key.clone(), end);
            }
        }
        drop(marks);
        self.dirty.store(true, Ordering::Release);
    }

    /// Every mark, ordered by counter.
    pub fn snapshot(&self) -> Vec<(SegmentKey, i64)> {
        let mut all: Vec<_> = self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort();
        all
    }

    /// Whether marks were raised since the last call.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_must_start_above_the_mark_taken_before_asking() {
        let marks = HighWater::default();
        let key = SegmentKey::new("s", "d", "t", "id").unwrap();
        let seg = |start, end| Segment { start, end };
        assert_eq!(marks.get(&key), None);
        marks.admit(&key, None, seg(1, 10)).unwrap();
        // Two requests in flight at once: the later answer comes first.
        let before = marks.get(&key);
        marks.admit(&key, before, seg(21, 30)).unwrap();
        marks.admit(&key, before, seg(11, 20)).unwrap();
        assert_eq!(marks.get(&key), Some(30));
        assert!(marks.take_dirty());
        assert!(!marks.take_dirty());
        // The store went back to 10: the next answer repeats 11..20.
        let before = marks.get(&key);
        assert_eq!(
            marks.admit(&key, before, seg(11, 20)),
            Err(WentBackwards {
                expected_above: 30,
                got: seg(11, 20)
            })
        );
        assert_eq!(
            marks.get(&key),
            Some(30),
            "a refused segment raises nothing"
        );
        assert_eq!(marks.snapshot(), vec![(key, 30)]);
    }
}
