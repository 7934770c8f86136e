//! What the client fence tests need around the real server: a raw write
//! that rolls a counter back in a private `redis-server`, and a server that
//! accepts connections but never answers.

use std::net::TcpListener;

use crate::redis_env::PrivateRedis;

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
