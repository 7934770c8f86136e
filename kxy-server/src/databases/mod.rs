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
//! Passwords are sealed by the [`Vault`] (bound to the database's guid),
//! never returned, and shown masked in lists.

pub mod drivers;
mod scanner;

use scanner::DISCOVERED;

use std::collections::HashSet;
use std::sync::Arc;

use kxy_core::{Identifier, KeyPart, SegmentKey, mask_secret};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::identity::tokens::{is_id, now, random_id};
use crate::segments::SegmentService;
use crate::store::records::typed;
use crate::store::{Expect, Registration, Store, StoreError};
use crate::vault::{Sealed, Vault};
use drivers::{DbType, TableInfo, Target};

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
    password: Option<Sealed>,
    password_masked: String,
    created_at: u64,
    updated_at: u64,
}

/// A registered database as answers show it: no password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseView {
    pub guid: String,
    pub system_code: String,
    pub db_type: DbType,
    pub address: String,
    pub db_name: String,
    /// The `db_name` its counters carry (for SQLite, the file's stem).
    pub counter_db_name: String,
    pub username: String,
    pub password_masked: String,
    pub created_at: u64,
    pub updated_at: u64,
}

/// The body of `POST /api/database/add` (the seed's shape).
#[derive(Debug, Deserialize)]
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
}

/// A change to a registered database; absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseChange {
    pub system_code: Option<String>,
    pub address: Option<String>,
    pub db_name: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegisteredTable {
    pub table: String,
    pub field: String,
    /// The counter's value: the largest ID in use (or more, if it stood
    /// higher already).
    pub current: i64,
    pub next_id: i64,
    /// `created`, `raised` or `unchanged`.
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SkippedTable {
    pub table: String,
    pub reason: String,
}

/// What initializing found and did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitReport {
    pub guid: String,
    pub tables_total: usize,
    pub tables_done: usize,
    pub registered: Vec<RegisteredTable>,
    pub skipped: Vec<SkippedTable>,
}

/// A table the scanner found that has no counter yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiscoveredTable {
    pub table: String,
    pub field: String,
    pub found_at: u64,
}

pub struct DatabaseService {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    segments: Arc<SegmentService>,
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
    let bad = || Error::invalid("address", "use host:port");
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
        (host.to_owned(), tail.strip_prefix(':'))
    } else {
        match address.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (address.to_owned(), None),
        }
    };
    let port = port.map_or(Ok(default_port), |p| p.parse::<u16>().map_err(|_| bad()))?;
    if host.is_empty() || host.len() > 255 || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok((host, port))
}

/// Checks a configuration; the error names the field.
fn validate(config: &DatabaseConfig) -> Result<(), Error> {
    Identifier::new(KeyPart::SystemCode, &config.system_code)?;
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
            parse_address(&config.address, config.db_type.default_port())?;
            Identifier::new(KeyPart::DbName, &config.db_name)?;
            if config.username.is_empty() || config.username.len() > 128 {
                return Err(Error::invalid("username", "use 1 to 128 characters"));
            }
        }
    }
    Ok(())
}

fn unreachable_error(config: &DatabaseConfig, cause: &str) -> Error {
    let location = if config.db_type == DbType::Sqlite {
        config.db_name.clone()
    } else {
        format!("{} at {}", config.db_name, config.address)
    };
    Error::Database(format!(
        "cannot connect to {} database {location}: {cause}",
        config.db_type
    ))
}

impl DatabaseService {
    pub fn new(store: Arc<dyn Store>, vault: Arc<Vault>, segments: Arc<SegmentService>) -> Self {
        DatabaseService {
            store,
            vault,
            segments,
        }
    }

    fn seal(&self, guid: &str, password: &str) -> Result<(Option<Sealed>, String), Error> {
        if password.is_empty() {
            return Ok((None, String::new()));
        }
        Ok((
            Some(self.vault.seal(password, &format!("database:{guid}"))?),
            mask_secret(password),
        ))
    }

    fn password(&self, config: &DatabaseConfig) -> Result<String, Error> {
        match &config.password {
            Some(sealed) => self
                .vault
                .open(sealed, &format!("database:{}", config.guid)),
            None => Ok(String::new()),
        }
    }

    pub async fn add(&self, form: DatabaseForm) -> Result<DatabaseView, Error> {
        let db_type =
            DbType::parse(&form.db_type).map_err(|msg| Error::invalid("db_type", &msg))?;
        let guid = random_id();
        let now = now();
        let mut config = DatabaseConfig {
            guid: guid.clone(),
            system_code: form.system_code,
            db_type,
            address: form.address,
            db_name: form.db_name,
            username: form.username,
            password: None,
            password_masked: String::new(),
            created_at: now,
            updated_at: now,
        };
        validate(&config)?;
        (config.password, config.password_masked) = self.seal(&guid, &form.password)?;
        typed::save(&*self.store, DATABASES, &guid, &config, Expect::Absent).await?;
        Ok(view(&config))
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
        validate(&config)?;
        if let Some(password) = change.password {
            (config.password, config.password_masked) = self.seal(guid, &password)?;
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
        Ok(view(&config))
    }

    /// Forgets the database (its counters stay: IDs handed out stay used).
    pub async fn delete(&self, guid: &str) -> Result<(), Error> {
        self.config(guid).await?;
        self.store
            .delete_record(DATABASES, guid, Expect::Any)
            .await?;
        self.store
            .delete_record(DISCOVERED, guid, Expect::Any)
            .await?;
        Ok(())
    }

    async fn open(&self, config: &DatabaseConfig) -> Result<drivers::Connection, Error> {
        let password = self.password(config)?;
        let (host, port) = match config.db_type {
            DbType::Sqlite => (String::new(), 0),
            t => parse_address(&config.address, t.default_port())?,
        };
        let target = Target {
            db_type: config.db_type,
            host: &host,
            port,
            db_name: &config.db_name,
            username: &config.username,
            password: &password,
        };
        drivers::connect(&target)
            .await
            .map_err(|cause| unreachable_error(config, &cause))
    }

    async fn tables(
        &self,
        config: &DatabaseConfig,
    ) -> Result<(drivers::Connection, Vec<TableInfo>), Error> {
        let mut connection = self.open(config).await?;
        let tables = connection
            .tables(&config.db_name)
            .await
            .map_err(|e| unreachable_error(config, &format!("cannot list tables: {e}")))?;
        Ok((connection, tables))
    }

    /// Registers the counter of `table` just above its largest ID.
    async fn register_table(
        &self,
        config: &DatabaseConfig,
        connection: &mut drivers::Connection,
        table: &TableInfo,
    ) -> Result<Result<RegisteredTable, String>, Error> {
        let field = match &table.key {
            Ok(field) => field.clone(),
            Err(reason) => return Ok(Err(reason.clone())),
        };
        let max = match connection.max_id(table).await {
            Ok(max) => max,
            Err(reason) => return Ok(Err(reason)),
        };
        let start = max.unwrap_or(0).max(0);
        let key = SegmentKey::new(
            &config.system_code,
            &counter_db_name(config.db_type, &config.db_name),
            &table.name,
            &field,
        )?;
        let registration = match self.segments.register(&key, start).await {
            Ok(registration) => registration,
            // A fenced counter waits for a raise to its floor; the rest of
            // the tables go on.
            Err(Error::Store(e @ StoreError::BelowFence { .. })) => {
                return Ok(Err(e.to_string()));
            }
            Err(e) => return Err(e),
        };
        let (outcome, current) = match registration {
            Registration::Created => ("created", start),
            Registration::Raised { .. } => ("raised", start),
            Registration::Unfenced { .. } => ("unfenced", start),
            Registration::Unchanged { current } => ("unchanged", current),
        };
        Ok(Ok(RegisteredTable {
            table: table.name.clone(),
            field,
            current,
            next_id: current.saturating_add(1),
            outcome: outcome.into(),
        }))
    }

    /// Registers a counter for every numbered table; `progress` hears
    /// (tables done, tables in all) after each table.
    pub async fn initialize(
        &self,
        guid: &str,
        progress: impl Fn(usize, usize),
    ) -> Result<InitReport, Error> {
        let (config, _) = self.config(guid).await?;
        let (mut connection, tables) = self.tables(&config).await?;
        let total = tables.len();
        let mut report = InitReport {
            guid: guid.to_owned(),
            tables_total: total,
            tables_done: 0,
            registered: Vec::new(),
            skipped: Vec::new(),
        };
        tracing::info!(database = %guid, tables = total, "initializing");
        for table in &tables {
            match self.register_table(&config, &mut connection, table).await? {
                Ok(registered) => report.registered.push(registered),
                Err(reason) => report.skipped.push(SkippedTable {
                    table: table.name.clone(),
                    reason,
                }),
            }
            report.tables_done += 1;
            progress(report.tables_done, total);
            if report.tables_done.is_multiple_of(50) {
                tracing::info!(database = %guid, "initializing: {}/{total} tables done", report.tables_done);
            }
        }
        connection.close().await;
        let done: HashSet<&str> = report.registered.iter().map(|r| r.table.as_str()).collect();
        self.forget_discovered(guid, &done).await?;
        tracing::info!(
            database = %guid,
            registered = report.registered.len(),
            skipped = report.skipped.len(),
            "initialized"
        );
        Ok(report)
    }

    /// A custom counter of this database (the seed's "add config"): first
    /// ID `initial_value + 1`; never lowers an existing counter.
    pub async fn add_config(
        &self,
        guid: &str,
        table: &str,
        field: &str,
        initial_value: i64,
    ) -> Result<RegisteredTable, Error> {
        let (config, _) = self.config(guid).await?;
        let key = SegmentKey::new(
            &config.system_code,
            &counter_db_name(config.db_type, &config.db_name),
            table,
            field,
        )?;
        let start = kxy_core::counter_start(initial_value)?;
        let (outcome, current) = match self.segments.register(&key, start).await? {
            Registration::Created => ("created", start),
            Registration::Raised { .. } => ("raised", start),
            Registration::Unfenced { .. } => ("unfenced", start),
            Registration::Unchanged { current } => ("unchanged", current),
        };
        Ok(RegisteredTable {
            table: table.to_owned(),
            field: field.to_owned(),
            current,
            next_id: current.saturating_add(1),
            outcome: outcome.into(),
        })
    }
}

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
        for bad in ["", "db:x", "db:70000", "a b:1"] {
            assert!(parse_address(bad, 1).is_err(), "{bad}");
        }
        assert_eq!(counter_db_name(DbType::Sqlite, "/var/lib/app.db"), "app");
    }
}
