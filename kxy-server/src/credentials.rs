//! Stored upstream credentials (seed 001): each user's model endpoints and
//! their API keys.
//!
//! Every operation is confined to the owner: another user's id is "not
//! found" for reading, changing and deleting alike, so ids reveal nothing.
//! The API key is sealed by the [`Vault`], bound to the record
//! (`credential:<id>:<owner>`); the store keeps the sealed value and the
//! masked form that every answer shows (seed rule: first 4 + `*`… + last
//! 4). Only the `credentials:reveal` permission, meant for a trusted
//! service that calls the upstream model, reads the plaintext. Each user
//! holds at most `--max-credentials` of them ([`crate::limits`]).

use std::collections::HashSet;
use std::sync::Arc;

use kxy_core::mask_secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::identity::tokens::{is_id, now, random_id};
use crate::limits::Limit;
use crate::store::records::typed;
use crate::store::{Expect, Store};
use crate::vault::{Sealed, Vault};

const CREDENTIALS: &str = "credentials";
/// Per user, the places taken by creates not stored yet.
const CLAIMS: &str = "credential_claims";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCredential {
    id: String,
    user_id: String,
    name: Option<String>,
    model_id: String,
    base_url: Option<String>,
    api_key: Sealed,
    api_key_masked: String,
    config: Option<Value>,
    created_at: u64,
    updated_at: u64,
}

/// A credential as answers show it: the key only masked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CredentialView {
    pub id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub model_id: String,
    pub base_url: Option<String>,
    pub api_key_masked: String,
    pub config: Option<Value>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl From<&StoredCredential> for CredentialView {
    fn from(c: &StoredCredential) -> Self {
        CredentialView {
            id: c.id.clone(),
            user_id: c.user_id.clone(),
            name: c.name.clone(),
            model_id: c.model_id.clone(),
            base_url: c.base_url.clone(),
            api_key_masked: c.api_key_masked.clone(),
            config: c.config.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// The fields a create or update may set; `None` keeps what is there.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialFields {
    pub name: Option<String>,
    pub model_id: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub config: Option<Value>,
}

fn context(id: &str, user_id: &str) -> String {
    format!("credential:{id}:{user_id}")
}

fn check(fields: &CredentialFields) -> Result<(), Error> {
    if let Some(name) = &fields.name
        && name.len() > 200
    {
        return Err(Error::invalid("name", "at most 200 characters"));
    }
    if let Some(model) = &fields.model_id
        && (model.trim().is_empty() || model.len() > 200)
    {
        return Err(Error::invalid("model_id", "use 1 to 200 characters"));
    }
    if let Some(url) = &fields.base_url {
        let ok = (url.starts_with("http://") || url.starts_with("https://")) && url.len() <= 2048;
        if !ok {
            return Err(Error::invalid(
                "base_url",
                "must be an http:// or https:// URL",
            ));
        }
    }
    // An empty key is allowed: a local model server may need none.
    if let Some(key) = &fields.api_key
        && key.len() > 4096
    {
        return Err(Error::invalid("api_key", "at most 4096 characters"));
    }
    if let Some(config) = &fields.config
        && !config.is_object()
    {
        return Err(Error::invalid("config", "must be a JSON object"));
    }
    Ok(())
}

pub struct CredentialService {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    limit: Limit,
}

impl CredentialService {
    pub fn new(store: Arc<dyn Store>, vault: Arc<Vault>) -> Self {
        CredentialService {
            store,
            vault,
            limit: Limit::new(
                CLAIMS,
                "stored credentials per user",
                "max-credentials",
                100,
            ),
        }
    }

    /// How many credentials a user may hold.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    async fn ids_of(&self, owner: &str) -> Result<HashSet<String>, Error> {
        let all = typed::load_all::<StoredCredential>(&*self.store, CREDENTIALS).await?;
        Ok(all
            .into_iter()
            .filter(|(c, _)| c.user_id == owner)
            .map(|(c, _)| c.id)
            .collect())
    }

    pub async fn create(
        &self,
        owner: &str,
        fields: CredentialFields,
    ) -> Result<CredentialView, Error> {
        check(&fields)?;
        let model_id = fields
            .model_id
            .ok_or_else(|| Error::invalid("model_id", "is required"))?;
        let api_key = fields
            .api_key
            .ok_or_else(|| Error::invalid("api_key", "is required"))?;
        let id = random_id();
        self.limit
            .claim(&*self.store, owner, &id, || self.ids_of(owner))
            .await?;
        let now = now();
        let credential = StoredCredential {
            api_key: self.vault.seal(&api_key, &context(&id, owner))?,
            api_key_masked: mask_secret(&api_key),
            id,
            user_id: owner.to_owned(),
            name: fields.name,
            model_id,
            base_url: fields.base_url,
            config: fields.config,
            created_at: now,
            updated_at: now,
        };
        typed::save(
            &*self.store,
            CREDENTIALS,
            &credential.id,
            &credential,
            Expect::Absent,
        )
        .await?;
        Ok(CredentialView::from(&credential))
    }

    pub async fn list(&self, owner: &str) -> Result<Vec<CredentialView>, Error> {
        let all = typed::load_all::<StoredCredential>(&*self.store, CREDENTIALS).await?;
        Ok(all
            .iter()
            .filter(|(c, _)| c.user_id == owner)
            .map(|(c, _)| c.into())
            .collect())
    }

    /// The owner's credential, or "not found" for anyone else's.
    async fn owned(&self, owner: Option<&str>, id: &str) -> Result<(StoredCredential, u64), Error> {
        let missing = || Error::NotFound {
            what: "credential",
            id: id.to_owned(),
        };
        if !is_id(id) {
            return Err(missing());
        }
        match typed::load::<StoredCredential>(&*self.store, CREDENTIALS, id).await? {
            Some((c, version)) if owner.is_none_or(|o| o == c.user_id) => Ok((c, version)),
            _ => Err(missing()),
        }
    }

    pub async fn get(&self, owner: &str, id: &str) -> Result<CredentialView, Error> {
        Ok(CredentialView::from(&self.owned(Some(owner), id).await?.0))
    }

    /// Changes the given fields; without a new `api_key` the old one stays.
    pub async fn update(
        &self,
        owner: &str,
        id: &str,
        fields: CredentialFields,
    ) -> Result<CredentialView, Error> {
        check(&fields)?;
        let (mut c, version) = self.owned(Some(owner), id).await?;
        if let Some(api_key) = &fields.api_key {
            c.api_key = self.vault.seal(api_key, &context(&c.id, &c.user_id))?;
            c.api_key_masked = mask_secret(api_key);
        }
        if fields.name.is_some() {
            c.name = fields.name;
        }
        if let Some(model_id) = fields.model_id {
            c.model_id = model_id;
        }
        if fields.base_url.is_some() {
            c.base_url = fields.base_url;
        }
        if fields.config.is_some() {
            c.config = fields.config;
        }
        c.updated_at = now();
        if typed::save(&*self.store, CREDENTIALS, id, &c, Expect::Version(version))
            .await?
            .is_none()
        {
            return Err(Error::Conflict(format!(
                "credential {id} was changed meanwhile; retry"
            )));
        }
        Ok(CredentialView::from(&c))
    }

    pub async fn delete(&self, owner: &str, id: &str) -> Result<(), Error> {
        self.owned(Some(owner), id).await?;
        self.store
            .delete_record(CREDENTIALS, id, Expect::Any)
            .await?;
        Ok(())
    }

    /// The plaintext API key of any credential (`credentials:reveal`).
    /// The plaintext of `owner`'s credential `id`. Confined to the owner
    /// like every other operation: `credentials:reveal` lets a user (or a
    /// service's account) read its own secrets, never another user's.
    pub async fn reveal(&self, owner: &str, id: &str) -> Result<String, Error> {
        let (c, _) = self.owned(Some(owner), id).await?;
        self.vault.open(&c.api_key, &context(&c.id, &c.user_id))
    }

    /// Re-seals every credential under the vault's current key; returns how
    /// many were re-sealed and how many were current already.
    pub async fn rotate(&self) -> Result<(usize, usize), Error> {
        let (mut resealed, mut current) = (0, 0);
        for (mut c, version) in
            typed::load_all::<StoredCredential>(&*self.store, CREDENTIALS).await?
        {
            if self.vault.is_current(&c.api_key) {
                current += 1;
                continue;
            }
            let ctx = context(&c.id, &c.user_id);
            let plaintext = self
                .vault
                .open(&c.api_key, &ctx)
                .map_err(|e| Error::Sealed(format!("credential {}: {e}", c.id)))?;
            c.api_key = self.vault.seal(&plaintext, &ctx)?;
            if typed::save(
                &*self.store,
                CREDENTIALS,
                &c.id,
                &c,
                Expect::Version(version),
            )
            .await?
            .is_none()
            {
                return Err(Error::Conflict(format!(
                    "credential {} changed during rotation; run it again",
                    c.id
                )));
            }
            resealed += 1;
        }
        Ok((resealed, current))
    }
}
