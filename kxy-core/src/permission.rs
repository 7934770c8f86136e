//! Permissions: `resource:action`, held by roles, required by routes.
//!
//! A permission names a resource and an action on it (`users:write`). A
//! role may hold `resource:*` (every action on one resource) or `*:*`
//! (everything; the built-in `admin` role). Names are lower-case ASCII
//! letters, digits and `_`, so they read the same in code, logs and APIs.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `resource:action`; either part may be `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    resource: String,
    action: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a permission: use resource:action with lower-case letters, digits or _ (or * for any)"
)]
pub struct InvalidPermission(pub String);

impl Permission {
    /// The permission that allows everything.
    pub fn all() -> Self {
        Permission {
            resource: "*".into(),
            action: "*".into(),
        }
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    /// Whether holding `self` allows what `required` names. `required`
    /// is a concrete permission (no wildcards) in practice.
    pub fn allows(&self, required: &Permission) -> bool {
        (self.resource == "*" || self.resource == required.resource)
            && (self.action == "*" || self.action == required.action)
    }
}

fn valid_part(part: &str) -> bool {
    part == "*"
        || (!part.is_empty()
            && part.len() <= 64
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
}

impl FromStr for Permission {
    type Err = InvalidPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((resource, action)) if valid_part(resource) && valid_part(action) => {
                Ok(Permission {
                    resource: resource.to_owned(),
                    action: action.to_owned(),
                })
            }
            _ => Err(InvalidPermission(s.to_owned())),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The permissions of a principal: the union of its roles' permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    pub fn allows(&self, required: &Permission) -> bool {
        self.0.iter().any(|held| held.allows(required))
    }

    /// The permissions of `self` that `other` also allows (for narrowing
    /// a key to a subset of its owner's permissions).
    pub fn within(&self, other: &PermissionSet) -> PermissionSet {
        PermissionSet(self.0.iter().filter(|p| other.allows(p)).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.0.iter()
    }

    /// `self` with `more` added.
    pub fn with(mut self, more: &PermissionSet) -> PermissionSet {
        self.0.extend(more.0.iter().cloned());
        self
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        PermissionSet(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Permission {
        s.parse().unwrap()
    }

    #[test]
    fn parsing() {
        assert_eq!(p("users:read").to_string(), "users:read");
        assert_eq!(p("users:*").action(), "*");
        for bad in [
            "users",
            "Users:read",
            "users:read:x",
            ":read",
            "users:",
            "a b:c",
            "*",
        ] {
            assert!(bad.parse::<Permission>().is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(p("users:read").allows(&p("users:read")));
        assert!(!p("users:read").allows(&p("users:write")));
        assert!(p("users:*").allows(&p("users:write")));
        assert!(!p("users:*").allows(&p("grants:write")));
        assert!(Permission::all().allows(&p("grants:write")));
        let set: PermissionSet = [p("users:read"), p("counters:*")].into_iter().collect();
        assert!(set.allows(&p("counters:write")));
        assert!(!set.allows(&p("users:write")));
    }

    #[test]
    fn narrowing() {
        let owner: PermissionSet = [p("counters:*"), p("users:read")].into_iter().collect();
        let wanted: PermissionSet = [p("counters:write"), p("users:write")]
            .into_iter()
            .collect();
        let narrowed = wanted.within(&owner);
        assert!(narrowed.allows(&p("counters:write")));
        assert!(!narrowed.allows(&p("users:write")));
    }

    #[test]
    fn serde_as_strings() {
        let json = serde_json::to_string(&p("users:read")).unwrap();
        assert_eq!(json, "\"users:read\"");
        assert!(serde_json::from_str::<Permission>("\"nope\"").is_err());
    }
}
