//! Identity: users, roles, passwords, tokens and sessions.
//!
//! [`auth::AuthService`] is the entry point: it creates the first user,
//! logs users in and out, rotates refresh tokens, enforces lockout and turns
//! a bearer token into a [`auth::Caller`] with the union of its roles'
//! permissions. Every route but a short public list requires a caller, and
//! each admin route a permission (see `routes::inventory`).

pub mod auth;
pub mod passwords;
pub mod recovery;
pub mod roles;
pub mod setup;
pub mod tokens;
pub mod users;

pub use auth::{AuthService, AuthSettings, Caller, LockoutPolicy, TokenPair, Via};
