//! The embedded store's witness: a restored older `kxy.redb` keeps its store
//! id, so clients pinned to it would accept its IDs again; the instance's
//! witness (its memory of what it handed out, kept in `--witness-dir`,
//! outside what backups restore) fences what the restored file forgot.
//!
//! Both tests failed on c5f4999 (before issue 20): the witness existed only
//! for Redis, so the restored store handed out 1..=300 a second time, and an
//! unreadable witness was logged and ignored.

use std::path::Path;
use std::time::{Duration, Instant};

use kxy_e2e::api::{Answer, allocate, get};
use kxy_e2e::faults::Ledger;
use kxy_e2e::server::{ServerProcess, register_counter, run_cli};

/// Copies every file of `from` into `to` (a backup, or its restore).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Waits until a witness journal under `dir` records `mark` (it is written
/// about once a second, off the request path).
fn wait_for_witness(dir: &Path, mark: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries = std::fs::read_dir(dir).into_iter().flatten();
        let recorded = entries.flatten().any(|entry| {
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("witness-")
                && name.ends_with(".json")
                && std::fs::read_to_string(&path).is_ok_and(|text| text.contains(&mark.to_string()))
        });
        if recorded {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the witness never recorded {mark}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_older_embedded_store_is_fenced_at_what_was_handed_out() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let witness = root.path().join("witness");
    let backup = root.path().join("backup");
    let data_dir = data.to_str().unwrap();
    let witness_dir = witness.to_str().unwrap();
    let store = ["--data-dir", data_dir, "--witness-dir", witness_dir];
    register_counter(&store, "orders", 0);
    copy_dir(&data, &backup);

    let http = reqwest::Client::new();
    let ledger = Ledger::new();
    let server = ServerProcess::start(&store, &[]);
    for _ in 0..3 {
        let answer = allocate(&http, server.base_url(), "orders", "id", 100)
            .await
            .unwrap();
        ledger.record(answer.segment());
    }
    wait_for_witness(&witness, 300);
    assert!(server.terminate(), "a clean stop");

    // The operator restores last night's backup of the data directory.
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&backup, &data);
    let server = ServerProcess::start(&store, &[]);
    let refused: Answer = allocate(&http, server.base_url(), "orders", "id", 100)
        .await
        .unwrap();
    assert_eq!(
        (refused.status, refused.code()),
        (503, 50303),
        "{:?}",
        refused.body
    );
    assert!(refused.msg().contains("IDs up to 300"), "{}", refused.msg());
    assert!(
        server
            .logs()
            .contains("store went backwards for sys:db:orders:id"),
        "{}",
        server.logs()
    );
    assert!(server.terminate());

    // `counters list` shows the floor; a raise below it is refused, one
    // above it lets allocation resume above everything handed out.
    let listed = run_cli(&[&store[..], &["counters", "list"]].concat(), &[]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("FENCED"), "{listed}");
    let raise = |to: &str| {
        run_cli(
            &[
                &store[..],
                &[
                    "counters", "raise", "--system", "sys", "--db", "db", "--table", "orders",
                    "--field", "id", "--to", to,
                ],
            ]
            .concat(),
            &[],
        )
    };
    let below = raise("299");
    assert!(!below.status.success());
    assert!(
        String::from_utf8_lossy(&below.stderr).contains("300"),
        "{}",
        String::from_utf8_lossy(&below.stderr)
    );
    assert!(raise("1000").status.success());
    let server = ServerProcess::start(&store, &[]);
    let answer = allocate(&http, server.base_url(), "orders", "id", 100)
        .await
        .unwrap();
    assert_eq!(answer.segment().start, 1001, "{:?}", answer.body);
    ledger.record(answer.segment());
    ledger.assert_no_overlap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_witness_keeps_the_instance_closed_and_says_why() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().to_str().unwrap();
    let store = ["--data-dir", data_dir];
    register_counter(&store, "orders", 0);
    let http = reqwest::Client::new();
    let server = ServerProcess::start(&store, &[]);
    let first = allocate(&http, server.base_url(), "orders", "id", 10)
        .await
        .unwrap();
    let store_id = first.body["data"]["store_id"].as_str().unwrap().to_owned();
    wait_for_witness(root.path(), 10);
    assert!(server.terminate());

    // A torn or hand-edited journal: the instance's memory is gone.
    let journal = root.path().join(format!("witness-{store_id}.json"));
    std::fs::write(&journal, "{\"store_id\": \"trunc").unwrap();
    let server = ServerProcess::start(&store, &[]);
    let refused = allocate(&http, server.base_url(), "orders", "id", 10)
        .await
        .unwrap();
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert!(refused.msg().contains("witness"), "{}", refused.msg());
    let health = get(&http, server.base_url(), "/health").await.unwrap();
    assert_eq!(health.status, 503, "{:?}", health.body);
    let detail = health.body["data"]["store"]["durability"]["detail"].to_string();
    assert!(detail.contains("unreadable"), "{detail}");
    assert!(
        std::fs::read_to_string(&journal)
            .unwrap()
            .starts_with("{\"store_id\": \"trunc"),
        "the unreadable journal is left as it was, for the operator"
    );
}
