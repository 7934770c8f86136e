//! The tables of the embedded store and the operations on them, each run
//! inside a transaction handed in by the caller.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kxy_core::{Segment, SegmentCount, SegmentKey};
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use crate::store::records::{KEY_SEPARATOR, check_name};
use crate::store::{CounterState, Expect, Mark, MissingCounter, Record, Registration, StoreError};

/// Counter storage name (`system:db:table:field`) → highest ID handed out.
const COUNTERS: TableDefinition<&str, i64> = TableDefinition::new("counters");
/// `collection␟id` → (version, JSON).
const RECORDS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("records");
/// mark key → (count, expiry as Unix milliseconds).
const MARKS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("marks");
/// Counter storage name → the floor of its fence (see `Store::fence`).
const FENCES: TableDefinition<&str, i64> = TableDefinition::new("fences");
/// Facts about the store itself: `store_id`.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// Expired marks are swept once per this many mark writes.
const SWEEP_EVERY: u64 = 1024;
static MARK_WRITES: AtomicU64 = AtomicU64::new(0);

/// Creates every table, so readers never find one missing.
pub fn create_all(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(COUNTERS)?;
    txn.open_table(RECORDS)?;
    txn.open_table(MARKS)?;
    txn.open_table(FENCES)?;
    let mut meta = txn.open_table(META)?;
    if meta.get("store_id")?.is_none() {
        meta.insert("store_id", crate::store::new_store_id().as_str())?;
    }
    drop(meta);
    txn.commit()?;
    Ok(())
}

pub fn store_id(txn: &ReadTransaction) -> Result<String, redb::Error> {
    let meta = txn.open_table(META)?;
    let id = meta.get("store_id")?.map(|v| v.value().to_owned());
    Ok(id.unwrap_or_default())
}

pub fn fence(
    txn: &WriteTransaction,
    key: &SegmentKey,
    floor: i64,
) -> Result<Result<i64, StoreError>, redb::Error> {
    let name = key.storage_name();
    let mut counters = txn.open_table(COUNTERS)?;
    let found = counters.get(name.as_str())?.map(|v| v.value());
    // A counter the store lost is fenced too, at the floor: re-registering
    // it at 0 (or auto-creating it) would hand out its IDs again.
    let current = match found {
        Some(current) => current,
        None => {
            counters.insert(name.as_str(), floor.max(0))?;
            floor.max(0)
        }
    };
    drop(counters);
    let mut fences = txn.open_table(FENCES)?;
    let earlier = fences.get(name.as_str())?.map(|v| v.value());
    let floor = floor.max(current).max(earlier.unwrap_or(0));
    fences.insert(name.as_str(), floor)?;
    Ok(Ok(floor))
}

pub fn ping(txn: &ReadTransaction) -> Result<(), redb::Error> {
    txn.open_table(COUNTERS)?;
    Ok(())
}

pub fn allocate(
    txn: &WriteTransaction,
    key: &SegmentKey,
    count: SegmentCount,
    missing: MissingCounter,
) -> Result<Result<Segment, StoreError>, redb::Error> {
    let name = key.storage_name();
    if let Some(floor) = txn.open_table(FENCES)?.get(name.as_str())? {
        return Ok(Err(StoreError::Fenced {
            key: key.clone(),
            floor: floor.value(),
        }));
    }
    let mut table = txn.open_table(COUNTERS)?;
    let current = table.get(name.as_str())?.map(|v| v.value());
    let current = match (current, missing) {
        (Some(current), _) => current,
        (None, MissingCounter::Create) => 0,
        (None, MissingCounter::Refuse) => {
            return Ok(Err(StoreError::NotRegistered { key: key.clone() }));
        }
    };
    match Segment::after(current, count) {
        Ok(segment) => {
            table.insert(name.as_str(), segment.end)?;
            Ok(Ok(segment))
        }
        Err(source) => Ok(Err(StoreError::Exhausted {
            key: key.clone(),
            source,
        })),
    }
}

pub fn register(
    txn: &WriteTransaction,
    key: &SegmentKey,
    start: i64,
) -> Result<Result<Registration, StoreError>, redb::Error> {
    let name = key.storage_name();
    let mut fences = txn.open_table(FENCES)?;
    let fenced = fences.get(name.as_str())?.map(|v| v.value());
    let mut table = txn.open_table(COUNTERS)?;
    if let Some(floor) = fenced {
        if start < floor {
            return Ok(Err(StoreError::BelowFence {
                key: key.clone(),
                floor,
            }));
        }
        fences.remove(name.as_str())?;
        table.insert(name.as_str(), start)?;
        return Ok(Ok(Registration::Unfenced { floor }));
    }
    let current = table.get(name.as_str())?.map(|v| v.value());
    let registration = match current {
        None => Registration::Created,
        Some(current) if current < start => Registration::Raised { from: current },
        Some(current) => return Ok(Ok(Registration::Unchanged { current })),
    };
    table.insert(name.as_str(), start)?;
    Ok(Ok(registration))
}

pub fn counters(txn: &ReadTransaction) -> Result<Vec<CounterState>, redb::Error> {
    let table = txn.open_table(COUNTERS)?;
    let fences = txn.open_table(FENCES)?;
    let mut counters = Vec::new();
    for entry in table.iter()? {
        let (name, current) = entry?;
        let floor = fences.get(name.value())?.map(|v| v.value());
        match SegmentKey::from_storage_name(name.value()) {
            Ok(key) => counters.push(CounterState {
                key,
                current: floor.unwrap_or(current.value()),
                fenced: floor.is_some(),
            }),
            Err(e) => tracing::warn!("skipping unreadable counter entry: {e}"),
        }
    }
    Ok(counters)
}

/// The flat key of a record; refuses names that could collide.
pub fn record_key(collection: &str, id: &str) -> Result<String, StoreError> {
    for name in [collection, id] {
        if !check_name(name) {
            return Err(StoreError::InvalidName(name.to_owned()));
        }
    }
    Ok(format!("{collection}{KEY_SEPARATOR}{id}"))
}

/// The prefix shared by every record key of `collection`.
pub fn record_prefix(collection: &str) -> Result<String, StoreError> {
    if !check_name(collection) {
        return Err(StoreError::InvalidName(collection.to_owned()));
    }
    Ok(format!("{collection}{KEY_SEPARATOR}"))
}

pub fn record(txn: &ReadTransaction, key: &str) -> Result<Option<Record>, redb::Error> {
    let table = txn.open_table(RECORDS)?;
    Ok(table.get(key)?.map(|v| {
        let (version, value) = v.value();
        Record {
            value: value.to_owned(),
            version,
        }
    }))
}

pub fn put_record(
    txn: &WriteTransaction,
    key: &str,
    value: &str,
    expect: Expect,
) -> Result<Option<u64>, redb::Error> {
    let mut table = txn.open_table(RECORDS)?;
    let current = table.get(key)?.map(|v| v.value().0);
    if !expect.holds(current) {
        return Ok(None);
    }
    let version = current.unwrap_or(0) + 1;
    table.insert(key, (version, value))?;
    Ok(Some(version))
}

pub fn delete_record(
    txn: &WriteTransaction,
    key: &str,
    expect: Expect,
) -> Result<bool, redb::Error> {
    let mut table = txn.open_table(RECORDS)?;
    let current = table.get(key)?.map(|v| v.value().0);
    if current.is_none() || !expect.holds(current) {
        return Ok(false);
    }
    table.remove(key)?;
    Ok(true)
}

pub fn records(txn: &ReadTransaction, prefix: &str) -> Result<Vec<(String, Record)>, redb::Error> {
    let table = txn.open_table(RECORDS)?;
    let mut found = Vec::new();
    for entry in table.range(prefix..)? {
        let (key, value) = entry?;
        let Some(id) = key.value().strip_prefix(prefix) else {
            break;
        };
        let (version, json) = value.value();
        found.push((
            id.to_owned(),
            Record {
                value: json.to_owned(),
                version,
            },
        ));
    }
    Ok(found)
}

pub fn mark_key(key: &str) -> Result<String, StoreError> {
    if check_name(key) {
        Ok(key.to_owned())
    } else {
        Err(StoreError::InvalidName(key.to_owned()))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn live(entry: Option<(u64, u64)>, now: u64) -> Option<(u64, u64)> {
    entry.filter(|&(_, expires)| expires > now)
}

pub fn hit_mark(txn: &WriteTransaction, key: &str, window: Duration) -> Result<u64, redb::Error> {
    let mut table = txn.open_table(MARKS)?;
    let now = now_ms();
    let current = live(table.get(key)?.map(|v| v.value()), now);
    let (count, expires) = match current {
        Some((count, expires)) => (count + 1, expires),
        None => (1, now + window.as_millis() as u64),
    };
    table.insert(key, (count, expires))?;
    sweep(&mut table, now)?;
    Ok(count)
}

pub fn set_mark(txn: &WriteTransaction, key: &str, ttl: Duration) -> Result<(), redb::Error> {
    let mut table = txn.open_table(MARKS)?;
    let now = now_ms();
    table.insert(key, (1, now + ttl.as_millis() as u64))?;
    sweep(&mut table, now)
}

pub fn mark(txn: &ReadTransaction, key: &str) -> Result<Option<Mark>, redb::Error> {
    let table = txn.open_table(MARKS)?;
    let now = now_ms();
    Ok(
        live(table.get(key)?.map(|v| v.value()), now).map(|(count, expires)| Mark {
            count,
            expires_in: Duration::from_millis(expires - now),
        }),
    )
}

pub fn clear_mark(txn: &WriteTransaction, key: &str) -> Result<(), redb::Error> {
    txn.open_table(MARKS)?.remove(key)?;
    Ok(())
}

/// Now and then, removes every expired mark (revoked tokens, old failure
/// counts), so the table stays as small as what is live.
fn sweep(
    table: &mut redb::Table<'_, &'static str, (u64, u64)>,
    now: u64,
) -> Result<(), redb::Error> {
    if MARK_WRITES.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
        table.retain(|_, (_, expires)| expires > now)?;
    }
    Ok(())
}
