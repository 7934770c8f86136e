//! Forked processes: a child must never hand out its parent's cached IDs.
//!
//! After `fork`, parent and child hold copies of the same buffered segments;
//! if both used them, IDs would repeat. A child also inherits the background
//! runtime's memory without its threads, and HTTP connections shared with
//! the parent. So a child that wants IDs must start over:
//!
//! 1. call [`after_fork_in_child`] (the Python package does this from an
//!    `os.register_at_fork` hook);
//! 2. replace every generator with [`crate::IdGenerator::rebuilt`] and every
//!    client with [`crate::SegmentClient::rebuilt`], and `std::mem::forget`
//!    the old ones: dropping them could wait on locks or threads of the
//!    parent that do not exist in the child.

/// Forgets the background runtime inherited from the parent, so the next
/// request starts a fresh one in this process.
pub fn after_fork_in_child() {
    crate::runtime::forget_after_fork();
}
