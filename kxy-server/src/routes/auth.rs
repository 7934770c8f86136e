//! First run, login, refresh and logout: the seed's paths, plus ours.

use axum::extract::State;
use axum::http::{HeaderMap, Method, header};
use serde::{Deserialize, Serialize};

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::identity::users::UserView;
use crate::identity::{Caller, TokenPair};
use crate::openapi;
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    vec![
        route(
            Method::GET,
            "/api/auth/check-init",
            Access::Public,
            check_init,
        ),
        route(
            Method::POST,
            "/api/auth/init-user",
            Access::Public,
            init_user,
        ),
        route(Method::POST, "/api/auth/login", Access::Public, login),
        route(Method::POST, "/api/auth/refresh", Access::Public, refresh),
        route(Method::POST, "/api/auth/logout", Access::LoggedIn, logout),
        route(
            Method::POST,
            "/api/auth/password",
            Access::LoggedIn,
            change_password,
        ),
    ]
}

/// A username and password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Initialized {
    /// Whether the first user exists.
    initialized: bool,
    /// Whether the first-run init needs the setup token from the console.
    setup_token_required: bool,
}

/// Whether the first user exists yet.
#[utoipa::path(
    get,
    path = "/api/auth/check-init",
    tag = "auth",
    operation_id = "auth_check_init",
    responses(
        (status = 200, description = "Whether the system is initialized", body = openapi::Envelope<Initialized>),
    )
)]
async fn check_init(State(state): State<AppState>) -> Result<Envelope<Initialized>, Error> {
    let initialized = state.auth.initialized().await?;
    Ok(Envelope::ok(
        "ok",
        Initialized {
            initialized,
            setup_token_required: !initialized && state.auth.setup_token_required(),
        },
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FirstUser {
    username: String,
    password: String,
    /// Needed when the server is bound to other than loopback.
    setup_token: Option<String>,
}

/// Creates the first user, an administrator (first run only).
///
/// Needs the setup token printed in the server's console when the server is
/// bound to other than loopback or started with `--setup-token`.
#[utoipa::path(
    post,
    path = "/api/auth/init-user",
    tag = "auth",
    operation_id = "auth_init_user",
    request_body = FirstUser,
    responses(
        (status = 200, description = "The first user", body = openapi::Envelope<UserView>),
        (status = 403, description = "The setup token is needed or wrong (40303), or a tokenless init addressed to other than loopback (40304, DNS rebinding)", body = openapi::ErrorEnvelope),
        (status = 409, description = "The system is already initialized (40903)", body = openapi::ErrorEnvelope),
    )
)]
async fn init_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<FirstUser>,
) -> Result<Envelope<UserView>, Error> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let user = state
        .auth
        .init_user(
            &body.username,
            &body.password,
            body.setup_token.as_deref(),
            host,
        )
        .await?;
    Ok(Envelope::ok(
        "initialized: the first user is an administrator",
        user,
    ))
}

/// Logs in: an access token and a refresh token.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    operation_id = "auth_login",
    request_body = Credentials,
    responses(
        (status = 200, description = "The new session's tokens", body = openapi::Envelope<TokenPair>),
        (status = 401, description = "Invalid username or password, or the account is disabled (40101)", body = openapi::ErrorEnvelope),
        (
            status = 429,
            description = "Too many failed logins: the account is locked (42901); `Retry-After` \
                           says for how long",
            body = openapi::ErrorEnvelope
        ),
    )
)]
async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Envelope<TokenPair>, Error> {
    let tokens = state.auth.login(&body.username, &body.password).await?;
    Ok(Envelope::ok("logged in", tokens))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    /// The `refresh_token` of the login or of the last refresh.
    refresh_token: String,
}

/// Trades a refresh token for new tokens.
///
/// Each refresh token works once; presenting a used one again ends the
/// session.
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "auth",
    operation_id = "auth_refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = openapi::Envelope<TokenPair>),
        (status = 401, description = "The refresh token is invalid, expired, used or revoked, or is the admin page's session cookie, which only the page refreshes (40102)", body = openapi::ErrorEnvelope),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Envelope<TokenPair>, Error> {
    let tokens = state.auth.refresh(&body.refresh_token).await?;
    Ok(Envelope::ok("refreshed", tokens))
}

/// Ends the caller's login session.
///
/// An API key has no session to end: disable or delete it instead (400).
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    operation_id = "auth_logout",
    responses(
        (status = 200, description = "Logged out", body = openapi::Envelope<openapi::Null>),
        (status = 400, description = "Called with an API key (40002)", body = openapi::ErrorEnvelope),
    )
)]
async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Envelope<()>, Error> {
    state.auth.logout(&caller).await?;
    Ok(Envelope::ok("logged out", ()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the caller's own password.
///
/// Every other login and every API key of the caller ends; the answer is a
/// new session. Needs a login session, not an API key.
#[utoipa::path(
    post,
    path = "/api/auth/password",
    tag = "auth",
    operation_id = "auth_change_password",
    request_body = PasswordChange,
    responses(
        (status = 200, description = "The new session's tokens", body = openapi::Envelope<TokenPair>),
        (
            status = 400,
            description = "A weak new password, or called with an API key (40002); a malformed \
                           body (40001)",
            body = openapi::ErrorEnvelope
        ),
        (status = 401, description = "The current password is wrong (40101), or no valid token", body = openapi::ErrorEnvelope),
        (status = 429, description = "Too many failed attempts: the account is locked (42901)", body = openapi::ErrorEnvelope),
    )
)]
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Envelope<TokenPair>, Error> {
    let tokens = state
        .auth
        .change_password(&caller, &body.current_password, &body.new_password)
        .await?;
    state.keys.revoke_all(&caller.user.id).await?;
    Ok(Envelope::ok(
        "password changed; every other login ended and your API keys are disabled",
        tokens,
    ))
}
