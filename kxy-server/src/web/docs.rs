//! The API description and its docs: `GET /openapi.json` (the OpenAPI 3.1
//! document of [`crate::openapi`]) and `GET /docs` (Swagger UI on it).
//!
//! Swagger UI is vendored (`assets/vendor/swagger-ui/`, swagger-ui-dist
//! 5.35.0, Apache-2.0; its README says how to update it) and embedded, so
//! the docs work offline and nothing is fetched at build or run time. The
//! page and its start-up script are ours: the script is a file of its own,
//! not inline, so the docs run under the admin page's own policy
//! ([`super::PAGE_CSP`], set by [`serve`]): scripts and styles from this
//! origin only, nothing inline. Swagger UI 5 renders under it, "Try it
//! out" included (it sets styles through the DOM, which `style-src` does
//! not govern; checked in Chromium, see the vendor README).
//!
//! Like the admin page, these answers are public, carry no envelope (the
//! document is the spec itself, not an API answer) and are revalidated by
//! `ETag` (see [`super::assets::serve`]).

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;

use super::assets::serve;
use crate::state::AppState;

/// The page: Swagger UI's styles and bundle, then our start-up script.
/// Relative URLs, so the docs also work behind a path prefix.
const PAGE: &[u8] = b"<!doctype html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<title>kxy API</title>
<link rel=\"icon\" href=\"data:,\">
<link rel=\"stylesheet\" href=\"docs/swagger-ui.css\">
</head>
<body>
<div id=\"swagger-ui\"></div>
<script src=\"docs/swagger-ui-bundle.js\"></script>
<script src=\"docs/init.js\"></script>
</body>
</html>
";

/// Starts Swagger UI on `/openapi.json` (relative to `/docs`). No
/// validator: Swagger UI would otherwise send the document to
/// validator.swagger.io.
const INIT: &[u8] = b"\"use strict\";
window.ui = SwaggerUIBundle({
  url: \"openapi.json\",
  dom_id: \"#swagger-ui\",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: \"BaseLayout\",
  validatorUrl: null,
  tryItOutEnabled: false,
  displayOperationId: true,
});
";

const BUNDLE: &[u8] = include_bytes!("assets/vendor/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("assets/vendor/swagger-ui/swagger-ui.css");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(page))
        .route("/docs/init.js", get(init))
        .route("/docs/swagger-ui-bundle.js", get(bundle))
        .route("/docs/swagger-ui.css", get(css))
}

/// The OpenAPI document, built once on the first request.
async fn openapi_json(headers: HeaderMap) -> Response {
    let mut response = serve(&headers, "application/json", crate::openapi::json());
    // JSON, not a page: the security-headers middleware gives it the API's
    // policy (nothing may load or run in it).
    response
        .headers_mut()
        .remove(header::CONTENT_SECURITY_POLICY);
    response
}

async fn page(headers: HeaderMap) -> Response {
    serve(&headers, "text/html; charset=utf-8", PAGE)
}

async fn init(headers: HeaderMap) -> Response {
    serve(&headers, "text/javascript; charset=utf-8", INIT)
}

async fn bundle(headers: HeaderMap) -> Response {
    serve(&headers, "text/javascript; charset=utf-8", BUNDLE)
}

async fn css(headers: HeaderMap) -> Response {
    serve(&headers, "text/css; charset=utf-8", CSS)
}
