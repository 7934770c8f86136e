//! Endpoint grants as a service: kxy answering "may this caller call this
//! endpoint?" for other services.
//!
//! Endpoints and grants are records; the decision runs on a compiled
//! [`Policy`] held in memory, so it costs a trie walk and a few hash lookups
//! (BENCHMARKS.md). The policy is rebuilt:
//!
//! - at once on this instance after any change made through it;
//! - before the next decision on every other instance: each decision first
//!   reads the store's policy version ([`FreshVersion`], shared by
//!   concurrent decisions), so a grant revoked, or a role deleted, before a
//!   check began never decides it, on any instance;
//! - within `--policy-refresh` (1 s by default) by a background task too,
//!   so an idle instance does not fall behind.
//!
//! Grants that expire need no change to stop: every decision compares their
//! `expires_at` with the clock.
//!
//! Each user and each role holds at most `--max-grants-per-subject` grants
//! ([`crate::limits`]).

use std::collections::HashSet;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use kxy_core::access::{Decision, Endpoint, Grant, Level, Policy, Subject};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::identity::tokens::{is_id, now, random_id};
use crate::limits::Limit;
use crate::store::fresh::FreshVersion;
use crate::store::records::typed;
use crate::store::{Expect, Store};

const ENDPOINTS: &str = "endpoints";
const GRANTS: &str = "grants";
/// Per subject, the places taken by grants not stored yet.
const GRANT_CLAIMS: &str = "grant_claims";

/// A compiled policy and the store version it was built from.
struct Compiled {
    policy: Policy,
    version: u64,
}

pub struct GrantService {
    store: Arc<dyn Store>,
    compiled: RwLock<Arc<Compiled>>,
    version: FreshVersion,
    /// One rebuild at a time; others wait for it rather than repeat it.
    rebuilding: tokio::sync::Mutex<()>,
    limit: Limit,
}

/// A decision as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Verdict {
    pub allowed: bool,
    #[schema(value_type = Option<crate::openapi::core_types::Level>)]
    pub level: Option<Level>,
    #[schema(value_type = crate::openapi::core_types::Level)]
    pub required: Level,
    pub endpoint_id: Option<String>,
    pub reason: String,
}

impl From<Decision<'_>> for Verdict {
    fn from(d: Decision<'_>) -> Self {
        Verdict {
            allowed: d.allowed,
            level: d.level,
            required: d.required,
            endpoint_id: d.endpoint.map(str::to_owned),
            reason: d.to_string(),
        }
    }
}

impl GrantService {
    pub async fn new(store: Arc<dyn Store>) -> Result<Arc<Self>, Error> {
        let compiled = compile(&*store).await?;
        Ok(Arc::new(GrantService {
            version: FreshVersion::new(Arc::clone(&store), "settings", "policy_version"),
            store,
            compiled: RwLock::new(Arc::new(compiled)),
            rebuilding: tokio::sync::Mutex::new(()),
            limit: Limit::new(
                GRANT_CLAIMS,
                "endpoint grants per user or role",
                "max-grants-per-subject",
                1000,
            ),
        }))
    }

    /// How many grants a user or a role may hold.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// Starts the background check for changes made by other instances.
    /// It stops when the service is dropped.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let service: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(service) = service.upgrade() else {
                    return;
                };
                if let Err(e) = service.reload_if_changed().await {
                    tracing::warn!("cannot refresh the access policy: {e}");
                }
            }
        });
    }

    /// Rebuilds the policy if the store's version moved since it was built,
    /// by a read that began after this call did.
    async fn reload_if_changed(&self) -> Result<(), Error> {
        let stored = self.version.read().await?;
        if stored != self.current().version {
            let _one = self.rebuilding.lock().await;
            if stored != self.current().version {
                self.reload().await?;
            }
        }
        Ok(())
    }

    async fn reload(&self) -> Result<(), Error> {
        let compiled = compile(&*self.store).await?;
        *self.compiled.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(compiled);
        Ok(())
    }

    /// Records a change for every instance, then rebuilds this one's policy.
    async fn changed(&self) -> Result<(), Error> {
        if let Some(version) = self
            .store
            .put_record("settings", "policy_version", "0", Expect::Any)
            .await?
        {
            self.version.wrote(version);
        }
        self.reload().await
    }

    fn current(&self) -> Arc<Compiled> {
        Arc::clone(&self.compiled.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Decides for a user with `roles` at the current time, by the policy
    /// as it stands in the store now.
    pub async fn check(
        &self,
        user_id: &str,
        roles: &[String],
        method: &str,
        path: &str,
        required: Level,
    ) -> Result<Verdict, Error> {
        self.reload_if_changed().await?;
        let compiled = self.current();
        Ok(compiled
            .policy
            .decide(user_id, roles, method, path, required, now())
            .into())
    }

    /// The level a user with `roles` holds on endpoint `endpoint_id` by its
    /// grants, now; `None` without a live grant. Reads the latest policy
    /// from the store first (a grant another instance just made or revoked
    /// counts), since this decides what a granter may hand on.
    pub async fn level_on(
        &self,
        endpoint_id: &str,
        user_id: &str,
        roles: &[String],
    ) -> Result<Option<Level>, Error> {
        self.reload_if_changed().await?;
        Ok(self
            .current()
            .policy
            .level_on(endpoint_id, user_id, roles, now()))
    }

    /// [`Self::check`] without building the answer, for the benchmark.
    pub fn allowed(
        &self,
        user_id: &str,
        roles: &[String],
        method: &str,
        path: &str,
        required: Level,
        now: u64,
    ) -> bool {
        let compiled = self.current();
        compiled
            .policy
            .decide(user_id, roles, method, path, required, now)
            .allowed
    }

    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        Ok(typed::load_all(&*self.store, ENDPOINTS)
            .await?
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    pub async fn endpoint(&self, id: &str) -> Result<Endpoint, Error> {
        let missing = || Error::NotFound {
            what: "endpoint",
            id: id.to_owned(),
        };
        if !is_id(id) {
            return Err(missing());
        }
        typed::load(&*self.store, ENDPOINTS, id)
            .await?
            .map(|(e, _)| e)
            .ok_or_else(missing)
    }

    /// Registers an endpoint, its path in the normal form checks match
    /// against; a second one with the same method and normal path is
    /// refused.
    pub async fn create_endpoint(
        &self,
        method: &str,
        path: &str,
        require_auth: bool,
    ) -> Result<Endpoint, Error> {
        let mut endpoint = Endpoint {
            id: random_id(),
            method: method.to_uppercase(),
            path: path.to_owned(),
            require_auth,
        };
        endpoint
            .normalize()
            .and_then(|()| endpoint.validate())
            .map_err(|e| Error::invalid("endpoint", &e.to_string()))?;
        if self.endpoints().await?.iter().any(|e| {
            // Stored paths may predate normalisation.
            let path = kxy_core::access::path::normalize(&e.path);
            e.method == endpoint.method && path.ok().as_deref() == Some(endpoint.path.as_str())
        }) {
            return Err(Error::Conflict(format!(
                "endpoint {} {} exists",
                endpoint.method, endpoint.path
            )));
        }
        typed::save(
            &*self.store,
            ENDPOINTS,
            &endpoint.id,
            &endpoint,
            Expect::Absent,
        )
        .await?;
        self.changed().await?;
        Ok(endpoint)
    }

    pub async fn update_endpoint(&self, id: &str, require_auth: bool) -> Result<Endpoint, Error> {
        let mut endpoint = self.endpoint(id).await?;
        endpoint.require_auth = require_auth;
        typed::save(&*self.store, ENDPOINTS, id, &endpoint, Expect::Any).await?;
        self.changed().await?;
        Ok(endpoint)
    }

    /// Deletes the endpoint and every grant on it.
    pub async fn delete_endpoint(&self, id: &str) -> Result<(), Error> {
        self.endpoint(id).await?;
        for grant in self
            .grants()
            .await?
            .into_iter()
            .filter(|g| g.endpoint_id == id)
        {
            self.store
                .delete_record(GRANTS, &grant.id, Expect::Any)
                .await?;
        }
        self.store.delete_record(ENDPOINTS, id, Expect::Any).await?;
        self.changed().await
    }

    pub async fn grants(&self) -> Result<Vec<Grant>, Error> {
        Ok(typed::load_all(&*self.store, GRANTS)
            .await?
            .into_iter()
            .map(|(g, _)| g)
            .collect())
    }

    /// Grants `level` on `endpoint_id` to `subject` (which the caller has
    /// checked exists), until `expires_at` if given.
    pub async fn create_grant(
        &self,
        subject: Subject,
        endpoint_id: &str,
        level: Level,
        expires_at: Option<u64>,
        granted_by: &str,
    ) -> Result<Grant, Error> {
        self.endpoint(endpoint_id).await?;
        if expires_at.is_some_and(|t| t <= now()) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let grant = Grant {
            id: random_id(),
            subject,
            endpoint_id: endpoint_id.to_owned(),
            level,
            expires_at,
            granted_by: granted_by.to_owned(),
        };
        let holder = match &grant.subject {
            Subject::User(id) => format!("user:{id}"),
            Subject::Role(name) => format!("role:{name}"),
        };
        let held = || async {
            Ok(self
                .grants()
                .await?
                .into_iter()
                .filter(|g| g.subject == grant.subject)
                .map(|g| g.id)
                .collect::<HashSet<_>>())
        };
        self.limit
            .claim(&*self.store, &holder, &grant.id, held)
            .await?;
        typed::save(&*self.store, GRANTS, &grant.id, &grant, Expect::Absent).await?;
        self.changed().await?;
        Ok(grant)
    }

    /// Deletes every grant to role `role` (the role is being deleted, and a
    /// new role of the same name must not inherit them).
    pub async fn delete_role_grants(&self, role: &str) -> Result<(), Error> {
        for grant in self
            .grants()
            .await?
            .into_iter()
            .filter(|g| g.subject == Subject::Role(role.to_owned()))
        {
            self.store
                .delete_record(GRANTS, &grant.id, Expect::Any)
                .await?;
        }
        self.changed().await
    }

    pub async fn delete_grant(&self, id: &str) -> Result<(), Error> {
        if !is_id(id) || !self.store.delete_record(GRANTS, id, Expect::Any).await? {
            return Err(Error::NotFound {
                what: "grant",
                id: id.to_owned(),
            });
        }
        self.changed().await
    }

    /// Stores many grants with one policy rebuild (for the benchmark and
    /// bulk imports); endpoints must exist.
    pub async fn import_grants(&self, grants: Vec<Grant>) -> Result<(), Error> {
        let store = &*self.store;
        // Concurrently, so the embedded store commits them in batches.
        let writes = grants
            .iter()
            .map(|grant| typed::save(store, GRANTS, &grant.id, grant, Expect::Any));
        for result in futures::future::join_all(writes).await {
            result?;
        }
        self.changed().await
    }
}

async fn policy_version(store: &dyn Store) -> Result<u64, Error> {
    Ok(store
        .record("settings", "policy_version")
        .await?
        .map_or(0, |r| r.version))
}

async fn compile(store: &dyn Store) -> Result<Compiled, Error> {
    // Read the version first: a change racing this load bumps it again,
    // so the next check reloads.
    let version = policy_version(store).await?;
    let endpoints = typed::load_all::<Endpoint>(store, ENDPOINTS)
        .await?
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    let grants = typed::load_all::<Grant>(store, GRANTS)
        .await?
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    Ok(Compiled {
        policy: Policy::compile(endpoints, grants),
        version,
    })
}
