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
    /// `CONFIG GET appendfsync`, or why it could not be read (CONFIG renamed
    /// or denied by an ACL).
    pub appendfsync: Result<String, String>,
    /// `aof_last_write_status` is `ok`.
    pub aof_write_ok: bool,
    /// `role` of `INFO replication`: `master` or `slave`.
    pub role: String,
    /// Replicas of `INFO replication` whose state is `online` (those still
    /// in their first sync acknowledge nothing yet).
    pub connected_replicas: u32,
    /// `run_id` of `INFO server`: changes whenever Redis restarts.
    pub run_id: String,
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
    let weakness = redis_weakness(redis);
    match policy {
        DurabilityPolicy::Strict => match weakness {
            None => Verdict::Durable("appendonly yes, appendfsync always".into()),
            Some(weakness) => Verdict::Refused(format!(
                "Redis does not keep acknowledged allocations through a crash: {weakness}; \
                 set `appendonly yes` and `appendfsync always` (CONFIG SET, and in redis.conf), \
                 use --redis-durability replicas:N with replicas, {OVERRIDE}"
            )),
        },
        DurabilityPolicy::Replicas(n) => {
            if redis.role != "master" {
                Verdict::Refused(format!(
                    "Redis is a {} (read-only replica); point --redis-url at the primary",
                    redis.role
                ))
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
        DurabilityPolicy::Unsafe => match weakness {
            None => Verdict::Durable(
                "appendonly yes, appendfsync always (durability policy: unsafe, not needed)".into(),
            ),
            Some(weakness) => Verdict::Trusted {
                warning: format!(
                    "--redis-durability unsafe: {weakness}; a Redis crash can lose acknowledged \
                     allocations and kxy relies on its fences (per instance, per client) to \
                     refuse rather than repeat IDs"
                ),
            },
        },
    }
}

/// Why Redis would lose acknowledged increments in a crash, if it would.
fn redis_weakness(redis: &RedisFacts) -> Option<String> {
    if !redis.aof_enabled {
        return Some("appendonly is no (RDB snapshots at most: a crash loses every write since the last one)".into());
    }
    if !redis.aof_write_ok {
        return Some("the last AOF write failed (aof_last_write_status is not ok)".into());
    }
    match &redis.appendfsync {
        Ok(policy) if policy == "always" => None,
        Ok(policy) => Some(format!(
            "appendfsync is {policy} (a crash loses up to a second of acknowledged writes)"
        )),
        Err(why) => Some(format!(
            "appendfsync cannot be read ({why}); allow `CONFIG GET appendfsync` for kxy's Redis user"
        )),
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

    fn redis(aof: bool, fsync: Result<&str, &str>) -> DurabilityFacts {
        DurabilityFacts::Redis(RedisFacts {
            aof_enabled: aof,
            appendfsync: fsync.map(str::to_owned).map_err(str::to_owned),
            aof_write_ok: true,
            role: "master".into(),
            connected_replicas: 0,
            run_id: "r".into(),
        })
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
    fn strict_needs_aof_always() {
        let durable = judge(DurabilityPolicy::Strict, &redis(true, Ok("always")));
        assert!(matches!(durable, Verdict::Durable(_)));
        for (facts, names) in [
            (redis(false, Ok("everysec")), "appendonly is no"),
            (redis(true, Ok("everysec")), "appendfsync is everysec"),
            (
                redis(true, Err("NOPERM")),
                "appendfsync cannot be read (NOPERM)",
            ),
        ] {
            let Verdict::Refused(msg) = judge(DurabilityPolicy::Strict, &facts) else {
                panic!("{facts:?} must be refused");
            };
            assert!(msg.contains(names), "{msg}");
            assert!(msg.contains("--redis-durability unsafe"), "{msg}");
            assert!(msg.contains("appendfsync always"), "{msg}");
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
    fn replicas_need_enough_replicas_on_a_primary() {
        let mut facts = RedisFacts {
            aof_enabled: false,
            appendfsync: Ok("everysec".into()),
            aof_write_ok: true,
            role: "master".into(),
            connected_replicas: 1,
            run_id: "r".into(),
        };
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
        facts.role = "slave".into();
        let replica = judge(
            DurabilityPolicy::Replicas(2),
            &DurabilityFacts::Redis(facts),
        );
        assert!(!replica.allows_allocation());
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
