//! Certificate authorities of the edge.
//!
//! - the **platform root CA** (`public.edge_root_cas`): created on first start, its key
//!   sealed with the edge key; it signs only tenant CAs (path length 1);
//! - one **intermediate CA per tenant** (the tenant's `tenant_cas`): signed by the root,
//!   path length 0 and a DNS name constraint `<tenant label>.<edge domain>`, so it can sign
//!   only leaf certificates, and only for its own tenant's names. Created in the
//!   provisioning transaction ([`EdgeAuthority::insert_tenant_ca`]); tenants that have none
//!   get one at startup ([`EdgeAuthority::ensure_tenant_cas`]);
//! - **component certificates** ([`TenantCa::issue_component`]): CN and DNS SAN
//!   `<component-id>.<tenant label>.<edge domain>`, SAN URI
//!   `enclave://<tenant-slug>/<kind>/<component-id>`, 90 days.
//!
//! The tenant label is the slug with `_` written `-` (DNS names have no `_`; slugs have no
//! `-`, so the mapping is one to one). Keys are ECDSA P-256.

use std::fmt;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Nullable, Text, Timestamptz};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, GeneralSubtree,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use super::keys::{EdgeKey, EdgeKeyError};
use crate::db::quote_ident;
use crate::tenancy::slug::Slug;

/// Lifetime of the root CA.
const ROOT_DAYS: i64 = 3650;
/// Lifetime of a tenant CA (never past the root's end).
const TENANT_CA_DAYS: i64 = 1825;
/// Lifetime of a component certificate.
pub const COMPONENT_DAYS: i64 = 90;
/// Advisory lock that serialises creating the root CA between concurrent starts.
const ROOT_LOCK_KEY: i64 = 0x656e_6564_6765_7263; // "enedgerc"

/// Why a certificate operation failed. Messages are for operators, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Key(#[from] EdgeKeyError),
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("no randomness available")]
    Random,
    #[error("the tenant has no active certificate authority")]
    NoTenantCa,
    #[error("invalid component id {0:?}: 1 to 63 of a-z, 0-9 and -, not starting or ending with -")]
    InvalidComponentId(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("not a PEM certificate signing request with a valid signature and a supported key")]
    InvalidCsr,
}

/// What a component is; the closed set of the API's `EdgeComponentKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComponentKind {
    Agent,
    Poller,
    Checker,
    Collector,
}

impl ComponentKind {
    /// The lower-case name used in certificates, URIs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Poller => "poller",
            Self::Checker => "checker",
            Self::Collector => "collector",
        }
    }

    /// The inverse of [`ComponentKind::as_str`].
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Agent, Self::Poller, Self::Checker, Self::Collector]
            .into_iter()
            .find(|kind| kind.as_str() == raw)
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The DNS label of a tenant: its slug with `_` written `-` (see the module doc).
pub fn tenant_label(slug: &str) -> String {
    slug.replace('_', "-")
}

/// Whether `id` is a valid component id (one DNS label, lower case).
pub fn valid_component_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && !id.starts_with('-')
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The names a component certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentName {
    pub tenant_slug: String,
    pub kind: ComponentKind,
    pub component_id: String,
}

impl ComponentName {
    /// The certificate's CN (also its DNS SAN).
    pub fn common_name(&self, domain: &str) -> String {
        format!(
            "{}.{}.{domain}",
            self.component_id,
            tenant_label(&self.tenant_slug)
        )
    }

    /// The certificate's SAN URI.
    pub fn uri(&self) -> String {
        format!(
            "enclave://{}/{}/{}",
            self.tenant_slug, self.kind, self.component_id
        )
    }
}

fn random_serial() -> Result<SerialNumber, EdgeError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| EdgeError::Random)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_chrono(at: OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(at.unix_timestamp(), 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn to_time(at: DateTime<Utc>) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(at.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// A CA certificate with its sealed key, as stored.
#[derive(Debug, Clone)]
pub struct StoredCa {
    pub certificate_pem: String,
    pub key_sealed: String,
    /// Subject key identifier, hex.
    pub key_identifier: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct CaRow {
    #[diesel(sql_type = Text)]
    certificate_pem: String,
    #[diesel(sql_type = Nullable<Text>)]
    key_sealed: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    key_identifier: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    not_before: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    not_after: DateTime<Utc>,
}

impl CaRow {
    fn into_stored(self) -> Option<StoredCa> {
        Some(StoredCa {
            certificate_pem: self.certificate_pem,
            key_sealed: self.key_sealed?,
            key_identifier: self.key_identifier?,
            not_before: self.not_before,
            not_after: self.not_after,
        })
    }
}

fn root_purpose() -> &'static str {
    "edge-root-ca"
}

fn tenant_purpose(slug: &str) -> String {
    format!("tenant-ca:{slug}")
}

/// The platform root CA, its key decrypted in memory, and the settings to issue with.
pub struct EdgeAuthority {
    key: EdgeKey,
    domain: String,
    endpoint: String,
    listen: String,
    root: StoredCa,
    root_key: KeyPair,
}

impl fmt::Debug for EdgeAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeAuthority")
            .field("domain", &self.domain)
            .field("root_key_identifier", &self.root.key_identifier)
            .finish_non_exhaustive()
    }
}

impl EdgeAuthority {
    /// Loads the active root CA from `public.edge_root_cas`, creating it when there is none
    /// (under an advisory lock, so concurrent first starts create one).
    pub async fn load_or_init(
        conn: &mut AsyncPgConnection,
        key: EdgeKey,
        domain: String,
    ) -> Result<Self, EdgeError> {
        let root = conn
            .transaction(async |conn| {
                sql_query("SELECT pg_advisory_xact_lock($1)")
                    .bind::<diesel::sql_types::BigInt, _>(ROOT_LOCK_KEY)
                    .execute(conn)
                    .await?;
                let found: Vec<CaRow> = sql_query(
                    "SELECT certificate_pem, key_sealed, key_identifier, not_before, not_after \
                     FROM public.edge_root_cas WHERE retired_at IS NULL",
                )
                .load(conn)
                .await?;
                if let Some(root) = found.into_iter().find_map(CaRow::into_stored) {
                    return Ok::<_, EdgeError>(root);
                }
                let root = new_root(&key)?;
                sql_query(
                    "INSERT INTO public.edge_root_cas \
                     (certificate_pem, key_sealed, key_identifier, not_before, not_after) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind::<Text, _>(&root.certificate_pem)
                .bind::<Text, _>(&root.key_sealed)
                .bind::<Text, _>(&root.key_identifier)
                .bind::<Timestamptz, _>(root.not_before)
                .bind::<Timestamptz, _>(root.not_after)
                .execute(conn)
                .await?;
                tracing::info!(key_identifier = %root.key_identifier, "created the edge root CA");
                Ok(root)
            })
            .await?;
        Self::from_root(key, domain, root)
    }

    /// An authority with a new root CA that is stored nowhere (tests, tools).
    pub fn ephemeral(key: EdgeKey, domain: String) -> Result<Self, EdgeError> {
        let root = new_root(&key)?;
        Self::from_root(key, domain, root)
    }

    fn from_root(key: EdgeKey, domain: String, root: StoredCa) -> Result<Self, EdgeError> {
        let root_key = KeyPair::from_pem(&String::from_utf8_lossy(
            &key.open(root_purpose(), &root.key_sealed)?,
        ))?;
        Ok(Self {
            key,
            domain,
            endpoint: "https://127.0.0.1:8443".to_owned(),
            listen: "127.0.0.1:8443".to_owned(),
            root,
            root_key,
        })
    }

    /// A certificate for the edge listener itself, signed by the root (which every
    /// package's `ca-chain.pem` holds), valid for `names` (DNS names or IP addresses).
    /// Returns the certificate and key, PEM; made at every start, never stored.
    pub fn issue_server_certificate(&self, names: Vec<String>) -> Result<(String, String), EdgeError> {
        let issuer = Issuer::from_ca_cert_pem(&self.root.certificate_pem, &self.root_key)?;
        let key = KeyPair::generate()?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Enclave edge endpoint {}", self.domain),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = (now + days(COMPONENT_DAYS)).min(to_time(self.root.not_after));
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let certificate = params.signed_by(&key, &issuer)?;
        Ok((certificate.pem(), key.serialize_pem()))
    }

    /// Sets the address of the edge listener (`ENCLAVE_EDGE_LISTEN`).
    pub fn with_listen(mut self, listen: String) -> Self {
        self.listen = listen;
        self
    }

    /// The address of the edge listener (`ENCLAVE_EDGE_LISTEN`).
    pub fn listen(&self) -> &str {
        &self.listen
    }

    /// Sets the URL packages tell components to report to.
    pub fn with_endpoint(mut self, endpoint: String) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// The URL packages tell components to report to (`ENCLAVE_EDGE_ENDPOINT`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The root CA's stored form.
    pub fn root(&self) -> &StoredCa {
        &self.root
    }

    /// The edge domain (`ENCLAVE_EDGE_DOMAIN`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The root CA certificate (PEM).
    pub fn root_pem(&self) -> &str {
        &self.root.certificate_pem
    }

    /// A new intermediate CA for `slug`, signed by the root (not stored).
    pub fn new_tenant_ca(&self, slug: &Slug) -> Result<StoredCa, EdgeError> {
        let issuer = Issuer::from_ca_cert_pem(&self.root.certificate_pem, &self.root_key)?;
        let key = KeyPair::generate()?;
        let now = OffsetDateTime::now_utc();
        let label = tenant_label(slug.as_str());
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Enclave tenant {slug} CA"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Enclave");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, slug.as_str());
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName(format!("{label}.{}", self.domain))],
            excluded_subtrees: Vec::new(),
        });
        params.not_before = now - time::Duration::hours(1);
        params.not_after = (now + days(TENANT_CA_DAYS)).min(to_time(self.root.not_after));
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let key_identifier = hex(&params.key_identifier(&key));
        let certificate = params.signed_by(&key, &issuer)?;
        Ok(StoredCa {
            certificate_pem: certificate.pem(),
            key_sealed: self
                .key
                .seal(&tenant_purpose(slug.as_str()), key.serialize_pem().as_bytes())?,
            key_identifier,
            not_before: to_chrono(params.not_before),
            not_after: to_chrono(params.not_after),
        })
    }

    /// Creates and stores the tenant's CA in its schema, on an owner connection (inside the
    /// caller's transaction when there is one: provisioning).
    pub async fn insert_tenant_ca(
        &self,
        conn: &mut AsyncPgConnection,
        slug: &Slug,
    ) -> Result<StoredCa, EdgeError> {
        let ca = self.new_tenant_ca(slug)?;
        sql_query(format!(
            "INSERT INTO {}.tenant_cas \
             (name, certificate_pem, private_key_ref, key_sealed, key_identifier, not_before, not_after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            quote_ident(&slug.schema_name())
        ))
        .bind::<Text, _>(format!("intermediate-{}", ca.key_identifier))
        .bind::<Text, _>(&ca.certificate_pem)
        .bind::<Text, _>(format!("sealed:edge-key:{}", self.key.id()))
        .bind::<Text, _>(&ca.key_sealed)
        .bind::<Text, _>(&ca.key_identifier)
        .bind::<Timestamptz, _>(ca.not_before)
        .bind::<Timestamptz, _>(ca.not_after)
        .execute(conn)
        .await?;
        Ok(ca)
    }

    /// Gives every tenant without an active CA one (startup, on an owner connection);
    /// returns how many were created.
    pub async fn ensure_tenant_cas(&self, conn: &mut AsyncPgConnection) -> Result<usize, EdgeError> {
        #[derive(QueryableByName)]
        struct SlugRow {
            #[diesel(sql_type = Text)]
            slug: String,
        }
        let slugs: Vec<SlugRow> = sql_query("SELECT slug FROM public.tenants ORDER BY slug")
            .load(conn)
            .await?;
        // One statement finds the tenants without an active CA (usually none at all), so
        // a start with a fleet that has its CAs costs two queries, not one per tenant.
        let candidates: Vec<Slug> = slugs
            .iter()
            .filter_map(|row| Slug::parse(&row.slug).ok())
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let missing_sql = candidates
            .iter()
            .map(|slug| {
                format!(
                    "SELECT '{slug}'::text AS slug WHERE NOT EXISTS (SELECT 1 FROM {}.tenant_cas \
                     WHERE revoked_at IS NULL AND key_sealed IS NOT NULL AND not_after > now())",
                    quote_ident(&slug.schema_name())
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let missing: Vec<SlugRow> = sql_query(missing_sql).load(conn).await?;
        let mut created = 0;
        for row in missing {
            let Ok(slug) = Slug::parse(&row.slug) else {
                continue;
            };
            let schema = quote_ident(&slug.schema_name());
            let inserted = conn
                .transaction(async |conn| {
                    // Serialises with a concurrent start doing the same.
                    sql_query(format!("LOCK TABLE {schema}.tenant_cas IN EXCLUSIVE MODE"))
                        .execute(conn)
                        .await?;
                    if self.load_tenant_ca_stored(conn, &slug).await?.is_some() {
                        return Ok::<_, EdgeError>(false);
                    }
                    self.insert_tenant_ca(conn, &slug).await?;
                    Ok(true)
                })
                .await?;
            if inserted {
                tracing::info!(tenant = %slug, "created the tenant's edge CA");
                created += 1;
            }
        }
        Ok(created)
    }

    async fn load_tenant_ca_stored(
        &self,
        conn: &mut AsyncPgConnection,
        slug: &Slug,
    ) -> Result<Option<StoredCa>, EdgeError> {
        let rows: Vec<CaRow> = sql_query(format!(
            "SELECT certificate_pem, key_sealed, key_identifier, not_before, not_after \
             FROM {}.tenant_cas WHERE revoked_at IS NULL AND key_sealed IS NOT NULL \
             AND not_after > now() ORDER BY not_after DESC",
            quote_ident(&slug.schema_name())
        ))
        .load(conn)
        .await?;
        Ok(rows.into_iter().find_map(CaRow::into_stored))
    }

    /// Unseals a stored tenant CA for issuing.
    pub fn open_tenant_ca(&self, slug: &Slug, stored: StoredCa) -> Result<TenantCa, EdgeError> {
        let key_pem = self
            .key
            .open(&tenant_purpose(slug.as_str()), &stored.key_sealed)?;
        let key = KeyPair::from_pem(&String::from_utf8_lossy(&key_pem))?;
        Ok(TenantCa {
            slug: slug.as_str().to_owned(),
            domain: self.domain.clone(),
            root_pem: self.root.certificate_pem.clone(),
            stored,
            key,
        })
    }
}

fn new_root(key: &EdgeKey) -> Result<StoredCa, EdgeError> {
    let pair = KeyPair::generate()?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Enclave Edge Root CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Enclave");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + days(ROOT_DAYS);
    params.serial_number = Some(random_serial()?);
    let key_identifier = hex(&params.key_identifier(&pair));
    let certificate = params.self_signed(&pair)?;
    Ok(StoredCa {
        certificate_pem: certificate.pem(),
        key_sealed: key.seal(root_purpose(), pair.serialize_pem().as_bytes())?,
        key_identifier,
        not_before: to_chrono(params.not_before),
        not_after: to_chrono(params.not_after),
    })
}

/// Hex of a certificate's authority key identifier (the issuing CA's subject key
/// identifier), if it has one.
pub fn authority_key_identifier(der: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(der).ok()?;
    parsed
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| hex(k.0))
            }
            _ => None,
        })
}

/// The public key of a verified certificate signing request.
pub struct CsrKey(rcgen::PublicKey);

/// Reads a PEM certificate signing request and checks its signature (which proves the
/// requester holds the key). Only its public key is kept: names, usages and validity of
/// the certificate are Enclave's, whatever the request asks for.
pub fn parse_csr(pem: &str) -> Result<CsrKey, EdgeError> {
    rcgen::CertificateSigningRequestParams::from_pem(pem)
        .map(|request| CsrKey(request.public_key))
        .map_err(|_| EdgeError::InvalidCsr)
}

/// A component certificate with its fresh key; the key is handed out, never stored.
pub struct IssuedComponent {
    pub certificate_pem: String,
    /// The new key, when Enclave generated it (none for a certificate signing request).
    pub key_pem: Option<String>,
    /// Serial number, hex.
    pub serial: String,
    pub common_name: String,
    pub not_after: DateTime<Utc>,
}

/// A tenant's CA, unsealed, able to issue component certificates.
pub struct TenantCa {
    slug: String,
    domain: String,
    root_pem: String,
    stored: StoredCa,
    key: KeyPair,
}

impl TenantCa {
    /// The tenant CA's certificate followed by the root's (what `ca-chain.pem` holds).
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.stored.certificate_pem, self.root_pem)
    }

    /// The tenant CA's stored form.
    pub fn stored(&self) -> &StoredCa {
        &self.stored
    }

    /// Issues a component certificate with a new key (see the module doc).
    pub fn issue_component(
        &self,
        kind: ComponentKind,
        component_id: &str,
    ) -> Result<IssuedComponent, EdgeError> {
        let key = KeyPair::generate()?;
        let mut issued = self.sign_component(kind, component_id, &key)?;
        issued.key_pem = Some(key.serialize_pem());
        Ok(issued)
    }

    /// Issues a component certificate for the key of a certificate signing request (see
    /// [`parse_csr`]), so the component keeps its key to itself.
    pub fn issue_component_for_key(
        &self,
        kind: ComponentKind,
        component_id: &str,
        public_key: &CsrKey,
    ) -> Result<IssuedComponent, EdgeError> {
        self.sign_component(kind, component_id, &public_key.0)
    }

    /// Signs the component certificate of `component_id` for `public_key`.
    fn sign_component(
        &self,
        kind: ComponentKind,
        component_id: &str,
        public_key: &impl rcgen::PublicKeyData,
    ) -> Result<IssuedComponent, EdgeError> {
        if !valid_component_id(component_id) {
            return Err(EdgeError::InvalidComponentId(component_id.to_owned()));
        }
        let name = ComponentName {
            tenant_slug: self.slug.clone(),
            kind,
            component_id: component_id.to_owned(),
        };
        let issuer = Issuer::from_ca_cert_pem(&self.stored.certificate_pem, &self.key)?;
        let now = OffsetDateTime::now_utc();
        let common_name = name.common_name(&self.domain);
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name.clone());
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Enclave");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, self.slug.as_str());
        params.subject_alt_names = vec![
            SanType::DnsName(Ia5String::try_from(common_name.clone())?),
            SanType::URI(Ia5String::try_from(name.uri())?),
        ];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = (now + days(COMPONENT_DAYS)).min(to_time(self.stored.not_after));
        let serial = random_serial()?;
        params.serial_number = Some(serial.clone());
        params.use_authority_key_identifier_extension = true;
        let certificate = params.signed_by(public_key, &issuer)?;
        Ok(IssuedComponent {
            certificate_pem: certificate.pem(),
            key_pem: None,
            serial: hex(&serial.to_bytes()),
            common_name,
            not_after: to_chrono(params.not_after),
        })
    }
}

/// Loads and unseals the tenant's active CA on a connection whose `search_path` or role
/// reaches its schema (a tenant transaction: unqualified `tenant_cas`).
pub async fn load_tenant_ca(
    authority: &EdgeAuthority,
    conn: &mut AsyncPgConnection,
    slug: &Slug,
) -> Result<TenantCa, EdgeError> {
    let rows: Vec<CaRow> = sql_query(
        "SELECT certificate_pem, key_sealed, key_identifier, not_before, not_after \
         FROM tenant_cas WHERE revoked_at IS NULL AND key_sealed IS NOT NULL \
         AND not_after > now() ORDER BY not_after DESC",
    )
    .load(conn)
    .await?;
    let stored = rows
        .into_iter()
        .find_map(CaRow::into_stored)
        .ok_or(EdgeError::NoTenantCa)?;
    authority.open_tenant_ca(slug, stored)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::server::WebPkiClientVerifier;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, UnixTime};

    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
    }

    fn verifier(authority: &EdgeAuthority) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(authority.root_pem())).expect("root");
        WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .expect("verifier")
    }

    fn tenant(authority: &EdgeAuthority, slug: &str) -> TenantCa {
        let slug = Slug::parse(slug).expect("slug");
        let stored = authority.new_tenant_ca(&slug).expect("tenant CA");
        authority.open_tenant_ca(&slug, stored).expect("unseal")
    }

    fn authority() -> EdgeAuthority {
        let (key, _) = EdgeKey::generate().expect("key");
        EdgeAuthority::ephemeral(key, "enclave".to_owned()).expect("authority")
    }

    #[test]
    fn a_component_chain_verifies_to_the_root_and_names_its_tenant() {
        let authority = authority();
        let acme = tenant(&authority, "acme_east");
        let leaf = acme
            .issue_component(ComponentKind::Agent, "agent-001")
            .expect("component");
        assert_eq!(leaf.common_name, "agent-001.acme-east.enclave");
        let now = UnixTime::now();
        let verifier = verifier(&authority);
        let intermediate = der(&acme.stored().certificate_pem);
        verifier
            .verify_client_cert(
                &der(&leaf.certificate_pem),
                std::slice::from_ref(&intermediate),
                now,
            )
            .expect("leaf → tenant CA → root verifies");
        // Without its tenant CA the leaf does not chain to the root.
        assert!(
            verifier
                .verify_client_cert(&der(&leaf.certificate_pem), &[], now)
                .is_err()
        );
        // Another tenant's CA is no substitute.
        let other = tenant(&authority, "other");
        assert!(
            verifier
                .verify_client_cert(
                    &der(&leaf.certificate_pem),
                    &[der(&other.stored().certificate_pem)],
                    now
                )
                .is_err()
        );
        // Another root does not verify it.
        assert!(
            self::verifier(&self::authority())
                .verify_client_cert(&der(&leaf.certificate_pem), &[intermediate], now)
                .is_err()
        );
        let leaf_der = der(&leaf.certificate_pem);
        let (_, parsed) = x509_parser::parse_x509_certificate(&leaf_der).expect("parse");
        let sans: Vec<String> = parsed
            .subject_alternative_name()
            .expect("SAN")
            .expect("SAN present")
            .value
            .general_names
            .iter()
            .map(|name| name.to_string())
            .collect();
        assert!(
            sans.iter()
                .any(|n| n.contains("enclave://acme_east/agent/agent-001")),
            "{sans:?}"
        );
        let validity = parsed.validity().time_to_expiration().expect("valid now");
        assert!(validity.whole_days() <= COMPONENT_DAYS && validity.whole_days() >= COMPONENT_DAYS - 1);
    }

    #[test]
    fn a_tenant_ca_is_a_ca_with_path_length_zero_and_signs_only_leaves_of_its_tenant() {
        let authority = authority();
        let acme = tenant(&authority, "acme");
        let ca_der = der(&acme.stored().certificate_pem);
        let (_, parsed) = x509_parser::parse_x509_certificate(&ca_der).expect("parse");
        let constraints = parsed.basic_constraints().expect("ok").expect("present").value;
        assert!(constraints.ca);
        assert_eq!(constraints.path_len_constraint, Some(0));
        assert!(parsed.name_constraints().expect("ok").is_some());
        let ski = parsed
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(hex(k.0)),
                _ => None,
            });
        assert_eq!(ski.as_deref(), Some(acme.stored().key_identifier.as_str()));

        let verifier = verifier(&authority);
        let now = UnixTime::now();
        let issuer = Issuer::from_ca_cert_pem(&acme.stored().certificate_pem, &acme.key).expect("issuer");
        // A sub-CA signed with the tenant CA's key: its leaves are refused (path length 0).
        let sub_key = KeyPair::generate().expect("key");
        let mut sub = CertificateParams::new(Vec::<String>::new()).expect("params");
        sub.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        sub.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        sub.use_authority_key_identifier_extension = true;
        let sub_cert = sub.signed_by(&sub_key, &issuer).expect("sub-CA");
        let leaf_key = KeyPair::generate().expect("key");
        let mut leaf = CertificateParams::new(vec!["agent-9.acme.enclave".to_owned()]).expect("params");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        leaf.use_authority_key_identifier_extension = true;
        let sub_issuer = Issuer::new(sub.clone(), &sub_key);
        let leaf_cert = leaf.signed_by(&leaf_key, &sub_issuer).expect("leaf");
        assert!(
            verifier
                .verify_client_cert(leaf_cert.der(), &[sub_cert.der().clone(), ca_der.clone()], now)
                .is_err(),
            "a leaf under a sub-CA of a tenant CA must be refused"
        );
        // A leaf the tenant CA signs directly for another tenant's name is refused too.
        let mut foreign = CertificateParams::new(vec!["agent-1.other.enclave".to_owned()]).expect("params");
        foreign.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        foreign.use_authority_key_identifier_extension = true;
        let foreign = foreign.signed_by(&leaf_key, &issuer).expect("leaf");
        assert!(
            verifier
                .verify_client_cert(foreign.der(), std::slice::from_ref(&ca_der), now)
                .is_err(),
            "the name constraint confines a tenant CA to its tenant's names"
        );
        // The same leaf with its own tenant's name verifies (the refusals above are real).
        let mut own = CertificateParams::new(vec!["agent-1.acme.enclave".to_owned()]).expect("params");
        own.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        own.use_authority_key_identifier_extension = true;
        let own = own.signed_by(&leaf_key, &issuer).expect("leaf");
        verifier
            .verify_client_cert(own.der(), &[ca_der], now)
            .expect("a leaf with the tenant's own name verifies");
    }

    #[test]
    fn component_names_follow_the_scheme() {
        let name = ComponentName {
            tenant_slug: "acme_east".to_owned(),
            kind: ComponentKind::Poller,
            component_id: "poller-01".to_owned(),
        };
        assert_eq!(name.common_name("enclave"), "poller-01.acme-east.enclave");
        assert_eq!(name.uri(), "enclave://acme_east/poller/poller-01");
        assert!(valid_component_id("agent-001"));
        assert!(!valid_component_id("Agent") && !valid_component_id("-a") && !valid_component_id("a.b"));
        assert!(!valid_component_id(&"a".repeat(64)) && !valid_component_id(""));
        assert_eq!(ComponentKind::parse("checker"), Some(ComponentKind::Checker));
        assert_eq!(ComponentKind::parse("Checker"), None);
    }
}
