//! Records and marks: what the server stores besides counters.
//!
//! Users, roles, grants, refresh-token families and settings are *records*:
//! a JSON document per (collection, id), with a version that every write
//! increments. A write may require the current version (compare-and-set),
//! which is how concurrent updates from several instances are detected
//! instead of lost (a refresh token used twice, a username taken twice).
//!
//! *Marks* are small expiring counters: failed logins within a window, an
//! account lock, a revoked token id. They expire by themselves, so the store
//! never fills with stale entries.

use std::time::Duration;

/// A stored JSON document and its version (1 after the first write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: String,
    pub version: u64,
}

/// The condition a record write requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// Write only if there is no record yet (unique creation).
    Absent,
    /// Write only if the record is at this version (compare-and-set).
    Version(u64),
}

impl Expect {
    /// Whether a record at `current` (None: absent) satisfies this condition.
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }
}

/// A mark's count and how long until it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub count: u64,
    pub expires_in: Duration,
}

/// The separator of collection and id in flat keys; refused inside either.
pub(crate) const KEY_SEPARATOR: char = '\u{1f}';

/// Collection and id names are chosen by the server, never by a caller, but
/// they are checked anyway: a separator inside one would let two records
/// share a key.
pub(crate) fn check_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && !name.contains(KEY_SEPARATOR) && !name.contains('\0')
}
