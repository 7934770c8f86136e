//! The step policy: how many IDs a client asks for next.
//!
//! A client that asks for too few IDs at a time calls the server constantly;
//! one that asks for too many wastes IDs when it restarts (whatever it held
//! is never used). The policy aims at a *target lifetime*: a segment should
//! last about that long at the rate IDs are being used. After each segment
//! runs out, its lifetime decides the next size: under half the target, the
//! size doubles; over twice the target, it halves; in between, it stays.
//! Doubling and halving (rather than jumping to rate × target) keeps one
//! burst or one quiet spell from swinging the size wildly, as Meituan Leaf
//! does. Sizes stay within `[min, max]`.

use std::time::Duration;

/// Bounds and target of the adaptive segment size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepPolicy {
    pub min: i64,
    pub max: i64,
    pub target_lifetime: Duration,
}

/// Why a step policy is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StepPolicyError {
    #[error("the smallest segment size must be at least 1; got {0}")]
    MinTooSmall(i64),
    #[error("the largest segment size ({max}) must be at least the smallest ({min})")]
    MaxBelowMin { min: i64, max: i64 },
    #[error("the target segment lifetime must be longer than zero")]
    ZeroLifetime,
}

impl StepPolicy {
    /// The default target lifetime: long enough that a busy client calls the
    /// server about once per ten seconds per counter, short enough that a
    /// restart wastes at most about ten seconds' worth of IDs.
    pub const DEFAULT_TARGET_LIFETIME: Duration = Duration::from_secs(10);

    pub fn new(min: i64, max: i64, target_lifetime: Duration) -> Result<Self, StepPolicyError> {
        if min < 1 {
            return Err(StepPolicyError::MinTooSmall(min));
        }
        if max < min {
            return Err(StepPolicyError::MaxBelowMin { min, max });
        }
        if target_lifetime.is_zero() {
            return Err(StepPolicyError::ZeroLifetime);
        }
        Ok(StepPolicy {
            min,
            max,
            target_lifetime,
        })
    }

    /// The next size, given the current one and how long the last segment of
    /// that size lasted.
    pub fn next_size(&self, current: i64, lifetime: Duration) -> i64 {
        let size = if lifetime < self.target_lifetime / 2 {
            current.saturating_mul(2)
        } else if lifetime > self.target_lifetime.saturating_mul(2) {
            current / 2
        } else {
            current
        };
        self.clamp(size)
    }

    /// `size` brought within `[min, max]`.
    pub fn clamp(&self, size: i64) -> i64 {
        size.clamp(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> StepPolicy {
        StepPolicy::new(1_000, 1_000_000, Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn fast_use_doubles_slow_use_halves() {
        let p = policy();
        assert_eq!(p.next_size(10_000, Duration::from_secs(1)), 20_000);
        assert_eq!(p.next_size(10_000, Duration::from_secs(10)), 10_000);
        assert_eq!(p.next_size(10_000, Duration::from_secs(60)), 5_000);
    }

    #[test]
    fn sizes_stay_within_bounds() {
        let p = policy();
        assert_eq!(p.next_size(800_000, Duration::ZERO), 1_000_000);
        assert_eq!(p.next_size(1_500, Duration::from_secs(3600)), 1_000);
        assert_eq!(p.next_size(i64::MAX, Duration::ZERO), 1_000_000);
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert!(StepPolicy::new(0, 10, Duration::from_secs(1)).is_err());
        assert!(StepPolicy::new(10, 5, Duration::from_secs(1)).is_err());
        assert!(StepPolicy::new(1, 5, Duration::ZERO).is_err());
    }

    proptest! {
        /// At a steady rate, repeated steps settle within a factor of two
        /// of rate × target (or at a bound).
        #[test]
        fn converges_to_the_target(rate in 1u64..10_000_000, start in 1_000i64..1_000_000) {
            let p = policy();
            let mut size = start;
            for _ in 0..64 {
                let lifetime = Duration::from_secs_f64(size as f64 / rate as f64);
                size = p.next_size(size, lifetime);
            }
            let ideal = (rate as f64 * 10.0).clamp(1_000.0, 1_000_000.0);
            let ratio = size as f64 / ideal;
            prop_assert!((0.25..=4.0).contains(&ratio), "size {size}, ideal {ideal}");
        }
    }
}
