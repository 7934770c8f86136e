//! Password hashing with argon2id, off the async runtime.
//!
//! Hashing is deliberately slow (tens of milliseconds), so it runs on the
//! blocking pool where it cannot stall other requests. A login for a user
//! that does not exist is checked against a dummy hash with the same
//! parameters, so it costs the same time as a wrong password and the two
//! cannot be told apart by timing.
//!
//! At most one hash per core is computed at a time, and a request waits
//! at most [`QUEUE_WAIT`] for its turn before it is refused (503, retry):
//! a flood of logins, which needs no account, cannot take the blocking
//! threads that allocation and the embedded store rely on, nor build an
//! unbounded queue.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::Error;

/// How long a password check waits for a free core before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_secs(1);

pub struct Passwords {
    /// A hash of a random password nobody knows, for unknown users.
    dummy: String,
    /// One permit per core: hashes computed at once.
    permits: Arc<tokio::sync::Semaphore>,
}

impl Passwords {
    pub fn new() -> Result<Self, Error> {
        let random = hex::encode(rand::random::<[u8; 16]>());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Passwords {
            dummy: hash_now(&random)?,
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
        })
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn bounded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let permit = tokio::time::timeout(QUEUE_WAIT, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| Error::Busy("too many password checks at once; retry in a moment".into()))?
            .map_err(|_| Error::Internal)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| Error::Startup(format!("hashing task failed: {e}")))
    }

    /// The PHC string of an argon2id hash of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, Error> {
        self.bounded(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `hash`; with no hash (unknown user),
    /// spends the same time on the dummy and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Error> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let matches = self
            .bounded(move || {
                Argon2::default()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && matches)
    }
}

fn hash_now(password: &str) -> Result<String, Error> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Startup(format!("cannot hash a password: {e}")))
}
