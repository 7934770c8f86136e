//! Moving over from the seed's Python service: its registered databases.
//!
//! The seed keeps each registration in Redis as JSON under
//! `{prefix}:db_config:{guid}` (prefix `kxy:id`), with the fields of its
//! form: `system_code`, `db_type`, `address` (`host:port`), `db_name`,
//! `username`, `password` (in plain text). `kxy-server databases
//! import-seed` reads them and registers each one here under the same guid
//! (hyphens dropped, so a UUID fits kxy's ids), sealing the password with
//! `--master-key`. It checks each one as the API would: bad records are
//! reported and skipped, and nothing is overwritten. The seed's
//! `discovered_tables:{guid}` set of table names becomes the registration's
//! discovered list; the names carry no key column, which the first scanner
//! pass fills in (or drops the entry, if the table is gone or numbered).

use serde::Deserialize;

use super::scanner::DISCOVERED;
use super::{DatabaseForm, DatabaseService, DiscoveredTable};
use crate::Error;
use crate::identity::tokens::{is_id, now};
use crate::store::Expect;
use crate::store::records::typed;

/// A seed record, read leniently: the names the seed's form used, and a
/// few spellings seen for them.
#[derive(Debug, Deserialize)]
struct SeedRecord {
    system_code: String,
    db_type: String,
    #[serde(default, alias = "host")]
    address: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(alias = "database")]
    db_name: String,
    #[serde(default, alias = "user")]
    username: String,
    #[serde(default)]
    password: String,
}

/// What became of one seed record.
#[derive(Debug)]
pub enum Imported {
    /// Registered under this guid.
    Registered(String),
    /// Left out, and why (registered already, invalid, no master key...).
    Skipped(String),
}

impl DatabaseService {
    /// Gives the imported registration `guid` the seed's discovered tables
    /// (if it has no discovered list yet); returns how many.
    pub async fn import_seed_discovered(
        &self,
        guid: &str,
        tables: &[String],
    ) -> Result<usize, Error> {
        let list: Vec<DiscoveredTable> = tables
            .iter()
            .map(|table| DiscoveredTable {
                table: table.clone(),
                field: String::new(),
                found_at: now(),
            })
            .collect();
        let saved = typed::save(&*self.store, DISCOVERED, guid, &list, Expect::Absent).await?;
        Ok(if saved.is_some() { list.len() } else { 0 })
    }

    /// Imports the seed record `json` found under guid `seed_guid`.
    pub async fn import_seed(&self, seed_guid: &str, json: &str) -> Imported {
        let record: SeedRecord = match serde_json::from_str(json) {
            Ok(record) => record,
            Err(e) => return Imported::Skipped(format!("not a seed db_config record: {e}")),
        };
        let guid = seed_guid.replace('-', "").to_ascii_lowercase();
        if !is_id(&guid) {
            return Imported::Skipped(format!(
                "its guid {seed_guid:?} is not 32 hex digits (with or without hyphens)"
            ));
        }
        let address = match record.port {
            Some(port) if !record.address.contains(':') => format!("{}:{port}", record.address),
            _ => record.address,
        };
        let form = DatabaseForm {
            system_code: record.system_code,
            db_type: record.db_type,
            address,
            db_name: record.db_name,
            username: record.username,
            password: record.password,
            tls: Default::default(),
            tls_ca: String::new(),
        };
        match self.add_as(&guid, form).await {
            Ok(view) => Imported::Registered(view.guid),
            Err(e @ Error::VaultDisabled) => {
                Imported::Skipped(format!("it has a password, and {e}"))
            }
            Err(e) => Imported::Skipped(e.to_string()),
        }
    }
}
