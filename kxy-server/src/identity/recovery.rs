//! Account recovery by the operator, from the command line.
//!
//! Lockout protects accounts from guessing, but it could also lock every
//! administrator out, and a forgotten password has no one above it to
//! reset it. `kxy-server users unlock` and `users reset-password` act on
//! the store directly, without logging in: whoever can run the server
//! binary with its store flags already owns everything kxy holds. On Redis
//! they work while servers run (they see the change at once); the embedded
//! store's file belongs to one process, so stop that server first.

use std::sync::Arc;

use kxy_core::password::check_password;

use super::auth::mark_key;
use super::passwords::Passwords;
use super::users::{User, UserDirectory};
use crate::Error;
use crate::keys::KeyService;
use crate::store::Store;

async fn find(users: &UserDirectory, username: &str) -> Result<User, Error> {
    users
        .by_username(username)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "user",
            id: username.to_owned(),
        })
}

/// Lifts the lockout of `username` and forgets its failed logins.
pub async fn unlock(store: Arc<dyn Store>, username: &str) -> Result<(), Error> {
    let users = UserDirectory::new(Arc::clone(&store));
    let user = find(&users, username).await?;
    store.clear_mark(&mark_key("lock", &user.username)).await?;
    store.clear_mark(&mark_key("fail", &user.username)).await?;
    Ok(())
}

/// What a reset did besides setting the password.
pub struct Reset {
    pub keys_disabled: usize,
}

/// Sets a new password for `username` (checked against the policy), ends
/// every login of the user, disables their API keys and unlocks them; a
/// deactivated account is turned on again, since that is why one resets it.
pub async fn reset_password(
    store: Arc<dyn Store>,
    username: &str,
    password: &str,
) -> Result<Reset, Error> {
    let users = UserDirectory::new(Arc::clone(&store));
    let user = find(&users, username).await?;
    check_password(&user.username, password)
        .map_err(|e| Error::invalid("password", &e.to_string()))?;
    let hash = Passwords::new()?.hash(password.to_owned()).await?;
    let (mut user, version) = users.require(&user.id).await?;
    user.password_hash = hash;
    user.generation += 1;
    user.key_generation += 1;
    user.active = true;
    let user = users.update(user, version).await?;
    let keys = KeyService::new(Arc::clone(&store), usize::MAX);
    let keys_disabled = keys.revoke_all(&user.id).await?;
    unlock(store, &user.username).await?;
    Ok(Reset { keys_disabled })
}
