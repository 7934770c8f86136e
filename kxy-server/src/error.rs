//! The server's one error type, and the only place that decides an error's
//! HTTP status, envelope `code` and message.
//!
//! Every failure a request can meet ends up as an [`Error`]; its
//! `IntoResponse` writes the seed's envelope (`code`, `msg`, `data`,
//! `traceId`) with a fitting status. Envelope codes are the HTTP status times
//! 100 plus a reason, so a client can branch on either; the README lists
//! them.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kxy_core::{IdentifierError, InvalidStart, SegmentCountError};

use crate::envelope::Envelope;
use crate::store::StoreError;

/// Why a request (or a CLI command) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not the JSON the endpoint takes: syntax, a missing or
    /// unknown field, or a value of the wrong type.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    #[error("request body is too large; the limit is {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error(
        "the request did not complete within the server's limit of {limit:?} \
         (--request-timeout); send the whole request at once"
    )]
    RequestTimeout { limit: std::time::Duration },
    #[error(
        "the server is at its limit of {limit} open connections (--max-connections); \
         try again shortly"
    )]
    TooManyConnections { limit: usize },
    #[error(transparent)]
    InvalidIdentifier(#[from] IdentifierError),
    #[error(transparent)]
    InvalidCount(#[from] SegmentCountError),
    #[error(transparent)]
    InvalidStart(#[from] InvalidStart),
    /// A field's value breaks a rule; the message names the field.
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
    #[error("authentication required: send Authorization: Bearer <access token>")]
    AuthRequired,
    /// The same answer for an unknown user and a wrong password.
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("the account is disabled")]
    AccountDisabled,
    #[error("missing permission {permission}")]
    Forbidden { permission: String },
    #[error(
        "too many failed logins: the account is locked; try again in {retry_after} s or ask an administrator to unlock it"
    )]
    Locked { retry_after: u64 },
    /// A cookie-session request that may come from another site's page.
    #[error("{0}")]
    CrossSite(String),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the system is already initialized; log in instead")]
    AlreadyInitialized,
    #[error(
        "first-run setup needs the setup token: send it as setup_token; it is printed in the \
         server's console at start (or set with --setup-token / KXY_SETUP_TOKEN)"
    )]
    SetupTokenRequired,
    #[error(
        "storing secrets is disabled: start kxy-server with --master-key \
         (kxy-server keygen prints a new one)"
    )]
    VaultDisabled,
    #[error("cannot open a stored secret: {0}")]
    Sealed(String),
    /// A registered database could not be reached or read.
    #[error("{0}")]
    Database(String),
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store handed out a segment at or below IDs handed out before.
    #[error(
        "store went backwards for {key}: expected > {expected_above}, got {}..={}; nothing \
         was handed out, and the counter stays refused until an operator raises it \
         (kxy-server counters raise, or POST /api/counters/raise)",
        got.start,
        got.end
    )]
    StoreWentBackwards {
        key: kxy_core::SegmentKey,
        expected_above: i64,
        got: kxy_core::Segment,
    },
    /// A bounded resource (password hashing) is at capacity; retry soon.
    #[error("{0}")]
    Busy(String),
    /// The store's durability does not satisfy `--redis-durability`.
    #[error("allocation is closed: {0}")]
    NotDurable(String),
    /// Bad configuration or a failure to start: reported by the CLI, never
    /// sent over HTTP.
    #[error("{0}")]
    Startup(String),
    /// A bug: a handler panicked. The message stays in the logs.
    #[error("internal error; the server log has details under this trace id")]
    Internal,
}

impl Error {
    /// The HTTP status and envelope code for this error.
    pub fn status_and_code(&self) -> (StatusCode, i64) {
        use StatusCode as S;
        match self {
            Error::InvalidBody(_) => (S::BAD_REQUEST, 40001),
            Error::InvalidIdentifier(_)
            | Error::InvalidCount(_)
            | Error::InvalidStart(_)
            | Error::Invalid { .. } => (S::BAD_REQUEST, 40002),
            Error::AuthRequired => (S::UNAUTHORIZED, 40100),
            Error::InvalidCredentials => (S::UNAUTHORIZED, 40101),
            Error::InvalidToken(_) => (S::UNAUTHORIZED, 40102),
            Error::Forbidden { .. } => (S::FORBIDDEN, 40301),
            Error::AccountDisabled => (S::FORBIDDEN, 40302),
            Error::SetupTokenRequired => (S::FORBIDDEN, 40303),
            Error::CrossSite(_) => (S::FORBIDDEN, 40304),
            Error::NotFound { .. } => (S::NOT_FOUND, 40402),
            Error::Conflict(_) => (S::CONFLICT, 40902),
            Error::AlreadyInitialized => (S::CONFLICT, 40903),
            Error::Locked { .. } => (S::TOO_MANY_REQUESTS, 42901),
            Error::RouteNotFound { .. } => (S::NOT_FOUND, 40400),
            Error::Store(StoreError::NotRegistered { .. }) => (S::NOT_FOUND, 40401),
            Error::MethodNotAllowed { .. } => (S::METHOD_NOT_ALLOWED, 40500),
            Error::Store(StoreError::Exhausted { .. }) => (S::CONFLICT, 40901),
            Error::BodyTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, 41300),
            Error::UnsupportedMediaType(_) => (S::UNSUPPORTED_MEDIA_TYPE, 41500),
            Error::RequestTimeout { .. } => (S::REQUEST_TIMEOUT, 40800),
            Error::TooManyConnections { .. } => (S::SERVICE_UNAVAILABLE, 50307),
            Error::Internal | Error::Startup(_) => (S::INTERNAL_SERVER_ERROR, 50000),
            Error::Store(StoreError::Corrupt { .. }) => (S::INTERNAL_SERVER_ERROR, 50001),
            // Record names are chosen by the server; a bad one is a bug.
            Error::Store(StoreError::InvalidName(_)) => (S::INTERNAL_SERVER_ERROR, 50000),
            Error::Store(StoreError::Unavailable { .. }) => (S::SERVICE_UNAVAILABLE, 50301),
            Error::StoreWentBackwards { .. } | Error::Store(StoreError::Fenced { .. }) => {
                (S::SERVICE_UNAVAILABLE, 50303)
            }
            Error::NotDurable(_) | Error::Store(StoreError::NotDurable(_)) => {
                (S::SERVICE_UNAVAILABLE, 50304)
            }
            Error::Store(StoreError::ReadOnly(_)) => (S::SERVICE_UNAVAILABLE, 50308),
            Error::Store(StoreError::OutOfMemory(_)) => (S::SERVICE_UNAVAILABLE, 50309),
            Error::Store(StoreError::Unsettled(_)) => (S::SERVICE_UNAVAILABLE, 50310),
            Error::Store(StoreError::NotReplicated { .. }) => (S::SERVICE_UNAVAILABLE, 50305),
            Error::Store(StoreError::BelowFence { .. }) => (S::CONFLICT, 40904),
            Error::VaultDisabled => (S::SERVICE_UNAVAILABLE, 50302),
            Error::Busy(_) => (S::SERVICE_UNAVAILABLE, 50306),
            Error::Database(_) => (S::BAD_GATEWAY, 50201),
            Error::Sealed(_) => (S::INTERNAL_SERVER_ERROR, 50002),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let msg = self.to_string();
        if status.is_server_error() {
            tracing::warn!(code, "{msg}");
        } else {
            tracing::debug!(code, "{msg}");
        }
        let mut response = Envelope::<()>::failure(status, code, msg).into_response();
        let retry_after = match self {
            Error::Locked { retry_after } => Some(retry_after),
            Error::Busy(_) => Some(1),
            _ => None,
        };
        if let Some(retry_after) = retry_after
            && let Ok(value) = axum::http::HeaderValue::from_str(&retry_after.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

impl Error {
    /// A rule broken by the value of `field`.
    pub fn invalid(field: &str, msg: &str) -> Error {
        Error::Invalid {
            field: field.to_owned(),
            msg: msg.to_owned(),
        }
    }
}

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Error::BodyTooLarge {
                limit: crate::request_limits::DEFAULT_MAX_BODY_BYTES,
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType(format!(
                "{}; send the body as JSON",
                rejection.body_text()
            )),
            _ => Error::InvalidBody(strip_axum_preamble(&rejection.body_text())),
        }
    }
}

/// axum prefixes serde's message with a sentence about deserializing; the
/// part after it (`segment_count: invalid type ...`) is what names the field.
fn strip_axum_preamble(text: &str) -> String {
    const PREAMBLES: [&str; 2] = [
        "Failed to deserialize the JSON body into the target type: ",
        "Failed to parse the request body as JSON: ",
    ];
    PREAMBLES
        .iter()
        .find_map(|p| text.strip_prefix(p))
        .unwrap_or(text)
        .to_owned()
}
