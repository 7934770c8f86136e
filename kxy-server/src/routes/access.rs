//! Endpoint grants (seed 003): endpoints, grants, and the access check that
//! other services call.
//!
//! Who may change what:
//! - `access:admin` defines the map itself (endpoints: add, open with
//!   `require_auth: false`, delete) and grants anything: opening or removing
//!   an endpoint changes every caller's access at once.
//! - `access:write` hands on what the caller holds, no more: a grant's level
//!   must not exceed the caller's own level on that endpoint, to create or
//!   to delete it, and the caller cannot change grants to themselves or to a
//!   role they hold (deleting one's own narrowing grant would raise oneself
//!   to one's role's level).

use axum::extract::{Path, State};
use axum::http::Method;
use kxy_core::access::path::normalize;
use kxy_core::access::{Endpoint, Grant, Level, Subject};
use serde::Deserialize;

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::grants::Verdict;
use crate::identity::Caller;
use crate::openapi;
use crate::state::AppState;
use kxy_core::permission::Permission;

pub fn routes() -> Vec<RouteSpec> {
    let read = Access::Permission("access:read");
    let write = Access::Permission("access:write");
    let admin = Access::Permission("access:admin");
    vec![
        route(Method::GET, "/api/access/endpoints", read, list_endpoints),
        route(
            Method::POST,
            "/api/access/endpoints",
            admin,
            create_endpoint,
        ),
        route(
            Method::GET,
            "/api/access/endpoints/{id}",
            read,
            get_endpoint,
        ),
        route(
            Method::PUT,
            "/api/access/endpoints/{id}",
            admin,
            update_endpoint,
        ),
        route(
            Method::DELETE,
            "/api/access/endpoints/{id}",
            admin,
            delete_endpoint,
        ),
        route(Method::GET, "/api/access/grants", read, list_grants),
        route(Method::POST, "/api/access/grants", write, create_grant),
        route(
            Method::DELETE,
            "/api/access/grants/{id}",
            write,
            delete_grant,
        ),
        route(
            Method::POST,
            "/api/access/check",
            Access::Permission("access:check"),
            check,
        ),
    ]
}

/// Lists the registered endpoints.
#[utoipa::path(
    get,
    path = "/api/access/endpoints",
    tag = "access",
    operation_id = "access_list_endpoints",
    responses(
        (status = 200, description = "Every endpoint", body = openapi::Envelope<Vec<openapi::core_types::Endpoint>>),
    )
)]
async fn list_endpoints(State(state): State<AppState>) -> Result<Envelope<Vec<Endpoint>>, Error> {
    Ok(Envelope::ok("ok", state.grants.endpoints().await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEndpoint {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`, `OPTIONS` or `*`.
    method: String,
    /// A path pattern: literal segments, `{name}` for one segment, `*`
    /// only as the last.
    path: String,
    /// False opens the endpoint to every caller (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    require_auth: bool,
}

fn yes() -> bool {
    true
}

/// Registers an endpoint of some service.
#[utoipa::path(
    post,
    path = "/api/access/endpoints",
    tag = "access",
    operation_id = "access_create_endpoint",
    request_body = NewEndpoint,
    responses(
        (status = 200, description = "The endpoint", body = openapi::Envelope<openapi::core_types::Endpoint>),
        (status = 400, description = "A bad method or path pattern (40002)", body = openapi::ErrorEnvelope),
        (status = 409, description = "The endpoint is registered already (40902)", body = openapi::ErrorEnvelope),
    )
)]
async fn create_endpoint(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> Result<Envelope<Endpoint>, Error> {
    let endpoint = state
        .grants
        .create_endpoint(&body.method, &body.path, body.require_auth)
        .await?;
    Ok(Envelope::ok("endpoint registered", endpoint))
}

/// One endpoint.
#[utoipa::path(
    get,
    path = "/api/access/endpoints/{id}",
    tag = "access",
    operation_id = "access_get_endpoint",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = openapi::Envelope<openapi::core_types::Endpoint>),
        (status = 404, description = "No such endpoint (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn get_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Envelope<Endpoint>, Error> {
    Ok(Envelope::ok("ok", state.grants.endpoint(&id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EndpointChange {
    require_auth: bool,
}

/// Opens an endpoint to every caller, or closes it again.
#[utoipa::path(
    put,
    path = "/api/access/endpoints/{id}",
    tag = "access",
    operation_id = "access_update_endpoint",
    params(("id" = String, Path, description = "The endpoint's id")),
    request_body = EndpointChange,
    responses(
        (status = 200, description = "The changed endpoint", body = openapi::Envelope<openapi::core_types::Endpoint>),
        (status = 404, description = "No such endpoint (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn update_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndpointChange>,
) -> Result<Envelope<Endpoint>, Error> {
    Ok(Envelope::ok(
        "endpoint updated",
        state.grants.update_endpoint(&id, body.require_auth).await?,
    ))
}

/// Deletes an endpoint and its grants.
#[utoipa::path(
    delete,
    path = "/api/access/endpoints/{id}",
    tag = "access",
    operation_id = "access_delete_endpoint",
    params(("id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "Deleted", body = openapi::Envelope<openapi::Null>),
        (status = 404, description = "No such endpoint (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn delete_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Envelope<()>, Error> {
    state.grants.delete_endpoint(&id).await?;
    Ok(Envelope::ok("endpoint and its grants deleted", ()))
}

/// Lists every grant.
#[utoipa::path(
    get,
    path = "/api/access/grants",
    tag = "access",
    operation_id = "access_list_grants",
    responses(
        (status = 200, description = "Every grant", body = openapi::Envelope<Vec<openapi::core_types::Grant>>),
    )
)]
async fn list_grants(State(state): State<AppState>) -> Result<Envelope<Vec<Grant>>, Error> {
    Ok(Envelope::ok("ok", state.grants.grants().await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    #[schema(value_type = crate::openapi::core_types::Subject)]
    subject: Subject,
    endpoint_id: String,
    #[schema(value_type = crate::openapi::core_types::Level)]
    level: Level,
    /// Unix seconds; absent means no expiry.
    expires_at: Option<u64>,
}

/// Grants a user or role a level on an endpoint.
///
/// Without `access:admin`, the level may not exceed the caller's own on the
/// endpoint, and nobody grants to themselves or to a role they hold.
#[utoipa::path(
    post,
    path = "/api/access/grants",
    tag = "access",
    operation_id = "access_create_grant",
    request_body = NewGrant,
    responses(
        (status = 200, description = "The grant", body = openapi::Envelope<openapi::core_types::Grant>),
        (status = 403, description = "Above the caller's own level, or to the caller or their role (40301)", body = openapi::ErrorEnvelope),
        (status = 400, description = "An unknown role (40002), or a malformed body (40001)", body = openapi::ErrorEnvelope),
        (status = 404, description = "No such endpoint or user (40402)", body = openapi::ErrorEnvelope),
        (status = 409, description = "The subject's grant limit is reached (40902)", body = openapi::ErrorEnvelope),
    )
)]
async fn create_grant(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewGrant>,
) -> Result<Envelope<Grant>, Error> {
    state.grants.endpoint(&body.endpoint_id).await?;
    may_change_grant(
        &state,
        &caller,
        &body.endpoint_id,
        body.level,
        &body.subject,
    )
    .await?;
    match &body.subject {
        Subject::User(id) => {
            state.auth.users.require(id).await?;
        }
        Subject::Role(name) => {
            state
                .auth
                .roles
                .check_exist(std::slice::from_ref(name))
                .await?;
        }
    }
    let grant = state
        .grants
        .create_grant(
            body.subject,
            &body.endpoint_id,
            body.level,
            body.expires_at,
            &caller.user.id,
        )
        .await?;
    Ok(Envelope::ok("granted", grant))
}

/// Refuses a grant change (see the module doc) unless the caller holds
/// `access:admin`.
async fn may_change_grant(
    state: &AppState,
    caller: &Caller,
    endpoint_id: &str,
    level: Level,
    subject: &Subject,
) -> Result<(), Error> {
    if caller
        .permissions
        .allows(&"access:admin".parse::<Permission>().expect("valid"))
    {
        return Ok(());
    }
    let own_subject = match subject {
        Subject::User(id) => *id == caller.user.id,
        Subject::Role(name) => caller.user.roles.contains(name),
    };
    if own_subject {
        return Err(Error::Forbidden {
            permission: "access:admin, to change grants to yourself or to a role you hold".into(),
        });
    }
    let own = state
        .grants
        .level_on(endpoint_id, &caller.user.id, &caller.user.roles)
        .await?;
    if own.is_none_or(|own| own < level) {
        let own = own.map_or("none".to_owned(), |l| l.to_string());
        return Err(Error::Forbidden {
            permission: format!(
                "{level} on endpoint {endpoint_id}: your own level there is {own}, and you cannot \
                 grant or revoke above it"
            ),
        });
    }
    Ok(())
}

/// Deletes a grant.
///
/// Without `access:admin`, only a grant at or below the caller's own level
/// on its endpoint, and not one to the caller or a role they hold.
#[utoipa::path(
    delete,
    path = "/api/access/grants/{id}",
    tag = "access",
    operation_id = "access_delete_grant",
    params(("id" = String, Path, description = "The grant's id")),
    responses(
        (status = 200, description = "Deleted", body = openapi::Envelope<openapi::Null>),
        (status = 403, description = "Above the caller's own level, or to the caller or their role (40301)", body = openapi::ErrorEnvelope),
        (status = 404, description = "No such grant (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn delete_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Envelope<()>, Error> {
    let grant = state
        .grants
        .grants()
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or_else(|| Error::NotFound {
            what: "grant",
            id: id.clone(),
        })?;
    may_change_grant(
        &state,
        &caller,
        &grant.endpoint_id,
        grant.level,
        &grant.subject,
    )
    .await?;
    state.grants.delete_grant(&id).await?;
    Ok(Envelope::ok("grant deleted", ()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    /// The username of the caller being checked.
    subject: String,
    method: String,
    path: String,
    /// The level needed; by default read for GET/HEAD/OPTIONS, else write.
    #[schema(value_type = Option<crate::openapi::core_types::Level>)]
    level: Option<Level>,
}

/// May this user call this endpoint? The check other services call.
///
/// Answers 200 with `allowed` true or false (and why); an unknown or
/// disabled user is denied, not an error.
#[utoipa::path(
    post,
    path = "/api/access/check",
    tag = "access",
    operation_id = "access_check",
    request_body = CheckRequest,
    responses(
        (status = 200, description = "The verdict", body = openapi::Envelope<Verdict>),
        (status = 400, description = "A path with no normal form (40002), or a malformed body (40001)", body = openapi::ErrorEnvelope),
    )
)]
async fn check(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<Envelope<Verdict>, Error> {
    let method = body.method.to_uppercase();
    let required = body.level.unwrap_or_else(|| Level::required_for(&method));
    // Judged in normal form; a path with none is refused outright, so the
    // calling service learns its request was ambiguous (kxy_core::access::path).
    let path = normalize(&body.path).map_err(|e| Error::invalid("path", &e.to_string()))?;
    let verdict = match state.auth.users.by_username(&body.subject).await? {
        Some(user) if user.active => {
            state
                .grants
                .check(&user.id, &user.roles, &method, &path, required)
                .await?
        }
        found => Verdict {
            allowed: false,
            level: None,
            required,
            endpoint_id: None,
            reason: if found.is_some() {
                "denied: the user is disabled"
            } else {
                "denied: no such user"
            }
            .into(),
        },
    };
    let msg = if verdict.allowed { "allowed" } else { "denied" };
    Ok(Envelope::ok(msg, verdict))
}
