//! What can go wrong when asking a kxy server for IDs.

use std::time::Duration;

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
    /// failures, timeouts, malformed answers and 5xx answers. A 4xx answer
    /// (unregistered counter, invalid name) would be the same everywhere.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connection { .. }
            | ClientError::Timeout { .. }
            | ClientError::InvalidResponse { .. } => true,
            ClientError::Api { status, .. } => *status >= 500,
            ClientError::InvalidArgument(_) => false,
            ClientError::Unavailable { last, .. } => last.is_retryable(),
        }
    }

    /// The failure behind an [`ClientError::Unavailable`], or `self`.
    pub fn root(&self) -> &ClientError {
        match self {
            ClientError::Unavailable { last, .. } => last.root(),
            other => other,
        }
    }
}
