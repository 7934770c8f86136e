//! The application: the router composed from every route, and serving it
//! (see [`crate::state`] for what handlers reach, [`crate::serving`] for the
//! connection handling and [`crate::limits`] for the limits every request is
//! held to).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::Error;
use crate::envelope::assign_trace_id;
use crate::request_limits::{self, HttpLimits};
use crate::routes::{self, guard::guard};
use crate::state::AppState;
use crate::web;

/// The whole HTTP surface: every route of [`routes::inventory`], each behind
/// the guard that enforces its access; under the default [`HttpLimits`].
pub fn router(state: AppState) -> Router {
    router_with(state, &HttpLimits::default())
}

/// [`router`] under `limits`.
pub fn router_with(state: AppState, limits: &HttpLimits) -> Router {
    let mut paths: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for spec in routes::inventory() {
        let guarded = spec.handler.route_layer(middleware::from_fn_with_state(
            (state.clone(), spec.access),
            guard,
        ));
        let merged = match paths.remove(spec.path) {
            Some(existing) => existing.merge(guarded),
            None => guarded,
        };
        paths.insert(spec.path, merged);
    }
    let mut router = Router::new();
    for (path, methods) in paths {
        router = router.route(path, methods);
    }
    router
        .merge(web::routes())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // Inside the trace-id layer, so a panic's 500 still carries the id.
        .layer(CatchPanicLayer::custom(|_| Error::Internal.into_response()))
        // Outside every route: the fallbacks and a panic's 500 are bounded
        // and marked no-store too.
        .layer(middleware::from_fn_with_state(
            Arc::new(limits.clone()),
            request_limits::enforce,
        ))
        .layer(middleware::from_fn(assign_trace_id))
        .layer(middleware::from_fn(web::security_headers))
        .with_state(state)
}

/// Serves `router` on `listener` under the default [`HttpLimits`] until
/// `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::serving::serve(listener, router, &HttpLimits::default(), shutdown).await
}

async fn route_not_found(request: Request) -> Response {
    Error::RouteNotFound {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
    .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    Error::MethodNotAllowed {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
    .into_response()
}
