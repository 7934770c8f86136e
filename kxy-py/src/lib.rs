//! kxy-py: the native module `kxy_open_id_client._native`.
//!
//! A thin pyo3 layer over `kxy-client`, in the manner of tiktoken: every
//! method converts arguments, calls Rust (releasing the GIL whenever it may
//! wait on the network) and maps errors to the exception classes defined in
//! `kxy_open_id_client.exceptions`. The public classes are Python subclasses
//! of these, in `kxy_open_id_client/client.py`.
//!
//! # Layout
//!
//! - [`errors`]: `ClientError` → the Python client's exception hierarchy.
//! - [`swap`]: a pointer that can be replaced in a forked child.
//! - [`client`]: `NativeSegmentClient`, one set of client settings.
//! - [`generator`]: `NativeIdGenerator`, the fast path of `IdGenerator`.
//! - [`pending`]: requests of the async API, as cancellable tasks.
//! - [`interruptible`]: blocking waits that Ctrl-C interrupts.

mod client;
mod errors;
mod generator;
mod interruptible;
mod pending;
mod swap;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add_class::<client::NativeSegmentClient>()?;
    module.add_class::<generator::NativeIdGenerator>()?;
    module.add_class::<pending::Pending>()?;
    module.add_function(wrap_pyfunction!(after_fork_in_child, module)?)?;
    Ok(())
}

/// Called in a forked child before anything else uses kxy: forgets the
/// background runtime inherited from the parent. The Python package then
/// rebuilds every live client and generator.
#[pyfunction]
fn after_fork_in_child() {
    kxy_client::fork::after_fork_in_child();
}
