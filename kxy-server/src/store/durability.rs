//! Durability: whether an allocation the store acknowledged survives a crash
//! of the store, and what the server does when it would not.
//!
//! kxy promises that no ID is handed out twice. That holds only if every
//! counter increment the store acknowledged is still there after the store
//! crashes and restarts. The embedded store fsyncs before it answers. Redis
//! does so only with `appendonly yes` and `appendfsync always`: with RDB
//! snapshots, or AOF with `everysec` (Redis's default once AOF is on), a
//! crash loses the latest increments and the restarted Redis hands the same
//! ranges out again. With replicas, `WAIT` can stand in: an increment copied
//! to N replicas survives the crash of one machine.
//!
//! This module holds the policy the operator chose ([`DurabilityPolicy`]),
//! the facts read from the store ([`DurabilityFacts`]) and the pure decision
//! between them ([`judge`]). Reading the facts is the backend's job; acting
//! on the verdict is [`crate::store_guard`]'s.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// How much durability the operator requires of a Redis store
/// (`--redis-durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityPolicy {
    /// Require `appendonly yes` and `appendfsync always`; refuse to start,
    /// and refuse to allocate at run time, without them. The default.
    Strict,
    /// After each allocation, `WAIT` until this many replicas acknowledged
    /// it; for deployments that rely on replication rather than fsync.
    Replicas(u32),
    /// Trust whatever Redis is configured with: allowed, but warned about at
    /// start and shown on `/health`.
    Unsafe,
}

impl FromStr for DurabilityPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "invalid durability policy {text:?}: use strict, replicas:N (N from 1 to 100) \
                 or unsafe"
            )
        };
        match text {
            "strict" => Ok(DurabilityPolicy::Strict),
            "unsafe" => Ok(DurabilityPolicy::Unsafe),
            _ => {
                let n = text
                    .strip_prefix("replicas:")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(invalid)?;
                Ok(DurabilityPolicy::Replicas(n))
            }
        }
    }
}

impl fmt::Display for DurabilityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurabilityPolicy::Strict => f.write_str("strict"),
            DurabilityPolicy::Replicas(n) => write!(f, "replicas:{n}"),
            DurabilityPolicy::Unsafe => f.write_str("unsafe"),
        }
    }
}

/// `WAIT` settings of the replicas policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitReplicas {
    pub replicas: u32,
    pub timeout: Duration,
}

/// What Redis reports about its persistence and replication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisFacts {
    /// `aof_enabled` of `INFO persistence`.
    pub aof_enabled: bool,
    /// `aof_last_write_status` is `ok`.
    pub aof_write_ok: bool,
    /// `aof_rewrite_in_progress` or `aof_rewrite_scheduled` of `INFO
    /// persistence`.
    pub aof_rewriting: bool,
    /// `role` of `INFO replication`: `master` or `slave`.
    pub role: String,
    /// Replicas of `INFO replication` whose state is `online` (those still
    /// in their first sync acknowledge nothing yet).
    pub connected_replicas: u32,
    /// `run_id` of `INFO server`: changes whenever Redis restarts.
    pub run_id: String,
    /// `master_replid` of `INFO replication`: the history of the node's
    /// data. It changes with every restart of a primary, a promotion and a
    /// full resync, so it is the store's epoch (docs/continuity.md).
    pub master_replid: String,
    /// The settings read with `CONFIG GET`, or why they could not be read
    /// (CONFIG renamed or denied by an ACL).
    pub settings: Result<RedisSettings, String>,
}

/// The `CONFIG GET` settings durability depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisSettings {
    /// `appendonly`: whether AOF is on (`CONFIG SET appendonly no` turns it
    /// off at once).
    pub appendonly: bool,
    /// `appendfsync`: `always`, `everysec` or `no`.
    pub appendfsync: String,
    /// `no-appendfsync-on-rewrite`: while a rewrite or snapshot runs, Redis
    /// skips its fsyncs and acknowledges writes that are not on disk.
    pub no_appendfsync_on_rewrite: bool,
    /// `maxmemory-policy`.
    pub maxmemory_policy: String,
    /// `maxmemory` in bytes; 0 means no limit, so nothing is evicted.
    pub maxmemory: u64,
}

impl RedisSettings {
    /// The parameters to ask `CONFIG GET` for, in the order
    /// [`RedisSettings::from_pairs`] reads them.
    pub const PARAMETERS: [&'static str; 5] = [
        "appendonly",
        "appendfsync",
        "no-appendfsync-on-rewrite",
        "maxmemory-policy",
        "maxmemory",
    ];

    /// Reads the settings out of `CONFIG GET`'s name/value pairs.
    pub fn from_pairs(pairs: &[String]) -> Result<Self, String> {
        let value = |name: &str| {
            pairs
                .chunks(2)
                .find(|pair| pair.len() == 2 && pair[0].eq_ignore_ascii_case(name))
                .map(|pair| pair[1].clone())
                .ok_or_else(|| format!("CONFIG GET returned no {name}"))
        };
        Ok(RedisSettings {
            appendonly: value("appendonly")? == "yes",
            appendfsync: value("appendfsync")?,
            no_appendfsync_on_rewrite: value("no-appendfsync-on-rewrite")? == "yes",
            maxmemory_policy: value("maxmemory-policy")?,
            maxmemory: value("maxmemory")?
                .parse()
                .map_err(|_| "CONFIG GET maxmemory is not a number".to_owned())?,
        })
    }

    /// Whether Redis may evict keys (kxy's counters among them) when full.
    pub fn evicts(&self) -> bool {
        self.maxmemory > 0 && self.maxmemory_policy != "noeviction"
    }
}

/// What a backend says about its own durability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurabilityFacts {
    /// The embedded store: every write is fsynced before it is answered.
    FsyncBeforeReply,
    Redis(RedisFacts),
}

/// Whether the store may be trusted to allocate under the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Acknowledged allocations survive a crash of the store.
    Durable(String),
    /// Allowed by the policy, but a crash of the store can lose
    /// acknowledged allocations: the warning says how.
    Trusted { warning: String },
    /// Refused: the message names the setting to change and the flag that
    /// would accept it.
    Refused(String),
}

impl Verdict {
    /// Whether allocation may proceed.
    pub fn allows_allocation(&self) -> bool {
        !matches!(self, Verdict::Refused(_))
    }
}

const OVERRIDE: &str = "or start kxy-server with --redis-durability unsafe to accept the risk \
                        of duplicate IDs after a Redis crash";

/// Decides whether `facts` satisfy `policy`.
pub fn judge(policy: DurabilityPolicy, facts: &DurabilityFacts) -> Verdict {
    let redis = match facts {
        DurabilityFacts::FsyncBeforeReply => {
            return Verdict::Durable(
                "embedded store: every allocation is fsynced before its answer".into(),
            );
        }
        DurabilityFacts::Redis(redis) => redis,
    };
    if let Some(refusal) = role_refusal(&redis.role) {
        return Verdict::Refused(refusal);
    }
    match policy {
        DurabilityPolicy::Strict => {
            match strict_gap(redis.aof_enabled, redis.aof_write_ok, &redis.settings) {
                None => Verdict::Durable(
                    "appendonly yes, appendfsync always, no-appendfsync-on-rewrite no, no \
                     eviction"
                        .into(),
                ),
                Some(refusal) => Verdict::Refused(refusal),
            }
        }
        DurabilityPolicy::Replicas(n) => {
            if let Some(refusal) = eviction_gap(&redis.settings) {
                Verdict::Refused(refusal)
            } else if redis.connected_replicas < n {
                Verdict::Refused(format!(
                    "--redis-durability replicas:{n} needs {n} connected replicas; Redis reports \
                     {}; allocations would fail their WAIT",
                    redis.connected_replicas
                ))
            } else {
                Verdict::Durable(format!(
                    "each allocation waits for {n} of {} connected replicas (WAIT)",
                    redis.connected_replicas
                ))
            }
        }
        DurabilityPolicy::Unsafe => {
            match strict_gap(redis.aof_enabled, redis.aof_write_ok, &redis.settings) {
                None => Verdict::Durable(
                    "appendonly yes, appendfsync always (durability policy: unsafe, not needed)"
                        .into(),
                ),
                Some(weakness) => Verdict::Trusted {
                    warning: format!(
                        "--redis-durability unsafe: {weakness}; a Redis crash can lose \
                         acknowledged allocations and kxy relies on its fences (per instance, \
                         per client) to refuse rather than repeat IDs"
                    ),
                },
            }
        }
    }
}

/// Why a node of `role` must not allocate, if it must not: a replica's
/// writes (with `replica-read-only no`) are its own, overwritten by the next
/// sync, and another instance on the primary hands the same IDs out.
pub fn role_refusal(role: &str) -> Option<String> {
    (role != "master").then(|| {
        format!(
            "Redis is a replica (role {role}), not a writable primary: its writes are lost at \
             the next sync and the primary hands out the same IDs; point --redis-url at the \
             primary (refused under every --redis-durability)"
        )
    })
}

/// What keeps Redis from holding every acknowledged allocation through a
/// crash (and the fix), under `strict`; `None` when nothing does. Used by
/// the periodic check and by every allocation.
pub fn strict_gap(
    aof_enabled: bool,
    aof_write_ok: bool,
    settings: &Result<RedisSettings, String>,
) -> Option<String> {
    let gap = if !aof_enabled {
        "appendonly is no (RDB snapshots at most: a crash loses every write since the last one)"
            .to_owned()
    } else if !aof_write_ok {
        "the last AOF write failed (aof_last_write_status is not ok)".to_owned()
    } else {
        match settings {
            Err(why) => format!(
                "appendfsync, no-appendfsync-on-rewrite and maxmemory-policy cannot be read \
                 ({why}); allow `CONFIG GET` for kxy's Redis user"
            ),
            Ok(s) if s.appendfsync != "always" => format!(
                "appendfsync is {} (a crash loses up to a second of acknowledged writes)",
                s.appendfsync
            ),
            Ok(s) if s.no_appendfsync_on_rewrite => "no-appendfsync-on-rewrite is yes (while a \
                rewrite or snapshot runs, Redis acknowledges writes it has not fsynced); set \
                `no-appendfsync-on-rewrite no`"
                .to_owned(),
            Ok(_) => return eviction_gap(settings),
        }
    };
    Some(format!(
        "Redis does not keep acknowledged allocations through a crash: {gap}; set `appendonly \
         yes` and `appendfsync always` (CONFIG SET, and in redis.conf), use \
         --redis-durability replicas:N with replicas, {OVERRIDE}"
    ))
}

/// Why Redis may drop kxy's keys, if it may.
fn eviction_gap(settings: &Result<RedisSettings, String>) -> Option<String> {
    match settings {
        Err(why) => Some(format!(
            "the eviction settings cannot be read ({why}); allow `CONFIG GET` for kxy's Redis user"
        )),
        Ok(s) if s.evicts() => Some(format!(
            "maxmemory-policy is {} with maxmemory {} bytes: when full, Redis evicts keys, and an \
             evicted counter restarts or refuses as unregistered; set `maxmemory-policy \
             noeviction` (or maxmemory 0)",
            s.maxmemory_policy, s.maxmemory
        )),
        Ok(_) => None,
    }
}

/// The `/health` view of durability.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DurabilityReport {
    /// `fsync` (embedded), `strict`, `replicas:N` or `unsafe`.
    pub mode: String,
    /// Whether acknowledged allocations survive a crash of the store.
    pub durable: bool,
    /// Whether this instance allocates right now.
    pub allocating: bool,
    /// What the last check found.
    pub detail: String,
    /// When the last check succeeded, as Unix milliseconds (`None` before
    /// the first).
    pub checked_at_ms: Option<u64>,
    /// The last error of a check, if the last one failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(fsync: &str) -> RedisSettings {
        RedisSettings {
            appendonly: true,
            appendfsync: fsync.into(),
            no_appendfsync_on_rewrite: false,
            maxmemory_policy: "noeviction".into(),
            maxmemory: 0,
        }
    }

    fn facts(aof: bool, settings: Result<RedisSettings, &str>) -> RedisFacts {
        RedisFacts {
            aof_enabled: aof,
            aof_write_ok: true,
            aof_rewriting: false,
            role: "master".into(),
            connected_replicas: 0,
            run_id: "r".into(),
            master_replid: "e".into(),
            settings: settings.map_err(str::to_owned),
        }
    }

    fn redis(aof: bool, fsync: Result<&str, &str>) -> DurabilityFacts {
        DurabilityFacts::Redis(facts(aof, fsync.map(settings)))
    }

    #[test]
    fn policies_parse() {
        assert_eq!("strict".parse(), Ok(DurabilityPolicy::Strict));
        assert_eq!("unsafe".parse(), Ok(DurabilityPolicy::Unsafe));
        assert_eq!("replicas:2".parse(), Ok(DurabilityPolicy::Replicas(2)));
        for bad in [
            "",
            "replicas:0",
            "replicas:",
            "replicas:x",
            "always",
            "STRICT",
        ] {
            let e = bad.parse::<DurabilityPolicy>().unwrap_err();
            assert!(e.contains("strict, replicas:N"), "{e}");
        }
        assert_eq!(DurabilityPolicy::Replicas(3).to_string(), "replicas:3");
    }

    #[test]
    fn settings_are_read_from_config_get_pairs() {
        let pairs: Vec<String> = [
            "appendonly",
            "yes",
            "maxmemory",
            "0",
            "appendfsync",
            "always",
            "maxmemory-policy",
            "allkeys-lru",
            "no-appendfsync-on-rewrite",
            "yes",
        ]
        .map(String::from)
        .into();
        let read = RedisSettings::from_pairs(&pairs).unwrap();
        assert!(read.no_appendfsync_on_rewrite);
        assert!(!read.evicts(), "maxmemory 0 never evicts");
        assert!(
            RedisSettings::from_pairs(&pairs[..6])
                .unwrap_err()
                .contains("CONFIG GET returned no no-appendfsync-on-rewrite")
        );
    }

    #[test]
    fn strict_needs_aof_always_no_skipped_fsync_and_no_eviction() {
        let durable = judge(DurabilityPolicy::Strict, &redis(true, Ok("always")));
        assert!(matches!(durable, Verdict::Durable(_)));
        let mut rewrite = settings("always");
        rewrite.no_appendfsync_on_rewrite = true;
        let mut evicting = settings("always");
        evicting.maxmemory_policy = "allkeys-lru".into();
        evicting.maxmemory = 100 << 20;
        for (facts, names) in [
            (redis(false, Ok("everysec")), "appendonly is no"),
            (redis(true, Ok("everysec")), "appendfsync is everysec"),
            (
                redis(true, Err("NOPERM")),
                "maxmemory-policy cannot be read (NOPERM)",
            ),
            (
                DurabilityFacts::Redis(facts(true, Ok(rewrite))),
                "no-appendfsync-on-rewrite is yes",
            ),
            (
                DurabilityFacts::Redis(facts(true, Ok(evicting))),
                "maxmemory-policy is allkeys-lru",
            ),
        ] {
            let Verdict::Refused(msg) = judge(DurabilityPolicy::Strict, &facts) else {
                panic!("{facts:?} must be refused");
            };
            assert!(msg.contains(names), "{msg}");
        }
    }

    #[test]
    fn a_replica_is_refused_under_every_policy() {
        let mut replica = facts(true, Ok(settings("always")));
        replica.role = "slave".into();
        replica.connected_replicas = 3;
        for policy in [
            DurabilityPolicy::Strict,
            DurabilityPolicy::Replicas(1),
            DurabilityPolicy::Unsafe,
        ] {
            let verdict = judge(policy, &DurabilityFacts::Redis(replica.clone()));
            assert!(
                matches!(&verdict, Verdict::Refused(m) if m.contains("role slave")),
                "{policy}: {verdict:?}"
            );
        }
    }

    #[test]
    fn unsafe_allows_with_a_warning() {
        let verdict = judge(DurabilityPolicy::Unsafe, &redis(false, Ok("no")));
        let Verdict::Trusted { warning } = verdict else {
            panic!("unsafe trusts");
        };
        assert!(warning.contains("appendonly is no"), "{warning}");
    }

    #[test]
    fn replicas_need_enough_replicas_and_no_eviction() {
        let mut facts = facts(false, Ok(settings("everysec")));
        facts.connected_replicas = 1;
        let refused = judge(
            DurabilityPolicy::Replicas(2),
            &DurabilityFacts::Redis(facts.clone()),
        );
        assert!(matches!(refused, Verdict::Refused(m) if m.contains("reports 1")));
        facts.connected_replicas = 2;
        let ok = judge(
            DurabilityPolicy::Replicas(2),
            &DurabilityFacts::Redis(facts.clone()),
        );
        assert!(ok.allows_allocation());
        if let Ok(s) = &mut facts.settings {
            s.maxmemory = 1;
            s.maxmemory_policy = "volatile-lru".into();
        }
        let evicting = judge(
            DurabilityPolicy::Replicas(2),
            &DurabilityFacts::Redis(facts),
        );
        assert!(matches!(evicting, Verdict::Refused(m) if m.contains("volatile-lru")));
    }

    #[test]
    fn the_embedded_store_is_durable_under_any_policy() {
        for policy in [DurabilityPolicy::Strict, DurabilityPolicy::Unsafe] {
            assert!(matches!(
                judge(policy, &DurabilityFacts::FsyncBeforeReply),
                Verdict::Durable(_)
            ));
        }
    }
}
