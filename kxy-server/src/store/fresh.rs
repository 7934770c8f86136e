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
//!
//! The embedded store belongs to one process, so every change to a marker
//! is made by this process and reported with [`FreshVersion::wrote`]: there
//! the version is known without asking the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    /// For a store no other process writes: the newest version written.
    local: Option<AtomicU64>,
    local_loaded: AtomicBool,
}

impl FreshVersion {
    pub fn new(store: Arc<dyn Store>, collection: &'static str, id: &'static str) -> Self {
        let shared = store.backend() != super::embedded::BACKEND;
        FreshVersion {
            local: (!shared).then(|| AtomicU64::new(0)),
            local_loaded: AtomicBool::new(false),
            store,
            collection,
            id,
            arrivals: AtomicU64::new(0),
            last: Mutex::new((0, 0)),
        }
    }

    /// This process wrote the marker, which is now at `version`.
    pub fn wrote(&self, version: u64) {
        if let Some(local) = &self.local {
            local.fetch_max(version, Ordering::SeqCst);
        }
    }

    /// The marker's version (0 if absent), read after this call began.
    pub async fn read(&self) -> Result<u64, StoreError> {
        if let Some(local) = &self.local {
            if !self.local_loaded.load(Ordering::SeqCst) {
                let stored = self.read_store().await?;
                local.fetch_max(stored, Ordering::SeqCst);
                self.local_loaded.store(true, Ordering::SeqCst);
            }
            return Ok(local.load(Ordering::SeqCst));
        }
        self.read_store().await
    }

    async fn read_store(&self) -> Result<u64, StoreError> {
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
