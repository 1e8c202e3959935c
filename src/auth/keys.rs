//! The root key set that signs and verifies every token.
//!
//! Configuration (`ENCLAVE_ROOT_KEY`, or a file named by `ENCLAVE_ROOT_KEY_FILE`) is a
//! comma-separated list of `<id>:private:<hex>` or `<id>:public:<hex>` Ed25519 keys. The
//! first entry must be private: it signs new tokens under its id. Every listed key
//! verifies tokens carrying its id, so a rotation lists the new private key first and the
//! old key (private or public) after it until the old tokens have expired. A token whose
//! key id is absent or unknown is refused.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use biscuit_auth::{Algorithm, KeyPair, PrivateKey, PublicKey};

/// Why the key configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no root key configured: set ENCLAVE_ROOT_KEY (see `enclave keys generate`) or ENCLAVE_ROOT_KEY_FILE, or ENCLAVE_DEV=1 for development mode (a per-user key file, see ENCLAVE_DEV_KEY_FILE)"
    )]
    Missing,
    #[error(
        "development mode (ENCLAVE_DEV) needs a place for its key file: set ENCLAVE_DEV_KEY_FILE (or HOME / XDG_DATA_HOME), or configure ENCLAVE_ROOT_KEY"
    )]
    NoDevKeyPath,
    #[error("root key entry {0}: expected <id>:private:<hex> or <id>:public:<hex>")]
    Malformed(usize),
    #[error("root key entry {0}: the key id must be a number between 0 and 4294967295")]
    BadId(usize),
    #[error("root key entry {0}: not a valid Ed25519 key in hex")]
    BadKey(usize),
    #[error("root key id {0} is listed twice")]
    DuplicateId(u32),
    #[error("the first root key must be a private key: it signs new tokens")]
    FirstNotPrivate,
    #[error("cannot read or write the root key file {path}: {message}")]
    File { path: String, message: String },
}

/// Signing key plus every key that still verifies.
#[derive(Clone)]
pub struct RootKeys {
    signing_id: u32,
    signing: std::sync::Arc<KeyPair>,
    verifying: HashMap<u32, PublicKey>,
}

impl fmt::Debug for RootKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.verifying.keys().collect();
        ids.sort();
        f.debug_struct("RootKeys")
            .field("signing_id", &self.signing_id)
            .field("verifying_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl RootKeys {
    /// Parses the configuration format described in the module doc.
    pub fn parse(spec: &str) -> Result<Self, KeyError> {
        let mut signing = None;
        let mut verifying = HashMap::new();
        let entries: Vec<&str> = spec.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
        if entries.is_empty() {
            return Err(KeyError::Missing);
        }
        for (index, entry) in entries.iter().enumerate() {
            let position = index + 1;
            let mut parts = entry.splitn(3, ':');
            let (Some(id), Some(kind), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(KeyError::Malformed(position));
            };
            let id: u32 = id.parse().map_err(|_| KeyError::BadId(position))?;
            let public = match kind {
                "private" => {
                    let private = PrivateKey::from_bytes_hex(hex, Algorithm::Ed25519)
                        .map_err(|_| KeyError::BadKey(position))?;
                    let pair = KeyPair::from(&private);
                    let public = pair.public();
                    if index == 0 {
                        signing = Some((id, pair));
                    }
                    public
                }
                "public" => PublicKey::from_bytes_hex(hex, Algorithm::Ed25519)
                    .map_err(|_| KeyError::BadKey(position))?,
                _ => return Err(KeyError::Malformed(position)),
            };
            if verifying.insert(id, public).is_some() {
                return Err(KeyError::DuplicateId(id));
            }
        }
        let (signing_id, signing) = signing.ok_or(KeyError::FirstNotPrivate)?;
        Ok(Self {
            signing_id,
            signing: std::sync::Arc::new(signing),
            verifying,
        })
    }

    /// A new random key set with one key (id 1): for `enclave keys generate`, tests and the
    /// development mode.
    pub fn generate(id: u32) -> (Self, String) {
        let pair = KeyPair::new_with_algorithm(Algorithm::Ed25519);
        let spec = format!("{id}:private:{}", pair.private().to_bytes_hex());
        let mut verifying = HashMap::new();
        verifying.insert(id, pair.public());
        let keys = Self {
            signing_id: id,
            signing: std::sync::Arc::new(pair),
            verifying,
        };
        (keys, spec)
    }

    /// Reads the key file, or, in development mode only, creates it with a new key
    /// (owner-readable only) and warns.
    pub fn from_file(path: &Path, create_if_missing: bool) -> Result<Self, KeyError> {
        let file_error = |e: std::io::Error| KeyError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        match std::fs::read_to_string(path) {
            Ok(spec) => Self::parse(&spec),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create_if_missing => {
                let (keys, spec) = Self::generate(1);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(file_error)?;
                }
                match write_private(path, &spec) {
                    Ok(()) => {}
                    // Another command created it meanwhile: use that one.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return std::fs::read_to_string(path)
                            .map_err(file_error)
                            .and_then(|spec| Self::parse(&spec));
                    }
                    Err(e) => return Err(file_error(e)),
                }
                tracing::warn!(
                    path = %path.display(),
                    "development mode: generated a new root key; do not use this in production"
                );
                Ok(keys)
            }
            Err(e) => Err(file_error(e)),
        }
    }

    /// The id and key pair that sign new tokens.
    pub fn signer(&self) -> (u32, &KeyPair) {
        (self.signing_id, &self.signing)
    }

    /// The verifying key for a token's key id; `None` for a missing or unknown id.
    pub fn verifier(&self, id: Option<u32>) -> Option<PublicKey> {
        id.and_then(|id| self.verifying.get(&id).copied())
    }

    /// Public part of the configuration, to give verifiers that must not sign.
    pub fn public_spec(&self) -> String {
        let mut ids: Vec<_> = self.verifying.keys().copied().collect();
        ids.sort();
        ids.iter()
            .map(|id| format!("{id}:public:{}", self.verifying[id].to_bytes_hex()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_rotation_and_refuses_bad_entries() {
        let (_, new) = RootKeys::generate(2);
        let (old_keys, old) = RootKeys::generate(1);
        let old_public = old_keys.public_spec();
        let keys = RootKeys::parse(&format!("{new}, {old_public}")).expect("rotation");
        assert_eq!(keys.signer().0, 2);
        assert!(keys.verifier(Some(1)).is_some() && keys.verifier(Some(2)).is_some());
        assert!(keys.verifier(Some(3)).is_none() && keys.verifier(None).is_none());

        assert!(matches!(RootKeys::parse(""), Err(KeyError::Missing)));
        assert!(matches!(
            RootKeys::parse(&old_public),
            Err(KeyError::FirstNotPrivate)
        ));
        assert!(matches!(
            RootKeys::parse(&format!("{old},{old}")),
            Err(KeyError::DuplicateId(1))
        ));
        assert!(matches!(RootKeys::parse("x:private:00"), Err(KeyError::BadId(1))));
        assert!(matches!(
            RootKeys::parse("1:private:zz"),
            Err(KeyError::BadKey(1))
        ));
        assert!(matches!(
            RootKeys::parse("1:secret:00"),
            Err(KeyError::Malformed(1))
        ));
    }
}
