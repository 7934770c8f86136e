//! kxy-server: hands out ID segments over HTTP, atomically and durably, from
//! an embedded file store or from Redis.
//!
//! # Layout
//!
//! - [`cli`]: the `kxy-server` command line: flags, environment variables and
//!   the `counters` subcommands.
//! - [`state`]: what handlers reach (`AppState`) and the server's `Settings`.
//! - [`app`]: the router, composed from the routes, and serving it.
//! - [`request_limits`]: request limits (body, timeouts, headers, connections) and
//!   `Cache-Control: no-store` on every answer.
//! - [`serving`]: accepting connections and serving HTTP on them within those
//!   limits.
//! - [`routes`]: one module per API area, thin handlers.
//! - [`segments`]: the allocation service, where the server's policy lives.
//! - [`counter_activity`]: per counter, the last allocation and IDs per
//!   minute (in memory, for the admin page).
//! - [`identity`]: users, roles, passwords, tokens, sessions, lockout.
//! - [`grants`]: endpoint grants and the access check other services call.
//! - [`keys`]: API keys: creation, limits, verification and its cache.
//! - [`credentials`]: users' upstream credentials, sealed by the [`vault`].
//! - [`limits`]: per-owner limits on credentials and grants.
//! - [`databases`]: registered databases, initialization and the scanner.
//! - [`store`]: the [`store::Store`] trait and its embedded and Redis backends.
//! - [`store_guard`]: whether the store may be trusted right now: durability
//!   checks, Redis restarts, fencing counters that went backwards.
//! - [`high_water`]: per counter, the highest ID this instance handed out.
//! - [`witness`]: those marks on disk, for a restarted instance.
//! - [`envelope`]: the `{code, msg, data, traceId}` response shape and trace ids.
//! - [`extract`]: request extractors that answer bad input in that envelope.
//! - [`error`]: the crate's one error type and its HTTP mapping.
//! - [`openapi`]: the OpenAPI 3.1 description of every route, from the
//!   handlers' annotations and the inventory.
//! - [`web`]: the admin page, the API docs and the API description, embedded
//!   in the binary, and the security headers of every answer.

pub mod app;
pub mod cli;
pub mod counter_activity;
pub mod credentials;
pub mod databases;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod grants;
pub mod high_water;
pub mod identity;
pub mod keys;
pub mod limits;
pub mod openapi;
pub mod request_limits;
pub mod routes;
pub mod segments;
pub mod serving;
pub mod state;
pub mod store;
pub mod store_guard;
pub mod vault;
pub mod web;
pub mod witness;

pub use error::Error;
