//! The store: where counters live, behind one trait.
//!
//! Everything the server knows about counters goes through [`Store`], so the
//! HTTP layer and the CLI never care which backend holds the data. Two
//! backends exist:
//!
//! - [`embedded`]: a crash-safe `redb` file under the data directory, the
//!   default, so the server runs with nothing else installed. One process
//!   owns the file.
//! - [`redis`]: for several server instances sharing one Redis, with the
//!   seed's key layout so data from the Python service stays usable.
//!
//! Redis calls pass through [`coalesce`], which merges concurrent
//! allocations of one counter into one call.
//!
//! Both uphold the guarantee the rest of kxy relies on: a counter's segments
//! never overlap, and an allocation is durable in the backend before its
//! segment is returned.

pub mod coalesce;
pub mod continuity;
pub mod durability;
pub mod embedded;
pub mod fresh;
pub mod records;
pub mod redis;
pub mod redis_url;

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use async_trait::async_trait;
use kxy_core::{Exhausted, Segment, SegmentCount, SegmentKey};

pub use continuity::{Beat, Observation, Settlement, Settling};
pub use durability::{DurabilityFacts, DurabilityPolicy, RedisFacts};
pub use records::{Expect, Mark, Record};

/// What to do when asked to allocate from a counter that was never registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingCounter {
    /// Refuse with [`StoreError::NotRegistered`]: the production default, so
    /// a store that lost its data cannot silently restart a counter at 1.
    Refuse,
    /// Create the counter at 0 and hand out IDs from 1 (development only).
    Create,
}

/// The result of registering a counter at a starting value.
///
/// Registration never moves a counter backwards: registering below the
/// current value leaves it unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The counter did not exist and now stands at the requested value.
    Created,
    /// The counter existed below the requested value and was raised to it.
    Raised { from: i64 },
    /// The counter already stood at or above the requested value.
    Unchanged { current: i64 },
    /// The counter was fenced at `floor` (its store went backwards) and now
    /// stands at the requested value, at or above the floor: allocation
    /// resumes.
    Unfenced { floor: i64 },
}

/// A counter and the highest ID it has handed out (or reserved at
/// registration); the next ID it hands out is `current + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterState {
    pub key: SegmentKey,
    /// For a fenced counter, its floor (see [`Store::fence`]).
    pub current: i64,
    /// Whether the counter is fenced: it refuses to allocate until raised
    /// to at least `current`.
    pub fenced: bool,
}

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "counter {key} is not registered; register it first (kxy-server counters add), \
         or run the server with --auto-create for development"
    )]
    NotRegistered { key: SegmentKey },
    #[error("counter {key}: {source}")]
    Exhausted { key: SegmentKey, source: Exhausted },
    #[error("counter {key} holds {value:?}, which is not a valid counter value")]
    Corrupt { key: SegmentKey, value: String },
    #[error("the {backend} store is unavailable: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    #[error("invalid record name {0:?}")]
    InvalidName(String),
    /// The counter was fenced after its store went backwards; it refuses
    /// until an operator raises it to at least `floor`.
    #[error(
        "counter {key} is fenced because its store went backwards: IDs up to {floor} may have \
         been handed out already; raise it to at least {floor} plus a margin for IDs clients \
         hold (kxy-server counters raise, or POST /api/counters/raise)"
    )]
    Fenced { key: SegmentKey, floor: i64 },
    /// A registration below the floor of a fenced counter.
    #[error(
        "counter {key} is fenced at {floor} (its store went backwards); raise it to at least \
         {floor}, plus a margin for IDs clients hold"
    )]
    BelowFence { key: SegmentKey, floor: i64 },
    /// The store is not durable enough for the policy right now (seen by
    /// an allocation, which handed nothing out).
    #[error("{0}")]
    NotDurable(String),
    /// The node's data history changed (restart, failover, rollback) or
    /// allocation is not open under it yet: nothing was handed out, and the
    /// instances compare what they handed out before any serves again.
    #[error(
        "the store changed under kxy, or this instance has just started ({0}): every running \
         instance compares what it handed out with the store before any serves; retry in a few \
         seconds"
    )]
    Unsettled(String),
    /// Redis refused a write because the node is a read-only replica.
    #[error(
        "Redis refused the write because it is a read-only replica ({0}); point --redis-url \
         at the primary"
    )]
    ReadOnly(String),
    /// Redis refused a write because it reached `maxmemory`.
    #[error(
        "Redis is out of memory and refused the write ({0}); raise maxmemory or free memory \
         (kxy requires maxmemory-policy noeviction, so nothing of it is evicted)"
    )]
    OutOfMemory(String),
    /// `WAIT` saw fewer replicas acknowledge the allocation than required.
    #[error(
        "only {acked} of the {wanted} Redis replicas required acknowledged the allocation \
         within {timeout_ms} ms; its IDs are not handed out"
    )]
    NotReplicated {
        acked: u64,
        wanted: u64,
        timeout_ms: u64,
    },
}

/// The operations the server needs from a backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs and `/health`: `embedded` or `redis`.
    fn backend(&self) -> &'static str;

    /// Where the data lives, for people: a file path or a Redis URL without
    /// its password.
    fn location(&self) -> String;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The store's identity: 32 hex digits created once, when the store is
    /// first initialised, and the same for every instance on it. Clients
    /// pin counters to it, so that two independent stores behind one
    /// client's list of servers cannot hand it the same ranges.
    async fn store_id(&self) -> Result<String, StoreError>;

    /// What the backend says about its own durability (Redis settings, or
    /// the embedded store's fsync-before-reply).
    async fn durability(&self) -> Result<DurabilityFacts, StoreError>;

    /// Fences the counter after its store was seen going backwards: every
    /// allocation refuses with [`StoreError::Fenced`] until [`Store::register`]
    /// raises it to at least the floor, which is the greatest of `floor`,
    /// the counter's current value and any earlier fence. Returns the floor.
    async fn fence(&self, key: &SegmentKey, floor: i64) -> Result<i64, StoreError>;

    /// Takes the next `count` IDs of the counter, atomically and durably.
    async fn allocate(
        &self,
        key: &SegmentKey,
        count: SegmentCount,
        missing: MissingCounter,
    ) -> Result<Segment, StoreError>;

    /// Registers the counter so that its first ID is `start + 1`, or raises
    /// it to `start` if it stands lower; never lowers it. A fenced counter
    /// is raised (and its fence lifted) only if `start` reaches its floor,
    /// else [`StoreError::BelowFence`]. `start` must have passed
    /// [`kxy_core::counter_start`].
    async fn register(&self, key: &SegmentKey, start: i64) -> Result<Registration, StoreError>;

    /// Every registered counter, ordered by key.
    async fn counters(&self) -> Result<Vec<CounterState>, StoreError>;

    /// The record `id` of `collection`, if any.
    async fn record(&self, collection: &str, id: &str) -> Result<Option<Record>, StoreError>;

    /// Writes the record if `expect` holds; returns its new version, or
    /// `None` if the condition failed (nothing was written).
    async fn put_record(
        &self,
        collection: &str,
        id: &str,
        value: &str,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError>;

    /// Deletes the record if `expect` holds; returns whether one was deleted.
    async fn delete_record(
        &self,
        collection: &str,
        id: &str,
        expect: Expect,
    ) -> Result<bool, StoreError>;

    /// Every record of `collection`, ordered by id.
    async fn records(&self, collection: &str) -> Result<Vec<(String, Record)>, StoreError>;

    /// Counts one more hit on the mark `key` and returns the count. A new
    /// mark expires `window` after its first hit; hits do not extend it.
    async fn hit_mark(&self, key: &str, window: Duration) -> Result<u64, StoreError>;

    /// Sets the mark `key` to count 1, expiring after `ttl` (replacing any).
    async fn set_mark(&self, key: &str, ttl: Duration) -> Result<(), StoreError>;

    /// The mark `key`, unless absent or expired.
    async fn mark(&self, key: &str) -> Result<Option<Mark>, StoreError>;

    /// Removes the mark `key`.
    async fn clear_mark(&self, key: &str) -> Result<(), StoreError>;

    /// Continuity (docs/continuity.md): reads the store's epoch and writes
    /// this instance's heartbeat, `verified` if `verified` is that epoch,
    /// with its settle period (a settle waits for the longest of them).
    /// With `beat`, it also checks that the store still holds this
    /// instance's previous heartbeat.
    async fn observe(
        &self,
        instance: &str,
        verified: Option<&str>,
        timing: Settling,
        beat: Option<Beat<'_>>,
    ) -> Result<Observation, StoreError>;

    /// Opens allocation under `epoch` if the settle rule allows it,
    /// recording `base` (the counters' values) with it.
    async fn settle(
        &self,
        epoch: &str,
        base: &[CounterState],
        timing: Settling,
    ) -> Result<Settlement, StoreError>;

    /// The counters' values recorded when `epoch` was opened (empty when
    /// the recorded base is of another epoch, or there is none).
    async fn base(&self, epoch: &str) -> Result<Vec<(SegmentKey, i64)>, StoreError>;

    /// The epoch this instance's allocations run under: the store refuses
    /// an allocation under another (or under none).
    fn trust(&self, epoch: Option<Arc<str>>);
}

/// Which backend to open, with its settings.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Embedded {
        data_dir: PathBuf,
    },
    Redis {
        url: String,
        /// Prepended to every key, `kxy:id` by default (the seed's layout);
        /// lets several deployments or test runs share one Redis.
        prefix: String,
        /// What every allocation verifies in its own round trip.
        policy: DurabilityPolicy,
        /// With `Some`, every allocation is followed by `WAIT` for that many
        /// replicas (see [`DurabilityPolicy::Replicas`]).
        wait_replicas: Option<durability::WaitReplicas>,
    },
}

/// Opens the configured backend.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match config {
        StoreConfig::Embedded { data_dir } => Arc::new(embedded::EmbeddedStore::open(data_dir)?),
        // The embedded store batches in its writer thread already.
        StoreConfig::Redis {
            url,
            prefix,
            policy,
            wait_replicas,
        } => Arc::new(coalesce::Coalescing::new(redis::RedisStore::open(
            url,
            prefix,
            *policy,
            *wait_replicas,
        )?)),
    })
}

/// A new store id: 128 random bits as 32 hex digits.
pub(crate) fn new_store_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
