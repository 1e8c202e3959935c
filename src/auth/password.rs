//! Password hashing with Argon2id (the `argon2` crate's defaults, PHC string format),
//! and a process-wide count of verifications: logins must cost the same number of them
//! whatever the email (see `resolvers::identity`), and tests prove it with [`verifications`].

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A hash to verify against when the email is unknown, so that an unknown email costs as
/// much as a wrong password and timing does not reveal which emails exist.
static DECOY_HASH: LazyLock<Option<String>> = LazyLock::new(|| hash(&uuid::Uuid::new_v4().to_string()).ok());

/// Argon2 verifications run by this process (real and decoy alike).
static VERIFICATIONS: AtomicU64 = AtomicU64::new(0);

/// How many Argon2 verifications this process has run so far (real and decoy alike).
pub fn verifications() -> u64 {
    VERIFICATIONS.load(Ordering::Relaxed)
}

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
            VERIFICATIONS.fetch_add(1, Ordering::Relaxed);
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

    #[test]
    fn every_verification_is_counted_decoys_included() {
        let stored = hash_new("correct horse battery").expect("hash");
        let before = verifications();
        verify("wrong horse battery", Some(&stored));
        verify("correct horse battery", None);
        // Other tests of this binary may verify meanwhile: at least these two counted.
        assert!(verifications() - before >= 2);
    }
}
