//! `GET /health`: is this instance up, and can it reach its store?
//!
//! Load balancers take an instance out of rotation on a non-2xx answer, so an
//! instance that cannot allocate answers 503: its store is unreachable, or
//! not durable enough for `--redis-durability`. The answer also says how
//! durable the store is and when that was last checked; a store trusted
//! under `--redis-durability unsafe` is listed in `warnings`. The answer is
//! public: it shows no filesystem path and no password.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{Access, RouteSpec, route};
use crate::envelope::Envelope;
use crate::openapi;
use crate::state::AppState;
use crate::store::durability::DurabilityReport;

pub fn routes() -> Vec<RouteSpec> {
    vec![route(Method::GET, "/health", Access::Public, health)]
}

/// The instance's state.
#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok`, or `unavailable` when the instance cannot allocate.
    #[schema(example = "ok")]
    status: &'static str,
    version: &'static str,
    store: StoreHealth,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// The store this instance allocates from.
#[derive(Serialize, utoipa::ToSchema)]
struct StoreHealth {
    /// `embedded` or `redis`.
    backend: &'static str,
    /// For Redis, its URL without password or socket path; for the embedded
    /// store, just `embedded` (its path stays in the log).
    location: String,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    durability: DurabilityReport,
}

/// Where the store is, for a public answer: the embedded store's location
/// is a file path, which stays in the log; a Redis URL is shown without
/// its password or socket path (see `store::redis_url`).
fn public_location(store: &dyn crate::store::Store) -> String {
    match store.backend() {
        "redis" => store.location(),
        backend => backend.to_owned(),
    }
}

/// Whether this instance is up and can reach its store.
///
/// Load balancers take an instance out of rotation on a non-2xx answer: an
/// instance that cannot allocate (its store is unreachable, or not durable
/// enough for `--redis-durability`) answers 503, with the same `data`.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    operation_id = "health_check",
    responses(
        (status = 200, description = "The instance can allocate", body = openapi::Envelope<Health>),
        (
            status = 503,
            description = "The instance cannot allocate: the store is unreachable (50301), not \
                           durable enough (50304), or untrusted; `data` says why",
            body = openapi::Envelope<Health>
        ),
    )
)]
async fn health(State(state): State<AppState>) -> Response {
    let store = state.segments.store();
    let guard = state.segments.guard();
    let ping = store.ping().await;
    let durability = guard.report();
    let warnings = if guard.trusted_unsafely() {
        vec![durability.detail.clone()]
    } else {
        Vec::new()
    };
    let failure = match (&ping, guard.admit()) {
        (Err(e), _) => Some((50301, e.to_string())),
        (Ok(()), Err(e)) => Some((e.status_and_code().1, e.to_string())),
        (Ok(()), Ok(_)) => None,
    };
    let health = Health {
        status: if failure.is_some() {
            "unavailable"
        } else {
            "ok"
        },
        version: env!("CARGO_PKG_VERSION"),
        store: StoreHealth {
            backend: store.backend(),
            location: public_location(store.as_ref()),
            reachable: ping.is_ok(),
            error: ping.err().map(|e| e.to_string()),
            durability,
        },
        warnings,
    };
    match failure {
        None => Envelope::ok("ok", health).into_response(),
        Some((code, msg)) => {
            Envelope::failure_with(StatusCode::SERVICE_UNAVAILABLE, code, msg, health)
                .into_response()
        }
    }
}
