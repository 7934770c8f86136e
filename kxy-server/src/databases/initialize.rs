//! Initializing a registered database: a counter for every numbered table,
//! above the largest ID the table holds and the next one its own generator
//! would hand out ([`super::generators`]), and the seed's custom counters.
//!
//! Each table's outcome is its own: one that cannot be registered (its IDs
//! are exhausted at 2^63−1, its name cannot be a counter name, a fenced
//! counter) is reported as skipped with the reason, and the others go on.
//! Only a failure of kxy's own store stops the run.

use std::collections::HashSet;

use kxy_core::SegmentKey;
use serde::{Deserialize, Serialize};

use super::drivers::{self, TableInfo};
use super::{DatabaseConfig, DatabaseService, counter_db_name};
use crate::Error;
use crate::store::{Registration, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RegisteredTable {
    pub table: String,
    pub field: String,
    /// The counter's value: the largest ID in use (or more, if it stood
    /// higher already).
    pub current: i64,
    pub next_id: i64,
    /// `created`, `raised` or `unchanged`.
    pub outcome: String,
    /// What decided the start: `max` (the largest row), `auto_increment`,
    /// `sequence` or `sqlite_sequence` (the table's own generator stood
    /// higher), or `empty`; for a custom counter, `initial_value`.
    #[serde(default)]
    pub decided_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SkippedTable {
    pub table: String,
    pub reason: String,
}

/// What initializing found and did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InitReport {
    pub guid: String,
    pub tables_total: usize,
    pub tables_done: usize,
    pub registered: Vec<RegisteredTable>,
    pub skipped: Vec<SkippedTable>,
    /// Set when the run stopped before the end: the connection to the
    /// database was lost. The tables after `tables_done` were not looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// What the run could not vouch for (say, tables the account cannot see).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl DatabaseService {
    /// Registers the counter of `table` just above its largest ID.
    pub(super) async fn register_table(
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
        let generated = match connection.own_generator(table).await {
            Ok(generated) => generated,
            Err(reason) => return Ok(Err(reason)),
        };
        let (start, decided_by) = match (max, generated) {
            (max, Some(g)) if g.next > max.unwrap_or(0) => (g.next, g.source),
            (Some(max), _) => (max, "max"),
            (None, _) => (0, "empty"),
        };
        let start = start.max(0).saturating_add(self.policy.start_margin());
        let key = match SegmentKey::new(
            &config.system_code,
            &counter_db_name(config.db_type, &config.db_name),
            &table.name,
            &field,
        ) {
            Ok(key) => key,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let registration = match self.segments.register(&key, start).await {
            Ok(registration) => registration,
            // kxy's own store failing stops the run; anything about this
            // table (no ID left above its rows, a fenced counter) skips it.
            Err(e @ (Error::Store(StoreError::Unavailable { .. }) | Error::NotDurable(_))) => {
                return Err(e);
            }
            Err(Error::InvalidStart(_)) => {
                return Ok(Err(format!(
                    "exhausted: the highest ID it may hold is {start} ({decided_by}), and kxy \
                     hands out IDs up to 2^63-1 only"
                )));
            }
            Err(e) => return Ok(Err(e.to_string())),
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
            decided_by: decided_by.into(),
        }))
    }

    /// Registers a counter for every numbered table; `progress` hears
    /// (tables done, tables in all, the table just done) after each table.
    pub async fn initialize(
        &self,
        guid: &str,
        progress: impl Fn(usize, usize, &str),
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
            failed: None,
            warnings: Vec::new(),
        };
        if let Some(warning) = connection.schema_visibility(&config.db_name).await {
            tracing::warn!(database = %guid, "{warning}");
            report.warnings.push(warning);
        }
        tracing::info!(database = %guid, tables = total, "initializing");
        for table in &tables {
            match self.register_table(&config, &mut connection, table).await? {
                Ok(registered) => report.registered.push(registered),
                Err(reason) => {
                    // The table's trouble, or the connection's? A lost
                    // connection would fail every table after it, and a
                    // run that "skipped" them all would look complete.
                    if let Err(e) = connection.ping().await {
                        let cause = format!(
                            "lost the connection to the database at table {} ({} of {total} \
                             tables done): {reason}; {e}",
                            table.name, report.tables_done
                        );
                        tracing::error!(database = %guid, "initializing failed: {cause}");
                        report.failed = Some(cause);
                        break;
                    }
                    report.skipped.push(SkippedTable {
                        table: table.name.clone(),
                        reason,
                    });
                }
            }
            report.tables_done += 1;
            progress(report.tables_done, total, &table.name);
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
            decided_by: "initial_value".into(),
        })
    }
}
