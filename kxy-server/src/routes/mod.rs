//! HTTP routes, one module per area, and the inventory they are served from.
//!
//! Every route is declared once, in [`inventory`], with the access it needs:
//! public, any logged-in user, or a named permission. The router is built
//! from that list and the guard enforces it, so no route can be added
//! without saying who may call it, and a test can walk every route.

pub mod access;
pub mod auth;
pub mod counters;
pub mod credentials;
pub mod databases;
pub mod guard;
pub mod health;
pub mod keys;
pub mod roles;
pub mod segments;
pub mod users;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::state::AppState;
use kxy_core::permission::PermissionSet;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// Any logged-in user.
    LoggedIn,
    /// A logged-in user's own records (their API keys, their credentials).
    /// A login token passes; an API key passes only if its scope includes
    /// this permission (an unscoped key acts as its owner and holds it), so
    /// a key limited to, say, `segments:allocate` cannot touch them.
    Own(&'static str),
    /// A caller holding this permission (`resource:action`).
    Permission(&'static str),
    /// Segment allocation: public unless the server runs with
    /// `--allocation-requires-key`; then an API key holding
    /// `segments:allocate`.
    Allocation,
}

/// One route: method, path, access, handler.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<AppState>,
}

/// Declares a route.
pub fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> RouteSpec
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    RouteSpec {
        method,
        path,
        access,
        handler: on(filter, handler),
    }
}

/// The permission an API key needs to allocate when keys are required.
pub const ALLOCATE: &str = "segments:allocate";

/// Every route the server answers.
pub fn inventory() -> Vec<RouteSpec> {
    [
        health::routes(),
        auth::routes(),
        segments::routes(),
        users::routes(),
        roles::routes(),
        access::routes(),
        counters::routes(),
        keys::routes(),
        credentials::routes(),
        databases::routes(),
        crate::web::session::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The permissions of [`Access::Own`] routes: every user holds them on
/// their own records, so a key may carry them whatever its owner's roles.
pub fn self_service() -> &'static PermissionSet {
    static SET: std::sync::OnceLock<PermissionSet> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        inventory()
            .iter()
            .filter_map(|r| match r.access {
                Access::Own(p) => Some(p.parse().expect("routes declare valid permissions")),
                _ => None,
            })
            .collect()
    })
}

/// The permissions the routes require, sorted: the catalog roles draw from.
pub fn permission_catalog() -> Vec<&'static str> {
    let mut permissions: Vec<&'static str> = inventory()
        .iter()
        .filter_map(|r| match r.access {
            Access::Permission(p) | Access::Own(p) => Some(p),
            Access::Allocation => Some(ALLOCATE),
            _ => None,
        })
        .collect();
    permissions.sort_unstable();
    permissions.dedup();
    permissions
}
