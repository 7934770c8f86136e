//! Segment allocation: the service kxy exists for.
//!
//! [`SegmentService`] applies the server's policy (the largest segment one
//! request may take, whether unregistered counters are refused) and asks the
//! store for the IDs. Handlers parse; this decides; the store carries out.

use std::sync::Arc;

use kxy_core::{AllocationLimits, Segment, SegmentKey, counter_start};

use crate::Error;
use crate::store::{CounterState, MissingCounter, Registration, Store};

/// Allocation and registration of counters, with the server's policy.
pub struct SegmentService {
    store: Arc<dyn Store>,
    limits: AllocationLimits,
    missing: MissingCounter,
}

impl SegmentService {
    pub fn new(store: Arc<dyn Store>, limits: AllocationLimits, missing: MissingCounter) -> Self {
        SegmentService {
            store,
            limits,
            missing,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Takes `segment_count` IDs from the counter.
    pub async fn allocate(&self, key: &SegmentKey, segment_count: i64) -> Result<Segment, Error> {
        let count = self.limits.segment_count(segment_count)?;
        Ok(self.store.allocate(key, count, self.missing).await?)
    }

    /// Registers the counter so that its first ID is `start + 1`; never moves
    /// an existing counter backwards.
    pub async fn register(&self, key: &SegmentKey, start: i64) -> Result<Registration, Error> {
        let start = counter_start(start)?;
        Ok(self.store.register(key, start).await?)
    }

    pub async fn counters(&self) -> Result<Vec<CounterState>, Error> {
        Ok(self.store.counters().await?)
    }
}
