//! The mutual-TLS edge listener (`ENCLAVE_EDGE_LISTEN`): TLS 1.3 only, a client
//! certificate required.
//!
//! **Which tenant**: the tenant whose CA issued the client certificate. The verifier
//! ([`TenantCaVerifier`]) looks the certificate's authority key identifier up in the trust
//! map ([`EdgeTrust`], every tenant's active CA by subject key identifier, refreshed in the
//! background) and verifies the chain leaf → *that* tenant CA → platform root with rustls'
//! `WebPkiClientVerifier`; whatever intermediates the client sends are ignored. Unknown
//! issuer, bad chain or expiry: the handshake fails. After the handshake the certificate's
//! CN must be `<component-id>.<tenant label>.<edge domain>` of that same tenant and its SAN
//! URI `enclave://<tenant>/<kind>/<component-id>`, else the connection is closed. Nothing
//! the client sends in a request chooses the tenant.
//!
//! **Revocation**: every request checks, in its tenant transaction, that the certificate
//! (by serial) is a known, unrevoked component of the tenant (`edge_components`). Open
//! connections are tracked ([`OpenConnections`]); every refresh (5 s) closes those whose
//! certificate has been revoked since, so an idle keep-alive connection does not outlive
//! its certificate either (on this instance or any other serving the same database).
//!
//! The endpoints themselves are in `edge::ingest`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use uuid::Uuid;

use super::ca::{self, ComponentKind, EdgeAuthority};
use crate::app::App;
use crate::tenancy::directory::TenantEntry;

/// How often the trust map is re-read (new tenants, new CAs).
const REFRESH: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct TrustedCa {
    tenant_id: Uuid,
    der: CertificateDer<'static>,
}

/// Every tenant's active CA, by subject key identifier (hex).
#[derive(Debug, Default)]
pub struct EdgeTrust {
    by_key_id: RwLock<Arc<HashMap<String, TrustedCa>>>,
}

impl EdgeTrust {
    /// Re-reads every tenant's CA (through the tenant directory, on the platform pool).
    pub async fn refresh(&self, app: &App) -> anyhow::Result<()> {
        let mut map = HashMap::new();
        for (tenant_id, key_id, pem) in app.directory.edge_cas(&app.db).await? {
            match CertificateDer::from_pem_slice(pem.as_bytes()) {
                Ok(der) => {
                    map.insert(key_id, TrustedCa { tenant_id, der });
                }
                Err(error) => tracing::error!(%tenant_id, %error, "unreadable tenant CA ignored"),
            }
        }
        if let Ok(mut current) = self.by_key_id.write() {
            *current = Arc::new(map);
        }
        Ok(())
    }

    fn get(&self, key_id: &str) -> Option<TrustedCa> {
        self.by_key_id
            .read()
            .ok()
            .and_then(|map| map.get(key_id).cloned())
    }
}

/// A connection's certificate: (tenant id, serial).
type CertificateKey = (Uuid, String);

/// The open connections, by (tenant id, certificate serial): each can be told to close.
#[derive(Debug, Default)]
pub struct OpenConnections {
    next: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<HashMap<u64, (CertificateKey, Arc<tokio::sync::Notify>)>>,
}

/// An open connection's registration; dropping it unregisters the connection.
struct Registration {
    id: u64,
    connections: Arc<OpenConnections>,
    closed: Arc<tokio::sync::Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut open) = self.connections.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl OpenConnections {
    fn register(self: &Arc<Self>, identity: &EdgeIdentity) -> Registration {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let closed = Arc::new(tokio::sync::Notify::new());
        if let Ok(mut open) = self.open.lock() {
            open.insert(
                id,
                ((identity.tenant.id, identity.serial.clone()), closed.clone()),
            );
        }
        Registration {
            id,
            connections: self.clone(),
            closed,
        }
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.open.lock().map(|open| open.len()).unwrap_or(0)
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the connections whose certificate is revoked (or whose tenant is gone).
    pub async fn close_revoked(&self, app: &App) -> anyhow::Result<usize> {
        let mut open: Vec<CertificateKey> = self
            .open
            .lock()
            .map(|open| open.values().map(|(key, _)| key.clone()).collect())
            .unwrap_or_default();
        open.sort_unstable();
        open.dedup();
        if open.is_empty() {
            return Ok(0);
        }
        let revoked = app.directory.revoked_edge_serials(&app.db, &open).await?;
        if revoked.is_empty() {
            return Ok(0);
        }
        let mut closed = 0;
        if let Ok(open) = self.open.lock() {
            for (key, notify) in open.values() {
                if revoked.contains(key) {
                    notify.notify_one();
                    closed += 1;
                }
            }
        }
        Ok(closed)
    }
}

/// See the module doc.
#[derive(Debug)]
pub struct TenantCaVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust: Arc<EdgeTrust>,
}

impl ClientCertVerifier for TenantCaVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let unknown = || rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let key_id = ca::authority_key_identifier(end_entity).ok_or_else(unknown)?;
        let issuer = self.trust.get(&key_id).ok_or_else(|| {
            tracing::info!(reason = "unknown issuer", "edge handshake refused");
            unknown()
        })?;
        self.inner
            .verify_client_cert(end_entity, std::slice::from_ref(&issuer.der), now)
            .inspect_err(|error| tracing::info!(reason = %error, "edge handshake refused"))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Who is calling, from its verified certificate.
#[derive(Debug, Clone)]
pub struct EdgeIdentity {
    pub tenant: Arc<TenantEntry>,
    pub kind: ComponentKind,
    pub component_id: String,
    /// Certificate serial, hex (as `edge_components.serial`).
    pub serial: String,
}

/// Why a verified certificate still names no component of its CA's tenant.
#[derive(Debug, thiserror::Error)]
pub enum IdentityRefusal {
    #[error("no client certificate")]
    NoCertificate,
    #[error("unreadable certificate")]
    Unreadable,
    #[error("issuer is no tenant CA")]
    UnknownIssuer,
    #[error("the issuing CA's tenant is unknown or suspended")]
    TenantUnavailable,
    #[error("the CN does not name a component of the issuing CA's tenant")]
    WrongCommonName,
    #[error("the SAN URI does not agree with the CN and the issuing CA's tenant")]
    WrongUri,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The identity of a verified client certificate (see the module doc).
pub fn identify(
    app: &App,
    trust: &EdgeTrust,
    domain: &str,
    certificates: Option<&[CertificateDer<'_>]>,
) -> Result<EdgeIdentity, IdentityRefusal> {
    let leaf = certificates
        .and_then(<[_]>::first)
        .ok_or(IdentityRefusal::NoCertificate)?;
    let key_id = ca::authority_key_identifier(leaf).ok_or(IdentityRefusal::UnknownIssuer)?;
    let issuer = trust.get(&key_id).ok_or(IdentityRefusal::UnknownIssuer)?;
    let tenant = app
        .directory
        .by_id(issuer.tenant_id)
        .filter(|t| t.is_active())
        .ok_or(IdentityRefusal::TenantUnavailable)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|_| IdentityRefusal::Unreadable)?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or(IdentityRefusal::WrongCommonName)?;
    let suffix = format!(".{}.{domain}", ca::tenant_label(tenant.slug.as_str()));
    let component_id = cn
        .strip_suffix(&suffix)
        .filter(|id| ca::valid_component_id(id))
        .ok_or(IdentityRefusal::WrongCommonName)?;
    let uris: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::URI(uri) => Some((*uri).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let [uri] = uris.as_slice() else {
        return Err(IdentityRefusal::WrongUri);
    };
    let prefix = format!("enclave://{}/", tenant.slug);
    let kind = uri
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split_once('/'))
        .filter(|(_, id)| *id == component_id)
        .and_then(|(kind, _)| ComponentKind::parse(kind))
        .ok_or(IdentityRefusal::WrongUri)?;
    Ok(EdgeIdentity {
        tenant,
        kind,
        component_id: component_id.to_owned(),
        serial: hex(parsed.raw_serial()),
    })
}

/// A running edge listener.
pub struct EdgeServer {
    /// The trust map; refresh it to see new tenants at once.
    pub trust: Arc<EdgeTrust>,
    /// The open connections; `close_revoked` closes those of revoked certificates at once.
    pub connections: Arc<OpenConnections>,
    /// Where it listens.
    pub address: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
    refresher: tokio::task::JoinHandle<()>,
}

impl EdgeServer {
    /// Stops accepting and refreshing (open connections end with their tasks).
    pub fn stop(&self) {
        self.task.abort();
        self.refresher.abort();
    }
}

impl Drop for EdgeServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The TLS configuration: TLS 1.3 only, client certificates verified by
/// [`TenantCaVerifier`], the server's own certificate signed by the root.
pub fn tls_config(
    authority: &EdgeAuthority,
    trust: Arc<EdgeTrust>,
    server_names: Vec<String>,
) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root = CertificateDer::from_pem_slice(authority.root_pem().as_bytes()).context("root CA")?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).context("root CA")?;
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("client verifier")?;
    let verifier = Arc::new(TenantCaVerifier { inner, trust });
    let (cert_pem, key_pem) = authority
        .issue_server_certificate(server_names)
        .context("edge server certificate")?;
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).context("server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("server key")?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert, root], key)
        .context("server certificate")?;
    Ok(config)
}

/// The names the server certificate carries: the host of `ENCLAVE_EDGE_LISTEN` and of the
/// endpoint URL, plus `localhost` and `127.0.0.1`.
fn server_names(authority: &EdgeAuthority, listen: &str) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let endpoint_host = authority
        .endpoint()
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    for host_port in [listen.to_owned(), endpoint_host] {
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !host.is_empty() && host != "0.0.0.0" && host != "::" && !names.contains(&host) {
            names.push(host);
        }
    }
    names
}

/// Starts serving the edge endpoints on `listener`; `listen` is the configured address
/// (for the server certificate's names). Returns once the trust map is loaded.
pub async fn start(app: Arc<App>, listener: TcpListener, listen: &str) -> anyhow::Result<EdgeServer> {
    let authority = app
        .installation
        .edge
        .clone()
        .context("the edge is not configured (ENCLAVE_EDGE_KEY)")?;
    let trust = Arc::new(EdgeTrust::default());
    trust.refresh(&app).await.context("cannot load the tenant CAs")?;
    let connections = Arc::new(OpenConnections::default());
    let config = tls_config(&authority, trust.clone(), server_names(&authority, listen))?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let address = listener.local_addr().context("edge listener address")?;
    let router = super::ingest::router(app.clone());
    let refresher = {
        let (app, trust, connections) = (app.clone(), trust.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                if let Err(error) = trust.refresh(&app).await {
                    tracing::warn!(%error, "cannot refresh the edge trust map");
                }
                match connections.close_revoked(&app).await {
                    Ok(0) => {}
                    Ok(closed) => tracing::info!(closed, "closed connections of revoked edge certificates"),
                    Err(error) => tracing::warn!(%error, "cannot check open edge connections for revocation"),
                }
            }
        })
    };
    let task = {
        let (app, trust, connections) = (app.clone(), trust.clone(), connections.clone());
        let domain = authority.domain().to_owned();
        tokio::spawn(async move {
            loop {
                let Ok((stream, remote)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let (acceptor, app, trust, router, domain, connections) = (
                    acceptor.clone(),
                    app.clone(),
                    trust.clone(),
                    router.clone(),
                    domain.clone(),
                    connections.clone(),
                );
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
                    let tls = match handshake {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            app.requests
                                .edge_handshake_refused
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::info!(%remote, %error, "edge handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let identity = identify(&app, &trust, &domain, tls.get_ref().1.peer_certificates());
                    let identity = match identity {
                        Ok(identity) => Arc::new(identity),
                        Err(reason) => {
                            app.requests
                                .edge_identity_refused
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::info!(%remote, %reason, "edge connection refused");
                            return;
                        }
                    };
                    let registration = connections.register(&identity);
                    let service = router
                        .layer(axum::Extension(identity))
                        .map_request(|request: Request<Incoming>| request.map(Body::new));
                    let served = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service));
                    tokio::pin!(served);
                    let outcome = tokio::select! {
                        outcome = served.as_mut() => outcome,
                        () = registration.closed.notified() => {
                            tracing::info!(%remote, "closing the connection of a revoked edge certificate");
                            served.as_mut().graceful_shutdown();
                            served.await
                        }
                    };
                    if let Err(error) = outcome {
                        tracing::debug!(%remote, %error, "edge connection ended with an error");
                    }
                });
            }
        })
    };
    tracing::info!(%address, "edge listener (mutual TLS) listening");
    Ok(EdgeServer {
        trust,
        connections,
        address,
        task,
        refresher,
    })
}
