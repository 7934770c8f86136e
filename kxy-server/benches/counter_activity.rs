//! The cost the counters screen's activity adds to each allocation:
//! `CounterActivity::record` (a mutex, a map lookup, a bucket add), beside
//! baselines run in the same process: a plain `AtomicU64::fetch_add` (the
//! least any per-allocation count costs) and a `Mutex<u64>` increment.
//!
//! Run with `cargo bench -p kxy-server --bench counter_activity`.

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use kxy_core::SegmentKey;
use kxy_server::counter_activity::CounterActivity;

fn bench(c: &mut Criterion) {
    let keys: Vec<SegmentKey> = (0..100)
        .map(|n| SegmentKey::new("shop", "main", &format!("table_{n}"), "id").unwrap())
        .collect();
    let activity = CounterActivity::default();
    for key in &keys {
        activity.record(key, 1);
    }
    let mut group = c.benchmark_group("per allocation");
    group.bench_function("baseline: AtomicU64 fetch_add", |b| {
        let counter = AtomicU64::new(0);
        b.iter(|| counter.fetch_add(black_box(1000), Ordering::Relaxed))
    });
    group.bench_function("baseline: Mutex<u64> add", |b| {
        let counter = Mutex::new(0u64);
        b.iter(|| *counter.lock().unwrap() += black_box(1000))
    });
    group.bench_function("CounterActivity::record, 100 counters", |b| {
        let mut n = 0;
        b.iter(|| {
            n = (n + 1) % keys.len();
            activity.record(black_box(&keys[n]), 1000)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
