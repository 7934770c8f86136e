//! What callers see when Redis goes away and comes back empty.

use std::time::{Duration, Instant};

use kxy_e2e::api::{Answer, allocate, get};
use kxy_e2e::redis_env::PrivateRedis;
use kxy_e2e::server::{ServerProcess, register_counter};

/// Polls until the allocation answers something other than "unreachable"
/// (50301) or "settling a new epoch" (50310).
async fn allocate_until_reachable(http: &reqwest::Client, base: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = allocate(http, base, "orders", "id", 10).await.unwrap();
        let waiting = answer.status == 503 && [50301, 50310].contains(&answer.code());
        if !waiting || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_gives_503_and_a_redis_that_lost_its_data_refuses() {
    let mut redis = PrivateRedis::start();
    let dir = tempfile::tempdir().unwrap();
    // This Redis keeps nothing on disk, which is what the test is about:
    // it comes back empty. So the server must accept a non-durable Redis.
    let owned = redis.store_args(dir.path());
    let store: Vec<&str> = owned.iter().map(String::as_str).collect();
    register_counter(&store, "orders", 500);
    let server = ServerProcess::start(&store, &[]);
    let http = reqwest::Client::new();
    let base = server.base_url();

    let segment = allocate(&http, base, "orders", "id", 10)
        .await
        .unwrap()
        .segment();
    assert_eq!((segment.start, segment.end), (501, 510));

    redis.stop();
    let answer = allocate(&http, base, "orders", "id", 10).await.unwrap();
    assert_eq!(
        (answer.status, answer.code()),
        (503, 50301),
        "{:?}",
        answer.body
    );
    assert!(
        answer.msg().contains("redis store is unavailable"),
        "{}",
        answer.msg()
    );
    let health = get(&http, base, "/health").await.unwrap();
    assert_eq!(health.status, 503);
    assert_eq!(health.body["data"]["store"]["reachable"], false);

    // Redis comes back without its data (no persistence): the counter is
    // gone, and kxy refuses instead of restarting it at 1. The instance
    // handed out IDs of it, so it fences the counter at its mark: nobody
    // can register it again below 510.
    redis.restart();
    let answer = allocate_until_reachable(&http, base).await;
    assert_eq!(
        (answer.status, answer.code()),
        (503, 50303),
        "{:?}",
        answer.body
    );
    assert!(answer.msg().contains("IDs up to 510"), "{}", answer.msg());
    assert_eq!(get(&http, base, "/health").await.unwrap().status, 200);
    let below = kxy_e2e::server::run_cli(
        &[
            &store[..],
            &[
                "counters", "add", "--system", "sys", "--db", "db", "--table", "orders", "--field",
                "id", "--start", "0",
            ],
        ]
        .concat(),
        &[],
    );
    assert!(!below.status.success(), "re-registered below the fence");

    // The operator re-registers above the last ID handed out; allocation goes on.
    register_counter(&store, "orders", 510);
    let segment = allocate(&http, base, "orders", "id", 10)
        .await
        .unwrap()
        .segment();
    assert_eq!((segment.start, segment.end), (511, 520));
    assert!(!server.logs().contains("panicked"), "{}", server.logs());
}
