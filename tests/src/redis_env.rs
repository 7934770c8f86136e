//! Redis for tests: the shared server, private servers, unique prefixes.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The machine's shared Redis.
pub const SHARED_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The shared Redis URL if it answers PING. When it does not, the test fails
/// under `CI=true` (CI must not pass by skipping) and is skipped with a
/// message elsewhere.
pub fn shared_redis() -> Option<String> {
    let answer = redis::Client::open(SHARED_REDIS_URL).and_then(|client| {
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
        redis::cmd("PING").query::<String>(&mut connection)
    });
    match answer {
        Ok(_) => Some(SHARED_REDIS_URL.to_owned()),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("this test needs Redis at {SHARED_REDIS_URL} and CI=true: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: this test needs Redis at {SHARED_REDIS_URL}: {e}");
            None
        }
    }
}

/// Returns the shared Redis URL, or returns from the test (see [`shared_redis`]).
#[macro_export]
macro_rules! require_redis {
    () => {
        match $crate::redis_env::shared_redis() {
            Some(url) => url,
            None => return,
        }
    };
}

/// A key prefix no other test or run shares. Dropping it deletes its keys.
///
/// Servers on it run with `--redis-durability unsafe`: the shared Redis keeps
/// nothing on disk (no AOF), so the default `strict` policy would rightly
/// refuse it. These tests are about identity, keys, scans and failover, not
/// about surviving a Redis crash; the fault tests run their own durable
/// `redis-server`. Each prefix has its own data directory for the servers'
/// witness files.
pub struct KeyPrefix {
    prefix: String,
    url: String,
    data_dir: tempfile::TempDir,
    data_dir_arg: String,
}

impl KeyPrefix {
    pub fn new(url: &str, test: &str) -> KeyPrefix {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let data_dir = tempfile::tempdir().expect("a temporary data directory");
        KeyPrefix {
            prefix: format!("kxytest:{test}:{}:{nanos}", std::process::id()),
            url: url.to_owned(),
            data_dir_arg: data_dir.path().to_str().expect("a UTF-8 path").to_owned(),
            data_dir,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.prefix
    }

    /// The `kxy-server` arguments that select this Redis and prefix (and,
    /// see above, accept its lack of durability).
    pub fn store_args(&self) -> Vec<&str> {
        vec![
            "--store",
            "redis",
            "--redis-url",
            &self.url,
            "--redis-prefix",
            &self.prefix,
            "--redis-durability",
            "unsafe",
            "--data-dir",
            &self.data_dir_arg,
            "--jwt-secret",
            crate::server::TEST_JWT_SECRET,
        ]
    }

    /// The servers' data directory (their witness files).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }
}

impl Drop for KeyPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// A `redis-server` of the test's own, without persistence, on a free port;
/// for tests that stop and restart Redis. Killed when dropped. Servers on it
/// need `--redis-durability unsafe` (see [`PrivateRedis::store_args`]).
pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let port = free_port();
        let mut redis = PrivateRedis { port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `kxy-server` arguments for this Redis. It keeps nothing on disk, so
    /// they accept that with `--redis-durability unsafe`; `data_dir` holds
    /// the servers' witness files.
    pub fn store_args(&self, data_dir: &std::path::Path) -> Vec<String> {
        [
            "--store",
            "redis",
            "--redis-url",
            &self.url(),
            "--redis-durability",
            "unsafe",
            "--data-dir",
            data_dir.to_str().expect("a UTF-8 path"),
            "--jwt-secret",
            crate::server::TEST_JWT_SECRET,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Starts it (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL; the port stops answering.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}
