//! Testing a connection: does kxy reach the database with these settings,
//! and what does it see there? Nothing is registered or changed.
//!
//! A registered database is tested with its stored settings and password
//! (`POST /api/database/{guid}/test`); a form not saved yet, with the
//! password it carries (`POST /api/database/test`), after the same checks
//! as registering it (the rules and `--database-hosts`/`--sqlite-dir`).
//! A failure is [`Error::Database`] (502, 50201): what kxy tried, the
//! driver's cause and, for the usual causes, what to check, never the
//! password.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::drivers::DbType;
use super::{DatabaseConfig, DatabaseForm, DatabaseService, unreachable_prefix};
use crate::Error;

/// What a successful test found.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConnectionTest {
    pub db_type: DbType,
    /// What the database says it is, if it said (`10.11.6-MariaDB`).
    pub server_version: Option<String>,
    /// Tables the account can see.
    pub tables: usize,
    /// Of those, the ones whose key kxy can number.
    pub numberable: usize,
    /// Connecting and reading the catalog took this long.
    pub elapsed_ms: u64,
}

/// What a person should check, for the usual causes of a failure.
fn hint(message: &str) -> Option<&'static str> {
    let m = message.to_ascii_lowercase();
    let has = |markers: &[&str]| markers.iter().any(|marker| m.contains(marker));
    if has(&["connection refused"]) {
        Some("nothing accepts connections there: is the database running, and is the port right?")
    } else if has(&[
        "access denied",
        "password authentication failed",
        "authentication failed",
        "no password supplied",
    ]) {
        Some("the database refused the user name or password")
    } else if has(&["unknown database"])
        || (m.contains("database \"") && m.contains("does not exist"))
    {
        Some("the server has no database of that name")
    } else if has(&["no answer within"]) {
        Some(
            "the host did not answer: is the address right, and may kxy reach it through the firewall?",
        )
    } else if has(&[
        "failed to lookup address",
        "name or service not known",
        "no such host",
    ]) {
        Some("the host name does not resolve")
    } else if has(&["certificate", "tls", "ssl"]) {
        Some("the TLS handshake failed: check the tls mode and tls_ca")
    } else {
        None
    }
}

/// The error with what to check appended, when the cause is a usual one
/// (read from the cause alone, not the names the settings put before it:
/// a database called `tls_test` is no TLS failure).
fn explained(config: &DatabaseConfig, error: Error) -> Error {
    match error {
        Error::Database(message) => {
            let prefix = unreachable_prefix(config);
            let cause = message.strip_prefix(&prefix).unwrap_or(&message);
            match hint(cause) {
                Some(hint) => Error::Database(format!("{message} ({hint})")),
                None => Error::Database(message),
            }
        }
        other => other,
    }
}

impl DatabaseService {
    /// Tests a registered database with its stored settings.
    pub async fn test_connection(&self, guid: &str) -> Result<ConnectionTest, Error> {
        let (config, _) = self.config(guid).await?;
        self.probe(&config, None).await
    }

    /// Tests a form before it is registered, with the password it carries.
    pub async fn test_form(&self, form: DatabaseForm) -> Result<ConnectionTest, Error> {
        let config = self.draft("unsaved", &form)?;
        self.probe(&config, Some(&form.password)).await
    }

    async fn probe(
        &self,
        config: &DatabaseConfig,
        password: Option<&str>,
    ) -> Result<ConnectionTest, Error> {
        let started = Instant::now();
        let (mut connection, tables) = self
            .tables_with(config, password)
            .await
            .map_err(|e| explained(config, e))?;
        let server_version = match connection.server_version().await {
            Ok(version) => Some(version),
            Err(e) => {
                tracing::debug!(database = %config.guid, "server version not read: {e}");
                None
            }
        };
        connection.close().await;
        Ok(ConnectionTest {
            db_type: config.db_type,
            server_version,
            tables: tables.len(),
            numberable: tables.iter().filter(|t| t.key.is_ok()).count(),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::databases::drivers::TlsMode;

    fn config(db_name: &str) -> DatabaseConfig {
        DatabaseConfig {
            guid: "unsaved".into(),
            system_code: "shop".into(),
            db_type: DbType::Postgresql,
            address: "127.0.0.1:1".into(),
            db_name: db_name.into(),
            username: "u".into(),
            tls: TlsMode::Prefer,
            tls_ca: String::new(),
            password: None,
            password_masked: String::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn usual_causes_get_a_hint() {
        let refused = explained(
            &config("d"),
            Error::Database(
                "cannot connect to postgresql database d at 127.0.0.1:1: error communicating \
                 with database: Connection refused (os error 111)"
                    .into(),
            ),
        );
        assert!(
            refused.to_string().ends_with(
                "(nothing accepts connections there: is the database running, and is the port \
                 right?)"
            ),
            "{refused}"
        );
        assert_eq!(
            hint("error returned from database: 1045 (28000): Access denied for user 'u'@'h'"),
            Some("the database refused the user name or password")
        );
        assert_eq!(
            hint("error returned from database: database \"ghost\" does not exist"),
            Some("the server has no database of that name")
        );
        assert_eq!(hint("something else entirely"), None);
        // The settings' own names are no cause: a database named tls_test
        // that fails otherwise gets no TLS hint.
        let odd = explained(
            &config("tls_test"),
            Error::Database(
                "cannot connect to postgresql database tls_test at 127.0.0.1:1: odd".into(),
            ),
        );
        assert!(!odd.to_string().contains("TLS"), "{odd}");
        // Other errors pass unchanged.
        let other = explained(&config("d"), Error::invalid("address", "use host:port"));
        assert_eq!(
            other.to_string(),
            Error::invalid("address", "use host:port").to_string()
        );
    }
}
