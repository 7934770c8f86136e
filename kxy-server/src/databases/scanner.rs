//! Discovering new tables: the scanner's pass, the discovered list, and
//! approving a discovered table.

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

impl DatabaseService {
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

    /// Approves a discovered table: registers its counter above its max.
    pub async fn approve(&self, guid: &str, table: &str) -> Result<RegisteredTable, Error> {
        let (config, _) = self.config(guid).await?;
        if !self
            .discovered(guid)
            .await?
            .iter()
            .any(|d| d.table == table)
        {
            return Err(Error::NotFound {
                what: "discovered table",
                id: table.to_owned(),
            });
        }
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

    /// One scanner pass over every database: numbered tables without a
    /// counter are added to the discovered list. Returns how many new ones
    /// were found; unreachable databases are logged and skipped.
    pub async fn scan_once(&self) -> Result<usize, Error> {
        let registered: HashSet<String> = self
            .segments
            .counters()
            .await?
            .into_iter()
            .map(|c| c.key.storage_name())
            .collect();
        let mut found = 0;
        for (config, _) in typed::load_all::<DatabaseConfig>(&*self.store, DATABASES).await? {
            match self.scan_database(&config, &registered).await {
                Ok(n) => found += n,
                Err(e) => tracing::warn!(database = %config.guid, "scan failed, will retry: {e}"),
            }
        }
        Ok(found)
    }

    async fn scan_database(
        &self,
        config: &DatabaseConfig,
        registered: &HashSet<String>,
    ) -> Result<usize, Error> {
        let (mut connection, tables) = self.tables(config).await?;
        let db = counter_db_name(config.db_type, &config.db_name);
        let (mut list, expect) =
            match typed::load::<Vec<DiscoveredTable>>(&*self.store, DISCOVERED, &config.guid)
                .await?
            {
                Some((list, version)) => (list, Expect::Version(version)),
                None => (Vec::new(), Expect::Absent),
            };
        let mut new = 0;
        for table in &tables {
            let Ok(field) = &table.key else { continue };
            let Ok(key) = SegmentKey::new(&config.system_code, &db, &table.name, field) else {
                continue;
            };
            if registered.contains(&key.storage_name())
                || list.iter().any(|d| d.table == table.name)
            {
                continue;
            }
            // Only tables that approving could number: their max must fit.
            if connection.max_id(table).await.is_err() {
                continue;
            }
            list.push(DiscoveredTable {
                table: table.name.clone(),
                field: field.clone(),
                found_at: now(),
            });
            new += 1;
        }
        connection.close().await;
        if new > 0 {
            typed::save(&*self.store, DISCOVERED, &config.guid, &list, expect).await?;
            tracing::info!(database = %config.guid, new, "discovered new tables");
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
