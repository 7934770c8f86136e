//! Segments: the inclusive ID ranges a counter hands out.
//!
//! A counter stores the highest ID it has handed out (or, right after
//! registration, the highest ID already in use). Allocating `n` IDs moves it
//! from `current` to `current + n` and hands out `[current + 1, current + n]`.
//! IDs are positive `i64` values, because that is what every database column
//! and every client language can hold; the arithmetic is checked, so a counter
//! near `i64::MAX` reports exhaustion instead of wrapping to negative IDs.

use serde::{Deserialize, Serialize};

use crate::request::SegmentCount;

/// An inclusive range of IDs, `start..=end`, with `1 <= start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Segment {
    pub start: i64,
    pub end: i64,
}

/// The counter cannot hand out the requested number of IDs without passing
/// `i64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "counter is exhausted: it stands at {current} and {requested} more IDs would pass the largest ID {}",
    i64::MAX
)]
pub struct Exhausted {
    pub current: i64,
    pub requested: i64,
}

impl Segment {
    /// The segment handed out when a counter standing at `current` is asked
    /// for `count` IDs; the counter's new value is the segment's `end`.
    pub fn after(current: i64, count: SegmentCount) -> Result<Segment, Exhausted> {
        let requested = count.get();
        let exhausted = Exhausted { current, requested };
        let start = current.checked_add(1).ok_or(exhausted)?;
        let end = current.checked_add(requested).ok_or(exhausted)?;
        if start < 1 {
            // A counter only ever holds values >= 0; treat anything else as
            // unusable rather than hand out non-positive IDs.
            return Err(exhausted);
        }
        Ok(Segment { start, end })
    }

    /// The segment whose last ID is `end` and which holds `count` IDs: what a
    /// store that adds atomically (Redis `INCRBY`) reports back.
    ///
    /// `None` if such a segment would include IDs below 1.
    pub fn ending_at(end: i64, count: SegmentCount) -> Option<Segment> {
        let start = end.checked_sub(count.get())?.checked_add(1)?;
        (start >= 1).then_some(Segment { start, end })
    }

    /// Cuts the segment into consecutive pieces of the given sizes, in order,
    /// for handing one allocation out to several requests. `None` unless the
    /// sizes add up to exactly the segment's length.
    pub fn split(self, counts: &[SegmentCount]) -> Option<Vec<Segment>> {
        let mut pieces = Vec::with_capacity(counts.len());
        let mut next = self.start;
        for count in counts {
            let end = next.checked_add(count.get() - 1)?;
            if end > self.end {
                return None;
            }
            pieces.push(Segment { start: next, end });
            // Past the last piece this may pass i64::MAX; only then is it unused.
            next = end.wrapping_add(1);
        }
        (next.wrapping_sub(1) == self.end).then_some(pieces)
    }

    /// How many IDs the segment holds.
    pub fn len(&self) -> u64 {
        // start <= end, so this cannot underflow; the +1 cannot overflow u64.
        (self.end as i128 - self.start as i128 + 1) as u64
    }

    /// Always false: a segment holds at least one ID. Present for clippy's
    /// `len_without_is_empty` and for symmetry with collections.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, id: i64) -> bool {
        (self.start..=self.end).contains(&id)
    }

    /// Whether the two segments share at least one ID.
    pub fn overlaps(&self, other: &Segment) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::AllocationLimits;
    use proptest::prelude::*;

    fn count(n: i64) -> SegmentCount {
        AllocationLimits {
            max_segment: i64::MAX,
        }
        .segment_count(n)
        .unwrap()
    }

    #[test]
    fn first_segment_of_a_fresh_counter() {
        assert_eq!(
            Segment::after(0, count(10_000)).unwrap(),
            Segment {
                start: 1,
                end: 10_000
            }
        );
    }

    #[test]
    fn a_counter_registered_at_n_starts_at_n_plus_one() {
        let s = Segment::after(41, count(1)).unwrap();
        assert_eq!((s.start, s.end, s.len()), (42, 42, 1));
    }

    #[test]
    fn exhaustion_is_an_error_never_a_wrap() {
        assert_eq!(
            Segment::after(i64::MAX - 10, count(10)).unwrap(),
            Segment {
                start: i64::MAX - 9,
                end: i64::MAX
            }
        );
        let err = Segment::after(i64::MAX - 10, count(11)).unwrap_err();
        assert_eq!(
            err,
            Exhausted {
                current: i64::MAX - 10,
                requested: 11
            }
        );
        assert!(err.to_string().contains("9223372036854775807"));
        assert!(Segment::after(i64::MAX, count(1)).is_err());
    }

    #[test]
    fn negative_counters_are_refused() {
        assert!(Segment::after(-5, count(3)).is_err());
    }

    #[test]
    fn ending_at_matches_after() {
        let s = Segment::after(99, count(50)).unwrap();
        assert_eq!(Segment::ending_at(s.end, count(50)), Some(s));
        assert_eq!(Segment::ending_at(3, count(5)), None);
    }

    #[test]
    fn segment_round_trips_through_json() {
        let s = Segment {
            start: 1,
            end: 10_000,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"start":1,"end":10000}"#);
        assert_eq!(serde_json::from_str::<Segment>(&json).unwrap(), s);
    }

    #[test]
    fn split_hands_out_consecutive_pieces() {
        let s = Segment { start: 11, end: 20 };
        let pieces = s.split(&[count(3), count(1), count(6)]).unwrap();
        assert_eq!(
            pieces,
            vec![
                Segment { start: 11, end: 13 },
                Segment { start: 14, end: 14 },
                Segment { start: 15, end: 20 }
            ]
        );
        assert_eq!(s.split(&[count(3)]), None, "sizes must cover the segment");
        assert_eq!(s.split(&[count(8), count(3)]), None, "nor exceed it");
        let top = Segment {
            start: i64::MAX - 1,
            end: i64::MAX,
        };
        assert_eq!(top.split(&[count(1), count(1)]).unwrap()[1].end, i64::MAX);
    }

    proptest! {
        /// Splitting a segment yields pieces of exactly the requested sizes
        /// that are disjoint and together are the whole segment.
        #[test]
        fn split_is_an_exact_partition(
            start in 1i64..1_000_000,
            sizes in proptest::collection::vec(1i64..1000, 1..40),
        ) {
            let counts: Vec<SegmentCount> = sizes.iter().map(|&n| count(n)).collect();
            let total = SegmentCount::total(counts.iter().copied()).unwrap();
            let whole = Segment::after(start - 1, total).unwrap();
            let pieces = whole.split(&counts).unwrap();
            prop_assert_eq!(pieces.first().unwrap().start, whole.start);
            prop_assert_eq!(pieces.last().unwrap().end, whole.end);
            for (piece, n) in pieces.iter().zip(&sizes) {
                prop_assert_eq!(piece.len(), *n as u64);
            }
            for pair in pieces.windows(2) {
                prop_assert_eq!(pair[0].end + 1, pair[1].start);
            }
        }

        /// Carving segments one after another out of a counter never yields
        /// two that overlap, and each has exactly the requested size.
        #[test]
        fn successive_segments_never_overlap(
            initial in 0i64..1_000_000,
            sizes in proptest::collection::vec(1i64..100_000, 1..50),
        ) {
            let mut current = initial;
            let mut seen: Vec<Segment> = Vec::new();
            for n in sizes {
                let s = Segment::after(current, count(n)).unwrap();
                prop_assert_eq!(s.len(), n as u64);
                prop_assert!(s.start > initial);
                for earlier in &seen {
                    prop_assert!(!s.overlaps(earlier));
                }
                current = s.end;
                seen.push(s);
            }
        }

        /// Near the top of the range, allocation either fits exactly or fails.
        #[test]
        fn near_max_never_wraps(gap in 0i64..1000, n in 1i64..2000) {
            let current = i64::MAX - gap;
            match Segment::after(current, count(n)) {
                Ok(s) => {
                    prop_assert!(n <= gap);
                    prop_assert!(s.start > current && s.end >= s.start);
                }
                Err(_) => prop_assert!(n > gap),
            }
        }
    }
}
