//! Users: the admin's list, creation and changes, and `users/me`.

use axum::extract::{Path, State};
use axum::http::Method;
use serde::{Deserialize, Serialize};

use super::{Access, RouteSpec, route};
use crate::Error;
use crate::envelope::Envelope;
use crate::extract::{ApiJson, ApiQuery};
use crate::identity::roles::ADMIN;
use crate::identity::users::{User, UserView, check_email};
use crate::identity::{Caller, Via};
use crate::openapi;
use crate::state::AppState;

pub fn routes() -> Vec<RouteSpec> {
    let read = Access::Permission("users:read");
    let write = Access::Permission("users:write");
    vec![
        route(Method::GET, "/api/users", read, list),
        route(Method::POST, "/api/users", write, create),
        route(Method::GET, "/api/users/me", Access::LoggedIn, me),
        route(Method::GET, "/api/users/{id}", read, get_one),
        route(Method::PUT, "/api/users/{id}", write, update),
        route(Method::DELETE, "/api/users/{id}", write, delete),
        route(
            Method::POST,
            "/api/users/{id}/reset-password",
            write,
            reset_password,
        ),
        route(Method::POST, "/api/users/{id}/unlock", write, unlock),
    ]
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// The page, from 1 (default 1).
    page: Option<usize>,
    /// Users per page, 1 to 200 (default 20).
    page_size: Option<usize>,
    /// `username`, `created_at`, `-username` or `-created_at` (descending).
    sort: Option<String>,
}

/// One page of a list.
#[derive(Serialize, utoipa::ToSchema)]
struct Page<T> {
    items: Vec<T>,
    /// How many there are in all.
    total: usize,
    page: usize,
    page_size: usize,
}

/// Lists users, a page at a time.
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "users",
    operation_id = "users_list",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of users, each with its lock state", body = openapi::Envelope<Page<UserDetail>>),
        (
            status = 400,
            description = "A bad `page`, `page_size` or `sort` (40002), or an unknown or \
                           mistyped query parameter (40001)",
            body = openapi::ErrorEnvelope
        ),
    )
)]
async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Envelope<Page<UserDetail>>, Error> {
    let page = query.page.unwrap_or(1);
    let page_size = query.page_size.unwrap_or(20);
    if page == 0 {
        return Err(Error::invalid("page", "pages start at 1"));
    }
    if !(1..=200).contains(&page_size) {
        return Err(Error::invalid("page_size", "must be between 1 and 200"));
    }
    let mut users = state.auth.users.all().await?;
    let sort = query.sort.as_deref().unwrap_or("username");
    let (field, descending) = sort.strip_prefix('-').map_or((sort, false), |f| (f, true));
    match field {
        "username" => users.sort_by_key(|u| u.username.to_lowercase()),
        "created_at" => users.sort_by_key(|u| (u.created_at, u.id.clone())),
        _ => {
            return Err(Error::invalid(
                "sort",
                "use username, created_at, -username or -created_at",
            ));
        }
    }
    if descending {
        users.reverse();
    }
    let total = users.len();
    let mut items = Vec::new();
    for user in users
        .iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
    {
        // The lock state too, so a list shows who is locked out without a
        // request per user.
        items.push(UserDetail {
            user: UserView::from(user),
            locked_for: state.auth.locked_for(&user.username).await?,
        });
    }
    Ok(Envelope::ok(
        "ok",
        Page {
            items,
            total,
            page,
            page_size,
        },
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUser {
    /// 3 to 64 of `A-Z a-z 0-9 _ . @ -`.
    username: String,
    password: String,
    email: Option<String>,
    /// Role names; the caller must hold every permission of each.
    #[serde(default)]
    roles: Vec<String>,
}

/// Refuses unless `caller` holds every permission of `roles`.
async fn require_roles(
    state: &AppState,
    caller: &Caller,
    roles: &[String],
    over: &str,
) -> Result<(), Error> {
    let needed = state.auth.roles.permissions_of(roles).await?;
    caller.require_all(&needed, over)
}

/// Refuses to act over `user` (change, deactivate, delete, reset, unlock)
/// unless the caller holds every right the user has. For a scoped API key
/// that includes the self-service rights every user holds over their own
/// keys and credentials: a key without them must not get them by taking
/// over an account (its owner's included) with a new password.
async fn require_over(state: &AppState, caller: &Caller, user: &User) -> Result<(), Error> {
    let mut needed = state.auth.roles.permissions_of(&user.roles).await?;
    if matches!(caller.via, Via::ApiKey { scoped: true, .. }) {
        needed = needed.with(crate::routes::self_service());
    }
    caller.require_all(&needed, "this user")
}

/// Creates a user.
///
/// The caller must hold every permission of the roles it assigns.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "users",
    operation_id = "users_create",
    request_body = NewUser,
    responses(
        (status = 200, description = "The new user", body = openapi::Envelope<UserView>),
        (
            status = 400,
            description = "A bad username or email, a weak password or an unknown role (40002)",
            body = openapi::ErrorEnvelope
        ),
        (status = 409, description = "The username is taken, or the user limit is reached (40902)", body = openapi::ErrorEnvelope),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Envelope<UserView>, Error> {
    require_roles(&state, &caller, &body.roles, "a role to assign").await?;
    let user = state
        .auth
        .create_user(&body.username, &body.password, body.email, body.roles)
        .await?;
    Ok(Envelope::ok("user created", user))
}

/// The caller and what they may do.
#[derive(Serialize, utoipa::ToSchema)]
struct Me {
    #[serde(flatten)]
    user: UserView,
    /// Every permission the caller holds (for a key: its scope).
    permissions: Vec<String>,
}

/// The caller: their user record and permissions.
#[utoipa::path(
    get,
    path = "/api/users/me",
    tag = "users",
    operation_id = "users_me",
    responses(
        (status = 200, description = "The caller", body = openapi::Envelope<Me>),
    )
)]
async fn me(caller: Caller) -> Envelope<Me> {
    let permissions = caller.permissions.iter().map(ToString::to_string).collect();
    Envelope::ok(
        "ok",
        Me {
            user: caller.user,
            permissions,
        },
    )
}

/// A user, and whether failed logins locked them.
#[derive(Serialize, utoipa::ToSchema)]
struct UserDetail {
    #[serde(flatten)]
    user: UserView,
    /// Seconds until a lock from failed logins ends, if locked.
    locked_for: Option<u64>,
}

/// One user.
#[utoipa::path(
    get,
    path = "/api/users/{id}",
    tag = "users",
    operation_id = "users_get",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = openapi::Envelope<UserDetail>),
        (status = 404, description = "No such user (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Envelope<UserDetail>, Error> {
    let (user, _) = state.auth.users.require(&id).await?;
    let locked_for = state.auth.locked_for(&user.username).await?;
    Ok(Envelope::ok(
        "ok",
        UserDetail {
            user: UserView::from(&user),
            locked_for,
        },
    ))
}

/// What to change; absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UserChange {
    email: Option<String>,
    active: Option<bool>,
    roles: Option<Vec<String>>,
}

/// Changes a user's email, roles or active flag.
///
/// The caller must hold every permission of the user and of the roles it
/// assigns; deactivating ends the user's logins. No change may leave the
/// system without an active administrator.
#[utoipa::path(
    put,
    path = "/api/users/{id}",
    tag = "users",
    operation_id = "users_update",
    params(("id" = String, Path, description = "The user's id")),
    request_body = UserChange,
    responses(
        (status = 200, description = "The changed user", body = openapi::Envelope<UserView>),
        (status = 400, description = "A bad email or an unknown role (40002)", body = openapi::ErrorEnvelope),
        (status = 404, description = "No such user (40402)", body = openapi::ErrorEnvelope),
        (
            status = 409,
            description = "Deactivating oneself, leaving no active administrator, or a \
                           concurrent change (40902)",
            body = openapi::ErrorEnvelope
        ),
    )
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<UserChange>,
) -> Result<Envelope<UserView>, Error> {
    let (mut user, version) = state.auth.users.require(&id).await?;
    let was_admin = is_active_admin(&user);
    // Changing a user who holds more than the caller (demoting an admin,
    // deactivating them) is acting over rights the caller lacks.
    require_over(&state, &caller, &user).await?;
    if let Some(roles) = &change.roles {
        require_roles(&state, &caller, roles, "a role to assign").await?;
    }
    if let Some(email) = change.email {
        check_email(&email)?;
        user.email = Some(email);
    }
    if let Some(roles) = change.roles {
        state.auth.roles.check_exist(&roles).await?;
        user.roles = roles;
    }
    if let Some(active) = change.active {
        if !active && user.id == caller.user.id {
            return Err(Error::Conflict("you cannot deactivate yourself".into()));
        }
        if user.active && !active {
            // Every login of the user ends; keys wait while inactive.
            user.generation += 1;
        }
        user.active = active;
    }
    let user = if was_admin && !is_active_admin(&user) {
        with_admin_lock(&state, async {
            keep_an_admin(&state, &user).await?;
            state.auth.users.update(user, version).await
        })
        .await?
    } else {
        state.auth.users.update(user, version).await?
    };
    // Keys act with their owner's roles and need an active owner.
    state.keys.invalidate().await?;
    Ok(Envelope::ok("user updated", UserView::from(&user)))
}

/// Deletes a user.
///
/// The caller must hold every permission of the user; nobody deletes
/// themselves or the last active administrator.
#[utoipa::path(
    delete,
    path = "/api/users/{id}",
    tag = "users",
    operation_id = "users_delete",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "Deleted", body = openapi::Envelope<openapi::Null>),
        (status = 404, description = "No such user (40402)", body = openapi::ErrorEnvelope),
        (
            status = 409,
            description = "Deleting oneself, leaving no active administrator, or a concurrent \
                           change (40902)",
            body = openapi::ErrorEnvelope
        ),
    )
)]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Envelope<()>, Error> {
    let (mut user, version) = state.auth.users.require(&id).await?;
    if user.id == caller.user.id {
        return Err(Error::Conflict("you cannot delete yourself".into()));
    }
    require_over(&state, &caller, &user).await?;
    if is_active_admin(&user) {
        user.active = false;
        with_admin_lock(&state, async {
            keep_an_admin(&state, &user).await?;
            state.auth.users.delete(&user, version).await
        })
        .await?;
    } else {
        state.auth.users.delete(&user, version).await?;
    }
    state.keys.invalidate().await?;
    Ok(Envelope::ok("user deleted", ()))
}

fn is_active_admin(user: &User) -> bool {
    user.active && user.roles.iter().any(|r| r == ADMIN)
}

/// The mark that serializes changes which could leave no administrator.
const ADMIN_CHANGE_LOCK: &str = "lock:admin-change";
/// How long a holder that died keeps the lock.
const ADMIN_CHANGE_LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `change` (a check by [`keep_an_admin`] and the write it allows)
/// while holding a lock in the store, shared by every instance. Without it,
/// two administrators demoting each other at once would both see the other
/// still in place, and both succeed. A change that finds the lock taken is
/// refused (409) rather than queued: the caller retries.
async fn with_admin_lock<T>(
    state: &AppState,
    change: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let store = state.segments.store();
    if store
        .hit_mark(ADMIN_CHANGE_LOCK, ADMIN_CHANGE_LOCK_TTL)
        .await?
        != 1
    {
        return Err(Error::Conflict(
            "another change to a user is being checked against the last administrator; retry"
                .into(),
        ));
    }
    let result = change.await;
    if let Err(e) = store.clear_mark(ADMIN_CHANGE_LOCK).await {
        tracing::warn!("cannot release the administrator-change lock (it expires by itself): {e}");
    }
    result
}

/// Refuses a change that would leave no active administrator. Call it
/// inside [`with_admin_lock`], together with the write.
async fn keep_an_admin(state: &AppState, changed: &User) -> Result<(), Error> {
    if is_active_admin(changed) {
        return Ok(());
    }
    let others = state.auth.users.all().await?;
    if others
        .iter()
        .any(|u| u.id != changed.id && is_active_admin(u))
    {
        Ok(())
    } else {
        Err(Error::Conflict(
            "this would leave no active administrator".into(),
        ))
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

/// Sets another user's password.
///
/// Every login of the user ends, their API keys are disabled and the account
/// is unlocked. The caller must hold every permission of the user; one's own
/// password goes through `POST /api/auth/password`.
#[utoipa::path(
    post,
    path = "/api/users/{id}/reset-password",
    tag = "users",
    operation_id = "users_reset_password",
    params(("id" = String, Path, description = "The user's id")),
    request_body = NewPassword,
    responses(
        (status = 200, description = "Reset", body = openapi::Envelope<openapi::Null>),
        (status = 400, description = "A weak password (40002)", body = openapi::ErrorEnvelope),
        (status = 404, description = "No such user (40402)", body = openapi::ErrorEnvelope),
        (status = 409, description = "Resetting one's own password (40902)", body = openapi::ErrorEnvelope),
    )
)]
async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<Envelope<()>, Error> {
    // Only a holder of every permission of the user may take their account.
    let (user, _) = state.auth.users.require(&id).await?;
    if user.id == caller.user.id {
        // A reset needs no current password: one's own goes through the
        // change, which does, or a stolen session could keep the account.
        return Err(Error::Conflict(
            "to change your own password use POST /api/auth/password (it asks for the \
             current one)"
                .into(),
        ));
    }
    require_over(&state, &caller, &user).await?;
    state.auth.reset_password(&id, &body.password).await?;
    let keys = state.keys.revoke_all(&id).await?;
    Ok(Envelope::ok(
        format!(
            "password reset; every login of the user ended, {keys} API key(s) disabled, the \
             account is unlocked"
        ),
        (),
    ))
}

/// Lifts a lock from failed logins.
///
/// The caller must hold every permission of the user.
#[utoipa::path(
    post,
    path = "/api/users/{id}/unlock",
    tag = "users",
    operation_id = "users_unlock",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "Unlocked", body = openapi::Envelope<openapi::Null>),
        (status = 404, description = "No such user (40402)", body = openapi::ErrorEnvelope),
    )
)]
async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Envelope<()>, Error> {
    let (user, _) = state.auth.users.require(&id).await?;
    // Unlocking is lifting a protection of the account: lifting it for one
    // who holds more would let the caller keep guessing their password.
    require_over(&state, &caller, &user).await?;
    state.auth.unlock(&user.username).await?;
    Ok(Envelope::ok("unlocked", ()))
}
