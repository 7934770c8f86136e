//! Showing a secret without revealing it.
//!
//! API keys and stored credentials are echoed back to their owners so they can
//! tell them apart, never in full. The rule is the one the seed systems used,
//! so people moving over see the same shapes: empty stays empty, up to 8
//! characters become all `*`, longer values keep their first 4 and last 4
//! characters with one `*` per hidden character between them.

/// Masks `secret` by the rule in the module docs. Works on characters, not
/// bytes, so non-ASCII secrets are never split inside a character.
pub fn mask_secret(secret: &str) -> String {
    let len = secret.chars().count();
    if len <= 8 {
        return "*".repeat(len);
    }
    let head: String = secret.chars().take(4).collect();
    let tail: String = secret.chars().skip(len - 4).collect();
    format!("{head}{}{tail}", "*".repeat(len - 8))
}

#[cfg(test)]
mod tests {
    use super::mask_secret;

    #[test]
    fn each_length_class() {
        assert_eq!(mask_secret(""), "");
        assert_eq!(mask_secret("a"), "*");
        assert_eq!(mask_secret("short"), "*****");
        assert_eq!(mask_secret("12345678"), "********");
        assert_eq!(mask_secret("123456789"), "1234*6789");
        assert_eq!(mask_secret("sk-1234567890abcdef"), "sk-1***********cdef");
    }

    #[test]
    fn multibyte_characters_stay_whole() {
        assert_eq!(mask_secret("密钥密钥密钥密钥密钥"), "密钥密钥**密钥密钥");
    }

    #[test]
    fn never_reveals_more_than_eight_characters() {
        for len in 0..64 {
            let secret: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let masked = mask_secret(&secret);
            assert_eq!(masked.chars().count(), len);
            assert!(masked.chars().filter(|c| *c != '*').count() <= 8);
        }
    }
}
