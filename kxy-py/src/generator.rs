//! `NativeIdGenerator`: the fast path of the public `IdGenerator`.
//!
//! The public class is a Python subclass; `next_id` is this native method,
//! a lock-free step in the cached segment. The object is built empty by
//! `__new__` (whatever the arguments, so subclasses may have their own
//! `__init__`) and set up by `_configure`, which the Python `__init__`
//! calls for the stock `SegmentClient`. For any other client (a fake, a
//! mock, a subclass overriding `allocate_segment`) the generator takes the
//! Python path: `next_id` and friends call the Python methods
//! `_next_id_python`..., which call the client's own `allocate_segment` as
//! the published client did. The Python layer switches paths when a patch
//! comes or goes (`_set_python_path`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use kxy_client::{ClientError, GeneratorConfig, IdGenerator, SegmentKey};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyRange, PyTuple};

use crate::client::{NativeSegmentClient, invalid, seconds};
use crate::errors::{invalid_argument, to_py};
use crate::interruptible;
use crate::pending::spawn;
use crate::swap::Swap;

/// Segment sizes and patience from the Python arguments: a fixed size
/// unless `adaptive`; one round per call unless a `max_wait` is given.
fn generator_config(
    segment_count: i64,
    adaptive: bool,
    max_segment_count: Option<i64>,
    max_wait: Option<f64>,
) -> PyResult<GeneratorConfig> {
    let max = if adaptive {
        max_segment_count.unwrap_or(segment_count.max(GeneratorConfig::DEFAULT_MAX_SIZE))
    } else {
        segment_count
    };
    let config =
        GeneratorConfig::with_bounds(segment_count, segment_count, max).map_err(invalid)?;
    match max_wait {
        Some(max_wait) => config
            .with_max_wait(seconds("max_wait", max_wait)?)
            .map_err(invalid),
        None => Ok(config.one_round()),
    }
}

/// `range(start, end + 1)`. The stop is one past the last ID, which for a
/// run ending at `i64::MAX` does not fit an `isize`: such a run is built
/// from Python ints.
fn range(py: Python<'_>, start: i64, end: i64) -> PyResult<Bound<'_, PyAny>> {
    if let (Ok(start), Some(stop)) = (
        isize::try_from(start),
        isize::try_from(end).ok().and_then(|e| e.checked_add(1)),
    ) {
        return Ok(PyRange::new(py, start, stop)?.into_any());
    }
    let stop = end.into_pyobject(py)?.add(1)?;
    py.get_type::<PyRange>().call1((start, stop))
}

#[pyclass(module = "kxy_open_id_client._native", frozen, subclass, weakref)]
pub struct NativeIdGenerator {
    /// Set once by `_configure`; replaced in a forked child.
    ids: OnceLock<Swap<IdGenerator>>,
    /// Whether calls go to the Python methods (a client that is not the
    /// stock one).
    python_path: AtomicBool,
}

impl NativeIdGenerator {
    /// The native generator, if this object was configured for it and is
    /// not on the Python path.
    #[inline]
    fn native(&self) -> Option<&IdGenerator> {
        if self.python_path.load(Ordering::Relaxed) {
            return None;
        }
        self.ids.get().map(Swap::get)
    }
}

#[pymethods]
impl NativeIdGenerator {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        NativeIdGenerator {
            ids: OnceLock::new(),
            python_path: AtomicBool::new(true),
        }
    }

    /// Sets up the native path with `client`; once per object.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        client, system_code, db_name, table_name, field_name, segment_count, adaptive,
        max_segment_count, max_wait
    ))]
    fn _configure(
        &self,
        client: PyRef<'_, NativeSegmentClient>,
        system_code: &str,
        db_name: &str,
        table_name: &str,
        field_name: &str,
        segment_count: i64,
        adaptive: bool,
        max_segment_count: Option<i64>,
        max_wait: Option<f64>,
    ) -> PyResult<()> {
        let key = SegmentKey::new(system_code, db_name, table_name, field_name)
            .map_err(|e| invalid_argument(e.to_string()))?;
        let config = generator_config(segment_count, adaptive, max_segment_count, max_wait)?;
        let ids = IdGenerator::new(client.client.get().as_async().clone(), key, config);
        self.ids
            .set(Swap::new(ids))
            .map_err(|_| PyRuntimeError::new_err("this IdGenerator is already configured"))
    }

    /// Whether the native path was set up.
    #[getter]
    fn _configured(&self) -> bool {
        self.ids.get().is_some()
    }

    /// Whether calls go to the Python methods.
    #[getter]
    fn _python_path(&self) -> bool {
        self.python_path.load(Ordering::Relaxed)
    }

    fn _set_python_path(&self, on: bool) {
        self.python_path.store(on, Ordering::Relaxed);
    }

    /// The client of the next fetches (its settings changed).
    fn _use_client(&self, client: PyRef<'_, NativeSegmentClient>) {
        if let Some(ids) = self.ids.get() {
            ids.get().set_client(client.client.get().as_async().clone());
        }
    }

    /// New segment sizes (`segment_count` was assigned).
    fn _resize(
        &self,
        segment_count: i64,
        adaptive: bool,
        max_segment_count: Option<i64>,
        max_wait: Option<f64>,
    ) -> PyResult<()> {
        let config = generator_config(segment_count, adaptive, max_segment_count, max_wait)?;
        if let Some(ids) = self.ids.get() {
            ids.get().reconfigure(config);
        }
        Ok(())
    }

    /// The next ID. Lock-free while the cache holds IDs; otherwise waits
    /// (GIL released) for the fetch in flight.
    fn next_id(slf: &Bound<'_, Self>) -> PyResult<i64> {
        let Some(ids) = slf.get().native() else {
            return slf.call_method0("_next_id_python")?.extract();
        };
        if let Some(id) = ids.try_next_id() {
            return Ok(id);
        }
        // The slow path: wait for the fetch in flight, interruptibly.
        let py = slf.py();
        let ids = ids.clone();
        interruptible::on_runtime(py, async move { ids.next_id_async().await })?
            .map_err(|e| to_py(py, e))
    }

    /// The next ID if one is cached, else `None`; never waits.
    fn try_next_id(slf: &Bound<'_, Self>) -> PyResult<Option<i64>> {
        match slf.get().native() {
            Some(ids) => Ok(ids.try_next_id()),
            None => slf.call_method0("_try_next_id_python")?.extract(),
        }
    }

    /// `n` consecutive IDs as a `range`.
    fn next_ids<'py>(slf: &Bound<'py, Self>, n: i64) -> PyResult<Bound<'py, PyAny>> {
        let Some(ids) = slf.get().native() else {
            return slf.call_method1("_next_ids_python", (n,));
        };
        let py = slf.py();
        if let Some(first) = ids.try_next_ids(n) {
            return range(py, first.start, first.end);
        }
        let ids = ids.clone();
        let run =
            interruptible::on_thread(py, move || ids.next_ids(n))?.map_err(|e| to_py(py, e))?;
        range(py, run.start, run.end)
    }

    /// For `AsyncIdGenerator`: a cached ID at once, else a `Pending` task
    /// that calls `done(ok, value)` with the ID or the exception.
    fn _next_id_async(&self, py: Python<'_>, done: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let ids = self
            .native()
            .ok_or_else(|| PyRuntimeError::new_err("not on the native path"))?;
        if let Some(id) = ids.try_next_id() {
            return Ok(id.into_pyobject(py)?.into_any().unbind());
        }
        let ids = ids.clone();
        let pending = spawn(
            async move { ids.next_id_async().await },
            |py, id| Ok(id.into_pyobject(py)?.into_any().unbind()),
            done,
        );
        Ok(Bound::new(py, pending)?.into_any().unbind())
    }

    /// For `AsyncIdGenerator.next_ids`: a `Pending` task that calls
    /// `done(ok, value)` with `(start, end)` or the exception. The take may
    /// wait for a fetch (or, for a run longer than a segment, ask the
    /// server with a blocking call, which a runtime thread may not make), so
    /// it runs on a thread of its own, never in the event loop's executor.
    fn _next_ids_async(&self, py: Python<'_>, n: i64, done: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let ids = self
            .native()
            .ok_or_else(|| PyRuntimeError::new_err("not on the native path"))?
            .clone();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("kxy-next-ids".into())
            .spawn(move || sender.send(ids.next_ids(n)))
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
        let take = async move {
            receiver.await.unwrap_or_else(|_| {
                Err(ClientError::InvalidArgument(format!(
                    "next_ids({n}) failed: its thread ended without an answer"
                )))
            })
        };
        let pending = spawn(
            take,
            |py, run| Ok((run.start, run.end).into_pyobject(py)?.into_any().unbind()),
            done,
        );
        Ok(Bound::new(py, pending)?.into_any().unbind())
    }

    /// IDs cached right now: the rest of the current segment plus the
    /// prefetched one.
    #[getter]
    fn buffered(&self) -> u64 {
        self.ids.get().map_or(0, |ids| ids.get().buffered())
    }

    /// Segments this generator's requests discarded, never handing out
    /// their IDs (see `kxy_client::fence`).
    #[getter]
    fn discarded_segments(&self) -> u64 {
        self.ids.get().map_or(0, |ids| ids.get().discarded())
    }

    /// The size the next segment request will ask for.
    #[getter]
    fn next_segment_count(&self) -> Option<i64> {
        self.ids.get().map(|ids| ids.get().next_request_size())
    }

    /// In a forked child: a fresh cache and client, so the child never
    /// hands out the IDs its parent holds.
    fn _reset_after_fork(&self) -> PyResult<()> {
        if let Some(ids) = self.ids.get() {
            let fresh = ids.get().rebuilt().map_err(invalid)?;
            ids.replace_leaking(fresh);
        }
        Ok(())
    }
}
