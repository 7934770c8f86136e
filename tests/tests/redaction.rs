//! Secrets in the server's configuration must not leak (issue 11, point 14):
//! a Redis password, in every form a Redis URL can carry it, appears in no
//! output of the real server (its log, its startup errors, `--help`, the
//! public `/health`, error answers), and `/health` shows no filesystem path.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kxy_e2e::api::{allocate, get};
use kxy_e2e::faults::redis_server_available;
use kxy_e2e::redis_env::free_port;
use kxy_e2e::server::{ServerProcess, run_cli, start_refused};

const PASSWORD: &str = "S3cretPw-7f2c";

/// Fails with what leaked and where if `text` holds the password.
fn assert_no_password(text: &str, where_: &str) {
    assert!(
        !text.contains(PASSWORD),
        "the Redis password appears in {where_}:\n{text}"
    );
}

/// A `redis-server` of this test's own that requires [`PASSWORD`], on a
/// free port and on a Unix socket. Killed when dropped.
struct PasswordRedis {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl PasswordRedis {
    fn start() -> PasswordRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--requirepass",
                PASSWORD,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--unixsocket")
            .arg(dir.path().join("redis.sock"))
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let redis = PasswordRedis { dir, port, child };
        let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(20);
        while redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }
}

impl Drop for PasswordRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_args<'a>(url: &'a str, data_dir: &'a Path) -> Vec<&'a str> {
    vec![
        "--store",
        "redis",
        "--redis-url",
        url,
        "--redis-durability",
        "unsafe",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--jwt-secret",
        kxy_e2e::server::TEST_JWT_SECRET,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_password_never_reaches_health_logs_or_errors() {
    if !redis_server_available() {
        return;
    }
    let redis = PasswordRedis::start();
    let port = redis.port;
    let socket = redis.socket();
    let socket = socket.to_str().unwrap();
    let urls = [
        format!("redis://:{PASSWORD}@127.0.0.1:{port}/"),
        format!("redis://default:{PASSWORD}@127.0.0.1:{port}/0"),
        format!("redis+unix://{socket}?pass={PASSWORD}"),
        format!("unix://{socket}?db=0&pass={PASSWORD}"),
    ];
    let http = reqwest::Client::new();
    for url in &urls {
        let data_dir = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(&server_args(url, data_dir.path()), &[]);
        let health = get(&http, server.base_url(), "/health").await.unwrap();
        let body = health.body.to_string();
        assert_no_password(&body, &format!("/health with {url}"));
        assert!(
            !body.contains(socket),
            "/health shows the socket path: {body}"
        );
        assert_eq!(health.body["data"]["store"]["backend"], "redis", "{body}");
        assert_eq!(health.body["data"]["store"]["reachable"], true, "{body}");
        // An error answer that goes to the store (an unregistered counter,
        // or the refused connection).
        let refused = allocate(&http, server.base_url(), "orders", "id", 1)
            .await
            .unwrap();
        assert_no_password(&refused.body.to_string(), &format!("an error with {url}"));
        let logs = server.logs();
        assert!(server.terminate(), "the server did not stop cleanly");
        assert_no_password(&logs, &format!("the log with {url}"));
    }

    // Not a form the Redis client reads: it connects without the password,
    // is refused (NOAUTH), and the server stops with that error.
    let url = format!("redis://127.0.0.1:{port}/?password={PASSWORD}");
    let data_dir = tempfile::tempdir().unwrap();
    let out = start_refused(&server_args(&url, data_dir.path()));
    assert!(out.contains("NOAUTH"), "{out}");
    assert_no_password(&out, &format!("the startup error with {url}"));
}

#[test]
fn a_rejected_redis_url_is_named_without_its_password() {
    let data_dir = tempfile::tempdir().unwrap();
    let urls = [
        format!("redis://:{PASSWORD}@127.0.0.1:notaport/"),
        format!("redis://kxy:{PASSWORD}@127.0.0.1:6379/notadb"),
        format!("redis://127.0.0.1:6379/?password={PASSWORD}&protocol=nine"),
        format!("redis+unix:///run/redis.sock?db=x&pass={PASSWORD}"),
        format!("rediss://:{PASSWORD}@[::1"),
    ];
    for url in &urls {
        let out = start_refused(&server_args(url, data_dir.path()));
        assert_no_password(&out, &format!("the startup error for {url}"));
        assert!(out.contains("Redis URL"), "{url}: {out}");
        // The same URL given to a subcommand.
        let mut args = server_args(url, data_dir.path());
        args.extend(["counters", "list"]);
        let cli = run_cli(&args, &[]);
        assert!(!cli.status.success());
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&cli.stdout),
            String::from_utf8_lossy(&cli.stderr)
        );
        assert_no_password(&output, &format!("`counters list` with {url}"));
    }
}

#[test]
fn help_does_not_print_the_redis_url_from_the_environment() {
    let url = format!("redis://:{PASSWORD}@10.0.0.1:6379/0");
    let out = run_cli(&["--help"], &[("KXY_REDIS_URL", &url)]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--redis-url"), "{help}");
    assert_no_password(&help, "--help");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_no_filesystem_path() {
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().to_str().unwrap();
    let server = ServerProcess::start(&["--data-dir", path], &[]);
    let health = get(&reqwest::Client::new(), server.base_url(), "/health")
        .await
        .unwrap();
    let body = health.body.to_string();
    assert_eq!(health.status, 200, "{body}");
    assert_eq!(health.body["data"]["store"]["backend"], "embedded");
    assert!(
        !body.contains(path),
        "/health shows the data directory: {body}"
    );
    assert!(
        !body.contains("kxy.redb"),
        "/health shows the store file: {body}"
    );
}
