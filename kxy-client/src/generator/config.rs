//! `GeneratorConfig`: how a generator sizes its segments and how long a
//! call waits for one when the cache is empty.
//!
//! Two ways of waiting ([`Patience`]) serve two kinds of caller. A service
//! that would rather ride out a server restart than fail retries in the
//! background for up to `max_wait` (the default). A caller that expects the
//! published Python client's behaviour wants [`Patience::OneRound`]: each
//! base URL is asked once, bounded by the client's own timeout, and the
//! call fails with that round's error, so an outage is reported at once
//! and a slow server is waited for as long as the client's timeout allows.

use std::time::Duration;

use kxy_core::StepPolicy;

use super::cursor::MAX_SEGMENT_LEN;
use crate::ClientError;

/// How a call that finds the cache empty waits for a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// The fetch retries with backoff while the generator lives; a waiting
    /// call gives up after `max_wait`. With several base URLs, each attempt
    /// at one is bounded by a share of `max_wait`.
    Retry { max_wait: Duration },
    /// One round: each base URL is asked once, each bounded by the client's
    /// timeout; if none gives a segment, every call that waited for the
    /// round fails with its last error, and the next call starts a new one.
    OneRound,
}

/// How a generator sizes segments and how long it waits for one. Built
/// only through its constructors and `with_*` methods, which check every
/// bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneratorConfig {
    /// The size of the first segment asked for.
    pub(super) initial_size: i64,
    /// Bounds and target lifetime of later segment sizes.
    pub(super) policy: StepPolicy,
    /// How a call waits when both buffers are empty.
    pub(super) patience: Patience,
}

impl GeneratorConfig {
    /// The default largest segment: ten million IDs, a tenth of a second at
    /// 100 M IDs/s, so even the fastest consumer calls the server rarely.
    pub const DEFAULT_MAX_SIZE: i64 = 10_000_000;
    pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);

    /// Segments start at `initial_size`, never shrink below it, and grow up
    /// to [`Self::DEFAULT_MAX_SIZE`] (or `initial_size`, if larger) to last
    /// about [`StepPolicy::DEFAULT_TARGET_LIFETIME`] each.
    pub fn new(initial_size: i64) -> Result<Self, ClientError> {
        let max = initial_size.max(Self::DEFAULT_MAX_SIZE);
        Self::with_bounds(initial_size, initial_size, max)
    }

    /// Explicit bounds; `initial_size` must lie within them and `max` within
    /// 2^31 (a generator's segments fit a 32-bit offset).
    pub fn with_bounds(initial_size: i64, min: i64, max: i64) -> Result<Self, ClientError> {
        let invalid = |msg: String| ClientError::InvalidArgument(msg);
        let policy = StepPolicy::new(min, max, StepPolicy::DEFAULT_TARGET_LIFETIME)
            .map_err(|e| invalid(e.to_string()))?;
        if !(min..=max).contains(&initial_size) {
            return Err(invalid(format!(
                "segment_count {initial_size} must lie between {min} and {max}"
            )));
        }
        if max as u64 > MAX_SEGMENT_LEN {
            return Err(invalid(format!(
                "the largest segment size is {MAX_SEGMENT_LEN}; got {max}"
            )));
        }
        Ok(GeneratorConfig {
            initial_size,
            policy,
            patience: Patience::Retry {
                max_wait: Self::DEFAULT_MAX_WAIT,
            },
        })
    }

    /// How long a segment should last at the current rate of use (default
    /// [`StepPolicy::DEFAULT_TARGET_LIFETIME`]); must be longer than zero.
    pub fn with_target_lifetime(mut self, lifetime: Duration) -> Result<Self, ClientError> {
        self.policy = StepPolicy::new(self.policy.min, self.policy.max, lifetime)
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        Ok(self)
    }

    /// Retry in the background, and let a call wait at most `max_wait` for
    /// a segment when the cache is empty (the default, with
    /// [`Self::DEFAULT_MAX_WAIT`]); must be longer than zero.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Result<Self, ClientError> {
        if max_wait.is_zero() {
            return Err(ClientError::InvalidArgument(
                "max_wait must be longer than zero".into(),
            ));
        }
        self.patience = Patience::Retry { max_wait };
        Ok(self)
    }

    /// Ask each base URL once per round and fail with the round's error
    /// (see [`Patience::OneRound`]).
    pub fn one_round(mut self) -> Self {
        self.patience = Patience::OneRound;
        self
    }

    /// The size of the first segment asked for.
    pub fn initial_size(&self) -> i64 {
        self.initial_size
    }

    /// The smallest segment asked for.
    pub fn min_size(&self) -> i64 {
        self.policy.min
    }

    /// The largest segment asked for, and the longest run `next_ids` gives.
    pub fn max_size(&self) -> i64 {
        self.policy.max
    }

    /// How long a segment should last.
    pub fn target_lifetime(&self) -> Duration {
        self.policy.target_lifetime
    }

    /// How a call waits for a segment when the cache is empty.
    pub fn patience(&self) -> Patience {
        self.patience
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_checks_its_bounds() {
        assert!(GeneratorConfig::new(0).is_err());
        assert!(GeneratorConfig::with_bounds(5, 10, 100).is_err());
        assert!(GeneratorConfig::with_bounds(10, 10, 1 << 40).is_err());
        let config = GeneratorConfig::with_bounds(10, 5, 100).unwrap();
        assert_eq!(
            (config.initial_size(), config.min_size(), config.max_size()),
            (10, 5, 100)
        );
        assert!(config.with_max_wait(Duration::ZERO).is_err());
        assert!(config.with_target_lifetime(Duration::ZERO).is_err());
        let config = config.with_max_wait(Duration::from_secs(1)).unwrap();
        assert_eq!(
            config.patience(),
            Patience::Retry {
                max_wait: Duration::from_secs(1)
            }
        );
        assert_eq!(config.one_round().patience(), Patience::OneRound);
    }
}
