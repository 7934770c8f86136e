//! Continuity: the words the store and the guard use to agree that the
//! store's data history has not changed under the instances.
//!
//! A store that lost acknowledged allocations hands the same ranges out
//! again. Each instance remembers what *it* handed out, so after a change of
//! the store's history (its *epoch*) no instance may serve until every
//! running instance has applied its marks to the store. The store keeps the
//! shared part (the open epoch, a registry of instances' heartbeats, when an
//! epoch was first seen); [`crate::store_guard`] runs the protocol. The whole
//! of it, and why it is complete, is in `docs/continuity.md`.

use std::time::Duration;

/// What one heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The store's epoch now (Redis: the node's `master_replid`).
    pub epoch: String,
    /// The epoch allocation is open under, if any.
    pub open: Option<String>,
    /// When an instance first saw `epoch` while it was not open, in the
    /// store's milliseconds.
    pub first_seen_ms: Option<u64>,
    /// The store's clock, in milliseconds.
    pub now_ms: u64,
    /// The store no longer holds this instance's previous heartbeat: it went
    /// back in time (a backup restored into it, a reload, a crash that lost
    /// writes), whatever its epoch says. The heartbeat has closed the open
    /// epoch, so every instance compares its marks again.
    pub lost_heartbeat: bool,
}

/// A heartbeat's place in this instance's sequence of heartbeats.
#[derive(Debug, Clone, Copy)]
pub struct Beat<'a> {
    /// The numbers the previous heartbeat in the store may carry (several
    /// when heartbeats failed without an answer); empty when unknown.
    pub previous: &'a [u64],
    /// This heartbeat's number.
    pub this: u64,
}

impl Observation {
    /// Whether allocation is open under the store's current epoch.
    pub fn is_open(&self) -> bool {
        self.open.as_deref() == Some(self.epoch.as_str())
    }
}

/// The settle rule's times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settling {
    /// How long after an epoch was first seen it may be opened: longer than
    /// any running instance takes to heartbeat under it.
    pub period: Duration,
    /// A registry entry with a heartbeat this recent is a running instance
    /// whose verification the settle waits for.
    pub lease: Duration,
}

impl Settling {
    /// The times for a check interval: three intervals, at least 3 s (a
    /// heartbeat's round trip may take up to the store's 2 s timeout).
    pub fn for_interval(interval: Duration) -> Settling {
        let period = (interval * 3).max(Duration::from_secs(3));
        Settling {
            period,
            lease: period,
        }
    }
}

/// What the settle step decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Allocation is open under the epoch.
    Open,
    /// Not yet: the reason, for `/health` and the refusal's message.
    Wait(String),
    /// The store's epoch is not the one asked about any more.
    Moved,
}
