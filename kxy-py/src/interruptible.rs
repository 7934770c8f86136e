//! Blocking waits that Ctrl-C interrupts.
//!
//! A call that waits for the network (an empty cache, a direct
//! `allocate_segment`) releases the GIL. Python runs signal handlers only
//! between bytecodes of the main thread, so a wait inside Rust would not
//! notice Ctrl-C until it ended: up to `timeout`, or for ever with
//! `timeout=None`. The published client (httpx, pure Python) was
//! interrupted at once. So the work runs elsewhere (a task on kxy-client's
//! runtime, or a thread of its own), and the caller waits for its answer in
//! slices of 50 ms, checking for signals between them; an interrupted wait
//! aborts the task and raises `KeyboardInterrupt` (or whatever the handler
//! raised).

use std::future::Future;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::Duration;

use kxy_client::{ClientError, runtime};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

const SLICE: Duration = Duration::from_millis(50);

/// Runs `future` on the runtime and waits for it; a signal aborts it.
pub fn on_runtime<T, F>(py: Python<'_>, future: F) -> PyResult<Result<T, ClientError>>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ClientError>> + Send + 'static,
{
    let (answer, answered) = sync_channel(1);
    let task = runtime::handle().spawn(async move {
        let _ = answer.send(future.await);
    });
    wait(py, answered, || task.abort())
}

/// Runs `work` (which may block) on a thread of its own and waits for it; a
/// signal stops the wait, and the thread's answer is dropped.
pub fn on_thread<T, W>(py: Python<'_>, work: W) -> PyResult<Result<T, ClientError>>
where
    T: Send + 'static,
    W: FnOnce() -> Result<T, ClientError> + Send + 'static,
{
    let (answer, answered) = sync_channel(1);
    std::thread::Builder::new()
        .name("kxy-wait".into())
        .spawn(move || {
            let _ = answer.send(work());
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
    wait(py, answered, || {})
}

fn wait<T: Send>(py: Python<'_>, mut answered: Receiver<T>, abort: impl FnOnce()) -> PyResult<T> {
    loop {
        // The receiver moves into the GIL-free closure and back: it is Send,
        // a reference to it is not.
        let (back, outcome) = py.detach(move || {
            let outcome = answered.recv_timeout(SLICE);
            (answered, outcome)
        });
        answered = back;
        match outcome {
            Ok(value) => return Ok(value),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(interrupted) = py.check_signals() {
                    abort();
                    return Err(interrupted);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err(
                    "the request ended without an answer",
                ));
            }
        }
    }
}
