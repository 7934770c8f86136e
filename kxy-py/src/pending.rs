//! `Pending`: a request running on kxy-client's runtime for async Python.
//!
//! The async API does not borrow a thread from the event loop's executor
//! (a stalled server would block every `run_in_executor` user behind it)
//! and works under any event loop: the request runs as a task on
//! kxy-client's own runtime, and when it ends the task calls a Python
//! callback, which hands the outcome to the waiting coroutine in the
//! loop's own thread-safe way (`call_soon_threadsafe` for asyncio, a trio
//! token for trio; see `kxy_open_id_client/_aio.py`). Cancelling the
//! coroutine calls [`Pending::cancel`], which aborts the task: a request in
//! flight is dropped and its connection closed.

use std::future::Future;

use kxy_client::{ClientError, runtime};
use pyo3::prelude::*;
use tokio::task::AbortHandle;

use crate::errors::to_py;

#[pyclass(module = "kxy_open_id_client._native", frozen)]
pub struct Pending {
    task: AbortHandle,
}

#[pymethods]
impl Pending {
    /// Stops the request; the callback is not called.
    fn cancel(&self) {
        self.task.abort();
    }
}

/// Runs `future` on the runtime; when it ends, calls `done(True, value)` or
/// `done(False, exception)` with the GIL held. An exception raised by
/// `done` (the loop closed meanwhile) is reported as unraisable.
pub fn spawn<T, F, C>(future: F, convert: C, done: Py<PyAny>) -> Pending
where
    T: Send + 'static,
    F: Future<Output = Result<T, ClientError>> + Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let task = runtime::handle().spawn(async move {
        let result = future.await;
        Python::attach(|py| {
            let outcome = match result {
                Ok(value) => convert(py, value).map(|value| (true, value)),
                Err(error) => Ok((false, to_py(py, error).into_value(py).into_any())),
            };
            if let Err(error) = outcome.and_then(|args| done.call1(py, args)) {
                error.write_unraisable(py, None);
            }
        });
    });
    Pending {
        task: task.abort_handle(),
    }
}
