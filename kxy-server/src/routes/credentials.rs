//! A user's stored upstream credentials (seed 001), and the permission-gated
//! read of a plaintext key for a trusted service.

use axum::extract::{Path, State};
use axum::http::Method;
use serde::Serialize;

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::credentials::{CredentialFields, CredentialView};
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::identity::Caller;
use crate::openapi;
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    vec![
        route(
            Method::GET,
            "/api/credentials",
            Access::Own("credentials:read"),
            list,
        ),
        route(
            Method::POST,
            "/api/credentials",
            Access::Own("credentials:write"),
            create,
        ),
        route(
            Method::GET,
            "/api/credentials/{id}",
            Access::Own("credentials:read"),
            get_one,
        ),
        route(
            Method::PUT,
            "/api/credentials/{id}",
            Access::Own("credentials:write"),
            update,
        ),
        route(
            Method::DELETE,
            "/api/credentials/{id}",
            Access::Own("credentials:write"),
            delete,
        ),
        route(
            Method::GET,
            "/api/credentials/{id}/secret",
            Access::Permission("credentials:reveal"),
            reveal,
        ),
    ]
}

/// Lists the caller's stored credentials (keys masked).
#[utoipa::path(
    get,
    path = "/api/credentials",
    tag = "credentials",
    operation_id = "credentials_list",
    responses(
        (status = 200, description = "The caller's credentials", body = openapi::Envelope<Vec<CredentialView>>),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Envelope<Vec<CredentialView>>, Error> {
    Ok(Envelope::ok(
        "ok",
        state.credentials.list(&caller.user.id).await?,
    ))
}

/// Stores an upstream credential for the caller, its key sealed.
#[utoipa::path(
    post,
    path = "/api/credentials",
    tag = "credentials",
    operation_id = "credentials_create",
    request_body = CredentialFields,
    responses(
        (status = 200, description = "The stored credential, key masked", body = openapi::Envelope<CredentialView>),
        (status = 400, description = "A bad name, model id or base URL, or `model_id` missing (40002)", body = openapi::ErrorEnvelope),
        (status = 409, description = "The caller's credential limit is reached (40902)", body = openapi::ErrorEnvelope),
        (status = 503, description = "Storing secrets is disabled: no `--master-key` (50302); or the store is unavailable (50301)", body = openapi::ErrorEnvelope),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(fields): ApiJson<CredentialFields>,
) -> Result<Envelope<CredentialView>, Error> {
    Ok(Envelope::ok(
        "credential stored",
        state.credentials.create(&caller.user.id, fields).await?,
    ))
}

/// One of the caller's credentials (key masked).
#[utoipa::path(
    get,
    path = "/api/credentials/{id}",
    tag = "credentials",
    operation_id = "credentials_get",
    params(("id" = String, Path, description = "The credential's id")),
    responses(
        (status = 200, description = "The credential", body = openapi::Envelope<CredentialView>),
        (status = 404, description = "No such credential of the caller's (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Envelope<CredentialView>, Error> {
    Ok(Envelope::ok(
        "ok",
        state.credentials.get(&caller.user.id, &id).await?,
    ))
}

/// Changes one of the caller's credentials; absent fields stay.
#[utoipa::path(
    put,
    path = "/api/credentials/{id}",
    tag = "credentials",
    operation_id = "credentials_update",
    params(("id" = String, Path, description = "The credential's id")),
    request_body = CredentialFields,
    responses(
        (status = 200, description = "The changed credential", body = openapi::Envelope<CredentialView>),
        (status = 400, description = "A bad name, model id or base URL (40002)", body = openapi::ErrorEnvelope),
        (status = 404, description = "No such credential of the caller's (40402)", body = openapi::ErrorEnvelope),
        (status = 409, description = "The credential changed meanwhile; retry (40902)", body = openapi::ErrorEnvelope),
        (status = 503, description = "Storing secrets is disabled: no `--master-key` (50302); or the store is unavailable (50301)", body = openapi::ErrorEnvelope),
    )
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(fields): ApiJson<CredentialFields>,
) -> Result<Envelope<CredentialView>, Error> {
    Ok(Envelope::ok(
        "credential updated",
        state
            .credentials
            .update(&caller.user.id, &id, fields)
            .await?,
    ))
}

/// Deletes one of the caller's credentials.
#[utoipa::path(
    delete,
    path = "/api/credentials/{id}",
    tag = "credentials",
    operation_id = "credentials_delete",
    params(("id" = String, Path, description = "The credential's id")),
    responses(
        (status = 200, description = "Deleted", body = openapi::Envelope<openapi::Null>),
        (status = 404, description = "No such credential of the caller's (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Envelope<()>, Error> {
    state.credentials.delete(&caller.user.id, &id).await?;
    Ok(Envelope::ok("credential deleted", ()))
}

/// A stored credential's key, in plain text.
#[derive(Serialize, utoipa::ToSchema)]
struct Revealed {
    api_key: String,
}

/// Reveals the plaintext key of one of the caller's credentials.
///
/// For a trusted service acting as the user; every reveal is logged.
#[utoipa::path(
    get,
    path = "/api/credentials/{id}/secret",
    tag = "credentials",
    operation_id = "credentials_reveal",
    params(("id" = String, Path, description = "The credential's id")),
    responses(
        (status = 200, description = "The key", body = openapi::Envelope<Revealed>),
        (status = 404, description = "No such credential of the caller's (40402)", body = openapi::ErrorEnvelope),
        (status = 500, description = "The key cannot be opened: sealed under a key this server lacks, or altered (50002)", body = openapi::ErrorEnvelope),
        (status = 503, description = "Storing secrets is disabled: no `--master-key` (50302); or the store is unavailable (50301)", body = openapi::ErrorEnvelope),
    )
)]
async fn reveal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Envelope<Revealed>, Error> {
    let api_key = state.credentials.reveal(&caller.user.id, &id).await?;
    tracing::info!(credential = %id, by = %caller.user.username, "stored credential revealed");
    Ok(Envelope::ok("ok", Revealed { api_key }))
}
