//! The contract every store backend keeps, checked against the real embedded
//! file store and the real Redis with the same code.

use std::sync::Arc;
use std::time::Duration;

use kxy_core::{AllocationLimits, Segment, SegmentCount, SegmentKey};
use kxy_e2e::api::assert_disjoint;
use kxy_e2e::redis_env::KeyPrefix;
use kxy_e2e::require_redis;
use kxy_server::store::coalesce::Coalescing;
use kxy_server::store::redis as redis_store;
use kxy_server::store::{
    self, DurabilityPolicy, Expect, Mark, MissingCounter, Observation, Record, Registration,
    Settlement, Settling, Store, StoreConfig, StoreError,
};

/// Opens allocation on a store that this test alone uses (its own key
/// prefix), as a lone instance with nothing to compare would: heartbeat,
/// settle at once, trust the epoch. The protocol itself is tested with
/// running servers (tests/tests/never_twice.rs).
async fn open_alone(store: &dyn Store) {
    let seen = store
        .observe("contract-test", None, TIMING, None)
        .await
        .unwrap();
    store
        .observe("contract-test", Some(&seen.epoch), TIMING, None)
        .await
        .unwrap();
    let immediately = Settling {
        period: Duration::ZERO,
        lease: Duration::from_secs(60),
    };
    let settled = store.settle(&seen.epoch, &[], immediately).await.unwrap();
    assert_eq!(settled, Settlement::Open);
    store.trust(Some(seen.epoch.into()));
}

/// The heartbeats' own settle period in these tests: none, so that the
/// settle steps below are decided by the times they pass.
const TIMING: Settling = Settling {
    period: Duration::ZERO,
    lease: Duration::ZERO,
};

fn key(table: &str) -> SegmentKey {
    SegmentKey::new("sys", "db", table, "id").unwrap()
}

fn count(n: i64) -> SegmentCount {
    AllocationLimits {
        max_segment: i64::MAX,
    }
    .segment_count(n)
    .unwrap()
}

async fn registration_and_allocation(store: &dyn Store) {
    let orders = key("orders");
    let refused = store
        .allocate(&orders, count(10), MissingCounter::Refuse)
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotRegistered { .. })),
        "{refused:?}"
    );

    assert_eq!(
        store.register(&orders, 1000).await.unwrap(),
        Registration::Created
    );
    let first = store
        .allocate(&orders, count(10), MissingCounter::Refuse)
        .await
        .unwrap();
    assert_eq!(
        first,
        Segment {
            start: 1001,
            end: 1010
        }
    );
    let second = store
        .allocate(&orders, count(1), MissingCounter::Refuse)
        .await
        .unwrap();
    assert_eq!(
        second,
        Segment {
            start: 1011,
            end: 1011
        }
    );

    // Registration never moves a counter backwards, only up.
    assert_eq!(
        store.register(&orders, 5).await.unwrap(),
        Registration::Unchanged { current: 1011 }
    );
    assert_eq!(
        store.register(&orders, 1011).await.unwrap(),
        Registration::Unchanged { current: 1011 }
    );
    assert_eq!(
        store.register(&orders, 5000).await.unwrap(),
        Registration::Raised { from: 1011 }
    );
    let raised = store
        .allocate(&orders, count(2), MissingCounter::Refuse)
        .await
        .unwrap();
    assert_eq!(
        raised,
        Segment {
            start: 5001,
            end: 5002
        }
    );

    // Auto-creation starts a counter at 1 and only when asked.
    let fresh = store
        .allocate(&key("fresh"), count(3), MissingCounter::Create)
        .await
        .unwrap();
    assert_eq!(fresh, Segment { start: 1, end: 3 });

    let listed = store.counters().await.unwrap();
    let names: Vec<(String, i64)> = listed
        .iter()
        .map(|c| (c.key.storage_name(), c.current))
        .collect();
    assert_eq!(
        names,
        vec![
            ("sys:db:fresh:id".to_owned(), 3),
            ("sys:db:orders:id".to_owned(), 5002)
        ]
    );
    store.ping().await.unwrap();
}

async fn exact_near_the_top_and_exhaustion(store: &dyn Store) {
    let big = key("big");
    // Above 2^53, where a double (Lua's number) would round.
    let start = (1i64 << 53) + 1;
    store.register(&big, start).await.unwrap();
    let segment = store
        .allocate(&big, count(1), MissingCounter::Refuse)
        .await
        .unwrap();
    assert_eq!(
        segment,
        Segment {
            start: start + 1,
            end: start + 1
        }
    );

    let top = key("top");
    store.register(&top, i64::MAX - 10).await.unwrap();
    let last = store
        .allocate(&top, count(10), MissingCounter::Refuse)
        .await
        .unwrap();
    assert_eq!(
        last,
        Segment {
            start: i64::MAX - 9,
            end: i64::MAX
        }
    );
    let err = store
        .allocate(&top, count(1), MissingCounter::Refuse)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Exhausted { .. }), "{err:?}");
    assert!(err.to_string().contains("counter sys:db:top:id"), "{err}");
    // Exhaustion changed nothing.
    let current = store
        .counters()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.key == top)
        .unwrap();
    assert_eq!(current.current, i64::MAX);
}

async fn concurrent_allocations_are_disjoint_and_gapless(store: Arc<dyn Store>) {
    let hot = key("hot");
    store.register(&hot, 0).await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..200i64 {
        let store = Arc::clone(&store);
        let hot = hot.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..10 {
                let n = (task * 31 + i) % 97 + 1;
                let s = store
                    .allocate(&hot, count(n), MissingCounter::Refuse)
                    .await
                    .unwrap();
                assert_eq!(s.len(), n as u64);
                got.push(s);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_disjoint(&all);
    let total: u64 = all.iter().map(Segment::len).sum();
    assert_eq!(all.iter().map(|s| s.end).max(), Some(total as i64));
}

async fn records_and_marks(store: &dyn Store) {
    // Unique creation, compare-and-set, listing, deletion.
    assert_eq!(
        store
            .put_record("users", "u1", r#"{"n":1}"#, Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .put_record("users", "u1", r#"{"n":2}"#, Expect::Absent)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .put_record("users", "u1", r#"{"n":2}"#, Expect::Version(7))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .put_record("users", "u1", r#"{"n":2}"#, Expect::Version(1))
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store
            .put_record("users", "u1", "{}", Expect::Version(1))
            .await
            .unwrap(),
        None,
        "stale"
    );
    assert_eq!(
        store
            .put_record("users", "u2", r#"{"n":"a:b"}"#, Expect::Any)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .put_record("roles", "u1", "{}", Expect::Any)
            .await
            .unwrap(),
        Some(1)
    );
    let got = store.record("users", "u1").await.unwrap().unwrap();
    assert_eq!((got.value.as_str(), got.version), (r#"{"n":2}"#, 2));
    assert_eq!(store.record("users", "nobody").await.unwrap(), None);
    let listed: Vec<(String, String)> = store
        .records("users")
        .await
        .unwrap()
        .into_iter()
        .map(|(id, r)| (id, r.value))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("u1".into(), r#"{"n":2}"#.into()),
            ("u2".into(), r#"{"n":"a:b"}"#.into())
        ],
        "only this collection, ordered by id, values intact"
    );
    assert!(
        !store
            .delete_record("users", "u1", Expect::Version(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_record("users", "u1", Expect::Version(2))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_record("users", "u1", Expect::Any)
            .await
            .unwrap()
    );
    assert!(store.record("users", "u1").await.unwrap().is_none());
    assert!(matches!(
        store
            .put_record("users", "bad\u{1f}id", "{}", Expect::Any)
            .await,
        Err(StoreError::InvalidName(_))
    ));

    // Marks count hits within a window that starts at the first hit.
    let window = Duration::from_millis(400);
    assert_eq!(store.mark("fail:alice").await.unwrap(), None);
    for expected in 1..=3 {
        assert_eq!(
            store.hit_mark("fail:alice", window).await.unwrap(),
            expected
        );
    }
    let mark = store.mark("fail:alice").await.unwrap().unwrap();
    assert_eq!(mark.count, 3);
    assert!(mark.expires_in <= window && mark.expires_in > Duration::ZERO);
    store
        .set_mark("lock:alice", Duration::from_secs(60))
        .await
        .unwrap();
    store.clear_mark("lock:alice").await.unwrap();
    assert_eq!(store.mark("lock:alice").await.unwrap(), None);
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert_eq!(store.mark("fail:alice").await.unwrap(), None, "expired");
    assert_eq!(
        store.hit_mark("fail:alice", window).await.unwrap(),
        1,
        "a new window"
    );
}

/// A fenced counter refuses every allocation until registration raises it
/// to its floor; the store's id stays the same.
async fn fences_and_identity(store: &dyn Store) {
    let id = store.store_id().await.unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(store.store_id().await.unwrap(), id, "created once");

    // A counter the store lost is fenced at the floor, so that nobody
    // re-registers it at 0 (or auto-creates it) and repeats its IDs.
    let lost = key("lost");
    assert_eq!(store.fence(&lost, 10).await.unwrap(), 10);
    let listed = store.counters().await.unwrap();
    let state = listed.iter().find(|c| c.key == lost).unwrap();
    assert_eq!((state.current, state.fenced), (10, true));
    for missing in [MissingCounter::Refuse, MissingCounter::Create] {
        let refused = store.allocate(&lost, count(1), missing).await;
        assert!(
            matches!(refused, Err(StoreError::Fenced { floor: 10, .. })),
            "{refused:?}"
        );
    }
    assert!(matches!(
        store.register(&lost, 0).await,
        Err(StoreError::BelowFence { floor: 10, .. })
    ));

    let fenced = key("fenced");
    store.register(&fenced, 100).await.unwrap();
    store
        .allocate(&fenced, count(10), MissingCounter::Refuse)
        .await
        .unwrap();
    // The floor is the greatest of the asked floor and the counter's value.
    assert_eq!(store.fence(&fenced, 50).await.unwrap(), 110);
    assert_eq!(store.fence(&fenced, 500).await.unwrap(), 500);
    assert_eq!(
        store.fence(&fenced, 200).await.unwrap(),
        500,
        "never lowered"
    );
    for missing in [MissingCounter::Refuse, MissingCounter::Create] {
        let refused = store.allocate(&fenced, count(1), missing).await;
        assert!(
            matches!(refused, Err(StoreError::Fenced { floor: 500, .. })),
            "{refused:?}"
        );
    }
    let listed = store.counters().await.unwrap();
    let state = listed.iter().find(|c| c.key == fenced).unwrap();
    assert_eq!((state.current, state.fenced), (500, true));
    let below = store.register(&fenced, 499).await;
    assert!(
        matches!(below, Err(StoreError::BelowFence { floor: 500, .. })),
        "{below:?}"
    );
    assert_eq!(
        store.register(&fenced, 600).await.unwrap(),
        Registration::Unfenced { floor: 500 }
    );
    let next = store
        .allocate(&fenced, count(1), MissingCounter::Refuse)
        .await
        .unwrap();
    assert_eq!(
        next,
        Segment {
            start: 601,
            end: 601
        }
    );
    let listed = store.counters().await.unwrap();
    let state = listed.iter().find(|c| c.key == fenced).unwrap();
    assert_eq!((state.current, state.fenced), (601, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::Embedded {
        data_dir: dir.path().to_owned(),
    };
    let store = store::open(&config).await.unwrap();
    registration_and_allocation(store.as_ref()).await;
    exact_near_the_top_and_exhaustion(store.as_ref()).await;
    concurrent_allocations_are_disjoint_and_gapless(Arc::clone(&store)).await;
    records_and_marks(store.as_ref()).await;
    fences_and_identity(store.as_ref()).await;
    assert_eq!(store.backend(), "embedded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::Embedded {
        data_dir: dir.path().to_owned(),
    };
    {
        let store = store::open(&config).await.unwrap();
        store.register(&key("orders"), 0).await.unwrap();
        store
            .allocate(&key("orders"), count(100), MissingCounter::Refuse)
            .await
            .unwrap();
        // While open, a second handle on the same directory is refused.
        let second = store::open(&config).await;
        assert!(
            matches!(&second, Err(StoreError::Unavailable { reason, .. }) if reason.contains("in use")),
            "{:?}",
            second.err()
        );
    }
    let store = store::open(&config).await.unwrap();
    let next = store
        .allocate(&key("orders"), count(1), MissingCounter::Refuse)
        .await
        .unwrap();
    assert_eq!(
        next,
        Segment {
            start: 101,
            end: 101
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_keeps_the_contract() {
    let url = require_redis!();
    let prefix = KeyPrefix::new(&url, "store_contract");
    let config = StoreConfig::Redis {
        url: url.clone(),
        prefix: prefix.as_str().to_owned(),
        // The shared Redis keeps nothing on disk; these tests check the
        // contract, not durability (tests/tests/faults.rs does).
        policy: DurabilityPolicy::Unsafe,
        wait_replicas: None,
    };
    let store = store::open(&config).await.unwrap();
    open_alone(store.as_ref()).await;
    registration_and_allocation(store.as_ref()).await;
    exact_near_the_top_and_exhaustion(store.as_ref()).await;
    concurrent_allocations_are_disjoint_and_gapless(Arc::clone(&store)).await;
    records_and_marks(store.as_ref()).await;
    fences_and_identity(store.as_ref()).await;
    assert_eq!(store.backend(), "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_uses_the_seed_key_layout() {
    let url = require_redis!();
    let prefix = KeyPrefix::new(&url, "layout");
    let config = StoreConfig::Redis {
        url: url.clone(),
        prefix: prefix.as_str().to_owned(),
        // The shared Redis keeps nothing on disk; these tests check the
        // contract, not durability (tests/tests/faults.rs does).
        policy: DurabilityPolicy::Unsafe,
        wait_replicas: None,
    };
    let store = store::open(&config).await.unwrap();
    open_alone(store.as_ref()).await;
    store
        .register(&SegmentKey::new("crm", "main", "orders", "id").unwrap(), 41)
        .await
        .unwrap();

    // Read back with a plain client, as the Python service would have written it.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let raw: String = redis::cmd("GET")
        .arg(format!("{}:segment:crm:main:orders:id", prefix.as_str()))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(raw, "41");

    // A value the seed's service left behind is picked up as is.
    let _: () = redis::cmd("SET")
        .arg(format!("{}:segment:crm:main:users:id", prefix.as_str()))
        .arg("777")
        .query_async(&mut connection)
        .await
        .unwrap();
    let users = SegmentKey::new("crm", "main", "users", "id").unwrap();
    let next = store
        .allocate(&users, count(3), MissingCounter::Refuse)
        .await
        .unwrap();
    assert_eq!(
        next,
        Segment {
            start: 778,
            end: 780
        }
    );

    // A value that is not a number is reported, not treated as 0.
    let _: () = redis::cmd("SET")
        .arg(format!("{}:segment:crm:main:junk:id", prefix.as_str()))
        .arg("not-a-number")
        .query_async(&mut connection)
        .await
        .unwrap();
    let junk = SegmentKey::new("crm", "main", "junk", "id").unwrap();
    let err = store
        .allocate(&junk, count(1), MissingCounter::Refuse)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let err = store.register(&junk, 5).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

/// The real Redis store, with a count of the allocation calls that reach it.
struct CountingCalls {
    inner: redis_store::RedisStore,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Store for CountingCalls {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn store_id(&self) -> Result<String, StoreError> {
        self.inner.store_id().await
    }
    async fn durability(&self) -> Result<store::DurabilityFacts, StoreError> {
        self.inner.durability().await
    }
    async fn fence(&self, key: &SegmentKey, floor: i64) -> Result<i64, StoreError> {
        self.inner.fence(key, floor).await
    }
    async fn allocate(
        &self,
        key: &SegmentKey,
        count: SegmentCount,
        missing: MissingCounter,
    ) -> Result<Segment, StoreError> {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if key.table_name() == "panics" && call == 0 {
            panic!("injected: the first store call of this counter panics");
        }
        self.inner.allocate(key, count, missing).await
    }
    async fn register(&self, key: &SegmentKey, start: i64) -> Result<Registration, StoreError> {
        self.inner.register(key, start).await
    }
    async fn counters(&self) -> Result<Vec<store::CounterState>, StoreError> {
        self.inner.counters().await
    }
    async fn record(&self, c: &str, id: &str) -> Result<Option<Record>, StoreError> {
        self.inner.record(c, id).await
    }
    async fn put_record(
        &self,
        c: &str,
        id: &str,
        v: &str,
        e: Expect,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.put_record(c, id, v, e).await
    }
    async fn delete_record(&self, c: &str, id: &str, e: Expect) -> Result<bool, StoreError> {
        self.inner.delete_record(c, id, e).await
    }
    async fn records(&self, c: &str) -> Result<Vec<(String, Record)>, StoreError> {
        self.inner.records(c).await
    }
    async fn hit_mark(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        self.inner.hit_mark(key, window).await
    }
    async fn set_mark(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        self.inner.set_mark(key, ttl).await
    }
    async fn mark(&self, key: &str) -> Result<Option<Mark>, StoreError> {
        self.inner.mark(key).await
    }
    async fn clear_mark(&self, key: &str) -> Result<(), StoreError> {
        self.inner.clear_mark(key).await
    }
    async fn observe(
        &self,
        instance: &str,
        v: Option<&str>,
        t: Settling,
        b: Option<kxy_server::store::Beat<'_>>,
    ) -> Result<Observation, StoreError> {
        self.inner.observe(instance, v, t, b).await
    }
    async fn settle(
        &self,
        epoch: &str,
        base: &[store::CounterState],
        timing: Settling,
    ) -> Result<Settlement, StoreError> {
        self.inner.settle(epoch, base, timing).await
    }
    async fn base(&self, epoch: &str) -> Result<Vec<(SegmentKey, i64)>, StoreError> {
        self.inner.base(epoch).await
    }
    fn trust(&self, epoch: Option<Arc<str>>) {
        self.inner.trust(epoch)
    }
}

/// A store call that panics fails the requests it served, and the next
/// request of that counter is served again (the worker's queue is not left
/// behind without a worker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_coalescer_does_not_wedge_its_counter() {
    let url = require_redis!();
    let prefix = KeyPrefix::new(&url, "coalesce_panic");
    let store = Coalescing::new(CountingCalls {
        inner: redis_store::RedisStore::open(&url, prefix.as_str(), DurabilityPolicy::Unsafe, None)
            .unwrap(),
        calls: Default::default(),
    });
    open_alone(&store).await;
    store.register(&key("panics"), 0).await.unwrap();
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        store.allocate(&key("panics"), count(5), MissingCounter::Refuse),
    )
    .await
    .expect("the request whose store call panicked is answered");
    assert!(
        matches!(first, Err(StoreError::Unavailable { .. })),
        "{first:?}"
    );
    let second = tokio::time::timeout(
        Duration::from_secs(5),
        store.allocate(&key("panics"), count(5), MissingCounter::Refuse),
    )
    .await
    .expect("the counter is served again");
    assert_eq!(second.unwrap(), Segment { start: 1, end: 5 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_allocations_of_one_counter_are_coalesced() {
    let url = require_redis!();
    let prefix = KeyPrefix::new(&url, "coalesce");
    let counting = CountingCalls {
        inner: redis_store::RedisStore::open(&url, prefix.as_str(), DurabilityPolicy::Unsafe, None)
            .unwrap(),
        calls: Default::default(),
    };
    let store = Arc::new(Coalescing::new(counting));
    open_alone(store.as_ref()).await;
    store.register(&key("busy"), 0).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..300i64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let n = i % 13 + 1;
            let s = store
                .allocate(&key("busy"), count(n), MissingCounter::Refuse)
                .await
                .unwrap();
            assert_eq!(s.len(), n as u64);
            s
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.push(task.await.unwrap());
    }
    assert_disjoint(&all);
    let total: u64 = all.iter().map(Segment::len).sum();
    assert_eq!(all.iter().map(|s| s.end).max(), Some(total as i64));
    let calls = store_calls(&store);
    assert!(
        calls < 300,
        "300 concurrent allocations took {calls} store calls"
    );

    // Unregistered: every waiter of a merged call gets the refusal.
    let mut refused = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        refused.push(tokio::spawn(async move {
            store
                .allocate(&key("nobody"), count(5), MissingCounter::Refuse)
                .await
        }));
    }
    for r in refused {
        assert!(matches!(
            r.await.unwrap(),
            Err(StoreError::NotRegistered { .. })
        ));
    }

    // Two requests that fit one at a time but not together: one is served.
    let nearly_full = key("nearly_full");
    store.register(&nearly_full, i64::MAX - 10).await.unwrap();
    let (a, b) = tokio::join!(
        store.allocate(&nearly_full, count(6), MissingCounter::Refuse),
        store.allocate(&nearly_full, count(6), MissingCounter::Refuse),
    );
    let served: Vec<Segment> = [&a, &b]
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(served.len(), 1, "{a:?} {b:?}");
    assert_eq!(
        served[0],
        Segment {
            start: i64::MAX - 9,
            end: i64::MAX - 4
        }
    );
    assert!(
        [a, b]
            .iter()
            .any(|r| matches!(r, Err(StoreError::Exhausted { .. })))
    );
}

fn store_calls(store: &Coalescing<CountingCalls>) -> usize {
    store
        .inner()
        .calls
        .load(std::sync::atomic::Ordering::SeqCst)
}

/// The store's half of the continuity protocol (docs/continuity.md), on
/// the real Redis: an allocation runs only under the epoch the instance
/// trusts, and only once that epoch is open; the settle step waits for the
/// settle period and for every recent heartbeat to be `verified`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_allocates_only_under_a_settled_trusted_epoch() {
    let url = require_redis!();
    let prefix = KeyPrefix::new(&url, "continuity");
    let config = StoreConfig::Redis {
        url: url.clone(),
        prefix: prefix.as_str().to_owned(),
        policy: DurabilityPolicy::Unsafe,
        wait_replicas: None,
    };
    let store = store::open(&config).await.unwrap();
    store.register(&key("orders"), 0).await.unwrap();
    let unsettled = |r: Result<Segment, StoreError>| {
        assert!(matches!(r, Err(StoreError::Unsettled(_))), "{r:?}");
    };
    let orders = key("orders");
    let take = || store.allocate(&orders, count(1), MissingCounter::Refuse);
    unsettled(take().await);

    // Two instances heartbeat; the epoch is pending from the first sight.
    let a = store.observe("a", None, TIMING, None).await.unwrap();
    assert!(!a.is_open());
    assert!(a.first_seen_ms.is_some());
    store.observe("b", None, TIMING, None).await.unwrap();
    let epoch = a.epoch.clone();

    // Trusting the epoch is not enough while it is not open.
    store.trust(Some(epoch.as_str().into()));
    unsettled(take().await);

    let timing = Settling {
        period: Duration::from_millis(300),
        lease: Duration::from_secs(60),
    };
    store
        .observe("a", Some(&epoch), TIMING, None)
        .await
        .unwrap();
    store
        .observe("b", Some(&epoch), TIMING, None)
        .await
        .unwrap();
    let early = store.settle(&epoch, &[], timing).await.unwrap();
    assert!(
        matches!(&early, Settlement::Wait(why) if why.contains("settle period")),
        "both verified, but the settle period has not passed: {early:?}"
    );
    // b heartbeats again without having compared (it restarted, say).
    store.observe("b", None, TIMING, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let waiting = store.settle(&epoch, &[], timing).await.unwrap();
    assert!(
        matches!(&waiting, Settlement::Wait(why) if why.contains("instance b")),
        "b heartbeated and has not verified: {waiting:?}"
    );
    unsettled(take().await);
    store
        .observe("b", Some(&epoch), TIMING, None)
        .await
        .unwrap();
    let base = store.counters().await.unwrap();
    assert_eq!(
        store.settle(&epoch, &base, timing).await.unwrap(),
        Settlement::Open
    );
    assert_eq!(take().await.unwrap(), Segment { start: 1, end: 1 });
    assert_eq!(
        store.base(&epoch).await.unwrap(),
        vec![(key("orders"), 0)],
        "the base holds the values at the settle"
    );
    assert!(store.base("another").await.unwrap().is_empty());

    // An instance that trusts another epoch (the node's changed under it)
    // is refused without incrementing.
    store.trust(Some("0000".into()));
    unsettled(take().await);
    store.trust(None);
    unsettled(take().await);
    store.trust(Some(epoch.as_str().into()));
    assert_eq!(take().await.unwrap(), Segment { start: 2, end: 2 });
}

/// Instances may run with different check intervals (a rolling change of
/// `--redis-check-interval`): a settle waits the longest settle period any
/// live instance heartbeated with, and a heartbeat stamped far ahead (a
/// clock that stepped) does not hold every settle closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_waits_for_the_slowest_instances_period() {
    let url = require_redis!();
    let prefix = KeyPrefix::new(&url, "continuity_periods");
    let config = StoreConfig::Redis {
        url: url.clone(),
        prefix: prefix.as_str().to_owned(),
        policy: DurabilityPolicy::Unsafe,
        wait_replicas: None,
    };
    let store = store::open(&config).await.unwrap();
    let quick = Settling {
        period: Duration::from_millis(200),
        lease: Duration::from_millis(200),
    };
    let slow = Settling {
        period: Duration::from_secs(30),
        lease: Duration::from_secs(30),
    };
    let epoch = store
        .observe("quick", None, quick, None)
        .await
        .unwrap()
        .epoch;
    store.observe("slow", None, slow, None).await.unwrap();
    store
        .observe("slow", Some(&epoch), slow, None)
        .await
        .unwrap();
    store
        .observe("quick", Some(&epoch), quick, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = store.settle(&epoch, &[], quick).await.unwrap();
    assert!(
        matches!(&waiting, Settlement::Wait(why) if why.contains("settle period")),
        "the slow instance's 30 s period applies: {waiting:?}"
    );

    // An entry stamped an hour and more ahead is forgotten, not waited for.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("HDEL")
        .arg(format!("{}:instances", prefix.as_str()))
        .arg("slow")
        .query_async(&mut connection)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{}:instances", prefix.as_str()))
        .arg("ahead")
        .arg(format!("{epoch}:seen:99999999999999:1000"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        store.settle(&epoch, &[], quick).await.unwrap(),
        Settlement::Open
    );
}
