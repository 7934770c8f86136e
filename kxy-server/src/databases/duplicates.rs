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

use super::drivers::DbType;
use super::{DATABASES, DatabaseConfig, DatabaseService, parse_address};
use crate::Error;
use crate::store::records::typed;

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
    /// Refuses `config` if another registration points at its database.
    pub(super) async fn refuse_duplicate(&self, config: &DatabaseConfig) -> Result<(), Error> {
        let Some(target) = physical(self, config) else {
            return Ok(());
        };
        for (other, _) in typed::load_all::<DatabaseConfig>(&*self.store, DATABASES).await? {
            if other.guid != config.guid
                && other.system_code != config.system_code
                && physical(self, &other).as_deref() == Some(&target)
            {
                return Err(Error::Conflict(format!(
                    "this database is already registered as {} under system {}: a second \
                     system code would give each table a second counter handing out the same \
                     IDs; use that registration's system code, or delete it first",
                    other.guid, other.system_code
                )));
            }
        }
        Ok(())
    }
}
