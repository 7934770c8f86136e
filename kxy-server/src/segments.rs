//! Segment allocation: the service kxy exists for.
//!
//! [`SegmentService`] applies the server's policy (the largest segment one
//! request may take, whether unregistered counters are refused), asks the
//! [`StoreGuard`] whether the store may be trusted right now, takes the IDs
//! from the store, and fences them: a segment that does not start above what
//! this instance (or the asking client) already received means the store went
//! backwards, and nothing of it is handed out. Handlers parse; this decides;
//! the store carries out.

use std::sync::Arc;

use kxy_core::{AllocationLimits, Segment, SegmentKey, counter_start};

use crate::Error;
use crate::counter_activity::CounterActivity;
use crate::high_water::{HighWater, WentBackwards};
use crate::store::{CounterState, MissingCounter, Registration, Store, StoreError};
use crate::store_guard::{GuardSettings, StoreGuard};

/// Allocation and registration of counters, with the server's policy.
pub struct SegmentService {
    store: Arc<dyn Store>,
    limits: AllocationLimits,
    missing: MissingCounter,
    high_water: Arc<HighWater>,
    guard: Arc<StoreGuard>,
    activity: CounterActivity,
}

/// What a client says it already received of a counter: sent with a request
/// so a server without marks of its own (freshly started) still notices a
/// store that went backwards.
#[derive(Debug, Clone)]
pub struct ClientMark {
    /// The store the client's segments came from; the mark means nothing
    /// for another store.
    pub store_id: String,
    /// The highest segment end the client received.
    pub high_water: i64,
    /// Whether the mark comes from a caller the server vouches for: an API
    /// key (under `--allocation-requires-key`) whose rights include
    /// `counters:write`, the right to move counters. Such a mark that shows
    /// the store behind fences the counter for every instance, as an
    /// instance's own mark would. Any other caller's mark only refuses that
    /// caller: it could claim any mark, and a fence at 2^63 would end the
    /// counter.
    pub vouched: bool,
}

/// A segment and the store it came from.
#[derive(Debug, Clone)]
pub struct Allocated {
    pub segment: Segment,
    pub store_id: Arc<str>,
}

impl SegmentService {
    /// A service that does not watch its store (the CLI's subcommands).
    pub fn new(store: Arc<dyn Store>, limits: AllocationLimits, missing: MissingCounter) -> Self {
        let high_water = Arc::new(HighWater::default());
        let guard = Arc::new(StoreGuard::unchecked(
            Arc::clone(&store),
            Arc::clone(&high_water),
        ));
        SegmentService {
            store,
            limits,
            missing,
            high_water,
            guard,
            activity: CounterActivity::default(),
        }
    }

    /// A service that checks its store's durability and history first (and
    /// refuses to start if the store cannot keep the promise), then keeps
    /// checking while it serves.
    pub async fn guarded(
        store: Arc<dyn Store>,
        limits: AllocationLimits,
        missing: MissingCounter,
        settings: GuardSettings,
    ) -> Result<Self, Error> {
        let high_water = Arc::new(HighWater::default());
        let guard =
            StoreGuard::start(Arc::clone(&store), Arc::clone(&high_water), settings).await?;
        guard.watch();
        Ok(SegmentService {
            store,
            limits,
            missing,
            high_water,
            guard,
            activity: CounterActivity::default(),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn guard(&self) -> &Arc<StoreGuard> {
        &self.guard
    }

    /// What this instance handed out lately, per counter.
    pub fn activity(&self) -> &CounterActivity {
        &self.activity
    }

    /// Takes `segment_count` IDs from the counter.
    pub async fn allocate(
        &self,
        key: &SegmentKey,
        segment_count: i64,
        client: Option<&ClientMark>,
    ) -> Result<Allocated, Error> {
        let count = self.limits.segment_count(segment_count)?;
        let ticket = self.guard.admit()?;
        let store_id = self
            .guard
            .store_id()
            .await
            .inspect_err(|e| self.guard.store_failed(e))?;
        // The mark must be taken before asking: answers to concurrent
        // requests of one counter arrive in any order.
        let before = self.high_water.get(key);
        let segment = match self.store.allocate(key, count, self.missing).await {
            Ok(segment) => segment,
            Err(StoreError::Fenced { floor, .. })
                if let Some(mark) = before
                    && mark > floor =>
            {
                // Fenced by another instance that handed out less: the floor
                // must cover what this one handed out too.
                return Err(self.lost(key, mark).await);
            }
            Err(StoreError::NotRegistered { .. }) if let Some(mark) = before => {
                // This instance handed out IDs of it up to `mark`: the store
                // lost the counter (evicted, deleted, restored), and
                // registering it again at 0 would repeat them.
                return Err(self.lost(key, mark).await);
            }
            Err(e) => {
                self.guard.store_failed(&e);
                return Err(e.into());
            }
        };
        if let Err(backwards) = self.high_water.admit(key, before, segment) {
            return Err(self.went_backwards(key, backwards).await);
        }
        if !self.guard.still_open(ticket) {
            // The store changed while this answer was in flight, and this
            // instance may already have compared its marks without it: burn
            // the segment (a gap, never a repeat).
            return Err(StoreError::Unsettled(
                "the store changed while this allocation was in flight; its IDs are not handed \
                 out"
                .into(),
            )
            .into());
        }
        if let Some(mark) = client.filter(|m| *m.store_id == *store_id)
            && segment.start <= mark.high_water
        {
            if mark.vouched {
                let backwards = WentBackwards {
                    expected_above: mark.high_water,
                    got: segment,
                };
                return Err(self.went_backwards(key, backwards).await);
            }
            // An anonymous client's word fences nothing for the others (it
            // could claim any mark); it is refused, the log says why.
            tracing::error!(
                "store went backwards for {key}: the client already received IDs up to {}, the \
                 store handed out {}..={}; refused",
                mark.high_water,
                segment.start,
                segment.end
            );
            return Err(Error::StoreWentBackwards {
                key: key.clone(),
                expected_above: mark.high_water,
                got: segment,
            });
        }
        self.activity.record(key, segment.len());
        Ok(Allocated { segment, store_id })
    }

    /// Fences the counter in the store, so every instance refuses it, and
    /// returns the refusal.
    async fn went_backwards(&self, key: &SegmentKey, backwards: WentBackwards) -> Error {
        let WentBackwards {
            expected_above,
            got,
        } = backwards;
        tracing::error!(
            "store went backwards for {key}: this instance handed out IDs up to \
             {expected_above}, the store now hands out {}..={}; fencing the counter until an \
             operator raises it",
            got.start,
            got.end
        );
        if let Err(e) = self.store.fence(key, expected_above.max(got.end)).await {
            tracing::error!("cannot fence {key} in the store: {e}");
        }
        Error::StoreWentBackwards {
            key: key.clone(),
            expected_above,
            got,
        }
    }

    /// Fences a counter the store no longer has, or has fenced lower, at the
    /// highest ID this instance handed out, and returns the refusal.
    async fn lost(&self, key: &SegmentKey, mark: i64) -> Error {
        tracing::error!(
            "counter {key} is missing from the store or fenced below {mark}, the highest ID this \
             instance handed out of it: fencing it at {mark} so that it cannot be registered or \
             raised again below"
        );
        match self.store.fence(key, mark).await {
            Ok(floor) => Error::Store(StoreError::Fenced {
                key: key.clone(),
                floor,
            }),
            Err(e) => {
                tracing::error!("cannot fence {key} in the store: {e}");
                e.into()
            }
        }
    }

    /// Registers the counter so that its first ID is `start + 1`; never moves
    /// an existing counter backwards. Lifts a fence if `start` reaches it.
    pub async fn register(&self, key: &SegmentKey, start: i64) -> Result<Registration, Error> {
        let start = counter_start(start)?;
        Ok(self.store.register(key, start).await?)
    }

    /// Registers a new counter; refuses one that exists, naming where it
    /// stands. (Two concurrent registrations of one new name both pass the
    /// check; the store then keeps the higher start, as [`Self::register`]
    /// would: never backwards.)
    pub async fn register_new(&self, key: &SegmentKey, start: i64) -> Result<Registration, Error> {
        let start = counter_start(start)?;
        if let Some(existing) = self.store.counters().await?.iter().find(|c| c.key == *key) {
            return Err(Error::Conflict(format!(
                "counter {key} already exists (its last ID is {}); raise it instead of \
                 registering it again",
                existing.current
            )));
        }
        Ok(self.store.register(key, start).await?)
    }

    /// Raises a registered counter to `to` (the recovery step after its
    /// store went backwards); refuses an unknown counter rather than create
    /// one from a mistyped name.
    pub async fn raise(&self, key: &SegmentKey, to: i64) -> Result<Registration, Error> {
        let to = counter_start(to)?;
        let known = self.store.counters().await?.iter().any(|c| c.key == *key);
        if !known {
            return Err(StoreError::NotRegistered { key: key.clone() }.into());
        }
        Ok(self.store.register(key, to).await?)
    }

    pub async fn counters(&self) -> Result<Vec<CounterState>, Error> {
        Ok(self.store.counters().await?)
    }
}
