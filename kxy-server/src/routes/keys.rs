//! API keys of the logged-in user; administrators (`keys:admin`) see and
//! manage everyone's.

use axum::extract::{Path, State};
use axum::http::Method;
use kxy_core::permission::Permission;
use serde::{Deserialize, Serialize};

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::envelope::Envelope;
use crate::extract::{ApiJson, ApiQuery};
use crate::identity::{Caller, Via};
use crate::keys::{ApiKeyView, KeyOwner, KeyStatus, KeyType};
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    vec![
        route(Method::POST, "/api/keys", Access::Own("keys:write"), create),
        route(Method::GET, "/api/keys", Access::Own("keys:read"), list),
        route(
            Method::PATCH,
            "/api/keys/{id}",
            Access::Own("keys:write"),
            update,
        ),
        route(
            Method::DELETE,
            "/api/keys/{id}",
            Access::Own("keys:write"),
            delete,
        ),
    ]
}

/// Whether the caller administers everyone's keys.
fn key_admin(caller: &Caller) -> bool {
    caller
        .permissions
        .allows(&"keys:admin".parse::<Permission>().expect("valid"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    key_type: Option<KeyType>,
    /// A subset of the owner's permissions; absent means all of them.
    permissions: Option<Vec<Permission>>,
    /// Unix seconds; absent means no expiry.
    expires_at: Option<u64>,
}

#[derive(Serialize)]
struct CreatedKey {
    #[serde(flatten)]
    key: ApiKeyView,
    /// The full key. Shown only in this answer; store it now.
    secret: String,
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<Envelope<CreatedKey>, Error> {
    // What the new key may hold: all the caller's rights. A login session
    // holds the self-service permissions on top of its roles'; a key holds
    // what it was given (and an unscoped key, all its owner's).
    let rights = match caller.via {
        Via::Token(_) => caller.permissions.clone().with(super::self_service()),
        Via::ApiKey { scoped, .. } => {
            if scoped && body.permissions.is_none() {
                return Err(Error::invalid(
                    "permissions",
                    "an API key with a limited scope can only create keys that name their \
                     permissions, each within its own scope",
                ));
            }
            caller.permissions.clone()
        }
    };
    let (key, secret) = state
        .keys
        .create(
            KeyOwner {
                user: &caller.user,
                key_generation: caller.key_generation,
                permissions: &rights,
            },
            &body.name,
            body.key_type.unwrap_or(KeyType::Public),
            body.permissions,
            body.expires_at,
        )
        .await?;
    let created = CreatedKey {
        key,
        secret: secret.expose().to_owned(),
    };
    Ok(Envelope::ok(
        "API key created; the secret is shown only now",
        created,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Another user's keys (needs keys:admin).
    user_id: Option<String>,
    /// Everyone's keys (needs keys:admin).
    all: Option<bool>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Envelope<Vec<ApiKeyView>>, Error> {
    let wants_others =
        query.all == Some(true) || query.user_id.as_ref().is_some_and(|u| *u != caller.user.id);
    if wants_others && !key_admin(&caller) {
        return Err(Error::Forbidden {
            permission: "keys:admin".into(),
        });
    }
    let user = match (query.all, &query.user_id) {
        (Some(true), _) => None,
        (_, Some(user)) => Some(user.as_str()),
        _ => Some(caller.user.id.as_str()),
    };
    Ok(Envelope::ok("ok", state.keys.list(user).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyChange {
    status: Option<KeyStatus>,
    name: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<KeyChange>,
) -> Result<Envelope<ApiKeyView>, Error> {
    let key = state
        .keys
        .update(&id, &caller, key_admin(&caller), change.status, change.name)
        .await?;
    Ok(Envelope::ok("API key updated", key))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Envelope<()>, Error> {
    state
        .keys
        .delete(&id, &caller.user, key_admin(&caller))
        .await?;
    Ok(Envelope::ok("API key deleted", ()))
}
