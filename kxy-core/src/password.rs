//! The minimum password policy.
//!
//! Length matters most, so the floor is 10 characters; a letter and a digit
//! rule out the most guessed shapes (all digits, one word). The ceiling of
//! 128 keeps a request from making the server hash megabytes. A password
//! equal to the username is refused.

pub const MIN_PASSWORD_LEN: usize = 10;
pub const MAX_PASSWORD_LEN: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("password must be at least {MIN_PASSWORD_LEN} characters long")]
    TooShort,
    #[error("password must be at most {MAX_PASSWORD_LEN} characters long")]
    TooLong,
    #[error("password must contain at least one letter and one digit")]
    TooSimple,
    #[error("password must not be the username")]
    SameAsUsername,
}

/// Checks `password` for the account `username`.
pub fn check_password(username: &str, password: &str) -> Result<(), PasswordPolicyError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(PasswordPolicyError::TooShort);
    }
    if len > MAX_PASSWORD_LEN {
        return Err(PasswordPolicyError::TooLong);
    }
    if !password.chars().any(char::is_alphabetic) || !password.chars().any(|c| c.is_ascii_digit()) {
        return Err(PasswordPolicyError::TooSimple);
    }
    if password.eq_ignore_ascii_case(username) {
        return Err(PasswordPolicyError::SameAsUsername);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(check_password("alice", "correct horse 9"), Ok(()));
        assert_eq!(
            check_password("alice", "short1"),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(
            check_password("alice", &"a1".repeat(65)),
            Err(PasswordPolicyError::TooLong)
        );
        assert_eq!(
            check_password("alice", "1234567890"),
            Err(PasswordPolicyError::TooSimple)
        );
        assert_eq!(
            check_password("alice", "onlyletters"),
            Err(PasswordPolicyError::TooSimple)
        );
        assert_eq!(
            check_password("alice2024x", "Alice2024X"),
            Err(PasswordPolicyError::SameAsUsername)
        );
        assert_eq!(
            check_password("bob", "密码密码密码密码12"),
            Ok(()),
            "any script counts as letters"
        );
    }
}
