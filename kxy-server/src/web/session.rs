//! The browser's login session: the same logins as `/api/auth/*`, but the
//! refresh token lives in a cookie the page's script cannot read.
//!
//! A page keeps its access token in memory only; if it also held the refresh
//! token, any script injected into it could carry the session away, and a
//! reload would log the user out. So `POST /api/auth/session` answers the
//! access token in the body and sets the refresh token as an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/api/auth/session`, which
//! `POST /api/auth/session/refresh` exchanges (rotating it) for a new access
//! token. Because a cookie rides along on any request the browser makes,
//! every route here that reads it also demands proof the call comes from the
//! page itself ([`same_origin`]): the `X-KXY-CSRF` header, which a foreign
//! page cannot send without a CORS preflight this server never grants, and
//! matching `Origin`/`Sec-Fetch-Site` where the browser sends them.
//!
//! Cookies are shared by every port of a host, so a page served elsewhere on
//! the same host could plant its own session's cookie here and have the
//! admin's page resume as the attacker's account (and store secrets there).
//! So a session the page opens is also bound to a random value the page
//! keeps in its own origin's `localStorage` (which other origins cannot
//! touch) and sends as `X-KXY-Binding` to refresh; a cookie without its
//! binding is refused. The binding alone is worth nothing: it is not a
//! token, and the refresh token stays out of the script's reach. Such a
//! page can also have the browser send it the admin's cookie (cookies and
//! `SameSite` ignore ports), so a page session's cookie refreshes only here,
//! with its binding, never at `/api/auth/refresh`; and of several cookies
//! (one planted on a longer path comes first) the one bound to the page's
//! binding is used.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::envelope::Envelope;
use crate::extract::ApiJson;
use crate::identity::{Caller, TokenPair};
use crate::openapi;
use crate::routes::auth::Credentials;
use crate::routes::guard::bearer;
use crate::routes::{Access, RouteSpec, route};
use crate::state::AppState;

/// The cookie that holds the refresh token.
pub const REFRESH_COOKIE: &str = "kxy_refresh";
/// The only path the cookie is sent to.
pub const COOKIE_PATH: &str = "/api/auth/session";
/// The header the page sends to show a request is its own.
pub const CSRF_HEADER: &str = "x-kxy-csrf";

pub fn routes() -> Vec<RouteSpec> {
    vec![
        route(Method::POST, "/api/auth/session", Access::Public, login),
        route(
            Method::POST,
            "/api/auth/session/refresh",
            Access::Public,
            refresh,
        ),
        route(
            Method::POST,
            "/api/auth/session/password",
            Access::LoggedIn,
            change_password,
        ),
        // Public to the guard: the cookie alone may end its session (an
        // access token that ran out must not make logging out fail).
        route(Method::DELETE, "/api/auth/session", Access::Public, logout),
    ]
}

/// What the page holds: an access token, never the refresh token.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AccessGrant {
    access_token: String,
    token_type: String,
    /// Seconds the access token is valid; the page refreshes before then.
    expires_in: u64,
    /// For a new session (login, password change): the value the page
    /// keeps in its own storage and sends as `X-KXY-Binding` to refresh
    /// (`null` on a refresh: the session's binding stays).
    binding: Option<String>,
}

/// The header that carries the page's binding to its session.
pub const BINDING_HEADER: &str = "x-kxy-binding";

/// Answers the access half of `tokens` and sets the refresh half as the
/// cookie.
fn grant(
    request: &HeaderMap,
    state: &AppState,
    msg: &str,
    tokens: TokenPair,
    binding: Option<String>,
) -> Response {
    let max_age = state.settings.auth.refresh_ttl.as_secs();
    let cookie = cookie(request, &tokens.refresh_token, max_age);
    let body = AccessGrant {
        access_token: tokens.access_token,
        token_type: tokens.token_type,
        expires_in: tokens.expires_in,
        binding,
    };
    with_cookie(Envelope::ok(msg, body).into_response(), &cookie)
}

/// The `Set-Cookie` value for `value` (empty with `max_age` 0 clears it).
/// `Secure` when the page was reached over HTTPS (directly or, as a proxy
/// says, in front of us); over plain HTTP a browser would drop a `Secure`
/// cookie and every reload would end the session.
fn cookie(request: &HeaderMap, value: &str, max_age: u64) -> String {
    // A chain of proxies lists one scheme each, the client's side first.
    let https = header_str(request, "x-forwarded-proto")
        .and_then(|p| p.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        || header_str(request, "origin").is_some_and(|o| o.starts_with("https://"));
    format!(
        "{REFRESH_COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; \
         SameSite=Strict{}",
        if https { "; Secure" } else { "" }
    )
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses a request that may come from another site's page: without the
/// page's header, or with an `Origin` other than this server's, or marked
/// cross-site by the browser.
fn same_origin(headers: &HeaderMap) -> Result<(), Error> {
    if header_str(headers, CSRF_HEADER) != Some("1") {
        return Err(Error::CrossSite(format!(
            "send the header {CSRF_HEADER}: 1 (the admin page does); cookie sessions are only \
             for the page served by this server"
        )));
    }
    if let Some(site) = header_str(headers, "sec-fetch-site")
        && site != "same-origin"
    {
        return Err(Error::CrossSite(format!(
            "the browser marks this request {site}; only this server's own page may use its session"
        )));
    }
    if let Some(origin) = header_str(headers, "origin") {
        let host = header_str(headers, "host").unwrap_or_default();
        // Behind a proxy that rewrites Host, the name the browser used is
        // the proxy's X-Forwarded-Host (its first value). Trusting it costs
        // nothing: a foreign page cannot set it without the preflight the
        // X-KXY-CSRF header already needs.
        let forwarded = header_str(headers, "x-forwarded-host")
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or_default();
        let ours = |name: &str| !name.is_empty() && origin_host.eq_ignore_ascii_case(name);
        if !(ours(host) || forwarded.is_some_and(ours)) {
            return Err(Error::CrossSite(format!(
                "Origin {origin} is not this server ({host})"
            )));
        }
    }
    Ok(())
}

/// The refresh tokens of the `kxy_refresh` cookies, in the browser's order.
/// Usually one; but a page on another port of this host (cookies ignore
/// ports) may plant its own on a longer path, which the browser then sends
/// first. Only the first few count: each costs a store read.
fn refresh_cookies(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, value)| *name == REFRESH_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
        .take(MAX_COOKIES)
        .collect()
}

/// How many `kxy_refresh` cookies of one request are looked at.
const MAX_COOKIES: usize = 4;

/// Logs in for the admin page.
///
/// Answers the access token; the refresh token is set as the `kxy_refresh`
/// cookie (`HttpOnly`, `SameSite=Strict`, `Path=/api/auth/session`). Needs
/// the header `X-KXY-CSRF: 1` and a same-origin `Origin`/`Sec-Fetch-Site`.
/// Programs use `POST /api/auth/login` instead.
#[utoipa::path(
    post,
    path = "/api/auth/session",
    tag = "auth",
    operation_id = "session_login",
    request_body = Credentials,
    params(("X-KXY-CSRF" = String, Header, description = "Must be `1`")),
    responses(
        (status = 200, description = "Logged in; the refresh cookie is set", body = openapi::Envelope<AccessGrant>),
        (status = 401, description = "Invalid username or password (40101)", body = openapi::ErrorEnvelope),
        (status = 403, description = "Not the page's own request (40304), or the account is disabled (40302)", body = openapi::ErrorEnvelope),
        (status = 429, description = "Too many failed logins: the account is locked (42901)", body = openapi::ErrorEnvelope),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, Error> {
    same_origin(&headers)?;
    let tokens = state.auth.login(&body.username, &body.password).await?;
    let binding = state.auth.bind_to_page(&tokens.refresh_token).await?;
    Ok(grant(&headers, &state, "logged in", tokens, Some(binding)))
}

/// Exchanges the refresh cookie for a new access token (and a new cookie).
///
/// A cookie that no longer works is cleared. Needs `X-KXY-CSRF: 1` and a
/// same-origin request.
#[utoipa::path(
    post,
    path = "/api/auth/session/refresh",
    tag = "auth",
    operation_id = "session_refresh",
    params(
        ("X-KXY-CSRF" = String, Header, description = "Must be `1`"),
        ("X-KXY-Binding" = String, Header, description = "The `binding` the login answered"),
    ),
    responses(
        (status = 200, description = "A new access token; the cookie is rotated", body = openapi::Envelope<AccessGrant>),
        (status = 401, description = "No cookie, a cookie without its binding, or a session that expired, was revoked or reused (40102)", body = openapi::ErrorEnvelope),
        (status = 403, description = "Not the page's own request (40304)", body = openapi::ErrorEnvelope),
    )
)]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    same_origin(&headers)?;
    let cookies = refresh_cookies(&headers);
    let Some(&first) = cookies.first() else {
        return Err(Error::InvalidToken(
            "no session in this browser; log in".into(),
        ));
    };
    let binding = header_str(&headers, BINDING_HEADER).unwrap_or_default();
    // The page's own cookie is the one its binding belongs to, wherever the
    // browser put it among planted ones (with one cookie, the refresh itself
    // checks it).
    let mut token = first;
    if cookies.len() > 1 {
        for candidate in cookies {
            if state.auth.is_bound(candidate, binding).await? {
                token = candidate;
                break;
            }
        }
    }
    match state.auth.refresh_bound(token, binding).await {
        Ok(tokens) => Ok(grant(&headers, &state, "refreshed", tokens, None)),
        // The cookie is dead: drop it, so the page stops offering it.
        Err(e) => Ok(with_cookie(e.into_response(), &cookie(&headers, "", 0))),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the caller's own password, for the admin page.
///
/// As `POST /api/auth/password`, but the new session's refresh token goes
/// into the cookie instead of the body. Needs `X-KXY-CSRF: 1` and a
/// same-origin request.
#[utoipa::path(
    post,
    path = "/api/auth/session/password",
    tag = "auth",
    operation_id = "session_change_password",
    request_body = PasswordChange,
    params(("X-KXY-CSRF" = String, Header, description = "Must be `1`")),
    responses(
        (status = 200, description = "Changed; a new session's access token, the cookie is replaced", body = openapi::Envelope<AccessGrant>),
        (status = 400, description = "The new password is too weak, or the caller used an API key (40002)", body = openapi::ErrorEnvelope),
        (status = 403, description = "Not the page's own request (40304)", body = openapi::ErrorEnvelope),
    )
)]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Response, Error> {
    same_origin(&headers)?;
    let tokens = state
        .auth
        .change_password(&caller, &body.current_password, &body.new_password)
        .await?;
    state.keys.revoke_all(&caller.user.id).await?;
    let binding = state.auth.bind_to_page(&tokens.refresh_token).await?;
    Ok(grant(
        &headers,
        &state,
        "password changed; every other login ended and your API keys are disabled",
        tokens,
        Some(binding),
    ))
}

/// Ends the browser's session: the one its cookie belongs to, and the one
/// of the access token if it sends a live one. Either is enough, so a page
/// whose access token ran out (a laptop that slept) still logs out instead
/// of leaving the cookie's session alive behind a "logged out" screen.
/// Needs `X-KXY-CSRF: 1` and a same-origin request.
#[utoipa::path(
    delete,
    path = "/api/auth/session",
    tag = "auth",
    operation_id = "session_logout",
    params(("X-KXY-CSRF" = String, Header, description = "Must be `1`")),
    responses(
        (status = 200, description = "Logged out; the cookie is cleared", body = openapi::Envelope<openapi::Null>),
        (status = 401, description = "Neither a session cookie nor an access token was sent (40100), or the access token is invalid (40102)", body = openapi::ErrorEnvelope),
        (status = 403, description = "Not the page's own request (40304)", body = openapi::ErrorEnvelope),
    )
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    same_origin(&headers)?;
    // Every cookie's session: a planted one may come first.
    let sessions = refresh_cookies(&headers);
    let access = bearer(&headers)?;
    if sessions.is_empty() && access.is_none() {
        return Err(Error::AuthRequired);
    }
    for token in &sessions {
        state.auth.end_session(token).await?;
    }
    if let Some(token) = access {
        match state.auth.authenticate(token).await {
            Ok(caller) => state.auth.logout(&caller).await?,
            // The cookie's session is ended: a dead access token changes nothing.
            Err(_) if !sessions.is_empty() => {}
            Err(e) => return Err(e),
        }
    }
    let response = Envelope::ok("logged out", ()).into_response();
    Ok(with_cookie(response, &cookie(&headers, "", 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_the_pages_own_requests_pass() {
        let host = ("host", "127.0.0.1:5801");
        assert!(same_origin(&headers(&[host, (CSRF_HEADER, "1")])).is_ok());
        assert!(
            same_origin(&headers(&[
                host,
                (CSRF_HEADER, "1"),
                ("origin", "http://127.0.0.1:5801"),
                ("sec-fetch-site", "same-origin"),
            ]))
            .is_ok()
        );
        assert!(same_origin(&headers(&[host])).is_err());
        assert!(
            same_origin(&headers(&[
                host,
                (CSRF_HEADER, "1"),
                ("origin", "http://127.0.0.1:3000")
            ]))
            .is_err()
        );
        assert!(
            same_origin(&headers(&[
                host,
                (CSRF_HEADER, "1"),
                ("sec-fetch-site", "same-site")
            ]))
            .is_err()
        );
        // Behind a proxy that rewrites Host: the forwarded name counts.
        let proxied = [
            ("host", "127.0.0.1:5801"),
            (CSRF_HEADER, "1"),
            ("origin", "https://ids.example.com"),
            ("x-forwarded-host", "ids.example.com, 10.0.0.1"),
        ];
        assert!(same_origin(&headers(&proxied)).is_ok());
        let elsewhere = [
            ("host", "127.0.0.1:5801"),
            (CSRF_HEADER, "1"),
            ("origin", "https://evil.example.com"),
            ("x-forwarded-host", "ids.example.com"),
        ];
        assert!(same_origin(&headers(&elsewhere)).is_err());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; kxy_refresh=rt_s.x; b=2")]);
        assert_eq!(refresh_cookies(&h), ["rt_s.x"]);
        assert!(refresh_cookies(&headers(&[("cookie", "kxy_refresh=")])).is_empty());
        assert!(refresh_cookies(&HeaderMap::new()).is_empty());
        // A planted cookie on a longer path comes first; both are seen, a
        // flood only up to the limit.
        let h = headers(&[("cookie", "kxy_refresh=rt_p.y; kxy_refresh=rt_s.x")]);
        assert_eq!(refresh_cookies(&h), ["rt_p.y", "rt_s.x"]);
        let flood = vec!["kxy_refresh=rt_p.y"; 50].join("; ");
        assert_eq!(
            refresh_cookies(&headers(&[("cookie", &flood)])).len(),
            MAX_COOKIES
        );
    }

    #[test]
    fn the_cookie_is_secure_behind_https() {
        let plain = cookie(&HeaderMap::new(), "v", 60);
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let proxied = cookie(&headers(&[("x-forwarded-proto", "https")]), "v", 60);
        assert!(proxied.ends_with("; Secure"));
        for chain in ["HTTPS", "https, http", "https,http"] {
            let proxied = cookie(&headers(&[("x-forwarded-proto", chain)]), "v", 60);
            assert!(proxied.ends_with("; Secure"), "{chain}");
        }
        let inner = cookie(&headers(&[("x-forwarded-proto", "http, https")]), "v", 60);
        assert!(!inner.contains("Secure"));
    }
}
