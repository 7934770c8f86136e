//! API keys for programs (seeds 000 and 002).
//!
//! A key is created by a logged-in user, shown in full once, and stored as
//! SHA-256 only (`api_key_hashes/{hash}` → key id). It acts as its owner,
//! with the owner's current permissions, optionally narrowed to a subset
//! chosen at creation. Each user may hold `--max-api-keys` active keys; the
//! per-user index of keys is updated with compare-and-set, so the limit
//! holds even when several instances create keys at once.
//!
//! Verification is cached in-process (key hash → key, owner and effective
//! permissions). Disabling or deleting a key, or changing a user or role,
//! bumps a version in the store, and every verification first reads that
//! version by a store call that began after the request arrived
//! ([`FreshVersion`], one read per batch of concurrent requests): once a
//! revoke has returned, no instance accepts the key. A verification that
//! raced a change does not put what it read into the cache. Cache entries
//! also expire after a minute regardless.
//! `last_used_at` is kept in memory and written back in batches every few
//! seconds, not on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use kxy_core::apikey::ApiKeySecret;
use kxy_core::permission::{Permission, PermissionSet};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::Error;
use crate::identity::roles::RoleDirectory;
use crate::identity::tokens::{is_id, now, random_id};
use crate::identity::users::{UserDirectory, UserView};
use crate::identity::{Caller, Via};
use crate::store::fresh::FreshVersion;
use crate::store::records::typed;
use crate::store::{Expect, Store};

const KEYS: &str = "api_keys";
const KEY_HASHES: &str = "api_key_hashes";
const USER_KEYS: &str = "user_api_keys";
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Keys a user may keep, disabled ones included, per active key allowed.
const KEPT_PER_ACTIVE: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Disabled,
}

/// Seed 000's key types: public keys are used from outside, local ones by
/// services next to kxy. kxy records the type; policies may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Public,
    Local,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub display_prefix: String,
    /// SHA-256 of the key; the key itself is never stored.
    pub hash: String,
    pub status: KeyStatus,
    pub key_type: KeyType,
    /// If set, the key may do only this subset of its owner's permissions.
    pub permissions: Option<Vec<Permission>>,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
    pub expires_at: Option<u64>,
    /// The owner's key generation it was made (or last turned on) under;
    /// it works only while that is the owner's current one.
    #[serde(default)]
    pub key_generation: u64,
}

/// A key as lists show it: no hash, no secret.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub display_prefix: String,
    pub status: KeyStatus,
    pub key_type: KeyType,
    /// The key's scope; null: all of its owner's permissions.
    #[schema(value_type = Option<Vec<crate::openapi::core_types::Permission>>)]
    pub permissions: Option<Vec<Permission>>,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
    pub expires_at: Option<u64>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id.clone(),
            user_id: k.user_id.clone(),
            name: k.name.clone(),
            display_prefix: k.display_prefix.clone(),
            status: k.status,
            key_type: k.key_type,
            permissions: k.permissions.clone(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
        }
    }
}

/// Who a verified key acts as.
#[derive(Debug, Clone)]
pub struct KeyPrincipal {
    pub key_id: String,
    pub user: UserView,
    pub permissions: PermissionSet,
    /// Whether the key holds a subset named at creation (else it acts with
    /// all its owner's permissions).
    pub scoped: bool,
    /// The key's key generation (keys it creates carry it).
    pub key_generation: u64,
}

struct Cached {
    principal: KeyPrincipal,
    hash: String,
    expires_at: Option<u64>,
    loaded: Instant,
}

/// Who a new key is for, as the creating credential sees them.
pub struct KeyOwner<'a> {
    pub user: &'a UserView,
    /// The key generation of the creating credential (see [`ApiKey`]).
    pub key_generation: u64,
    /// The most the key may hold.
    pub permissions: &'a PermissionSet,
}

pub struct KeyService {
    store: Arc<dyn Store>,
    users: UserDirectory,
    roles: RoleDirectory,
    max_active: usize,
    /// The store's keys version the cached entries were read under.
    cache: Mutex<(u64, HashMap<String, Cached>)>,
    version: FreshVersion,
    /// Key id → last use (Unix seconds), not yet written back.
    last_used: Mutex<HashMap<String, u64>>,
}

/// The one answer for every key that does not work: unknown, mistyped,
/// disabled, expired or deleted look the same.
fn refused() -> Error {
    Error::InvalidToken("invalid API key".into())
}

impl KeyService {
    pub fn new(store: Arc<dyn Store>, max_active: usize) -> Arc<Self> {
        Arc::new(KeyService {
            users: UserDirectory::new(Arc::clone(&store)),
            roles: RoleDirectory::new(Arc::clone(&store)),
            version: FreshVersion::new(Arc::clone(&store), "settings", "keys_version"),
            store,
            max_active,
            cache: Mutex::new((0, HashMap::new())),
            last_used: Mutex::new(HashMap::new()),
        })
    }

    /// Starts the background task that follows other instances' changes
    /// and writes back last-use times. It stops when the service is dropped.
    pub fn watch(self: &Arc<Self>, every: Duration, flush_every: Duration) {
        let service: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut last_flush = Instant::now();
            loop {
                tokio::time::sleep(every).await;
                let Some(service) = service.upgrade() else {
                    return;
                };
                if let Err(e) = service.follow_changes().await {
                    tracing::warn!("cannot check API key changes: {e}");
                }
                if last_flush.elapsed() >= flush_every {
                    last_flush = Instant::now();
                    if let Err(e) = service.flush_last_used().await {
                        tracing::warn!("cannot record API key use: {e}");
                    }
                }
            }
        });
    }

    async fn follow_changes(&self) -> Result<(), Error> {
        let stored = self.version.read().await?;
        self.sync_cache(stored);
        Ok(())
    }

    /// Empties the cache if it was filled under another store version.
    fn sync_cache(&self, stored: u64) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != stored {
            *cache = (stored, HashMap::new());
        }
    }

    /// Drops every cached verification here and on the other instances
    /// (after a key, user or role changed).
    pub async fn invalidate(&self) -> Result<(), Error> {
        if let Some(version) = self
            .store
            .put_record("settings", "keys_version", "0", Expect::Any)
            .await?
        {
            self.version.wrote(version);
        }
        // Whatever this instance cached is from before the change.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        *cache = (u64::MAX, HashMap::new());
        Ok(())
    }

    /// Writes back last-use times gathered since the previous flush. A key
    /// changed meanwhile keeps its change; its use time waits a round.
    pub async fn flush_last_used(&self) -> Result<(), Error> {
        let used: Vec<(String, u64)> = self
            .last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (id, at) in used {
            if let Some((mut key, version)) = typed::load::<ApiKey>(&*self.store, KEYS, &id).await?
            {
                key.last_used_at = Some(at.max(key.last_used_at.unwrap_or(0)));
                typed::save(&*self.store, KEYS, &id, &key, Expect::Version(version)).await?;
            }
        }
        Ok(())
    }

    /// Creates a key for `owner`; returns it and the full secret, which is
    /// never available again.
    pub async fn create(
        &self,
        owner: KeyOwner<'_>,
        name: &str,
        key_type: KeyType,
        permissions: Option<Vec<Permission>>,
        expires_at: Option<u64>,
    ) -> Result<(ApiKeyView, ApiKeySecret), Error> {
        let KeyOwner {
            user: owner,
            key_generation,
            permissions: owner_permissions,
        } = owner;
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::invalid("name", "use 1 to 100 characters"));
        }
        if expires_at.is_some_and(|t| t <= now()) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        if let Some(wanted) = &permissions
            && let Some(extra) = wanted.iter().find(|p| !owner_permissions.allows(p))
        {
            return Err(Error::invalid(
                "permissions",
                &format!("a key cannot have {extra}, which its owner does not hold"),
            ));
        }
        let secret = ApiKeySecret::generate();
        let key = ApiKey {
            id: random_id(),
            user_id: owner.id.clone(),
            name: name.to_owned(),
            display_prefix: secret.display_prefix(),
            hash: secret.hash(),
            status: KeyStatus::Active,
            key_type,
            permissions,
            created_at: now(),
            last_used_at: None,
            expires_at,
            key_generation,
        };
        // The record first, then the slot: a create racing this one counts
        // every key whose id is in the index, so the id must never be there
        // before its record. The key works only once its hash is saved.
        typed::save(&*self.store, KEYS, &key.id, &key, Expect::Absent).await?;
        if let Err(e) = self.claim_slot(&owner.id, &key.id, None).await {
            self.store.delete_record(KEYS, &key.id, Expect::Any).await?;
            return Err(e);
        }
        typed::save(&*self.store, KEY_HASHES, &key.hash, &key.id, Expect::Absent).await?;
        Ok((ApiKeyView::from(&key), secret))
    }

    /// Adds `key_id` to the user's index if fewer than the limit are active
    /// (not counting `except`, a key being re-enabled).
    async fn claim_slot(
        &self,
        user_id: &str,
        key_id: &str,
        except: Option<&str>,
    ) -> Result<(), Error> {
        loop {
            let loaded = typed::load::<Vec<String>>(&*self.store, USER_KEYS, user_id).await?;
            let (mut ids, expect) = match loaded {
                Some((ids, version)) => (ids, Expect::Version(version)),
                None => (Vec::new(), Expect::Absent),
            };
            let mut active = 0;
            for id in ids.iter().filter(|id| Some(id.as_str()) != except) {
                if let Some((key, _)) = typed::load::<ApiKey>(&*self.store, KEYS, id).await?
                    && key.status == KeyStatus::Active
                    && key.expires_at.is_none_or(|t| t > now())
                {
                    active += 1;
                }
            }
            // Disabled keys count too, in a wider bound: each create and
            // each password reset reads every key of the user.
            let total_limit = self.max_active.saturating_mul(KEPT_PER_ACTIVE);
            if !ids.iter().any(|id| id == key_id) && ids.len() >= total_limit {
                return Err(Error::Conflict(format!(
                    "at most {total_limit} API keys per user, disabled ones included; delete one \
                     first"
                )));
            }
            if active >= self.max_active {
                return Err(Error::Conflict(format!(
                    "at most {} active API keys per user; disable or delete one first",
                    self.max_active
                )));
            }
            if !ids.iter().any(|id| id == key_id) {
                ids.push(key_id.to_owned());
            }
            if typed::save(&*self.store, USER_KEYS, user_id, &ids, expect)
                .await?
                .is_some()
            {
                return Ok(());
            }
            // Another request changed the index meanwhile: count again.
        }
    }

    /// Disables every active key of `user_id` (their password was reset or
    /// changed: whoever had the account may have made keys), on every
    /// instance at once. The owner may turn them on again after logging in.
    pub async fn revoke_all(&self, user_id: &str) -> Result<usize, Error> {
        let mut revoked = 0;
        let ids = typed::load::<Vec<String>>(&*self.store, USER_KEYS, user_id)
            .await?
            .map_or_else(Vec::new, |(ids, _)| ids);
        for id in ids {
            while let Some((mut key, version)) =
                typed::load::<ApiKey>(&*self.store, KEYS, &id).await?
            {
                if key.status == KeyStatus::Disabled {
                    break;
                }
                key.status = KeyStatus::Disabled;
                if typed::save(&*self.store, KEYS, &key.id, &key, Expect::Version(version))
                    .await?
                    .is_some()
                {
                    revoked += 1;
                    break;
                }
            }
        }
        self.invalidate().await?;
        Ok(revoked)
    }

    /// The keys of `user_id`, or of everyone.
    pub async fn list(&self, user_id: Option<&str>) -> Result<Vec<ApiKeyView>, Error> {
        let keys = typed::load_all::<ApiKey>(&*self.store, KEYS).await?;
        Ok(keys
            .iter()
            .filter(|(k, _)| user_id.is_none_or(|u| k.user_id == u))
            .map(|(k, _)| ApiKeyView::from(k))
            .collect())
    }

    /// The key `id` as seen by a caller: another user's key is "not found"
    /// unless the caller administers keys.
    async fn visible(
        &self,
        id: &str,
        caller: &UserView,
        admin: bool,
    ) -> Result<(ApiKey, u64), Error> {
        let missing = || Error::NotFound {
            what: "API key",
            id: id.to_owned(),
        };
        if !is_id(id) {
            return Err(missing());
        }
        match typed::load::<ApiKey>(&*self.store, KEYS, id).await? {
            Some((key, version)) if admin || key.user_id == caller.id => Ok((key, version)),
            _ => Err(missing()),
        }
    }

    /// Renames a key or turns it on or off. Turning one on is acting with
    /// its rights again, so: a scoped key may turn on only keys within its
    /// own scope; a key administrator turns on another user's key only if
    /// holding every permission of its owner, and never one that the
    /// owner's password reset or change ended (only the owner, logged in
    /// anew, may).
    pub async fn update(
        &self,
        id: &str,
        caller: &Caller,
        admin: bool,
        status: Option<KeyStatus>,
        name: Option<String>,
    ) -> Result<ApiKeyView, Error> {
        let (mut key, version) = self.visible(id, &caller.user, admin).await?;
        if status == Some(KeyStatus::Active) {
            self.may_turn_on(&mut key, caller).await?;
        }
        if let Some(name) = name {
            let name = name.trim();
            if name.is_empty() || name.len() > 100 {
                return Err(Error::invalid("name", "use 1 to 100 characters"));
            }
            key.name = name.to_owned();
        }
        if let Some(status) = status {
            if status == KeyStatus::Active && key.status == KeyStatus::Disabled {
                self.claim_slot(&key.user_id, &key.id, Some(&key.id))
                    .await?;
            }
            key.status = status;
        }
        if typed::save(&*self.store, KEYS, id, &key, Expect::Version(version))
            .await?
            .is_none()
        {
            return Err(Error::Conflict(format!(
                "API key {id} was changed meanwhile; retry"
            )));
        }
        self.invalidate().await?;
        Ok(ApiKeyView::from(&key))
    }

    /// Checks that `caller` may turn `key` on (see [`Self::update`]), and
    /// stamps it with the owner's current key generation.
    async fn may_turn_on(&self, key: &mut ApiKey, caller: &Caller) -> Result<(), Error> {
        let refuse = |why: &str| {
            Err(Error::Forbidden {
                permission: why.to_owned(),
            })
        };
        if matches!(caller.via, Via::ApiKey { scoped: true, .. }) {
            let within = key
                .permissions
                .as_ref()
                .is_some_and(|wanted| wanted.iter().all(|p| caller.permissions.allows(p)));
            if !within {
                return refuse("the rights of the key it turns on (this API key holds fewer)");
            }
        }
        if key.user_id == caller.user.id {
            // The caller's credential is of the owner's current generation
            // (an older one is refused before it gets here).
            key.key_generation = caller.key_generation;
            return Ok(());
        }
        let Some((owner, _)) = self.users.get(&key.user_id).await? else {
            return refuse("the key's owner, who no longer exists");
        };
        if owner.key_generation != key.key_generation {
            return refuse(
                "the key's owner: a password reset or change ended this key, and only its \
                 owner may turn it on again",
            );
        }
        let owner_permissions = self.roles.permissions_of(&owner.roles).await?;
        caller.require_all(&owner_permissions, "the key's owner")
    }

    pub async fn delete(&self, id: &str, caller: &UserView, admin: bool) -> Result<(), Error> {
        let (key, _) = self.visible(id, caller, admin).await?;
        self.store
            .delete_record(KEY_HASHES, &key.hash, Expect::Any)
            .await?;
        self.store.delete_record(KEYS, id, Expect::Any).await?;
        self.invalidate().await?;
        loop {
            let Some((mut ids, version)) =
                typed::load::<Vec<String>>(&*self.store, USER_KEYS, &key.user_id).await?
            else {
                return Ok(());
            };
            ids.retain(|k| k != id);
            if typed::save(
                &*self.store,
                USER_KEYS,
                &key.user_id,
                &ids,
                Expect::Version(version),
            )
            .await?
            .is_some()
            {
                return Ok(());
            }
        }
    }

    /// Verifies a presented key (and, in the pair form, that it belongs to
    /// `claimed_id`); returns who it acts as.
    pub async fn verify(
        &self,
        presented: &str,
        claimed_id: Option<&str>,
    ) -> Result<KeyPrincipal, Error> {
        let secret = ApiKeySecret::parse(presented).map_err(|_| refused())?;
        let hash = secret.hash();
        let version = self.version.read().await?;
        self.sync_cache(version);
        let principal = match self.cached(&hash) {
            Some(principal) => principal,
            None => self.load(&hash, version).await?,
        };
        if claimed_id.is_some_and(|id| id != principal.key_id) {
            return Err(refused());
        }
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(principal.key_id.clone(), now());
        Ok(principal)
    }

    fn cached(&self, hash: &str) -> Option<KeyPrincipal> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.1.get(hash)?;
        let fresh =
            entry.loaded.elapsed() < CACHE_TTL && entry.expires_at.is_none_or(|t| t > now());
        // The map is keyed by the hash already; comparing again in
        // constant time keeps the check independent of how the map probes.
        let same = bool::from(entry.hash.as_bytes().ct_eq(hash.as_bytes()));
        (fresh && same).then(|| entry.principal.clone())
    }

    /// Reads the key behind `hash` from the store; caches it only if the
    /// store's keys version is still `version` as far as this instance
    /// knows (a change seen meanwhile may have made what was read stale).
    async fn load(&self, hash: &str, version: u64) -> Result<KeyPrincipal, Error> {
        let (id, _) = typed::load::<String>(&*self.store, KEY_HASHES, hash)
            .await?
            .ok_or_else(refused)?;
        let (key, _) = typed::load::<ApiKey>(&*self.store, KEYS, &id)
            .await?
            .ok_or_else(refused)?;
        let usable = bool::from(key.hash.as_bytes().ct_eq(hash.as_bytes()))
            && key.status == KeyStatus::Active
            && key.expires_at.is_none_or(|t| t > now());
        if !usable {
            return Err(refused());
        }
        let Some((owner, _)) = self.users.get(&key.user_id).await? else {
            return Err(refused());
        };
        if !owner.active || owner.key_generation != key.key_generation {
            return Err(refused());
        }
        // Every user holds the self-service permissions on their own
        // records, so a key may carry them whatever the owner's roles.
        let owner_permissions = self
            .roles
            .permissions_of(&owner.roles)
            .await?
            .with(crate::routes::self_service());
        let permissions = match &key.permissions {
            Some(subset) => subset
                .iter()
                .cloned()
                .collect::<PermissionSet>()
                .within(&owner_permissions),
            None => owner_permissions,
        };
        let principal = KeyPrincipal {
            key_id: key.id.clone(),
            user: UserView::from(&owner),
            permissions,
            scoped: key.permissions.is_some(),
            key_generation: key.key_generation,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 == version {
            cache.1.insert(
                hash.to_owned(),
                Cached {
                    principal: principal.clone(),
                    hash: hash.to_owned(),
                    expires_at: key.expires_at,
                    loaded: Instant::now(),
                },
            );
        }
        Ok(principal)
    }
}
