//! The server's durability guard and fences against real `redis-server`
//! processes of the test's own: what each `--redis-durability` policy
//! accepts, what changes at run time, how a restarted Redis and a witness are
//! checked, and the operator's recovery step. (The crash scenarios, with load
//! and `kill -9`, are in the fault suite.)

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kxy_core::Segment;
use kxy_e2e::api::{Answer, allocate, get, post_json};
use kxy_e2e::redis_env::free_port;
use kxy_e2e::server::{ServerProcess, register_counter, run_cli};
use serde_json::json;

/// A `redis-server` on a free port with its own directory and the given
/// persistence flags. Killed (SIGKILL) when dropped.
struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    flags: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    fn start(flags: &[&str]) -> Redis {
        let mut redis = Redis {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            child: None,
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and directory: it loads what it
    /// kept on disk there.
    fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One command through a plain client; the reply as text.
    fn cli(&self, args: &[&str]) -> String {
        let Ok(client) = redis::Client::open(self.url()) else {
            return String::new();
        };
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return String::new();
        };
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        match command.query::<redis::Value>(&mut connection) {
            Ok(redis::Value::SimpleString(s)) => s,
            Ok(redis::Value::Okay) => "OK".into(),
            Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    /// `kxy-server` store flags for this Redis, with `policy`.
    fn store_args(&self, policy: &str, data_dir: &Path) -> Args {
        Args(
            [
                "--store",
                "redis",
                "--redis-url",
                &self.url(),
                "--redis-durability",
                policy,
                "--redis-check-interval",
                "1",
                "--data-dir",
                data_dir.to_str().unwrap(),
            ]
            .map(str::to_owned)
            .to_vec(),
        )
    }
}

/// Owned command-line arguments, lent out as `&[&str]`.
struct Args(Vec<String>);

impl Args {
    fn with(mut self, more: &[&str]) -> Args {
        self.0.extend(more.iter().map(|s| s.to_string()));
        self
    }

    fn get(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn require_redis_server() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("these tests need redis-server on PATH, and CI=true");
        }
        eprintln!("SKIPPED: these tests need redis-server on PATH");
    }
    found
}

/// Starts `kxy-server` with `args` and expects it to exit non-zero by
/// itself within 20 s (killing it otherwise); returns its stderr.
fn serve_expecting_refusal(args: &[&str]) -> String {
    let mut child = Command::new(kxy_e2e::server::binary())
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kxy-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kxy-server started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "refused, so exits non-zero: {stderr}");
    stderr
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_everysec_at_start_and_closes_allocation_when_fsync_changes() {
    if !require_redis_server() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let store = redis.store_args("strict", dir.path());
    let store = store.get();

    // appendfsync everysec: a crash loses up to a second of acknowledged
    // writes. The server says so and exits non-zero.
    let stderr = serve_expecting_refusal(&store);
    for needle in [
        "appendfsync is everysec",
        "appendfsync always",
        "--redis-durability unsafe",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }

    // Fixed: it starts, and /health says how durable the store is.
    assert_eq!(redis.cli(&["CONFIG", "SET", "appendfsync", "always"]), "OK");
    register_counter(&store, "orders", 0);
    let server = ServerProcess::start(&store, &[]);
    let http = reqwest::Client::new();
    let base = server.base_url();
    assert_eq!(
        allocate(&http, base, "orders", "id", 10)
            .await
            .unwrap()
            .segment(),
        Segment { start: 1, end: 10 }
    );
    let health = get(&http, base, "/health").await.unwrap();
    assert_eq!(health.status, 200, "{:?}", health.body);
    let durability = &health.body["data"]["store"]["durability"];
    assert_eq!(durability["mode"], "strict");
    assert_eq!(durability["durable"], true);
    assert!(durability["checked_at_ms"].as_u64().is_some());

    // Someone relaxes fsync at run time: allocation closes with its own
    // code within the check interval, /health answers 503...
    assert_eq!(
        redis.cli(&["CONFIG", "SET", "appendfsync", "everysec"]),
        "OK"
    );
    let refused = allocate_until(&http, base, "orders", |a| a.status == 503).await;
    assert_eq!(
        (refused.status, refused.code()),
        (503, 50304),
        "{:?}",
        refused.body
    );
    assert!(
        refused.msg().contains("appendfsync is everysec"),
        "{}",
        refused.msg()
    );
    let health = get(&http, base, "/health").await.unwrap();
    assert_eq!((health.status, health.code()), (503, 50304));
    assert_eq!(
        health.body["data"]["store"]["durability"]["allocating"],
        false
    );

    // ...and opens again once it is restored, above every ID handed out.
    assert_eq!(redis.cli(&["CONFIG", "SET", "appendfsync", "always"]), "OK");
    let resumed = allocate_until(&http, base, "orders", |a| a.status == 200).await;
    assert!(resumed.segment().start > 10, "{:?}", resumed.body);
}

/// Where `CONFIG` is renamed away (as hardened setups do), kxy cannot read
/// `appendfsync`: strict says so and refuses; `unsafe` is the explicit choice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_hides_its_config_needs_an_explicit_choice() {
    if !require_redis_server() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--rename-command",
        "CONFIG",
        "",
    ]);
    let strict = redis.store_args("strict", dir.path());
    let stderr = serve_expecting_refusal(&strict.get());
    assert!(stderr.contains("appendfsync cannot be read"), "{stderr}");
    assert!(stderr.contains("CONFIG GET"), "{stderr}");
    assert!(stderr.contains("--redis-durability unsafe"), "{stderr}");

    let trusting = redis.store_args("unsafe", dir.path());
    let server = ServerProcess::start(&trusting.get(), &[]);
    assert!(
        server.logs().contains("appendfsync cannot be read"),
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
    assert!(
        warnings.contains("appendfsync cannot be read"),
        "{warnings}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_policy_waits_for_its_replica_and_refuses_without_it() {
    if !require_redis_server() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Replicas sync without waiting (Redis waits 5 s for more by default).
    let primary = Redis::start(&[
        "--appendonly",
        "no",
        "--save",
        "",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    let store = primary
        .store_args("replicas:1", dir.path())
        .with(&["--redis-wait-timeout-ms", "300"]);
    let store = store.get();

    // No replica yet: replicas:1 cannot be satisfied.
    let stderr = serve_expecting_refusal(&store);
    assert!(stderr.contains("needs 1 connected replicas"), "{stderr}");

    let port = primary.port.to_string();
    let mut replica = Redis::start(&["--save", "", "--replicaof", "127.0.0.1", &port]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !primary
        .cli(&["INFO", "replication"])
        .contains("state=online")
    {
        assert!(Instant::now() < deadline, "the replica did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    register_counter(&store, "orders", 0);
    let server = ServerProcess::start(&store, &[]);
    let http = reqwest::Client::new();
    let base = server.base_url();
    let first = allocate(&http, base, "orders", "id", 10).await.unwrap();
    assert_eq!(first.segment(), Segment { start: 1, end: 10 });
    // Acknowledged by the replica: it holds the counter too.
    assert_eq!(
        replica.cli(&["GET", "kxy:id:segment:sys:db:orders:id"]),
        "10"
    );
    assert_eq!(
        get(&http, base, "/health").await.unwrap().body["data"]["store"]["durability"]["mode"],
        "replicas:1"
    );

    // The replica dies: allocations are refused (the WAIT times out, or the
    // next check sees no replica), never answered unreplicated.
    replica.kill();
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
    if !require_redis_server() {
        return;
    }
    let mut redis = Redis::start(&["--appendonly", "no", "--save", ""]);
    let dir = tempfile::tempdir().unwrap();
    let store = redis.store_args("unsafe", dir.path());
    let store = store.get();
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
    assert_eq!(redis.cli(&["SAVE"]), "OK");
    let lost = allocate(&http, first.base_url(), "orders", "id", 10)
        .await
        .unwrap()
        .segment();
    assert_eq!(lost, Segment { start: 11, end: 20 });

    // Redis crashes and comes back from the snapshot: orders stands at 10
    // again, users (unchanged since the snapshot) at 10 as before.
    redis.restart();
    assert_eq!(redis.cli(&["GET", "kxy:id:segment:sys:db:orders:id"]), "10");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !redis
        .cli(&["GET", "kxy:id:segment:sys:db:orders:id"])
        .starts_with("fenced:")
    {
        assert!(
            Instant::now() < deadline,
            "the instance did not fence orders after the restart; its log:\n{}",
            first.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        redis.cli(&["GET", "kxy:id:segment:sys:db:orders:id"]),
        "fenced:20"
    );
    assert!(first.logs().contains("Redis restarted"), "{}", first.logs());

    // A fresh instance with a data directory of its own (no witness) has no
    // memory of orders, and refuses it all the same; users goes on.
    let other_dir = tempfile::tempdir().unwrap();
    let fresh_args = redis.store_args("unsafe", other_dir.path());
    let fresh = ServerProcess::start(&fresh_args.get(), &[]);
    let refused = allocate(&http, fresh.base_url(), "orders", "id", 10)
        .await
        .unwrap();
    assert_eq!(
        (refused.status, refused.code()),
        (503, 50303),
        "{:?}",
        refused.body
    );
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

/// A restarted instance reads its witness: the marks it journaled before a
/// `kill -9` let it refuse a store that went back meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witness_lets_a_restarted_instance_notice_a_rollback() {
    if !require_redis_server() {
        return;
    }
    let redis = Redis::start(&["--appendonly", "no", "--save", ""]);
    let dir = tempfile::tempdir().unwrap();
    let store = redis.store_args("unsafe", dir.path());
    let store = store.get();
    register_counter(&store, "orders", 0);
    let server = ServerProcess::start(&store, &[]);
    let http = reqwest::Client::new();
    let handed_out = allocate(&http, server.base_url(), "orders", "id", 3000)
        .await
        .unwrap()
        .segment();
    assert_eq!(handed_out.end, 3000);
    // The witness is written about once a second, off the request path.
    let deadline = Instant::now() + Duration::from_secs(10);
    let witness_has_it = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("witness-"))
            .any(|e| std::fs::read_to_string(e.path()).unwrap().contains("3000"))
    };
    while !witness_has_it() {
        assert!(Instant::now() < deadline, "no witness written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill();

    // The store is restored to an older state while the instance is down.
    assert_eq!(
        redis.cli(&["SET", "kxy:id:segment:sys:db:orders:id", "1000"]),
        "OK"
    );
    let server = ServerProcess::start(&store, &[]);
    let refused = allocate(&http, server.base_url(), "orders", "id", 10)
        .await
        .unwrap();
    assert_eq!(
        (refused.status, refused.code()),
        (503, 50303),
        "{:?}",
        refused.body
    );
    assert_eq!(
        redis.cli(&["GET", "kxy:id:segment:sys:db:orders:id"]),
        "fenced:3000"
    );
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
    assert_eq!(
        (refused.status, refused.code()),
        (503, 50303),
        "{:?}",
        refused.body
    );
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
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, 40401),
        "{:?}",
        unknown.body
    );
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
