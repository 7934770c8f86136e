//! `SegmentClient`: asks a kxy server for segments over HTTP.
//!
//! One `reqwest` client per `SegmentClient` reuses connections. With several
//! base URLs, a call starts at the one that last answered and moves on to
//! the next on a connection failure, a timeout, a malformed answer or a 5xx;
//! a 4xx (unregistered counter, invalid name) is returned at once, since
//! every server would say the same.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kxy_core::{Segment, SegmentKey};
use serde::{Deserialize, Serialize};

use crate::{ClientConfig, ClientError};

/// An async client of `POST /api/segment/allocate`. Cheap to clone.
#[derive(Clone)]
pub struct SegmentClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    http: reqwest::Client,
    /// Index of the base URL that answered last; calls start there.
    preferred: AtomicUsize,
}

#[derive(Serialize)]
struct AllocateRequest<'a> {
    system_code: &'a str,
    db_name: &'a str,
    table_name: &'a str,
    field_name: &'a str,
    segment_count: i64,
}

#[derive(Deserialize)]
struct Envelope {
    code: i64,
    #[serde(default)]
    msg: String,
    data: Option<Segment>,
    #[serde(rename = "traceId")]
    trace_id: Option<String>,
}

impl SegmentClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .tls_danger_accept_invalid_certs(!config.verify_tls)
            .default_headers(config.headers.clone())
            .build()
            .map_err(|e| ClientError::InvalidArgument(format!("cannot build HTTP client: {e}")))?;
        Ok(SegmentClient {
            inner: Arc::new(Inner {
                config,
                http,
                preferred: AtomicUsize::new(0),
            }),
        })
    }

    /// A client for one server with default settings.
    pub fn for_url(base_url: &str) -> Result<Self, ClientError> {
        Self::new(ClientConfig::new([base_url])?)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A client with the same settings and fresh connections, for a process
    /// that was forked (see [`crate::fork`]).
    pub fn rebuilt(&self) -> Result<SegmentClient, ClientError> {
        SegmentClient::new(self.inner.config.clone())
    }

    /// Allocates `segment_count` IDs of the counter named by the four parts.
    pub async fn allocate_segment(
        &self,
        system_code: &str,
        db_name: &str,
        table_name: &str,
        field_name: &str,
        segment_count: i64,
    ) -> Result<Segment, ClientError> {
        let key = SegmentKey::new(system_code, db_name, table_name, field_name)
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        self.allocate(&key, segment_count).await
    }

    /// Allocates `segment_count` IDs of `key`, trying each base URL in turn.
    pub async fn allocate(
        &self,
        key: &SegmentKey,
        segment_count: i64,
    ) -> Result<Segment, ClientError> {
        if segment_count < 1 {
            return Err(ClientError::InvalidArgument(format!(
                "segment_count must be at least 1; got {segment_count}"
            )));
        }
        let urls = &self.inner.config.base_urls;
        let first = self.inner.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        for step in 0..urls.len() {
            let index = (first + step) % urls.len();
            match self.allocate_at(&urls[index], key, segment_count).await {
                Ok(segment) => {
                    self.inner.preferred.store(index, Ordering::Relaxed);
                    return Ok(segment);
                }
                Err(e) if e.is_retryable() => {
                    tracing::debug!(
                        "allocation at {} failed, trying the next server: {e}",
                        urls[index]
                    );
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one base URL"))
    }

    async fn allocate_at(
        &self,
        base_url: &str,
        key: &SegmentKey,
        count: i64,
    ) -> Result<Segment, ClientError> {
        let url = format!("{base_url}/api/segment/allocate");
        let body = AllocateRequest {
            system_code: key.system_code(),
            db_name: key.db_name(),
            table_name: key.table_name(),
            field_name: key.field_name(),
            segment_count: count,
        };
        let response = self
            .inner
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        let invalid = |reason: String| ClientError::InvalidResponse {
            url: url.clone(),
            reason,
        };
        let envelope: Envelope = serde_json::from_slice(&bytes).map_err(|e| {
            invalid(format!(
                "HTTP {status} with a body that is not a kxy envelope ({e})"
            ))
        })?;
        if envelope.code != 0 || !(200..300).contains(&status) {
            return Err(ClientError::Api {
                status,
                code: envelope.code,
                msg: envelope.msg,
                trace_id: envelope.trace_id,
            });
        }
        let segment = envelope
            .data
            .ok_or_else(|| invalid("success without a segment".into()))?;
        let expected = u64::try_from(count).unwrap_or(0);
        if segment.start < 1 || segment.end < segment.start || segment.len() != expected {
            return Err(invalid(format!(
                "asked for {count} IDs, got {}..={}",
                segment.start, segment.end
            )));
        }
        Ok(segment)
    }

    fn transport_error(&self, url: &str, e: reqwest::Error) -> ClientError {
        if e.is_timeout() {
            return ClientError::Timeout {
                url: url.to_owned(),
                after: self.inner.config.timeout,
            };
        }
        // reqwest's own message is generic; the cause is in its sources.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        ClientError::Connection {
            url: url.to_owned(),
            reason,
        }
    }
}

/// The same calls as [`SegmentClient`], blocking the calling thread. The
/// requests run on kxy-client's background runtime, so this works from any
/// thread that is not itself running async code.
#[derive(Clone)]
pub struct BlockingSegmentClient {
    client: SegmentClient,
}

impl BlockingSegmentClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Ok(BlockingSegmentClient {
            client: SegmentClient::new(config)?,
        })
    }

    pub fn allocate_segment(
        &self,
        system_code: &str,
        db_name: &str,
        table_name: &str,
        field_name: &str,
        segment_count: i64,
    ) -> Result<Segment, ClientError> {
        crate::runtime::block_on(self.client.allocate_segment(
            system_code,
            db_name,
            table_name,
            field_name,
            segment_count,
        ))?
    }

    pub fn allocate(&self, key: &SegmentKey, segment_count: i64) -> Result<Segment, ClientError> {
        crate::runtime::block_on(self.client.allocate(key, segment_count))?
    }

    /// The async client underneath.
    pub fn as_async(&self) -> &SegmentClient {
        &self.client
    }
}

impl From<SegmentClient> for BlockingSegmentClient {
    fn from(client: SegmentClient) -> Self {
        BlockingSegmentClient { client }
    }
}
