//! NATS JWTs (decentralized auth, JWT v2) and `.creds` files, encoded here with `nkeys`
//! signing rather than through a JWT crate: a NATS JWT is
//! `base64url(header).base64url(claims).base64url(ed25519 signature)` with header
//! `{"typ":"JWT","alg":"ed25519-nkey"}`, claims `{jti, iat, iss, name, sub, exp?, nats: {…}}`
//! where `iss` is the signer's public nkey and `jti` the base32 SHA-512/256 of the claims
//! without it (as `nats-io/jwt` v2 writes them). Only what Enclave issues is modelled:
//! one operator, accounts with stream exports/imports and revocations, users with
//! publish/subscribe permissions.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde_json::{Value, json};
use sha2::{Digest, Sha512_256};

/// Why a JWT could not be signed or read.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("nkey error: {0}")]
    Key(String),
    #[error("malformed JWT")]
    Malformed,
    #[error("the JWT signature does not verify")]
    BadSignature,
}

impl From<nkeys::error::Error> for JwtError {
    fn from(error: nkeys::error::Error) -> Self {
        Self::Key(error.to_string())
    }
}

/// RFC 4648 base32, no padding (what NATS uses for `jti`).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Signs `claims` (an object) with `signer`: sets `iss`, `iat` and `jti`.
fn sign(mut claims: Value, signer: &KeyPair) -> Result<String, JwtError> {
    claims["iss"] = json!(signer.public_key());
    claims["iat"] = json!(chrono::Utc::now().timestamp());
    if let Some(object) = claims.as_object_mut() {
        object.remove("jti");
    }
    claims["jti"] = json!(base32(&Sha512_256::digest(claims.to_string().as_bytes())));
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let to_sign = format!("{header}.{payload}");
    let signature = signer.sign(to_sign.as_bytes())?;
    Ok(format!("{to_sign}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// The claims of a JWT after checking that its `iss` signed it (for tests and tools; the
/// NATS server is what enforces them).
pub fn decode(token: &str) -> Result<Value, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let claims: Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtError::Malformed)?;
    let issuer = claims["iss"].as_str().ok_or(JwtError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    KeyPair::from_public_key(issuer)?
        .verify(format!("{header}.{payload}").as_bytes(), &signature)
        .map_err(|_| JwtError::BadSignature)?;
    Ok(claims)
}

/// The self-signed operator JWT naming the system account.
pub fn operator(operator: &KeyPair, name: &str, system_account: &str) -> Result<String, JwtError> {
    sign(
        json!({
            "name": name,
            "sub": operator.public_key(),
            "nats": { "system_account": system_account, "type": "operator", "version": 2 },
        }),
        operator,
    )
}

/// What an account JWT says.
#[derive(Debug, Clone, Default)]
pub struct AccountSpec {
    pub name: String,
    /// Public key of the account (`A…`).
    pub public_key: String,
    /// Subjects other accounts may import as streams.
    pub exports: Vec<String>,
    /// Streams imported: (subject, exporting account).
    pub imports: Vec<(String, String)>,
    /// Users (public key, or `*` for all) whose JWTs issued before the time are revoked.
    pub revocations: BTreeMap<String, i64>,
    /// JetStream allowed in the account (unlimited storage, inside the account).
    pub jetstream: bool,
}

/// An account JWT signed by the operator.
pub fn account(spec: &AccountSpec, operator: &KeyPair) -> Result<String, JwtError> {
    let exports: Vec<Value> = spec
        .exports
        .iter()
        .map(|subject| json!({ "name": subject, "subject": subject, "type": "stream" }))
        .collect();
    let imports: Vec<Value> = spec
        .imports
        .iter()
        .map(|(subject, account)| {
            json!({ "name": subject, "subject": subject, "account": account, "type": "stream" })
        })
        .collect();
    let storage = if spec.jetstream { -1 } else { 0 };
    let mut nats = json!({
        "limits": {
            "subs": -1, "data": -1, "payload": -1,
            "imports": -1, "exports": -1, "wildcards": true, "conn": -1, "leaf": -1,
            "mem_storage": storage, "disk_storage": storage,
        },
        "default_permissions": { "pub": {}, "sub": {} },
        "type": "account",
        "version": 2,
    });
    if !exports.is_empty() {
        nats["exports"] = json!(exports);
    }
    if !imports.is_empty() {
        nats["imports"] = json!(imports);
    }
    if !spec.revocations.is_empty() {
        nats["revocations"] = json!(spec.revocations);
    }
    sign(
        json!({ "name": spec.name, "sub": spec.public_key, "nats": nats }),
        operator,
    )
}

/// What a user JWT says.
#[derive(Debug, Clone, Default)]
pub struct UserSpec {
    pub name: String,
    /// Public key of the user (`U…`).
    pub public_key: String,
    /// Subjects it may publish to; empty: no restriction (inside its account).
    pub publish: Vec<String>,
    /// Subjects it may subscribe to; empty: no restriction (inside its account).
    pub subscribe: Vec<String>,
    /// Unix time after which the JWT is refused.
    pub expires: Option<i64>,
}

/// A user JWT signed by its account.
pub fn user(spec: &UserSpec, account: &KeyPair) -> Result<String, JwtError> {
    let permission = |subjects: &[String]| {
        if subjects.is_empty() {
            json!({})
        } else {
            json!({ "allow": subjects })
        }
    };
    let mut claims = json!({
        "name": spec.name,
        "sub": spec.public_key,
        "nats": {
            "pub": permission(&spec.publish),
            "sub": permission(&spec.subscribe),
            "subs": -1, "data": -1, "payload": -1,
            "type": "user",
            "version": 2,
        },
    });
    if let Some(expires) = spec.expires {
        claims["exp"] = json!(expires);
    }
    sign(claims, account)
}

/// A `.creds` file (user JWT and seed), in the layout `nsc` writes and NATS clients read.
pub fn creds(user_jwt: &str, user_seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{user_seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn jwts_verify_with_their_issuer_and_carry_the_claims() {
        let operator_key = KeyPair::new_operator();
        let system = KeyPair::new_account();
        let token = operator(&operator_key, "enclave", &system.public_key()).expect("operator");
        let claims = decode(&token).expect("verifies");
        assert_eq!(claims["iss"], json!(operator_key.public_key()));
        assert_eq!(claims["sub"], json!(operator_key.public_key()));
        assert_eq!(claims["nats"]["system_account"], json!(system.public_key()));
        assert_eq!(claims["jti"].as_str().map(str::len), Some(52));

        let account_key = KeyPair::new_account();
        let spec = AccountSpec {
            name: "acme".into(),
            public_key: account_key.public_key(),
            exports: vec!["acme.pollers.heartbeat".into()],
            imports: vec![("acme.alerts.changed".into(), system.public_key())],
            revocations: BTreeMap::from([("UABC".to_owned(), 5)]),
            jetstream: true,
        };
        let claims = decode(&account(&spec, &operator_key).expect("account")).expect("verifies");
        assert_eq!(claims["iss"], json!(operator_key.public_key()));
        assert_eq!(claims["nats"]["exports"][0]["subject"], "acme.pollers.heartbeat");
        assert_eq!(
            claims["nats"]["imports"][0]["account"],
            json!(system.public_key())
        );
        assert_eq!(claims["nats"]["revocations"]["UABC"], 5);

        let user_key = KeyPair::new_user();
        let token = user(
            &UserSpec {
                name: "poller-1".into(),
                public_key: user_key.public_key(),
                publish: vec!["acme.>".into()],
                subscribe: vec!["acme.>".into()],
                expires: Some(10),
            },
            &account_key,
        )
        .expect("user");
        let claims = decode(&token).expect("verifies");
        assert_eq!(claims["nats"]["pub"]["allow"], json!(["acme.>"]));
        assert_eq!(claims["exp"], 10);

        // Altered claims no longer verify.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&json!({ "iss": account_key.public_key(), "sub": "x" })).expect("json"),
        );
        parts[1] = &forged;
        assert!(matches!(decode(&parts.join(".")), Err(JwtError::BadSignature)));

        let file = creds(&token, &user_key.seed().expect("seed"));
        assert!(file.contains(&token) && file.contains("BEGIN USER NKEY SEED"));
    }
}
