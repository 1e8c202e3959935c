//! The edge key: the 256-bit key that encrypts certificate-authority private keys at rest.
//!
//! Configuration: `ENCLAVE_EDGE_KEY` (64 hex digits) or a file named by
//! `ENCLAVE_EDGE_KEY_FILE` holding them; in development mode (`ENCLAVE_DEV`) without either,
//! a per-user key file next to the development root key (`dev-edge-key`), created when
//! missing. `enclave keys generate` style output: [`EdgeKey::generate`].
//!
//! Sealed values are `v1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>` with
//! ChaCha20-Poly1305 (ring). The key id (first 8 bytes of SHA-256 of the key, in hex) tells
//! which key sealed a value, so that a wrong key is reported as such; the associated data
//! binds each value to its purpose (e.g. the tenant whose CA key it is), so a sealed key
//! cannot be moved to another row.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// Why the edge key or a sealed value was refused.
#[derive(Debug, thiserror::Error)]
pub enum EdgeKeyError {
    #[error(
        "no edge key configured: set ENCLAVE_EDGE_KEY (64 hex digits) or ENCLAVE_EDGE_KEY_FILE, or ENCLAVE_DEV=1 for development mode"
    )]
    Missing,
    #[error("the edge key must be 64 hex digits (32 bytes)")]
    Malformed,
    #[error("cannot read or write the edge key file {path}: {message}")]
    File { path: String, message: String },
    #[error("a sealed value is malformed")]
    MalformedSealed,
    #[error("a sealed value was sealed with another edge key (id {0}); configure that key")]
    WrongKey(String),
    #[error("a sealed value does not decrypt: it was altered or belongs elsewhere")]
    Corrupt,
    #[error("no randomness available")]
    Random,
}

/// See the module doc.
#[derive(Clone)]
pub struct EdgeKey {
    key: [u8; 32],
    id: String,
}

impl fmt::Debug for EdgeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl EdgeKey {
    fn from_bytes(key: [u8; 32]) -> Self {
        let id = hex(&Sha256::digest(key)[..8]);
        Self { key, id }
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn parse(spec: &str) -> Result<Self, EdgeKeyError> {
        let spec = spec.trim();
        if spec.len() != 64 || !spec.is_ascii() {
            return Err(EdgeKeyError::Malformed);
        }
        let mut key = [0u8; 32];
        for (index, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&spec[index * 2..index * 2 + 2], 16)
                .map_err(|_| EdgeKeyError::Malformed)?;
        }
        Ok(Self::from_bytes(key))
    }

    /// A new random key and its configuration form (64 hex digits).
    pub fn generate() -> Result<(Self, String), EdgeKeyError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| EdgeKeyError::Random)?;
        Ok((Self::from_bytes(key), hex(&key)))
    }

    /// Reads the key file, or, when `create_if_missing` (development mode only), creates it
    /// with a new key (owner-readable only) and warns.
    pub fn from_file(path: &Path, create_if_missing: bool) -> Result<Self, EdgeKeyError> {
        let file_error = |e: std::io::Error| EdgeKeyError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        match std::fs::read_to_string(path) {
            Ok(spec) => Self::parse(&spec),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create_if_missing => {
                let (key, spec) = Self::generate()?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(file_error)?;
                }
                match crate::auth::keys::write_private(path, &spec) {
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
                    "development mode: generated a new edge key; do not use this in production"
                );
                Ok(key)
            }
            Err(e) => Err(file_error(e)),
        }
    }

    /// Identifies the key (not secret): the first 8 bytes of its SHA-256, in hex.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn aead(&self) -> Result<LessSafeKey, EdgeKeyError> {
        UnboundKey::new(&CHACHA20_POLY1305, &self.key)
            .map(LessSafeKey::new)
            .map_err(|_| EdgeKeyError::Malformed)
    }

    /// Encrypts `plaintext` bound to `purpose` (see the module doc).
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<String, EdgeKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| EdgeKeyError::Random)?;
        let mut buffer = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| EdgeKeyError::Corrupt)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&buffer);
        Ok(format!("v1:{}:{}", self.id, STANDARD.encode(sealed)))
    }

    /// Decrypts a value sealed by [`EdgeKey::seal`] with the same key and purpose.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, EdgeKeyError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EdgeKeyError::MalformedSealed);
        };
        if id != self.id {
            return Err(EdgeKeyError::WrongKey(id.to_owned()));
        }
        let bytes = STANDARD.decode(body).map_err(|_| EdgeKeyError::MalformedSealed)?;
        if bytes.len() < NONCE_LEN {
            return Err(EdgeKeyError::MalformedSealed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| EdgeKeyError::MalformedSealed)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .aead()?
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buffer)
            .map_err(|_| EdgeKeyError::Corrupt)?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_purpose() {
        let (key, spec) = EdgeKey::generate().expect("key");
        let again = EdgeKey::parse(&spec).expect("parse");
        assert_eq!(key.id(), again.id());
        let sealed = key.seal("tenant-ca:acme", b"secret key").expect("seal");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            again.open("tenant-ca:acme", &sealed).expect("open"),
            b"secret key"
        );
        assert!(matches!(
            key.open("tenant-ca:other", &sealed),
            Err(EdgeKeyError::Corrupt)
        ));
        let (other, _) = EdgeKey::generate().expect("key");
        assert!(matches!(
            other.open("tenant-ca:acme", &sealed),
            Err(EdgeKeyError::WrongKey(_))
        ));
        let tampered = format!("{}A", &sealed[..sealed.len() - 1]);
        assert!(key.open("tenant-ca:acme", &tampered).is_err());
        assert!(matches!(EdgeKey::parse("abc"), Err(EdgeKeyError::Malformed)));
        assert!(matches!(
            EdgeKey::parse(&"zz".repeat(32)),
            Err(EdgeKeyError::Malformed)
        ));
    }
}
