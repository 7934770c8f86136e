//! `SegmentClient`: asks a kxy server for segments over HTTP.
//!
//! One `reqwest` client per `SegmentClient` reuses connections. With several
//! base URLs, a call starts at the one that last answered and moves on to
//! the next on a connection failure, a timeout, a malformed answer, a
//! redirect, a 5xx or a segment the client refused; a 4xx (unregistered
//! counter, invalid name) is returned at once, since every server would say
//! the same.
//!
//! Redirects are not followed, as the Python client (httpx) did not follow
//! them: a 3xx is [`ClientError::Redirect`], naming where it pointed.
//!
//! Answers are read as leniently as the Python client's pydantic model read
//! them (lax mode): a missing `code` is success, a missing `msg` is empty,
//! and `code`, `start` and `end` may come as strings of digits or as floats
//! with no fraction. A success without a segment is refused (the Python
//! client returned `None` and failed later); on a non-2xx answer, a body
//! without a `code` is not an envelope.
//!
//! Every segment passes the client's fences before it is returned (see
//! [`crate::fence`]): it must come from the store the counter is pinned to
//! and start above what this process already received from that store.
//! Requests tell the server both (`store_id`, `high_water`), so a server
//! whose store went backwards can refuse before it hands anything out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use kxy_core::{Segment, SegmentKey};
use serde::{Deserialize, Serialize};

use crate::fence::{HighWater, StoreId, StorePins, StoreScope, Ticket};
use crate::fork::PerProcess;
use crate::{ClientConfig, ClientError};

/// An async client of `POST /api/segment/allocate`. Cheap to clone.
#[derive(Clone)]
pub struct SegmentClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    /// Per process: a forked child must not share the parent's connections
    /// (see [`crate::fork`]).
    http: PerProcess<reqwest::Client>,
    /// Index of the base URL that answered last; calls start there.
    preferred: AtomicUsize,
    /// The store each counter is pinned to.
    /// Shared by every client rebuilt from this one (after a fork, or with
    /// other settings), so that a request in flight on one pins for all.
    pins: Arc<StorePins>,
    /// Segments refused by the fences, over the client's life.
    discarded: AtomicU64,
    /// Where segments of servers that name no store are fenced: this
    /// client's base URLs, sorted (see [`crate::fence`]).
    unnamed_store: StoreScope,
}

#[derive(Serialize)]
struct AllocateRequest<'a> {
    system_code: &'a str,
    db_name: &'a str,
    table_name: &'a str,
    field_name: &'a str,
    segment_count: i64,
    /// The store this client pinned the counter to; sent with `high_water`.
    #[serde(skip_serializing_if = "Option::is_none")]
    store_id: Option<&'a str>,
    /// The highest end this process received for the counter from that
    /// store; a server whose store stands below it refuses (503, 50303).
    #[serde(skip_serializing_if = "Option::is_none")]
    high_water: Option<i64>,
}

/// The answer's envelope, read as the Python client's pydantic model read
/// it in lax mode: a missing `code` is 0 and a missing `msg` is empty;
/// `code`, `start` and `end` may be strings of digits or floats with no
/// fraction (see [`lax_i64`]).
#[derive(Deserialize)]
struct Envelope {
    /// `None` when absent: success on a 2xx answer (the Python model's
    /// default), not an envelope at all on any other.
    #[serde(default, deserialize_with = "lax_i64_some")]
    code: Option<i64>,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    data: Option<Allocated>,
    #[serde(default, rename = "traceId")]
    trace_id: Option<String>,
}

/// The envelope's `data` on success. Older servers send no `store_id`.
#[derive(Deserialize)]
struct Allocated {
    #[serde(deserialize_with = "lax_i64")]
    start: i64,
    #[serde(deserialize_with = "lax_i64")]
    end: i64,
    #[serde(default)]
    store_id: Option<String>,
}

/// An integer as pydantic's lax mode reads one into an `int`: a JSON
/// integer, a float with no fraction (`0.0`), or a string of ASCII digits
/// with an optional sign, surrounding whitespace ignored (`"1"`, `" -2 "`).
/// Anything else (`"1e3"`, `"1.0"`, `1.5`, `true`, `null`, a number beyond
/// `i64`) is refused, so the answer is an invalid response.
fn lax_i64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(LaxI64)
}

fn lax_i64_some<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    lax_i64(deserializer).map(Some)
}

struct LaxI64;

impl serde::de::Visitor<'_> for LaxI64 {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an integer, a float with no fraction or a string of digits")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
        // -2^63 and 2^63 are exact as f64; NaN and infinities have no
        // zero fraction.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
            Ok(v as i64)
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
        let trimmed = v.trim();
        let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(E::invalid_value(serde::de::Unexpected::Str(v), &self));
        }
        trimmed
            .parse()
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
    }
}

/// How one allocation is attempted; generators bound each attempt and
/// count the segments their requests discarded.
#[derive(Default, Clone, Copy)]
pub(crate) struct Attempt<'a> {
    /// The longest one base URL may take to answer, if shorter than the
    /// client's request timeout.
    pub per_url_timeout: Option<Duration>,
    /// Also counts discarded segments here.
    pub discarded: Option<&'a AtomicU64>,
    /// A segment must start above this (a generator's highest buffered
    /// end), whatever store it comes from.
    pub above: Option<i64>,
}

fn build_http(config: &ClientConfig) -> Result<reqwest::Client, ClientError> {
    let roots = config.root_certificates.iter().cloned();
    let builder = if config.only_added_roots {
        reqwest::Client::builder().tls_certs_only(roots)
    } else {
        // With none added, the system's roots alone.
        reqwest::Client::builder().tls_certs_merge(roots)
    };
    builder
        .timeout(config.timeout)
        .connect_timeout(config.effective_connect_timeout())
        .tls_danger_accept_invalid_certs(!config.verify_tls)
        // Before the caller's headers, so that a User-Agent among them wins.
        .user_agent(ClientConfig::DEFAULT_USER_AGENT)
        .default_headers(config.headers.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientError::InvalidArgument(format!("cannot build HTTP client: {e}")))
}

impl SegmentClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Self::with_pins(config, Arc::new(StorePins::new()))
    }

    fn with_pins(config: ClientConfig, pins: Arc<StorePins>) -> Result<Self, ClientError> {
        let http = build_http(&config)?;
        let mut urls = config.base_urls.clone();
        urls.sort();
        let unnamed_store = StoreScope::Unnamed(urls.join(" ").into());
        Ok(SegmentClient {
            inner: Arc::new(Inner {
                config,
                http: PerProcess::new(http),
                preferred: AtomicUsize::new(0),
                pins,
                discarded: AtomicU64::new(0),
                unnamed_store,
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

    /// A client with the same settings, the same store pins and fresh
    /// connections, for a process that was forked (see [`crate::fork`]).
    pub fn rebuilt(&self) -> Result<SegmentClient, ClientError> {
        SegmentClient::with_pins(self.inner.config.clone(), Arc::clone(&self.inner.pins))
    }

    /// A client with other settings and the same store pins, for a caller
    /// whose settings changed: its segments pass the same fences.
    pub fn reconfigured(&self, config: ClientConfig) -> Result<SegmentClient, ClientError> {
        SegmentClient::with_pins(config, Arc::clone(&self.inner.pins))
    }

    /// How many segments this client discarded because they failed a fence:
    /// from another store than the pinned one, or not above what this
    /// process had already received.
    pub fn discarded(&self) -> u64 {
        self.inner.discarded.load(Ordering::Relaxed)
    }

    /// The store `key` is pinned to: the first one a server of this client
    /// named for it.
    pub fn pinned_store(&self, key: &SegmentKey) -> Option<String> {
        self.inner.pins.pinned(key).map(|s| s.to_string())
    }

    fn http(&self) -> &reqwest::Client {
        self.inner.http.get(|_parent| {
            build_http(&self.inner.config).expect("an HTTP client built before builds again")
        })
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
        self.allocate_with(key, segment_count, Attempt::default())
            .await
    }

    pub(crate) async fn allocate_with(
        &self,
        key: &SegmentKey,
        segment_count: i64,
        attempt: Attempt<'_>,
    ) -> Result<Segment, ClientError> {
        if segment_count < 1 {
            return Err(ClientError::InvalidArgument(format!(
                "segment_count must be at least 1; got {segment_count}"
            )));
        }
        let ticket = HighWater::ticket();
        let urls = &self.inner.config.base_urls;
        let first = self.inner.preferred.load(Ordering::Relaxed);
        let mut last_error = None;
        for step in 0..urls.len() {
            let index = (first + step) % urls.len();
            let url = &urls[index];
            let answer = self
                .allocate_at(url, key, segment_count, attempt.per_url_timeout)
                .await
                .and_then(|(segment, store)| {
                    self.admit(url, key, segment, store.as_ref(), ticket, attempt.above)
                        .inspect_err(|_| self.count_discard(attempt))
                        .map(|()| segment)
                });
            match answer {
                Ok(segment) => {
                    self.inner.preferred.store(index, Ordering::Relaxed);
                    return Ok(segment);
                }
                Err(e) if e.is_retryable() => {
                    if e.is_discarded_segment() {
                        tracing::warn!("{e}");
                    } else {
                        tracing::debug!("allocation at {url} failed, trying the next server: {e}");
                    }
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one base URL"))
    }

    fn count_discard(&self, attempt: Attempt<'_>) {
        self.inner.discarded.fetch_add(1, Ordering::Relaxed);
        if let Some(discarded) = attempt.discarded {
            discarded.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The fences (see [`crate::fence`]): the pinned store, the caller's
    /// floor, then the high water of this process.
    fn admit(
        &self,
        url: &str,
        key: &SegmentKey,
        segment: Segment,
        store: Option<&StoreId>,
        ticket: Ticket,
        above: Option<i64>,
    ) -> Result<(), ClientError> {
        if let Err(pinned) = self.inner.pins.pin_or_check(key, store) {
            return Err(ClientError::StoreMismatch {
                key: key.to_string(),
                pinned: pinned.to_string(),
                got: store.map(|s| s.to_string()).unwrap_or_default(),
                url: url.to_owned(),
            });
        }
        let went_backwards = |highest| ClientError::WentBackwards {
            key: key.to_string(),
            highest,
            got: segment,
            url: url.to_owned(),
        };
        if let Some(floor) = above
            && segment.start <= floor
        {
            return Err(went_backwards(floor));
        }
        HighWater::admit(&self.scope(store), key, segment, ticket).map_err(went_backwards)
    }

    fn scope(&self, store: Option<&StoreId>) -> StoreScope {
        match store {
            Some(store) => StoreScope::Named(store.clone()),
            None => self.inner.unnamed_store.clone(),
        }
    }

    async fn allocate_at(
        &self,
        base_url: &str,
        key: &SegmentKey,
        count: i64,
        per_url_timeout: Option<Duration>,
    ) -> Result<(Segment, Option<StoreId>), ClientError> {
        let url = format!("{base_url}/api/segment/allocate");
        // The hint: only when both the pin and a mark are known.
        let pinned = self.inner.pins.pinned(key);
        let high_water = pinned
            .as_ref()
            .and_then(|store| HighWater::highest(&StoreScope::Named(store.clone()), key));
        let body = AllocateRequest {
            system_code: key.system_code(),
            db_name: key.db_name(),
            table_name: key.table_name(),
            field_name: key.field_name(),
            segment_count: count,
            store_id: high_water.and(pinned.as_deref()),
            high_water,
        };
        let timeout = per_url_timeout.map_or(self.inner.config.timeout, |t| {
            t.min(self.inner.config.timeout)
        });
        let response = self
            .http()
            .post(&url)
            .timeout(timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport_error(&url, timeout, e))?;
        let status = response.status().as_u16();
        if let Some(hook) = &self.inner.config.on_answer {
            (hook.0)(crate::config::Answered {
                method: "POST",
                url: &url,
                status,
                version: http_version(response.version()),
                reason: response.status().canonical_reason().unwrap_or(""),
            });
        }
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
            return Err(ClientError::Redirect {
                url,
                status,
                location,
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&url, timeout, e))?;
        let invalid = |reason: String| ClientError::InvalidResponse {
            url: url.clone(),
            reason,
        };
        let envelope: Envelope = serde_json::from_slice(&bytes).map_err(|e| {
            invalid(format!(
                "HTTP {status} with a body that is not a kxy envelope ({e})"
            ))
        })?;
        let success = (200..300).contains(&status);
        let code = match envelope.code {
            Some(code) => code,
            None if success => 0,
            None => {
                return Err(invalid(format!(
                    "HTTP {status} with a body that is not a kxy envelope (no code)"
                )));
            }
        };
        if code != 0 || !success {
            return Err(ClientError::Api {
                status,
                code,
                msg: envelope.msg,
                trace_id: envelope.trace_id,
            });
        }
        // The Python client returned None here and its caller crashed
        // later; refusing at once is a deliberate difference.
        let data = envelope.data.ok_or_else(|| {
            invalid(format!(
                "HTTP {status}: the server answered success without a segment"
            ))
        })?;
        let segment = Segment {
            start: data.start,
            end: data.end,
        };
        let expected = u64::try_from(count).unwrap_or(0);
        if segment.start < 1 || segment.end < segment.start || segment.len() != expected {
            return Err(invalid(format!(
                "asked for {count} IDs, got {}..={}",
                segment.start, segment.end
            )));
        }
        let store = match data.store_id {
            None => None,
            Some(id) if is_store_id(&id) => Some(StoreId::from(id)),
            Some(id) => {
                return Err(invalid(format!(
                    "store_id {id:?} is not a store id (1 to 64 letters and digits)"
                )));
            }
        };
        Ok((segment, store))
    }
}

/// The version as a status line names it.
fn http_version(version: reqwest::Version) -> &'static str {
    match version {
        reqwest::Version::HTTP_09 => "HTTP/0.9",
        reqwest::Version::HTTP_10 => "HTTP/1.0",
        reqwest::Version::HTTP_2 => "HTTP/2",
        reqwest::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// A plausible store id: the server sends 32 lowercase hex digits; anything
/// short and alphanumeric is accepted so that the format may evolve.
fn is_store_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl SegmentClient {
    /// A connect that timed out is a connection failure (the server is
    /// unreachable); a request that timed out after connecting is a
    /// timeout of `after`.
    fn transport_error(&self, url: &str, after: Duration, e: reqwest::Error) -> ClientError {
        if e.is_timeout() && !e.is_connect() {
            return ClientError::Timeout {
                url: url.to_owned(),
                after,
            };
        }
        // reqwest's own message is generic; the cause is in its sources.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        if e.is_timeout() {
            let limit = self.inner.config.effective_connect_timeout();
            reason = format!("no connection within {limit:?} ({reason})");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn code(json: &str) -> Result<Option<i64>, String> {
        serde_json::from_str::<Envelope>(json)
            .map(|e| e.code)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn codes_are_read_as_pydantic_lax_mode_reads_them() {
        for (json, expected) in [
            (r#"{}"#, None),
            (r#"{"code":0}"#, Some(0)),
            (r#"{"code":40401}"#, Some(40401)),
            (r#"{"code":-1}"#, Some(-1)),
            (r#"{"code":"0"}"#, Some(0)),
            (r#"{"code":"00"}"#, Some(0)),
            (r#"{"code":" 50301 "}"#, Some(50301)),
            (r#"{"code":"-2"}"#, Some(-2)),
            (r#"{"code":"+3"}"#, Some(3)),
            (r#"{"code":0.0}"#, Some(0)),
            (r#"{"code":-0.0}"#, Some(0)),
            (r#"{"code":1e3}"#, Some(1000)),
            (r#"{"code":9223372036854775807}"#, Some(i64::MAX)),
            (r#"{"code":"-9223372036854775808"}"#, Some(i64::MIN)),
        ] {
            assert_eq!(code(json), Ok(expected), "{json}");
        }
        for json in [
            r#"{"code":null}"#,
            r#"{"code":true}"#,
            r#"{"code":1.5}"#,
            r#"{"code":""}"#,
            r#"{"code":"-"}"#,
            r#"{"code":"x"}"#,
            r#"{"code":"1.0"}"#,
            r#"{"code":"1e3"}"#,
            r#"{"code":"1_000"}"#,
            r#"{"code":"0x1"}"#,
            r#"{"code":"１"}"#,
            r#"{"code":9223372036854775808}"#,
            r#"{"code":"9223372036854775808"}"#,
            r#"{"code":9.3e18}"#,
            r#"{"code":[0]}"#,
        ] {
            assert!(code(json).is_err(), "{json}: {:?}", code(json));
        }
    }

    #[test]
    fn segments_and_messages_are_read_leniently() {
        let envelope: Envelope =
            serde_json::from_str(r#"{"data":{"start":"1","end":10.0,"store_id":"ab"}}"#).unwrap();
        assert_eq!((envelope.code, envelope.msg.as_str()), (None, ""));
        assert_eq!(envelope.trace_id, None);
        let data = envelope.data.unwrap();
        assert_eq!((data.start, data.end), (1, 10));
        assert_eq!(data.store_id.as_deref(), Some("ab"));
        for json in [
            r#"{"code":0,"data":null}"#,
            r#"{"code":0,"msg":"ok","traceId":null}"#,
        ] {
            let envelope: Envelope = serde_json::from_str(json).unwrap();
            assert!(envelope.data.is_none(), "{json}");
        }
        for json in [
            r#"{"code":0,"msg":null}"#,
            r#"{"code":0,"traceId":1}"#,
            r#"{"code":0,"data":{"start":"1.5","end":2}}"#,
            r#"{"code":0,"data":{"start":1}}"#,
        ] {
            assert!(serde_json::from_str::<Envelope>(json).is_err(), "{json}");
        }
    }
}
