//! Coalescing: concurrent allocations of one counter share one store call.
//!
//! When many requests hit the same counter at once (a busy table), sending
//! each to Redis separately costs one script run and its syscalls per
//! request. [`Coalescing`] keeps at most one call in flight per counter:
//! requests that arrive meanwhile wait in that counter's queue, and when the
//! call returns, the whole queue is served by one allocation of the summed
//! size, cut into consecutive pieces in arrival order. An idle counter pays
//! nothing extra (its first request is sent at once); a busy one sends one
//! call per round trip instead of one per request.
//!
//! Store calls run in a spawned task, not in the request's future, so a
//! caller that disconnects cannot leave a counter's queue without a worker.
//! When a call finds the store unavailable (a timeout, say), the requests
//! that queued behind it fail with it rather than wait for a second timeout.
//! IDs of a caller that left are simply never used (a gap, never a repeat).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kxy_core::{Segment, SegmentCount, SegmentKey};
use tokio::sync::oneshot;

use std::time::Duration;

use super::{
    Beat, CounterState, DurabilityFacts, Expect, Mark, MissingCounter, Observation, Record,
    Registration, Settlement, Settling, Store, StoreError,
};

/// A [`Store`] that merges concurrent allocations per counter; every other
/// operation goes straight to the inner store.
pub struct Coalescing<S> {
    shared: Arc<Shared<S>>,
}

struct Shared<S> {
    inner: S,
    /// A counter has an entry exactly while a worker task serves it; the
    /// entry holds the requests the worker has not taken yet. A std mutex:
    /// it is held only to push or take, never across an `.await`.
    queues: Mutex<HashMap<SegmentKey, Vec<Waiter>>>,
}

struct Waiter {
    count: SegmentCount,
    missing: MissingCounter,
    reply: oneshot::Sender<Result<Segment, StoreError>>,
}

impl<S: Store> Coalescing<S> {
    pub fn new(inner: S) -> Self {
        Coalescing {
            shared: Arc::new(Shared {
                inner,
                queues: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.shared.inner
    }
}

#[async_trait]
impl<S: Store> Store for Coalescing<S> {
    fn backend(&self) -> &'static str {
        self.shared.inner.backend()
    }

    fn location(&self) -> String {
        self.shared.inner.location()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.shared.inner.ping().await
    }

    async fn store_id(&self) -> Result<String, StoreError> {
        self.shared.inner.store_id().await
    }

    async fn durability(&self) -> Result<DurabilityFacts, StoreError> {
        self.shared.inner.durability().await
    }

    async fn fence(&self, key: &SegmentKey, floor: i64) -> Result<i64, StoreError> {
        self.shared.inner.fence(key, floor).await
    }

    async fn allocate(
        &self,
        key: &SegmentKey,
        count: SegmentCount,
        missing: MissingCounter,
    ) -> Result<Segment, StoreError> {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            count,
            missing,
            reply,
        };
        let start_worker = match self.shared.lock_queues().entry(key.clone()) {
            Entry::Occupied(mut queue) => {
                queue.get_mut().push(waiter);
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(vec![waiter]);
                true
            }
        };
        if start_worker {
            tokio::spawn(Arc::clone(&self.shared).serve(key.clone()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable {
                backend: self.backend(),
                reason: "the allocation task stopped".into(),
            })
        })
    }

    async fn register(&self, key: &SegmentKey, start: i64) -> Result<Registration, StoreError> {
        self.shared.inner.register(key, start).await
    }

    async fn counters(&self) -> Result<Vec<CounterState>, StoreError> {
        self.shared.inner.counters().await
    }

    async fn record(&self, collection: &str, id: &str) -> Result<Option<Record>, StoreError> {
        self.shared.inner.record(collection, id).await
    }

    async fn put_record(
        &self,
        collection: &str,
        id: &str,
        value: &str,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        self.shared
            .inner
            .put_record(collection, id, value, expect)
            .await
    }

    async fn delete_record(
        &self,
        collection: &str,
        id: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        self.shared
            .inner
            .delete_record(collection, id, expect)
            .await
    }

    async fn records(&self, collection: &str) -> Result<Vec<(String, Record)>, StoreError> {
        self.shared.inner.records(collection).await
    }

    async fn hit_mark(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.shared.inner.hit_mark(key, window).await
    }

    async fn set_mark(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        self.shared.inner.set_mark(key, ttl).await
    }

    async fn mark(&self, key: &str) -> Result<Option<Mark>, StoreError> {
        self.shared.inner.mark(key).await
    }

    async fn clear_mark(&self, key: &str) -> Result<(), StoreError> {
        self.shared.inner.clear_mark(key).await
    }

    async fn observe(
        &self,
        instance: &str,
        verified: Option<&str>,
        timing: Settling,
        beat: Option<Beat<'_>>,
    ) -> Result<Observation, StoreError> {
        self.shared
            .inner
            .observe(instance, verified, timing, beat)
            .await
    }

    async fn settle(
        &self,
        epoch: &str,
        base: &[CounterState],
        timing: Settling,
    ) -> Result<Settlement, StoreError> {
        self.shared.inner.settle(epoch, base, timing).await
    }

    async fn base(&self, epoch: &str) -> Result<Vec<(SegmentKey, i64)>, StoreError> {
        self.shared.inner.base(epoch).await
    }

    fn trust(&self, epoch: Option<Arc<str>>) {
        self.shared.inner.trust(epoch)
    }
}

/// Hands a counter's queue on when its worker ends abnormally (a panic in
/// the store call): the requests of the failed call are answered with an
/// error as their reply senders drop, and the requests queued behind it get
/// a new worker.
struct WorkerGuard<S: Store> {
    shared: Arc<Shared<S>>,
    key: SegmentKey,
    /// Set when the worker ended normally, having removed its queue.
    done: bool,
}

impl<S: Store> Drop for WorkerGuard<S> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut queues = self.shared.lock_queues();
        let Some(queue) = queues.get(&self.key) else {
            return;
        };
        tracing::error!(
            "the allocation worker of {} stopped abnormally; {} queued requests go to a new one",
            self.key,
            queue.len()
        );
        if queue.is_empty() {
            queues.remove(&self.key);
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(Arc::clone(&self.shared).serve(self.key.clone()));
        } else {
            // No runtime to serve them: dropping them answers with an error.
            queues.remove(&self.key);
        }
    }
}

impl<S> Shared<S> {
    /// The queues, even if a panicking thread poisoned the lock: every
    /// change under it is a single push, take or remove.
    fn lock_queues(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentKey, Vec<Waiter>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S: Store> Shared<S> {
    /// The worker of one counter: serves its queue batch by batch until it
    /// finds it empty, then removes the entry (under the lock, so a request
    /// arriving at that moment starts a new worker).
    async fn serve(self: Arc<Self>, key: SegmentKey) {
        // If the store call panics, the guard removes the counter's queue,
        // which fails its waiters and lets the next request start a new
        // worker, instead of queueing behind a worker that is gone.
        let mut worker = WorkerGuard {
            shared: Arc::clone(&self),
            key: key.clone(),
            done: false,
        };
        loop {
            let batch = {
                let mut queues = self.lock_queues();
                let queue = queues.get_mut(&key).expect("a served counter has a queue");
                if queue.is_empty() {
                    queues.remove(&key);
                    // A request arriving from now on starts a new worker;
                    // the guard must not start another for it.
                    worker.done = true;
                    return;
                }
                std::mem::take(queue)
            };
            // The server applies one policy to all requests, but keep the
            // two kinds apart in case a caller mixes them.
            let (create, refuse): (Vec<Waiter>, Vec<Waiter>) = batch
                .into_iter()
                .partition(|w| w.missing == MissingCounter::Create);
            let mut outage = self
                .allocate_together(&key, create, MissingCounter::Create)
                .await;
            match &outage {
                Some(e) => fail(refuse, e),
                None => {
                    outage = self
                        .allocate_together(&key, refuse, MissingCounter::Refuse)
                        .await;
                }
            }
            // The store did not answer (a timeout, a broken connection):
            // the requests that queued meanwhile would only wait for the
            // same answer once more. Fail them now, so that no request waits
            // longer than one store timeout.
            if let Some(e) = outage {
                let queued = std::mem::take(
                    self.lock_queues()
                        .get_mut(&key)
                        .expect("a served counter has a queue"),
                );
                fail(queued, &e);
            }
        }
    }

    /// One store call for all `waiters`, each answered with its own piece.
    /// Returns the error if the store was unavailable.
    async fn allocate_together(
        &self,
        key: &SegmentKey,
        waiters: Vec<Waiter>,
        missing: MissingCounter,
    ) -> Option<StoreError> {
        if waiters.is_empty() {
            return None;
        }
        let counts: Vec<SegmentCount> = waiters.iter().map(|w| w.count).collect();
        let total = SegmentCount::total(counts.iter().copied());
        let result = match total {
            Some(total) if waiters.len() > 1 => self.inner.allocate(key, total, missing).await,
            // One request, or a sum too large to take at once.
            _ => return self.allocate_each(key, waiters, missing).await,
        };
        match result {
            Ok(whole) => match whole.split(&counts) {
                Some(pieces) => {
                    for (waiter, piece) in waiters.into_iter().zip(pieces) {
                        let _ = waiter.reply.send(Ok(piece));
                    }
                    None
                }
                None => unreachable!("the store returned a segment of the summed size"),
            },
            // Together they do not fit below i64::MAX, but some may alone.
            Err(StoreError::Exhausted { .. }) => self.allocate_each(key, waiters, missing).await,
            Err(e) => {
                fail(waiters, &e);
                matches!(e, StoreError::Unavailable { .. }).then_some(e)
            }
        }
    }

    /// One store call per waiter; after the store was unavailable, the rest
    /// fail at once with the same error instead of waiting in turn.
    async fn allocate_each(
        &self,
        key: &SegmentKey,
        waiters: Vec<Waiter>,
        missing: MissingCounter,
    ) -> Option<StoreError> {
        let mut waiters = waiters.into_iter();
        while let Some(waiter) = waiters.next() {
            let result = self.inner.allocate(key, waiter.count, missing).await;
            if let Err(e @ StoreError::Unavailable { .. }) = &result {
                let e = e.clone();
                let _ = waiter.reply.send(result);
                fail(waiters.collect(), &e);
                return Some(e);
            }
            let _ = waiter.reply.send(result);
        }
        None
    }
}

/// Answers every waiter with `error`.
fn fail(waiters: Vec<Waiter>, error: &StoreError) {
    for waiter in waiters {
        let _ = waiter.reply.send(Err(error.clone()));
    }
}
