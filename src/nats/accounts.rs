//! The NATS operator and its accounts, as Enclave keeps them (decentralized auth).
//!
//! - one **operator** (`public.nats_operators`, named `enclave`), created on first use; its
//!   seed is sealed with the edge key (column `signing_key_ref`, purpose
//!   `nats-operator:<public key>`), like the CA keys;
//! - accounts in `public.nats_accounts`, each seed sealed likewise (`nats-account:<key>`):
//!   the **system** account, the **enclave** account (Enclave's own connection) and **one
//!   account per tenant**. Accounts are platform records: the operator signs them all, the
//!   server configuration lists them all (one query), and each tenant account's JWT names
//!   the enclave account it imports from — so they live in `public` next to the operator,
//!   while the users of a tenant (one per onboarded component) are recorded in the
//!   tenant's own `nats_credentials`.
//!
//! Subjects (see [`Subjects`]): a tenant account exports `<root>.pollers.heartbeat` and
//! `<root>.agents.heartbeat` and imports `<root>.alerts.changed`, `<root>.events.created`,
//! `<root>.devices.changed` from the enclave account, which exports those three for every
//! tenant (`<prefix.>*.alerts.changed`, …) and imports each tenant's heartbeats. So a
//! message on `acme.pollers.heartbeat` in the enclave account can only have come from
//! acme's account: the server enforces the mapping from account to subject root. A tenant
//! user is further limited to `<root>.>` (and `_INBOX.>`) by its own permissions.
//!
//! Revocations (user public key → unix time) are kept per account and signed into its JWT;
//! a suspended tenant's JWT also revokes `*` (every user issued before now), which disables
//! the account until it is re-signed after resuming. A dropped tenant's account stays,
//! detached from any tenant, signed with `*` revoked and no imports, so that a new tenant of
//! the same slug never feeds the old tenant's users.

use std::collections::BTreeMap;

use diesel::sql_types::{Array, BigInt, Text, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use nkeys::KeyPair;
use uuid::Uuid;

use super::Subjects;
use super::jwt::{self, AccountSpec, JwtError, UserSpec};
use crate::edge::keys::{EdgeKey, EdgeKeyError};

/// Advisory lock that serialises creating the operator between concurrent starts.
const OPERATOR_LOCK_KEY: i64 = 0x656e_6e61_7473_6f70; // "ennatsop"
/// Name of Enclave's operator row.
const OPERATOR_NAME: &str = "enclave";

/// Why an operator or account operation failed (for operators and logs, never clients).
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Key(#[from] EdgeKeyError),
    #[error("{0}")]
    Jwt(#[from] JwtError),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("a stored NATS key is not valid: {0}")]
    BadSeed(String),
    #[error("the {0} NATS account is missing")]
    MissingAccount(&'static str),
    #[error("stored NATS revocations are unreadable: {0}")]
    BadRevocations(String),
    #[error("tenant {0} has no NATS account")]
    NoTenantAccount(Uuid),
}

/// An account JWT to hand to the NATS resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountJwt {
    pub public_key: String,
    pub jwt: String,
}

/// A user issued for a component: its public key, JWT and `.creds` file.
#[derive(Debug, Clone)]
pub struct IssuedUser {
    pub public_key: String,
    pub jwt: String,
    pub creds: String,
}

/// The operator and the platform accounts, loaded (see the module doc).
pub struct NatsAuthority {
    key: EdgeKey,
    subjects: Subjects,
    operator_id: Uuid,
    operator: KeyPair,
    system: KeyPair,
    enclave: KeyPair,
}

impl std::fmt::Debug for NatsAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAuthority")
            .field("operator", &self.operator.public_key())
            .field("subjects", &self.subjects)
            .finish_non_exhaustive()
    }
}

fn operator_purpose(public_key: &str) -> String {
    format!("nats-operator:{public_key}")
}

fn account_purpose(public_key: &str) -> String {
    format!("nats-account:{public_key}")
}

#[derive(QueryableByName)]
struct OperatorRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    public_key: String,
    #[diesel(sql_type = Text)]
    signing_key_ref: String,
}

#[derive(QueryableByName)]
struct AccountRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    public_key: String,
    #[diesel(sql_type = Text)]
    seed_sealed: String,
}

#[derive(QueryableByName)]
struct TenantAccountRow {
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
    #[diesel(sql_type = Text)]
    slug: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    public_key: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    seed_sealed: Option<String>,
    #[diesel(sql_type = Text)]
    revocations: String,
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    public_key: String,
}

#[derive(QueryableByName)]
struct JwtRow {
    #[diesel(sql_type = Text)]
    public_key: String,
    #[diesel(sql_type = Text)]
    jwt: String,
}

impl NatsAuthority {
    /// Loads the operator and the system and enclave accounts, creating them on first use
    /// (under an advisory lock, so concurrent starts agree on one operator).
    pub async fn load_or_init(
        conn: &mut AsyncPgConnection,
        key: EdgeKey,
        subjects: Subjects,
    ) -> Result<Self, AccountError> {
        let (operator_id, operator, system, enclave) = conn
            .transaction(async |conn| {
                sql_query("SELECT pg_advisory_xact_lock($1)")
                    .bind::<BigInt, _>(OPERATOR_LOCK_KEY)
                    .execute(conn)
                    .await?;
                let found: Vec<OperatorRow> = sql_query(
                    "SELECT id, public_key, signing_key_ref FROM public.nats_operators WHERE name = $1",
                )
                .bind::<Text, _>(OPERATOR_NAME)
                .load(conn)
                .await?;
                if let Some(row) = found.into_iter().next() {
                    let operator = open_seed(&key, &operator_purpose(&row.public_key), &row.signing_key_ref)?;
                    let accounts: Vec<AccountRow> = sql_query(
                        "SELECT kind, public_key, seed_sealed FROM public.nats_accounts \
                         WHERE operator_id = $1 AND kind IN ('system', 'enclave')",
                    )
                    .bind::<SqlUuid, _>(row.id)
                    .load(conn)
                    .await?;
                    let find = |kind: &'static str| {
                        accounts
                            .iter()
                            .find(|a| a.kind == kind)
                            .ok_or(AccountError::MissingAccount(kind))
                            .and_then(|a| open_seed(&key, &account_purpose(&a.public_key), &a.seed_sealed))
                    };
                    return Ok::<_, AccountError>((row.id, operator, find("system")?, find("enclave")?));
                }
                let operator = KeyPair::new_operator();
                let system = KeyPair::new_account();
                let enclave = KeyPair::new_account();
                let operator_id: Uuid = {
                    #[derive(QueryableByName)]
                    struct Id {
                        #[diesel(sql_type = SqlUuid)]
                        id: Uuid,
                    }
                    let sealed = key.seal(&operator_purpose(&operator.public_key()), seed(&operator)?.as_bytes())?;
                    let ids: Vec<Id> = sql_query(
                        "INSERT INTO public.nats_operators (name, public_key, signing_key_ref) \
                         VALUES ($1, $2, $3) RETURNING id",
                    )
                    .bind::<Text, _>(OPERATOR_NAME)
                    .bind::<Text, _>(operator.public_key())
                    .bind::<Text, _>(sealed)
                    .load(conn)
                    .await?;
                    ids.into_iter().next().map(|row| row.id).ok_or(AccountError::MissingAccount("operator"))?
                };
                for (kind, account) in [("system", &system), ("enclave", &enclave)] {
                    let spec = AccountSpec {
                        name: kind.to_uppercase(),
                        public_key: account.public_key(),
                        ..AccountSpec::default()
                    };
                    sql_query(
                        "INSERT INTO public.nats_accounts (public_key, operator_id, kind, seed_sealed, jwt) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind::<Text, _>(account.public_key())
                    .bind::<SqlUuid, _>(operator_id)
                    .bind::<Text, _>(kind)
                    .bind::<Text, _>(key.seal(&account_purpose(&account.public_key()), seed(account)?.as_bytes())?)
                    .bind::<Text, _>(jwt::account(&spec, &operator)?)
                    .execute(conn)
                    .await?;
                }
                tracing::info!(operator = %operator.public_key(), "created the NATS operator and its system and enclave accounts");
                Ok((operator_id, operator, system, enclave))
            })
            .await?;
        Ok(Self {
            key,
            subjects,
            operator_id,
            operator,
            system,
            enclave,
        })
    }

    /// The subject naming of this installation.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Public key of the operator.
    pub fn operator_public_key(&self) -> String {
        self.operator.public_key()
    }

    /// Public key of the system account.
    pub fn system_account(&self) -> String {
        self.system.public_key()
    }

    /// Public key of the enclave account (Enclave's own connection).
    pub fn enclave_account(&self) -> String {
        self.enclave.public_key()
    }

    /// The operator JWT (self-signed, naming the system account).
    pub fn operator_jwt(&self) -> Result<String, AccountError> {
        Ok(jwt::operator(
            &self.operator,
            OPERATOR_NAME,
            &self.system.public_key(),
        )?)
    }

    /// Creates the accounts of tenants that have none, then re-signs every tenant account
    /// (revocations, suspension) and the enclave account (its imports name every tenant);
    /// returns the JWTs to hand to the resolver.
    pub async fn sync_accounts(&self, conn: &mut AsyncPgConnection) -> Result<Vec<AccountJwt>, AccountError> {
        conn.transaction(async |conn| {
            sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(OPERATOR_LOCK_KEY)
                .execute(conn)
                .await?;
            let rows: Vec<TenantAccountRow> = sql_query(
                "SELECT t.id AS tenant_id, t.slug, t.status, a.public_key, a.seed_sealed, \
                        COALESCE(a.revocations, '{}'::jsonb)::text AS revocations \
                 FROM public.tenants t LEFT JOIN public.nats_accounts a ON a.tenant_id = t.id \
                 ORDER BY t.slug",
            )
            .load(conn)
            .await?;
            let mut signed = Vec::with_capacity(rows.len() + 1);
            let mut tenants = Vec::with_capacity(rows.len());
            for row in rows {
                let public_key = match &row.public_key {
                    Some(public_key) => {
                        // Checks that the stored seed still opens with the edge key.
                        if let Some(sealed) = &row.seed_sealed {
                            open_seed(&self.key, &account_purpose(public_key), sealed)?;
                        }
                        public_key.clone()
                    }
                    None => {
                        let account = KeyPair::new_account();
                        let public_key = account.public_key();
                        sql_query(
                            "INSERT INTO public.nats_accounts \
                             (public_key, operator_id, kind, tenant_id, seed_sealed, jwt) \
                             VALUES ($1, $2, 'tenant', $3, $4, '')",
                        )
                        .bind::<Text, _>(&public_key)
                        .bind::<SqlUuid, _>(self.operator_id)
                        .bind::<SqlUuid, _>(row.tenant_id)
                        .bind::<Text, _>(
                            self.key
                                .seal(&account_purpose(&public_key), seed(&account)?.as_bytes())?,
                        )
                        .execute(conn)
                        .await?;
                        public_key
                    }
                };
                let revocations: BTreeMap<String, i64> = serde_json::from_str(&row.revocations)
                    .map_err(|e| AccountError::BadRevocations(e.to_string()))?;
                let jwt =
                    self.tenant_account_jwt(&row.slug, &public_key, revocations, row.status == "suspended")?;
                tenants.push((row.slug, public_key.clone()));
                signed.push(AccountJwt { public_key, jwt });
            }
            // Accounts of dropped tenants: disabled, importing nothing.
            let dropped: Vec<KeyRow> = sql_query(
                "SELECT public_key FROM public.nats_accounts \
                 WHERE operator_id = $1 AND kind = 'tenant' AND tenant_id IS NULL",
            )
            .bind::<SqlUuid, _>(self.operator_id)
            .load(conn)
            .await?;
            for row in dropped {
                let spec = AccountSpec {
                    name: "dropped tenant".to_owned(),
                    public_key: row.public_key.clone(),
                    revocations: BTreeMap::from([("*".to_owned(), chrono::Utc::now().timestamp())]),
                    ..AccountSpec::default()
                };
                signed.push(AccountJwt {
                    jwt: jwt::account(&spec, &self.operator)?,
                    public_key: row.public_key,
                });
            }
            signed.push(AccountJwt {
                public_key: self.enclave.public_key(),
                jwt: self.enclave_account_jwt(&tenants)?,
            });
            let (keys, jwts): (Vec<String>, Vec<String>) = signed
                .iter()
                .map(|a| (a.public_key.clone(), a.jwt.clone()))
                .unzip();
            sql_query(
                "UPDATE public.nats_accounts a SET jwt = u.jwt, updated_at = now() \
                 FROM unnest($1::text[], $2::text[]) AS u(public_key, jwt) WHERE a.public_key = u.public_key",
            )
            .bind::<Array<Text>, _>(&keys)
            .bind::<Array<Text>, _>(&jwts)
            .execute(conn)
            .await?;
            Ok(signed)
        })
        .await
    }

    fn tenant_account_jwt(
        &self,
        slug: &str,
        public_key: &str,
        mut revocations: BTreeMap<String, i64>,
        suspended: bool,
    ) -> Result<String, AccountError> {
        if suspended {
            revocations.insert("*".to_owned(), chrono::Utc::now().timestamp());
        }
        let enclave = self.enclave.public_key();
        let spec = AccountSpec {
            name: slug.to_owned(),
            public_key: public_key.to_owned(),
            exports: super::HEARTBEATS
                .iter()
                .map(|kind| self.subjects.tenant(slug, kind))
                .collect(),
            imports: super::PUBLISHED
                .iter()
                .map(|kind| (self.subjects.tenant(slug, kind), enclave.clone()))
                .collect(),
            revocations,
            jetstream: true,
        };
        Ok(jwt::account(&spec, &self.operator)?)
    }

    fn enclave_account_jwt(&self, tenants: &[(String, String)]) -> Result<String, AccountError> {
        let spec = AccountSpec {
            name: "ENCLAVE".to_owned(),
            public_key: self.enclave.public_key(),
            exports: super::PUBLISHED
                .iter()
                .map(|kind| self.subjects.any_tenant(kind))
                .collect(),
            imports: tenants
                .iter()
                .flat_map(|(slug, account)| {
                    super::HEARTBEATS
                        .iter()
                        .map(move |kind| (self.subjects.tenant(slug, kind), account.clone()))
                })
                .collect(),
            ..AccountSpec::default()
        };
        Ok(jwt::account(&spec, &self.operator)?)
    }

    /// Every account JWT as stored (after [`Self::sync_accounts`]).
    pub async fn account_jwts(&self, conn: &mut AsyncPgConnection) -> Result<Vec<AccountJwt>, AccountError> {
        let rows: Vec<JwtRow> = sql_query(
            "SELECT public_key, jwt FROM public.nats_accounts WHERE operator_id = $1 AND jwt <> '' \
             ORDER BY kind, public_key",
        )
        .bind::<SqlUuid, _>(self.operator_id)
        .load(conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| AccountJwt {
                public_key: row.public_key,
                jwt: row.jwt,
            })
            .collect())
    }

    /// The nats-server configuration: operator, system account, resolver with every
    /// account preloaded. `resolver_dir`: the full (directory) resolver, which also takes
    /// accounts created later; else `MEMORY`, which needs a reload for new tenants.
    pub async fn server_config(
        &self,
        conn: &mut AsyncPgConnection,
        resolver_dir: Option<&str>,
    ) -> Result<String, AccountError> {
        self.sync_accounts(conn).await?;
        let accounts = self.account_jwts(conn).await?;
        let mut out = String::from(
            "# NATS server configuration for Enclave (`enclave nats config`): one operator,\n\
             # a system account, Enclave's account and one account per tenant.\n",
        );
        out.push_str(&format!("operator: {}\n", self.operator_jwt()?));
        out.push_str(&format!("system_account: {}\n", self.system.public_key()));
        match resolver_dir {
            Some(dir) => out.push_str(&format!(
                "resolver: {{\n  type: full\n  dir: {}\n  allow_delete: false\n}}\n",
                serde_json::to_string(dir).unwrap_or_default()
            )),
            None => out.push_str("resolver: MEMORY\n"),
        }
        out.push_str("resolver_preload: {\n");
        for account in &accounts {
            out.push_str(&format!("  {}: {}\n", account.public_key, account.jwt));
        }
        out.push_str("}\n");
        Ok(out)
    }

    /// Credentials for Enclave's own connection (a user of the enclave account, not stored).
    pub fn enclave_creds(&self) -> Result<String, AccountError> {
        user_creds(&self.enclave, "enclave")
    }

    /// Credentials of a system-account user, for pushing account JWTs (not stored).
    pub fn system_creds(&self) -> Result<String, AccountError> {
        user_creds(&self.system, "enclave-system")
    }

    /// A user of tenant `tenant_id`'s account limited to the tenant's subjects, named
    /// `name`, valid until `expires` (unix time).
    pub async fn issue_tenant_user(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        slug: &str,
        name: &str,
        expires: Option<i64>,
    ) -> Result<IssuedUser, AccountError> {
        let rows: Vec<AccountRow> =
            sql_query("SELECT kind, public_key, seed_sealed FROM public.nats_accounts WHERE tenant_id = $1")
                .bind::<SqlUuid, _>(tenant_id)
                .load(conn)
                .await?;
        let row = rows
            .into_iter()
            .next()
            .ok_or(AccountError::NoTenantAccount(tenant_id))?;
        let account = open_seed(&self.key, &account_purpose(&row.public_key), &row.seed_sealed)?;
        let user = KeyPair::new_user();
        let root = self.subjects.tenant_root(slug);
        let spec = UserSpec {
            name: name.to_owned(),
            public_key: user.public_key(),
            publish: vec![format!("{root}.>")],
            subscribe: vec![format!("{root}.>"), "_INBOX.>".to_owned()],
            expires,
        };
        let token = jwt::user(&spec, &account)?;
        Ok(IssuedUser {
            public_key: user.public_key(),
            creds: jwt::creds(&token, &seed(&user)?),
            jwt: token,
        })
    }

    /// Adds `users` to the revocations of tenant `tenant_id`'s account and re-signs it (one
    /// transaction, serialised with [`Self::sync_accounts`] so that neither overwrites the
    /// other's JWT with a stale one).
    pub async fn revoke_users(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        users: &[String],
    ) -> Result<AccountJwt, AccountError> {
        conn.transaction(async |conn| {
            sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(OPERATOR_LOCK_KEY)
                .execute(conn)
                .await?;
            record_revocations(conn, tenant_id, users).await?;
            self.resign_locked(conn, tenant_id).await
        })
        .await
    }

    /// Re-signs tenant `tenant_id`'s account from its stored revocations and status (after a
    /// revocation, a suspension or a resumption).
    pub async fn resign_tenant(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
    ) -> Result<AccountJwt, AccountError> {
        conn.transaction(async |conn| {
            sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(OPERATOR_LOCK_KEY)
                .execute(conn)
                .await?;
            self.resign_locked(conn, tenant_id).await
        })
        .await
    }

    async fn resign_locked(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
    ) -> Result<AccountJwt, AccountError> {
        let rows: Vec<TenantAccountRow> = sql_query(
            "SELECT t.id AS tenant_id, t.slug, t.status, a.public_key, a.seed_sealed, \
                    a.revocations::text AS revocations \
             FROM public.tenants t JOIN public.nats_accounts a ON a.tenant_id = t.id WHERE t.id = $1",
        )
        .bind::<SqlUuid, _>(tenant_id)
        .load(conn)
        .await?;
        let row = rows
            .into_iter()
            .next()
            .ok_or(AccountError::NoTenantAccount(tenant_id))?;
        let public_key = row.public_key.ok_or(AccountError::NoTenantAccount(tenant_id))?;
        let revocations: BTreeMap<String, i64> = serde_json::from_str(&row.revocations)
            .map_err(|e| AccountError::BadRevocations(e.to_string()))?;
        let jwt = self.tenant_account_jwt(&row.slug, &public_key, revocations, row.status == "suspended")?;
        sql_query("UPDATE public.nats_accounts SET jwt = $2, updated_at = now() WHERE public_key = $1")
            .bind::<Text, _>(&public_key)
            .bind::<Text, _>(&jwt)
            .execute(conn)
            .await?;
        Ok(AccountJwt { public_key, jwt })
    }
}

/// Adds `users` to the stored revocations of tenant `tenant_id`'s account without signing
/// (NATS not configured on this server: no key at hand); the next [`NatsAuthority::sync_accounts`]
/// signs them in. Nothing happens when the tenant has no account.
pub async fn record_revocations(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    users: &[String],
) -> Result<(), AccountError> {
    let now = chrono::Utc::now().timestamp();
    let entries: BTreeMap<&str, i64> = users.iter().map(|user| (user.as_str(), now)).collect();
    sql_query(
        "UPDATE public.nats_accounts SET revocations = revocations || $2::jsonb, updated_at = now() \
         WHERE tenant_id = $1",
    )
    .bind::<SqlUuid, _>(tenant_id)
    .bind::<Text, _>(serde_json::json!(entries).to_string())
    .execute(conn)
    .await?;
    Ok(())
}

fn seed(pair: &KeyPair) -> Result<String, AccountError> {
    pair.seed().map_err(|e| AccountError::BadSeed(e.to_string()))
}

fn open_seed(key: &EdgeKey, purpose: &str, sealed: &str) -> Result<KeyPair, AccountError> {
    let seed =
        String::from_utf8(key.open(purpose, sealed)?).map_err(|e| AccountError::BadSeed(e.to_string()))?;
    KeyPair::from_seed(&seed).map_err(|e| AccountError::BadSeed(e.to_string()))
}

fn user_creds(account: &KeyPair, name: &str) -> Result<String, AccountError> {
    let user = KeyPair::new_user();
    let spec = UserSpec {
        name: name.to_owned(),
        public_key: user.public_key(),
        ..UserSpec::default()
    };
    let token = jwt::user(&spec, account)?;
    Ok(jwt::creds(&token, &seed(&user)?))
}
