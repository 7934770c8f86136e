//! The store guard: whether this instance may allocate from its store right
//! now, re-decided while it runs.
//!
//! kxy trusts a store only as far as it is durable, and only while it has not
//! gone backwards. The guard checks the store at start, every
//! `--redis-check-interval`, and soon after any store error (a reconnect):
//!
//! - **Durability**: the backend's facts ([`Store::durability`]) against the
//!   operator's [`DurabilityPolicy`]. Under `strict`, a Redis without
//!   `appendonly yes` + `appendfsync always` stops the server from starting,
//!   and at run time closes allocation (503, code 50304) until it is fixed.
//! - **Restarts**: Redis's `run_id` changes whenever it restarts. A restart may
//!   have come from an older snapshot, so before serving again the guard
//!   compares every counter this instance has marks for (and those its
//!   [`Witness`] remembers, at start) with the store, and fences each one
//!   that stands below its mark, so that every instance refuses it.
//!
//! Allocation asks [`StoreGuard::admit`], one atomic load on the hot path.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::Error;
use crate::high_water::HighWater;
use crate::store::durability::{DurabilityReport, Verdict, judge};
use crate::store::{DurabilityFacts, DurabilityPolicy, Store, StoreError};
use crate::witness::Witness;

/// How an instance watches its store.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    pub policy: DurabilityPolicy,
    /// Time between checks while all is well.
    pub interval: Duration,
    /// Where the high-water journal lives; `None` keeps no journal.
    pub witness: Option<Witness>,
}

/// How often the witness is written when marks moved.
const WITNESS_EVERY: Duration = Duration::from_secs(1);

const OPEN: u8 = 0;
/// The store is not durable enough for the policy.
const NOT_DURABLE: u8 = 1;
/// Not checked yet, or counters are being verified after a restart.
const UNVERIFIED: u8 = 2;

/// See the module documentation.
pub struct StoreGuard {
    store: Arc<dyn Store>,
    high_water: Arc<HighWater>,
    settings: Option<GuardSettings>,
    gate: AtomicU8,
    /// Why the gate is closed, for the refusal's message.
    reason: RwLock<String>,
    store_id: RwLock<Option<Arc<str>>>,
    state: Mutex<CheckState>,
    /// Wakes the checker early (after a store error).
    kick: Notify,
}

#[derive(Default)]
struct CheckState {
    verdict: Option<Verdict>,
    run_id: Option<String>,
    checked_at_ms: Option<u64>,
    check_error: Option<String>,
    /// Whether the witness has been read into the marks.
    witness_loaded: bool,
}

impl StoreGuard {
    /// A guard that never checks and always admits: for the CLI's
    /// subcommands and for tests of other parts.
    pub fn unchecked(store: Arc<dyn Store>, high_water: Arc<HighWater>) -> Self {
        StoreGuard {
            store,
            high_water,
            settings: None,
            gate: AtomicU8::new(OPEN),
            reason: RwLock::new(String::new()),
            store_id: RwLock::new(None),
            state: Mutex::new(CheckState::default()),
            kick: Notify::new(),
        }
    }

    /// Checks the store once and returns the guard. Refuses (an error the
    /// CLI reports before exiting non-zero) when the store answers and its
    /// durability does not satisfy the policy; a store that does not answer
    /// yet leaves allocation closed until a check succeeds.
    pub async fn start(
        store: Arc<dyn Store>,
        high_water: Arc<HighWater>,
        settings: GuardSettings,
    ) -> Result<Arc<Self>, Error> {
        let guard = Arc::new(StoreGuard {
            settings: Some(settings),
            gate: AtomicU8::new(UNVERIFIED),
            reason: RwLock::new("the store has not been checked yet".into()),
            ..StoreGuard::unchecked(store, high_water)
        });
        match guard.check().await {
            Ok(Verdict::Refused(msg)) => return Err(Error::Startup(msg)),
            Ok(Verdict::Trusted { warning }) => tracing::warn!("{warning}"),
            Ok(Verdict::Durable(detail)) => tracing::info!("store durability: {detail}"),
            Err(e) => tracing::warn!(
                "cannot check the store's durability at start ({e}); allocation stays closed \
                 until a check succeeds"
            ),
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
        let interval = settings.interval;
        let guard = Arc::clone(self);
        tokio::spawn(async move {
            let mut retry = Duration::from_millis(200);
            loop {
                let wait = if guard.gate.load(Ordering::Acquire) == OPEN {
                    interval
                } else {
                    retry
                };
                let _ = tokio::time::timeout(wait, guard.kick.notified()).await;
                match guard.check().await {
                    Ok(_) => retry = Duration::from_millis(200),
                    Err(e) => {
                        tracing::debug!("store check failed: {e}");
                        retry = (retry * 2).min(Duration::from_secs(2));
                    }
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
        if !self.high_water.take_dirty() {
            return;
        }
        let marks = self.high_water.snapshot();
        let witness = witness.clone();
        let saved = tokio::task::spawn_blocking(move || witness.save(&store_id, &marks)).await;
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

    /// Whether allocation may proceed: one atomic load unless closed.
    #[inline]
    pub fn admit(&self) -> Result<(), Error> {
        match self.gate.load(Ordering::Acquire) {
            OPEN => Ok(()),
            NOT_DURABLE => Err(Error::NotDurable(self.reason())),
            _ => Err(Error::Store(StoreError::Unavailable {
                backend: self.store.backend(),
                reason: self.reason(),
            })),
        }
    }

    /// Tells the checker that a store call failed: the connection may be
    /// re-made to a restarted Redis, so check soon.
    pub fn store_failed(&self) {
        if self.settings.is_some() {
            self.kick.notify_one();
        }
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
    }

    /// One check: durability, the store id, and after a restart (or at
    /// start) the counters against their marks.
    async fn check(&self) -> Result<Verdict, StoreError> {
        let settings = self.settings.as_ref().expect("only checked guards check");
        let result = self.check_inner(settings).await;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
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
            Err(e) => state.check_error = Some(e.to_string()),
        }
        result
    }

    async fn check_inner(&self, settings: &GuardSettings) -> Result<Verdict, StoreError> {
        let facts = self.store.durability().await?;
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
        let run_id = match &facts {
            DurabilityFacts::Redis(redis) => Some(redis.run_id.clone()),
            DurabilityFacts::FsyncBeforeReply => None,
        };
        let (restarted, load_witness) = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let restarted = state.run_id.is_some() && state.run_id != run_id;
            (restarted, !state.witness_loaded)
        };
        if load_witness && let Some(witness) = &settings.witness {
            match witness.load(&store_id) {
                Ok(marks) => {
                    for (key, mark) in &marks {
                        self.high_water.raise(key, *mark);
                    }
                    if !marks.is_empty() {
                        tracing::info!("witness: {} counters' marks loaded", marks.len());
                    }
                }
                Err(e) => tracing::error!("{e}; starting without the witness's marks"),
            }
        }
        if restarted || load_witness {
            if restarted {
                tracing::warn!(
                    "Redis restarted (run_id changed); checking every counter served before \
                     serving it again"
                );
                self.close(
                    UNVERIFIED,
                    "Redis restarted; kxy is checking its counters against the IDs it handed out"
                        .into(),
                );
            }
            self.verify_counters().await?;
        }
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.run_id = run_id;
            state.witness_loaded = true;
        }
        let verdict = judge(settings.policy, &facts);
        match &verdict {
            Verdict::Refused(msg) => self.close(NOT_DURABLE, msg.clone()),
            _ => self.gate.store(OPEN, Ordering::Release),
        }
        Ok(verdict)
    }

    /// Fences every counter that stands below this instance's mark.
    async fn verify_counters(&self) -> Result<(), StoreError> {
        let marks = self.high_water.snapshot();
        if marks.is_empty() {
            return Ok(());
        }
        let current: std::collections::HashMap<_, _> = self
            .store
            .counters()
            .await?
            .into_iter()
            .map(|c| (c.key, (c.current, c.fenced)))
            .collect();
        for (key, mark) in marks {
            match current.get(&key) {
                Some((_, true)) => {}
                Some((value, false)) if *value >= mark => {}
                found => {
                    let stands = found.map_or("missing".to_owned(), |(v, _)| v.to_string());
                    tracing::error!(
                        "store went backwards for {key}: IDs up to {mark} were handed out, the \
                         store stands at {stands}; fencing it until an operator raises it"
                    );
                    match self.store.fence(&key, mark).await {
                        Ok(_) | Err(StoreError::NotRegistered { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// The `/health` view.
    pub fn report(&self) -> DurabilityReport {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
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
        let (durable, detail) = match &state.verdict {
            Some(Verdict::Durable(detail)) => (true, detail.clone()),
            Some(Verdict::Trusted { warning }) => (false, warning.clone()),
            Some(Verdict::Refused(msg)) => (false, msg.clone()),
            None => (false, "not checked yet".into()),
        };
        let mode = match self.store.backend() {
            "embedded" => "fsync".to_owned(),
            _ => settings.policy.to_string(),
        };
        DurabilityReport {
            mode,
            durable,
            allocating: self.gate.load(Ordering::Acquire) == OPEN,
            detail,
            checked_at_ms: state.checked_at_ms,
            check_error: state.check_error.clone(),
        }
    }

    /// Whether the store is trusted without being durable (the `unsafe`
    /// policy on a Redis that can lose writes).
    pub fn trusted_unsafely(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        matches!(state.verdict, Some(Verdict::Trusted { .. }))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
