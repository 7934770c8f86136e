//! `IdGenerator::next_id` on a warm generator, beside the baselines the
//! field measures against: a bare `AtomicU64::fetch_add` (the floor for any
//! shared counter), `uuid` v7 and `ulid`, on one thread and on two.
//!
//! Run with `scripts/bench-client` (it builds the release server first).

mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// One ID source under test.
type Op = Arc<dyn Fn() + Send + Sync>;

/// Runs `op` `iters` times in total, split over `threads` threads started
/// together; returns the wall time.
fn on_threads<F>(threads: u64, iters: u64, op: Arc<F>) -> Duration
where
    F: Fn() + Send + Sync + 'static,
{
    let start = Arc::new(Barrier::new(threads as usize + 1));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (op, start) = (Arc::clone(&op), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..iters / threads {
                    op();
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for worker in workers {
        worker.join().unwrap();
    }
    began.elapsed()
}

fn bench(c: &mut Criterion) {
    let (_dir, _server, ids) = support::warm_generator();
    let counter = Arc::new(AtomicU64::new(0));
    for threads in [1u64, 2] {
        let mut group = c.benchmark_group(format!("ids_{threads}_thread"));
        group.throughput(Throughput::Elements(1));
        let contenders: Vec<(&str, Op)> = vec![
            ("kxy_next_id", {
                let ids = ids.clone();
                Arc::new(move || {
                    black_box(ids.next_id().unwrap());
                })
            }),
            ("atomic_u64_fetch_add", {
                let counter = Arc::clone(&counter);
                Arc::new(move || {
                    black_box(counter.fetch_add(1, Ordering::Relaxed));
                })
            }),
            (
                "uuid_v7",
                Arc::new(|| {
                    black_box(uuid::Uuid::now_v7());
                }),
            ),
            (
                "ulid",
                Arc::new(|| {
                    black_box(ulid::Ulid::new());
                }),
            ),
        ];
        for (name, op) in contenders {
            if threads == 1 {
                group.bench_function(name, |b| b.iter(|| op()));
            } else {
                let op = Arc::new(move || op());
                group.bench_function(name, |b| {
                    b.iter_custom(|iters| on_threads(threads, iters, Arc::clone(&op)))
                });
            }
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
