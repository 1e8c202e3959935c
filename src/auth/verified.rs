//! Tokens already verified, so that a client presenting the same token again skips the
//! signature check and the Datalog authorizer.
//!
//! Only tokens made of the authority block alone are kept (every session and API token as
//! issued): their only check is their expiry, which is re-checked here on every use, and
//! no operation or root field can change their verdict. An attenuated token is verified and
//! authorized in full on every request. Entries are keyed by the exact token text, so no
//! other text can hit them; revocation is unaffected (it is checked in the tenant
//! transaction). The map is bounded: when full it is emptied and refilled by later requests.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::Utc;

use super::keys::RootKeys;
use super::token::{self, Claims, Operation, TokenRefusal};

/// Tokens kept at most.
const CAPACITY: usize = 10_000;

/// See the module doc.
#[derive(Default)]
pub struct VerifiedTokens {
    claims: RwLock<HashMap<String, Claims>>,
}

impl VerifiedTokens {
    /// The claims of `raw` for one operation, and whether it is attenuated: from the map
    /// when it was verified before, otherwise verified and authorized in full.
    pub fn authorize(
        &self,
        raw: &str,
        keys: &RootKeys,
        operation: Operation,
        root_fields: &[String],
    ) -> Result<(Claims, bool), TokenRefusal> {
        let known = self
            .claims
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(raw)
            .cloned();
        if let Some(claims) = known {
            if claims.expires_at <= Utc::now() {
                self.write().remove(raw);
                return Err(TokenRefusal::Expired);
            }
            return Ok((claims, false));
        }
        let verified = token::verify(raw, keys)?;
        let claims = verified.authorize(operation, root_fields)?;
        let attenuated = verified.is_attenuated();
        if !attenuated {
            let mut map = self.write();
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(raw.to_owned(), claims.clone());
        }
        Ok((claims, attenuated))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Claims>> {
        self.claims
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
