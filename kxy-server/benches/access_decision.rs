//! One authorization decision with 100,000 grants in the store, in-process:
//! `GrantService` loads endpoints and grants from a real embedded store and
//! compiles them; a decision then runs on the compiled policy. Beside it, a
//! baseline: one `HashMap` lookup among 100,000 user ids, the least any
//! cached per-user answer costs.
//!
//! Run with `scripts/bench-access`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kxy_core::access::{Grant, Level, Subject};
use kxy_server::grants::GrantService;
use kxy_server::store::{self, StoreConfig};

const ENDPOINTS: usize = 500;
const USERS: usize = 9_000;
const ROLES: usize = 100;
const GRANTS: usize = 100_000;

fn id(kind: u8, n: usize) -> String {
    format!("{kind:02x}{n:030x}")
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (service, compile_time) = runtime.block_on(async {
        let store = store::open(&StoreConfig::Embedded {
            data_dir: dir.path().to_owned(),
        })
        .await
        .unwrap();
        let service = GrantService::new(Arc::clone(&store)).await.unwrap();
        let mut endpoints = Vec::new();
        for n in 0..ENDPOINTS {
            let path = match n % 3 {
                0 => format!("/svc{}/orders/{{id}}", n / 3),
                1 => format!("/svc{}/orders/{{id}}/items/{{item}}", n / 3),
                _ => format!("/svc{}/reports/*", n / 3),
            };
            endpoints.push(service.create_endpoint("*", &path, true).await.unwrap().id);
        }
        // 90,000 user grants (10 per user) and 10,000 role grants.
        let grants: Vec<Grant> = (0..GRANTS)
            .map(|n| Grant {
                id: id(3, n),
                subject: if n < USERS * 10 {
                    Subject::User(id(1, n % USERS))
                } else {
                    Subject::Role(format!("role{}", n % ROLES))
                },
                endpoint_id: endpoints[(n * 7919) % ENDPOINTS].clone(),
                level: [Level::Read, Level::Write, Level::Admin][n % 3],
                expires_at: if n % 5 == 0 {
                    Some(4_000_000_000)
                } else {
                    None
                },
                granted_by: id(1, 0),
            })
            .collect();
        service.import_grants(grants).await.unwrap();
        // Time a cold rebuild from the store, as another instance would do.
        let started = Instant::now();
        let fresh = GrantService::new(store).await.unwrap();
        (fresh, started.elapsed())
    });
    println!(
        "loaded and compiled {GRANTS} grants on {ENDPOINTS} endpoints from the store in {compile_time:?}"
    );

    let now = 1_800_000_000;
    let roles: Vec<String> = (0..3).map(|r| format!("role{r}")).collect();
    // A concrete path for endpoint number `e` (see the patterns above).
    let path_of = |e: usize, n: usize| match e % 3 {
        0 => format!("/svc{}/orders/{n}", e / 3),
        1 => format!("/svc{}/orders/{n}/items/7", e / 3),
        _ => format!("/svc{}/reports/2026/q{}", e / 3, n % 4),
    };
    // Half the requests hit an endpoint the user holds a grant on, half
    // one they (most likely) do not.
    let requests: Vec<(String, &str, String)> = (0..64)
        .map(|n| {
            let grant = n * 1409 % (USERS * 10);
            let method = if n % 2 == 0 { "GET" } else { "DELETE" };
            if n % 4 < 2 {
                (
                    id(1, grant % USERS),
                    method,
                    path_of((grant * 7919) % ENDPOINTS, n),
                )
            } else {
                (
                    id(1, (n * 131) % USERS),
                    method,
                    path_of(n * 37 % ENDPOINTS, n),
                )
            }
        })
        .collect();
    let allowed = requests
        .iter()
        .filter(|(u, m, p)| service.allowed(u, &roles, m, p, Level::required_for(m), now))
        .count();
    println!("{allowed} of {} sample requests allowed", requests.len());

    let mut group = c.benchmark_group("access_decision_100k_grants");
    let mut i = 0;
    group.bench_function("kxy_decide", |b| {
        b.iter(|| {
            let (user, method, path) = &requests[i % requests.len()];
            i += 1;
            black_box(service.allowed(user, &roles, method, path, Level::required_for(method), now))
        })
    });
    let baseline: HashMap<String, bool> = (0..GRANTS).map(|n| (id(1, n), n % 2 == 0)).collect();
    let mut j = 0;
    group.bench_function("baseline_hashmap_get_100k", |b| {
        b.iter(|| {
            let (user, _, _) = &requests[j % requests.len()];
            j += 1;
            black_box(baseline.get(user.as_str()).copied())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
