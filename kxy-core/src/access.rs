//! Endpoint grants: may this user call this endpoint?
//!
//! An *endpoint* is a method and a path pattern (`GET /orders/{id}`,
//! `* /reports/*`) with a flag saying whether it needs authentication at
//! all. A *grant* gives a user or a role a level on an endpoint (read <
//! write < admin), optionally until an expiry time, and records who granted
//! it. The decision for (user, method, path):
//!
//! 1. the most specific endpoint matching the request (literal segments
//!    beat `{param}`, which beats a trailing `*`; an exact method beats `*`);
//!    none matching means denied;
//! 2. an endpoint that needs no authentication is allowed;
//! 3. the user's own unexpired grants decide if there are any: the highest
//!    of them is the level, even if a role would give more. This is how an
//!    administrator narrows one user below their role;
//! 4. otherwise the highest unexpired grant of any of the user's roles;
//! 5. the request is allowed if that level reaches the one it needs (by
//!    default read for GET/HEAD/OPTIONS, write otherwise).
//!
//! Expired grants never count. Paths are compared in the normal form of
//! [`path`] (dot segments resolved, escapes decoded, case ignored): a path
//! is judged by the endpoint a web server would route it to, and one with
//! no normal form is denied. [`Policy::compile`] builds the lookup
//! structures once; a decision is then a walk down a segment trie and a few
//! hash lookups, with no allocation for a path already in normal form.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub mod path;

pub use path::PathError;

/// How much a grant allows, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Read,
    Write,
    Admin,
}

impl Level {
    /// The level a request with `method` needs unless told otherwise.
    pub fn required_for(method: &str) -> Level {
        match method {
            "GET" | "HEAD" | "OPTIONS" => Level::Read,
            _ => Level::Write,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Admin => "admin",
        })
    }
}

/// The methods an endpoint may name; `*` matches any.
pub const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*",
];

/// An API endpoint of some service, as registered with kxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub method: String,
    pub path: String,
    pub require_auth: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("method must be one of {methods}; got {0:?}", methods = METHODS.join(", "))]
    Method(String),
    #[error(
        "path {0:?} is not a pattern: start with /, use literal segments, {{name}} for one \
         segment, and * only as the last segment"
    )]
    Path(String),
    #[error("path {path:?}: {error}")]
    Spelling { path: String, error: PathError },
    #[error("path {0:?} is not in normal form (lowercase; no //, ., .., ;, % or trailing /)")]
    NotNormal(String),
}

impl Endpoint {
    /// Puts the path in the normal form the check matches against (see
    /// [`path`]), so that no other spelling registers it twice.
    pub fn normalize(&mut self) -> Result<(), EndpointError> {
        if self.path.contains(['?', '#']) {
            return Err(EndpointError::Path(self.path.clone()));
        }
        let normal = path::normalize(&self.path).map_err(|error| EndpointError::Spelling {
            path: self.path.clone(),
            error,
        })?;
        self.path = normal.into_owned();
        Ok(())
    }

    /// Checks the method and path pattern, which must be in normal form.
    pub fn validate(&self) -> Result<(), EndpointError> {
        if !METHODS.contains(&self.method.as_str()) {
            return Err(EndpointError::Method(self.method.clone()));
        }
        if path::normalize(&self.path).ok().as_deref() != Some(self.path.as_str()) {
            return Err(EndpointError::NotNormal(self.path.clone()));
        }
        let bad = || EndpointError::Path(self.path.clone());
        if !self.path.starts_with('/') || self.path.len() > 512 || self.path.contains(['?', '#']) {
            return Err(bad());
        }
        let segments: Vec<&str> = segments(&self.path).collect();
        for (i, segment) in segments.iter().enumerate() {
            let is_param = segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}');
            let is_rest = *segment == "*";
            let literal_ok = !segment.contains(['{', '}', '*', '?', '#']);
            if (is_rest && i + 1 != segments.len()) || !(is_param || is_rest || literal_ok) {
                return Err(bad());
            }
        }
        Ok(())
    }
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "id")]
pub enum Subject {
    /// A user, by id.
    User(String),
    /// A role, by name.
    Role(String),
}

/// A level on an endpoint for a user or role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub subject: Subject,
    pub endpoint_id: String,
    pub level: Level,
    /// Unix seconds after which the grant no longer counts.
    pub expires_at: Option<u64>,
    /// The id of the user who made the grant.
    pub granted_by: String,
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'p> {
    NoEndpoint,
    NoAuthRequired,
    DirectGrant {
        granted_by: &'p str,
    },
    RoleGrant {
        role: &'p str,
    },
    /// Grants exist for the user or their roles, but all have expired.
    Expired,
    NoGrant,
    /// The path has no normal form (see [`path`]).
    InvalidPath,
}

/// The answer to "may this user call this endpoint?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'p> {
    pub allowed: bool,
    /// The level the deciding grant gives, if a grant decided.
    pub level: Option<Level>,
    /// The id of the matching endpoint, if any.
    pub endpoint: Option<&'p str>,
    pub reason: Reason<'p>,
    pub required: Level,
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        match (self.reason, self.level) {
            (Reason::NoEndpoint, _) => {
                write!(f, "denied: no registered endpoint matches the request")
            }
            (Reason::NoAuthRequired, _) => {
                write!(f, "allowed: the endpoint does not require authentication")
            }
            (Reason::DirectGrant { granted_by }, Some(level)) => write!(
                f,
                "{verdict}: the user's own grant gives {level} (granted by {granted_by}), {} needed",
                self.required
            ),
            (Reason::RoleGrant { role }, Some(level)) => write!(
                f,
                "{verdict}: role {role} gives {level}, {} needed",
                self.required
            ),
            (Reason::Expired, _) => write!(f, "denied: every grant on this endpoint has expired"),
            (Reason::InvalidPath, _) => write!(f, "denied: the path is ambiguous or malformed"),
            _ => write!(
                f,
                "denied: no grant on this endpoint for the user or their roles"
            ),
        }
    }
}

/// One grant as the policy keeps it.
#[derive(Debug, Clone)]
struct Entry {
    level: Level,
    expires_at: Option<u64>,
    granted_by: String,
}

/// Grants on one endpoint, each list sorted by level, highest first.
#[derive(Debug, Default)]
struct EndpointGrants {
    users: HashMap<String, Vec<Entry>>,
    roles: HashMap<String, Vec<Entry>>,
}

/// A trie over path segments.
#[derive(Debug, Default)]
struct Node {
    literal: HashMap<String, Node>,
    param: Option<Box<Node>>,
    /// Endpoints whose pattern ends here.
    here: Vec<usize>,
    /// Endpoints whose pattern ends with `*` here.
    rest: Vec<usize>,
}

/// Endpoints and grants, compiled for fast decisions.
#[derive(Debug, Default)]
pub struct Policy {
    endpoints: Vec<Endpoint>,
    grants: Vec<EndpointGrants>,
    root: Node,
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('?')
        .next()
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
}

impl Policy {
    /// Builds the policy. Invalid endpoints and grants on unknown endpoints
    /// are left out (they are refused when created; this guards old data).
    /// Paths registered before normalisation are normalised here.
    pub fn compile(endpoints: Vec<Endpoint>, grants: Vec<Grant>) -> Policy {
        let endpoints: Vec<Endpoint> = endpoints
            .into_iter()
            .filter_map(|mut e| e.normalize().and_then(|()| e.validate()).ok().map(|()| e))
            .collect();
        let mut root = Node::default();
        let mut index = HashMap::new();
        for (i, endpoint) in endpoints.iter().enumerate() {
            index.insert(endpoint.id.as_str(), i);
            let mut node = &mut root;
            let mut rest = false;
            for segment in segments(&endpoint.path) {
                if segment == "*" {
                    rest = true;
                } else if segment.starts_with('{') {
                    node = node.param.get_or_insert_with(Default::default);
                } else {
                    node = node.literal.entry(segment.to_owned()).or_default();
                }
            }
            if rest {
                node.rest.push(i)
            } else {
                node.here.push(i)
            }
        }
        let mut by_endpoint: Vec<EndpointGrants> =
            endpoints.iter().map(|_| Default::default()).collect();
        for grant in grants {
            let Some(&i) = index.get(grant.endpoint_id.as_str()) else {
                continue;
            };
            let entry = Entry {
                level: grant.level,
                expires_at: grant.expires_at,
                granted_by: grant.granted_by,
            };
            let slot = match grant.subject {
                Subject::User(id) => by_endpoint[i].users.entry(id).or_default(),
                Subject::Role(name) => by_endpoint[i].roles.entry(name).or_default(),
            };
            slot.push(entry);
        }
        for grants in &mut by_endpoint {
            for list in grants.users.values_mut().chain(grants.roles.values_mut()) {
                list.sort_by_key(|e| std::cmp::Reverse(e.level));
            }
        }
        Policy {
            endpoints,
            grants: by_endpoint,
            root,
        }
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The most specific endpoint for `method` and `path`.
    pub fn endpoint_for(&self, method: &str, path: &str) -> Option<&Endpoint> {
        let path = path::normalize(path).ok()?;
        let segments: Vec<&str> = segments(&path).collect();
        self.find(&self.root, &segments, method)
            .map(|i| &self.endpoints[i])
    }

    fn find(&self, node: &Node, rest: &[&str], method: &str) -> Option<usize> {
        if let Some((first, tail)) = rest.split_first() {
            let deeper = node
                .literal
                .get(*first)
                .and_then(|child| self.find(child, tail, method))
                .or_else(|| {
                    node.param
                        .as_ref()
                        .and_then(|child| self.find(child, tail, method))
                });
            if deeper.is_some() {
                return deeper;
            }
        } else if let Some(i) = self.pick(&node.here, method) {
            return Some(i);
        }
        self.pick(&node.rest, method)
    }

    fn pick(&self, candidates: &[usize], method: &str) -> Option<usize> {
        let exact = candidates
            .iter()
            .find(|&&i| self.endpoints[i].method == method);
        exact
            .or_else(|| {
                candidates
                    .iter()
                    .find(|&&i| self.endpoints[i].method == "*")
            })
            .copied()
    }

    /// Decides whether user `user_id`, holding `roles`, may call `method`
    /// `path` at level `required`, at Unix time `now`.
    pub fn decide<'p>(
        &'p self,
        user_id: &str,
        roles: &[String],
        method: &str,
        path: &str,
        required: Level,
        now: u64,
    ) -> Decision<'p> {
        let mut decision = Decision {
            allowed: false,
            level: None,
            endpoint: None,
            reason: Reason::NoEndpoint,
            required,
        };
        let Ok(path) = path::normalize(path) else {
            decision.reason = Reason::InvalidPath;
            return decision;
        };
        let mut buffer = [""; 32];
        let mut count = 0;
        for segment in segments(&path) {
            if count == buffer.len() {
                return decision; // deeper than any pattern we accept
            }
            buffer[count] = segment;
            count += 1;
        }
        let Some(i) = self.find(&self.root, &buffer[..count], method) else {
            return decision;
        };
        let endpoint = &self.endpoints[i];
        decision.endpoint = Some(&endpoint.id);
        if !endpoint.require_auth {
            decision.allowed = true;
            decision.reason = Reason::NoAuthRequired;
            return decision;
        }
        let (level, reason) = self.granted(i, user_id, roles, now);
        decision.level = level;
        decision.allowed = level.is_some_and(|l| l >= required);
        decision.reason = reason;
        decision
    }

    /// The level user `user_id`, holding `roles`, has on the endpoint with
    /// id `endpoint_id` by its grants at time `now` (the user's own grants
    /// first, else the best role grant); `None` without a live grant or for
    /// an unknown endpoint.
    pub fn level_on(
        &self,
        endpoint_id: &str,
        user_id: &str,
        roles: &[String],
        now: u64,
    ) -> Option<Level> {
        let i = self.endpoints.iter().position(|e| e.id == endpoint_id)?;
        self.granted(i, user_id, roles, now).0
    }

    /// The grants' verdict on endpoint `i`: the level and why.
    fn granted<'p>(
        &'p self,
        i: usize,
        user_id: &str,
        roles: &[String],
        now: u64,
    ) -> (Option<Level>, Reason<'p>) {
        let live = |e: &&Entry| e.expires_at.is_none_or(|t| t > now);
        let grants = &self.grants[i];
        let mut reason = Reason::NoGrant;
        if let Some(own) = grants.users.get(user_id) {
            if let Some(best) = own.iter().find(live) {
                let reason = Reason::DirectGrant {
                    granted_by: &best.granted_by,
                };
                return (Some(best.level), reason);
            }
            reason = Reason::Expired;
        }
        let mut best: Option<(&Entry, &str)> = None;
        for role in roles {
            let Some((name, list)) = grants.roles.get_key_value(role.as_str()) else {
                continue;
            };
            match list.iter().find(live) {
                Some(entry) if best.is_none_or(|(b, _)| entry.level > b.level) => {
                    best = Some((entry, name))
                }
                Some(_) => {}
                None => reason = Reason::Expired,
            }
        }
        match best {
            Some((entry, role)) => (Some(entry.level), Reason::RoleGrant { role }),
            None => (None, reason),
        }
    }
}

#[cfg(test)]
mod tests;
