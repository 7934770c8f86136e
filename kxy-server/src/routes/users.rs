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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    page: Option<usize>,
    page_size: Option<usize>,
    /// `username`, `created_at`, `-username` or `-created_at` (descending).
    sort: Option<String>,
}

#[derive(Serialize)]
struct Page<T> {
    items: Vec<T>,
    total: usize,
    page: usize,
    page_size: usize,
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Envelope<Page<UserView>>, Error> {
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
    let items = users
        .iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .map(UserView::from)
        .collect();
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    email: Option<String>,
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

#[derive(Serialize)]
struct Me {
    #[serde(flatten)]
    user: UserView,
    permissions: Vec<String>,
}

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

#[derive(Serialize)]
struct UserDetail {
    #[serde(flatten)]
    user: UserView,
    /// Seconds until a lock from failed logins ends, if locked.
    locked_for: Option<u64>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    email: Option<String>,
    active: Option<bool>,
    roles: Option<Vec<String>>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

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
