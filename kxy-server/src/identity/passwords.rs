//! Password hashing with argon2id, off the async runtime.
//!
//! Hashing is deliberately slow (tens of milliseconds), so it runs on the
//! blocking pool where it cannot stall other requests. A login for a user
//! that does not exist is checked against a dummy hash with the same
//! parameters, so it costs the same time as a wrong password and the two
//! cannot be told apart by timing.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::Error;

pub struct Passwords {
    /// A hash of a random password nobody knows, for unknown users.
    dummy: String,
}

impl Passwords {
    pub fn new() -> Result<Self, Error> {
        let random = hex::encode(rand::random::<[u8; 16]>());
        Ok(Passwords {
            dummy: hash_now(&random)?,
        })
    }

    /// The PHC string of an argon2id hash of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, Error> {
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|e| Error::Startup(format!("hashing task failed: {e}")))?
    }

    /// Whether `password` matches `hash`; with no hash (unknown user),
    /// spends the same time on the dummy and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let matches = tokio::task::spawn_blocking(move || {
            Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        known && matches
    }
}

fn hash_now(password: &str) -> Result<String, Error> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Startup(format!("cannot hash a password: {e}")))
}
