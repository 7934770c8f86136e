//! Discovering new tables: the scanner's pass, the discovered list, and
//! approving or dismissing a discovered table.
//!
//! Each pass reconciles the list with the database and kxy's counters: an
//! entry whose table was dropped, got a counter meanwhile (an initialize
//! that overlapped the pass), or was dismissed by an admin leaves the list.
//! Counters are read after the database's catalog, just before the list is
//! written, so a registration that finished before the pass read them is
//! never re-added.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kxy_core::SegmentKey;

use super::{
    DATABASES, DatabaseConfig, DatabaseService, DiscoveredTable, RegisteredTable, counter_db_name,
};
use crate::Error;
use crate::identity::tokens::now;
use crate::store::Expect;
use crate::store::records::typed;

pub(super) const DISCOVERED: &str = "discovered_tables";
/// Per database, tables an admin dismissed: the scanner leaves them out.
const DISMISSED: &str = "dismissed_tables";
/// Per database, how its last scanner pass ended.
const LAST_SCANS: &str = "last_scans";

/// How a database's last scanner pass ended (shown with its discovered
/// tables).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LastScan {
    pub at: u64,
    pub new_tables: usize,
    /// Why it failed (the list was then left as it was).
    pub error: Option<String>,
}

impl DatabaseService {
    /// How the scanner's last pass over `guid` ended, if it ran.
    pub async fn last_scan(&self, guid: &str) -> Result<Option<LastScan>, Error> {
        Ok(typed::load::<LastScan>(&*self.store, LAST_SCANS, guid)
            .await?
            .map(|(scan, _)| scan))
    }

    pub async fn discovered(&self, guid: &str) -> Result<Vec<DiscoveredTable>, Error> {
        self.config(guid).await?;
        Ok(
            typed::load::<Vec<DiscoveredTable>>(&*self.store, DISCOVERED, guid)
                .await?
                .map(|(list, _)| list)
                .unwrap_or_default(),
        )
    }

    pub(super) async fn forget_discovered(
        &self,
        guid: &str,
        tables: &HashSet<&str>,
    ) -> Result<(), Error> {
        if let Some((mut list, version)) =
            typed::load::<Vec<DiscoveredTable>>(&*self.store, DISCOVERED, guid).await?
        {
            list.retain(|d| !tables.contains(d.table.as_str()));
            typed::save(
                &*self.store,
                DISCOVERED,
                guid,
                &list,
                Expect::Version(version),
            )
            .await?;
        }
        Ok(())
    }

    /// Refuses (404) a table that is not on `guid`'s discovered list.
    async fn require_discovered(&self, guid: &str, table: &str) -> Result<(), Error> {
        if self
            .discovered(guid)
            .await?
            .iter()
            .any(|d| d.table == table)
        {
            return Ok(());
        }
        Err(Error::NotFound {
            what: "discovered table",
            id: table.to_owned(),
        })
    }

    /// Approves a discovered table: registers its counter above its max.
    pub async fn approve(&self, guid: &str, table: &str) -> Result<RegisteredTable, Error> {
        let (config, _) = self.config(guid).await?;
        self.require_discovered(guid, table).await?;
        let (mut connection, tables) = self.tables(&config).await?;
        let found = tables
            .iter()
            .find(|t| t.name == table)
            .ok_or_else(|| Error::NotFound {
                what: "table",
                id: table.to_owned(),
            })?;
        let result = self.register_table(&config, &mut connection, found).await?;
        connection.close().await;
        let registered = result.map_err(|reason| {
            Error::Conflict(format!("table {table} cannot be numbered: {reason}"))
        })?;
        self.forget_discovered(guid, &HashSet::from([table]))
            .await?;
        Ok(registered)
    }

    /// Takes `table` off the discovered list for good (an admin decided it
    /// gets no counter); a later `approve` is refused, an initialize still
    /// numbers it.
    pub async fn dismiss(&self, guid: &str, table: &str) -> Result<(), Error> {
        self.require_discovered(guid, table).await?;
        loop {
            let (mut dismissed, expect) =
                match typed::load::<Vec<String>>(&*self.store, DISMISSED, guid).await? {
                    Some((list, version)) => (list, Expect::Version(version)),
                    None => (Vec::new(), Expect::Absent),
                };
            if !dismissed.iter().any(|t| t == table) {
                dismissed.push(table.to_owned());
            }
            if typed::save(&*self.store, DISMISSED, guid, &dismissed, expect)
                .await?
                .is_some()
            {
                break;
            }
        }
        self.forget_discovered(guid, &HashSet::from([table])).await
    }

    /// One scanner pass over every database: numbered tables without a
    /// counter are added to the discovered list, and the list is
    /// reconciled (see the module doc). Returns how many new ones were
    /// found; unreachable databases are logged and skipped.
    ///
    /// Databases are scanned at the same time, each on its own connection,
    /// so a slow or locked one does not hold up the others.
    pub async fn scan_once(&self) -> Result<usize, Error> {
        let configs = typed::load_all::<DatabaseConfig>(&*self.store, DATABASES).await?;
        let scans = configs.iter().map(|(config, _)| async move {
            let result = self.scan_database(config).await;
            if let Err(e) = &result {
                tracing::warn!(database = %config.guid, "scan failed, will retry: {e}");
            }
            let record = LastScan {
                at: now(),
                new_tables: *result.as_ref().unwrap_or(&0),
                error: result.as_ref().err().map(ToString::to_string),
            };
            if let Err(e) =
                typed::save(&*self.store, LAST_SCANS, &config.guid, &record, Expect::Any).await
            {
                tracing::warn!(database = %config.guid, "cannot record the scan: {e}");
            }
            result.unwrap_or(0)
        });
        Ok(futures::future::join_all(scans).await.into_iter().sum())
    }

    async fn scan_database(&self, config: &DatabaseConfig) -> Result<usize, Error> {
        let (mut connection, tables) = self.tables(config).await?;
        let db = counter_db_name(config.db_type, &config.db_name);
        let key_of = |table: &str, field: &str| {
            SegmentKey::new(&config.system_code, &db, table, field)
                .ok()
                .map(|k| k.storage_name())
        };
        // Numberable tables of the database now (their max must fit).
        let mut candidates = Vec::new();
        for table in &tables {
            let Ok(field) = &table.key else { continue };
            if key_of(&table.name, field).is_none() {
                continue;
            }
            let max = connection.max_id(table).await;
            if let Ok(Some(max)) = max
                && max > kxy_core::MAX_COUNTER_START
            {
                // No ID left above its rows: approving could never work.
                continue;
            }
            if let Err(reason) = max {
                // The table, or the connection? A partial pass must not
                // drop the entries it did not get to.
                if let Err(e) = connection.ping().await {
                    return Err(Error::Database(format!(
                        "lost the connection at table {}: {reason}; {e}",
                        table.name
                    )));
                }
                continue;
            }
            candidates.push((table.name.clone(), field.clone()));
        }
        connection.close().await;
        let dismissed: HashSet<String> =
            typed::load::<Vec<String>>(&*self.store, DISMISSED, &config.guid)
                .await?
                .map(|(list, _)| list.into_iter().collect())
                .unwrap_or_default();
        // Read last: a registration that finished before now is seen.
        let registered: HashSet<String> = self
            .segments
            .counters()
            .await?
            .into_iter()
            .map(|c| c.key.storage_name())
            .collect();
        let wanted = |table: &str, field: &str| {
            !dismissed.contains(table)
                && key_of(table, field).is_some_and(|k| !registered.contains(&k))
        };
        let (mut list, expect) =
            match typed::load::<Vec<DiscoveredTable>>(&*self.store, DISCOVERED, &config.guid)
                .await?
            {
                Some((list, version)) => (list, Expect::Version(version)),
                None => (Vec::new(), Expect::Absent),
            };
        // Entries imported from the seed name no key column yet: this
        // pass fills it in from the catalog.
        for entry in list.iter_mut().filter(|d| d.field.is_empty()) {
            if let Some((_, field)) = candidates.iter().find(|(t, _)| *t == entry.table) {
                entry.field = field.clone();
            }
        }
        let before = list.len();
        list.retain(|d| {
            candidates
                .iter()
                .any(|(t, f)| *t == d.table && *f == d.field)
                && wanted(&d.table, &d.field)
        });
        let dropped = before - list.len();
        let mut new = 0;
        for (table, field) in &candidates {
            if wanted(table, field) && !list.iter().any(|d| d.table == *table) {
                list.push(DiscoveredTable {
                    table: table.clone(),
                    field: field.clone(),
                    found_at: now(),
                });
                new += 1;
            }
        }
        if new > 0 || dropped > 0 {
            // Changed by another pass meanwhile: the next pass reconciles.
            typed::save(&*self.store, DISCOVERED, &config.guid, &list, expect).await?;
            tracing::info!(database = %config.guid, new, dropped, "discovered tables reconciled");
        }
        Ok(new)
    }

    /// Runs the scanner every `interval` while the service lives. A lease
    /// in the store lets one instance scan per interval.
    pub fn start_scanner(self: &Arc<Self>, interval: Duration) {
        let service: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(service) = service.upgrade() else {
                    return;
                };
                let lease = interval.mul_f64(0.9).max(Duration::from_millis(100));
                match service.store.hit_mark("scanner_lease", lease).await {
                    Ok(1) => match service.scan_once().await {
                        Ok(found) => tracing::info!(
                            found,
                            "scanner pass done (this instance held the lease)"
                        ),
                        Err(e) => tracing::warn!("scanner pass failed: {e}"),
                    },
                    Ok(_) => {} // another instance holds this interval's lease
                    Err(e) => tracing::warn!("scanner cannot take its lease: {e}"),
                }
            }
        });
    }
}
