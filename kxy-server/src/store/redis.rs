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
//! `appendonly yes` and `appendfsync always`: [`super::durability`] says what
//! kxy requires and [`crate::store_guard`] checks it. A counter fenced after
//! its store went backwards holds `fenced:<floor>` instead of a number, which
//! `INCRBY` refuses: every instance (and the seed's service) stops there.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use kxy_core::{Segment, SegmentCount, SegmentKey};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, Script};

use super::durability::{
    DurabilityFacts, DurabilityPolicy, RedisFacts, RedisSettings, WaitReplicas,
};
use super::records::check_name;
use super::redis_url;
use super::{
    Beat, CounterState, Expect, Mark, MissingCounter, Observation, Record, Registration,
    Settlement, Settling, Store, StoreError,
};

mod continuity;

const BACKEND: &str = "redis";

/// How long one command may take before the request fails with 503.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one connection attempt may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// See the script's header.
const ALLOCATE: &str = include_str!("redis/allocate.lua");

/// Lua helper: whether canonical non-negative decimal `a` < `b`. Compares
/// by length, then lexically: exact where Lua's doubles would not be.
const LESS: &str = r#"
local function less(a, b)
  return #a < #b or (#a == #b and a < b)
end
local function canonical(v)
  return v == '0' or string.match(v, '^[1-9]%d*$') ~= nil
end
"#;

/// KEYS[1]: counter. ARGV[1]: start, a canonical non-negative decimal.
/// Raises the counter to ARGV[1] unless it already stands at or above it.
/// A fenced counter is raised (and unfenced) only to its floor or above.
/// Replies `{"created"}`, `{"raised", old}`, `{"unchanged", current}`,
/// `{"unfenced", floor}`, `{"below_fence", floor}` or `{"corrupt", value}`.
const REGISTER: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return {'created'}
end
local floor = string.match(cur, '^fenced:(%d+)$')
if floor then
  if less(ARGV[1], floor) then
    return {'below_fence', floor}
  end
  redis.call('SET', KEYS[1], ARGV[1])
  return {'unfenced', floor}
end
if not canonical(cur) then
  return {'corrupt', cur}
end
if less(cur, ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return {'raised', cur}
end
return {'unchanged', cur}
"#;

/// KEYS[1]: counter. ARGV[1]: floor, a canonical non-negative decimal.
/// Fences the counter at the greatest of ARGV[1], its value and an earlier
/// fence. A missing counter (the store lost it) is fenced at ARGV[1], so
/// that nobody re-registers it at 0. Replies `{"fenced", floor}` or
/// `{"corrupt", value}`.
const FENCE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], 'fenced:' .. ARGV[1])
  return {'fenced', ARGV[1]}
end
local floor = string.match(cur, '^fenced:(%d+)$') or cur
if not canonical(floor) then
  return {'corrupt', cur}
end
if less(floor, ARGV[1]) then
  floor = ARGV[1]
end
redis.call('SET', KEYS[1], 'fenced:' .. floor)
return {'fenced', floor}
"#;

/// KEYS[1]: the store id's key. ARGV[1]: a new id, kept only if none exists.
const STORE_ID: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
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
    fence: Script,
    store_id: Script,
    /// `WAIT` after each allocation (the replicas durability policy).
    wait_replicas: Option<WaitReplicas>,
    /// What every allocation verifies in its own round trip.
    policy: DurabilityPolicy,
    /// The epoch this instance verified its marks under; allocations run
    /// only under it (docs/continuity.md).
    trusted: RwLock<Option<Arc<str>>>,
    put_record: Script,
    delete_record: Script,
    hit_mark: Script,
    observe: Script,
    settle: Script,
}

impl RedisStore {
    /// Prepares a connection to `url`. The connection is made on first use
    /// and re-made after failures, so the server starts (and reports the
    /// outage on `/health`) even while Redis is down.
    pub fn open(
        url: &str,
        prefix: &str,
        policy: DurabilityPolicy,
        wait_replicas: Option<WaitReplicas>,
    ) -> Result<Self, StoreError> {
        validate_prefix(prefix)?;
        let display_url = redis_url::display(url);
        // The client's message may quote part of the URL.
        let rejected = |what: &str, e: RedisError| {
            unavailable(redis_url::scrub(&format!("{what} {display_url}: {e}"), url))
        };
        let client = redis::Client::open(url).map_err(|e| rejected("invalid Redis URL", e))?;
        // Under the replicas policy an allocation's reply comes after its
        // WAIT, which may take its whole timeout.
        let response_timeout =
            RESPONSE_TIMEOUT + wait_replicas.map_or(Duration::ZERO, |w| w.timeout);
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(response_timeout))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| rejected("cannot use the Redis URL", e))?;
        Ok(RedisStore {
            connection,
            key_prefix: format!("{prefix}:segment:"),
            prefix: prefix.to_owned(),
            display_url,
            allocate: Script::new(ALLOCATE),
            register: Script::new(&format!("{LESS}{REGISTER}")),
            fence: Script::new(&format!("{LESS}{FENCE}")),
            store_id: Script::new(STORE_ID),
            wait_replicas,
            policy,
            trusted: RwLock::new(None),
            put_record: Script::new(PUT_RECORD),
            delete_record: Script::new(DELETE_RECORD),
            hit_mark: Script::new(HIT_MARK),
            observe: Script::new(continuity::OBSERVE),
            settle: Script::new(continuity::SETTLE),
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
        let detail = format!("Redis at {}: {e}", self.display_url);
        match e.code() {
            Some("READONLY") => StoreError::ReadOnly(detail),
            Some("OOM") => StoreError::OutOfMemory(detail),
            _ => unavailable(detail),
        }
    }

    /// A Redis error a script caught (`redis.pcall`), by its code.
    fn refusal(&self, error: &str) -> StoreError {
        let detail = format!("Redis at {}: {error}", self.display_url);
        match error.split_whitespace().next() {
            Some("OOM") => StoreError::OutOfMemory(detail),
            Some("READONLY") => StoreError::ReadOnly(detail),
            _ => unavailable(detail),
        }
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

    async fn store_id(&self) -> Result<String, StoreError> {
        let mut connection = self.connection.clone();
        self.store_id
            .key(format!("{}:store_id", self.prefix))
            .arg(super::new_store_id())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))
    }

    async fn durability(&self) -> Result<DurabilityFacts, StoreError> {
        let mut connection = self.connection.clone();
        let info: String = redis::cmd("INFO")
            .arg("server")
            .arg("persistence")
            .arg("replication")
            .query_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))?;
        let settings = match settings_command()
            .query_async::<Vec<String>>(&mut connection)
            .await
        {
            Ok(pairs) => RedisSettings::from_pairs(&pairs),
            // A renamed or denied CONFIG answers with a server error; a
            // broken connection is an outage, not a fact about Redis.
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                return Err(self.failure(e));
            }
            Err(e) => Err(format!("CONFIG GET refused: {e}")),
        };
        Ok(DurabilityFacts::Redis(parse_info(&info, settings)))
    }

    async fn fence(&self, key: &SegmentKey, floor: i64) -> Result<i64, StoreError> {
        let mut connection = self.connection.clone();
        let reply: Vec<String> = self
            .fence
            .key(self.redis_key(key))
            .arg(floor.max(0).to_string())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))?;
        let corrupt = |value: &String| StoreError::Corrupt {
            key: key.clone(),
            value: value.clone(),
        };
        match reply.as_slice() {
            [status, floor] if status == "fenced" => floor.parse().map_err(|_| corrupt(floor)),
            [status] if status == "missing" => Err(StoreError::NotRegistered { key: key.clone() }),
            [status, value] if status == "corrupt" => Err(corrupt(value)),
            other => Err(self.unexpected(other)),
        }
    }

    async fn allocate(
        &self,
        key: &SegmentKey,
        count: SegmentCount,
        missing: MissingCounter,
    ) -> Result<Segment, StoreError> {
        let trusted = self
            .trusted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(trusted) = trusted else {
            return Err(StoreError::Unsettled(
                "this instance has not compared its marks with the store yet".into(),
            ));
        };
        let create = if missing == MissingCounter::Create {
            "1"
        } else {
            "0"
        };
        let mut invocation = self.allocate.prepare_invoke();
        invocation
            .key(self.redis_key(key))
            .key(self.epoch_key())
            .arg(count.get())
            .arg(create)
            .arg(&*trusted);
        let reply = self.allocate_checked(&invocation).await?;
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
            [status, floor] if status == "fenced" => Err(StoreError::Fenced {
                key: key.clone(),
                floor: floor.parse().map_err(|_| corrupt(floor))?,
            }),
            [status, value] if status == "corrupt" => Err(corrupt(value)),
            [status, error] if status == "refused" => Err(self.refusal(error)),
            [status, role] if status == "role" => Err(StoreError::NotDurable(
                super::durability::role_refusal(role).unwrap_or_default(),
            )),
            [status, epoch] if status == "moved" => Err(StoreError::Unsettled(format!(
                "its epoch (master_replid) is now {epoch}: Redis restarted, failed over or was \
                 replaced"
            ))),
            [status, _] if status == "unsettled" => Err(StoreError::Unsettled(
                "allocation is not open under its current epoch yet".into(),
            )),
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
            [status, floor] if status == "unfenced" => Ok(Registration::Unfenced {
                floor: number(floor)?,
            }),
            [status, floor] if status == "below_fence" => Err(StoreError::BelowFence {
                key: key.clone(),
                floor: number(floor)?,
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
                    .zip(value.as_deref().and_then(parse_counter_value));
                match parsed {
                    Some((key, (current, fenced))) => counters.push(CounterState {
                        key,
                        current,
                        fenced,
                    }),
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

    async fn observe(
        &self,
        instance: &str,
        verified: Option<&str>,
        timing: Settling,
        beat: Option<Beat<'_>>,
    ) -> Result<Observation, StoreError> {
        self.observe_epoch(instance, verified, timing, beat).await
    }

    async fn settle(
        &self,
        epoch: &str,
        base: &[CounterState],
        timing: Settling,
    ) -> Result<Settlement, StoreError> {
        self.settle_epoch(epoch, base, timing).await
    }

    async fn base(&self, epoch: &str) -> Result<Vec<(SegmentKey, i64)>, StoreError> {
        self.base_of(epoch).await
    }

    fn trust(&self, epoch: Option<Arc<str>>) {
        *self.trusted.write().unwrap_or_else(|p| p.into_inner()) = epoch;
    }
}

impl RedisStore {
    /// Runs the allocation script with what the policy checks in the same
    /// round trip: under `strict` the settings follow it on the same
    /// connection (`CONFIG GET`), under `replicas:N` a `WAIT`. A segment
    /// whose checks fail is not handed out (its IDs are burnt, never
    /// repeated).
    async fn allocate_checked(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<Vec<String>, StoreError> {
        let mut connection = self.connection.clone();
        let strict = self.policy == DurabilityPolicy::Strict;
        if !strict && self.wait_replicas.is_none() {
            return invocation
                .invoke_async::<Vec<String>>(&mut connection)
                .await
                .map_err(|e| self.failure(e));
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors().invoke_script(invocation);
        if strict {
            pipe.add_command(settings_command());
        }
        if let Some(wait) = self.wait_replicas {
            pipe.cmd("WAIT")
                .arg(wait.replicas)
                .arg(wait.timeout.as_millis().max(1) as u64);
        }
        let mut replies: Vec<redis::RedisResult<redis::Value>> = pipe
            .query_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))?;
        if matches!(replies.first(), Some(Err(e)) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            // Not loaded yet (first use, or Redis restarted): load it and run
            // the pipeline again; the failed EVALSHA changed nothing.
            invocation
                .load_async(&mut connection)
                .await
                .map_err(|e| self.failure(e))?;
            replies = pipe
                .query_async(&mut connection)
                .await
                .map_err(|e| self.failure(e))?;
        }
        let mut replies = replies.into_iter();
        let reply: Vec<String> = match replies.next() {
            Some(Ok(value)) => redis::from_redis_value(value)
                .map_err(|e| unavailable(format!("Redis at {}: {e}", self.display_url)))?,
            Some(Err(e)) => return Err(self.failure(e)),
            None => return Err(self.unexpected(&[])),
        };
        let allocated = reply.first().is_some_and(|status| status == "ok");
        if strict {
            let settings = match replies.next() {
                Some(Ok(value)) => redis::from_redis_value::<Vec<String>>(value)
                    .map_err(|e| e.to_string())
                    .and_then(|pairs| RedisSettings::from_pairs(&pairs)),
                Some(Err(e)) => Err(format!("CONFIG GET refused: {e}")),
                None => Err("CONFIG GET did not answer".to_owned()),
            };
            // A failed AOF write needs no check here: Redis refuses every
            // write while its last AOF write failed.
            let aof = settings.as_ref().is_ok_and(|s| s.appendonly);
            if allocated && let Some(gap) = super::durability::strict_gap(aof, true, &settings) {
                return Err(StoreError::NotDurable(gap));
            }
        }
        if let Some(wait) = self.wait_replicas {
            let acked: u64 = match replies.next() {
                Some(Ok(value)) => redis::from_redis_value(value)
                    .map_err(|e| unavailable(format!("Redis at {}: {e}", self.display_url)))?,
                Some(Err(e)) => return Err(self.failure(e)),
                None => return Err(self.unexpected(&reply)),
            };
            if allocated && acked < u64::from(wait.replicas) {
                return Err(StoreError::NotReplicated {
                    acked,
                    wanted: u64::from(wait.replicas),
                    timeout_ms: wait.timeout.as_millis().max(1) as u64,
                });
            }
        }
        Ok(reply)
    }

    /// `{prefix}:epoch`: the epoch allocation is open under.
    fn epoch_key(&self) -> String {
        format!("{}:epoch", self.prefix)
    }
}

/// `CONFIG GET` of every setting durability depends on (one command:
/// Redis 7 takes several parameters).
fn settings_command() -> redis::Cmd {
    let mut command = redis::cmd("CONFIG");
    command.arg("GET");
    for parameter in RedisSettings::PARAMETERS {
        command.arg(parameter);
    }
    command
}

/// A counter's value: `(current, false)`, or `(floor, true)` when fenced.
fn parse_counter_value(value: &str) -> Option<(i64, bool)> {
    match value.strip_prefix("fenced:") {
        Some(floor) => floor.parse().ok().map(|f| (f, true)),
        None => value.parse().ok().map(|v| (v, false)),
    }
}

/// Reads the facts durability depends on out of `INFO` text.
fn parse_info(info: &str, settings: Result<RedisSettings, String>) -> RedisFacts {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.trim_end().strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or("")
            .to_owned()
    };
    RedisFacts {
        aof_enabled: field("aof_enabled") == "1",
        aof_write_ok: field("aof_last_write_status") == "ok",
        aof_rewriting: field("aof_rewrite_in_progress") == "1"
            || field("aof_rewrite_scheduled") == "1",
        role: field("role"),
        // Replicas still in their first sync do not acknowledge yet, so only
        // `slaveN:...,state=online,...` lines count.
        connected_replicas: info
            .lines()
            .filter(|line| line.starts_with("slave") && line.contains("state=online"))
            .count() as u32,
        run_id: field("run_id"),
        master_replid: field("master_replid"),
        settings,
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

/// The names kxy puts right after the prefix: `{prefix}:segment:...`,
/// `{prefix}:rec:...`, `{prefix}:mark:...`, `{prefix}:store_id`, and the
/// continuity keys `{prefix}:epoch`, `:instances`, `:pending`, `:base`.
const NAMESPACES: [&str; 8] = [
    "segment",
    "rec",
    "mark",
    "store_id",
    "epoch",
    "instances",
    "pending",
    "base",
];

/// The key prefix may hold only characters that are neither glob patterns
/// (it is used in `SCAN MATCH`) nor whitespace, and no `:`-separated part of
/// it may be empty or one of kxy's [`NAMESPACES`]. That rule makes prefixes
/// collision-free: if prefix B extends prefix A (`A:x...`), the part after A
/// is not a namespace of A, so no key of B can be a key of A.
fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    let chars_ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if !chars_ok {
        return Err(unavailable(format!(
            "invalid Redis key prefix {prefix:?}: use 1 to 64 characters from A-Z a-z 0-9 _ - . :"
        )));
    }
    if let Some(part) = prefix
        .split(':')
        .find(|part| part.is_empty() || NAMESPACES.contains(part))
    {
        return Err(unavailable(format!(
            "invalid Redis key prefix {prefix:?}: its part {part:?} {}, so its keys could \
             collide with those of another prefix; parts between `:` must be non-empty and \
             none of {}",
            if part.is_empty() {
                "is empty"
            } else {
                "is one of kxy's key names"
            },
            NAMESPACES.join(", ")
        )));
    }
    Ok(())
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
    fn info_is_read() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\n# Persistence\r\n\
                    aof_enabled:1\r\naof_last_write_status:ok\r\n# Replication\r\n\
                    role:master\r\nconnected_slaves:3\r\n\
                    slave0:ip=10.0.0.2,port=6379,state=online,offset=1,lag=0\r\n\
                    slave1:ip=10.0.0.3,port=6379,state=online,offset=1,lag=0\r\n\
                    slave2:ip=10.0.0.4,port=6379,state=wait_bgsave,offset=0,lag=0\r\n\
                    master_failover_state:no-failover\r\n\
                    master_replid:24d75812bf06e5f6567ad27560ca3fe9e65819e4\r\n";
        let facts = parse_info(info, Err("denied".into()));
        assert_eq!(
            facts,
            RedisFacts {
                aof_enabled: true,
                aof_write_ok: true,
                aof_rewriting: false,
                role: "master".into(),
                connected_replicas: 2,
                run_id: "abc123".into(),
                master_replid: "24d75812bf06e5f6567ad27560ca3fe9e65819e4".into(),
                settings: Err("denied".into()),
            }
        );
        assert_eq!(parse_counter_value("42"), Some((42, false)));
        assert_eq!(parse_counter_value("fenced:42"), Some((42, true)));
        assert_eq!(parse_counter_value("fenced:x"), None);
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(validate_prefix("kxy:id").is_ok());
        assert!(validate_prefix("test-1.run:x").is_ok());
        for bad in ["", "kxy*", "a b", "x[1]", "?", "kxy:", ":kxy", "a::b"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
        // `kxy:id:segment:x` would put its keys among `kxy:id`'s counters.
        for colliding in [
            "kxy:id:segment:x",
            "kxy:id:rec",
            "a:mark:b",
            "a:store_id",
            "a:epoch",
            "a:base:b",
        ] {
            let e = validate_prefix(colliding).unwrap_err().to_string();
            assert!(e.contains("collide"), "{e}");
        }
    }
}
