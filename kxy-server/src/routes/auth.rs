//! First run, login, refresh and logout: the seed's paths, plus ours.

use axum::extract::State;
use axum::http::Method;
use serde::{Deserialize, Serialize};

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::identity::users::UserView;
use crate::identity::{Caller, TokenPair};
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Serialize)]
struct Initialized {
    initialized: bool,
    /// Whether the first-run init needs the setup token from the console.
    setup_token_required: bool,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FirstUser {
    username: String,
    password: String,
    /// Needed when the server is bound to other than loopback.
    setup_token: Option<String>,
}

async fn init_user(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FirstUser>,
) -> Result<Envelope<UserView>, Error> {
    let user = state
        .auth
        .init_user(&body.username, &body.password, body.setup_token.as_deref())
        .await?;
    Ok(Envelope::ok(
        "initialized: the first user is an administrator",
        user,
    ))
}

async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Envelope<TokenPair>, Error> {
    let tokens = state.auth.login(&body.username, &body.password).await?;
    Ok(Envelope::ok("logged in", tokens))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Envelope<TokenPair>, Error> {
    let tokens = state.auth.refresh(&body.refresh_token).await?;
    Ok(Envelope::ok("refreshed", tokens))
}

async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Envelope<()>, Error> {
    state.auth.logout(&caller).await?;
    Ok(Envelope::ok("logged out", ()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// The caller's own password: every other login and every API key of the
/// caller ends; the answer is a new session.
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
