//! Limits on what one client can make the server hold, and the answer
//! headers every request gets.
//!
//! Without them a client could keep a connection (and its task and buffers)
//! forever by sending its headers a byte at a time, stall a request by never
//! finishing its body, send megabytes of headers, or open connections until
//! the process runs out of file descriptors. The connection-level limits
//! (header timeout, header count and size, connection count) are applied
//! where connections are accepted ([`crate::serving`]); the request-level
//! ones (body size, request timeout) by the [`enforce`] middleware, which
//! also marks every API answer `Cache-Control: no-store` (the page's own files
//! choose theirs): answers carry access
//! and refresh tokens, API key secrets and revealed credentials, and no
//! browser or proxy cache may keep them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clap::Args;

use crate::Error;

/// The default largest request body: the largest legitimate one (an
/// allocation request with four 128-character names, a credential with its
/// configuration) is well under this.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024;

/// Every limit, in force.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// The longest a request may take, from its headers to its answer
    /// (reading the body included).
    pub request_timeout: Duration,
    /// The longest a connection may take to send a request's headers, and
    /// stay idle between requests.
    pub header_read_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_headers: usize,
    /// Request line and headers together.
    pub max_header_bytes: usize,
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            max_connections: 1000,
        }
    }
}

/// The limits' flags.
#[derive(Debug, Args)]
pub struct HttpLimitArgs {
    /// The longest a request may take, body included, before it is answered
    /// 408: `30s`, `500ms`, `2m` (a bare number is seconds).
    #[arg(long, env = "KXY_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// The longest a client may take to send a request's headers (or stay
    /// idle between requests) before its connection is closed.
    #[arg(long, env = "KXY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// The largest request body, in bytes; larger ones are answered 413.
    #[arg(long, env = "KXY_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// The most headers a request may have; more are answered 431.
    #[arg(long, env = "KXY_MAX_HEADERS", default_value_t = 64)]
    pub max_headers: usize,
    /// The largest request line plus headers, in bytes; larger are answered 431.
    #[arg(long, env = "KXY_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Open connections served at once; a connection beyond them is
    /// answered 503 and closed.
    #[arg(long, env = "KXY_MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,
}

impl HttpLimitArgs {
    /// The limits, or which flag is out of its range.
    pub fn limits(&self) -> Result<HttpLimits, Error> {
        let at_least = |flag: &str, value: usize, min: usize, max: usize| {
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(Error::Startup(format!(
                    "--{flag} must be between {min} and {max}, got {value}"
                )))
            }
        };
        let timeout = |flag: &str, value: Duration| {
            if value >= Duration::from_millis(100) {
                Ok(value)
            } else {
                Err(Error::Startup(format!(
                    "--{flag} must be at least 100ms, got {value:?}"
                )))
            }
        };
        Ok(HttpLimits {
            request_timeout: timeout("request-timeout", self.request_timeout)?,
            header_read_timeout: timeout("header-read-timeout", self.header_read_timeout)?,
            max_body_bytes: at_least("max-body-bytes", self.max_body_bytes, 1024, 1 << 30)?,
            max_headers: at_least("max-headers", self.max_headers, 8, 1000)?,
            max_header_bytes: at_least("max-header-bytes", self.max_header_bytes, 1024, 1 << 20)?,
            // The semaphore that counts connections holds at most u32 permits.
            max_connections: at_least("max-connections", self.max_connections, 1, 1 << 20)?,
        })
    }
}

/// `30s`, `500ms`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 30s, 500ms or 2m"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "m" => Ok(Duration::from_secs(value.saturating_mul(60))),
        _ => Err(format!(
            "{text:?}: unknown unit {unit:?}; use ms, s or m (e.g. 30s)"
        )),
    }
}

/// The body limit in force, for extractors to name in their 413.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Middleware: refuses a body announced larger than the limit before
/// reading any of it, bounds the whole request by the request timeout, and
/// forbids caching the answer.
pub async fn enforce(
    State(limits): State<Arc<HttpLimits>>,
    mut request: Request,
    next: Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut response = if announced.is_some_and(|n| n > limits.max_body_bytes as u64) {
        Error::BodyTooLarge {
            limit: limits.max_body_bytes,
        }
        .into_response()
    } else {
        request
            .extensions_mut()
            .insert(BodyLimit(limits.max_body_bytes));
        match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => Error::RequestTimeout {
                limit: limits.request_timeout,
            }
            .into_response(),
        }
    };
    // A handler that serves a public file (the admin page) chooses its own.
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert_with(|| HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "s", "1h", "-1s", "1.5s", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
