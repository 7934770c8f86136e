//! Access tokens (JWT) and refresh tokens.
//!
//! An access token is a short-lived HS256 JWT: `iss` (`kxy`), `aud`
//! (`kxy-api`), `sub` (user id), `sid` (the login session, shared by all
//! tokens refreshed from one login), `jti`, `iat` and `exp`. Decoding pins
//! the algorithm, so a token signed any other way (or `none`) is refused,
//! and requires every one of those claims with our issuer and audience.
//!
//! A refresh token is opaque: `rt_<session>.<secret>`. The store keeps only
//! the SHA-256 of the session's current secret; using it replaces it (see
//! `sessions`), so each refresh token works once.
//!
//! The signing key is never kept in the store, where anyone who reads the
//! store could forge an administrator's token. It is, in order:
//!
//! - `--jwt-secret`, if given (every instance the same);
//! - derived from `--master-key` (so instances sharing the key agree, and a
//!   rotation of the master key ends every access token; refresh tokens,
//!   which are not signed, keep working);
//! - on the embedded store only, 256 random bits kept in `jwt-secret` next to
//!   the store file (mode 0600), generated on first start.
//!
//! A shared store (Redis) with neither is refused at start. A secret an
//! earlier version left in the store is deleted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::store::{Expect, Store};

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

/// Who issues access tokens, and for whom.
const ISSUER: &str = "kxy";
const AUDIENCE: &str = "kxy-api";

/// Allowed clock difference between instances, in seconds.
const LEEWAY: u64 = 5;

/// Shortest secret accepted from configuration.
pub const MIN_SECRET_LEN: usize = 32;

impl Tokens {
    /// Tokens signed with `configured`, or else a key derived from the
    /// master key, or else (embedded store) a key kept beside the store.
    pub async fn new(
        store: &dyn Store,
        configured: Option<&str>,
        derived: Option<[u8; 32]>,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Result<Self, Error> {
        let secret = match (configured, derived) {
            (Some(secret), _) if secret.len() >= MIN_SECRET_LEN => secret.as_bytes().to_vec(),
            (Some(_), _) => {
                return Err(Error::Startup(format!(
                    "--jwt-secret must be at least {MIN_SECRET_LEN} bytes"
                )));
            }
            (None, Some(derived)) => derived.to_vec(),
            (None, None) => local_secret(store)?,
        };
        // An earlier version kept a generated secret in the store, readable
        // by anyone with access to it: it signs nothing any more.
        store
            .delete_record("settings", "jwt_secret", Expect::Any)
            .await?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "jti", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = LEEWAY;
        Ok(Tokens {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            access_ttl,
            refresh_ttl,
        })
    }

    /// A new access token for `user_id` in `session`.
    pub fn issue_access(&self, user_id: &str, session: &str) -> Result<(String, Claims), Error> {
        let iat = now();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user_id.to_owned(),
            sid: session.to_owned(),
            jti: random_id(),
            iat,
            exp: iat + self.access_ttl.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Startup(format!("cannot sign a token: {e}")))?;
        Ok((token, claims))
    }

    /// The claims of a valid access token: signed by us with HS256, not
    /// expired, not issued in the future.
    pub fn verify_access(&self, token: &str) -> Result<Claims, Error> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| Error::InvalidToken(format!("{e}")))?;
        if data.claims.iat > now() + LEEWAY {
            return Err(Error::InvalidToken("token issued in the future".into()));
        }
        Ok(data.claims)
    }
}

/// The embedded store's signing key: `jwt-secret` beside the store file,
/// created on first start readable by the owner only. A shared store has
/// no such place that every instance sees, so it needs a configured key.
fn local_secret(store: &dyn Store) -> Result<Vec<u8>, Error> {
    if store.backend() != crate::store::embedded::BACKEND {
        return Err(Error::Startup(
            "a shared store needs a token signing key that every instance knows and the store \
             does not hold: give --master-key (the key is derived from it) or --jwt-secret \
             (at least 32 bytes), the same on every instance"
                .into(),
        ));
    }
    let location = std::path::PathBuf::from(store.location());
    let path = location
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("jwt-secret");
    let unreadable = |e: std::io::Error| {
        Error::Startup(format!(
            "cannot read or create the token signing key {}: {e}",
            path.display()
        ))
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            use std::io::Write;
            let fresh = hex::encode(rand::random::<[u8; 32]>());
            file.write_all(fresh.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(unreadable)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(unreadable(e)),
    }
    let text = std::fs::read_to_string(&path).map_err(unreadable)?;
    match hex::decode(text.trim()) {
        Ok(secret) if secret.len() == 32 => Ok(secret),
        _ => Err(Error::Startup(format!(
            "{} is not 64 hex digits; delete it to make a new one (every login ends)",
            path.display()
        ))),
    }
}

/// An opaque refresh token: the session it belongs to and a secret.
pub struct RefreshToken {
    pub session: String,
    pub secret: String,
}

impl RefreshToken {
    pub fn new(session: &str) -> Self {
        RefreshToken {
            session: session.to_owned(),
            secret: hex::encode(rand::random::<[u8; 32]>()),
        }
    }

    pub fn encode(&self) -> String {
        format!("rt_{}.{}", self.session, self.secret)
    }

    pub fn parse(token: &str) -> Option<Self> {
        let (session, secret) = token.strip_prefix("rt_")?.split_once('.')?;
        let hex_of =
            |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hex_of(session, 32) && hex_of(secret, 64)).then(|| RefreshToken {
            session: session.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// What the store keeps instead of the secret.
    pub fn secret_hash(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }
}

/// 128 random bits as 32 hex digits: ids of users, sessions, tokens,
/// keys, credentials, databases.
pub fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Whether `id` has the shape of [`random_id`]; anything else names nothing,
/// so lookups can answer "not found" without touching the store.
pub fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_round_trip_and_reject_junk() {
        let token = RefreshToken::new(&random_id());
        let parsed = RefreshToken::parse(&token.encode()).unwrap();
        assert_eq!(
            (parsed.session.clone(), parsed.secret_hash()),
            (token.session.clone(), token.secret_hash())
        );
        for junk in [
            "",
            "rt_",
            "rt_abc.def",
            "xx_0.0",
            &format!("rt_{}", random_id()),
        ] {
            assert!(RefreshToken::parse(junk).is_none(), "{junk}");
        }
    }
}
