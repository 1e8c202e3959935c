//! Authentication: who the caller is and which tenant they act in, proven by a Biscuit
//! token signed with the root key set — never by anything else the client sends.
//!
//! - `keys`: the root key set (signing key, verifying keys by id);
//! - `token`: the token format, minting, verification and the per-operation authorizer;
//! - `password`: Argon2id hashes;
//! - `throttle`: slowing down repeated failed logins;
//! - `users`: tenant users (creation, lookup, password check).

pub mod keys;
pub mod password;
pub mod sessions;
pub mod throttle;
pub mod token;
pub mod users;
pub mod verified;

use std::fmt;
use std::str::FromStr;

/// What a caller may do inside its tenant. Ordered: each role includes the ones before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and runs operational mutations.
    Operator,
    /// Everything within the tenant, including users and API tokens.
    Admin,
    /// Admin of the platform tenant: manages the other tenants.
    PlatformAdmin,
}

impl Role {
    /// A token's role (`self`, a ceiling) capped by the role the database gives the
    /// credential now; `None` (nothing to read, e.g. no credential) leaves the ceiling.
    pub fn capped_by(self, current: Option<Role>) -> Role {
        current.map_or(self, |current| current.min(self))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
            Self::PlatformAdmin => "platform_admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected viewer, operator, admin or platform_admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    /// Any case, `-` for `_` (`OPERATOR`, `Platform-Admin`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            "platform_admin" => Ok(Self::PlatformAdmin),
            _ => Err(UnknownRole(s.to_owned())),
        }
    }
}
