//! Fault injection for the crash tests: Redis processes a test can kill,
//! freeze and roll back, and a ledger that proves no ID was handed out twice.
//!
//! kxy promises that segments of one counter never overlap, and that where
//! the store loses data it refuses instead. Both halves are only worth
//! something if they hold under real crashes, so these helpers inject real
//! ones: `kill -9` of a `redis-server` with a chosen persistence, a restart
//! from whatever it left on disk, a restart from an *older* copy of its
//! directory (a restored backup), SIGSTOP/SIGCONT (a stalled store), and
//! replicas. Every Redis here is the test's own, on a free port with its own
//! directory; the machine's shared Redis is never touched.
//!
//! A [`TcpProxy`] between a server and Redis partitions just that link.
//!
//! The [`Ledger`] collects every segment a caller was *acknowledged* (from
//! any thread) and [`coverage`] checks them exactly: sorted by start, any
//! shared ID is an overlap (a broken promise, the test fails), any ID between
//! the lowest and the highest that nobody received is a gap (allowed: an
//! allocation whose answer was lost is burnt, never repeated; counted so the
//! reports can show it).

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kxy_core::Segment;

use crate::redis_env::free_port;

/// How a [`RedisProcess`] keeps its data. Note that `kill -9` ends only the
/// process: whatever Redis has *written* survives it in the kernel's page
/// cache, fsynced or not; only a machine crash loses unsynced writes, which
/// these tests cannot cause (see RELIABILITY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// `appendonly yes`, `appendfsync always`: every acknowledged write is
    /// on disk. The only setting under which kxy's strict mode runs.
    AofAlways,
    /// `appendonly yes`, `appendfsync everysec`: a machine crash loses up to
    /// a second of acknowledged writes.
    AofEverysec,
    /// `appendonly no`; snapshots only when the test calls `SAVE`, so a
    /// restart comes back at the last `SAVE`.
    RdbOnly,
    /// Nothing on disk: a restart comes back empty.
    None,
}

impl Persistence {
    fn args(self) -> [&'static str; 4] {
        match self {
            Persistence::AofAlways => ["--appendonly", "yes", "--appendfsync", "always"],
            Persistence::AofEverysec => ["--appendonly", "yes", "--appendfsync", "everysec"],
            Persistence::RdbOnly | Persistence::None => {
                ["--appendonly", "no", "--appendfsync", "everysec"]
            }
        }
    }
}

/// Fails under `CI=true` and skips (returns) elsewhere when `redis-server`
/// is not on `PATH`: fault tests start their own.
#[macro_export]
macro_rules! require_redis_server {
    () => {
        if !$crate::faults::redis_server_available() {
            return;
        }
    };
}

/// Whether `redis-server` can be run; panics under `CI=true` if not.
pub fn redis_server_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("this test needs redis-server on PATH and CI=true");
        }
        eprintln!("SKIPPED: this test needs redis-server on PATH");
    }
    found
}

/// A `redis-server` of the test's own: a free port, its own directory, a
/// chosen persistence. Killed (SIGKILL, even if stopped) when dropped.
pub struct RedisProcess {
    port: u16,
    persistence: Persistence,
    /// `--replicaof 127.0.0.1 <port>`, if a replica.
    primary_port: Option<u16>,
    /// Holds `data/` (Redis's `--dir`), `redis.log`, copies of `data/` and
    /// the kxy instances' data directories (`kxy-<name>/`).
    root: tempfile::TempDir,
    child: Option<Child>,
    copies: usize,
    /// More `redis-server` flags (say, `--rename-command CONFIG ""`).
    extra_args: Vec<String>,
}

/// A copy of a [`RedisProcess`]'s data directory at one moment, to restore
/// later (an older backup).
#[derive(Debug, Clone)]
pub struct DirCopy {
    path: PathBuf,
}

impl RedisProcess {
    /// Starts a primary with `persistence` on a free port.
    pub fn start(persistence: Persistence) -> RedisProcess {
        Self::launch(persistence, None, &[])
    }

    /// As [`Self::start`], with more `redis-server` flags.
    pub fn start_with(persistence: Persistence, extra_args: &[&str]) -> RedisProcess {
        Self::launch(persistence, None, extra_args)
    }

    /// Starts a replica of the Redis on `127.0.0.1:<primary_port>` (a
    /// [`RedisProcess`], or a [`TcpProxy`] in front of one) and waits until
    /// it has synced.
    pub fn start_replica(persistence: Persistence, primary_port: u16) -> RedisProcess {
        let replica = Self::launch(persistence, Some(primary_port), &[]);
        // Synced on both sides: the replica's link is up, and the primary
        // lists it as online (what WAIT and kxy's replicas:N count).
        let online = format!("port={},state=online", replica.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(replica
            .info("replication")
            .contains("master_link_status:up")
            && info_at(primary_port, "replication").contains(&online))
        {
            assert!(
                Instant::now() < deadline,
                "replica did not sync: {}",
                replica.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        replica
    }

    fn launch(
        persistence: Persistence,
        primary_port: Option<u16>,
        extra_args: &[&str],
    ) -> RedisProcess {
        let root = tempfile::tempdir().expect("temp dir for redis-server");
        fs::create_dir(root.path().join("data")).expect("create data dir");
        let mut redis = RedisProcess {
            port: free_port(),
            persistence,
            primary_port,
            root,
            child: None,
            copies: 0,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        // A port free a moment ago may be taken by the time Redis binds it
        // (tests run in parallel): then try another.
        for _ in 0..3 {
            if redis.spawn().is_ok() {
                return redis;
            }
            redis.port = free_port();
        }
        redis.restart();
        redis
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn persistence(&self) -> Persistence {
        self.persistence
    }

    /// The `kxy-server` store flags for this Redis, with a data directory
    /// for the instances' witness files that all instances started with
    /// these flags share (as instances on one machine would).
    pub fn store_args(&self) -> Vec<String> {
        self.store_args_with(&self.witness_dir("shared"))
    }

    /// The store flags with `data_dir` for the witness files.
    pub fn store_args_with(&self, data_dir: &Path) -> Vec<String> {
        let data_dir = data_dir.to_str().expect("a UTF-8 path");
        [
            "--store",
            "redis",
            "--redis-url",
            &self.url(),
            "--data-dir",
            data_dir,
            "--jwt-secret",
            crate::server::TEST_JWT_SECRET,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// A data directory `name` for instances' witness files (created if
    /// missing), removed with this Redis; a new name is an instance that has
    /// never seen this store.
    pub fn witness_dir(&self, name: &str) -> PathBuf {
        let path = self.root.path().join(format!("kxy-{name}"));
        fs::create_dir_all(&path).expect("create a witness dir");
        path
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("redis.log")
    }

    /// Redis's own log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts it (again) on the same port and directory, loading whatever
    /// the directory holds, and waits until it answers PING (not LOADING).
    pub fn restart(&mut self) {
        if let Err(e) = self.spawn() {
            panic!("{e}");
        }
    }

    /// Starts redis-server and waits until *it* answers on the port (its
    /// `process_id`, not another process that took the port).
    fn spawn(&mut self) -> Result<(), String> {
        self.kill9();
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.data_dir())
            .arg("--logfile")
            .arg(self.log_path())
            .args(["--save", ""])
            // Replicas sync at once instead of after Redis's default 5 s.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(self.persistence.args())
            .args(&self.extra_args);
        if let Some(primary) = self.primary_port {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        let ours = format!("process_id:{}", child.id());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && self.try_command(&["PING"]).is_ok()
                && self.info("server").contains(&ours)
            {
                return Ok(());
            }
            let exited = self.child.as_mut().unwrap().try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                self.kill9();
                return Err(format!(
                    "redis-server on port {} did not start ({exited:?}); its log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush anything. The port stops answering.
    /// A stopped (SIGSTOP) process dies too.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process freezes; its port still accepts connections
    /// (the kernel completes the handshake) but nothing answers.
    pub fn sigstop(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Self::sigstop`].
    pub fn sigcont(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.pid().expect("redis-server is running").to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{name} {pid}");
    }

    /// One command; the reply rendered as text (arrays one element a line).
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("redis {args:?} on port {}: {e}", self.port))
    }

    fn try_command(&self, args: &[&str]) -> redis::RedisResult<String> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(5))?;
        connection.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        let value: redis::Value = cmd.query(&mut connection)?;
        Ok(render(value))
    }

    /// `INFO <section>`.
    pub fn info(&self, section: &str) -> String {
        info_at(self.port, section)
    }

    /// The raw value of a key, if set.
    pub fn get(&self, key: &str) -> Option<String> {
        let value = self.command(&["GET", key]);
        (!value.is_empty()).then_some(value)
    }

    /// Copies the data directory aside. Safe while running with
    /// `appendfsync always` (a torn last AOF record is dropped on load), and
    /// after [`Self::kill9`].
    pub fn copy_dir(&mut self) -> DirCopy {
        self.copies += 1;
        let path = self.root.path().join(format!("copy-{}", self.copies));
        copy_tree(&self.data_dir(), &path);
        DirCopy { path }
    }

    /// Replaces the data directory with `copy`. Redis must not be running
    /// (call [`Self::kill9`] first, then [`Self::restart`]).
    pub fn restore(&mut self, copy: &DirCopy) {
        assert!(self.child.is_none(), "restore needs a stopped redis-server");
        fs::remove_dir_all(self.data_dir()).expect("remove data dir");
        copy_tree(&copy.path, &self.data_dir());
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `INFO <section>` of the Redis on `127.0.0.1:<port>`; empty on failure.
fn info_at(port: u16, section: &str) -> String {
    let answer = redis::Client::open(format!("redis://127.0.0.1:{port}")).and_then(|client| {
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(5))?;
        redis::cmd("INFO")
            .arg(section)
            .query::<String>(&mut connection)
    });
    answer.unwrap_or_default()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create copy dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

fn render(value: redis::Value) -> String {
    match value {
        redis::Value::Nil => String::new(),
        redis::Value::Int(n) => n.to_string(),
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        redis::Value::SimpleString(s) => s,
        redis::Value::Okay => "OK".to_owned(),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.into_iter().map(render).collect::<Vec<_>>().join("\n")
        }
        redis::Value::VerbatimString { text, .. } => text,
        other => format!("{other:?}"),
    }
}

/// A TCP proxy to `127.0.0.1:<target>` that can partition the link: while
/// [`Self::hold`] is in force it forwards nothing in either direction (bytes
/// wait in the kernel's buffers, as in a network partition that TCP later
/// heals) and new connections are accepted but not served; [`Self::heal`]
/// delivers everything late. [`Self::retarget`] moves it to another
/// backend, as a failover moves a virtual IP. Stopped, with all its
/// connections, when dropped.
pub struct TcpProxy {
    port: u16,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

struct ProxyShared {
    /// Whether the link is partitioned. A std mutex + condvar: pumps wait on
    /// it between reads and writes, never while holding it across I/O.
    held: Mutex<bool>,
    healed: Condvar,
    stop: AtomicBool,
    /// The backend port new connections go to.
    target: AtomicU16,
    /// Clones of every socket, to shut them down when the proxy stops.
    sockets: Mutex<Vec<TcpStream>>,
}

impl ProxyShared {
    /// Waits while the link is held; false once the proxy stops.
    fn wait_until_open(&self) -> bool {
        let mut held = self.held.lock().unwrap();
        while *held && !self.stop.load(Ordering::Relaxed) {
            held = self
                .healed
                .wait_timeout(held, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        !self.stop.load(Ordering::Relaxed)
    }
}

impl TcpProxy {
    pub fn start(target: u16) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(ProxyShared {
            held: Mutex::new(false),
            healed: Condvar::new(),
            stop: AtomicBool::new(false),
            target: AtomicU16::new(target),
            sockets: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            while !accepting.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let target = accepting.target.load(Ordering::Relaxed);
                        let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        // Without this, Nagle + delayed ACKs add ~40 ms to
                        // a request/reply exchange.
                        let _ = client.set_nodelay(true);
                        let _ = upstream.set_nodelay(true);
                        Self::pump(&accepting, &client, &upstream);
                        Self::pump(&accepting, &upstream, &client);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        TcpProxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Copies `from` to `to` in a thread of its own, pausing while held.
    fn pump(shared: &Arc<ProxyShared>, from: &TcpStream, to: &TcpStream) {
        let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        shared
            .sockets
            .lock()
            .unwrap()
            .extend(from.try_clone().ok().into_iter().chain(to.try_clone().ok()));
        let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            loop {
                if !shared.wait_until_open() {
                    break;
                }
                let n = match from.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        continue;
                    }
                    Err(_) => break,
                };
                // Bytes read just before a hold are delivered after it.
                if !shared.wait_until_open() || to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`, for a Redis behind this proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Partitions the link: nothing passes until [`Self::heal`].
    pub fn hold(&self) {
        *self.shared.held.lock().unwrap() = true;
    }

    pub fn heal(&self) {
        *self.shared.held.lock().unwrap() = false;
        self.shared.healed.notify_all();
    }

    /// Sends new connections to `127.0.0.1:<target>` and cuts the current
    /// ones, so clients reconnect to the new backend.
    pub fn retarget(&self, target: u16) {
        self.shared.target.store(target, Ordering::Relaxed);
        for socket in self.shared.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.healed.notify_all();
        for socket in self.shared.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Every acknowledged segment, from any number of threads. Cheap to clone
/// (one shared list).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    segments: Arc<Mutex<Vec<Segment>>>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Records one acknowledged segment.
    pub fn record(&self, segment: Segment) {
        assert!(
            segment.start >= 1 && segment.start <= segment.end,
            "not a segment: {segment:?}"
        );
        self.segments.lock().unwrap().push(segment);
    }

    pub fn len(&self) -> usize {
        self.segments.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The highest ID acknowledged so far.
    pub fn highest(&self) -> Option<i64> {
        self.segments.lock().unwrap().iter().map(|s| s.end).max()
    }

    pub fn segments(&self) -> Vec<Segment> {
        self.segments.lock().unwrap().clone()
    }

    /// The exact coverage of everything recorded so far.
    pub fn coverage(&self) -> Coverage {
        coverage(&mut self.segments())
    }

    /// Panics, listing them, if any two recorded segments share an ID;
    /// returns the coverage otherwise.
    pub fn assert_no_overlap(&self) -> Coverage {
        let coverage = self.coverage();
        coverage.assert_no_overlap();
        coverage
    }
}

/// What a set of segments covers, from its lowest to its highest ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub segments: usize,
    /// IDs in all segments together (an ID in two segments counts twice).
    pub ids: u128,
    pub lowest: Option<i64>,
    pub highest: Option<i64>,
    /// Pairs that share IDs: the earlier-starting one reaching furthest so
    /// far, and the one it overlaps. At most [`MAX_REPORTED`] are kept.
    pub overlaps: Vec<(Segment, Segment)>,
    pub overlap_count: usize,
    /// Runs of IDs between lowest and highest that no segment holds.
    pub gaps: usize,
    pub gap_ids: u128,
    /// The largest gaps (at most [`MAX_REPORTED`]), largest first.
    pub largest_gaps: Vec<Segment>,
}

/// How many overlaps and gaps a [`Coverage`] lists one by one.
pub const MAX_REPORTED: usize = 10;

impl Coverage {
    pub fn assert_no_overlap(&self) {
        assert!(
            self.overlap_count == 0,
            "{} overlapping segment pairs (IDs handed out twice), e.g. {:?}; {self}",
            self.overlap_count,
            self.overlaps
        );
    }
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} segments, {} IDs from {:?} to {:?}, {} overlaps, {} gaps of {} IDs in total",
            self.segments,
            self.ids,
            self.lowest,
            self.highest,
            self.overlap_count,
            self.gaps,
            self.gap_ids
        )
    }
}

/// Sorts `segments` by start and measures their coverage exactly.
pub fn coverage(segments: &mut [Segment]) -> Coverage {
    segments.sort_unstable_by_key(|s| (s.start, s.end));
    let mut result = Coverage {
        segments: segments.len(),
        ids: 0,
        lowest: segments.first().map(|s| s.start),
        highest: None,
        overlaps: Vec::new(),
        overlap_count: 0,
        gaps: 0,
        gap_ids: 0,
        largest_gaps: Vec::new(),
    };
    // The segment reaching furthest among those seen so far.
    let mut furthest: Option<Segment> = None;
    for &segment in segments.iter() {
        result.ids += (segment.end as i128 - segment.start as i128 + 1) as u128;
        match furthest {
            Some(prev) if segment.start <= prev.end => {
                result.overlap_count += 1;
                if result.overlaps.len() < MAX_REPORTED {
                    result.overlaps.push((prev, segment));
                }
            }
            Some(prev) if segment.start > prev.end + 1 => {
                let gap = Segment {
                    start: prev.end + 1,
                    end: segment.start - 1,
                };
                result.gaps += 1;
                result.gap_ids += (gap.end - gap.start + 1) as u128;
                result.largest_gaps.push(gap);
                if result.largest_gaps.len() > 4 * MAX_REPORTED {
                    keep_largest(&mut result.largest_gaps);
                }
            }
            _ => {}
        }
        if furthest.is_none_or(|prev| segment.end > prev.end) {
            furthest = Some(segment);
        }
    }
    keep_largest(&mut result.largest_gaps);
    result.highest = furthest.map(|s| s.end);
    result
}

fn keep_largest(gaps: &mut Vec<Segment>) {
    gaps.sort_unstable_by_key(|g| std::cmp::Reverse(g.end - g.start));
    gaps.truncate(MAX_REPORTED);
}

/// The number of threads of process `pid` (`Threads:` in
/// `/proc/<pid>/status`).
pub fn thread_count(pid: u32) -> usize {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: in /proc/<pid>/status")
}

/// The process listening on TCP `address` (`127.0.0.1:<port>`), found
/// through `/proc/net/tcp` and the processes' socket descriptors.
pub fn pid_listening_on(address: &str) -> Option<u32> {
    let port: u16 = address.rsplit(':').next()?.parse().ok()?;
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    // Columns: sl local_address rem_address st ... inode (10th).
    let inode = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields.get(1)?.rsplit(':').next()?;
        let listening = fields.get(3) == Some(&"0A");
        (listening && u16::from_str_radix(local_port, 16).ok()? == port)
            .then(|| fields.get(9).map(|s| s.to_string()))
            .flatten()
    })?;
    let socket = format!("socket:[{inode}]");
    for process in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == socket.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

// Helpers of the continuity tests (tests/tests/never_twice.rs): replication
// changed at run time, settings changed at run time, an instance that may
// refuse to start, and waiting for an instance to open allocation.

impl RedisProcess {
    /// As [`Self::start_replica`], with more `redis-server` flags (say,
    /// `--replica-read-only no`: a writable replica).
    pub fn start_replica_with(
        persistence: Persistence,
        primary_port: u16,
        extra_args: &[&str],
    ) -> RedisProcess {
        let replica = Self::launch(persistence, Some(primary_port), extra_args);
        replica.wait_until_synced_with(primary_port);
        replica
    }

    /// `REPLICAOF 127.0.0.1 <primary_port>` at run time (this node drops
    /// its data and takes the other's, by a full resync unless it can
    /// continue its stream), then waits until the link is up and the
    /// primary lists this node as online.
    pub fn replicate_from(&self, primary_port: u16) {
        let port = primary_port.to_string();
        assert_eq!(self.command(&["REPLICAOF", "127.0.0.1", &port]), "OK");
        self.wait_until_synced_with(primary_port);
    }

    /// `REPLICAOF NO ONE`: a replica becomes a primary with what it holds
    /// (a new `master_replid`; `run_id` stays).
    pub fn promote(&self) {
        assert_eq!(self.command(&["REPLICAOF", "NO", "ONE"]), "OK");
    }

    /// `CONFIG SET <name> <value>`, asserting that Redis accepted it.
    pub fn config_set(&self, name: &str, value: &str) {
        assert_eq!(
            self.command(&["CONFIG", "SET", name, value]),
            "OK",
            "CONFIG SET {name} {value}"
        );
    }

    /// The value of `field` in `INFO <section>` (`run_id`, `master_replid`,
    /// `role`...), if present.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let prefix = format!("{field}:");
        self.info(section)
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(|v| v.trim().to_owned()))
    }

    fn wait_until_synced_with(&self, primary_port: u16) {
        let online = format!("port={},state=online", self.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(self.info("replication").contains("master_link_status:up")
            && info_at(primary_port, "replication").contains(&online))
        {
            assert!(
                Instant::now() < deadline,
                "replica did not sync: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Coverage {
    /// IDs handed out more than once (an ID in three segments counts
    /// twice): every ID in all segments together, less the distinct ones.
    pub fn repeated_ids(&self) -> u128 {
        match (self.lowest, self.highest) {
            (Some(lowest), Some(highest)) => {
                let span = (highest as i128 - lowest as i128 + 1) as u128;
                self.ids - (span - self.gap_ids)
            }
            _ => 0,
        }
    }
}

/// Runs `kxy-server` with `args` (plus `--bind 127.0.0.1:0`) until it
/// either listens (then it is killed at once: `Ok`) or exits (`Err` with its
/// log), for a case where refusing to start is one of the right answers.
/// Panics if it does neither within 30 s.
pub fn server_starts(args: &[&str]) -> Result<(), String> {
    let mut child = Command::new(crate::server::binary())
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kxy-server");
    let stderr = child.stderr.take().expect("piped stderr");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    loop {
        while let Ok(line) = lines.try_recv() {
            let listening = line.contains("listening on");
            log.push(line);
            if listening {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(());
            }
        }
        if child.try_wait().expect("poll kxy-server").is_some() {
            while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
                log.push(line);
            }
            return Err(log.join("\n"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kxy-server neither started nor exited:\n{}", log.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `GET /health` of the instance at `base_url` until it reports
/// `data.store.durability.allocating == true` (an instance opens allocation
/// only once it has checked its store and the store's epoch is settled);
/// returns how long that took. Panics with the last answer after `timeout`.
pub async fn wait_until_allocating(base_url: &str, timeout: Duration) -> Duration {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let answer = crate::api::get(&http, base_url, "/health").await;
        if let Ok(answer) = &answer
            && answer.body["data"]["store"]["durability"]["allocating"] == true
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "{base_url} did not open allocation within {timeout:?}: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(start: i64, end: i64) -> Segment {
        Segment { start, end }
    }

    #[test]
    fn coverage_finds_overlaps_and_gaps() {
        let c = coverage(&mut [s(11, 20), s(1, 10), s(25, 30), s(31, 31)]);
        assert_eq!((c.overlap_count, c.gaps, c.gap_ids, c.ids), (0, 1, 4, 27));
        assert_eq!((c.lowest, c.highest), (Some(1), Some(31)));
        assert_eq!(c.largest_gaps, vec![s(21, 24)]);

        // One long segment swallowing later ones still counts as overlap.
        let c = coverage(&mut [s(1, 100), s(50, 50), s(101, 110), s(100, 100)]);
        assert_eq!(c.overlap_count, 2, "{c:?}");
        assert_eq!(c.overlaps[0], (s(1, 100), s(50, 50)));
        assert_eq!(c.gaps, 0);
        assert!(std::panic::catch_unwind(|| c.assert_no_overlap()).is_err());

        let c = coverage(&mut []);
        assert_eq!((c.segments, c.lowest, c.highest), (0, None, None));
    }

    #[test]
    fn the_ledger_collects_from_threads() {
        let ledger = Ledger::new();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let ledger = ledger.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let start = (i * 4 + t) * 10 + 1;
                        ledger.record(s(start, start + 9));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let c = ledger.assert_no_overlap();
        assert_eq!((c.segments, c.ids, c.gaps), (400, 4000, 0));
        assert_eq!(ledger.highest(), Some(4000));
    }
}
