//! kxy-client against the real server: allocation, failover, the generator's
//! cache under threads, outages and recovery.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kxy_client::{
    BlockingSegmentClient, ClientConfig, ClientError, GeneratorConfig, IdGenerator,
    IdGeneratorFactory, SegmentClient, SegmentKey,
};
use kxy_core::Segment;
use kxy_e2e::api::assert_disjoint;
use kxy_e2e::redis_env::{KeyPrefix, free_port};
use kxy_e2e::require_redis;
use kxy_e2e::server::{ServerProcess, embedded_with_counters, register_counter};

fn key(table: &str) -> SegmentKey {
    SegmentKey::new("sys", "db", table, "id").unwrap()
}

fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

fn generator(urls: &[&str], table: &str, config: GeneratorConfig) -> IdGenerator {
    let client = SegmentClient::new(ClientConfig::new(urls).unwrap()).unwrap();
    IdGenerator::new(client, key(table), config)
}

#[test]
fn segment_client_allocates_and_reports_refusals() {
    let (_dir, server) = embedded_with_counters(&["orders", "users"]);
    let client =
        BlockingSegmentClient::new(ClientConfig::new([server.base_url()]).unwrap()).unwrap();
    let segment = client
        .allocate_segment("sys", "db", "orders", "id", 100)
        .unwrap();
    assert_eq!(segment, Segment { start: 1, end: 100 });

    match client.allocate_segment("sys", "db", "nobody", "id", 10) {
        Err(ClientError::Api {
            status,
            code,
            msg,
            trace_id,
        }) => {
            assert_eq!((status, code), (404, 40401));
            assert!(msg.contains("not registered"), "{msg}");
            assert_eq!(trace_id.unwrap().len(), 32);
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    let invalid = client.allocate_segment("sys", "d:b", "orders", "id", 10);
    assert!(matches!(invalid, Err(ClientError::InvalidArgument(m)) if m.contains("db_name")));
    let invalid = client.allocate_segment("sys", "db", "orders", "id", 0);
    assert!(matches!(invalid, Err(ClientError::InvalidArgument(_))));

    let dead = BlockingSegmentClient::new(ClientConfig::new([dead_url()]).unwrap()).unwrap();
    let err = dead
        .allocate_segment("sys", "db", "orders", "id", 10)
        .unwrap_err();
    assert!(matches!(err, ClientError::Connection { .. }), "{err:?}");
    assert!(err.to_string().contains("Connection refused"), "{err}");
    // None of the refused calls took IDs.
    assert_eq!(
        client
            .allocate_segment("sys", "db", "orders", "id", 1)
            .unwrap()
            .start,
        101
    );
}

#[test]
fn calls_fail_over_to_the_next_base_url() {
    let (_dir, server) = embedded_with_counters(&["orders", "users"]);
    let dead = dead_url();
    let config = ClientConfig::new([dead.as_str(), server.base_url()]).unwrap();
    let client = BlockingSegmentClient::new(config).unwrap();
    for expected in [1, 11, 21] {
        assert_eq!(
            client
                .allocate_segment("sys", "db", "orders", "id", 10)
                .unwrap()
                .start,
            expected
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_client_and_generator() {
    let (_dir, server) = embedded_with_counters(&["orders", "users"]);
    let client = SegmentClient::new(ClientConfig::new([server.base_url()]).unwrap()).unwrap();
    let segment = client
        .allocate_segment("sys", "db", "users", "id", 5)
        .await
        .unwrap();
    assert_eq!(segment, Segment { start: 1, end: 5 });
    let ids = IdGenerator::new(client, key("users"), GeneratorConfig::new(100).unwrap());
    let mut got = Vec::new();
    for _ in 0..1000 {
        got.push(ids.next_id_async().await.unwrap());
    }
    assert_eq!(got, (6..1006).collect::<Vec<i64>>());
}

#[test]
fn eight_threads_of_100_000_ids_never_repeat() {
    let (_dir, server) = embedded_with_counters(&["orders", "users"]);
    let ids = generator(
        &[server.base_url()],
        "orders",
        GeneratorConfig::new(1000).unwrap(),
    );
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let ids = ids.clone();
            std::thread::spawn(move || {
                (0..100_000)
                    .map(|_| ids.next_id().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = HashSet::with_capacity(800_000);
    for thread in threads {
        for id in thread.join().unwrap() {
            assert!(id >= 1);
            assert!(seen.insert(id), "{id} handed out twice");
        }
    }
    assert_eq!(seen.len(), 800_000);
}

#[test]
fn runs_are_contiguous_and_sizes_adapt_to_use() {
    let (_dir, server) = embedded_with_counters(&["orders", "users"]);
    let config = GeneratorConfig::new(1000).unwrap();
    let ids = generator(&[server.base_url()], "orders", config);
    let mut segments = Vec::new();
    for n in [1, 7, 500, 1000, 3, 70_000] {
        let run = ids.next_ids(n).unwrap();
        assert_eq!(run.len(), n as u64, "{run:?}");
        segments.push(run);
    }
    for _ in 0..5000 {
        let id = ids.next_id().unwrap();
        segments.push(Segment { start: id, end: id });
    }
    assert_disjoint(&segments);
    assert!(matches!(
        ids.next_ids(0),
        Err(ClientError::InvalidArgument(_))
    ));

    // Used up far faster than the 10 s target, so sizes grow.
    for _ in 0..200_000 {
        ids.next_id().unwrap();
    }
    assert!(
        ids.next_request_size() > 1000,
        "size {}",
        ids.next_request_size()
    );
}

#[test]
fn buffered_ids_outlive_the_server_and_the_generator_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    register_counter(&["--data-dir", &data_dir], "orders", 0);
    let address = format!("127.0.0.1:{}", free_port());
    let server = ServerProcess::start_on(&address, &["--data-dir", &data_dir], &[]);
    let config = GeneratorConfig::new(1000)
        .unwrap()
        .with_max_wait(Duration::from_millis(800))
        .unwrap();
    let ids = generator(&[server.base_url()], "orders", config);

    // Past the prefetch mark, and wait until the next segment has arrived.
    let mut before: Vec<i64> = (0..300).map(|_| ids.next_id().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ids.buffered() < 1700 {
        assert!(Instant::now() < deadline, "prefetch did not arrive");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();

    // Every buffered ID is still handed out with the server gone.
    let buffered = ids.buffered();
    for _ in 0..buffered {
        before.push(
            ids.next_id()
                .expect("buffered IDs flow while the server is down"),
        );
    }
    let started = Instant::now();
    let err = ids.next_id().unwrap_err();
    assert!(matches!(&err, ClientError::Unavailable { .. }), "{err:?}");
    assert!(
        matches!(err.root(), ClientError::Connection { .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the wait is bounded"
    );

    // The server comes back on the same address and data: IDs flow again.
    let _server = ServerProcess::start_on(&address, &["--data-dir", &data_dir], &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let first_after = loop {
        match ids.next_id() {
            Ok(id) => break id,
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
        }
    };
    let highest_before = *before.iter().max().unwrap();
    assert!(first_after > highest_before);
    let unique: HashSet<i64> = before.iter().copied().collect();
    assert_eq!(unique.len(), before.len());
}

#[test]
fn with_every_server_down_the_wait_is_bounded() {
    let (a, b) = (dead_url(), dead_url());
    let config = GeneratorConfig::new(10)
        .unwrap()
        .with_max_wait(Duration::from_millis(300))
        .unwrap();
    let ids = generator(&[a.as_str(), b.as_str()], "orders", config);
    let started = Instant::now();
    let err = ids.next_id().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string()
            .starts_with("no IDs available after waiting 300ms"),
        "{err}"
    );
    assert!(matches!(err.root(), ClientError::Connection { .. }));
}

/// One round (what the Python client asks for): every call that waits for
/// a round gets its error, each base URL was asked once, and the next call
/// starts a new round, which finds a server that came up meanwhile.
#[test]
fn in_one_round_waiting_calls_share_its_error_and_the_next_call_asks_again() {
    let (dir, server) = embedded_with_counters(&["orders"]);
    let bind = server.address().to_owned();
    let url = server.base_url().to_owned();
    server.kill();
    let config = GeneratorConfig::with_bounds(10, 10, 10)
        .unwrap()
        .one_round();
    let ids = generator(&[dead_url().as_str(), url.as_str()], "orders", config);
    let started = Instant::now();
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let ids = ids.clone();
            std::thread::spawn(move || ids.next_id())
        })
        .collect();
    for waiter in waiters {
        let err = waiter.join().unwrap().unwrap_err();
        assert!(matches!(err, ClientError::Connection { .. }), "{err:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "two dead URLs, each asked once: {:?}",
        started.elapsed()
    );
    let data_dir = dir.path().to_str().unwrap();
    let _server = ServerProcess::start_on(&bind, &["--data-dir", data_dir], &[]);
    assert_eq!(
        ids.next_id().unwrap(),
        1,
        "a new round, on the server that came up"
    );
    assert_eq!(ids.config().max_size(), 10, "fixed size");
}

#[test]
fn unregistered_counters_fail_fast_and_later_calls_ask_again() {
    let (_dir, server) = embedded_with_counters(&["orders", "users"]);
    let config = GeneratorConfig::new(10)
        .unwrap()
        .with_max_wait(Duration::from_secs(30))
        .unwrap();
    let ids = generator(&[server.base_url()], "invoices", config);
    let started = Instant::now();
    let err = ids.next_id().unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 404, .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no waiting on a 404"
    );
    let err = ids.next_id().unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 404, .. }),
        "asked again: {err:?}"
    );
}

#[test]
fn the_factory_keeps_one_generator_per_table() {
    let (_dir, server) = embedded_with_counters(&["orders", "users"]);
    let client = SegmentClient::new(ClientConfig::new([server.base_url()]).unwrap()).unwrap();
    let factory = IdGeneratorFactory::new(client, "sys", "db", GeneratorConfig::new(10).unwrap());
    let orders = factory.generator("orders", "id").unwrap();
    assert_eq!(orders.next_id().unwrap(), 1);
    assert_eq!(
        factory
            .generator("orders", "id")
            .unwrap()
            .next_id()
            .unwrap(),
        2
    );
    assert_eq!(
        factory.generator("users", "id").unwrap().next_id().unwrap(),
        1
    );
    assert!(factory.generator("bad:name", "id").is_err());
}

#[test]
fn a_generator_moves_to_the_second_instance_when_the_first_dies() {
    let url = require_redis!();
    let prefix = KeyPrefix::new(&url, "client_failover");
    let store = prefix.store_args();
    register_counter(&store, "orders", 0);
    let first = ServerProcess::start(&store, &[]);
    let second = ServerProcess::start(&store, &[]);
    let config = GeneratorConfig::new(50).unwrap();
    let ids = Arc::new(generator(
        &[first.base_url(), second.base_url()],
        "orders",
        config,
    ));
    let mut got: Vec<i64> = (0..5_000).map(|_| ids.next_id().unwrap()).collect();
    first.kill();
    got.extend((0..5_000).map(|_| ids.next_id().unwrap()));
    let unique: HashSet<i64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len());
    drop(second);
}
