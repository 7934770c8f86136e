//! Database passwords: sealed, bound to where they may be sent, masked,
//! and re-sealed on a master-key rotation (issue 11, points 12 to 14).
//!
//! A password is sealed with its *connection target* as associated data:
//! guid, type, address, database name, user name, TLS mode and CA. A record
//! whose target was changed behind the server's back (say, edited directly
//! in Redis to point at another host) no longer decrypts, so the password
//! never leaves for a host nobody entered it for. Through the API, changing
//! any part of the target needs the password again (or clears it): holding
//! `databases:write` is not a way to send someone else's password to a host
//! of one's choice.
//!
//! Records sealed before this binding used the context `database:<guid>`;
//! the server no longer opens those, `kxy-server credentials rotate`
//! re-seals them under the binding (it is run by the operator).

use kxy_core::mask_password;
use sha2::Digest;

use super::{DATABASES, DatabaseChange, DatabaseConfig, DatabaseService};
use crate::Error;
use crate::store::Expect;
use crate::store::records::typed;

/// The associated data of a password: every field that says where it goes.
/// JSON, so no field's content can shift into another's.
fn context(config: &DatabaseConfig) -> String {
    serde_json::json!([
        "database",
        config.guid,
        config.db_type,
        config.address,
        config.db_name,
        config.username,
        config.tls,
        // The CA decides whom `verify` trusts: swapping it is a new target.
        hex::encode(sha2::Sha256::digest(config.tls_ca.as_bytes())),
    ])
    .to_string()
}

/// The context of passwords sealed before they were bound to their target.
fn legacy_context(guid: &str) -> String {
    format!("database:{guid}")
}

/// Whether `change` points the database somewhere else than `config`.
pub(super) fn moves_target(config: &DatabaseConfig, change: &DatabaseChange) -> bool {
    let differs = |new: &Option<String>, old: &str| new.as_deref().is_some_and(|v| v != old);
    differs(&change.address, &config.address)
        || differs(&change.db_name, &config.db_name)
        || differs(&change.username, &config.username)
        || change.tls.is_some_and(|tls| tls != config.tls)
        || differs(&change.tls_ca, &config.tls_ca)
}

impl DatabaseService {
    /// Seals `password` for `config`'s current target; "" means none.
    pub(super) fn seal(&self, config: &mut DatabaseConfig, password: &str) -> Result<(), Error> {
        (config.password, config.password_masked) = if password.is_empty() {
            (None, String::new())
        } else {
            (
                Some(self.vault.seal(password, &context(config))?),
                mask_password(password),
            )
        };
        Ok(())
    }

    /// The plaintext password, if `config`'s target is the one it was
    /// sealed for.
    pub(super) fn password(&self, config: &DatabaseConfig) -> Result<String, Error> {
        match &config.password {
            Some(sealed) => self.vault.open(sealed, &context(config)),
            None => Ok(String::new()),
        }
    }

    /// Re-seals every database password under the vault's current key (and
    /// bound to its target); returns how many were re-sealed and how many
    /// were current already.
    pub async fn rotate(&self) -> Result<(usize, usize), Error> {
        let (mut resealed, mut current) = (0, 0);
        for (mut config, version) in
            typed::load_all::<DatabaseConfig>(&*self.store, DATABASES).await?
        {
            let Some(sealed) = config.password.clone() else {
                continue;
            };
            let plaintext = match self.vault.open(&sealed, &context(&config)) {
                Ok(_) if self.vault.is_current(&sealed) => {
                    current += 1;
                    continue;
                }
                Ok(plaintext) => plaintext,
                Err(bound) => self
                    .vault
                    .open(&sealed, &legacy_context(&config.guid))
                    .map_err(|_| Error::Sealed(format!("database {}: {bound}", config.guid)))?,
            };
            self.seal(&mut config, &plaintext)?;
            if typed::save(
                &*self.store,
                DATABASES,
                &config.guid,
                &config,
                Expect::Version(version),
            )
            .await?
            .is_none()
            {
                return Err(Error::Conflict(format!(
                    "database {} changed during rotation; run it again",
                    config.guid
                )));
            }
            resealed += 1;
        }
        Ok((resealed, current))
    }
}
