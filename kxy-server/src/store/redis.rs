//! The Redis backend: counters as integer keys, for several server instances.
//!
//! Key layout follows the seed: `{prefix}:segment:{system}:{db}:{table}:{field}`
//! with the prefix `kxy:id` by default, so a Redis filled by the Python service
//! keeps working. The key is injective because identifiers cannot contain `:`
//! (see `kxy_core::key`).
//!
//! Each operation is one Lua script, which Redis runs atomically: one round
//! trip, no read-then-write race between instances. Two details matter:
//!
//! - Lua numbers are doubles, exact only up to 2^53. The scripts never do
//!   arithmetic in Lua: `INCRBY` adds in Redis's own 64-bit integers (and
//!   refuses to overflow), and values travel back as strings.
//! - An allocation must not create a missing counter unless asked to, so a
//!   Redis that lost its data refuses instead of restarting at 1. Plain
//!   `INCRBY` would create it; the script checks first.
//!
//! Redis acknowledges writes before they reach disk unless configured with
//! `appendonly yes` and `appendfsync always`; the README says so.

use std::time::Duration;

use async_trait::async_trait;
use kxy_core::{Segment, SegmentCount, SegmentKey};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, Script};

use super::records::check_name;
use super::{CounterState, Expect, Mark, MissingCounter, Record, Registration, Store, StoreError};

const BACKEND: &str = "redis";

/// How long one command may take before the request fails with 503.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one connection attempt may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS[1]: counter. ARGV[1]: count. ARGV[2]: "1" to create a missing counter.
/// Replies `{"ok", new_value}`, `{"missing"}`, `{"exhausted", value}` or
/// `{"corrupt", value}`.
const ALLOCATE: &str = r#"
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local r = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(r) == 'table' and r.err then
  local value = redis.call('GET', KEYS[1]) or ''
  if string.find(r.err, 'overflow') then
    return {'exhausted', value}
  end
  return {'corrupt', value}
end
return {'ok', redis.call('GET', KEYS[1])}
"#;

/// KEYS[1]: counter. ARGV[1]: start, a canonical non-negative decimal.
/// Raises the counter to ARGV[1] unless it already stands at or above it.
/// Compares decimal strings by length, then lexically: exact for canonical
/// non-negative integers, where Lua's doubles would not be.
/// Replies `{"created"}`, `{"raised", old}`, `{"unchanged", current}` or
/// `{"corrupt", value}`.
const REGISTER: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return {'created'}
end
if not (cur == '0' or string.match(cur, '^[1-9]%d*$')) then
  return {'corrupt', cur}
end
if #cur < #ARGV[1] or (#cur == #ARGV[1] and cur < ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return {'raised', cur}
end
return {'unchanged', cur}
"#;

/// KEYS[1]: the collection's hash. ARGV: id, JSON, expected version
/// (`any`, `absent` or a number). Fields hold `version:json`. Replies the
/// new version, or nil if the expectation failed.
const PUT_RECORD: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local ver = 0
if cur then ver = tonumber(string.match(cur, '^(%d+):')) or 0 end
if ARGV[3] == 'absent' then
  if cur then return false end
elseif ARGV[3] ~= 'any' then
  if (not cur) or tostring(ver) ~= ARGV[3] then return false end
end
ver = ver + 1
redis.call('HSET', KEYS[1], ARGV[1], ver .. ':' .. ARGV[2])
return ver
"#;

/// KEYS[1]: the collection's hash. ARGV: id, expected version (`any` or a
/// number). Replies 1 if deleted, 0 if absent or the expectation failed.
const DELETE_RECORD: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
if ARGV[2] ~= 'any' and string.match(cur, '^(%d+):') ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
"#;

/// KEYS[1]: the mark. ARGV[1]: window in milliseconds. The window starts at
/// the first hit; later hits do not extend it.
const HIT_MARK: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"#;

/// A handle to counters in Redis; cheap to share.
pub struct RedisStore {
    connection: ConnectionManager,
    /// The URL with any password replaced, safe for logs and errors.
    display_url: String,
    /// `{prefix}:segment:`, prepended to storage names.
    key_prefix: String,
    /// `{prefix}`, for records (`{prefix}:rec:{collection}`) and marks
    /// (`{prefix}:mark:{key}`).
    prefix: String,
    allocate: Script,
    register: Script,
    put_record: Script,
    delete_record: Script,
    hit_mark: Script,
}

impl RedisStore {
    /// Prepares a connection to `url`. The connection is made on first use
    /// and re-made after failures, so the server starts (and reports the
    /// outage on `/health`) even while Redis is down.
    pub fn open(url: &str, prefix: &str) -> Result<Self, StoreError> {
        validate_prefix(prefix)?;
        let display_url = redact_password(url);
        let client = redis::Client::open(url)
            .map_err(|e| unavailable(format!("invalid Redis URL {display_url}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| unavailable(format!("cannot use Redis at {display_url}: {e}")))?;
        Ok(RedisStore {
            connection,
            key_prefix: format!("{prefix}:segment:"),
            prefix: prefix.to_owned(),
            display_url,
            allocate: Script::new(ALLOCATE),
            register: Script::new(REGISTER),
            put_record: Script::new(PUT_RECORD),
            delete_record: Script::new(DELETE_RECORD),
            hit_mark: Script::new(HIT_MARK),
        })
    }

    fn redis_key(&self, key: &SegmentKey) -> String {
        format!("{}{}", self.key_prefix, key.storage_name())
    }

    fn collection_key(&self, collection: &str) -> Result<String, StoreError> {
        named(collection)?;
        Ok(format!("{}:rec:{collection}", self.prefix))
    }

    fn mark_key(&self, key: &str) -> Result<String, StoreError> {
        named(key)?;
        Ok(format!("{}:mark:{key}", self.prefix))
    }

    fn failure(&self, e: RedisError) -> StoreError {
        unavailable(format!("Redis at {}: {e}", self.display_url))
    }

    fn unexpected(&self, reply: &[String]) -> StoreError {
        unavailable(format!(
            "Redis at {} sent an unexpected reply {reply:?}",
            self.display_url
        ))
    }
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn location(&self) -> String {
        self.display_url.clone()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(|e| self.failure(e))
    }

    async fn allocate(
        &self,
        key: &SegmentKey,
        count: SegmentCount,
        missing: MissingCounter,
    ) -> Result<Segment, StoreError> {
        let mut connection = self.connection.clone();
        let create = if missing == MissingCounter::Create {
            "1"
        } else {
            "0"
        };
        let reply: Vec<String> = self
            .allocate
            .key(self.redis_key(key))
            .arg(count.get())
            .arg(create)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))?;
        let corrupt = |value: &str| StoreError::Corrupt {
            key: key.clone(),
            value: value.to_owned(),
        };
        match reply.as_slice() {
            [status, value] if status == "ok" => {
                let end: i64 = value.parse().map_err(|_| corrupt(value))?;
                // A counter below zero (written by hand) would yield IDs < 1.
                Segment::ending_at(end, count).ok_or_else(|| corrupt(value))
            }
            [status] if status == "missing" => Err(StoreError::NotRegistered { key: key.clone() }),
            [status, value] if status == "exhausted" => Err(StoreError::Exhausted {
                key: key.clone(),
                source: kxy_core::Exhausted {
                    current: value.parse().map_err(|_| corrupt(value))?,
                    requested: count.get(),
                },
            }),
            [status, value] if status == "corrupt" => Err(corrupt(value)),
            other => Err(self.unexpected(other)),
        }
    }

    async fn register(&self, key: &SegmentKey, start: i64) -> Result<Registration, StoreError> {
        debug_assert!(start >= 0, "callers validate with kxy_core::counter_start");
        let mut connection = self.connection.clone();
        let reply: Vec<String> = self
            .register
            .key(self.redis_key(key))
            .arg(start.to_string())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))?;
        let number = |value: &String| {
            value.parse::<i64>().map_err(|_| StoreError::Corrupt {
                key: key.clone(),
                value: value.clone(),
            })
        };
        match reply.as_slice() {
            [status] if status == "created" => Ok(Registration::Created),
            [status, old] if status == "raised" => Ok(Registration::Raised { from: number(old)? }),
            [status, current] if status == "unchanged" => Ok(Registration::Unchanged {
                current: number(current)?,
            }),
            [status, value] if status == "corrupt" => Err(StoreError::Corrupt {
                key: key.clone(),
                value: value.clone(),
            }),
            other => Err(self.unexpected(other)),
        }
    }

    async fn counters(&self) -> Result<Vec<CounterState>, StoreError> {
        let mut connection = self.connection.clone();
        // The prefix is validated to hold no glob characters, so it matches
        // itself literally.
        let pattern = format!("{}*", self.key_prefix);
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await
                .map_err(|e| self.failure(e))?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        let mut counters = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            let values: Vec<Option<String>> =
                connection.mget(chunk).await.map_err(|e| self.failure(e))?;
            for (redis_key, value) in chunk.iter().zip(values) {
                let name = &redis_key[self.key_prefix.len()..];
                let parsed = SegmentKey::from_storage_name(name)
                    .ok()
                    .zip(value.and_then(|v| v.parse::<i64>().ok()));
                match parsed {
                    Some((key, current)) => counters.push(CounterState { key, current }),
                    None => tracing::warn!("skipping unreadable counter key {redis_key:?}"),
                }
            }
        }
        counters.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(counters)
    }

    async fn record(&self, collection: &str, id: &str) -> Result<Option<Record>, StoreError> {
        named(id)?;
        let mut connection = self.connection.clone();
        let raw: Option<String> = connection
            .hget(self.collection_key(collection)?, id)
            .await
            .map_err(|e| self.failure(e))?;
        raw.map(|raw| parse_record(&raw)).transpose()
    }

    async fn put_record(
        &self,
        collection: &str,
        id: &str,
        value: &str,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        named(id)?;
        let mut connection = self.connection.clone();
        self.put_record
            .key(self.collection_key(collection)?)
            .arg(id)
            .arg(value)
            .arg(expectation(expect))
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))
    }

    async fn delete_record(
        &self,
        collection: &str,
        id: &str,
        expect: Expect,
    ) -> Result<bool, StoreError> {
        named(id)?;
        if expect == Expect::Absent {
            return Ok(false);
        }
        let mut connection = self.connection.clone();
        let deleted: i64 = self
            .delete_record
            .key(self.collection_key(collection)?)
            .arg(id)
            .arg(expectation(expect))
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))?;
        Ok(deleted == 1)
    }

    async fn records(&self, collection: &str) -> Result<Vec<(String, Record)>, StoreError> {
        let mut connection = self.connection.clone();
        let all: Vec<(String, String)> = connection
            .hgetall(self.collection_key(collection)?)
            .await
            .map_err(|e| self.failure(e))?;
        let mut records = all
            .into_iter()
            .map(|(id, raw)| Ok((id, parse_record(&raw)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(records)
    }

    async fn hit_mark(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        self.hit_mark
            .key(self.mark_key(key)?)
            .arg(window.as_millis().max(1) as u64)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))
    }

    async fn set_mark(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(self.mark_key(key)?)
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| self.failure(e))
    }

    async fn mark(&self, key: &str) -> Result<Option<Mark>, StoreError> {
        let key = self.mark_key(key)?;
        let mut connection = self.connection.clone();
        let (count, ttl_ms): (Option<u64>, i64) = redis::pipe()
            .get(&key)
            .pttl(&key)
            .query_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))?;
        Ok(count.filter(|_| ttl_ms > 0).map(|count| Mark {
            count,
            expires_in: Duration::from_millis(ttl_ms as u64),
        }))
    }

    async fn clear_mark(&self, key: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        connection
            .del::<_, ()>(self.mark_key(key)?)
            .await
            .map_err(|e| self.failure(e))
    }
}

fn named(name: &str) -> Result<(), StoreError> {
    if check_name(name) {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_owned()))
    }
}

fn expectation(expect: Expect) -> String {
    match expect {
        Expect::Any => "any".into(),
        Expect::Absent => "absent".into(),
        Expect::Version(v) => v.to_string(),
    }
}

/// `version:json` → a record.
fn parse_record(raw: &str) -> Result<Record, StoreError> {
    raw.split_once(':')
        .and_then(|(version, value)| {
            Some(Record {
                version: version.parse().ok()?,
                value: value.to_owned(),
            })
        })
        .ok_or_else(|| StoreError::Unavailable {
            backend: BACKEND,
            reason: "a record in Redis is not in kxy's version:json form".into(),
        })
}

/// The key prefix may hold only characters that are neither glob patterns
/// (it is used in `SCAN MATCH`) nor whitespace.
fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(unavailable(format!(
            "invalid Redis key prefix {prefix:?}: use 1 to 64 characters from A-Z a-z 0-9 _ - . :"
        )))
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_owned(),
    }
}

fn unavailable(reason: String) -> StoreError {
    StoreError::Unavailable {
        backend: BACKEND,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_password("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact_password("rediss://app:p@ss@host:6380"),
            "rediss://app:***@host:6380"
        );
        assert_eq!(redact_password("redis://secret@host"), "redis://***@host");
        assert_eq!(
            redact_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(validate_prefix("kxy:id").is_ok());
        assert!(validate_prefix("test-1.run:x").is_ok());
        for bad in ["", "kxy*", "a b", "x[1]", "?"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }
}
