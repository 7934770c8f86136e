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
use crate::openapi;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    /// `public` (default) or `local`.
    key_type: Option<KeyType>,
    /// A subset of the owner's permissions; absent means all of them.
    #[schema(value_type = Option<Vec<crate::openapi::core_types::Permission>>)]
    permissions: Option<Vec<Permission>>,
    /// Unix seconds; absent means no expiry.
    expires_at: Option<u64>,
}

/// A new key, with its secret.
#[derive(Serialize, utoipa::ToSchema)]
struct CreatedKey {
    #[serde(flatten)]
    key: ApiKeyView,
    /// The full key. Shown only in this answer; store it now.
    secret: String,
}

/// Creates an API key for the caller.
///
/// The answer holds the secret, shown only this once. A key may hold a
/// subset of the caller's permissions (its scope); a scoped key creates only
/// keys within its own scope.
#[utoipa::path(
    post,
    path = "/api/keys",
    tag = "keys",
    operation_id = "keys_create",
    request_body = NewKey,
    responses(
        (status = 200, description = "The key and its secret", body = openapi::Envelope<CreatedKey>),
        (
            status = 400,
            description = "A bad name, a permission the caller lacks, or a scoped key creating \
                           an unscoped one (40002)",
            body = openapi::ErrorEnvelope
        ),
        (status = 409, description = "The caller's key limit (`--max-api-keys`) is reached (40902)", body = openapi::ErrorEnvelope),
    )
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Another user's keys (needs keys:admin).
    user_id: Option<String>,
    /// Everyone's keys (needs keys:admin).
    all: Option<bool>,
}

/// Lists the caller's API keys (or another user's, or everyone's).
#[utoipa::path(
    get,
    path = "/api/keys",
    tag = "keys",
    operation_id = "keys_list",
    params(ListQuery),
    responses(
        (status = 200, description = "The keys, without hashes or secrets", body = openapi::Envelope<Vec<ApiKeyView>>),
        (status = 400, description = "An unknown or mistyped query parameter (40001)", body = openapi::ErrorEnvelope),
        (status = 403, description = "Another user's or everyone's keys without `keys:admin` (40301)", body = openapi::ErrorEnvelope),
    )
)]
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

/// What to change; absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyChange {
    status: Option<KeyStatus>,
    name: Option<String>,
}

/// Renames, disables or re-enables an API key.
///
/// One's own keys; anyone's with `keys:admin`.
#[utoipa::path(
    patch,
    path = "/api/keys/{id}",
    tag = "keys",
    operation_id = "keys_update",
    params(("id" = String, Path, description = "The key's id")),
    request_body = KeyChange,
    responses(
        (status = 200, description = "The changed key", body = openapi::Envelope<ApiKeyView>),
        (status = 404, description = "No such key of the caller's (40402)", body = openapi::ErrorEnvelope),
        (status = 409, description = "Enabling it would pass the key limit, or it changed meanwhile (40902)", body = openapi::ErrorEnvelope),
    )
)]
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

/// Deletes an API key.
///
/// One's own keys; anyone's with `keys:admin`.
#[utoipa::path(
    delete,
    path = "/api/keys/{id}",
    tag = "keys",
    operation_id = "keys_delete",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Deleted", body = openapi::Envelope<openapi::Null>),
        (status = 404, description = "No such key of the caller's (40402)", body = openapi::ErrorEnvelope),
    )
)]
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
