//! The server's durability guard and fences, beside the fault suite
//! (tests/tests/faults.rs, which crashes things under load): a Redis that
//! hides its configuration, the replicas policy, the proactive fencing that
//! follows a Redis restart, the HTTP recovery step and a client's mark.

use std::path::Path;
use std::time::{Duration, Instant};

use kxy_core::Segment;
use kxy_e2e::api::{Answer, allocate, get, post_json};
use kxy_e2e::faults::{Persistence, RedisProcess};
use kxy_e2e::require_redis_server;
use kxy_e2e::server::{ServerProcess, register_counter, run_cli, start_refused};
use serde_json::json;

/// `kxy-server` flags for `redis` under `policy`, checking it every second,
/// with `data_dir` for the witness files.
fn store_args(redis: &RedisProcess, policy: &str, data_dir: &Path) -> Vec<String> {
    let mut args = redis.store_args_with(data_dir);
    args.extend(["--redis-durability", policy, "--redis-check-interval", "1"].map(str::to_owned));
    args
}

fn str_args(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Polls `allocate` until `done` accepts its answer, for at most 15 s.
async fn allocate_until(
    http: &reqwest::Client,
    base: &str,
    table: &str,
    done: impl Fn(&Answer) -> bool,
) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = allocate(http, base, table, "id", 10).await.unwrap();
        if done(&answer) || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where `CONFIG` is renamed away (as hardened setups do), kxy cannot read
/// `appendfsync`: strict says so and refuses; `unsafe` is the explicit choice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_hides_its_config_needs_an_explicit_choice() {
    require_redis_server!();
    let dir = tempfile::tempdir().unwrap();
    let redis =
        RedisProcess::start_with(Persistence::AofAlways, &["--rename-command", "CONFIG", ""]);
    let strict = store_args(&redis, "strict", dir.path());
    let stderr = start_refused(&str_args(&strict));
    assert!(
        stderr
            .contains("appendfsync, no-appendfsync-on-rewrite and maxmemory-policy cannot be read"),
        "{stderr}"
    );
    assert!(stderr.contains("CONFIG GET"), "{stderr}");
    assert!(stderr.contains("--redis-durability unsafe"), "{stderr}");

    let trusting = store_args(&redis, "unsafe", dir.path());
    let server = ServerProcess::start(&str_args(&trusting), &[]);
    assert!(
        server
            .logs()
            .contains("appendfsync, no-appendfsync-on-rewrite"),
        "{}",
        server.logs()
    );
    let health = get(&reqwest::Client::new(), server.base_url(), "/health")
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(health.body["data"]["store"]["durability"]["mode"], "unsafe");
    assert_eq!(health.body["data"]["store"]["durability"]["durable"], false);
    let warnings = health.body["data"]["warnings"].to_string();
    assert!(warnings.contains("cannot be read"), "{warnings}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_policy_waits_for_its_replica_and_refuses_without_it() {
    require_redis_server!();
    let dir = tempfile::tempdir().unwrap();
    let primary = RedisProcess::start(Persistence::None);
    // A generous WAIT: on a busy machine a replica may take a while to ack.
    let mut owned = store_args(&primary, "replicas:1", dir.path());
    owned.extend(["--redis-wait-timeout-ms", "2000"].map(str::to_owned));
    let store = str_args(&owned);

    // No replica yet: replicas:1 cannot be satisfied.
    let stderr = start_refused(&store);
    assert!(stderr.contains("needs 1 connected replicas"), "{stderr}");

    // Started once the primary lists it online.
    let mut replica = RedisProcess::start_replica(Persistence::None, primary.port());
    register_counter(&store, "orders", 0);
    let server = ServerProcess::start(&store, &[]);
    let http = reqwest::Client::new();
    let base = server.base_url();
    let first = allocate(&http, base, "orders", "id", 10).await.unwrap();
    assert_eq!(first.segment(), Segment { start: 1, end: 10 });
    // Acknowledged by the replica: it holds the counter too.
    assert_eq!(
        replica.get("kxy:id:segment:sys:db:orders:id").as_deref(),
        Some("10")
    );
    assert_eq!(
        get(&http, base, "/health").await.unwrap().body["data"]["store"]["durability"]["mode"],
        "replicas:1"
    );

    // The replica dies: allocations are refused (the WAIT times out, or the
    // next check sees no replica), never answered unreplicated.
    replica.kill9();
    let refused = allocate_until(&http, base, "orders", |a| a.status == 503).await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert!(
        [50304, 50305].contains(&refused.code()),
        "{:?}",
        refused.body
    );
}

/// A Redis restarted from an older snapshot is noticed by its run_id: the
/// instance fences every counter it served that now stands lower, so even a
/// fresh instance with no memory of them refuses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_an_old_snapshot_fences_what_the_instance_served() {
    require_redis_server!();
    let mut redis = RedisProcess::start(Persistence::RdbOnly);
    let dir = tempfile::tempdir().unwrap();
    let owned = store_args(&redis, "unsafe", dir.path());
    let store = str_args(&owned);
    register_counter(&store, "orders", 0);
    register_counter(&store, "users", 0);
    let first = ServerProcess::start(&store, &[]);
    let http = reqwest::Client::new();
    allocate(&http, first.base_url(), "orders", "id", 10)
        .await
        .unwrap()
        .segment();
    allocate(&http, first.base_url(), "users", "id", 10)
        .await
        .unwrap()
        .segment();
    assert_eq!(redis.command(&["SAVE"]), "OK");
    let lost = allocate(&http, first.base_url(), "orders", "id", 10)
        .await
        .unwrap()
        .segment();
    assert_eq!(lost, Segment { start: 11, end: 20 });

    // Redis crashes and comes back from the snapshot: orders stands at 10
    // again, users (unchanged since the snapshot) at 10 as before.
    redis.kill9();
    redis.restart();
    let orders = "kxy:id:segment:sys:db:orders:id";
    assert_eq!(redis.get(orders).as_deref(), Some("10"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !redis.get(orders).unwrap_or_default().starts_with("fenced:") {
        assert!(
            Instant::now() < deadline,
            "the instance did not fence orders after the restart; its log:\n{}",
            first.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(redis.get(orders).as_deref(), Some("fenced:20"));
    assert!(first.logs().contains("Redis restarted"), "{}", first.logs());

    // A fresh instance with a data directory of its own (no witness) has no
    // memory of orders, and refuses it all the same; users goes on.
    let other_dir = tempfile::tempdir().unwrap();
    let fresh_args = store_args(&redis, "unsafe", other_dir.path());
    let fresh = ServerProcess::start(&str_args(&fresh_args), &[]);
    let refused = allocate(&http, fresh.base_url(), "orders", "id", 10)
        .await
        .unwrap();
    refused.assert_refused(503, 50303);
    assert!(refused.msg().contains("fenced"), "{}", refused.msg());
    let users = allocate(&http, fresh.base_url(), "users", "id", 10)
        .await
        .unwrap();
    assert_eq!(users.segment(), Segment { start: 11, end: 20 });

    // The operator raises orders (CLI); both instances serve above it.
    let raise = |to: &str| {
        run_cli(
            &[
                store.as_slice(),
                &[
                    "counters", "raise", "--system", "sys", "--db", "db", "--table", "orders",
                    "--field", "id", "--to", to,
                ],
            ]
            .concat(),
            &[],
        )
    };
    let below = raise("19");
    assert!(!below.status.success());
    assert!(
        String::from_utf8_lossy(&below.stderr).contains("fenced at 20"),
        "{}",
        String::from_utf8_lossy(&below.stderr)
    );
    let raised = raise("1000");
    assert!(
        raised.status.success(),
        "{}",
        String::from_utf8_lossy(&raised.stderr)
    );
    assert!(String::from_utf8_lossy(&raised.stdout).contains("lifted its fence"));
    for base in [first.base_url(), fresh.base_url()] {
        let segment = allocate(&http, base, "orders", "id", 10)
            .await
            .unwrap()
            .segment();
        assert!(segment.start > 1000, "{segment:?}");
    }
}

/// The recovery step over HTTP, and a client's own mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_over_http_and_client_marks() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    register_counter(&["--data-dir", data_dir], "orders", 100);
    let server = ServerProcess::start(&["--data-dir", data_dir], &[]);
    let http = reqwest::Client::new();
    let base = server.base_url();
    let first = allocate(&http, base, "orders", "id", 10).await.unwrap();
    let store_id = first.body["data"]["store_id"].as_str().unwrap().to_owned();
    assert_eq!(
        first.segment(),
        Segment {
            start: 101,
            end: 110
        }
    );

    let request = |store_id: &str, high_water: i64| {
        json!({"system_code": "sys", "db_name": "db", "table_name": "orders",
               "field_name": "id", "segment_count": 10,
               "store_id": store_id, "high_water": high_water})
    };
    // A client that already holds IDs up to 500 of this store: the store
    // stands lower, so it went backwards for that client; refused.
    let path = "/api/segment/allocate";
    let refused = post_json(&http, base, path, &request(&store_id, 500))
        .await
        .unwrap();
    refused.assert_refused(503, 50303);
    assert!(
        refused.msg().contains("expected > 500"),
        "{}",
        refused.msg()
    );
    // A mark of another store means nothing here; a mark below is fine.
    let other = "0123456789abcdef0123456789abcdef";
    assert_eq!(
        post_json(&http, base, path, &request(other, 500))
            .await
            .unwrap()
            .status,
        200
    );
    let fine = post_json(&http, base, path, &request(&store_id, 110))
        .await
        .unwrap();
    assert!(fine.segment().start > 110);
    // Half a mark is refused with the field named.
    let half = json!({"system_code": "sys", "db_name": "db", "table_name": "orders",
                      "field_name": "id", "segment_count": 10, "high_water": 5});
    let half = post_json(&http, base, path, &half).await.unwrap();
    assert_eq!((half.status, half.code()), (400, 40002), "{:?}", half.body);
    assert!(half.msg().contains("store_id"), "{}", half.msg());

    // Raising needs counters:write, never lowers, refuses unknown counters.
    let root = json!({"username": "root", "password": "root password 1"});
    assert_eq!(
        post_json(&http, base, "/api/auth/init-user", &root)
            .await
            .unwrap()
            .status,
        200
    );
    let login = post_json(&http, base, "/api/auth/login", &root)
        .await
        .unwrap();
    let token = login.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let raise = |table: &str, to: i64| {
        json!({"system_code": "sys", "db_name": "db", "table_name": table,
               "field_name": "id", "to": to})
    };
    let anonymous = post_json(&http, base, "/api/counters/raise", &raise("orders", 5000))
        .await
        .unwrap();
    assert_eq!(anonymous.status, 401);
    let send = |body: serde_json::Value| {
        let http = http.clone();
        let token = token.clone();
        async move {
            let response = http
                .post(format!("{base}/api/counters/raise"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            Answer {
                status: response.status().as_u16(),
                body: response.json().await.unwrap(),
            }
        }
    };
    let unknown = send(raise("invoices", 5000)).await;
    unknown.assert_refused(404, 40401);
    let lower = send(raise("orders", 5)).await;
    assert_eq!(
        lower.body["data"]["outcome"], "unchanged",
        "{:?}",
        lower.body
    );
    let raised = send(raise("orders", 5000)).await;
    assert_eq!(
        raised.body["data"]["outcome"], "raised",
        "{:?}",
        raised.body
    );
    assert_eq!(raised.body["data"]["next_id"], 5001);
    assert_eq!(
        allocate(&http, base, "orders", "id", 1)
            .await
            .unwrap()
            .segment(),
        Segment {
            start: 5001,
            end: 5001
        }
    );
}
