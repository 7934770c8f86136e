//! What can go wrong when asking a kxy server for IDs.

use std::time::Duration;

use kxy_core::Segment;

/// Why a call of the client failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The call was refused before any request: a bad name, count, URL or
    /// header. Retrying cannot help.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The server answered with an error envelope (non-zero `code`).
    #[error("kxy server refused the request: HTTP {status}, code {code}: {msg}")]
    Api {
        status: u16,
        code: i64,
        msg: String,
        trace_id: Option<String>,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach kxy server at {url}: {reason}")]
    Connection { url: String, reason: String },
    /// The server did not answer in time.
    #[error("kxy server at {url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    /// The server answered, but not with a kxy envelope.
    #[error("unexpected answer from {url}: {reason}")]
    InvalidResponse { url: String, reason: String },
    /// The server answered with a redirect (3xx). Redirects are not
    /// followed, as the Python client's httpx did not follow them: a POST
    /// redirected would be replayed (or turned into a GET) against a place
    /// nobody configured. The next base URL is tried; configure the final
    /// URL as the base URL.
    #[error(
        "HTTP error {status} from {url}: redirected to {}; kxy-client does not \
         follow redirects (configure the final URL as the base URL)",
        location.as_deref().unwrap_or("nowhere (no Location header)")
    )]
    Redirect {
        url: String,
        status: u16,
        location: Option<String>,
    },
    /// The server handed out a segment that does not start above the
    /// highest ID this process already received for the counter from the
    /// same store: the store went backwards (lost writes, restored from an
    /// older backup, failed over to a lagging replica). The segment was
    /// discarded, never handed out. Another server, or the same one after
    /// an operator raised the counter, may do better.
    #[error(
        "kxy server at {url} handed out {}..={} of {key}, but this process already \
         received IDs up to {highest} from that store: the store went backwards; \
         the segment was discarded",
        got.start, got.end
    )]
    WentBackwards {
        key: String,
        highest: i64,
        got: Segment,
        url: String,
    },
    /// The server answered from another store than the one this client
    /// pinned the counter to: two stores that count independently hand out
    /// the same ranges. The segment was discarded; the next base URL is
    /// tried.
    #[error(
        "kxy server at {url} answered for {key} from store {got}, but this client \
         is pinned to store {pinned} for it; the segment was discarded"
    )]
    StoreMismatch {
        key: String,
        pinned: String,
        got: String,
        url: String,
    },
    /// A generator ran out of buffered IDs and no server gave it more
    /// within its bounded wait; `last` is the most recent failure.
    #[error("no IDs available after waiting {waited:?}: {last}")]
    Unavailable {
        waited: Duration,
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// Whether another server, or a later attempt, might succeed: connection
    /// failures, timeouts, malformed answers, redirects, 5xx answers and
    /// discarded segments. A 4xx answer
    /// (unregistered counter, invalid name) would be the same everywhere.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connection { .. }
            | ClientError::Timeout { .. }
            | ClientError::InvalidResponse { .. }
            | ClientError::Redirect { .. }
            | ClientError::WentBackwards { .. }
            | ClientError::StoreMismatch { .. } => true,
            ClientError::Api { status, .. } => *status >= 500,
            ClientError::InvalidArgument(_) => false,
            ClientError::Unavailable { last, .. } => last.is_retryable(),
        }
    }

    /// Whether this is a segment the client discarded (see
    /// [`crate::fence`]).
    pub fn is_discarded_segment(&self) -> bool {
        matches!(
            self.root(),
            ClientError::WentBackwards { .. } | ClientError::StoreMismatch { .. }
        )
    }

    /// The failure behind an [`ClientError::Unavailable`], or `self`.
    pub fn root(&self) -> &ClientError {
        match self {
            ClientError::Unavailable { last, .. } => last.root(),
            other => other,
        }
    }
}
