//! The background runtime that runs kxy-client's requests for blocking
//! callers and generators' prefetches.
//!
//! One small multi-threaded tokio runtime per process, created on first use.
//! It is per-process state (see [`crate::fork`]): a forked child inherits
//! the runtime's memory but none of its threads, so the first use in a
//! child starts a new runtime without touching any lock a vanished parent
//! thread might have held. The old runtime is leaked, not dropped, because
//! dropping would wait for threads that do not exist.

use std::future::Future;

use tokio::runtime::{Handle, Runtime};

use crate::ClientError;
use crate::fork::PerProcess;

static RUNTIME: PerProcess<Runtime> = PerProcess::empty();

/// A handle to the background runtime, starting it if needed.
pub fn handle() -> Handle {
    RUNTIME
        .get(|_inherited| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("kxy-client")
                .enable_all()
                .build()
                .expect("start kxy-client's background runtime")
        })
        .handle()
        .clone()
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
