//! Roles: named sets of permissions that users hold.
//!
//! The built-in `admin` role holds every permission (`*:*`); it exists
//! without being stored and cannot be changed or deleted. Other roles are
//! records in `roles`, keyed by name.

use std::sync::Arc;

use kxy_core::permission::{Permission, PermissionSet};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::store::records::typed;
use crate::store::{Expect, Store};

const ROLES: &str = "roles";
pub const ADMIN: &str = "admin";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[schema(value_type = Vec<crate::openapi::core_types::Permission>)]
    pub permissions: Vec<Permission>,
    #[serde(default)]
    pub builtin: bool,
}

fn admin() -> Role {
    Role {
        name: ADMIN.into(),
        description: "every permission".into(),
        permissions: vec![Permission::all()],
        builtin: true,
    }
}

/// Checks a role name: 1 to 64 characters from `a-z 0-9 _ -`.
pub fn check_role_name(name: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "use 1 to 64 characters from a-z 0-9 _ -",
        ))
    }
}

#[derive(Clone)]
pub struct RoleDirectory {
    store: Arc<dyn Store>,
}

impl RoleDirectory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        RoleDirectory { store }
    }

    pub async fn get(&self, name: &str) -> Result<Option<Role>, Error> {
        if name == ADMIN {
            return Ok(Some(admin()));
        }
        if check_role_name(name).is_err() {
            return Ok(None);
        }
        Ok(typed::load(&*self.store, ROLES, name)
            .await?
            .map(|(role, _)| role))
    }

    pub async fn all(&self) -> Result<Vec<Role>, Error> {
        let mut roles = vec![admin()];
        roles.extend(
            typed::load_all::<Role>(&*self.store, ROLES)
                .await?
                .into_iter()
                .map(|(r, _)| r),
        );
        Ok(roles)
    }

    /// Refuses role names that do not exist, naming the first.
    pub async fn check_exist(&self, names: &[String]) -> Result<(), Error> {
        for name in names {
            if self.get(name).await?.is_none() {
                return Err(Error::invalid("roles", &format!("no role named {name:?}")));
            }
        }
        Ok(())
    }

    /// Creates (`create`) or replaces a role; the built-in one is refused.
    pub async fn save(&self, role: &Role, create: bool) -> Result<(), Error> {
        check_role_name(&role.name)?;
        if role.name == ADMIN {
            return Err(Error::Conflict(
                "the admin role is built in and cannot be changed".into(),
            ));
        }
        let expect = if create { Expect::Absent } else { Expect::Any };
        if !create && self.get(&role.name).await?.is_none() {
            return Err(Error::NotFound {
                what: "role",
                id: role.name.clone(),
            });
        }
        match typed::save(&*self.store, ROLES, &role.name, role, expect).await? {
            Some(_) => Ok(()),
            None => Err(Error::Conflict(format!("role {:?} exists", role.name))),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        if name == ADMIN {
            return Err(Error::Conflict(
                "the admin role is built in and cannot be deleted".into(),
            ));
        }
        check_role_name(name)?;
        if !self.store.delete_record(ROLES, name, Expect::Any).await? {
            return Err(Error::NotFound {
                what: "role",
                id: name.to_owned(),
            });
        }
        Ok(())
    }

    /// The union of the permissions of `roles` (unknown names add nothing).
    pub async fn permissions_of(&self, roles: &[String]) -> Result<PermissionSet, Error> {
        let mut all = Vec::new();
        for name in roles {
            if let Some(role) = self.get(name).await? {
                all.extend(role.permissions);
            }
        }
        Ok(all.into_iter().collect())
    }
}
