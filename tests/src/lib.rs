//! Harness for kxy's end-to-end tests: real processes, real stores.
//!
//! The tests start the `kxy-server` binary the way a user does, talk to it
//! over HTTP and kill it when a test calls for a crash. Redis tests use the
//! machine's Redis (each under its own key prefix, removed afterwards) or,
//! when they stop and restart Redis, a `redis-server` of their own on a free
//! port, so no test disturbs the shared one.
//!
//! # Layout
//!
//! - [`server`]: finding, starting and stopping `kxy-server`, and running its CLI.
//! - [`redis_env`]: the shared Redis (or a clear skip/failure when absent),
//!   private `redis-server` processes, and unique key prefixes.
//! - [`sql_env`]: throwaway MariaDB and PostgreSQL databases.
//! - [`client_env`]: a counter rolled back behind the server's back, and a
//!   server that never answers, for the client fence tests.
//! - [`api`]: a small HTTP helper for the allocation endpoint and envelope.
//! - [`deploy`]: a deployment (embedded, or two servers on Redis) and the
//!   calls identity tests make.
//! - [`faults`]: `redis-server` processes to kill, stall, restore and
//!   replicate, a proxy that partitions, and the ledger that checks that
//!   no ID was handed out twice.

pub mod api;
pub mod client_env;
pub mod deploy;
pub mod faults;
pub mod redis_env;
pub mod server;
pub mod sql_env;
