//! The background runtime that runs kxy-client's requests for blocking
//! callers and generators' prefetches.
//!
//! One small multi-threaded tokio runtime per process, created on first use.
//! It lives behind an `AtomicPtr` rather than a lock so that
//! [`crate::fork::after_fork_in_child`] can replace it without touching any
//! lock a vanished parent thread might have held: a forked child inherits the
//! runtime's memory but none of its threads. The old runtime is leaked, not
//! dropped, because dropping would wait for threads that do not exist.

use std::future::Future;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use tokio::runtime::{Handle, Runtime};

use crate::ClientError;

static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(ptr::null_mut());

/// A handle to the background runtime, starting it if needed.
pub fn handle() -> Handle {
    let current = RUNTIME.load(Ordering::Acquire);
    if !current.is_null() {
        // SAFETY: a runtime stored here is never freed (see the module docs).
        return unsafe { &*current }.handle().clone();
    }
    let fresh = Box::into_raw(Box::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kxy-client")
            .enable_all()
            .build()
            .expect("start kxy-client's background runtime"),
    ));
    match RUNTIME.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: as above; `fresh` is now owned by the static.
        Ok(_) => unsafe { &*fresh }.handle().clone(),
        Err(winner) => {
            // Another thread installed one first; ours was never shared.
            // SAFETY: `fresh` came from Box::into_raw above and is unused.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: as above.
            unsafe { &*winner }.handle().clone()
        }
    }
}

/// Runs `future` on the background runtime and waits for it.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, ClientError> {
    if Handle::try_current().is_ok() {
        return Err(ClientError::InvalidArgument(
            "a blocking kxy-client call was made from async code; use the async API there".into(),
        ));
    }
    Ok(handle().block_on(future))
}

/// Forgets the current runtime (see the module docs); the next use starts a
/// new one.
pub(crate) fn forget_after_fork() {
    RUNTIME.store(ptr::null_mut(), Ordering::Release);
}
