//! Validation of allocation requests.
//!
//! The counter's identity is validated by [`crate::key`]; this module checks
//! the remaining inputs: how many IDs one request may take, and the value a
//! counter may be registered at. Both limits exist so a single bad request
//! cannot burn through the ID space or register a counter that could never
//! hand out a positive ID.

/// Server-side limits on allocation requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocationLimits {
    /// The largest `segment_count` one request may ask for.
    pub max_segment: i64,
}

impl AllocationLimits {
    /// One billion: large enough for a client that adapts its segment size to
    /// tens of millions of IDs per second, small enough that the 2^63 ID space
    /// outlasts billions of maximal requests.
    pub const DEFAULT_MAX_SEGMENT: i64 = 1_000_000_000;

    /// Limits with the given maximum, which must be at least 1.
    pub fn new(max_segment: i64) -> Result<Self, SegmentCountError> {
        if max_segment < 1 {
            return Err(SegmentCountError::InvalidMaximum { max: max_segment });
        }
        Ok(AllocationLimits { max_segment })
    }

    /// Checks a requested `segment_count`.
    pub fn segment_count(&self, requested: i64) -> Result<SegmentCount, SegmentCountError> {
        if (1..=self.max_segment).contains(&requested) {
            Ok(SegmentCount(requested))
        } else {
            Err(SegmentCountError::OutOfRange {
                requested,
                max: self.max_segment,
            })
        }
    }
}

impl Default for AllocationLimits {
    fn default() -> Self {
        AllocationLimits {
            max_segment: Self::DEFAULT_MAX_SEGMENT,
        }
    }
}

/// A number of IDs to allocate, known to be within the server's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCount(i64);

impl SegmentCount {
    pub fn get(self) -> i64 {
        self.0
    }

    /// The combined size of several requests, for a store that serves them
    /// with one allocation; `None` if it would not fit an `i64`. Not bound by
    /// [`AllocationLimits`]: each part was checked on its own.
    pub fn total(counts: impl IntoIterator<Item = SegmentCount>) -> Option<SegmentCount> {
        counts
            .into_iter()
            .try_fold(0i64, |sum, c| sum.checked_add(c.0))
            .filter(|&sum| sum >= 1)
            .map(SegmentCount)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentCountError {
    #[error("segment_count must be between 1 and {max}; got {requested}")]
    OutOfRange { requested: i64, max: i64 },
    #[error("the maximum segment size must be at least 1; got {max}")]
    InvalidMaximum { max: i64 },
}

/// The largest value a counter may be registered at: one below `i64::MAX`, so
/// that at least one ID remains to be handed out.
pub const MAX_COUNTER_START: i64 = i64::MAX - 1;

/// Why a counter cannot be registered at a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("start must be between 0 and {MAX_COUNTER_START}; got {start}")]
pub struct InvalidStart {
    pub start: i64,
}

/// Checks the value a counter is registered at: the highest ID already in use
/// (0 for a fresh counter), so that the first ID handed out is `start + 1`.
pub fn counter_start(start: i64) -> Result<i64, InvalidStart> {
    if (0..=MAX_COUNTER_START).contains(&start) {
        Ok(start)
    } else {
        Err(InvalidStart { start })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_count_bounds() {
        let limits = AllocationLimits::new(100).unwrap();
        assert_eq!(limits.segment_count(1).unwrap().get(), 1);
        assert_eq!(limits.segment_count(100).unwrap().get(), 100);
        for bad in [0, -1, 101, i64::MIN, i64::MAX] {
            let err = limits.segment_count(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("segment_count must be between 1 and 100; got {bad}")
            );
        }
    }

    #[test]
    fn totals() {
        let limits = AllocationLimits::new(i64::MAX).unwrap();
        let c = |n| limits.segment_count(n).unwrap();
        assert_eq!(SegmentCount::total([c(1), c(2), c(3)]), Some(c(6)));
        assert_eq!(SegmentCount::total([c(i64::MAX), c(1)]), None);
        assert_eq!(SegmentCount::total([]), None);
    }

    #[test]
    fn maximum_must_be_positive() {
        assert!(AllocationLimits::new(0).is_err());
        assert_eq!(
            AllocationLimits::default().max_segment,
            AllocationLimits::DEFAULT_MAX_SEGMENT
        );
    }

    #[test]
    fn counter_start_bounds() {
        assert_eq!(counter_start(0), Ok(0));
        assert_eq!(counter_start(MAX_COUNTER_START), Ok(MAX_COUNTER_START));
        assert!(counter_start(-1).is_err());
        assert_eq!(
            counter_start(i64::MAX).unwrap_err().to_string(),
            "start must be between 0 and 9223372036854775806; got 9223372036854775807"
        );
    }
}
