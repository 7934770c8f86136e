//! A server killed with SIGKILL mid-load and restarted on the same data
//! directory never hands out an ID twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kxy_core::Segment;
use kxy_e2e::api::{allocate, assert_disjoint};
use kxy_e2e::server::{ServerProcess, register_counter};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_load_then_restart_never_reissues_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    register_counter(&["--data-dir", data_dir], "orders", 1000);
    let http = reqwest::Client::new();

    let server = ServerProcess::start(&["--data-dir", data_dir], &[]);
    let first = allocate(&http, server.base_url(), "orders", "id", 100)
        .await
        .unwrap()
        .segment();
    assert_eq!(
        first,
        Segment {
            start: 1001,
            end: 1100
        },
        "first ID is start + 1"
    );

    // 16 callers allocate as fast as they can while the server is killed.
    let acknowledged = Arc::new(Mutex::new(vec![first]));
    let mut callers = Vec::new();
    for _ in 0..16 {
        let (http, url, acknowledged) = (
            http.clone(),
            server.base_url().to_owned(),
            Arc::clone(&acknowledged),
        );
        callers.push(tokio::spawn(async move {
            while let Ok(answer) = allocate(&http, &url, "orders", "id", 7).await {
                acknowledged.lock().unwrap().push(answer.segment());
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill();
    for caller in callers {
        caller.await.unwrap();
    }
    let before: Vec<Segment> = acknowledged.lock().unwrap().clone();
    assert!(
        before.len() > 20,
        "load ran before the kill ({} segments)",
        before.len()
    );
    let highest_before = before.iter().map(|s| s.end).max().unwrap();

    let server = ServerProcess::start(&["--data-dir", data_dir], &[]);
    let mut after = Vec::new();
    for _ in 0..50 {
        after.push(
            allocate(&http, server.base_url(), "orders", "id", 7)
                .await
                .unwrap()
                .segment(),
        );
    }
    for segment in &after {
        assert!(
            segment.start > highest_before,
            "{segment:?} after restart reaches below {highest_before}, handed out before the kill"
        );
    }
    let mut all = before;
    all.extend(after);
    assert_disjoint(&all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_the_counter_continues() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    register_counter(&["--data-dir", data_dir], "users", 0);
    let http = reqwest::Client::new();

    let server = ServerProcess::start(&["--data-dir", data_dir], &[]);
    let first = allocate(&http, server.base_url(), "users", "id", 10)
        .await
        .unwrap()
        .segment();
    assert_eq!(first, Segment { start: 1, end: 10 });
    assert!(server.terminate(), "kxy-server exits 0 on SIGTERM");

    let server = ServerProcess::start(&["--data-dir", data_dir], &[]);
    let next = allocate(&http, server.base_url(), "users", "id", 10)
        .await
        .unwrap()
        .segment();
    assert_eq!(next, Segment { start: 11, end: 20 });
}
