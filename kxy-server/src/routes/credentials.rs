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

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Envelope<Vec<CredentialView>>, Error> {
    Ok(Envelope::ok(
        "ok",
        state.credentials.list(&caller.user.id).await?,
    ))
}

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

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Envelope<()>, Error> {
    state.credentials.delete(&caller.user.id, &id).await?;
    Ok(Envelope::ok("credential deleted", ()))
}

#[derive(Serialize)]
struct Revealed {
    api_key: String,
}

async fn reveal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Envelope<Revealed>, Error> {
    let api_key = state.credentials.reveal(&caller.user.id, &id).await?;
    tracing::info!(credential = %id, by = %caller.user.username, "stored credential revealed");
    Ok(Envelope::ok("ok", Revealed { api_key }))
}
