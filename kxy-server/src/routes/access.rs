//! Endpoint grants (seed 003): endpoints, grants, and the access check that
//! other services call.

use axum::extract::{Path, State};
use axum::http::Method;
use kxy_core::access::path::normalize;
use kxy_core::access::{Endpoint, Grant, Level, Subject};
use serde::Deserialize;

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::app::AppState;
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::grants::Verdict;
use crate::identity::Caller;
use kxy_core::permission::Permission;

pub fn routes() -> Vec<RouteSpec> {
    let read = Access::Permission("access:read");
    let write = Access::Permission("access:write");
    vec![
        route(Method::GET, "/api/access/endpoints", read, list_endpoints),
        route(
            Method::POST,
            "/api/access/endpoints",
            write,
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
            write,
            update_endpoint,
        ),
        route(
            Method::DELETE,
            "/api/access/endpoints/{id}",
            write,
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

async fn list_endpoints(State(state): State<AppState>) -> Result<Envelope<Vec<Endpoint>>, Error> {
    Ok(Envelope::ok("ok", state.grants.endpoints().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEndpoint {
    method: String,
    path: String,
    #[serde(default = "yes")]
    require_auth: bool,
}

fn yes() -> bool {
    true
}

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

async fn get_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Envelope<Endpoint>, Error> {
    Ok(Envelope::ok("ok", state.grants.endpoint(&id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointChange {
    require_auth: bool,
}

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

async fn delete_endpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Envelope<()>, Error> {
    state.grants.delete_endpoint(&id).await?;
    Ok(Envelope::ok("endpoint and its grants deleted", ()))
}

async fn list_grants(State(state): State<AppState>) -> Result<Envelope<Vec<Grant>>, Error> {
    Ok(Envelope::ok("ok", state.grants.grants().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    subject: Subject,
    endpoint_id: String,
    level: Level,
    /// Unix seconds; absent means no expiry.
    expires_at: Option<u64>,
}

async fn create_grant(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewGrant>,
) -> Result<Envelope<Grant>, Error> {
    // access:write lets a user hand on what they hold, not more: a level on
    // an endpoint above the caller's own grant there is refused, to anyone,
    // themselves included. Administrators (every permission) grant any.
    state.grants.endpoint(&body.endpoint_id).await?;
    if !caller.permissions.allows(&Permission::all()) {
        let own = state
            .grants
            .level_on(&body.endpoint_id, &caller.user.id, &caller.user.roles)
            .await?;
        if own.is_none_or(|own| own < body.level) {
            let own = own.map_or("none".to_owned(), |l| l.to_string());
            return Err(Error::Forbidden {
                permission: format!(
                    "{} on endpoint {}: your own level there is {own}, and you cannot grant \
                     above it",
                    body.level, body.endpoint_id
                ),
            });
        }
    }
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

async fn delete_grant(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Envelope<()>, Error> {
    state.grants.delete_grant(&id).await?;
    Ok(Envelope::ok("grant deleted", ()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    /// The username of the caller being checked.
    subject: String,
    method: String,
    path: String,
    /// The level needed; by default read for GET/HEAD/OPTIONS, else write.
    level: Option<Level>,
}

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
