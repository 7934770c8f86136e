//! `GET /health`: is this instance up, and can it reach its store?
//!
//! Load balancers take an instance out of rotation on a non-2xx answer, so an
//! unreachable store answers 503: the instance cannot allocate anyway.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{Access, RouteSpec, route};
use crate::app::AppState;
use crate::envelope::Envelope;

pub fn routes() -> Vec<RouteSpec> {
    vec![route(Method::GET, "/health", Access::Public, health)]
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    store: StoreHealth,
}

#[derive(Serialize)]
struct StoreHealth {
    backend: &'static str,
    location: String,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn health(State(state): State<AppState>) -> Response {
    let store = state.segments.store();
    let ping = store.ping().await;
    let health = |status, error: Option<String>| Health {
        status,
        version: env!("CARGO_PKG_VERSION"),
        store: StoreHealth {
            backend: store.backend(),
            location: store.location(),
            reachable: error.is_none(),
            error,
        },
    };
    match ping {
        Ok(()) => Envelope::ok("ok", health("ok", None)).into_response(),
        Err(e) => {
            let msg = e.to_string();
            Envelope::failure_with(
                StatusCode::SERVICE_UNAVAILABLE,
                50301,
                msg.clone(),
                health("unavailable", Some(msg)),
            )
            .into_response()
        }
    }
}
