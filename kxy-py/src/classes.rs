//! The native classes the Python package builds on.
//!
//! `NativeSegmentClient` and `NativeIdGenerator` are frozen (no per-call
//! borrow flags, which a fork could leave set) and subclassable: the public
//! `SegmentClient` and `IdGenerator` are Python subclasses that add the
//! original client's attributes and docstrings while `next_id` stays this
//! native method.

use std::collections::HashMap;
use std::time::Duration;

use kxy_client::{
    BlockingSegmentClient, ClientConfig, ClientError, GeneratorConfig, IdGenerator, SegmentKey,
};
use pyo3::prelude::*;
use pyo3::types::PyRange;

use crate::errors::to_py;
use crate::swap::Swap;

/// One base URL or several, tried in order on failure.
#[derive(FromPyObject)]
enum BaseUrls {
    One(String),
    Many(Vec<String>),
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            crate::errors::invalid_argument(format!(
                "{name} must be a positive number of seconds; got {value}"
            ))
        })
}

/// What `timeout=None` means: wait as long as it takes.
const NO_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

fn invalid(e: ClientError) -> PyErr {
    crate::errors::invalid_argument(e.to_string())
}

#[pyclass(module = "kxy_open_id_client._native", frozen, subclass, weakref)]
pub struct NativeSegmentClient {
    client: Swap<BlockingSegmentClient>,
}

#[pymethods]
impl NativeSegmentClient {
    #[new]
    #[pyo3(signature = (
        base_url, timeout = 30.0, verify_ssl = true, headers = None, *, api_key = None,
        connect_timeout = 1.0
    ))]
    fn new(
        base_url: BaseUrls,
        timeout: Option<f64>,
        verify_ssl: bool,
        headers: Option<HashMap<String, String>>,
        api_key: Option<String>,
        connect_timeout: f64,
    ) -> PyResult<Self> {
        let urls = match base_url {
            BaseUrls::One(url) => vec![url],
            BaseUrls::Many(urls) => urls,
        };
        // `None` is no timeout, as in the published client (httpx): a day
        // stands for it, which no timer overflows on.
        let timeout = match timeout {
            Some(timeout) => seconds("timeout", timeout)?,
            None => NO_TIMEOUT,
        };
        let connect_timeout = seconds("connect_timeout", connect_timeout)?;
        let mut config = ClientConfig::new(urls)
            .and_then(|c| c.timeout(timeout))
            .and_then(|c| c.connect_timeout(connect_timeout))
            .map_err(invalid)?
            .verify_tls(verify_ssl);
        for (name, value) in headers.unwrap_or_default() {
            config = config.header(&name, &value).map_err(invalid)?;
        }
        if let Some(key) = api_key {
            config = config.api_key(&key).map_err(invalid)?;
        }
        let client = BlockingSegmentClient::new(config).map_err(invalid)?;
        Ok(NativeSegmentClient {
            client: Swap::new(client),
        })
    }

    /// Allocates one segment; returns `(start, end)`, both inclusive.
    fn _allocate(
        &self,
        py: Python<'_>,
        system_code: &str,
        db_name: &str,
        table_name: &str,
        field_name: &str,
        segment_count: i64,
    ) -> PyResult<(i64, i64)> {
        let client = self.client.get();
        py.detach(|| {
            client.allocate_segment(system_code, db_name, table_name, field_name, segment_count)
        })
        .map(|s| (s.start, s.end))
        .map_err(|e| to_py(py, e))
    }

    /// The base URLs, in the order they are tried.
    #[getter]
    fn base_urls(&self) -> Vec<String> {
        self.client.get().as_async().config().base_urls().to_vec()
    }

    /// Segments this client discarded: from another store than the one a
    /// counter is pinned to, or not above what this process had received.
    #[getter]
    fn discarded_segments(&self) -> u64 {
        self.client.get().as_async().discarded()
    }

    /// In a forked child: a fresh client with the same settings.
    fn _reset_after_fork(&self) -> PyResult<()> {
        let fresh = self.client.get().as_async().rebuilt().map_err(invalid)?;
        self.client
            .replace_leaking(BlockingSegmentClient::from(fresh));
        Ok(())
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
    ids: Swap<IdGenerator>,
}

#[pymethods]
impl NativeIdGenerator {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        segment_client, system_code, db_name, table_name, field_name, segment_count = 10000,
        *, max_segment_count = None, max_wait = 5.0
    ))]
    fn new(
        segment_client: PyRef<'_, NativeSegmentClient>,
        system_code: &str,
        db_name: &str,
        table_name: &str,
        field_name: &str,
        segment_count: i64,
        max_segment_count: Option<i64>,
        max_wait: f64,
    ) -> PyResult<Self> {
        let key = SegmentKey::new(system_code, db_name, table_name, field_name)
            .map_err(|e| crate::errors::invalid_argument(e.to_string()))?;
        let max = max_segment_count.unwrap_or(segment_count.max(GeneratorConfig::DEFAULT_MAX_SIZE));
        let max_wait = seconds("max_wait", max_wait)?;
        let config = GeneratorConfig::with_bounds(segment_count, segment_count, max)
            .and_then(|c| c.with_max_wait(max_wait))
            .map_err(invalid)?;
        let client = segment_client.client.get().as_async().clone();
        Ok(NativeIdGenerator {
            ids: Swap::new(IdGenerator::new(client, key, config)),
        })
    }

    /// The next ID. Lock-free while the cache holds IDs; otherwise waits
    /// (GIL released) at most `max_wait` seconds for a segment.
    fn next_id(&self, py: Python<'_>) -> PyResult<i64> {
        let ids = self.ids.get();
        if let Some(id) = ids.try_next_id() {
            return Ok(id);
        }
        py.detach(|| ids.next_id()).map_err(|e| to_py(py, e))
    }

    /// The next ID if one is cached, else `None`; never waits.
    fn try_next_id(&self) -> Option<i64> {
        self.ids.get().try_next_id()
    }

    /// `n` consecutive IDs as a `range`.
    fn next_ids<'py>(&self, py: Python<'py>, n: i64) -> PyResult<Bound<'py, PyAny>> {
        let ids = self.ids.get();
        let run = py.detach(|| ids.next_ids(n)).map_err(|e| to_py(py, e))?;
        range(py, run.start, run.end)
    }

    /// IDs cached right now: the rest of the current segment plus the
    /// prefetched one.
    #[getter]
    fn buffered(&self) -> u64 {
        self.ids.get().buffered()
    }

    /// Segments this generator's requests discarded, never handing out
    /// their IDs (see `kxy_client::fence`).
    #[getter]
    fn discarded_segments(&self) -> u64 {
        self.ids.get().discarded()
    }

    /// The size the next segment request will ask for.
    #[getter]
    fn next_segment_count(&self) -> i64 {
        self.ids.get().next_request_size()
    }

    /// In a forked child: a fresh cache and client, so the child never
    /// hands out the IDs its parent holds.
    fn _reset_after_fork(&self) -> PyResult<()> {
        let fresh = self.ids.get().rebuilt().map_err(invalid)?;
        self.ids.replace_leaking(fresh);
        Ok(())
    }
}
