//! kxy-client: IDs from a kxy server, handed out in-process at memory speed.
//!
//! Asking a server for every ID costs a network round trip each. Instead, a
//! generator takes *segments* (ranges of IDs that belong to it alone) and
//! hands out their IDs with one atomic add, fetching the next segment in the
//! background before the current one runs out.
//!
//! ```no_run
//! use kxy_client::{ClientConfig, GeneratorConfig, IdGenerator, SegmentClient, SegmentKey};
//!
//! let client = SegmentClient::new(ClientConfig::new(["http://127.0.0.1:5801"])?)?;
//! let key = SegmentKey::new("my-system", "my_database", "users", "id").unwrap();
//! let ids = IdGenerator::new(client, key, GeneratorConfig::new(10_000)?);
//! let id = ids.next_id()?;
//! # Ok::<(), kxy_client::ClientError>(())
//! ```
//!
//! # Layout
//!
//! - [`config`]: [`ClientConfig`], base URLs, timeouts, headers, API key.
//! - [`client`]: [`SegmentClient`] (async) and [`BlockingSegmentClient`]:
//!   one allocation per call, with failover across base URLs.
//! - [`fence`]: the segments a client refuses (a store that went backwards,
//!   a store other than the pinned one), so no ID is handed out twice.
//! - [`generator`]: [`IdGenerator`], the double-buffered, adaptive,
//!   lock-free cache of segments; [`GeneratorConfig`].
//! - [`factory`]: [`IdGeneratorFactory`], one generator per table.
//! - [`runtime`]: the background runtime for blocking calls and prefetches.
//! - [`fork`]: fork generations: a forked child starts over by itself.
//! - [`error`]: [`ClientError`], what can go wrong.

pub mod client;
pub mod config;
pub mod error;
pub mod factory;
pub mod fence;
pub mod fork;
pub mod generator;
pub mod runtime;

pub use client::{BlockingSegmentClient, SegmentClient};
pub use config::ClientConfig;
pub use error::ClientError;
pub use factory::IdGeneratorFactory;
pub use generator::{GeneratorConfig, IdGenerator, Patience};
pub use kxy_core::{Segment, SegmentKey};
