//! kxy-py: the native module behind the Python package `kxy_open_id_client`.
//!
//! A thin pyo3 layer over `kxy-client`: no logic lives here. The generator
//! and client bindings arrive with the client issue (#3); the module exists
//! now so the workspace builds as laid out in the design.

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
