//! Limits on collections an account grows through the API: stored
//! credentials per user (`--max-credentials`, 100 by default) and endpoint
//! grants per user or role (`--max-grants-per-subject`, 1000), so that one
//! account cannot fill the store or slow every policy rebuild.
//!
//! A create first claims a place. The count is the owner's records in the
//! store plus the claims not stored yet, kept in a small per-owner record
//! written with compare-and-set: two creates racing through different
//! instances cannot both take the last place. A claim whose record never
//! appears (its create failed) holds its place for [`CLAIM_TTL`] seconds
//! at most. Deleting a record frees its place at once.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::identity::tokens::now;
use crate::state::AppState;
use crate::store::records::typed;
use crate::store::{Expect, Store};

/// How long a claim counts before its record is stored, in seconds.
pub const CLAIM_TTL: u64 = 60;

/// The command-line flags.
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// Stored credentials each user may hold.
    #[arg(long, env = "KXY_MAX_CREDENTIALS", default_value_t = 100)]
    pub max_credentials: usize,
    /// Endpoint grants each user, and each role, may hold.
    #[arg(long, env = "KXY_MAX_GRANTS_PER_SUBJECT", default_value_t = 1000)]
    pub max_grants_per_subject: usize,
}

impl LimitArgs {
    /// Sets the limits on `state`'s services; a zero limit is refused.
    pub fn apply(&self, state: &AppState) -> Result<(), Error> {
        for (flag, value) in [
            ("max-credentials", self.max_credentials),
            ("max-grants-per-subject", self.max_grants_per_subject),
        ] {
            if value == 0 {
                return Err(Error::Startup(format!("--{flag} must be at least 1")));
            }
        }
        state.credentials.limit().set(self.max_credentials);
        state.grants.limit().set(self.max_grants_per_subject);
        Ok(())
    }
}

/// A place taken by a create whose record may not be stored yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    id: String,
    at: u64,
}

/// One collection's limit per owner.
pub struct Limit {
    /// Where the claims are kept, one record per owner.
    claims: &'static str,
    /// What is limited, for the refusal: "stored credentials per user".
    what: &'static str,
    flag: &'static str,
    max: AtomicUsize,
}

impl Limit {
    pub const fn new(
        claims: &'static str,
        what: &'static str,
        flag: &'static str,
        max: usize,
    ) -> Self {
        Limit {
            claims,
            what,
            flag,
            max: AtomicUsize::new(max),
        }
    }

    pub fn set(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// Takes a place for record `id` of `owner`, or refuses (409) if the
    /// owner holds the limit already. `stored` lists the ids of the owner's
    /// records in the store; it is read after the claims, so a claim
    /// dropped from them meanwhile is found there.
    pub async fn claim<F, Fut>(
        &self,
        store: &dyn Store,
        owner: &str,
        id: &str,
        stored: F,
    ) -> Result<(), Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<HashSet<String>, Error>>,
    {
        loop {
            let (claims, expect) =
                match typed::load::<Vec<Claim>>(store, self.claims, owner).await? {
                    Some((claims, version)) => (claims, Expect::Version(version)),
                    None => (Vec::new(), Expect::Absent),
                };
            let stored = stored().await?;
            let now = now();
            let mut pending: Vec<Claim> = claims
                .into_iter()
                .filter(|c| !stored.contains(&c.id) && c.at + CLAIM_TTL > now)
                .collect();
            let max = self.max();
            if stored.len() + pending.len() >= max {
                return Err(Error::Conflict(format!(
                    "at most {max} {} (--{}); delete one first",
                    self.what, self.flag
                )));
            }
            pending.push(Claim {
                id: id.to_owned(),
                at: now,
            });
            if typed::save(store, self.claims, owner, &pending, expect)
                .await?
                .is_some()
            {
                return Ok(());
            }
            // Another create claimed meanwhile: count again.
        }
    }
}
