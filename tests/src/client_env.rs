//! What the client fence tests need around the real server: a Redis-backed
//! server on a private `redis-server`, a raw write that rolls a counter
//! back, and a server that accepts connections but never answers.

use std::net::TcpListener;
use std::process::Command;

use crate::redis_env::PrivateRedis;
use crate::server::binary;

/// `--redis-durability unsafe` if this `kxy-server` has the flag (a private
/// test Redis runs without persistence, which a durability check would
/// refuse), else nothing.
pub fn redis_durability_args() -> Vec<&'static str> {
    let help = Command::new(binary())
        .arg("--help")
        .output()
        .expect("run kxy-server --help");
    if String::from_utf8_lossy(&help.stdout).contains("--redis-durability") {
        vec!["--redis-durability", "unsafe"]
    } else {
        Vec::new()
    }
}

/// The `kxy-server` arguments that select `redis` as the store, with the
/// default key prefix `kxy:id`.
pub fn redis_store_args(redis: &PrivateRedis) -> Vec<String> {
    let mut args = vec![
        "--store".to_owned(),
        "redis".to_owned(),
        "--redis-url".to_owned(),
        redis.url(),
    ];
    args.extend(redis_durability_args().into_iter().map(str::to_owned));
    args
}

/// Sets counter `sys:db:<table>:id` (default prefix) to `value` with a raw
/// Redis `SET`, as a restore from an older backup would.
pub fn roll_back_counter(redis: &PrivateRedis, table: &str, value: i64) {
    let client = redis::Client::open(redis.url()).expect("redis URL");
    let mut connection = client.get_connection().expect("connect to redis");
    let _: () = redis::cmd("SET")
        .arg(format!("kxy:id:segment:sys:db:{table}:id"))
        .arg(value)
        .query(&mut connection)
        .expect("SET the counter");
}

/// A TCP port that completes connections (the kernel's backlog accepts
/// them) but never answers a byte: a hung server. Held open while it lives.
pub struct SilentServer {
    listener: TcpListener,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        SilentServer {
            listener: TcpListener::bind("127.0.0.1:0").expect("bind a silent port"),
        }
    }

    pub fn base_url(&self) -> String {
        format!(
            "http://{}",
            self.listener.local_addr().expect("a bound address")
        )
    }
}
