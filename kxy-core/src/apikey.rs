//! API keys: secrets for programs, shown once, stored as a hash.
//!
//! A key reads `sk-kxy-` followed by 64 hex digits of randomness (256 bits)
//! and 8 hex digits of checksum (the first 4 bytes of SHA-256 over the
//! random part). The prefix makes a leaked key recognizable to secret
//! scanners; the checksum lets the server refuse a mistyped or truncated key
//! without touching the store. The server keeps only [`ApiKeySecret::hash`],
//! SHA-256 over the whole key: with 256 random bits, a plain hash cannot be
//! reversed by guessing, so no slow hash or pepper is needed.

use std::fmt;

use sha2::{Digest, Sha256};

const PREFIX: &str = "sk-kxy-";
const RANDOM_HEX: usize = 64;
const CHECKSUM_HEX: usize = 8;

/// A full API key. Its `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

/// Why a string is not an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyFormatError {
    #[error("an API key starts with sk-kxy-")]
    Prefix,
    #[error("an API key has {} hex digits after sk-kxy-", RANDOM_HEX + CHECKSUM_HEX)]
    Length,
    #[error("the API key's checksum does not match: it is mistyped or truncated")]
    Checksum,
}

fn checksum(random: &str) -> String {
    hex::encode(&Sha256::digest(random.as_bytes())[..CHECKSUM_HEX / 2])
}

impl ApiKeySecret {
    /// A fresh key from 256 random bits.
    pub fn generate() -> Self {
        let random = hex::encode(rand::random::<[u8; 32]>());
        let check = checksum(&random);
        ApiKeySecret(format!("{PREFIX}{random}{check}"))
    }

    /// Checks the format and checksum of a presented key.
    pub fn parse(text: &str) -> Result<Self, ApiKeyFormatError> {
        let body = text.strip_prefix(PREFIX).ok_or(ApiKeyFormatError::Prefix)?;
        if body.len() != RANDOM_HEX + CHECKSUM_HEX || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiKeyFormatError::Length);
        }
        let (random, check) = body.split_at(RANDOM_HEX);
        if !check.eq_ignore_ascii_case(&checksum(&random.to_ascii_lowercase())) {
            return Err(ApiKeyFormatError::Checksum);
        }
        Ok(ApiKeySecret(format!(
            "{PREFIX}{}",
            body.to_ascii_lowercase()
        )))
    }

    /// Whether `text` looks like an API key (rather than, say, a JWT).
    pub fn looks_like(text: &str) -> bool {
        text.starts_with(PREFIX)
    }

    /// The full key, to show once at creation.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps: SHA-256 over the key, as hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// How lists show the key: `sk-kxy-abcd...wxyz`.
    pub fn display_prefix(&self) -> String {
        let body = &self.0[PREFIX.len()..];
        format!("{PREFIX}{}...{}", &body[..4], &body[body.len() - 4..])
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({})", self.display_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hide_in_debug() {
        let key = ApiKeySecret::generate();
        assert_eq!(key.expose().len(), 7 + 72);
        assert_eq!(ApiKeySecret::parse(key.expose()).unwrap(), key);
        assert!(!format!("{key:?}").contains(&key.expose()[10..]));
        let shown = key.display_prefix();
        assert!(
            shown.starts_with("sk-kxy-") && shown.contains("...") && shown.len() == 7 + 4 + 3 + 4
        );
        assert_ne!(ApiKeySecret::generate(), key);
    }

    #[test]
    fn typos_and_truncations_are_refused() {
        let key = ApiKeySecret::generate();
        let text = key.expose();
        assert_eq!(
            ApiKeySecret::parse(&text[..text.len() - 1]),
            Err(ApiKeyFormatError::Length)
        );
        assert_eq!(
            ApiKeySecret::parse(&text[3..]),
            Err(ApiKeyFormatError::Prefix)
        );
        // Change one hex digit of the random part.
        let mut chars: Vec<char> = text.chars().collect();
        chars[20] = if chars[20] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(ApiKeySecret::parse(&typo), Err(ApiKeyFormatError::Checksum));
        assert_eq!(
            ApiKeySecret::parse(&text.to_uppercase().replace("SK-KXY-", "sk-kxy-")).unwrap(),
            key
        );
    }

    #[test]
    fn hashes_are_stable_and_distinct() {
        let key = ApiKeySecret::generate();
        assert_eq!(
            key.hash(),
            ApiKeySecret::parse(key.expose()).unwrap().hash()
        );
        assert_eq!(key.hash().len(), 64);
        assert!(!key.hash().contains(&key.expose()[7..20]));
    }
}
