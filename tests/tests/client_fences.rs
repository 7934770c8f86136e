//! kxy-client's fences against the real server: a client never hands out an
//! ID twice, even when servers do. A store rolled back under a running
//! client, two servers on two independent stores, a forked process, runs
//! longer than the server gives, a first server that never answers, and
//! runs that end at the largest ID.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use kxy_client::{
    BlockingSegmentClient, ClientConfig, ClientError, GeneratorConfig, IdGenerator, Patience,
    SegmentClient, SegmentKey,
};
use kxy_core::Segment;
use kxy_e2e::client_env::{SilentServer, roll_back_counter};
use kxy_e2e::redis_env::PrivateRedis;
use kxy_e2e::server::{ServerProcess, register_counter};

fn key(table: &str) -> SegmentKey {
    SegmentKey::new("sys", "db", table, "id").unwrap()
}

fn client(urls: &[&str]) -> SegmentClient {
    SegmentClient::new(ClientConfig::new(urls).unwrap()).unwrap()
}

/// An embedded-store server in its own data directory with `sys:db:<table>:id`
/// registered at `start`.
fn embedded_server(table: &str, start: i64, extra: &[&str]) -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    register_counter(&["--data-dir", &data_dir], table, start);
    let mut args = vec!["--data-dir", data_dir.as_str()];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args, &[]);
    (dir, server)
}

fn assert_unique(ids: &[i64]) {
    let mut seen = HashSet::with_capacity(ids.len());
    for id in ids {
        assert!(seen.insert(*id), "{id} was handed out twice");
    }
}

/// Takes IDs until the generator fails; returns them and the failure.
/// Panics if it still hands out IDs after a million (far more than it can
/// have cached).
fn drain(ids: &IdGenerator) -> (Vec<i64>, ClientError) {
    let mut got = Vec::new();
    while got.len() < 1_000_000 {
        match ids.next_id() {
            Ok(id) => got.push(id),
            Err(e) => return (got, e),
        }
    }
    panic!("the generator kept handing out IDs after the refusals began");
}

/// The counter starts high, so that a rolled-back server never climbs back
/// above the client's mark by handing out discarded segments.
const HIGH_START: i64 = 1_000_000_000;

#[test]
fn a_store_that_went_backwards_is_refused_and_no_id_repeats() {
    let redis = PrivateRedis::start();
    let first_dir = tempfile::tempdir().unwrap();
    let first_args = redis.store_args(first_dir.path());
    let first_args: Vec<&str> = first_args.iter().map(String::as_str).collect();
    register_counter(&first_args, "orders", HIGH_START);
    let server = ServerProcess::start(&first_args, &[]);
    let address = server.address().to_owned();

    let config = GeneratorConfig::new(100)
        .unwrap()
        .with_max_wait(Duration::from_secs(1))
        .unwrap();
    let ids = IdGenerator::new(client(&[server.base_url()]), key("orders"), config);
    let mut handed_out: Vec<i64> = (0..250).map(|_| ids.next_id().unwrap()).collect();
    assert_eq!(handed_out[0], HIGH_START + 1);

    // The store loses its allocations (a restore from an old backup), and
    // the server restarts with no memory of its own (no witness file).
    server.kill();
    roll_back_counter(&redis, "orders", 0);
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh_args = redis.store_args(fresh_dir.path());
    let fresh_args: Vec<&str> = fresh_args.iter().map(String::as_str).collect();
    let server = ServerProcess::start_on(&address, &fresh_args, &[]);

    // Buffered IDs still flow; then every request is refused by the server:
    // the client told it the store and the highest ID it received from it,
    // and the store now stands below that (503, 50303).
    let (rest, error) = drain(&ids);
    handed_out.extend(rest);
    assert_unique(&handed_out);
    assert!(
        matches!(error, ClientError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(
        matches!(
            error.root(),
            ClientError::Api {
                status: 503,
                code: 50303,
                ..
            }
        ),
        "expected the server to refuse on the client's high water, got {error:?}"
    );
    assert!(error.is_retryable());

    // A client that never talked to this store sends no hint, so the server
    // hands the old range out again; the process's fence still refuses it.
    let newcomer =
        BlockingSegmentClient::new(ClientConfig::new([server.base_url()]).unwrap()).unwrap();
    let refused = newcomer
        .allocate_segment("sys", "db", "orders", "id", 10)
        .unwrap_err();
    match &refused {
        ClientError::WentBackwards { highest, got, .. } => {
            // The old range (the generator's discards moved the counter up
            // a little, far below what was handed out).
            assert!(got.end < HIGH_START, "{refused}");
            assert!(*highest >= *handed_out.iter().max().unwrap());
        }
        other => panic!("expected WentBackwards, got {other:?}"),
    }
    assert!(refused.to_string().contains("went backwards"), "{refused}");
    assert_eq!(newcomer.as_async().discarded(), 1);
}

#[test]
fn a_client_keeps_to_its_store_when_its_server_dies() {
    // Two servers, each on a store of its own, with the same counter: they
    // hand out the same ranges. One client is configured with both.
    let (_a_dir, first) = embedded_server("orders", 0, &[]);
    let (_b_dir, second) = embedded_server("orders", 0, &[]);
    let shared = client(&[first.base_url(), second.base_url()]);
    let config = GeneratorConfig::new(50)
        .unwrap()
        .with_max_wait(Duration::from_secs(1))
        .unwrap();
    let ids = IdGenerator::new(shared.clone(), key("orders"), config);
    let mut handed_out: Vec<i64> = (0..500).map(|_| ids.next_id().unwrap()).collect();
    let pinned = shared.pinned_store(&key("orders"));
    assert!(pinned.is_some(), "the first server named its store");

    first.kill();
    let (rest, error) = drain(&ids);
    handed_out.extend(rest);
    assert_unique(&handed_out);
    assert!(
        matches!(error.root(), ClientError::StoreMismatch { .. }),
        "{error:?}"
    );
    assert!(ids.discarded() >= 1);

    // A direct allocation through the same client is refused the same way.
    let direct = BlockingSegmentClient::from(shared.clone());
    let refused = direct.allocate(&key("orders"), 10).unwrap_err();
    match &refused {
        ClientError::StoreMismatch {
            pinned: expected,
            got,
            url,
            ..
        } => {
            assert_eq!(Some(expected), pinned.as_ref());
            assert_ne!(got, expected);
            assert!(url.starts_with(second.base_url()), "{url}");
        }
        other => panic!("expected StoreMismatch, got {other:?}"),
    }
    assert!(shared.discarded() >= 2);
    assert_eq!(shared.pinned_store(&key("orders")), pinned, "pin kept");
}

// The test forks with the C library directly; these are its declarations
// (pid_t is i32 on Linux).
unsafe extern "C" {
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, signal: i32) -> i32;
    fn _exit(status: i32) -> !;
}

#[test]
fn a_forked_child_never_hands_out_the_parents_ids() {
    let (_dir, server) = embedded_server("orders", 0, &[]);
    let ids = IdGenerator::new(
        client(&[server.base_url()]),
        key("orders"),
        GeneratorConfig::new(1000).unwrap(),
    );
    // The parent's cache now holds the rest of a segment, and the next one
    // is on its way or buffered.
    let mut parent: Vec<i64> = (0..300).map(|_| ids.next_id().unwrap()).collect();
    let (mut from_child, mut to_parent) = UnixStream::pair().unwrap();

    // SAFETY: the child only uses kxy (which starts over after a fork by
    // itself), writes to its socket and leaves with _exit; it never
    // returns into the test harness and never prints.
    let pid = unsafe { fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (0..3000)
                .map(|_| ids.next_id().map_err(|e| e.to_string()))
                .collect::<Result<Vec<i64>, String>>()
        }));
        let (report, status) = match taken {
            Ok(Ok(taken)) => (
                taken
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                0,
            ),
            Ok(Err(e)) => (format!("error: {e}"), 1),
            Err(_) => ("error: the child panicked".to_owned(), 1),
        };
        let _ = to_parent.write_all(report.as_bytes());
        drop(to_parent);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { _exit(status) };
    }
    drop(to_parent);

    parent.extend((0..3000).map(|_| ids.next_id().unwrap()));
    from_child
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut report = String::new();
    let read = from_child.read_to_string(&mut report);
    let mut status = 0;
    if read.is_err() {
        // SAFETY: signals and reaps our own child.
        unsafe { kill(pid, 9) };
    }
    // SAFETY: reaps our own child.
    unsafe { waitpid(pid, &mut status, 0) };
    read.expect("the child reports within a minute");
    assert_eq!(status, 0, "child: {report}");
    let child: Vec<i64> = report.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(child.len(), 3000);
    let highest_cached_by_parent = parent[299];
    assert!(
        child.iter().all(|id| *id > highest_cached_by_parent),
        "the child fetched segments of its own"
    );
    let mut every_id = parent;
    every_id.extend(child);
    assert_unique(&every_id);
}

#[test]
fn runs_longer_than_the_server_gives_are_refused_not_looped() {
    let (_dir, server) = embedded_server("orders", 0, &["--max-segment", "1000"]);
    let config = GeneratorConfig::new(100)
        .unwrap()
        .with_max_wait(Duration::from_secs(2))
        .unwrap();
    let ids = IdGenerator::new(client(&[server.base_url()]), key("orders"), config);
    assert_eq!(ids.next_id().unwrap(), 1);

    // Longer than the current request size but within the server's limit:
    // the next fetch asks for the whole run.
    let run = ids.next_ids(800).unwrap();
    assert_eq!(run.len(), 800);

    // Runs above --max-segment, whether cached-size or direct (above the
    // generator's own largest segment), are argument errors naming n.
    for n in [5_000, 200_000, GeneratorConfig::DEFAULT_MAX_SIZE + 1] {
        match ids.next_ids(n) {
            Err(ClientError::InvalidArgument(msg)) => {
                assert!(msg.contains(&format!("n = {n}")), "{msg}");
            }
            other => panic!("next_ids({n}): expected InvalidArgument, got {other:?}"),
        }
    }
    // The generator goes on serving.
    let after = ids.next_id().unwrap();
    assert!(after > run.end);
}

#[test]
fn a_silent_first_server_does_not_keep_the_generator_from_the_second() {
    let silent = SilentServer::start();
    let (_dir, server) = embedded_server("orders", 0, &[]);
    // The request timeout (30 s) is far above max_wait (5 s): only a bounded
    // attempt per server gets the call to the second URL in time.
    let ids = IdGenerator::new(
        client(&[&silent.base_url(), server.base_url()]),
        key("orders"),
        GeneratorConfig::new(100).unwrap(),
    );
    assert_eq!(
        ids.config().patience(),
        Patience::Retry {
            max_wait: GeneratorConfig::DEFAULT_MAX_WAIT
        }
    );
    let started = Instant::now();
    let first = ids.next_id();
    assert_eq!(first.unwrap(), 1, "after {:?}", started.elapsed());
    // Later fetches start at the server that answered.
    let rest: Vec<i64> = (0..1000).map(|_| ids.next_id().unwrap()).collect();
    assert_eq!(rest.last(), Some(&1001));
}

#[test]
fn runs_may_end_at_the_largest_id() {
    let (_dir, server) = embedded_server("orders", i64::MAX - 1000, &[]);
    let ids = IdGenerator::new(
        client(&[server.base_url()]),
        key("orders"),
        GeneratorConfig::new(500).unwrap(),
    );
    let low = ids.next_ids(500).unwrap();
    let high = ids.next_ids(500).unwrap();
    assert_eq!(low.start, i64::MAX - 999);
    assert_eq!(
        high,
        Segment {
            start: i64::MAX - 499,
            end: i64::MAX
        }
    );
    let exhausted = ids.next_id().unwrap_err();
    assert!(
        matches!(exhausted.root(), ClientError::Api { status: 409, .. }),
        "{exhausted:?}"
    );
}
