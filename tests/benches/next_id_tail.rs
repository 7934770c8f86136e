//! The slowest single `next_id()` over 10 M calls at steady load, beside the
//! same loop around a bare `AtomicU64::fetch_add` (its tail is the timer and
//! the OS: preemption, interrupts). If prefetching hides every fetch, kxy's
//! tail matches the baseline's; a call that waited on the network would show
//! as a worst case of hundreds of microseconds or more.
//!
//! Run with `scripts/bench-client`.

mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const CALLS: usize = 10_000_000;

struct Tail {
    worst_ns: u64,
    over_10us: usize,
    over_100us: usize,
    p9999_ns: u64,
    fetches: i64,
}

fn measure(mut op: impl FnMut()) -> Tail {
    let mut samples = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let began = Instant::now();
        op();
        samples.push(began.elapsed().as_nanos() as u64);
    }
    let over = |limit: u64| samples.iter().filter(|&&ns| ns > limit).count();
    let (over_10us, over_100us) = (over(10_000), over(100_000));
    samples.sort_unstable();
    Tail {
        worst_ns: *samples.last().unwrap(),
        over_10us,
        over_100us,
        p9999_ns: samples[CALLS * 9999 / 10000],
        fetches: 0,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let (_dir, _server, ids) = support::warm_generator();
    let counter = AtomicU64::new(0);
    let baseline = measure(|| {
        black_box(counter.fetch_add(1, Ordering::Relaxed));
    });
    let size_before = ids.next_request_size();
    let waits_before = ids.waits();
    let first = ids.next_id().unwrap();
    let mut kxy = measure(|| {
        black_box(ids.next_id().unwrap());
    });
    let last = ids.next_id().unwrap();
    // Segments fetched during the run: IDs used over the segment size.
    kxy.fetches = (last - first) / size_before.max(1);
    println!("next_id tail over {CALLS} calls (timer overhead included in both):");
    for (name, t) in [("atomic_u64_fetch_add", &baseline), ("kxy_next_id", &kxy)] {
        println!(
            "  {name:<22} worst {:>9} ns  p99.99 {:>6} ns  >10us {:>5}  >100us {:>3}",
            t.worst_ns, t.p9999_ns, t.over_10us, t.over_100us
        );
    }
    println!(
        "  segments fetched during the kxy run: about {} (size {}); calls that waited for one: {}",
        kxy.fetches,
        ids.next_request_size(),
        ids.waits() - waits_before
    );
    println!(
        "  ratio of worst cases kxy / baseline: {:.2}",
        kxy.worst_ns as f64 / baseline.worst_ns.max(1) as f64
    );
}
