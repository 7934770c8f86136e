//! API key verification on a warm cache, in-process: the latency of each of
//! 200,000 `KeyService::verify` calls (format and checksum, SHA-256, cache
//! lookup, constant-time compare, last-use note), beside the same loop
//! around the bare SHA-256 of the key, the least any hash-based check does.
//!
//! Run with `scripts/bench-access`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use kxy_core::AllocationLimits;
use kxy_core::apikey::ApiKeySecret;
use kxy_server::identity::{AuthSettings, LockoutPolicy};
use kxy_server::keys::{KeyOwner, KeyType};
use kxy_server::state::{AppState, Settings};
use kxy_server::store::{self, MissingCounter, StoreConfig};

const CALLS: usize = 200_000;

struct Latency {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
}

fn measure(mut samples: Vec<Duration>) -> Latency {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Latency {
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: *samples.last().unwrap(),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (state, secret) = runtime.block_on(async {
        let store = store::open(&StoreConfig::Embedded {
            data_dir: dir.path().to_owned(),
        })
        .await
        .unwrap();
        let lockout = LockoutPolicy {
            threshold: 5,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(60),
        };
        let settings = Settings {
            limits: AllocationLimits::default(),
            missing: MissingCounter::Refuse,
            auth: AuthSettings {
                access_ttl: Duration::from_secs(60),
                refresh_ttl: Duration::from_secs(60),
                lockout,
            },
            jwt_secret: None,
            max_api_keys: 5,
            allocation_requires_key: true,
            vault: Default::default(),
            scan_interval: None,
            databases: Default::default(),
        };
        let state = AppState::new(store, settings).await.unwrap();
        let owner = state
            .auth
            .init_user("root", "root password 1", None, None)
            .await
            .unwrap();
        let permissions = state.auth.roles.permissions_of(&owner.roles).await.unwrap();
        let (_, secret) = state
            .keys
            .create(
                KeyOwner {
                    user: &owner,
                    key_generation: 0,
                    permissions: &permissions,
                },
                "bench",
                KeyType::Local,
                None,
                None,
            )
            .await
            .unwrap();
        // Warm the cache.
        state.keys.verify(secret.expose(), None).await.unwrap();
        (state, secret)
    });

    let kxy = runtime.block_on(async {
        let mut samples = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let started = Instant::now();
            black_box(state.keys.verify(secret.expose(), None).await.unwrap());
            samples.push(started.elapsed());
        }
        measure(samples)
    });
    let mut samples = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        black_box(
            ApiKeySecret::parse(black_box(secret.expose()))
                .unwrap()
                .hash(),
        );
        samples.push(started.elapsed());
    }
    let baseline = measure(samples);

    println!("API key verification, warm cache, {CALLS} calls each:");
    for (name, l) in [
        ("parse + sha256 (baseline)", &baseline),
        ("kxy KeyService::verify", &kxy),
    ] {
        println!(
            "  {name:<26} p50 {:>8.2?}  p99 {:>8.2?}  p99.9 {:>8.2?}  max {:>9.2?}",
            l.p50, l.p99, l.p999, l.max
        );
    }
    println!(
        "  ratio of p99 kxy / baseline: {:.1}",
        kxy.p99.as_secs_f64() / baseline.p99.as_secs_f64().max(1e-12)
    );
}
