//! The Redis side of continuity (docs/continuity.md): heartbeats into the
//! instance registry, the settle step that opens an epoch, and the base of
//! counter values recorded with it.
//!
//! The epoch is the node's `master_replid`; the scripts read it with `INFO
//! replication` inside the same atomic step as their writes, and take times
//! from the store's clock (`TIME`), so instances' clocks never matter.

use kxy_core::SegmentKey;

use super::{RedisStore, parse_counter_value};
use crate::store::{Beat, CounterState, Observation, Settlement, Settling, StoreError};

/// See the script's header.
pub(super) const OBSERVE: &str = include_str!("observe.lua");
/// See the script's header.
pub(super) const SETTLE: &str = include_str!("settle.lua");

/// The base hash's field naming the epoch it belongs to (`@` is not allowed
/// in counter names, so it cannot collide with one).
const BASE_EPOCH: &str = "@epoch";

impl RedisStore {
    fn continuity_keys(&self) -> [String; 4] {
        [
            format!("{}:instances", self.prefix),
            format!("{}:epoch", self.prefix),
            format!("{}:pending", self.prefix),
            format!("{}:base", self.prefix),
        ]
    }

    pub(super) async fn observe_epoch(
        &self,
        instance: &str,
        verified: Option<&str>,
        timing: Settling,
        beat: Option<Beat<'_>>,
    ) -> Result<Observation, StoreError> {
        let previous = beat.map_or(String::new(), |b| {
            b.previous
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        });
        let [registry, open, pending, _] = self.continuity_keys();
        let mut connection = self.connection.clone();
        let reply: Vec<String> = self
            .observe
            .key(registry)
            .key(open)
            .key(pending)
            .arg(instance)
            .arg(verified.unwrap_or(""))
            .arg(timing.period.as_millis() as u64)
            .arg(previous)
            .arg(beat.map_or(0, |b| b.this))
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))?;
        let number = |text: &str| text.parse::<u64>().ok();
        match reply.as_slice() {
            [status, role, _] if status == "role" => Err(StoreError::NotDurable(
                crate::store::durability::role_refusal(role).unwrap_or_default(),
            )),
            [status, epoch, open, first, now, lost] if status == "ok" => Ok(Observation {
                epoch: epoch.clone(),
                open: (!open.is_empty()).then(|| open.clone()),
                first_seen_ms: number(first),
                now_ms: number(now).ok_or_else(|| self.unexpected(&reply))?,
                lost_heartbeat: lost == "1",
            }),
            other => Err(self.unexpected(other)),
        }
    }

    pub(super) async fn settle_epoch(
        &self,
        epoch: &str,
        base: &[CounterState],
        timing: Settling,
    ) -> Result<Settlement, StoreError> {
        let [registry, open, pending, base_key] = self.continuity_keys();
        let mut connection = self.connection.clone();
        let mut invocation = self.settle.prepare_invoke();
        invocation
            .key(registry)
            .key(open)
            .key(pending)
            .key(base_key)
            .arg(epoch)
            .arg(timing.period.as_millis() as u64)
            .arg(timing.lease.as_millis() as u64);
        for counter in base {
            let value = if counter.fenced {
                format!("fenced:{}", counter.current)
            } else {
                counter.current.to_string()
            };
            invocation.arg(counter.key.storage_name()).arg(value);
        }
        let reply: Vec<String> = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))?;
        match reply.as_slice() {
            [status] if status == "open" => Ok(Settlement::Open),
            [status, _] if status == "moved" => Ok(Settlement::Moved),
            [status, why] if status == "wait" => Ok(Settlement::Wait(why.clone())),
            other => Err(self.unexpected(other)),
        }
    }

    pub(super) async fn base_of(&self, epoch: &str) -> Result<Vec<(SegmentKey, i64)>, StoreError> {
        let [.., base_key] = self.continuity_keys();
        let mut connection = self.connection.clone();
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(base_key)
            .query_async(&mut connection)
            .await
            .map_err(|e| self.failure(e))?;
        if !all
            .iter()
            .any(|(name, value)| name == BASE_EPOCH && value == epoch)
        {
            return Ok(Vec::new());
        }
        Ok(all
            .iter()
            .filter(|(name, _)| name != BASE_EPOCH)
            .filter_map(|(name, value)| {
                let key = SegmentKey::from_storage_name(name).ok()?;
                let (current, _) = parse_counter_value(value)?;
                Some((key, current))
            })
            .collect())
    }
}
