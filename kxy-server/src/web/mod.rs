//! What a browser reads: the admin page at `/` and its assets, the API docs
//! at `/docs` and the API description at `/openapi.json`.
//!
//! Everything is embedded in the binary (no build step, no CDN), so
//! `cargo run -p kxy-server` serves the page offline. The page talks to the
//! same JSON API as every other client; it has no routes of its own beyond
//! its files. [`security_headers`] gives every answer, API or page, the
//! headers that keep a browser from sniffing, framing or running anything the
//! page did not ship.

mod assets;
mod docs;
pub mod session;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

pub use assets::Asset;

/// The page's policy: scripts, styles, images and requests only from this
/// origin, no inline script or style, no plugins, never framed.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The policy of every other answer (JSON): nothing may run or load in it.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The routes that serve the page and its files (outside the API inventory:
/// they are public, answer with files, not the envelope, and read no state).
pub fn routes() -> Router<AppState> {
    assets::routes().merge(docs::routes())
}

/// Middleware: security headers on every answer. A handler that serves a
/// page sets its own Content-Security-Policy; everything else gets the
/// strictest one.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, API_CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in defaults {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    response
}
