//! Starting `kxy-server` as a child process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `kxy-server` binary: `$KXY_SERVER_BIN`, or the one built next to this
/// test executable.
/// The access-token signing key of test servers on a shared store (Redis),
/// which needs one that every instance knows and the store does not hold.
pub const TEST_JWT_SECRET: &str = "kxy test signing key: at least 32 bytes long";

pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KXY_SERVER_BIN") {
        return PathBuf::from(path);
    }
    workspace_binary("kxy-server")
}

/// A binary of this workspace built in the same profile as this test
/// executable: `target/<profile>/<name>`.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let binary = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} does not exist: build it first with `cargo build --workspace --bins` \
         (the README's test command does this)",
        binary.display()
    );
    binary
}

/// Runs a `kxy-server` CLI command to completion.
pub fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(binary())
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("run kxy-server")
}

/// A running `kxy-server`. Killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Child,
    base_url: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts the server with `args` (plus `--bind 127.0.0.1:0`) and waits
    /// until it logs the address it listens on.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
        Self::start_on("127.0.0.1:0", args, envs)
    }

    /// As [`Self::start`], on a given address (to restart on the same port).
    pub fn start_on(bind: &str, args: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
        let mut child = Command::new(binary())
            .args(["--bind", bind])
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kxy-server");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let sink = Arc::clone(&logs);
        // Keeps draining stderr for the process's life so it never blocks.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = address_tx.send(address);
                }
                sink.lock().unwrap().push(line);
            }
        });
        match address_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => ServerProcess {
                child,
                base_url: format!("http://{address}"),
                logs,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kxy-server did not start within 30 s; its log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        self.base_url.trim_start_matches("http://")
    }

    /// Everything the server has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// SIGKILL: the process gets no chance to flush or clean up.
    pub fn kill(mut self) {
        self.child.kill().expect("kill kxy-server");
        self.child.wait().expect("reap kxy-server");
    }

    /// SIGTERM, then waits for a clean exit; returns whether it exited 0.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "send SIGTERM");
        self.child.wait().expect("wait for kxy-server").success()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers counter `sys:db:<table>:id` at `start` with `counters add` on
/// the store that `store_args` select, and asserts that it succeeded.
pub fn register_counter(store_args: &[&str], table: &str, start: i64) {
    let start = start.to_string();
    let mut args = store_args.to_vec();
    args.extend([
        "counters", "add", "--system", "sys", "--db", "db", "--table", table, "--field", "id",
        "--start", &start,
    ]);
    let out = run_cli(&args, &[]);
    assert!(
        out.status.success(),
        "counters add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server on a fresh embedded store with counters `sys:db:<table>:id`
/// registered at 0; the directory lives as long as the returned guard.
pub fn embedded_with_counters(tables: &[&str]) -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    for table in tables {
        register_counter(&["--data-dir", &data_dir], table, 0);
    }
    let server = ServerProcess::start(&["--data-dir", &data_dir], &[]);
    (dir, server)
}

/// Runs `kxy-server` with `args`, expecting it to refuse to start: returns
/// its stderr once it exits non-zero; panics if it starts listening.
pub fn start_refused(args: &[&str]) -> String {
    let mut child = Command::new(binary())
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kxy-server");
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    loop {
        while let Ok(line) = lines.try_recv() {
            if line.contains("listening on") {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kxy-server started although it should refuse:\n{}",
                    log.join("\n")
                );
            }
            log.push(line);
        }
        if let Some(status) = child.try_wait().unwrap() {
            // The reader thread ends at EOF; collect what is left.
            while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
                log.push(line);
            }
            assert!(!status.success(), "exited 0:\n{}", log.join("\n"));
            return log.join("\n");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kxy-server neither started nor exited:\n{}", log.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
