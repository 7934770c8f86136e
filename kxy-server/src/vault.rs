//! Encryption of stored secrets (credentials' API keys, database passwords).
//!
//! Secrets are sealed with XChaCha20-Poly1305 under the master key given as
//! `--master-key` (32 random bytes as 64 hex digits; `kxy-server keygen`
//! prints one). Each sealed value records:
//!
//! - the fingerprint of the key that sealed it (first 8 hex digits of its
//!   SHA-256), so that after a rotation the server knows which key opens it
//!   and `kxy-server credentials rotate` can re-seal under the new one;
//! - a random 192-bit nonce (safe to draw at random for this cipher);
//! - the ciphertext with its authentication tag.
//!
//! The *context* (say, `credential:<id>:<owner>`) is authenticated as
//! associated data: a ciphertext copied into another record does not
//! decrypt there. Without a master key, the server refuses to store secrets
//! rather than keep them in plaintext.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// A master key and its fingerprint.
pub struct MasterKey {
    fingerprint: String,
    cipher: XChaCha20Poly1305,
    /// The key that signs access tokens, derived so that it is never stored.
    token_signing: [u8; 32],
}

impl MasterKey {
    /// Parses 64 hex digits.
    pub fn parse(hex_key: &str) -> Result<Self, Error> {
        let bytes: [u8; 32] = hex::decode(hex_key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                Error::Startup(
                    "a master key is 64 hex digits (32 bytes); kxy-server keygen prints one".into(),
                )
            })?;
        Ok(MasterKey {
            fingerprint: hex::encode(&Sha256::digest(bytes)[..4]),
            cipher: XChaCha20Poly1305::new(&Key::from(bytes)),
            // Domain-separated, so neither key tells anything of the other.
            token_signing: Sha256::new()
                .chain_update(b"kxy access-token signing key v1\0")
                .chain_update(bytes)
                .finalize()
                .into(),
        })
    }

    /// A fresh key as 64 hex digits.
    pub fn generate() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// A sealed secret as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub key: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// The keys a server can seal and open with.
#[derive(Default)]
pub struct Vault {
    current: Option<MasterKey>,
    previous: Vec<MasterKey>,
}

impl Vault {
    /// `current` seals; it and `previous` (during a rotation) open.
    pub fn new(current: Option<MasterKey>, previous: Vec<MasterKey>) -> Self {
        Vault { current, previous }
    }

    pub fn enabled(&self) -> bool {
        self.current.is_some()
    }

    pub fn fingerprint(&self) -> Option<&str> {
        self.current.as_ref().map(MasterKey::fingerprint)
    }

    /// The access-token signing key derived from the current master key.
    pub fn token_signing_key(&self) -> Option<[u8; 32]> {
        self.current.as_ref().map(|k| k.token_signing)
    }

    /// Seals `secret` for the record named by `context`.
    pub fn seal(&self, secret: &str, context: &str) -> Result<Sealed, Error> {
        let key = self.current.as_ref().ok_or(Error::VaultDisabled)?;
        let nonce: [u8; 24] = rand::random();
        let ciphertext = key
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Error::Sealed("encryption failed".into()))?;
        Ok(Sealed {
            key: key.fingerprint.clone(),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        })
    }

    /// Opens a secret sealed for the record named by `context`.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<String, Error> {
        let key = self
            .current
            .iter()
            .chain(&self.previous)
            .find(|k| k.fingerprint == sealed.key)
            .ok_or_else(|| {
                Error::Sealed(format!(
                    "it is sealed under master key {}, which this server was not given \
                     (pass it in --previous-master-keys, then run kxy-server credentials rotate)",
                    sealed.key
                ))
            })?;
        let malformed = || Error::Sealed("the stored value is malformed".into());
        let nonce: [u8; 24] = hex::decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(malformed)?;
        let ciphertext = hex::decode(&sealed.ciphertext).map_err(|_| malformed())?;
        let plaintext = key
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::Sealed(
                    "it fails its integrity check: it belongs to another record or was altered"
                        .into(),
                )
            })?;
        String::from_utf8(plaintext).map_err(|_| malformed())
    }

    /// Whether `sealed` is under the current key already.
    pub fn is_current(&self, sealed: &Sealed) -> bool {
        self.fingerprint() == Some(sealed.key.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(key: &str) -> Vault {
        Vault::new(Some(MasterKey::parse(key).unwrap()), vec![])
    }

    #[test]
    fn seal_open_and_bind_to_the_record() {
        let key = MasterKey::generate();
        let v = vault(&key);
        let sealed = v.seal("sk-upstream-secret", "credential:a:u1").unwrap();
        assert!(
            !sealed
                .ciphertext
                .contains(&hex::encode("sk-upstream-secret"))
        );
        assert_eq!(
            v.open(&sealed, "credential:a:u1").unwrap(),
            "sk-upstream-secret"
        );
        let moved = v.open(&sealed, "credential:b:u1").unwrap_err();
        assert!(
            moved.to_string().contains("belongs to another record"),
            "{moved}"
        );
        let mut tampered = sealed.clone();
        tampered.ciphertext.replace_range(
            0..2,
            if &tampered.ciphertext[0..2] == "00" {
                "01"
            } else {
                "00"
            },
        );
        assert!(v.open(&tampered, "credential:a:u1").is_err());
        // Two seals of the same secret differ (random nonces).
        assert_ne!(v.seal("x", "c").unwrap(), v.seal("x", "c").unwrap());
    }

    #[test]
    fn rotation_needs_the_previous_key() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let sealed = vault(&old).seal("secret", "c").unwrap();
        let err = vault(&new).open(&sealed, "c").unwrap_err();
        assert!(err.to_string().contains("--previous-master-keys"), "{err}");
        let both = Vault::new(
            Some(MasterKey::parse(&new).unwrap()),
            vec![MasterKey::parse(&old).unwrap()],
        );
        assert_eq!(both.open(&sealed, "c").unwrap(), "secret");
        assert!(!both.is_current(&sealed));
        assert!(both.is_current(&both.seal("secret", "c").unwrap()));
    }

    #[test]
    fn keys_are_checked_and_a_missing_key_refuses() {
        assert!(MasterKey::parse("abc").is_err());
        assert!(MasterKey::parse(&"zz".repeat(32)).is_err());
        assert!(matches!(
            Vault::default().seal("x", "c"),
            Err(Error::VaultDisabled)
        ));
    }
}
