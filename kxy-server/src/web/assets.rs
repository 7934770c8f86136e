//! The page's files, embedded at compile time and served by path.
//!
//! Each file is listed once in [`ASSETS`] with its content type. They answer
//! `Cache-Control: no-cache` with an `ETag`, so a browser revalidates (cheap:
//! a 304) and never runs a stale script after an upgrade.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::PAGE_CSP;
use crate::Error;
use crate::state::AppState;

/// One embedded file.
pub struct Asset {
    /// The path under `/assets/`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $path)),
        }
    };
}

/// Every file under `/assets/`.
pub static ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("session.js", JS),
    asset!("screens/index.js", JS),
    asset!("screens/counters.js", JS),
    asset!("screens/databases.js", JS),
    asset!("screens/keys.js", JS),
    asset!("screens/credentials.js", JS),
    asset!("screens/users.js", JS),
    asset!("screens/roles.js", JS),
    asset!("screens/access.js", JS),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("vendor/htm-preact-3.1.1.js", JS),
];

const JS: &str = "text/javascript; charset=utf-8";

const INDEX: &[u8] = include_bytes!("assets/index.html");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve(&headers, "text/html; charset=utf-8", INDEX)
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(asset) => serve(&headers, asset.content_type, asset.body),
        None => Error::NotFound {
            what: "asset",
            id: path,
        }
        .into_response(),
    }
}

/// A strong validator for `body`: part of its SHA-256, computed once per file.
fn etag_of(body: &'static [u8]) -> String {
    static ETAGS: LazyLock<Mutex<HashMap<usize, String>>> = LazyLock::new(Default::default);
    let mut etags = ETAGS.lock().unwrap_or_else(PoisonError::into_inner);
    etags
        .entry(body.as_ptr() as usize)
        .or_insert_with(|| format!("\"{}\"", hex::encode(&Sha256::digest(body)[..12])))
        .clone()
}

/// Answers `body`, or 304 when the browser already holds it.
pub fn serve(request: &HeaderMap, content_type: &'static str, body: &'static [u8]) -> Response {
    let etag = etag_of(body);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, out);
            } else {
                out.push(path);
            }
        }
    }

    /// A file added to the page but not to [`ASSETS`] would be missing
    /// from the binary; an import of a file that is not served would break
    /// the page. Neither can happen unnoticed.
    #[test]
    fn every_page_file_is_served_and_every_import_resolves() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/assets");
        let mut files = Vec::new();
        files_under(&root, &mut files);
        let served: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        for file in &files {
            let relative = file.strip_prefix(&root).unwrap().to_str().unwrap();
            let is_page_file = matches!(
                file.extension().and_then(|e| e.to_str()),
                Some("js" | "css" | "svg" | "png")
            );
            if is_page_file && !relative.starts_with("vendor/swagger-ui/") {
                assert!(
                    served.contains(&relative),
                    "{relative} is not listed in ASSETS"
                );
            }
        }
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            let dir = Path::new(asset.path).parent().unwrap();
            for line in text
                .lines()
                .filter(|l| l.contains(" from \"./") || l.contains(" from \"../"))
            {
                let target = line.split('"').nth(1).unwrap();
                let resolved = normalize(&dir.join(target));
                assert!(
                    served.contains(&resolved.as_str()),
                    "{} imports {target}, which is not served",
                    asset.path
                );
            }
        }
    }

    fn normalize(path: &Path) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for part in path.iter().map(|p| p.to_str().unwrap()) {
            match part {
                "." => {}
                ".." => {
                    parts.pop();
                }
                other => parts.push(other),
            }
        }
        parts.join("/")
    }
}
