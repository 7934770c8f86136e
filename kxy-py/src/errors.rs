//! Rust errors as the Python client's exceptions.
//!
//! The hierarchy is the one `kxy-open-id-client` users catch today:
//! `OpenIdAPIError(code, msg, trace_id)` for a refusal by the server,
//! `OpenIdTimeoutError` and `OpenIdConnectionError` for the network, all
//! under `OpenIdClientError`. A segment the client discarded (its store went
//! backwards, or it is not the store the counter is pinned to) is
//! `OpenIdStoreError`, a subclass of `OpenIdConnectionError`: like an
//! outage, no trustworthy server gave IDs, and a later attempt may succeed,
//! so code that handles outages already handles it; it is not an
//! `OpenIdAPIError`, because the server did not refuse anything.
//!
//! Where the published client raised `OpenIdConnectionError` for what the
//! server refused (its HTTP errors) or for bad names (the server's 400), the
//! classes raised here keep such `except` clauses working: `OpenIdAPIError`
//! is an `OpenIdConnectionError`, and invalid arguments raise
//! `OpenIdInvalidArgumentError`, both a `ValueError` and an
//! `OpenIdConnectionError`. The classes live in Python
//! (`kxy_open_id_client.exceptions`), so users can subclass and pickle them.

use kxy_client::ClientError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Bad input: `OpenIdInvalidArgumentError` (a `ValueError` too).
pub fn invalid_argument(msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| {
        let made = py
            .import("kxy_open_id_client.exceptions")
            .and_then(|module| module.getattr("OpenIdInvalidArgumentError"))
            .and_then(|class| class.call1((msg.clone(),)));
        match made {
            Ok(instance) => PyErr::from_value(instance),
            Err(_) => PyValueError::new_err(msg),
        }
    })
}

pub fn to_py(py: Python<'_>, error: ClientError) -> PyErr {
    if let ClientError::InvalidArgument(msg) = &error {
        return invalid_argument(msg.clone());
    }
    let exceptions = match py.import("kxy_open_id_client.exceptions") {
        Ok(module) => module,
        Err(e) => return e,
    };
    let raise = |class: &str, args: Bound<'_, pyo3::types::PyTuple>| -> PyErr {
        match exceptions.getattr(class).and_then(|c| c.call1(args)) {
            Ok(instance) => PyErr::from_value(instance),
            Err(e) => e,
        }
    };
    let message = error.to_string();
    match error.root() {
        ClientError::Api {
            code,
            msg,
            trace_id,
            ..
        } => match (code, msg.as_str(), trace_id.clone()).into_pyobject(py) {
            Ok(args) => raise("OpenIdAPIError", args),
            Err(e) => e,
        },
        ClientError::WentBackwards { url, .. } => {
            match (message, "went_backwards", url.as_str()).into_pyobject(py) {
                Ok(args) => raise("OpenIdStoreError", args),
                Err(e) => e,
            }
        }
        ClientError::StoreMismatch { url, .. } => {
            match (message, "store_mismatch", url.as_str()).into_pyobject(py) {
                Ok(args) => raise("OpenIdStoreError", args),
                Err(e) => e,
            }
        }
        ClientError::Timeout { .. } => match (message,).into_pyobject(py) {
            Ok(args) => raise("OpenIdTimeoutError", args),
            Err(e) => e,
        },
        _ => match (message,).into_pyobject(py) {
            Ok(args) => raise("OpenIdConnectionError", args),
            Err(e) => e,
        },
    }
}
