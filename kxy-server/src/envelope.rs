//! The response envelope every endpoint answers with, and the trace id in it.
//!
//! `{"code": 0, "msg": "...", "data": ..., "traceId": "..."}` is the seed's
//! shape, which the Python client parses. `code` 0 means success. The trace id
//! ties a response to its log lines: [`assign_trace_id`] gives each request
//! one (or adopts a sane `X-Trace-Id` from the caller), keeps it in a
//! task-local for the envelope, puts it on the request's log span and echoes
//! it in the `X-Trace-Id` header.

use std::time::Instant;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::Instrument;

pub const TRACE_HEADER: &str = "x-trace-id";

tokio::task_local! {
    static TRACE_ID: String;
}

/// The trace id of the request being handled, if any.
pub fn current_trace_id() -> Option<String> {
    TRACE_ID.try_with(Clone::clone).ok()
}

/// A response in the envelope; built by handlers on success and by
/// [`crate::Error`] on failure.
pub struct Envelope<T> {
    status: StatusCode,
    code: i64,
    msg: String,
    data: Option<T>,
}

impl<T: Serialize> Envelope<T> {
    /// A success (`code` 0, HTTP 200) carrying `data`.
    pub fn ok(msg: impl Into<String>, data: T) -> Self {
        Envelope {
            status: StatusCode::OK,
            code: 0,
            msg: msg.into(),
            data: Some(data),
        }
    }

    /// A failure with `data` attached, for answers like `/health` that
    /// explain themselves even when the status is an error.
    pub fn failure_with(status: StatusCode, code: i64, msg: impl Into<String>, data: T) -> Self {
        Envelope {
            status,
            code,
            msg: msg.into(),
            data: Some(data),
        }
    }
}

impl Envelope<()> {
    /// A failure with `data: null`.
    pub fn failure(status: StatusCode, code: i64, msg: impl Into<String>) -> Self {
        Envelope {
            status,
            code,
            msg: msg.into(),
            data: None,
        }
    }
}

#[derive(Serialize)]
struct Body<T> {
    code: i64,
    msg: String,
    data: Option<T>,
    #[serde(rename = "traceId")]
    trace_id: Option<String>,
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            msg: self.msg,
            data: self.data,
            trace_id: current_trace_id(),
        };
        (self.status, Json(body)).into_response()
    }
}

/// Middleware: gives the request a trace id and a log span.
pub async fn assign_trace_id(request: Request, next: Next) -> Response {
    let trace_id = request
        .headers()
        .get(TRACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_trace_id(v))
        .map_or_else(new_trace_id, str::to_owned);
    let span = tracing::info_span!(
        "request",
        trace_id = %trace_id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    let mut response = TRACE_ID
        .scope(trace_id.clone(), next.run(request).instrument(span.clone()))
        .await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "answered"
        )
    });
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert(TRACE_HEADER, value);
    }
    response
}

/// 128 random bits as 32 hex digits.
fn new_trace_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Caller-supplied ids are adopted only if short and plain, so they cannot
/// inject anything into logs or headers.
fn is_sane_trace_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids() {
        let id = new_trace_id();
        assert_eq!(id.len(), 32);
        assert_ne!(id, new_trace_id());
        assert!(is_sane_trace_id("req-123_abc"));
        assert!(!is_sane_trace_id(""));
        assert!(!is_sane_trace_id("a\nb"));
        assert!(!is_sane_trace_id(&"x".repeat(65)));
    }
}
