//! The store guard: whether this instance may allocate from its store right
//! now, re-decided while it runs.
//!
//! kxy trusts a store only as far as it is durable, and only while its data
//! history (its *epoch*) has not changed under the instances. The guard
//! runs this instance's side of the continuity protocol (docs/continuity.md)
//! at start, every `--redis-check-interval`, and at once after an
//! allocation was refused for a changed store or a store error:
//!
//! - **Durability**: the backend's facts ([`Store::durability`]) against the
//!   operator's [`DurabilityPolicy`]. Under `strict`, a Redis that cannot
//!   keep acknowledged allocations through a crash (or is not a writable
//!   primary) stops the server from starting, and at run time closes
//!   allocation (503, code 50304) until it is fixed. Every allocation checks
//!   the same in its own round trip (see `store::redis`); the guard is what
//!   reopens.
//! - **Continuity**: a heartbeat into the store's instance registry; when
//!   the epoch is not the one this instance trusts (it just started, Redis
//!   restarted, failed over or was rolled back), the instance compares every
//!   counter it has marks for (in memory and from its [`Witness`]) with the
//!   store and fences each one that stands below its mark, then waits until
//!   the epoch is settled: no instance serves under it before every running
//!   instance has done the same.
//!
//! Allocation asks [`StoreGuard::admit`], one atomic load on the hot path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::Error;
use crate::high_water::HighWater;
use crate::store::durability::{DurabilityReport, Verdict, judge};
use crate::store::{
    Beat, DurabilityFacts, DurabilityPolicy, Observation, Settlement, Settling, Store, StoreError,
};
use crate::witness::Witness;
use kxy_core::SegmentKey;

/// How an instance watches its store.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    pub policy: DurabilityPolicy,
    /// Time between checks while all is well.
    pub interval: Duration,
    /// Where the high-water journal lives; `None` keeps no journal.
    pub witness: Option<Witness>,
}

/// How long a heartbeat may take; the settle period counts it.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the witness is written when marks moved.
const WITNESS_EVERY: Duration = Duration::from_secs(1);

const OPEN: u8 = 0;
/// The store is not durable enough for the policy.
const NOT_DURABLE: u8 = 1;
/// No check has succeeded yet: the store does not answer.
const UNREACHABLE: u8 = 2;
/// The epoch is not trusted yet: marks are being compared, or the others'
/// are awaited (or the witness cannot be read).
const SETTLING: u8 = 3;

/// The gate's state when an allocation was admitted.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

/// See the module documentation.
pub struct StoreGuard {
    store: Arc<dyn Store>,
    high_water: Arc<HighWater>,
    settings: Option<GuardSettings>,
    /// This process's name in the store's instance registry.
    instance: String,
    gate: AtomicU8,
    /// Counts the gate's closings: an allocation whose answer arrives after
    /// a closing may have been handed out by a store the instance has since
    /// compared its marks with, without it; such an answer is burnt.
    closings: AtomicU64,
    /// Why the gate is closed, for the refusal's message.
    reason: RwLock<String>,
    store_id: RwLock<Option<Arc<str>>>,
    state: Mutex<CheckState>,
    /// Wakes the checker early (after a refusal or a store error).
    kick: Notify,
    /// This instance's heartbeats, numbered: one at a time, so that each
    /// knows which number the store must still hold from the one before.
    beats: tokio::sync::Mutex<Beats>,
}

#[derive(Default)]
struct Beats {
    next: u64,
    /// The numbers the last heartbeat in the store may carry: one after a
    /// heartbeat that was answered, more after ones that were not; empty
    /// when unknown (at start, or after a long outage).
    previous: Vec<u64>,
}

#[derive(Default)]
struct CheckState {
    verdict: Option<Verdict>,
    run_id: Option<String>,
    checked_at_ms: Option<u64>,
    check_error: Option<String>,
    /// Whether the witness has been read into the marks.
    witness_loaded: bool,
    /// The epoch this instance's marks were last applied to the store
    /// under (loaded with the witness at start).
    marks_epoch: Option<String>,
    /// The epoch under which this instance has compared its marks with the
    /// store, if it did under the store's current one.
    verified: Option<String>,
    /// The epoch allocation runs under; set once it is settled and verified.
    trusted: Option<Arc<str>>,
}

impl StoreGuard {
    /// A guard that never checks and always admits: for the CLI's
    /// subcommands and for tests of other parts. It never trusts an epoch,
    /// so a Redis store refuses its allocations (the CLI registers and
    /// raises counters, it does not allocate).
    pub fn unchecked(store: Arc<dyn Store>, high_water: Arc<HighWater>) -> Self {
        StoreGuard {
            store,
            high_water,
            settings: None,
            instance: new_instance_id(),
            gate: AtomicU8::new(OPEN),
            closings: AtomicU64::new(0),
            reason: RwLock::new(String::new()),
            store_id: RwLock::new(None),
            state: Mutex::new(CheckState::default()),
            kick: Notify::new(),
            beats: tokio::sync::Mutex::new(Beats::default()),
        }
    }

    /// Checks the store until allocation opens (or for the settle period and
    /// a little more) and returns the guard. Refuses (an error the CLI
    /// reports before exiting non-zero) when the store answers and its
    /// durability does not satisfy the policy; a store that does not answer
    /// yet, or an epoch not settled yet, leaves allocation closed until a
    /// later check opens it.
    pub async fn start(
        store: Arc<dyn Store>,
        high_water: Arc<HighWater>,
        settings: GuardSettings,
    ) -> Result<Arc<Self>, Error> {
        let deadline = Instant::now() + Settling::for_interval(settings.interval).period * 2;
        let guard = Arc::new(StoreGuard {
            settings: Some(settings),
            gate: AtomicU8::new(UNREACHABLE),
            reason: RwLock::new("the store has not been checked yet".into()),
            ..StoreGuard::unchecked(store, high_water)
        });
        let mut first = true;
        loop {
            match guard.check().await {
                Ok(Verdict::Refused(msg)) => return Err(Error::Startup(msg)),
                Ok(verdict) if first => match verdict {
                    Verdict::Trusted { warning } => tracing::warn!("{warning}"),
                    Verdict::Durable(detail) => tracing::info!("store durability: {detail}"),
                    Verdict::Refused(_) => {}
                },
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        "cannot check the store at start ({e}); allocation stays closed until a \
                         check succeeds"
                    );
                    break;
                }
            }
            first = false;
            if guard.gate.load(Ordering::Acquire) == OPEN || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if guard.gate.load(Ordering::Acquire) == SETTLING {
            tracing::warn!("allocation stays closed for now: {}", guard.reason());
        }
        Ok(guard)
    }

    /// Runs the periodic checks, and the witness's writer, until the
    /// process ends.
    pub fn watch(self: &Arc<Self>) {
        let Some(settings) = &self.settings else {
            return;
        };
        if let Some(witness) = settings.witness.clone() {
            self.keep_witness(witness);
        }
        self.keep_heartbeat(settings.interval);
        let interval = settings.interval;
        let guard = Arc::clone(self);
        tokio::spawn(async move {
            let mut retry = Duration::from_millis(200);
            loop {
                let wait = if guard.gate.load(Ordering::Acquire) == OPEN {
                    interval
                } else {
                    retry.min(interval)
                };
                let _ = tokio::time::timeout(wait, guard.kick.notified()).await;
                match guard.check().await {
                    Ok(_) => retry = Duration::from_millis(200),
                    Err(_) => retry = (retry * 2).min(Duration::from_secs(2)),
                }
            }
        });
    }

    /// One heartbeat (the observe step): numbered, so that a store which no
    /// longer holds this instance's previous heartbeat is caught, whatever
    /// its epoch says.
    async fn beat(
        &self,
        verified: Option<&str>,
        timing: Settling,
    ) -> Result<Observation, StoreError> {
        let mut beats = self.beats.lock().await;
        let this = beats.next;
        beats.next += 1;
        let previous = beats.previous.clone();
        // Until this one is answered, its write may or may not have landed
        // (a timeout drops this future here).
        if !beats.previous.is_empty() {
            beats.previous.push(this);
            if beats.previous.len() > 64 {
                beats.previous.clear();
            }
        }
        let beat = Beat {
            previous: &previous,
            this,
        };
        let observed = self
            .store
            .observe(&self.instance, verified, timing, Some(beat))
            .await?;
        beats.previous = vec![this];
        drop(beats);
        if observed.lost_heartbeat {
            tracing::error!(
                "the store no longer holds this instance's last heartbeat: it went back in time \
                 (a backup restored into it, a reload, a crash that lost writes) although its \
                 epoch is {}; every instance compares its marks with it before any serves",
                observed.epoch
            );
            self.store.trust(None);
            {
                let mut state = self.lock_state();
                state.verified = None;
                state.trusted = None;
            }
            self.close(
                SETTLING,
                "the store went back in time (it lost this instance's last heartbeat)".into(),
            );
            self.kick.notify_one();
        }
        Ok(observed)
    }

    /// Heartbeats every interval, on its own: however long a check takes
    /// (a slow link, many counters to compare), the registry hears from
    /// this instance at least every interval plus one round trip, which the
    /// settle period is sized for. A heartbeat that finds the epoch changed
    /// wakes the checker.
    fn keep_heartbeat(self: &Arc<Self>, interval: Duration) {
        let guard = Arc::clone(self);
        let timing = Settling::for_interval(interval);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let (verified, trusted) = {
                    let state = guard.lock_state();
                    (state.verified.clone(), state.trusted.clone())
                };
                let beat = guard.beat(verified.as_deref(), timing);
                if let Ok(Ok(observed)) = tokio::time::timeout(HEARTBEAT_TIMEOUT, beat).await
                    && (trusted.as_deref() != Some(observed.epoch.as_str()) || !observed.is_open())
                {
                    if trusted.is_some() {
                        // A change under a trusted epoch: until the checker
                        // has compared the marks again, beat `seen`.
                        guard.lock_state().verified = None;
                    }
                    guard.kick.notify_one();
                }
            }
        });
    }

    /// Writes the marks to the witness about once a second when they moved,
    /// off the hot path.
    fn keep_witness(self: &Arc<Self>, witness: Witness) {
        let guard = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(WITNESS_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                guard.save_witness(&witness).await;
            }
        });
    }

    /// Saves the marks if they moved since the last save.
    pub async fn save_witness(&self, witness: &Witness) {
        let store_id = self
            .store_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(store_id) = store_id else {
            return;
        };
        let epoch = {
            let state = self.lock_state();
            // A witness that could not be read is not overwritten: it may
            // hold the only memory of what was handed out.
            if !state.witness_loaded {
                return;
            }
            state.marks_epoch.clone()
        };
        if !self.high_water.take_dirty() {
            return;
        }
        let marks = self.high_water.snapshot();
        let witness = witness.clone();
        let saved =
            tokio::task::spawn_blocking(move || witness.save(&store_id, epoch.as_deref(), &marks))
                .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!("witness: the writer task failed: {e}"),
        }
    }

    /// The witness of this guard, if it keeps one.
    pub fn witness(&self) -> Option<&Witness> {
        self.settings.as_ref()?.witness.as_ref()
    }

    /// Whether allocation may proceed: two atomic loads unless closed. The
    /// ticket is checked again with [`StoreGuard::still_open`] once the
    /// store answered.
    #[inline]
    pub fn admit(&self) -> Result<Ticket, Error> {
        let ticket = Ticket(self.closings.load(Ordering::SeqCst));
        match self.gate.load(Ordering::Acquire) {
            OPEN => Ok(ticket),
            NOT_DURABLE => Err(Error::NotDurable(self.reason())),
            SETTLING => Err(Error::Store(StoreError::Unsettled(self.reason()))),
            _ => Err(Error::Store(StoreError::Unavailable {
                backend: self.store.backend(),
                reason: self.reason(),
            })),
        }
    }

    /// Whether the gate stayed open since `ticket` was taken. Called after
    /// the answer's IDs were added to the marks: if the gate closed in
    /// between, a verification may have missed them, so they must not be
    /// handed out; if not, any later verification sees them.
    #[inline]
    pub fn still_open(&self, ticket: Ticket) -> bool {
        self.closings.load(Ordering::SeqCst) == ticket.0
    }

    /// Tells the guard what an allocation met: a store error (the
    /// connection may be re-made to a restarted Redis) or a refusal because
    /// the store changed or lost durability. The latter close allocation at
    /// once; either way the checker runs soon.
    pub fn store_failed(&self, error: &StoreError) {
        if self.settings.is_none() {
            return;
        }
        match error {
            StoreError::NotDurable(reason) => self.close(NOT_DURABLE, reason.clone()),
            StoreError::Unsettled(reason) => self.close(SETTLING, reason.clone()),
            StoreError::Unavailable { .. }
            | StoreError::ReadOnly(_)
            | StoreError::OutOfMemory(_)
            | StoreError::NotReplicated { .. } => {}
            // Answers about one counter say nothing about the store.
            _ => return,
        }
        self.kick.notify_one();
    }

    /// The store's id, once known (fetched by the first check, or on
    /// demand when unchecked).
    pub async fn store_id(&self) -> Result<Arc<str>, StoreError> {
        if let Some(id) = self
            .store_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(id);
        }
        let id: Arc<str> = self.store.store_id().await?.into();
        *self.store_id.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&id));
        Ok(id)
    }

    fn reason(&self) -> String {
        self.reason
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn close(&self, gate: u8, reason: String) {
        *self.reason.write().unwrap_or_else(|p| p.into_inner()) = reason;
        self.gate.store(gate, Ordering::Release);
        self.closings.fetch_add(1, Ordering::SeqCst);
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, CheckState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One check: durability, the witness, and the continuity protocol.
    async fn check(&self) -> Result<Verdict, StoreError> {
        let settings = self.settings.as_ref().expect("only checked guards check");
        let result = self.check_inner(settings).await;
        let mut state = self.lock_state();
        match &result {
            Ok(verdict) => {
                let changed = state.verdict.as_ref() != Some(verdict);
                if changed && state.verdict.is_some() {
                    match verdict {
                        Verdict::Refused(msg) => tracing::error!("allocation closed: {msg}"),
                        Verdict::Trusted { warning } => tracing::warn!("{warning}"),
                        Verdict::Durable(detail) => tracing::info!("store durability: {detail}"),
                    }
                }
                state.verdict = Some(verdict.clone());
                state.checked_at_ms = Some(now_ms());
                state.check_error = None;
            }
            Err(e) => {
                let message = e.to_string();
                if state.check_error.as_ref() != Some(&message) {
                    tracing::warn!("store check failed: {message}");
                }
                state.check_error = Some(message);
                drop(state);
                if self.gate.load(Ordering::Acquire) == UNREACHABLE {
                    self.close(UNREACHABLE, e.to_string());
                }
            }
        }
        result
    }

    async fn check_inner(&self, settings: &GuardSettings) -> Result<Verdict, StoreError> {
        let facts = self.store.durability().await?;
        let mut verdict = judge(settings.policy, &facts);
        if let DurabilityFacts::Redis(redis) = &facts
            && redis.aof_rewriting
            && settings.policy == DurabilityPolicy::Strict
            && matches!(self.lock_state().verdict, Some(Verdict::Refused(_)))
        {
            // AOF just turned back on: until its first rewrite completes,
            // the file on disk does not hold the data, and a crash would
            // come back without what is acknowledged meanwhile.
            verdict = Verdict::Refused(
                "AOF is being rebuilt after it was turned on (aof_rewrite_in_progress or \
                 aof_rewrite_scheduled); allocation resumes when the rewrite has completed"
                    .into(),
            );
        }
        if let Verdict::Refused(msg) = &verdict {
            // Whatever happened while it was not durable (or not a primary,
            // which takes no writes: judged before the store id's write),
            // compare again before serving once it is.
            self.store.trust(None);
            self.lock_state().trusted = None;
            self.close(NOT_DURABLE, msg.clone());
            let primary = matches!(&facts, DurabilityFacts::Redis(r) if r.role == "master");
            if primary && self.lock_state().witness_loaded {
                // Still compare the marks with the store, so that the other
                // instances (under other policies) can settle a new epoch
                // without waiting for this one, and never without its marks.
                self.verify_under_current_epoch(settings).await?;
            }
            return Ok(verdict);
        }
        let store_id: Arc<str> = self.store.store_id().await?.into();
        let previous_id = self
            .store_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(Arc::clone(&store_id));
        if previous_id.as_ref().is_some_and(|p| *p != store_id) {
            tracing::error!(
                "the store's id changed from {} to {store_id}: the store lost its data and was \
                 set up anew",
                previous_id.unwrap_or_default()
            );
        }
        if let Err(why) = self.load_witness(settings, &store_id) {
            tracing::error!("{why}");
            self.store.trust(None);
            self.close(SETTLING, why);
            return Ok(verdict);
        }
        if let DurabilityFacts::Redis(redis) = &facts {
            let mut state = self.lock_state();
            if state.run_id.as_ref().is_some_and(|id| *id != redis.run_id) {
                tracing::warn!("Redis restarted (run_id changed)");
                state.verified = None;
            }
            state.run_id = Some(redis.run_id.clone());
        }
        self.follow_epoch(settings).await?;
        Ok(verdict)
    }

    /// Reads the witness into the marks, once. An unreadable witness keeps
    /// the instance closed: serving without its memory could repeat IDs.
    fn load_witness(&self, settings: &GuardSettings, store_id: &str) -> Result<(), String> {
        if self.lock_state().witness_loaded {
            return Ok(());
        }
        let Some(witness) = &settings.witness else {
            self.lock_state().witness_loaded = true;
            return Ok(());
        };
        let journal = witness.load(store_id).map_err(|e| {
            format!(
                "{e}; allocation stays closed: the witness is this instance's memory of the IDs \
                 it handed out. Repair it, or move it aside once the counters are known to \
                 stand above what was handed out (kxy-server counters raise)"
            )
        })?;
        for (key, mark) in &journal.marks {
            self.high_water.raise(key, *mark);
        }
        if !journal.marks.is_empty() {
            tracing::info!("witness: {} counters' marks loaded", journal.marks.len());
        }
        let mut state = self.lock_state();
        state.marks_epoch = journal.epoch;
        state.witness_loaded = true;
        Ok(())
    }

    /// The continuity protocol's steps for this check (docs/continuity.md).
    async fn follow_epoch(&self, settings: &GuardSettings) -> Result<(), StoreError> {
        let timing = Settling::for_interval(settings.interval);
        let mut verified = self.lock_state().verified.clone();
        let observed = match self.beat(verified.as_deref(), timing).await {
            Ok(observed) => observed,
            Err(StoreError::NotDurable(why)) => {
                self.store.trust(None);
                self.close(NOT_DURABLE, why);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let trusted = self.lock_state().trusted.clone();
        if trusted.as_deref() == Some(observed.epoch.as_str())
            && verified.as_deref() == Some(observed.epoch.as_str())
            && observed.is_open()
        {
            self.gate.store(OPEN, Ordering::Release);
            return Ok(());
        }
        if trusted.is_some() {
            tracing::warn!(
                "the store's epoch is now {} (Redis restarted, failed over or was replaced, or \
                 allocation was closed under it): comparing this instance's marks with it before \
                 serving again",
                observed.epoch
            );
            // Also when the epoch is the same (a `DEBUG RELOAD`, a restore
            // that kept the replid, a deleted epoch key): the data may have
            // changed, so the marks are compared again.
            verified = None;
            self.lock_state().verified = None;
        }
        self.store.trust(None);
        self.lock_state().trusted = None;
        if verified.as_deref() != Some(observed.epoch.as_str()) {
            self.close(
                SETTLING,
                "this instance is comparing what it handed out with the store".into(),
            );
            self.verify_counters(&observed).await?;
            self.lock_state().verified = Some(observed.epoch.clone());
            // Heartbeat `verified` at once, so a settle need not wait a check.
            self.beat(Some(&observed.epoch), timing).await?;
        }
        let settlement = if observed.is_open() {
            Settlement::Open
        } else {
            let base = self.store.counters().await?;
            self.store.settle(&observed.epoch, &base, timing).await?
        };
        match settlement {
            Settlement::Open => {
                let epoch: Arc<str> = observed.epoch.as_str().into();
                self.store.trust(Some(Arc::clone(&epoch)));
                {
                    let mut state = self.lock_state();
                    state.trusted = Some(epoch);
                    state.marks_epoch = Some(observed.epoch.clone());
                }
                tracing::info!("allocation open under the store's epoch {}", observed.epoch);
                self.gate.store(OPEN, Ordering::Release);
            }
            Settlement::Wait(why) => self.close(SETTLING, why),
            Settlement::Moved => self.kick.notify_one(),
        }
        Ok(())
    }

    /// Compares the marks with the store under its current epoch, if not
    /// done yet, and says so in a heartbeat; opens nothing.
    async fn verify_under_current_epoch(&self, settings: &GuardSettings) -> Result<(), StoreError> {
        let timing = Settling::for_interval(settings.interval);
        let verified = self.lock_state().verified.clone();
        let observed = self.beat(verified.as_deref(), timing).await?;
        if verified.as_deref() == Some(observed.epoch.as_str()) {
            return Ok(());
        }
        self.verify_counters(&observed).await?;
        self.lock_state().verified = Some(observed.epoch.clone());
        self.beat(Some(&observed.epoch), timing).await?;
        Ok(())
    }

    /// Fences every counter that stands below this instance's mark (or is
    /// missing, or fenced lower). An instance late to an epoch that was settled without it
    /// also compares with the epoch's base: the IDs between the base and its
    /// mark may have been handed out again since.
    async fn verify_counters(&self, observed: &Observation) -> Result<(), StoreError> {
        let marks = self.high_water.snapshot();
        if marks.is_empty() {
            return Ok(());
        }
        let marks_epoch = self.lock_state().marks_epoch.clone();
        // Late: this instance's marks are of an earlier epoch, and the
        // current one was settled without it (it has a base). Its open key
        // may be gone again meanwhile (this instance's own heartbeat closes
        // it when the store lost its heartbeats).
        let base: HashMap<_, _> = if marks_epoch
            .as_deref()
            .is_some_and(|epoch| epoch != observed.epoch)
        {
            self.store
                .base(&observed.epoch)
                .await?
                .into_iter()
                .collect()
        } else {
            HashMap::new()
        };
        let late = !base.is_empty();
        let current: HashMap<_, _> = self
            .store
            .counters()
            .await?
            .into_iter()
            .map(|c| (c.key, (c.current, c.fenced)))
            .collect();
        for (key, mark) in marks {
            if let Some((floor, true)) = current.get(&key) {
                if *floor < mark {
                    // Another instance fenced it at what it had handed out;
                    // this one handed out more.
                    tracing::error!(
                        "counter {key} is fenced at {floor}, but this instance handed out IDs up \
                         to {mark}: raising the fence"
                    );
                    self.fence_or_log(&key, mark).await?;
                }
                continue;
            }
            let stands = current.get(&key).map(|(value, _)| *value);
            // Late: the epoch opened without this instance, at `base`; what
            // was handed out since, up to this instance's mark, it may have
            // handed out already.
            let base = late.then(|| base.get(&key).copied().unwrap_or(0));
            let repeated_to = stands.unwrap_or(0).min(mark);
            match base {
                Some(base) if base < repeated_to => tracing::error!(
                    "store went backwards for {key} while this instance could not reach it: it \
                     handed out IDs up to {mark}, the others reopened the store at {base} \
                     without it, and IDs {}..={repeated_to} may have been handed out twice \
                     since; fencing the counter until an operator raises it",
                    base + 1
                ),
                _ if stands.is_some_and(|value| value >= mark)
                    && base.is_none_or(|b| b >= mark) =>
                {
                    continue;
                }
                _ => tracing::error!(
                    "store went backwards for {key}: IDs up to {mark} were handed out, the store \
                     stands at {}; fencing it until an operator raises it",
                    stands.map_or("missing (evicted or lost)".to_owned(), |v| v.to_string())
                ),
            }
            self.fence_or_log(&key, mark).await?;
        }
        Ok(())
    }

    /// Fences `key` at `mark`. A counter whose value kxy cannot read refuses
    /// every allocation already: it is logged and the others are still
    /// compared (one bad key must not keep every instance closed).
    async fn fence_or_log(&self, key: &SegmentKey, mark: i64) -> Result<(), StoreError> {
        match self.store.fence(key, mark).await {
            Ok(_) => Ok(()),
            Err(e @ StoreError::Corrupt { .. }) => {
                tracing::error!(
                    "cannot fence {key} at {mark}: {e}; it refuses allocation until an operator \
                     sets it to a number of at least {mark}"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The `/health` view.
    pub fn report(&self) -> DurabilityReport {
        let state = self.lock_state();
        let Some(settings) = &self.settings else {
            return DurabilityReport {
                mode: "unchecked".into(),
                durable: false,
                allocating: true,
                detail: "this process does not check its store".into(),
                checked_at_ms: None,
                check_error: None,
            };
        };
        let (durable, mut detail) = match &state.verdict {
            Some(Verdict::Durable(detail)) => (true, detail.clone()),
            Some(Verdict::Trusted { warning }) => (false, warning.clone()),
            Some(Verdict::Refused(msg)) => (false, msg.clone()),
            None => (false, "not checked yet".into()),
        };
        let allocating = self.gate.load(Ordering::Acquire) == OPEN;
        if self.gate.load(Ordering::Acquire) == SETTLING {
            detail = format!("{detail}; not allocating: {}", self.reason());
        }
        let mode = match self.store.backend() {
            "embedded" => "fsync".to_owned(),
            _ => settings.policy.to_string(),
        };
        DurabilityReport {
            mode,
            durable,
            allocating,
            detail,
            checked_at_ms: state.checked_at_ms,
            check_error: state.check_error.clone(),
        }
    }

    /// Whether the store is trusted without being durable (the `unsafe`
    /// policy on a Redis that can lose writes).
    pub fn trusted_unsafely(&self) -> bool {
        let state = self.lock_state();
        matches!(state.verdict, Some(Verdict::Trusted { .. }))
    }
}

/// A name for this process in the store's instance registry.
fn new_instance_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
