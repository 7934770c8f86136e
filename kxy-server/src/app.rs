//! The application: shared state, the router, and serving it.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::Error;
use crate::envelope::assign_trace_id;
use crate::routes;
use crate::segments::SegmentService;

/// The largest request body accepted. The largest legitimate body (an
/// allocation request with four 128-character names) is well under 1 KiB.
pub const BODY_LIMIT: usize = 16 * 1024;

/// What every handler can reach. Cheap to clone: services sit behind `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub segments: Arc<SegmentService>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::health::routes())
        .merge(routes::segments::routes())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Inside the trace-id layer, so a panic's 500 still carries the id.
        .layer(CatchPanicLayer::custom(|_| Error::Internal.into_response()))
        .layer(middleware::from_fn(assign_trace_id))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes
/// the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Answers are small and written at once; without TCP_NODELAY, Nagle's
    // algorithm meeting the client's delayed ACK can hold one back for
    // tens of milliseconds.
    let listener = listener.tap_io(|connection| {
        if let Err(e) = connection.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
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
