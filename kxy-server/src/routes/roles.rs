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

async fn list(State(state): State<AppState>) -> Result<Envelope<Vec<Role>>, Error> {
    Ok(Envelope::ok("ok", state.auth.roles.all().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    name: String,
    #[serde(default)]
    description: String,
    permissions: Vec<Permission>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    description: Option<String>,
    permissions: Option<Vec<Permission>>,
}

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

async fn catalog() -> Envelope<Vec<&'static str>> {
    Envelope::ok("ok", permission_catalog())
}
