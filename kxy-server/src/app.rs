//! The application: shared state, the router, and serving it (see
//! [`crate::serving`] for the connection handling and [`crate::limits`] for
//! the limits every request is held to).

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
use crate::credentials::CredentialService;
use crate::databases::DatabaseService;
use crate::envelope::assign_trace_id;
use crate::grants::GrantService;
use crate::identity::AuthService;
use crate::keys::KeyService;
use crate::request_limits::{self, HttpLimits};
use crate::routes::{self, guard::guard};
use crate::segments::SegmentService;
use crate::vault::Vault;

/// What every handler can reach. Cheap to clone: services sit behind `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub segments: Arc<SegmentService>,
    pub auth: Arc<AuthService>,
    pub grants: Arc<GrantService>,
    pub keys: Arc<KeyService>,
    pub credentials: Arc<CredentialService>,
    pub databases: Arc<DatabaseService>,
    pub settings: Arc<Settings>,
}

/// The server's policy, from its command line.
#[derive(Clone)]
pub struct Settings {
    pub limits: kxy_core::AllocationLimits,
    pub missing: crate::store::MissingCounter,
    pub auth: crate::identity::AuthSettings,
    pub jwt_secret: Option<String>,
    /// Active API keys a user may hold.
    pub max_api_keys: usize,
    /// Whether `POST /api/segment/allocate` needs an API key.
    pub allocation_requires_key: bool,
    /// Seals stored secrets; disabled without `--master-key`.
    pub vault: Arc<Vault>,
    /// How often the scanner looks for new tables; `None` turns it off.
    pub scan_interval: Option<std::time::Duration>,
    /// Where registered databases may point (`--sqlite-dir`, `--database-hosts`).
    pub databases: crate::databases::DatabasePolicy,
}

impl AppState {
    /// Builds every service on `store`. The background watchers are not
    /// started here (see [`AppState::watch`]).
    pub async fn new(
        store: Arc<dyn crate::store::Store>,
        settings: Settings,
    ) -> Result<AppState, Error> {
        let segments = Arc::new(SegmentService::new(
            Arc::clone(&store),
            settings.limits,
            settings.missing,
        ));
        Self::with_segments(store, segments, settings).await
    }

    /// As [`AppState::new`], with an allocation service built by the caller
    /// (the server's, which watches its store).
    pub async fn with_segments(
        store: Arc<dyn crate::store::Store>,
        segments: Arc<SegmentService>,
        settings: Settings,
    ) -> Result<AppState, Error> {
        let auth = AuthService::new(
            Arc::clone(&store),
            settings.auth,
            settings.jwt_secret.as_deref(),
            settings.vault.token_signing_key(),
        )
        .await?;
        let grants = GrantService::new(Arc::clone(&store)).await?;
        let keys = KeyService::new(Arc::clone(&store), settings.max_api_keys);
        let credentials = Arc::new(CredentialService::new(
            Arc::clone(&store),
            Arc::clone(&settings.vault),
        ));
        let databases = Arc::new(DatabaseService::new(
            store,
            Arc::clone(&settings.vault),
            Arc::clone(&segments),
            settings.databases.clone(),
        ));
        Ok(AppState {
            segments,
            auth: Arc::new(auth),
            grants,
            keys,
            credentials,
            databases,
            settings: Arc::new(settings),
        })
    }

    /// Starts following changes made through other instances (access
    /// policy, API keys) every `every`, and writing back key use.
    pub fn watch(&self, every: std::time::Duration) {
        self.grants.watch(every);
        self.keys.watch(every, std::time::Duration::from_secs(5));
        if let Some(interval) = self.settings.scan_interval {
            self.databases.start_scanner(interval);
        }
    }
}

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
