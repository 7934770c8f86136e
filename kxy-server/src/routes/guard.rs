//! The guard: authenticates callers and enforces each route's [`Access`].
//!
//! It runs before the handler. For anything but a public route it reads
//! `Authorization: Bearer <access token>`, asks the auth service who that
//! is, checks the route's permission and puts the [`Caller`] in the request
//! for the handler to extract.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kxy_core::permission::Permission;

use super::Access;
use crate::Error;
use crate::identity::{Caller, Via};
use crate::state::AppState;
use kxy_core::apikey::ApiKeySecret;

/// The bearer token of a request, if it sent one.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Error::InvalidToken("the Authorization header is not text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Error::InvalidToken(
            "use Authorization: Bearer <token>".into(),
        )),
    }
}

pub async fn guard(
    State((state, access)): State<(AppState, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    let open_allocation = access == Access::Allocation && !state.settings.allocation_requires_key;
    if access == Access::Public || open_allocation {
        return next.run(request).await;
    }
    let caller = match authenticate(&state, request.headers()).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let required = match access {
        Access::Permission(required) => Some(required),
        // A user's own records: a login token suffices, a key needs scope.
        Access::Own(required) if matches!(caller.via, Via::ApiKey { .. }) => Some(required),
        Access::Allocation if !matches!(caller.via, Via::ApiKey { .. }) => {
            return Error::invalid(
                "authorization",
                "allocation requires an API key on this server",
            )
            .into_response();
        }
        Access::Allocation => Some(super::ALLOCATE),
        _ => None,
    };
    if let Some(required) = required {
        let permission: Permission = required.parse().expect("routes declare valid permissions");
        if !caller.permissions.allows(&permission) {
            return Error::Forbidden {
                permission: required.to_owned(),
            }
            .into_response();
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The caller behind a request: an API key as the `X-API-Key` (key id) +
/// `X-API-Secret` pair or as `Authorization: Bearer sk-kxy-...`, or a login
/// session's access token.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, Error> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (key, claimed_id) = match (header("x-api-key"), header("x-api-secret")) {
        (Some(id), Some(secret)) => (Some(secret), Some(id)),
        (None, None) => (None, None),
        _ => {
            return Err(Error::InvalidToken(
                "send both X-API-Key and X-API-Secret".into(),
            ));
        }
    };
    let bearer = bearer(headers)?;
    let key = key.or(bearer.filter(|t| ApiKeySecret::looks_like(t)));
    if let Some(key) = key {
        let principal = state.keys.verify(key, claimed_id).await?;
        return Ok(Caller {
            user: principal.user,
            permissions: principal.permissions,
            via: Via::ApiKey {
                id: principal.key_id,
                scoped: principal.scoped,
            },
            key_generation: principal.key_generation,
        });
    }
    state
        .auth
        .authenticate(bearer.ok_or(Error::AuthRequired)?)
        .await
}

/// Handlers of guarded routes take the caller as an argument.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(Error::AuthRequired)
    }
}
