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
//! at once, and the next call asks again.

mod cursor;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use kxy_core::{Segment, SegmentKey, StepPolicy};
use tokio::sync::Notify;

use crate::{ClientError, SegmentClient, runtime};
use cursor::{Cursor, MAX_SEGMENT_LEN, MAX_TAKE, Take};

/// How a generator sizes segments and how long it waits for one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneratorConfig {
    /// The size of the first segment asked for.
    pub initial_size: i64,
    /// Bounds and target lifetime of later segment sizes.
    pub policy: StepPolicy,
    /// The longest `next_id` waits when both buffers are empty.
    pub max_wait: Duration,
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
            max_wait: Self::DEFAULT_MAX_WAIT,
        })
    }

    pub fn target_lifetime(mut self, lifetime: Duration) -> Result<Self, ClientError> {
        self.policy = StepPolicy::new(self.policy.min, self.policy.max, lifetime)
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        Ok(self)
    }

    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }
}

/// Hands out the IDs of one counter from locally cached segments. Cheap to
/// clone; clones share the cache. Safe to use from any number of threads.
#[derive(Clone)]
pub struct IdGenerator {
    shared: Arc<Shared>,
}

struct Shared {
    cursor: Cursor,
    key: SegmentKey,
    client: SegmentClient,
    config: GeneratorConfig,
    /// Everything off the hot path. A std mutex: held briefly, never across
    /// an `.await`, and waited on by blocking callers through `refilled`.
    state: Mutex<State>,
    /// Woken when a fetch finishes, for blocking callers...
    refilled: Condvar,
    /// ...and for async ones.
    refilled_async: Notify,
    /// Calls that found both buffers empty and waited for a fetch: zero at
    /// steady load if prefetching works. Touched only on the slow path.
    waits: AtomicU64,
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
    /// Length and install time of the current segment, to measure its
    /// lifetime when it runs out.
    current: Option<(u64, Instant)>,
}

/// Whether a slow-path call may wait for the network.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Block,
    Never,
}

impl IdGenerator {
    pub fn new(client: SegmentClient, key: SegmentKey, config: GeneratorConfig) -> Self {
        IdGenerator {
            shared: Arc::new(Shared {
                cursor: Cursor::new(),
                key,
                client,
                state: Mutex::new(State {
                    next: None,
                    fetching: false,
                    last_error: None,
                    size: config.initial_size,
                    size_ceiling: config.policy.max,
                    current: None,
                }),
                config,
                refilled: Condvar::new(),
                refilled_async: Notify::new(),
                waits: AtomicU64::new(0),
            }),
        }
    }

    pub fn key(&self) -> &SegmentKey {
        &self.shared.key
    }

    pub fn config(&self) -> &GeneratorConfig {
        &self.shared.config
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

    /// The first of `n` consecutive IDs from the cache. The hot path is one
    /// `fetch_add`; the take that passes the prefetch mark starts the next
    /// fetch; an empty cursor goes to the slow path. `None` only when `wait`
    /// is `Never` and nothing is buffered.
    #[inline]
    fn take(&self, n: u32, wait: Wait) -> Result<Option<i64>, ClientError> {
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
                    if !self.shared.refill(epoch, wait)? {
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

    /// `n` consecutive IDs as one segment. Runs of up to 65,536 come from the
    /// cache; an ID-range left too short for the run is skipped, never split.
    /// Longer runs are allocated from the server directly.
    pub fn next_ids(&self, n: i64) -> Result<Segment, ClientError> {
        if n < 1 {
            return Err(ClientError::InvalidArgument(format!(
                "n must be at least 1; got {n}"
            )));
        }
        let cached = u32::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_TAKE && i64::from(n) <= self.shared.config.policy.max);
        let Some(take) = cached else {
            let shared = Arc::clone(&self.shared);
            return runtime::block_on(async move { shared.client.allocate(&shared.key, n).await })?;
        };
        let first = self
            .take(take, Wait::Block)?
            .expect("a blocking take yields IDs or an error");
        Ok(Segment {
            start: first,
            end: first + n - 1,
        })
    }

    /// How many IDs are buffered: what is left of the current segment plus
    /// the prefetched one, if it has arrived.
    pub fn buffered(&self) -> u64 {
        let next = self.shared.lock().next.map_or(0, |s| s.len());
        self.shared.cursor.remaining() + next
    }

    /// How many calls so far had to wait for the network because both
    /// buffers were empty (including the very first call).
    pub fn waits(&self) -> u64 {
        self.shared.waits.load(Ordering::Relaxed)
    }

    /// The size the next fetch will ask for (it adapts to the rate of use).
    pub fn next_request_size(&self) -> i64 {
        self.shared.lock().size
    }

    /// A generator for the same counter with the same settings and a new
    /// client and cache, for a process that was forked (see [`crate::fork`]).
    pub fn rebuilt(&self) -> Result<IdGenerator, ClientError> {
        let client = SegmentClient::new(self.shared.client.config().clone())?;
        Ok(IdGenerator::new(
            client,
            self.shared.key.clone(),
            self.shared.config,
        ))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent in
        // a way that matters (every field is re-checked), so recover.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a fetch of the next segment unless one is buffered or running.
    fn prefetch(self: &Arc<Self>) {
        let mut state = self.lock();
        if state.next.is_none() && !state.fetching {
            self.start_fetch(&mut state);
        }
    }

    fn start_fetch(self: &Arc<Self>, state: &mut State) {
        state.fetching = true;
        runtime::handle().spawn(fetch(Arc::downgrade(self)));
    }

    /// The slow path for a caller that found epoch `seen` empty. Returns
    /// `Ok(true)` when the caller should take again, `Ok(false)` when
    /// nothing is buffered and `wait` is `Never`.
    fn refill(self: &Arc<Self>, seen: u32, wait: Wait) -> Result<bool, ClientError> {
        let deadline = Instant::now() + self.config.max_wait;
        let mut state = self.lock();
        let mut waited = false;
        loop {
            if let Some(ready) = self.try_install(&mut state, seen)? {
                return Ok(ready);
            }
            if wait == Wait::Never {
                return Ok(false);
            }
            if !waited {
                waited = true;
                self.waits.fetch_add(1, Ordering::Relaxed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.gave_up(&state));
            }
            state = self
                .refilled
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    async fn refill_async(self: &Arc<Self>) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + self.config.max_wait;
        loop {
            let notified = self.refilled_async.notified();
            tokio::pin!(notified);
            // Register before checking, so a wake-up in between is not lost.
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                let seen = self.cursor.epoch();
                if self.try_install(&mut state, seen)?.is_some() {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(self.gave_up(&state));
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// One step of the slow path, under the lock: `Some(true)` if the caller
    /// can take again (someone installed, or we did), `None` if it must wait
    /// for the fetch this makes sure is running.
    fn try_install(
        self: &Arc<Self>,
        state: &mut State,
        seen: u32,
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
        if let Some(error) = &state.last_error
            && !error.is_retryable()
        {
            // Not worth waiting for; the next call will ask again.
            return Err(state.last_error.take().expect("checked above"));
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
            let next = self.config.policy.next_size(len as i64, now - installed_at);
            state.size = next.min(state.size_ceiling);
        }
        let len = segment.len();
        self.cursor.install(segment, (len / 5) as u32);
        state.current = Some((len, now));
        // The new segment needs a successor; fetch it when the prefetch mark
        // is passed (the take that passes it calls `prefetch`).
    }

    fn gave_up(&self, state: &State) -> ClientError {
        ClientError::Unavailable {
            waited: self.config.max_wait,
            last: Box::new(
                state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| ClientError::Timeout {
                        url: self.client.config().base_urls().join(", "),
                        after: self.config.max_wait,
                    }),
            ),
        }
    }

    fn finish_fetch(&self, state: MutexGuard<'_, State>) {
        drop(state);
        self.refilled.notify_all();
        self.refilled_async.notify_waiters();
    }
}

/// The background fetch: asks for the next segment until it gets one, a
/// non-retryable refusal, or the generator is dropped. Holds only a weak
/// reference between attempts, so it never keeps a dropped generator alive.
async fn fetch(generator: Weak<Shared>) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let Some(shared) = generator.upgrade() else {
            return;
        };
        let size = shared.lock().size;
        let result = shared.client.allocate(&shared.key, size).await;
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
        let mut state = self.lock();
        match result {
            Ok(segment) => {
                state.next = Some(segment);
                state.fetching = false;
                state.last_error = None;
                self.finish_fetch(state);
                Fetched::Done
            }
            Err(ClientError::Api {
                status: 400,
                code: 40002,
                ..
            }) if size > self.config.policy.min => {
                // Larger than the server allows (--max-segment): ask for
                // less from now on, down to the configured minimum.
                state.size_ceiling = self.config.policy.clamp(size / 2);
                state.size = state.size_ceiling;
                Fetched::RetryNow
            }
            Err(e) => {
                let retry = e.is_retryable();
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
