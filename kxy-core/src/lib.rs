//! kxy-core: the rules of kxy that do not depend on where data lives or how
//! requests arrive. Nothing in this crate performs I/O, so every rule here is
//! testable in isolation and shared verbatim by the server and the clients.
//!
//! # Layout
//!
//! - [`key`]: [`SegmentKey`], the validated identity of a counter
//!   (system, database, table, field) and its injective storage name.
//! - [`segment`]: [`Segment`], an inclusive ID range, and the checked `i64`
//!   arithmetic that carves segments out of a counter.
//! - [`request`]: [`SegmentCount`] and [`AllocationLimits`], validation of how
//!   many IDs one allocation may ask for.
//! - [`step`]: [`StepPolicy`], how a client sizes the segments it asks for.
//! - [`mask`]: the masking rule that shows a secret without revealing it.
//! - [`apikey`]: API key generation, checksum, hashing and display.
//! - [`password`]: the minimum password policy.
//! - [`permission`]: `resource:action` permissions and their wildcards.
//! - [`access`]: endpoint grants and the compiled [`access::Policy`] that
//!   decides "may this user call this endpoint?".

pub mod access;
pub mod apikey;
pub mod key;
pub mod mask;
pub mod password;
pub mod permission;
pub mod request;
pub mod segment;
pub mod step;

pub use key::{
    ALLOWED_CHARACTERS, Identifier, IdentifierError, KeyPart, MAX_IDENTIFIER_LEN, SegmentKey,
};
pub use mask::{mask_password, mask_secret};
pub use request::{
    AllocationLimits, InvalidStart, MAX_COUNTER_START, SegmentCount, SegmentCountError,
    counter_start,
};
pub use segment::{Exhausted, Segment};
pub use step::{StepPolicy, StepPolicyError};
