//! Edge test helpers: tenants with an edge site, onboarding packages downloaded through
//! the router, and a mutual-TLS client for the edge listener.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use enclave::auth::Role;
use http_body_util::BodyExt as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::app::TestApp;

/// An onboarding package's files, by name.
pub type Files = BTreeMap<String, String>;

pub async fn get(app: &TestApp, path: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let request = Request::get(path).body(Body::empty()).expect("request");
    let response = app.router.clone().oneshot(request).await.expect("router answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, content_type, bytes)
}

pub fn unpack(bytes: &[u8]) -> Files {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = Files::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut contents = String::new();
        entry.read_to_string(&mut contents).expect("UTF-8 file");
        files.insert(name, contents);
    }
    files
}

pub fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates")
}

/// A tenant with an admin (token) and an edge site (id).
pub async fn tenant_with_site(app: &TestApp, slug: &str) -> (String, String) {
    app.tenant(slug, &[]).await;
    let admin = app.user(slug, &format!("admin@{slug}.test"), Role::Admin).await;
    let token = app.session(slug, &admin).await;
    let site = app
        .gql(
            Some(&token),
            "mutation($name: String!) { createEdgeSite(input: {name: $name}) { edgeSite { id } } }",
            json!({ "name": format!("{slug} site") }),
        )
        .await;
    let site = site["data"]["createEdgeSite"]["edgeSite"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("edge site: {site}"))
        .to_owned();
    (token, site)
}

pub const CREATE: &str = "mutation($site: ID!, $kind: EdgeComponentKind!) { \
    createOnboardingPackage(input: {kind: $kind, name: \"core agent\", edgeSiteId: $site}) { \
    package { id kind name status expiresAt componentId } downloadToken } }";

pub async fn create_package(app: &TestApp, token: &str, site: &str, kind: &str) -> Value {
    let created = app
        .gql(Some(token), CREATE, json!({ "site": site, "kind": kind }))
        .await;
    assert!(created["errors"].is_null(), "{created}");
    created["data"]["createOnboardingPackage"].clone()
}

/// A TLS 1.3 client with `chain` as trust (its last certificate: the root) and the given
/// client certificate and key (PEM).
pub fn client_config(chain_pem: &str, cert_pem: &str, key_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let root = certs(chain_pem).pop().expect("root in the chain");
    roots.add(root).expect("root");
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs(cert_pem), key)
        .expect("client certificate")
}

/// POSTs `body` to `path` over mutual TLS; `Err` when the connection is refused.
pub async fn post(
    address: std::net::SocketAddr,
    config: &rustls::ClientConfig,
    path: &str,
    body: &Value,
) -> Result<(u16, Value), String> {
    exchange(address, config, path, body)
        .await
        .map(|(status, _, json)| (status, json))
}

/// [`post`], also returning the response head (status line and headers).
pub async fn exchange(
    address: std::net::SocketAddr,
    config: &rustls::ClientConfig,
    path: &str,
    body: &Value,
) -> Result<(u16, String, Value), String> {
    send(address, config, "POST", path, body).await
}

/// GETs `path` over mutual TLS; `Err` when the connection is refused.
pub async fn get_tls(
    address: std::net::SocketAddr,
    config: &rustls::ClientConfig,
    path: &str,
) -> Result<(u16, Value), String> {
    send(address, config, "GET", path, &Value::Null)
        .await
        .map(|(status, _, json)| (status, json))
}

/// Sends one request (`body`: none when null) and reads the whole answer.
async fn send(
    address: std::net::SocketAddr,
    config: &rustls::ClientConfig,
    method: &str,
    path: &str,
    body: &Value,
) -> Result<(u16, String, Value), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config.clone()));
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let request = if body.is_null() {
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    } else {
        let body = body.to_string();
        format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP response")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    Ok((status, head.to_ascii_lowercase(), json))
}

pub async fn download_package(app: &TestApp, token: &str, site: &str, kind: &str) -> Files {
    let created = create_package(app, token, site, kind).await;
    let download = created["downloadToken"].as_str().expect("token");
    let (status, _, bytes) = get(app, &format!("/onboarding/{download}")).await;
    assert_eq!(status, StatusCode::OK);
    unpack(&bytes)
}

pub async fn edge_server(app: &TestApp) -> enclave::edge::listener::EdgeServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    enclave::edge::listener::start(app.app.clone(), listener, "127.0.0.1:0")
        .await
        .expect("edge listener")
}

pub fn titles(response: &Value, list: &str, field: &str) -> Vec<String> {
    response["data"][list]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .iter()
        .filter_map(|e| e["node"][field].as_str().map(str::to_owned))
        .collect()
}
