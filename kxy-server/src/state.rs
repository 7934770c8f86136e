//! `AppState`: what every handler can reach (the services, built on one
//! store), and `Settings`, the server's policy from its command line.
//!
//! Routes depend on this module, and `app` composes the routes into the
//! router; neither the routes nor the state know the router.

use std::sync::Arc;

use crate::Error;
use crate::credentials::CredentialService;
use crate::databases::DatabaseService;
use crate::grants::GrantService;
use crate::identity::AuthService;
use crate::keys::KeyService;
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
