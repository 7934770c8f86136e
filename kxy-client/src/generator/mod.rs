//! `IdGenerator`: IDs of one counter, handed out in-process.
//!
//! The generator holds the current segment in a lock-free [`cursor`] and a
//! prefetched next segment behind a lock that the hot path never takes. The
//! lifecycle of a segment:
//!
//! 1. IDs are taken from the current segment with one atomic add.
//! 2. The take that passes the segment's prefetch mark (a fifth of the way
//!    in) starts a background fetch of the next segment, sized by the
//!    [`StepPolicy`] from how long the previous segment lasted.
//! 3. The take that finds the segment used up installs the prefetched one
//!    (the *slow path*, under the lock). Only if none has arrived yet does it
//!    wait: at most `max_wait`, while the fetch tries each server and retries
//!    with backoff. Then it fails with [`ClientError::Unavailable`].
//!
//! The background fetch keeps retrying while the generator lives, so a
//! generator recovers by itself when a server comes back. A 4xx answer
//! (say, an unregistered counter) is not retried: the waiting call gets it
//! at once, and the next call asks again. With several base URLs, each
//! attempt at one URL is bounded by a share of `max_wait`, so a server that
//! accepts connections but never answers cannot keep a waiting call from
//! the next URL.
//!
//! Every fetched segment passes the client's fences (see [`crate::fence`])
//! and must start above every segment this generator buffered before, so
//! `next_id` never returns an ID at or below one it returned before.
//!
//! A generator is per-process state (see [`crate::fork`]): in a forked
//! child, the first call finds a newer fork generation, forgets the
//! parent's segments and takes a fresh lock, before any ID is handed out.

mod config;
mod cursor;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use kxy_core::{Segment, SegmentKey};
use tokio::sync::Notify;

use crate::client::Attempt;
use crate::fork::{self, PerProcess};
use crate::{ClientError, SegmentClient, runtime};
pub use config::{GeneratorConfig, Patience};
use cursor::{Cursor, MAX_TAKE, Take};

/// Hands out the IDs of one counter from locally cached segments. Cheap to
/// clone; clones share the cache. Safe to use from any number of threads,
/// and across `fork` (see [`crate::fork`]).
#[derive(Clone)]
pub struct IdGenerator {
    shared: Arc<Shared>,
}

struct Shared {
    cursor: Cursor,
    /// The fork generation the cursor's segments belong to. In a forked
    /// child the hot path compares it with the process's; Acquire pairs with the
    /// Release store in [`Shared::start_over_after_fork`], so a thread that
    /// sees the new generation also sees the emptied cursor.
    generation: AtomicU64,
    /// The generation some thread is moving the cursor to; the thread that
    /// swaps it in does the move, the others wait for `generation`.
    moving_to: AtomicU64,
    key: SegmentKey,
    /// Replaceable (see [`IdGenerator::set_client`]); read once per fetch.
    client: RwLock<SegmentClient>,
    /// Replaceable (see [`IdGenerator::reconfigure`]); read off the hot path.
    config: RwLock<GeneratorConfig>,
    /// `config`'s largest segment, for `next_ids` without taking the lock.
    max_size: AtomicI64,
    /// Everything off the hot path, per process: a forked child must not
    /// wait on a lock that a parent thread held at the fork.
    slow: PerProcess<SlowPath>,
    /// Calls that found both buffers empty and waited for a fetch: zero at
    /// steady load if prefetching works. Touched only on the slow path.
    waits: AtomicU64,
    /// Segments this generator's requests discarded (see [`crate::fence`]).
    discarded: AtomicU64,
}

/// The lock and wake-ups of the slow path.
struct SlowPath {
    /// A std mutex: held briefly, never across an `.await`, and waited on
    /// by blocking callers through `refilled`.
    state: Mutex<State>,
    /// Woken when a fetch finishes, for blocking callers...
    refilled: Condvar,
    /// ...and for async ones.
    refilled_async: Notify,
}

struct State {
    /// The prefetched segment, if it has arrived.
    next: Option<Segment>,
    /// Whether a fetch task is running.
    fetching: bool,
    /// The latest fetch failure, cleared by a success.
    last_error: Option<ClientError>,
    /// Size of the next request.
    size: i64,
    /// The largest size the server accepted to be asked for, learned from a
    /// 400 refusal of a larger one.
    size_ceiling: i64,
    /// The longest run (`next_ids(n)`) the cached segments were too short
    /// for; the next fetch asks for at least this many. 0 if none.
    wanted: i64,
    /// Length and install time of the current segment, to measure its
    /// lifetime when it runs out.
    current: Option<(u64, Instant)>,
    /// The highest end of any segment this generator buffered: the next one
    /// must start above it.
    highest: i64,
    /// Fetch rounds finished (with a segment or an error): a call waiting
    /// in [`Patience::OneRound`] fails only with the error of a round that
    /// finished after it began to wait.
    rounds: u64,
}

impl SlowPath {
    /// A fresh slow path; in a forked child, it keeps the parent's high
    /// mark if the parent's lock is free (see [`crate::fork::inherit`]).
    fn new(config: &GeneratorConfig, parent: Option<&SlowPath>) -> Self {
        let highest = parent
            .and_then(|p| p.state.try_lock().ok().map(|s| s.highest))
            .unwrap_or(0);
        SlowPath {
            state: Mutex::new(State {
                next: None,
                fetching: false,
                last_error: None,
                size: config.initial_size,
                size_ceiling: config.policy.max,
                wanted: 0,
                current: None,
                highest,
                rounds: 0,
            }),
            refilled: Condvar::new(),
            refilled_async: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent in
        // a way that matters (every field is re-checked), so recover.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether a slow-path call may wait for the network.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Block,
    Never,
}

impl IdGenerator {
    pub fn new(client: SegmentClient, key: SegmentKey, config: GeneratorConfig) -> Self {
        let slow = PerProcess::new(SlowPath::new(&config, None));
        let generation = fork::generation();
        IdGenerator {
            shared: Arc::new(Shared {
                cursor: Cursor::new(),
                generation: AtomicU64::new(generation),
                moving_to: AtomicU64::new(generation),
                key,
                client: RwLock::new(client),
                config: RwLock::new(config),
                max_size: AtomicI64::new(config.policy.max),
                slow,
                waits: AtomicU64::new(0),
                discarded: AtomicU64::new(0),
            }),
        }
    }

    pub fn key(&self) -> &SegmentKey {
        &self.shared.key
    }

    pub fn config(&self) -> GeneratorConfig {
        self.shared.config()
    }

    /// The client of the next fetches: for a caller whose settings changed
    /// (a new API key, timeout or base URL). Store pins and high marks stay
    /// with the generator and the process, so the new client's segments
    /// pass the same fences.
    pub fn set_client(&self, client: SegmentClient) {
        *self
            .shared
            .client
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = client;
    }

    /// New sizes and patience for the next fetches; the cached segments
    /// stay and are handed out.
    pub fn reconfigure(&self, config: GeneratorConfig) {
        self.shared.ensure_this_process();
        let mut state = self.shared.slow().lock();
        *self
            .shared
            .config
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
        self.shared
            .max_size
            .store(config.policy.max, Ordering::Relaxed);
        state.size = config.initial_size;
        state.size_ceiling = config.policy.max;
    }

    /// The next ID. Lock-free unless the current segment is used up; then it
    /// installs the prefetched segment or waits (at most `max_wait`) for one.
    #[inline]
    pub fn next_id(&self) -> Result<i64, ClientError> {
        self.take(1, Wait::Block)
            .map(|first| first.expect("a blocking take yields IDs or an error"))
    }

    /// The next ID if one is buffered, without ever waiting for the network
    /// (for callers on an event loop, which fall back to [`Self::next_id_async`]).
    #[inline]
    pub fn try_next_id(&self) -> Option<i64> {
        self.take(1, Wait::Never).ok().flatten()
    }

    /// `n` consecutive IDs if the cache holds them, without ever waiting for
    /// the network; `None` otherwise (then [`Self::next_ids`] gets them).
    pub fn try_next_ids(&self, n: i64) -> Option<Segment> {
        let max = self.shared.max_size.load(Ordering::Relaxed);
        let take = u32::try_from(n)
            .ok()
            .filter(|&n| (1..=MAX_TAKE).contains(&n) && i64::from(n) <= max)?;
        let first = self.take(take, Wait::Never).ok().flatten()?;
        Some(Segment {
            start: first,
            end: first + (n - 1),
        })
    }

    /// The first of `n` consecutive IDs from the cache. The hot path is the
    /// fork-generation check and one `fetch_add`; the take that passes the
    /// prefetch mark starts the next fetch; an empty cursor goes to the slow
    /// path. `None` only when `wait` is `Never` and nothing is buffered.
    #[inline]
    fn take(&self, n: u32, wait: Wait) -> Result<Option<i64>, ClientError> {
        self.shared.ensure_this_process();
        loop {
            match self.shared.cursor.take(n) {
                Take::Taken {
                    first,
                    crossed_prefetch,
                } => {
                    if crossed_prefetch {
                        self.shared.prefetch();
                    }
                    return Ok(Some(first));
                }
                Take::Empty { epoch } => {
                    if !self.shared.refill(epoch, wait, n)? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// [`Self::next_id`] for async callers: waits without blocking the thread.
    pub async fn next_id_async(&self) -> Result<i64, ClientError> {
        loop {
            if let Some(id) = self.try_next_id() {
                return Ok(id);
            }
            self.shared.refill_async().await?;
        }
    }

    /// `n` consecutive IDs as one segment. Runs of up to 65,536 that fit the
    /// generator's largest segment come from the cache; an ID-range left too
    /// short for the run is skipped, never split, and the next fetch asks for
    /// at least `n`. Longer runs are allocated from the server directly. A
    /// run longer than the server hands out in one segment (its
    /// `--max-segment`) is an [`ClientError::InvalidArgument`] naming both
    /// numbers.
    pub fn next_ids(&self, n: i64) -> Result<Segment, ClientError> {
        let max = self.shared.max_size.load(Ordering::Relaxed);
        if n < 1 {
            return Err(ClientError::InvalidArgument(format!(
                "n must be at least 1; got {n}"
            )));
        }
        let cached = u32::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_TAKE && i64::from(n) <= max);
        let Some(take) = cached else {
            return self.shared.allocate_run(n);
        };
        let first = self
            .take(take, Wait::Block)?
            .expect("a blocking take yields IDs or an error");
        // `first + (n - 1)`: a run may end at i64::MAX.
        Ok(Segment {
            start: first,
            end: first + (n - 1),
        })
    }

    /// How many IDs are buffered: what is left of the current segment plus
    /// the prefetched one, if it has arrived.
    pub fn buffered(&self) -> u64 {
        self.shared.ensure_this_process();
        let next = self.shared.slow().lock().next.map_or(0, |s| s.len());
        self.shared.cursor.remaining() + next
    }

    /// How many calls so far had to wait for the network because both
    /// buffers were empty (including the very first call).
    pub fn waits(&self) -> u64 {
        self.shared.waits.load(Ordering::Relaxed)
    }

    /// How many segments this generator's requests discarded, never handing
    /// out their IDs: from a store other than the pinned one, or not above
    /// what this process had already received (see [`crate::fence`]).
    pub fn discarded(&self) -> u64 {
        self.shared.discarded.load(Ordering::Relaxed)
    }

    /// The size the next fetch will ask for (it adapts to the rate of use).
    pub fn next_request_size(&self) -> i64 {
        self.shared.ensure_this_process();
        let state = self.shared.slow().lock();
        state.size.max(state.wanted)
    }

    /// A generator for the same counter with the same settings and store
    /// pins, and a new client and cache. A forked child does not need it
    /// (generators start over by themselves, see [`crate::fork`]); it is for
    /// callers that replace their generators explicitly.
    pub fn rebuilt(&self) -> Result<IdGenerator, ClientError> {
        Ok(IdGenerator::new(
            self.shared.client().rebuilt()?,
            self.shared.key.clone(),
            self.shared.config(),
        ))
    }
}

impl Shared {
    /// The slow path of this process (see [`crate::fork`]).
    fn slow(&self) -> &SlowPath {
        self.slow
            .get(|parent| SlowPath::new(&self.config(), parent))
    }

    fn config(&self) -> GeneratorConfig {
        *self
            .config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn client(&self) -> SegmentClient {
        self.client
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The fork check of every call. In a process that never forked the
    /// generation is 0, and so is every generator's (generations only
    /// grow): one load of the global and a compare with zero. In a forked
    /// child, the generator's own generation is compared too.
    #[inline]
    fn ensure_this_process(&self) {
        let now = fork::generation();
        if now != 0 && self.generation.load(Ordering::Acquire) != now {
            self.start_over_after_fork();
        }
    }

    /// In a forked child: forgets the parent's segments before any ID is
    /// taken. One thread empties the cursor; others of the child wait for
    /// it (a child thread, never a vanished parent one: `moving_to` holds
    /// the child's generation only once a child thread set it).
    #[cold]
    #[inline(never)]
    fn start_over_after_fork(&self) {
        let now = fork::generation();
        if self.moving_to.swap(now, Ordering::AcqRel) != now {
            self.cursor.forget();
            self.generation.store(now, Ordering::Release);
        } else {
            while self.generation.load(Ordering::Acquire) != now {
                std::thread::yield_now();
            }
        }
    }

    /// How long one base URL may take in a fetch: when retrying with
    /// several URLs, a share of `max_wait`, so that a waiting call reaches
    /// the next URL in time; otherwise the client's own timeout.
    fn attempt_timeout(&self, client: &SegmentClient) -> Option<Duration> {
        let Patience::Retry { max_wait } = self.config().patience else {
            return None;
        };
        let urls = client.config().base_urls().len() as u32;
        (urls > 1).then(|| (max_wait / (urls + 1)).max(Duration::from_millis(100)))
    }

    /// A run longer than the cache serves, straight from the server.
    fn allocate_run(self: &Arc<Self>, n: i64) -> Result<Segment, ClientError> {
        let shared = Arc::clone(self);
        runtime::block_on(async move {
            let client = shared.client();
            let attempt = Attempt {
                per_url_timeout: shared.attempt_timeout(&client),
                discarded: Some(&shared.discarded),
                above: None,
            };
            client
                .allocate_with(&shared.key, n, attempt)
                .await
                .map_err(|e| too_long_for_the_server(n, e))
        })?
    }

    /// Starts a fetch of the next segment unless one is buffered or running.
    fn prefetch(self: &Arc<Self>) {
        let mut state = self.slow().lock();
        if state.next.is_none() && !state.fetching {
            self.start_fetch(&mut state);
        }
    }

    fn start_fetch(self: &Arc<Self>, state: &mut State) {
        state.fetching = true;
        runtime::handle().spawn(fetch(Arc::downgrade(self)));
    }

    /// The slow path for a caller that found epoch `seen` too short for `n`
    /// IDs. Returns `Ok(true)` when the caller should take again,
    /// `Ok(false)` when nothing is buffered and `wait` is `Never`.
    fn refill(self: &Arc<Self>, seen: u32, wait: Wait, n: u32) -> Result<bool, ClientError> {
        let patience = self.config().patience;
        let deadline = match patience {
            Patience::Retry { max_wait } => Some(Instant::now() + max_wait),
            Patience::OneRound => None,
        };
        let slow = self.slow();
        let mut state = slow.lock();
        let entered = state.rounds;
        let mut waited = false;
        loop {
            if let Some(ready) = self.try_install(&mut state, seen, n, entered)? {
                return Ok(ready);
            }
            if wait == Wait::Never {
                return Ok(false);
            }
            if !waited {
                waited = true;
                self.waits.fetch_add(1, Ordering::Relaxed);
            }
            state = match deadline {
                // One round: the fetch is bounded by the client's timeouts
                // and always ends the round, which wakes this call.
                None => slow
                    .refilled
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(self.gave_up(&state));
                    }
                    slow.refilled
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
            };
        }
    }

    async fn refill_async(self: &Arc<Self>) -> Result<(), ClientError> {
        let deadline = match self.config().patience {
            Patience::Retry { max_wait } => Some(tokio::time::Instant::now() + max_wait),
            Patience::OneRound => None,
        };
        let slow = self.slow();
        let entered = slow.lock().rounds;
        loop {
            let notified = slow.refilled_async.notified();
            tokio::pin!(notified);
            // Register before checking, so a wake-up in between is not lost.
            notified.as_mut().enable();
            {
                let mut state = slow.lock();
                let seen = self.cursor.epoch();
                if self.try_install(&mut state, seen, 1, entered)?.is_some() {
                    return Ok(());
                }
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    return Err(self.gave_up(&state));
                }
            }
            match deadline {
                Some(deadline) => {
                    let _ = tokio::time::timeout_at(deadline, notified).await;
                }
                None => notified.await,
            }
        }
    }

    /// One step of the slow path, under the lock: `Some(true)` if the caller
    /// can take again (someone installed, or we did), `None` if it must wait
    /// for the fetch this makes sure is running. `entered` is the number of
    /// rounds finished when the caller began to wait.
    fn try_install(
        self: &Arc<Self>,
        state: &mut State,
        seen: u32,
        n: u32,
        entered: u64,
    ) -> Result<Option<bool>, ClientError> {
        // Someone installed since the caller looked, or IDs are left (a
        // failed take always pushes the offset past the end, so this means
        // the same): take again.
        if self.cursor.epoch() != seen || self.cursor.remaining() > 0 {
            return Ok(Some(true));
        }
        self.cursor.clamp(seen);
        if let Some(segment) = state.next.take() {
            self.install(state, segment);
            return Ok(Some(true));
        }
        match self.config().patience {
            Patience::OneRound => {
                // A round that ended after this call began, with an error:
                // that is this call's answer. An older error is not (a
                // prefetch that failed while IDs were left): ask again.
                if state.rounds > entered
                    && !state.fetching
                    && let Some(error) = &state.last_error
                {
                    return Err(error.clone());
                }
            }
            Patience::Retry { .. } => {
                if let Some(error) = &state.last_error
                    && !error.is_retryable()
                {
                    // Not worth waiting for; the next call will ask again.
                    return Err(state.last_error.take().expect("checked above"));
                }
            }
        }
        // A run longer than the segments being asked for: the next fetch
        // asks for at least that many, so the take cannot fail forever
        // (the server either gives that many or refuses, see record_fetch).
        if i64::from(n) > state.size {
            state.wanted = state.wanted.max(i64::from(n));
        }
        if !state.fetching {
            self.start_fetch(state);
        }
        Ok(None)
    }

    /// Makes `segment` current and adapts the size of the next request to
    /// how long the previous segment lasted.
    fn install(self: &Arc<Self>, state: &mut State, segment: Segment) {
        let now = Instant::now();
        if let Some((len, installed_at)) = state.current {
            let next = self
                .config()
                .policy
                .next_size(len as i64, now - installed_at);
            state.size = next.min(state.size_ceiling);
        }
        let len = segment.len();
        self.cursor.install(segment, (len / 5) as u32);
        state.current = Some((len, now));
        // The new segment needs a successor; fetch it when the prefetch mark
        // is passed (the take that passes it calls `prefetch`).
    }

    /// The error of a call that waited `max_wait` in vain.
    fn gave_up(&self, state: &State) -> ClientError {
        let waited = match self.config().patience {
            Patience::Retry { max_wait } => max_wait,
            Patience::OneRound => Duration::ZERO,
        };
        ClientError::Unavailable {
            waited,
            last: Box::new(
                state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| ClientError::Timeout {
                        url: self.client().config().base_urls().join(", "),
                        after: waited,
                    }),
            ),
        }
    }

    /// Ends a fetch round (with a segment or an error) and wakes the
    /// waiting calls.
    fn finish_fetch(&self, mut state: MutexGuard<'_, State>) {
        state.rounds += 1;
        drop(state);
        let slow = self.slow();
        slow.refilled.notify_all();
        slow.refilled_async.notify_waiters();
    }
}

/// A server's refusal of a run's size (400, 40002) as the caller's error:
/// the run is longer than the server hands out in one segment.
fn too_long_for_the_server(n: i64, error: ClientError) -> ClientError {
    match error {
        ClientError::Api {
            status: 400,
            code: 40002,
            msg,
            ..
        } => ClientError::InvalidArgument(format!(
            "n = {n} is more than the server hands out in one segment ({msg})"
        )),
        other => other,
    }
}

/// The background fetch: asks for the next segment until it gets one, a
/// non-retryable refusal, or the generator is dropped; in
/// [`Patience::OneRound`], until one round over the base URLs failed.
/// Holds only a weak reference between attempts, so it never keeps a
/// dropped generator alive.
async fn fetch(generator: Weak<Shared>) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let Some(shared) = generator.upgrade() else {
            return;
        };
        let (size, above) = {
            let state = shared.slow().lock();
            (state.size.max(state.wanted), state.highest)
        };
        let client = shared.client();
        let attempt = Attempt {
            per_url_timeout: shared.attempt_timeout(&client),
            discarded: Some(&shared.discarded),
            above: Some(above),
        };
        let result = client.allocate_with(&shared.key, size, attempt).await;
        match shared.record_fetch(size, result) {
            Fetched::Done => return,
            Fetched::RetryNow => continue,
            Fetched::RetryLater => {}
        }
        drop(shared);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// What the fetch task does after an attempt.
enum Fetched {
    Done,
    RetryNow,
    RetryLater,
}

impl Shared {
    /// Records the outcome of one fetch attempt and wakes the waiters.
    fn record_fetch(&self, size: i64, result: Result<Segment, ClientError>) -> Fetched {
        let config = self.config();
        let mut state = self.slow().lock();
        match result {
            Ok(segment) => {
                state.highest = state.highest.max(segment.end);
                if segment.len() >= state.wanted as u64 {
                    state.wanted = 0;
                }
                state.next = Some(segment);
                state.fetching = false;
                state.last_error = None;
                self.finish_fetch(state);
                Fetched::Done
            }
            Err(ClientError::Api {
                status: 400,
                code: 40002,
                msg,
                trace_id,
            }) => {
                // Larger than the server allows (--max-segment).
                let least = config.policy.min.max(state.wanted);
                if size > least {
                    // Ask for less from now on, but never less than the
                    // configured minimum or a pending run needs.
                    state.size_ceiling = config.policy.clamp(size / 2).max(least);
                    state.size = state.size.min(state.size_ceiling);
                    return Fetched::RetryNow;
                }
                let refusal = ClientError::Api {
                    status: 400,
                    code: 40002,
                    msg,
                    trace_id,
                };
                let error = if state.wanted > config.policy.min {
                    // A pending run asks for more than the server gives:
                    // refuse the run, and let ordinary fetches go on.
                    let wanted = std::mem::take(&mut state.wanted);
                    too_long_for_the_server(wanted, refusal)
                } else {
                    refusal
                };
                state.last_error = Some(error);
                state.fetching = false;
                self.finish_fetch(state);
                Fetched::Done
            }
            Err(e) => {
                let retry = e.is_retryable() && matches!(config.patience, Patience::Retry { .. });
                tracing::debug!("fetching a segment of {} failed: {e}", self.key);
                state.last_error = Some(e);
                if !retry {
                    state.fetching = false;
                }
                self.finish_fetch(state);
                if retry {
                    Fetched::RetryLater
                } else {
                    Fetched::Done
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generator whose server never answers (nothing listens on the
    /// port), with segments put in its buffers by hand.
    fn generator_holding(current: Segment, next: Segment) -> IdGenerator {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let client = SegmentClient::for_url(&format!("http://{dead}")).unwrap();
        let key = SegmentKey::new("generator-test", "db", "t", "id").unwrap();
        let config = GeneratorConfig::new(10)
            .unwrap()
            .with_max_wait(Duration::from_millis(50))
            .unwrap();
        let ids = IdGenerator::new(client, key, config);
        let mut state = ids.shared.slow().lock();
        ids.shared.install(&mut state, current);
        state.next = Some(next);
        drop(state);
        ids
    }

    #[test]
    fn a_forked_child_forgets_the_parents_segments() {
        let _bumping = fork::GENERATION_TESTS.write();
        let ids = generator_holding(
            Segment { start: 1, end: 10 },
            Segment { start: 11, end: 20 },
        );
        assert_eq!(ids.try_next_id(), Some(1));
        assert_eq!(ids.buffered(), 19);

        fork::after_fork_in_child();
        assert_eq!(ids.buffered(), 0, "the parent's segments are gone");
        assert_eq!(ids.try_next_id(), None);
        assert!(
            ids.next_ids(3).is_err(),
            "nothing of the parent's is handed out"
        );
    }

    #[test]
    fn runs_longer_than_the_largest_segment_go_to_the_server_and_spare_the_cache() {
        let _stable = fork::GENERATION_TESTS.read();
        let ids = generator_holding(
            Segment { start: 1, end: 10 },
            Segment { start: 11, end: 20 },
        );
        let max = ids.config().max_size();
        // Asked of the server directly (none answers here), not of the cache.
        assert!(matches!(
            ids.next_ids(max + 1),
            Err(ClientError::Connection { .. })
        ));
        // A run the cached segment is too short for skips it, takes the
        // next one, and asks the next fetch for at least that many.
        assert_eq!(ids.next_ids(8).unwrap(), Segment { start: 1, end: 8 });
        assert_eq!(ids.next_ids(5).unwrap(), Segment { start: 11, end: 15 });
        assert!(ids.next_ids(50).is_err(), "no server answers");
        assert!(ids.next_request_size() >= 50);
    }
}
