//! `NativeSegmentClient`: one set of client settings, built into a Rust
//! `SegmentClient`.
//!
//! The public `SegmentClient` is a plain Python class whose attributes
//! (`base_url`, `timeout`, `headers`...) users read and assign, as in the
//! published client. It builds one of these from them, and a new one,
//! keeping the store pins (`previous`), whenever they change.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kxy_client::config::Answered;
use kxy_client::{BlockingSegmentClient, ClientConfig, ClientError, Segment};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::errors::{invalid_argument, to_py};
use crate::interruptible;
use crate::pending::{Pending, spawn};
use crate::swap::Swap;

/// One base URL or several, tried in order on failure.
#[derive(FromPyObject)]
enum BaseUrls {
    One(String),
    Many(Vec<String>),
}

/// A positive number of seconds.
pub fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            invalid_argument(format!(
                "{name} must be a positive number of seconds; got {value}"
            ))
        })
}

/// What `timeout=None` means: wait as long as it takes.
const NO_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub fn invalid(e: ClientError) -> PyErr {
    invalid_argument(e.to_string())
}

/// The logger requests are logged on, as httpx logged 0.2.1's.
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// Whether that logger logs INFO, as last seen, and when (ms since the
/// epoch): a request takes the GIL to log only if it does, or to look
/// again once a second, so a busy Python thread does not hold up fetches
/// when nobody listens.
static LOGGING: AtomicBool = AtomicBool::new(false);
static LOOKED_AT: AtomicU64 = AtomicU64::new(0);

/// Logs an answer at INFO on the `kxy_open_id_client` logger, in httpx's
/// words (`HTTP Request: POST <url> "HTTP/1.1 200 OK"`), when that level is
/// enabled: the published client's users saw each request that way.
fn log_answer(answer: Answered<'_>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let stale = now.saturating_sub(LOOKED_AT.load(Ordering::Relaxed)) >= 1000;
    if !stale && !LOGGING.load(Ordering::Relaxed) {
        return;
    }
    Python::attach(|py| {
        let logged = (|| -> PyResult<()> {
            let logger = LOGGER
                .get_or_try_init(py, || {
                    py.import("logging")?
                        .call_method1("getLogger", ("kxy_open_id_client",))
                        .map(Bound::unbind)
                })?
                .bind(py);
            const INFO: i32 = 20;
            let enabled = logger.call_method1("isEnabledFor", (INFO,))?.is_truthy()?;
            LOGGING.store(enabled, Ordering::Relaxed);
            LOOKED_AT.store(now, Ordering::Relaxed);
            if enabled {
                logger.call_method1(
                    "info",
                    (
                        "HTTP Request: %s %s \"%s %d %s\"",
                        answer.method,
                        answer.url,
                        answer.version,
                        answer.status,
                        answer.reason,
                    ),
                )?;
            }
            Ok(())
        })();
        if let Err(error) = logged {
            error.write_unraisable(py, None);
        }
    });
}

#[pyclass(module = "kxy_open_id_client._native", frozen, weakref)]
pub struct NativeSegmentClient {
    pub(crate) client: Swap<BlockingSegmentClient>,
}

impl NativeSegmentClient {
    /// One allocation, as a future that owns what it needs (it runs on
    /// kxy-client's runtime).
    fn allocation(
        &self,
        system_code: String,
        db_name: String,
        table_name: String,
        field_name: String,
        segment_count: i64,
    ) -> impl Future<Output = Result<Segment, ClientError>> + Send + 'static {
        let client = self.client.get().as_async().clone();
        async move {
            client
                .allocate_segment(
                    &system_code,
                    &db_name,
                    &table_name,
                    &field_name,
                    segment_count,
                )
                .await
        }
    }
}

#[pymethods]
impl NativeSegmentClient {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        base_url, timeout = Some(30.0), verify_ssl = true, headers = None, *, api_key = None,
        connect_timeout = 1.0, previous = None, ca_pem = None, ca_der = None
    ))]
    fn new(
        base_url: BaseUrls,
        timeout: Option<f64>,
        verify_ssl: bool,
        headers: Option<HashMap<String, String>>,
        api_key: Option<String>,
        connect_timeout: f64,
        previous: Option<PyRef<'_, NativeSegmentClient>>,
        ca_pem: Option<Vec<u8>>,
        ca_der: Option<Vec<Vec<u8>>>,
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
        // A CA bundle or an SSLContext's CAs: only those are trusted, as
        // httpx's `verify=` trusts only what it is given.
        if ca_pem.is_some() || ca_der.is_some() {
            config = config.only_added_roots(true);
        }
        if let Some(pem) = ca_pem {
            config = config.add_root_certificates_pem(&pem).map_err(invalid)?;
        }
        for der in ca_der.unwrap_or_default() {
            config = config.add_root_certificate_der(&der).map_err(invalid)?;
        }
        config = config.on_answer(log_answer);
        let client = match previous {
            Some(previous) => previous.client.get().as_async().reconfigured(config),
            None => kxy_client::SegmentClient::new(config),
        }
        .map_err(invalid)?;
        Ok(NativeSegmentClient {
            client: Swap::new(BlockingSegmentClient::from(client)),
        })
    }

    /// Allocates one segment; returns `(start, end)`, both inclusive. The
    /// wait is interruptible (see `interruptible`).
    fn _allocate(
        &self,
        py: Python<'_>,
        system_code: String,
        db_name: String,
        table_name: String,
        field_name: String,
        segment_count: i64,
    ) -> PyResult<(i64, i64)> {
        let request = self.allocation(system_code, db_name, table_name, field_name, segment_count);
        interruptible::on_runtime(py, request)?
            .map(|s| (s.start, s.end))
            .map_err(|e| to_py(py, e))
    }

    /// `_allocate` as a task; `done(ok, value)` gets `(start, end)` or the
    /// exception (see `pending`).
    #[allow(clippy::too_many_arguments)]
    fn _allocate_async(
        &self,
        system_code: String,
        db_name: String,
        table_name: String,
        field_name: String,
        segment_count: i64,
        done: Py<PyAny>,
    ) -> Pending {
        let request = self.allocation(system_code, db_name, table_name, field_name, segment_count);
        spawn(
            request,
            |py, segment| {
                Ok((segment.start, segment.end)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind())
            },
            done,
        )
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
