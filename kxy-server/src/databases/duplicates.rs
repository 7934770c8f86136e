//! One physical database, one registration.
//!
//! Counters are named by system code and database name. Registering the
//! same database twice under two system codes would give each of its
//! tables two counters, each handing out the same IDs from the same start:
//! the duplicates kxy exists to prevent. So a registration (or a change of
//! one) that points at a database another registration already points at
//! under another system code is refused, naming that registration. (Two
//! registrations under one system code share their counters: harmless.)
//!
//! "The same" is judged on what can be known without asking a resolver:
//! type, host (case-insensitive; `localhost`, `127.0.0.1` and `::1` are one
//! host), port with the type's default filled in, and database name; for
//! SQLite, the file's resolved path. Two names for one host behind DNS are
//! not caught.
//!
//! The check is atomic: the first system code to register a database
//! claims it with a compare-and-set record (`database_targets`), so two
//! registrations racing on different instances cannot both pass. A claim
//! whose registrations are all gone is released, or taken over.

use sha2::{Digest, Sha256};

use super::drivers::DbType;
use super::{DATABASES, DatabaseConfig, DatabaseService, parse_address};
use crate::Error;
use crate::identity::tokens::now;
use crate::store::Expect;
use crate::store::records::typed;

const TARGETS: &str = "database_targets";
/// A claim whose registration never appeared (its request died between
/// claiming and saving) may be taken over after this long.
const UNFINISHED_CLAIM_SECS: u64 = 60;

/// Who holds a database: the system code, the registration, since when.
#[derive(serde::Serialize, serde::Deserialize)]
struct Claim {
    system_code: String,
    guid: String,
    claimed_at: u64,
}

fn claim_id(target: &str) -> String {
    hex::encode(&Sha256::digest(target.as_bytes())[..16])
}

/// The physical database `config` points at, as a comparable string.
fn physical(service: &DatabaseService, config: &DatabaseConfig) -> Option<String> {
    if config.db_type == DbType::Sqlite {
        let path = service.policy.sqlite_file(&config.db_name).ok()?;
        return Some(format!("sqlite|{}", path.display()));
    }
    let (host, port) = parse_address(&config.address, config.db_type.default_port()).ok()?;
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host = match host.as_str() {
        "localhost" | "127.0.0.1" | "::1" | "[::1]" => "loopback",
        other => other,
    };
    Some(format!(
        "{}|{host}|{port}|{}",
        config.db_type, config.db_name
    ))
}

impl DatabaseService {
    /// Refuses `config` if another registration points at its database
    /// under another system code; else claims the database for its system
    /// code (atomically, see the module doc).
    pub(super) async fn refuse_duplicate(&self, config: &DatabaseConfig) -> Result<(), Error> {
        let Some(target) = physical(self, config) else {
            return Ok(());
        };
        let others = typed::load_all::<DatabaseConfig>(&*self.store, DATABASES).await?;
        let conflict = |code: &str| -> Option<Error> {
            others
                .iter()
                .find(|(other, _)| {
                    other.guid != config.guid
                        && other.system_code == code
                        && physical(self, other).as_deref() == Some(target.as_str())
                })
                .map(|(other, _)| {
                    Error::Conflict(format!(
                        "this database is already registered as {} under system {}: a second \
                         system code would give each table a second counter handing out the \
                         same IDs; use that registration's system code, or delete it first",
                        other.guid, other.system_code
                    ))
                })
        };
        // Registrations made before claims existed.
        for (other, _) in &others {
            if other.system_code != config.system_code
                && let Some(e) = conflict(&other.system_code)
            {
                return Err(e);
            }
        }
        let id = claim_id(&target);
        let mine = Claim {
            system_code: config.system_code.clone(),
            guid: config.guid.clone(),
            claimed_at: now(),
        };
        loop {
            let taken = match typed::load::<Claim>(&*self.store, TARGETS, &id).await? {
                Some((claim, _)) if claim.system_code == config.system_code => return Ok(()),
                Some((claim, version)) => {
                    if let Some(e) = conflict(&claim.system_code) {
                        return Err(e);
                    }
                    let registered = others.iter().any(|(other, _)| other.guid == claim.guid);
                    let unfinished = !registered
                        && now().saturating_sub(claim.claimed_at) < UNFINISHED_CLAIM_SECS;
                    if unfinished {
                        return Err(Error::Conflict(format!(
                            "this database is being registered under system {} right now; a \
                             second system code would give each table a second counter",
                            claim.system_code
                        )));
                    }
                    // Its registrations are gone: take the claim over.
                    typed::save(&*self.store, TARGETS, &id, &mine, Expect::Version(version)).await?
                }
                None => typed::save(&*self.store, TARGETS, &id, &mine, Expect::Absent).await?,
            };
            if taken.is_some() {
                return Ok(());
            }
            // Claimed meanwhile by another request: look again.
        }
    }

    /// Releases the claim on `config`'s database once no registration
    /// points at it any more (after a delete or a move).
    pub(super) async fn release_claim(&self, config: &DatabaseConfig) -> Result<(), Error> {
        let Some(target) = physical(self, config) else {
            return Ok(());
        };
        let still_used = typed::load_all::<DatabaseConfig>(&*self.store, DATABASES)
            .await?
            .iter()
            .any(|(other, _)| physical(self, other).as_deref() == Some(target.as_str()));
        if !still_used {
            self.store
                .delete_record(TARGETS, &claim_id(&target), Expect::Any)
                .await?;
        }
        Ok(())
    }
}
