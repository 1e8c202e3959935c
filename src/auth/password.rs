//! Password hashing with Argon2id (the `argon2` crate's defaults, PHC string format).

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A hash to verify against when the email is unknown, so that an unknown email costs as
/// much as a wrong password and timing does not reveal which emails exist.
static DECOY_HASH: LazyLock<Option<String>> = LazyLock::new(|| hash(&uuid::Uuid::new_v4().to_string()).ok());

/// Why a password was refused when setting it.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("cannot hash the password: {0}")]
    Hashing(String),
}

/// Checks the password policy and hashes it.
pub fn hash_new(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    hash(password)
}

fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Whether `password` matches `stored`. With no stored hash (unknown user, or a user
/// without a password) it still spends the time of a verification and answers false.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let candidate = stored.or(DECOY_HASH.as_deref());
    let matches = candidate
        .and_then(|h| PasswordHash::new(h).ok())
        .is_some_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
    matches && stored.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_refuse() {
        let stored = hash_new("correct horse battery").expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(&stored)));
        assert!(!verify("wrong horse battery", Some(&stored)));
        assert!(!verify("correct horse battery", None));
        assert!(matches!(hash_new("short"), Err(PasswordError::TooShort)));
    }
}
