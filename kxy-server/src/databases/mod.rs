//! Registered databases and the table scanner (seed 004).
//!
//! An administrator registers the databases whose tables need IDs.
//! *Initializing* one connects, finds every table whose primary key is a
//! single integer column, reads its largest value and registers the counter
//! (system_code, db_name, table, key column) just above it; tables that
//! cannot be numbered are reported with the reason. Registration never
//! lowers a counter, so initializing again is always safe.
//!
//! The *scanner* runs every `--scan-interval` seconds and records tables
//! that appeared since as *discovered*; an administrator approves each one,
//! which registers its counter the same way. With several instances on one
//! Redis, a lease in the store lets one of them scan per interval. A
//! database that cannot be reached is logged and tried again next time; it
//! never stops the others.
//!
//! Passwords are sealed by the [`Vault`] bound to their connection target
//! (see [`secrets`]), never returned, and shown masked in lists; where a
//! database may point is bounded by the operator's [`DatabasePolicy`].

pub mod drivers;
mod duplicates;
mod generators;
mod initialize;
mod jobs;
mod policy;
mod probe;
mod scanner;
mod secrets;
mod seed_import;

pub use initialize::{InitReport, RegisteredTable, SkippedTable};
pub use jobs::{Job, JobState};
pub use policy::DatabasePolicy;
pub use probe::ConnectionTest;
pub use scanner::LastScan;
pub use seed_import::Imported;

use scanner::DISCOVERED;

use std::sync::Arc;

use kxy_core::{Identifier, KeyPart};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::identity::tokens::{is_id, now, random_id};
use crate::segments::SegmentService;
use crate::store::records::typed;
use crate::store::{Expect, Store};
use crate::vault::{Sealed, Vault};
use drivers::{DbType, TableInfo, Target, TlsMode};

const DATABASES: &str = "databases";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DatabaseConfig {
    guid: String,
    system_code: String,
    db_type: DbType,
    /// `host:port`; empty for SQLite.
    address: String,
    /// The database name, or for SQLite the file path.
    db_name: String,
    username: String,
    /// Absent in records from before TLS modes: `prefer`, as then.
    #[serde(default)]
    tls: TlsMode,
    /// PEM certificates `verify` checks the server's against; "" for the
    /// public web roots.
    #[serde(default)]
    tls_ca: String,
    password: Option<Sealed>,
    password_masked: String,
    created_at: u64,
    updated_at: u64,
}

/// A registered database as answers show it: no password.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DatabaseView {
    pub guid: String,
    pub system_code: String,
    pub db_type: DbType,
    pub address: String,
    pub db_name: String,
    /// The `db_name` its counters carry (for SQLite, the file's stem).
    pub counter_db_name: String,
    pub username: String,
    pub tls: TlsMode,
    pub tls_ca: String,
    pub password_masked: String,
    pub created_at: u64,
    pub updated_at: u64,
}

/// The body of `POST /api/database/add` (the seed's shape).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseForm {
    pub system_code: String,
    pub db_type: String,
    #[serde(default)]
    pub address: String,
    pub db_name: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub tls: TlsMode,
    #[serde(default)]
    pub tls_ca: String,
}

/// A change to a registered database; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseChange {
    pub system_code: Option<String>,
    pub address: Option<String>,
    pub db_name: Option<String>,
    pub username: Option<String>,
    /// Needed again (or "" to clear it) when the target changes: address,
    /// db_name, username, tls or tls_ca.
    pub password: Option<String>,
    pub tls: Option<TlsMode>,
    pub tls_ca: Option<String>,
}

/// A table the scanner found that has no counter yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DiscoveredTable {
    pub table: String,
    pub field: String,
    pub found_at: u64,
}

pub struct DatabaseService {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    segments: Arc<SegmentService>,
    policy: DatabasePolicy,
}

fn view(config: &DatabaseConfig) -> DatabaseView {
    DatabaseView {
        guid: config.guid.clone(),
        system_code: config.system_code.clone(),
        db_type: config.db_type,
        address: config.address.clone(),
        db_name: config.db_name.clone(),
        counter_db_name: counter_db_name(config.db_type, &config.db_name),
        username: config.username.clone(),
        tls: config.tls,
        tls_ca: config.tls_ca.clone(),
        password_masked: config.password_masked.clone(),
        created_at: config.created_at,
        updated_at: config.updated_at,
    }
}

/// The `db_name` counters of this database carry: the name itself, or for
/// SQLite the file's stem (a path cannot be part of a counter's name).
fn counter_db_name(db_type: DbType, db_name: &str) -> String {
    match db_type {
        DbType::Sqlite => std::path::Path::new(db_name)
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        _ => db_name.to_owned(),
    }
}

/// `host`, `host:port` or `[v6]:port` → (host, port).
fn parse_address(address: &str, default_port: u16) -> Result<(String, u16), Error> {
    policy::split_address(address)
        .map(|(host, port)| (host, port.unwrap_or(default_port)))
        .ok_or_else(|| Error::invalid("address", "use host:port"))
}

/// Checks a configuration against the rules and the operator's policy;
/// the error names the field.
fn validate(config: &DatabaseConfig, policy: &DatabasePolicy) -> Result<(), Error> {
    Identifier::new(KeyPart::SystemCode, &config.system_code)?;
    if config.tls_ca.len() > 64 * 1024
        || !(config.tls_ca.is_empty() || config.tls_ca.contains("-----BEGIN CERTIFICATE-----"))
    {
        return Err(Error::invalid(
            "tls_ca",
            "PEM certificates (-----BEGIN CERTIFICATE-----), at most 64 KiB, or empty",
        ));
    }
    match config.db_type {
        DbType::Sqlite => {
            if !config.address.is_empty() {
                return Err(Error::invalid(
                    "address",
                    "must be empty for sqlite (db_name is the file path)",
                ));
            }
            if config.db_name.is_empty() || config.db_name.len() > 4096 {
                return Err(Error::invalid(
                    "db_name",
                    "the SQLite file path is required",
                ));
            }
            if config.tls != TlsMode::Prefer || !config.tls_ca.is_empty() {
                return Err(Error::invalid("tls", "SQLite files take no TLS settings"));
            }
            policy.sqlite_file(&config.db_name)?;
            Identifier::new(
                KeyPart::DbName,
                &counter_db_name(config.db_type, &config.db_name),
            )
            .map_err(|e| {
                Error::invalid(
                    "db_name",
                    &format!("the file's name cannot name counters: {e}"),
                )
            })?;
        }
        _ => {
            let (host, port) = parse_address(&config.address, config.db_type.default_port())?;
            policy.check_host(&host, port)?;
            Identifier::new(KeyPart::DbName, &config.db_name)?;
            if config.username.is_empty() || config.username.len() > 128 {
                return Err(Error::invalid("username", "use 1 to 128 characters"));
            }
        }
    }
    Ok(())
}

/// How [`unreachable_error`] names what it could not reach, up to the cause.
fn unreachable_prefix(config: &DatabaseConfig) -> String {
    let location = if config.db_type == DbType::Sqlite {
        config.db_name.clone()
    } else {
        format!("{} at {}", config.db_name, config.address)
    };
    format!("cannot connect to {} database {location}: ", config.db_type)
}

fn unreachable_error(config: &DatabaseConfig, cause: &str) -> Error {
    Error::Database(format!("{}{cause}", unreachable_prefix(config)))
}

impl DatabaseService {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        segments: Arc<SegmentService>,
        policy: DatabasePolicy,
    ) -> Self {
        DatabaseService {
            store,
            vault,
            segments,
            policy,
        }
    }

    pub async fn add(&self, form: DatabaseForm) -> Result<DatabaseView, Error> {
        self.add_as(&random_id(), form).await
    }

    /// [`Self::add`] under a given guid (an import keeps the seed's);
    /// refused if the guid is taken.
    async fn add_as(&self, guid: &str, form: DatabaseForm) -> Result<DatabaseView, Error> {
        let guid = guid.to_owned();
        let mut config = self.draft(&guid, &form)?;
        self.refuse_duplicate(&config).await?;
        self.seal(&mut config, &form.password)?;
        if typed::save(&*self.store, DATABASES, &guid, &config, Expect::Absent)
            .await?
            .is_none()
        {
            return Err(Error::Conflict(format!(
                "database {guid} is registered already"
            )));
        }
        Ok(view(&config))
    }

    /// The record `form` describes, checked against the rules and the
    /// policy (the error names the field); its password is not sealed yet.
    fn draft(&self, guid: &str, form: &DatabaseForm) -> Result<DatabaseConfig, Error> {
        let db_type =
            DbType::parse(&form.db_type).map_err(|msg| Error::invalid("db_type", &msg))?;
        let now = now();
        let config = DatabaseConfig {
            guid: guid.to_owned(),
            system_code: form.system_code.clone(),
            db_type,
            address: form.address.clone(),
            db_name: form.db_name.clone(),
            username: form.username.clone(),
            tls: form.tls,
            tls_ca: form.tls_ca.clone(),
            password: None,
            password_masked: String::new(),
            created_at: now,
            updated_at: now,
        };
        validate(&config, &self.policy)?;
        Ok(config)
    }

    pub async fn list(&self) -> Result<Vec<DatabaseView>, Error> {
        let all = typed::load_all::<DatabaseConfig>(&*self.store, DATABASES).await?;
        Ok(all.iter().map(|(c, _)| view(c)).collect())
    }

    async fn config(&self, guid: &str) -> Result<(DatabaseConfig, u64), Error> {
        let missing = || Error::NotFound {
            what: "database",
            id: guid.to_owned(),
        };
        if !is_id(guid) {
            return Err(missing());
        }
        typed::load(&*self.store, DATABASES, guid)
            .await?
            .ok_or_else(missing)
    }

    pub async fn get(&self, guid: &str) -> Result<DatabaseView, Error> {
        Ok(view(&self.config(guid).await?.0))
    }

    pub async fn update(&self, guid: &str, change: DatabaseChange) -> Result<DatabaseView, Error> {
        let (mut config, version) = self.config(guid).await?;
        let before = config.clone();
        // The password goes only where it was entered for (module docs of
        // `secrets`).
        if config.password.is_some()
            && change.password.is_none()
            && secrets::moves_target(&config, &change)
        {
            return Err(Error::invalid(
                "password",
                "changing address, db_name, username, tls or tls_ca needs the password again \
                 (or \"\" to clear it): the stored one is only sent where it was entered for",
            ));
        }
        if let Some(v) = change.system_code {
            config.system_code = v;
        }
        if let Some(v) = change.address {
            config.address = v;
        }
        if let Some(v) = change.db_name {
            config.db_name = v;
        }
        if let Some(v) = change.username {
            config.username = v;
        }
        if let Some(v) = change.tls {
            config.tls = v;
        }
        if let Some(v) = change.tls_ca {
            config.tls_ca = v;
        }
        validate(&config, &self.policy)?;
        self.refuse_duplicate(&config).await?;
        // Without a new password the target is unchanged (checked above),
        // so the sealed one stays valid.
        if let Some(password) = change.password {
            self.seal(&mut config, &password)?;
        }
        config.updated_at = now();
        if typed::save(
            &*self.store,
            DATABASES,
            guid,
            &config,
            Expect::Version(version),
        )
        .await?
        .is_none()
        {
            return Err(Error::Conflict(format!(
                "database {guid} was changed meanwhile; retry"
            )));
        }
        // Moved elsewhere: its old database may be free for others now.
        self.release_claim(&before).await?;
        Ok(view(&config))
    }

    /// Forgets the database (its counters stay: IDs handed out stay used).
    pub async fn delete(&self, guid: &str) -> Result<(), Error> {
        let (config, _) = self.config(guid).await?;
        self.store
            .delete_record(DATABASES, guid, Expect::Any)
            .await?;
        self.release_claim(&config).await?;
        self.store
            .delete_record(DISCOVERED, guid, Expect::Any)
            .await?;
        Ok(())
    }

    /// Connects, after checking the record against the policy again (it
    /// may have changed since, or the record outside the API), with
    /// `password`, or the stored one when `None`.
    async fn open(
        &self,
        config: &DatabaseConfig,
        password: Option<&str>,
    ) -> Result<drivers::Connection, Error> {
        let (host, port, db_name) = match config.db_type {
            DbType::Sqlite => {
                let file = self.policy.sqlite_file(&config.db_name)?;
                (String::new(), 0, file.to_string_lossy().into_owned())
            }
            t => {
                let (host, port) = parse_address(&config.address, t.default_port())?;
                self.policy.check_host(&host, port)?;
                (host, port, config.db_name.clone())
            }
        };
        let password = match password {
            Some(password) => password.to_owned(),
            None => self.password(config)?,
        };
        let target = Target {
            query_timeout: self.policy.query_timeout(),
            db_type: config.db_type,
            host: &host,
            port,
            db_name: &db_name,
            username: &config.username,
            password: &password,
            tls: config.tls,
            tls_ca: &config.tls_ca,
        };
        drivers::connect(&target)
            .await
            .map_err(|cause| unreachable_error(config, &cause))
    }

    async fn tables(
        &self,
        config: &DatabaseConfig,
    ) -> Result<(drivers::Connection, Vec<TableInfo>), Error> {
        self.tables_with(config, None).await
    }

    /// [`Self::tables`] with `password` (`None`: the stored one).
    async fn tables_with(
        &self,
        config: &DatabaseConfig,
        password: Option<&str>,
    ) -> Result<(drivers::Connection, Vec<TableInfo>), Error> {
        let mut connection = self.open(config, password).await?;
        // The catalog is read once per database, by a few queries over
        // every table, which a busy server (or one table's lock held by a
        // migration) can slow past a per-table bound meant for one
        // table's query: listing gets at least LISTING_BOUND; each table's
        // queries get the configured bound again.
        let per_table = self.policy.query_timeout();
        connection.bound(per_table.max(LISTING_BOUND)).await;
        let tables = connection
            .tables(&config.db_name)
            .await
            .map_err(|e| unreachable_error(config, &format!("cannot list tables: {e}")))?;
        connection.bound(per_table).await;
        Ok((connection, tables))
    }
}

/// The least time the catalog queries of one database may take (see
/// `tables`).
const LISTING_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_address("db:3307", 3306).unwrap(), ("db".into(), 3307));
        assert_eq!(parse_address("db", 5432).unwrap(), ("db".into(), 5432));
        assert_eq!(
            parse_address("[::1]:5432", 1).unwrap(),
            ("::1".into(), 5432)
        );
        assert_eq!(parse_address("::1", 5432).unwrap(), ("::1".into(), 5432));
        assert_eq!(
            parse_address("DB.internal", 1).unwrap(),
            ("DB.internal".into(), 1)
        );
        for bad in [
            "",
            "db:x",
            "db:70000",
            "a b:1",
            "user:pw@host",
            "user:pw@host:3306",
            "db:0",
            "db:+3306",
            "-h",
            "-hevil:3306",
            "/var/run/postgresql",
            "/tmp/.s.PGSQL.5432",
        ] {
            assert!(parse_address(bad, 1).is_err(), "{bad}");
        }
        assert_eq!(counter_db_name(DbType::Sqlite, "/var/lib/app.db"), "app");
    }
}
