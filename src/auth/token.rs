//! Token format, minting and verification.
//!
//! The authority block (signed by the root key, under its key id) carries:
//! `user(<uuid>)`, `tenant(<uuid>)`, `role(<name>)`, `credential(<kind>, <uuid>)` where kind
//! is `session`, `api_token` or `impersonation`, optionally `impersonator(<email>)`, and
//! `expires(<date>)` with `check if time($t), $t < <date>`.
//!
//! Identity and tenant are read only from the authority block: the authorizer's queries
//! trust the authority block and the authorizer alone, so a fact appended in a later block
//! (say `tenant("<other>")`) grants nothing. Clients may attenuate: the authorizer supplies
//! `time(<now>)`, `operation("query" | "mutation" | "subscription")` and one
//! `root_field(<name>)` per root field, so a block with `check if operation("query")`
//! makes the token read-only. To restrict the root fields, check *all* of them:
//! `check all root_field($f), ["me", "devices"].contains($f)` (a plain
//! `check if root_field("me")` only requires `me` to be among them).

use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{AuthorizerBuilder, BlockBuilder};
use biscuit_auth::error::{Format, Logic, RunLimit, Token as TokenError};
use biscuit_auth::macros::{biscuit, fact};
use biscuit_auth::{AuthorizerLimits, Biscuit, UnverifiedBiscuit};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Role;
use super::keys::RootKeys;

/// Largest token accepted (base64 characters). Bigger ones are refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Limits of one authorization. Above the library default (1 ms), which denies valid
/// tokens spuriously when a loaded machine preempts the check, yet small enough that a
/// client appending expensive rules cannot hold a worker long.
pub const AUTHORIZER_LIMITS: AuthorizerLimits = AuthorizerLimits {
    max_facts: 1_000,
    max_iterations: 100,
    max_time: Duration::from_millis(20),
};

/// Most blocks a token may carry (the authority block plus attenuations).
pub const MAX_BLOCKS: usize = 8;

/// How the token was obtained; its id is what revocation checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A login session (`tokens` table).
    Session(Uuid),
    /// An API token (`api_tokens` table).
    ApiToken(Uuid),
    /// An impersonation by a platform admin (`public.impersonation_logs`).
    Impersonation(Uuid),
}

impl Credential {
    fn parts(self) -> (&'static str, Uuid) {
        match self {
            Self::Session(id) => ("session", id),
            Self::ApiToken(id) => ("api_token", id),
            Self::Impersonation(id) => ("impersonation", id),
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub role: Role,
    pub credential: Credential,
    /// Email of the platform admin acting through an impersonation token.
    pub impersonator: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The kind of GraphQL operation being authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Query,
    Mutation,
    Subscription,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Mutation => "mutation",
            Self::Subscription => "subscription",
        }
    }
}

/// Why a token was refused. `Display` is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("the token is too large")]
    TooLarge,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    #[error("the token has no expiry")]
    NoExpiry,
    #[error("the token has expired")]
    Expired,
    #[error("the token does not allow this operation")]
    Denied,
    /// The authorizer ran out of its time limit ([`AUTHORIZER_LIMITS`]): on a loaded
    /// machine even a valid token's checks can, so this says nothing of the token.
    #[error("the server was too busy to check the token in time")]
    Busy,
}

/// `otherwise`, unless `error` is the authorizer's time limit: [`TokenRefusal::Busy`].
fn refusal(error: &TokenError, otherwise: TokenRefusal) -> TokenRefusal {
    match error {
        TokenError::RunLimit(RunLimit::Timeout) => TokenRefusal::Busy,
        _ => otherwise,
    }
}

/// Mints a token for `claims`, signed with the current signing key.
pub fn mint(keys: &RootKeys, claims: &Claims) -> Result<String, TokenError> {
    let (key_id, key_pair) = keys.signer();
    let expires: SystemTime = claims.expires_at.into();
    let (kind, credential_id) = claims.credential.parts();
    let mut builder = biscuit!(
        r#"
        user({user});
        tenant({tenant});
        role({role});
        credential({kind}, {credential_id});
        expires({expires});
        check if time($time), $time < {expires};
        "#,
        user = claims.user_id.to_string(),
        tenant = claims.tenant_id.to_string(),
        role = claims.role.as_str(),
        kind = kind,
        credential_id = credential_id.to_string(),
        expires = expires,
    );
    if let Some(email) = &claims.impersonator {
        builder = builder.fact(fact!("impersonator({email})", email = email.as_str()))?;
    }
    builder.root_key_id(key_id).build(key_pair)?.to_base64()
}

/// Appends an attenuation block (Datalog checks) to a token, as a client holding only the
/// token (no key) would.
pub fn attenuate(token: &str, datalog: &str) -> Result<String, TokenError> {
    UnverifiedBiscuit::from_base64(token)?
        .append(BlockBuilder::new().code(datalog)?)?
        .to_base64()
}

/// A token whose signatures verified; not yet authorized for any operation.
pub struct VerifiedToken(Biscuit);

/// Checks size, format, key id and signatures. Does no database work.
pub fn verify(token: &str, keys: &RootKeys) -> Result<VerifiedToken, TokenRefusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenRefusal::TooLarge);
    }
    let biscuit = parse_verified(token, keys)?;
    if biscuit.block_count() > MAX_BLOCKS {
        return Err(TokenRefusal::TooLarge);
    }
    Ok(VerifiedToken(biscuit))
}

fn parse_verified(token: &str, keys: &RootKeys) -> Result<Biscuit, TokenRefusal> {
    Biscuit::from_base64(token, |key_id: Option<u32>| {
        keys.verifier(key_id).ok_or(Format::UnknownPublicKey)
    })
    .map_err(|error| match error {
        TokenError::Format(Format::UnknownPublicKey) => TokenRefusal::UnknownKey,
        TokenError::Format(Format::Signature(_)) => TokenRefusal::BadSignature,
        _ => TokenRefusal::Malformed,
    })
}

type Identity = (String, String, String, String, String);

impl VerifiedToken {
    /// Whether blocks were appended to the authority block.
    pub fn is_attenuated(&self) -> bool {
        self.0.block_count() > 1
    }

    /// Runs the authorizer for one operation and reads the claims from the authority block.
    pub fn authorize(&self, operation: Operation, root_fields: &[String]) -> Result<Claims, TokenRefusal> {
        self.authorize_at(operation, root_fields, SystemTime::now())
    }

    /// The claims of a valid, unexpired token without evaluating its attenuation checks:
    /// for a WebSocket handshake, before any operation (and its root fields) is known.
    /// Every operation on that connection is then authorized with [`Self::authorize`].
    pub fn identify(&self) -> Result<Claims, TokenRefusal> {
        self.evaluate(None, SystemTime::now())
    }

    fn authorize_at(
        &self,
        operation: Operation,
        root_fields: &[String],
        now: SystemTime,
    ) -> Result<Claims, TokenRefusal> {
        self.evaluate(Some((operation, root_fields)), now)
    }

    /// Reads the claims; with an operation, also runs every check of every block for it.
    fn evaluate(
        &self,
        operation: Option<(Operation, &[String])>,
        now: SystemTime,
    ) -> Result<Claims, TokenRefusal> {
        let mut builder = AuthorizerBuilder::new()
            .fact(fact!("time({now})", now = now))
            .map_err(|_| TokenRefusal::Malformed)?;
        if let Some((operation, root_fields)) = operation {
            builder = builder
                .fact(fact!("operation({op})", op = operation.as_str()))
                .map_err(|_| TokenRefusal::Malformed)?;
            for field in root_fields {
                builder = builder
                    .fact(fact!("root_field({field})", field = field.as_str()))
                    .map_err(|_| TokenRefusal::Denied)?;
            }
        }
        let mut authorizer = builder
            .policy("allow if user($user), tenant($tenant), role($role)")
            .map_err(|_| TokenRefusal::Malformed)?
            .set_limits(AUTHORIZER_LIMITS)
            .build(&self.0)
            .map_err(|error| refusal(&error, TokenRefusal::Malformed))?;

        let expiry: Vec<(SystemTime,)> = authorizer
            .query("data($e) <- expires($e)")
            .map_err(|error| refusal(&error, TokenRefusal::Malformed))?;
        let expires = match expiry.as_slice() {
            [] => return Err(TokenRefusal::NoExpiry),
            [(expires,)] => *expires,
            _ => return Err(TokenRefusal::Malformed),
        };
        if expires <= now {
            return Err(TokenRefusal::Expired);
        }
        if operation.is_some() {
            authorizer.authorize().map_err(|error| match error {
                // No identity in the authority block and nothing else failed: this is no
                // access token (for instance a tenant choice of `login`).
                TokenError::FailedLogic(Logic::NoMatchingPolicy { checks }) if checks.is_empty() => {
                    TokenRefusal::Malformed
                }
                // A check failed: an attenuation forbids this operation.
                other => refusal(&other, TokenRefusal::Denied),
            })?;
        }
        let identity: Vec<Identity> = authorizer
            .query(
                "data($user, $tenant, $role, $kind, $id) <- user($user), tenant($tenant), role($role), \
                 credential($kind, $id)",
            )
            .map_err(|error| refusal(&error, TokenRefusal::Malformed))?;
        let [(user, tenant, role, kind, credential_id)] = identity.as_slice() else {
            return Err(TokenRefusal::Malformed);
        };
        let impersonator: Vec<(String,)> = authorizer
            .query("data($e) <- impersonator($e)")
            .map_err(|error| refusal(&error, TokenRefusal::Malformed))?;
        let uuid = |raw: &str| Uuid::parse_str(raw).map_err(|_| TokenRefusal::Malformed);
        let credential_id = uuid(credential_id)?;
        let credential = match kind.as_str() {
            "session" => Credential::Session(credential_id),
            "api_token" => Credential::ApiToken(credential_id),
            "impersonation" => Credential::Impersonation(credential_id),
            _ => return Err(TokenRefusal::Malformed),
        };
        Ok(Claims {
            user_id: uuid(user)?,
            tenant_id: uuid(tenant)?,
            role: role.parse().map_err(|_| TokenRefusal::Malformed)?,
            credential,
            impersonator: impersonator.into_iter().next().map(|(e,)| e),
            expires_at: DateTime::<Utc>::from(expires),
        })
    }
}

/// Signs a tenant choice of a multi-tenant login: "this user may log in to this tenant
/// until `expires`". It carries no role or credential, so it is no access token.
pub fn mint_choice(
    keys: &RootKeys,
    tenant_id: Uuid,
    user_id: Uuid,
    expires: DateTime<Utc>,
) -> Result<String, TokenError> {
    let (key_id, key_pair) = keys.signer();
    let expires: SystemTime = expires.into();
    biscuit!(
        r#"
        tenant_choice({tenant}, {user});
        expires({expires});
        check if time($time), $time < {expires};
        "#,
        tenant = tenant_id.to_string(),
        user = user_id.to_string(),
        expires = expires,
    )
    .root_key_id(key_id)
    .build(key_pair)?
    .to_base64()
}

/// Verifies a tenant choice and returns (tenant id, user id).
pub fn read_choice(keys: &RootKeys, choice: &str) -> Result<(Uuid, Uuid), TokenRefusal> {
    if choice.len() > MAX_TOKEN_BYTES {
        return Err(TokenRefusal::TooLarge);
    }
    let biscuit = parse_verified(choice, keys)?;
    let mut authorizer = AuthorizerBuilder::new()
        .time()
        .policy("allow if tenant_choice($tenant, $user)")
        .map_err(|_| TokenRefusal::Malformed)?
        .set_limits(AUTHORIZER_LIMITS)
        .build(&biscuit)
        .map_err(|_| TokenRefusal::Malformed)?;
    authorizer.authorize().map_err(|_| TokenRefusal::Expired)?;
    let found: Vec<(String, String)> = authorizer
        .query("data($tenant, $user) <- tenant_choice($tenant, $user)")
        .map_err(|_| TokenRefusal::Malformed)?;
    let [(tenant, user)] = found.as_slice() else {
        return Err(TokenRefusal::Malformed);
    };
    let uuid = |raw: &str| Uuid::parse_str(raw).map_err(|_| TokenRefusal::Malformed);
    Ok((uuid(tenant)?, uuid(user)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authorizer_out_of_time_is_a_busy_server_not_a_refused_token() {
        let timeout = TokenError::RunLimit(RunLimit::Timeout);
        assert_eq!(refusal(&timeout, TokenRefusal::Denied), TokenRefusal::Busy);
        assert_eq!(refusal(&timeout, TokenRefusal::Malformed), TokenRefusal::Busy);
        let too_many = TokenError::RunLimit(RunLimit::TooManyFacts);
        assert_eq!(refusal(&too_many, TokenRefusal::Denied), TokenRefusal::Denied);
    }

    fn claims() -> Claims {
        Claims {
            user_id: Uuid::new_v4(),
            tenant_id: Uuid::new_v4(),
            role: Role::Admin,
            credential: Credential::Session(Uuid::new_v4()),
            impersonator: None,
            expires_at: Utc::now() + chrono::Duration::hours(1),
        }
    }

    fn fields(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_minted_token_round_trips_its_claims() {
        let (keys, _) = RootKeys::generate(7);
        let mut claims = claims();
        claims.impersonator = Some("root@platform.example".into());
        let token = mint(&keys, &claims).expect("mint");
        let verified = verify(&token, &keys).expect("verify");
        let got = verified
            .authorize(Operation::Mutation, &fields(&["createDevice"]))
            .expect("authorize");
        assert_eq!(got.user_id, claims.user_id);
        assert_eq!(got.tenant_id, claims.tenant_id);
        assert_eq!(got.role, Role::Admin);
        assert_eq!(got.credential, claims.credential);
        assert_eq!(got.impersonator, claims.impersonator);
        assert_eq!(got.expires_at.timestamp(), claims.expires_at.timestamp());
    }

    #[test]
    fn an_appended_tenant_fact_grants_nothing() {
        let (keys, _) = RootKeys::generate(1);
        let claims = claims();
        let token = mint(&keys, &claims).expect("mint");
        let other = Uuid::new_v4();
        let forged =
            attenuate(&token, &format!("tenant(\"{other}\"); role(\"platform_admin\");")).expect("append");
        let got = verify(&forged, &keys)
            .expect("verify")
            .authorize(Operation::Query, &fields(&["devices"]))
            .expect("authorize");
        assert_eq!(got.tenant_id, claims.tenant_id);
        assert_eq!(got.role, Role::Admin);
    }

    #[test]
    fn a_read_only_attenuation_refuses_mutations() {
        let (keys, _) = RootKeys::generate(1);
        let token = mint(&keys, &claims()).expect("mint");
        let read_only = attenuate(&token, "check if operation(\"query\");").expect("attenuate");
        let verified = verify(&read_only, &keys).expect("verify");
        assert!(
            verified
                .authorize(Operation::Query, &fields(&["devices"]))
                .is_ok()
        );
        assert_eq!(
            verified.authorize(Operation::Mutation, &fields(&["deleteDevice"])),
            Err(TokenRefusal::Denied)
        );
        let only_me =
            attenuate(&token, "check all root_field($f), [\"me\"].contains($f);").expect("attenuate");
        let verified = verify(&only_me, &keys).expect("verify");
        assert!(verified.authorize(Operation::Query, &fields(&["me"])).is_ok());
        for denied in [&["devices"][..], &["me", "devices"][..]] {
            assert_eq!(
                verified.authorize(Operation::Query, &fields(denied)),
                Err(TokenRefusal::Denied)
            );
        }
        let mut many = token.clone();
        for _ in 0..MAX_BLOCKS {
            many = attenuate(&many, "check if true;").expect("attenuate");
        }
        assert_eq!(verify(&many, &keys).err(), Some(TokenRefusal::TooLarge));
    }

    #[test]
    fn a_tenant_choice_round_trips_and_is_no_access_token() {
        let (keys, _) = RootKeys::generate(1);
        let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
        let choice =
            mint_choice(&keys, tenant, user, Utc::now() + chrono::Duration::minutes(5)).expect("mint");
        assert_eq!(read_choice(&keys, &choice), Ok((tenant, user)));
        let as_access = verify(&choice, &keys)
            .expect("signature")
            .authorize(Operation::Query, &[]);
        assert!(as_access.is_err());
        let stale =
            mint_choice(&keys, tenant, user, Utc::now() - chrono::Duration::seconds(1)).expect("mint");
        assert!(read_choice(&keys, &stale).is_err());
    }

    #[test]
    fn expired_tampered_unknown_key_and_oversized_tokens_are_refused() {
        let (keys, _) = RootKeys::generate(1);
        let mut expired = claims();
        expired.expires_at = Utc::now() - chrono::Duration::seconds(1);
        let token = mint(&keys, &expired).expect("mint");
        assert_eq!(
            verify(&token, &keys)
                .expect("verify")
                .authorize(Operation::Query, &[]),
            Err(TokenRefusal::Expired)
        );

        let token = mint(&keys, &claims()).expect("mint");
        let (other_keys, _) = RootKeys::generate(1);
        assert_eq!(
            verify(&token, &other_keys).err(),
            Some(TokenRefusal::BadSignature)
        );
        let (unknown_id, _) = RootKeys::generate(2);
        assert_eq!(verify(&token, &unknown_id).err(), Some(TokenRefusal::UnknownKey));

        let mut tampered = token.clone().into_bytes();
        let middle = tampered.len() / 2;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert!(verify(&tampered, &keys).is_err());
        assert_eq!(
            verify(&"A".repeat(MAX_TOKEN_BYTES + 1), &keys).err(),
            Some(TokenRefusal::TooLarge)
        );
        assert_eq!(verify("not a token", &keys).err(), Some(TokenRefusal::Malformed));
    }
}
