//! A version marker read no earlier than the request that asks for it.
//!
//! Caches of security decisions (verified API keys, the compiled access
//! policy) are dropped when a marker record in the store changes version. A
//! background refresh alone would let another instance act on a revoked key
//! or a deleted role for up to one refresh interval after the revoke
//! returned. So each decision asks [`FreshVersion::read`] instead: it returns
//! the marker's version as read by a store call that *started after* the
//! caller arrived, and any change that completed before the caller arrived is
//! therefore seen.
//!
//! Concurrent callers share reads: while one read is in flight the others
//! queue, and the next read covers everyone who arrived before it started.
//! Under load that is one store round trip per batch of requests, not one
//! per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use super::{Store, StoreError};

/// Reads of one marker record (`collection`/`id`), shared as above.
pub struct FreshVersion {
    store: Arc<dyn Store>,
    collection: &'static str,
    id: &'static str,
    /// Callers numbered in order of arrival.
    arrivals: AtomicU64,
    /// The last read: the highest arrival it covers, and the version seen.
    last: Mutex<(u64, u64)>,
}

impl FreshVersion {
    pub fn new(store: Arc<dyn Store>, collection: &'static str, id: &'static str) -> Self {
        FreshVersion {
            store,
            collection,
            id,
            arrivals: AtomicU64::new(0),
            last: Mutex::new((0, 0)),
        }
    }

    /// The marker's version (0 if absent), read after this call began.
    pub async fn read(&self) -> Result<u64, StoreError> {
        let ticket = self.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
        // tokio's mutex is fair: callers are served in the order they queued.
        let mut last = self.last.lock().await;
        if last.0 >= ticket {
            return Ok(last.1);
        }
        // Everyone who has arrived by now is covered by a read that starts now.
        let covers = self.arrivals.load(Ordering::SeqCst);
        let version = self
            .store
            .record(self.collection, self.id)
            .await?
            .map_or(0, |r| r.version);
        *last = (covers, version);
        Ok(version)
    }
}
