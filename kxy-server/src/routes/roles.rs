//! Roles and the permission catalog.

use axum::extract::{Path, State};
use axum::http::Method;
use kxy_core::permission::{Permission, PermissionSet};
use serde::Deserialize;

use super::{Access, RouteSpec, permission_catalog, route};
use crate::Error;
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::identity::Caller;
use crate::identity::roles::Role;
use crate::openapi;
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    let read = Access::Permission("roles:read");
    let write = Access::Permission("roles:write");
    vec![
        route(Method::GET, "/api/roles", read, list),
        route(Method::POST, "/api/roles", write, create),
        route(Method::GET, "/api/roles/{name}", read, get_one),
        route(Method::PUT, "/api/roles/{name}", write, update),
        route(Method::DELETE, "/api/roles/{name}", write, delete),
        route(Method::GET, "/api/permissions", read, catalog),
    ]
}

/// Lists every role.
#[utoipa::path(
    get,
    path = "/api/roles",
    tag = "roles",
    operation_id = "roles_list",
    responses(
        (status = 200, description = "Every role", body = openapi::Envelope<Vec<Role>>),
    )
)]
async fn list(State(state): State<AppState>) -> Result<Envelope<Vec<Role>>, Error> {
    Ok(Envelope::ok("ok", state.auth.roles.all().await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewRole {
    /// 1 to 64 of `a-z 0-9 _ -`.
    name: String,
    #[serde(default)]
    description: String,
    /// Each one the caller holds.
    #[schema(value_type = Vec<crate::openapi::core_types::Permission>)]
    permissions: Vec<Permission>,
}

/// Creates a role.
///
/// The caller must hold every permission it gives the role.
#[utoipa::path(
    post,
    path = "/api/roles",
    tag = "roles",
    operation_id = "roles_create",
    request_body = NewRole,
    responses(
        (status = 200, description = "The new role", body = openapi::Envelope<Role>),
        (status = 400, description = "A bad name or permission (40002, 40001)", body = openapi::ErrorEnvelope),
        (status = 409, description = "The name is taken, or is the built-in `admin` (40902)", body = openapi::ErrorEnvelope),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewRole>,
) -> Result<Envelope<Role>, Error> {
    let wanted: PermissionSet = body.permissions.iter().cloned().collect();
    caller.require_all(&wanted, "the new role")?;
    let role = Role {
        name: body.name,
        description: body.description,
        permissions: body.permissions,
        builtin: false,
    };
    state.auth.roles.save(&role, true).await?;
    Ok(Envelope::ok("role created", role))
}

/// One role.
#[utoipa::path(
    get,
    path = "/api/roles/{name}",
    tag = "roles",
    operation_id = "roles_get",
    params(("name" = String, Path, description = "The role's name")),
    responses(
        (status = 200, description = "The role", body = openapi::Envelope<Role>),
        (status = 404, description = "No such role (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Envelope<Role>, Error> {
    let role = state.auth.roles.get(&name).await?.ok_or(Error::NotFound {
        what: "role",
        id: name,
    })?;
    Ok(Envelope::ok("ok", role))
}

/// What to change; absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    description: Option<String>,
    #[schema(value_type = Option<Vec<crate::openapi::core_types::Permission>>)]
    permissions: Option<Vec<Permission>>,
}

/// Changes a role's description or permissions.
///
/// The caller must hold every permission the role has and every one it is
/// given.
#[utoipa::path(
    put,
    path = "/api/roles/{name}",
    tag = "roles",
    operation_id = "roles_update",
    params(("name" = String, Path, description = "The role's name")),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The changed role", body = openapi::Envelope<Role>),
        (status = 404, description = "No such role (40402)", body = openapi::ErrorEnvelope),
        (status = 409, description = "The built-in `admin` role (40902)", body = openapi::ErrorEnvelope),
    )
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(change): ApiJson<RoleChange>,
) -> Result<Envelope<Role>, Error> {
    let mut role = state.auth.roles.get(&name).await?.ok_or(Error::NotFound {
        what: "role",
        id: name,
    })?;
    // Neither edit a role carrying rights the caller lacks, nor give one
    // any (adding `*:*` to one's own role was the way to admin).
    let current: PermissionSet = role.permissions.iter().cloned().collect();
    caller.require_all(&current, "this role")?;
    if let Some(permissions) = &change.permissions {
        let wanted: PermissionSet = permissions.iter().cloned().collect();
        caller.require_all(&wanted, "the changed role")?;
    }
    if let Some(description) = change.description {
        role.description = description;
    }
    if let Some(permissions) = change.permissions {
        role.permissions = permissions;
    }
    state.auth.roles.save(&role, false).await?;
    state.keys.invalidate().await?;
    Ok(Envelope::ok("role updated", role))
}

/// Deletes a role, its grants and its memberships.
///
/// The caller must hold every permission of the role.
#[utoipa::path(
    delete,
    path = "/api/roles/{name}",
    tag = "roles",
    operation_id = "roles_delete",
    params(("name" = String, Path, description = "The role's name")),
    responses(
        (status = 200, description = "Deleted", body = openapi::Envelope<openapi::Null>),
        (status = 404, description = "No such role (40402)", body = openapi::ErrorEnvelope),
        (status = 409, description = "The built-in `admin` role (40902)", body = openapi::ErrorEnvelope),
    )
)]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Envelope<()>, Error> {
    if let Some(role) = state.auth.roles.get(&name).await? {
        let current: PermissionSet = role.permissions.iter().cloned().collect();
        caller.require_all(&current, "this role")?;
    }
    state.auth.roles.delete(&name).await?;
    // The role's grants and memberships go with it, at once on every
    // instance: a role created later under the same name starts empty.
    state.grants.delete_role_grants(&name).await?;
    state.auth.users.remove_role(&name).await?;
    state.keys.invalidate().await?;
    Ok(Envelope::ok("role deleted", ()))
}

/// The permissions the routes require: what roles draw from.
#[utoipa::path(
    get,
    path = "/api/permissions",
    tag = "roles",
    operation_id = "roles_permission_catalog",
    responses(
        (
            status = 200,
            description = "Every permission a route requires, sorted",
            body = openapi::Envelope<Vec<openapi::core_types::Permission>>
        ),
    )
)]
async fn catalog() -> Envelope<Vec<&'static str>> {
    Envelope::ok("ok", permission_catalog())
}
