//! Showing a secret without revealing it.
//!
//! API keys and stored credentials are echoed back to their owners so they can
//! tell them apart, never in full. The rule is the one the seed systems used,
//! so people moving over see the same shapes: empty stays empty, up to 8
//! characters become all `*`, longer values keep their first 4 and last 4
//! characters with one `*` per hidden character between them.

/// Masks a database password: at most 4 characters shown, never more than
/// a third of it. Up to 11 characters become all `*`; longer ones keep
/// their first 2 and last 2. Passwords are short and guessable in part,
/// so they get less than the seed's rule for API keys.
pub fn mask_password(password: &str) -> String {
    let len = password.chars().count();
    if len < 12 {
        return "*".repeat(len);
    }
    let head: String = password.chars().take(2).collect();
    let tail: String = password.chars().skip(len - 2).collect();
    format!("{head}{}{tail}", "*".repeat(len - 4))
}

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
    use super::{mask_password, mask_secret};

    #[test]
    fn passwords_show_at_most_four_characters() {
        assert_eq!(mask_password(""), "");
        assert_eq!(mask_password("12345678901"), "***********");
        assert_eq!(mask_password("the right password"), "th**************rd");
        for len in 0..64 {
            let password: String = (0..len).map(|_| 'p').collect();
            let shown = mask_password(&password)
                .chars()
                .filter(|c| *c != '*')
                .count();
            assert!(shown <= 4 && shown * 3 <= len, "{len}");
        }
    }

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
