//! Several server instances on one Redis share counters safely.

use std::sync::Arc;

use kxy_core::Segment;
use kxy_e2e::api::{allocate, assert_disjoint};
use kxy_e2e::redis_env::KeyPrefix;
use kxy_e2e::require_redis;
use kxy_e2e::server::{ServerProcess, register_counter};

const CALLERS: usize = 64;
const ALLOCATIONS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_64_callers_20000_allocations_never_overlap() {
    let url = require_redis!();
    let prefix = KeyPrefix::new(&url, "two_instances");
    let store = prefix.store_args();
    register_counter(&store, "orders", 0);

    let servers = [
        ServerProcess::start(&store, &[]),
        ServerProcess::start(&store, &[]),
    ];
    let urls: Arc<Vec<String>> =
        Arc::new(servers.iter().map(|s| s.base_url().to_owned()).collect());
    let http = reqwest::Client::new();

    let mut callers = Vec::new();
    for caller in 0..CALLERS {
        let (http, urls) = (http.clone(), Arc::clone(&urls));
        callers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in (caller..ALLOCATIONS).step_by(CALLERS) {
                // Sizes 1..=50, spread over callers and instances.
                let size = (i * 7919 % 50 + 1) as i64;
                let url = &urls[i % urls.len()];
                let segment = allocate(&http, url, "orders", "id", size)
                    .await
                    .expect("request")
                    .segment();
                assert_eq!(
                    segment.len(),
                    size as u64,
                    "{segment:?} has the requested size"
                );
                got.push(segment);
            }
            got
        }));
    }
    let mut segments: Vec<Segment> = Vec::with_capacity(ALLOCATIONS);
    for caller in callers {
        segments.extend(caller.await.unwrap());
    }
    assert_eq!(segments.len(), ALLOCATIONS);
    assert_disjoint(&segments);
    // Disjoint, and together exactly 1..=total: no ID lost or repeated.
    let total: u64 = segments.iter().map(Segment::len).sum();
    assert_eq!(segments.iter().map(|s| s.start).min(), Some(1));
    assert_eq!(segments.iter().map(|s| s.end).max(), Some(total as i64));
}
