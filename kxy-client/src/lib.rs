//! kxy-client: the Rust client of kxy.
//!
//! It will hold `SegmentClient` (HTTP allocation against one or more servers)
//! and `IdGenerator` (a double-buffered local cache of segments that hands
//! out IDs without touching the network). Those arrive with the client issue
//! (#3); until then this crate re-exports the shared types so dependants can
//! name them.

pub use kxy_core::{Segment, SegmentKey};
