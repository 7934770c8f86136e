//! Records and marks: what the server stores besides counters.
//!
//! Users, roles, grants, refresh-token families and settings are *records*:
//! a JSON document per (collection, id), with a version that every write
//! increments. A write may require the current version (compare-and-set),
//! which is how concurrent updates from several instances are detected
//! instead of lost (a refresh token used twice, a username taken twice).
//!
//! *Marks* are small expiring counters: failed logins within a window, an
//! account lock, a revoked token id. They expire by themselves, so the store
//! never fills with stale entries.

use std::time::Duration;

/// A stored JSON document and its version (1 after the first write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: String,
    pub version: u64,
}

/// The condition a record write requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// Write only if there is no record yet (unique creation).
    Absent,
    /// Write only if the record is at this version (compare-and-set).
    Version(u64),
}

impl Expect {
    /// Whether a record at `current` (None: absent) satisfies this condition.
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }
}

/// A mark's count and how long until it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub count: u64,
    pub expires_in: Duration,
}

/// The separator of collection and id in flat keys; refused inside either.
pub(crate) const KEY_SEPARATOR: char = '\u{1f}';

/// Collection and id names are chosen by the server, never by a caller, but
/// they are checked anyway: a separator inside one would let two records
/// share a key.
pub(crate) fn check_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && !name.contains(KEY_SEPARATOR) && !name.contains('\0')
}

/// Typed access to records: values are JSON of a serde type.
pub mod typed {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::Expect;
    use crate::store::{Store, StoreError};

    fn corrupt(collection: &str, id: &str, e: serde_json::Error) -> StoreError {
        StoreError::Unavailable {
            backend: "records",
            reason: format!("record {collection}/{id} is not valid JSON of its type: {e}"),
        }
    }

    /// The record and its version, decoded.
    pub async fn load<T: DeserializeOwned>(
        store: &dyn Store,
        collection: &str,
        id: &str,
    ) -> Result<Option<(T, u64)>, StoreError> {
        match store.record(collection, id).await? {
            Some(record) => {
                let value =
                    serde_json::from_str(&record.value).map_err(|e| corrupt(collection, id, e))?;
                Ok(Some((value, record.version)))
            }
            None => Ok(None),
        }
    }

    /// Writes `value` if `expect` holds; the new version, or None.
    pub async fn save<T: Serialize>(
        store: &dyn Store,
        collection: &str,
        id: &str,
        value: &T,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        let json = serde_json::to_string(value).map_err(|e| corrupt(collection, id, e))?;
        store.put_record(collection, id, &json, expect).await
    }

    /// Every record of the collection, decoded, ordered by id.
    pub async fn load_all<T: DeserializeOwned>(
        store: &dyn Store,
        collection: &str,
    ) -> Result<Vec<(T, u64)>, StoreError> {
        store
            .records(collection)
            .await?
            .into_iter()
            .map(|(id, record)| {
                serde_json::from_str(&record.value)
                    .map(|value| (value, record.version))
                    .map_err(|e| corrupt(collection, &id, e))
            })
            .collect()
    }
}
