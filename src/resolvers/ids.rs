//! Opaque global IDs: `base64url("<Type>:<uuid>")`. Clients treat them as opaque; the
//! server checks the type on the way in, so an id of one kind never addresses another.

use async_graphql::ID;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::errors::ApiError;

/// The global ID of a `kind` object with primary key `id`.
pub fn encode(kind: &str, id: Uuid) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{kind}:{id}")))
}

/// The primary key inside a global ID of the expected `kind`. A malformed id, or an id
/// of another kind, is BAD_USER_INPUT.
pub fn decode(kind: &str, id: &ID) -> Result<Uuid, ApiError> {
    decode_any(id)
        .filter(|(found, _)| found == kind)
        .map(|(_, uuid)| uuid)
        .ok_or_else(|| ApiError::bad_input(format!("not a valid {kind} id")))
}

/// [`decode`] for an optional argument.
pub fn decode_optional(kind: &str, id: Option<&ID>) -> Result<Option<Uuid>, ApiError> {
    id.map(|id| decode(kind, id)).transpose()
}

/// The kind and primary key of any global ID.
pub fn decode_any(id: &ID) -> Option<(String, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(id.as_str()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (kind, raw) = text.split_once(':')?;
    Some((kind.to_owned(), Uuid::parse_str(raw).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_kind() {
        let id = Uuid::new_v4();
        let global = encode("Device", id);
        assert_eq!(decode("Device", &global).ok(), Some(id));
        assert!(decode("Interface", &global).is_err());
        assert!(decode("Device", &ID("not-base64!".into())).is_err());
        assert!(decode("Device", &ID(id.to_string())).is_err());
    }
}
