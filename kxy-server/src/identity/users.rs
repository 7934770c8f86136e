//! Users: who can log in, with which roles.
//!
//! A user is a record in `users` keyed by a random id; `usernames` maps the
//! lower-cased username to that id and is written first with "absent", so
//! two instances can never create the same username twice. What leaves the
//! server is a [`UserView`], which has no password hash.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::tokens::{is_id, now, random_id};
use crate::Error;
use crate::store::records::typed;
use crate::store::{Expect, Store};

const USERS: &str = "users";
const USERNAMES: &str = "usernames";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub active: bool,
    pub created_at: u64,
    pub updated_at: u64,
    /// Raised to end every login of the user at once (password reset or
    /// change, deactivation): a session opened under an older generation
    /// is refused, with its access and refresh tokens.
    #[serde(default)]
    pub generation: u64,
    /// Raised to end the user's API keys (password reset or change): a key
    /// made under an older one is refused until its owner turns it on again.
    #[serde(default)]
    pub key_generation: u64,
}

/// A user as the API shows it: everything but the password hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub active: bool,
    pub created_at: u64,
    pub updated_at: u64,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            id: user.id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            roles: user.roles.clone(),
            active: user.active,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// Checks a username: 3 to 64 characters from `A-Z a-z 0-9 _ . @ -`.
pub fn check_username(username: &str) -> Result<(), Error> {
    let ok = (3..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "username",
            "use 3 to 64 characters from A-Z a-z 0-9 _ . @ -",
        ))
    }
}

/// Checks an e-mail address loosely: one `@` with text on both sides.
pub fn check_email(email: &str) -> Result<(), Error> {
    let ok = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("email", "not an e-mail address"))
    }
}

#[derive(Clone)]
pub struct UserDirectory {
    store: Arc<dyn Store>,
}

impl UserDirectory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        UserDirectory { store }
    }

    /// Creates a user; `password_hash` is already hashed, roles checked.
    pub async fn create(
        &self,
        username: &str,
        email: Option<String>,
        password_hash: String,
        roles: Vec<String>,
    ) -> Result<User, Error> {
        check_username(username)?;
        if let Some(email) = &email {
            check_email(email)?;
        }
        let id = random_id();
        let claimed = typed::save(
            &*self.store,
            USERNAMES,
            &username.to_lowercase(),
            &id,
            Expect::Absent,
        )
        .await?;
        if claimed.is_none() {
            return Err(Error::Conflict(format!("username {username:?} is taken")));
        }
        let now = now();
        let user = User {
            id: id.clone(),
            username: username.to_owned(),
            email,
            password_hash,
            roles,
            active: true,
            created_at: now,
            updated_at: now,
            generation: 0,
            key_generation: 0,
        };
        typed::save(&*self.store, USERS, &id, &user, Expect::Absent).await?;
        Ok(user)
    }

    pub async fn get(&self, id: &str) -> Result<Option<(User, u64)>, Error> {
        if !is_id(id) {
            return Ok(None);
        }
        Ok(typed::load(&*self.store, USERS, id).await?)
    }

    /// The user or a 404 naming it.
    pub async fn require(&self, id: &str) -> Result<(User, u64), Error> {
        self.get(id).await?.ok_or_else(|| Error::NotFound {
            what: "user",
            id: id.to_owned(),
        })
    }

    pub async fn by_username(&self, username: &str) -> Result<Option<User>, Error> {
        if check_username(username).is_err() {
            return Ok(None);
        }
        let Some((id, _)) =
            typed::load::<String>(&*self.store, USERNAMES, &username.to_lowercase()).await?
        else {
            return Ok(None);
        };
        Ok(self.get(&id).await?.map(|(user, _)| user))
    }

    pub async fn all(&self) -> Result<Vec<User>, Error> {
        Ok(typed::load_all::<User>(&*self.store, USERS)
            .await?
            .into_iter()
            .map(|(user, _)| user)
            .collect())
    }

    /// Writes `user` if it is still at `version` (else 409: changed meanwhile).
    pub async fn update(&self, mut user: User, version: u64) -> Result<User, Error> {
        user.updated_at = now();
        match typed::save(
            &*self.store,
            USERS,
            &user.id,
            &user,
            Expect::Version(version),
        )
        .await?
        {
            Some(_) => Ok(user),
            None => Err(Error::Conflict(format!(
                "user {} was changed by another request; read it again and retry",
                user.id
            ))),
        }
    }

    pub async fn delete(&self, user: &User, version: u64) -> Result<(), Error> {
        if !self
            .store
            .delete_record(USERS, &user.id, Expect::Version(version))
            .await?
        {
            return Err(Error::Conflict(format!(
                "user {} was changed by another request",
                user.id
            )));
        }
        self.store
            .delete_record(USERNAMES, &user.username.to_lowercase(), Expect::Any)
            .await?;
        Ok(())
    }

    /// Takes role `role` from every user who holds it (the role is being
    /// deleted; a later role of the same name must not find members).
    pub async fn remove_role(&self, role: &str) -> Result<(), Error> {
        for (user, _) in typed::load_all::<User>(&*self.store, USERS).await? {
            if !user.roles.iter().any(|r| r == role) {
                continue;
            }
            // Compare-and-set, again while another request changes the user.
            while let Some((mut user, version)) = self.get(&user.id).await? {
                user.roles.retain(|r| r != role);
                match self.update(user, version).await {
                    Ok(_) => break,
                    Err(Error::Conflict(_)) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Whether any user exists (the system is initialized).
    pub async fn any(&self) -> Result<bool, Error> {
        Ok(!self.store.records(USERS).await?.is_empty())
    }
}
