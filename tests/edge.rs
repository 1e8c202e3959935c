//! The edge: certificate authorities stored per tenant with sealed keys, created in the
//! provisioning transaction or at startup for tenants that have none; one-time onboarding
//! packages (GraphQL and `GET /onboarding/<token>`).

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::TestDb;
use common::app::{TestApp, error_code};
use common::edge::*;
use diesel_async::SimpleAsyncConnection as _;
use enclave::auth::Role;
use enclave::config::AuthConfig;
use enclave::tenancy::provision::{self, NewTenant};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::UnixTime;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};

fn new_tenant(slug: &str) -> NewTenant {
    NewTenant {
        slug: provision::parse_new_slug(slug).expect("valid slug"),
        name: format!("{slug} Inc."),
        domains: Vec::new(),
    }
}

#[tokio::test]
async fn a_new_tenant_gets_its_own_ca_with_the_key_sealed() {
    let app = TestApp::new().await;
    app.tenant("acme", &[]).await;
    app.tenant("globex", &[]).await;
    let db = &app.db;
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.edge_root_cas WHERE retired_at IS NULL")
            .await,
        1
    );
    for slug in ["acme", "globex"] {
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) AS n FROM tenant_{slug}.tenant_cas \
                 WHERE certificate_pem LIKE '-----BEGIN CERTIFICATE-----%' \
                 AND key_sealed LIKE 'v1:%' AND key_identifier IS NOT NULL"
            ))
            .await,
            1,
            "{slug} has one CA"
        );
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) AS n FROM tenant_{slug}.tenant_cas t \
                 WHERE t::text LIKE '%PRIVATE KEY%'"
            ))
            .await,
            0,
            "no clear private key is stored for {slug}"
        );
    }
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.edge_root_cas r WHERE r::text LIKE '%PRIVATE KEY%'")
            .await,
        0,
        "the root key is sealed"
    );
    // Two tenants, two different CAs.
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM tenant_acme.tenant_cas a JOIN tenant_globex.tenant_cas g \
             ON a.key_identifier = g.key_identifier"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn existing_tenants_get_a_ca_at_startup_and_the_root_is_kept() {
    let db = TestDb::new().await;
    let installation = db.prepare().await;
    // Provisioned while the edge was off: no CA yet.
    provision::create_tenant(&mut db.conn().await, &installation, &new_tenant("acme"))
        .await
        .expect("provision");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM tenant_acme.tenant_cas").await,
        0
    );

    let (_, key_spec) = enclave::edge::keys::EdgeKey::generate().expect("key");
    let mut auth = AuthConfig::with_key(String::new());
    auth.edge.edge_key = Some(key_spec.clone());
    let first = enclave::edge::prepare(&installation, &auth).await.expect("edge");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM tenant_acme.tenant_cas").await,
        1
    );

    // A second start keeps the root and the tenant CA.
    let second = enclave::edge::prepare(&installation, &auth).await.expect("edge");
    assert_eq!(first.root_pem(), second.root_pem());
    assert_eq!(
        db.count("SELECT count(*) AS n FROM tenant_acme.tenant_cas").await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM public.edge_root_cas").await,
        1
    );

    // Another edge key cannot open the stored root: the start is refused.
    let (_, other) = enclave::edge::keys::EdgeKey::generate().expect("key");
    auth.edge.edge_key = Some(other);
    let refused = enclave::edge::prepare(&installation, &auth).await;
    assert!(refused.is_err(), "a wrong edge key must not start");
}

#[tokio::test]
async fn an_onboarding_package_downloads_once_with_a_verifiable_certificate_and_no_stored_key() {
    let app = TestApp::new().await;
    let (token, site) = tenant_with_site(&app, "acme").await;
    let created = create_package(&app, &token, &site, "AGENT").await;
    let package = &created["package"];
    assert_eq!(package["status"], "ISSUED");
    assert_eq!(package["kind"], "AGENT");
    let component_id = package["componentId"].as_str().expect("component id").to_owned();
    let download = created["downloadToken"].as_str().expect("token").to_owned();
    // Only the token's hash is stored.
    assert_eq!(
        app.db
            .count(&format!(
                "SELECT count(*) AS n FROM tenant_acme.onboarding_packages p WHERE p::text LIKE '%{download}%'"
            ))
            .await,
        0
    );

    let (status, content_type, bytes) = get(&app, &format!("/onboarding/{download}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/gzip"));
    let files = unpack(&bytes);
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "ca-chain.pem",
            "component-key.pem",
            "component.pem",
            "config.json"
        ]
    );
    let config: Value = serde_json::from_str(&files["config.json"]).expect("config.json");
    assert_eq!(config["tenant"], "acme");
    assert_eq!(config["componentId"], component_id.as_str());
    assert_eq!(config["kind"], "agent");
    assert_eq!(config["natsPrefix"], "acme");
    assert!(
        config["edgeEndpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with("https://"))
    );

    // The chain is tenant CA then root; the certificate verifies against the stored root.
    let chain = certs(&files["ca-chain.pem"]);
    assert_eq!(chain.len(), 2);
    let leaf = certs(&files["component.pem"]).remove(0);
    let mut roots = rustls::RootCertStore::empty();
    let root_pem = app
        .db
        .names("SELECT certificate_pem AS name FROM public.edge_root_cas")
        .await
        .remove(0);
    roots.add(certs(&root_pem).remove(0)).expect("root");
    assert_eq!(chain[1], certs(&root_pem)[0]);
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .expect("verifier");
    verifier
        .verify_client_cert(&leaf, &chain[..1], UnixTime::now())
        .expect("the component certificate chains to the root");
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).expect("certificate");
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .expect("CN")
        .to_owned();
    assert_eq!(cn, format!("{component_id}.acme.enclave"));
    // The key matches the certificate.
    let key = rcgen::KeyPair::from_pem(&files["component-key.pem"]).expect("key");
    assert_eq!(
        rcgen::PublicKeyData::subject_public_key_info(&key),
        parsed.public_key().raw
    );

    // Recorded, never the key.
    assert_eq!(
        app.db
            .count(&format!(
                "SELECT count(*) AS n FROM tenant_acme.edge_components \
                 WHERE component_id = '{component_id}' AND common_name = '{cn}'"
            ))
            .await,
        1
    );
    for table in [
        "edge_components",
        "onboarding_packages",
        "onboarding_events",
        "tenant_cas",
    ] {
        assert_eq!(
            app.db
                .count(&format!(
                    "SELECT count(*) AS n FROM tenant_acme.{table} t WHERE t::text LIKE '%PRIVATE KEY%'"
                ))
                .await,
            0,
            "{table} holds no private key"
        );
    }

    // Once only; unknown tokens are 404; neither reveals anything.
    let (status, _, body) = get(&app, &format!("/onboarding/{download}")).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(!String::from_utf8_lossy(&body).contains("acme"));
    let (status, _, body) = get(&app, "/onboarding/not-a-token").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(&body).contains("acme"));

    // The package's life, in GraphQL.
    let listed = app
        .gql(
            Some(&token),
            "{ onboardingPackages { edges { node { status componentId } } } \
               onboardingEvents(first: 10) { edges { node { event detail } } } }",
            json!({}),
        )
        .await;
    assert!(listed["errors"].is_null(), "{listed}");
    assert_eq!(
        listed["data"]["onboardingPackages"]["edges"][0]["node"]["status"],
        "DELIVERED"
    );
    let events: Vec<&str> = listed["data"]["onboardingEvents"]["edges"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["node"]["event"].as_str())
        .collect();
    assert_eq!(events, ["FAILED", "DOWNLOADED", "ISSUED"]);
}

#[tokio::test]
async fn expired_packages_are_gone_and_only_admins_create_packages() {
    let app = TestApp::new().await;
    let (token, site) = tenant_with_site(&app, "acme").await;
    let created = create_package(&app, &token, &site, "POLLER").await;
    let download = created["downloadToken"].as_str().expect("token").to_owned();
    app.db
        .conn()
        .await
        .batch_execute("UPDATE tenant_acme.onboarding_packages SET expires_at = now() - interval '1 minute'")
        .await
        .expect("expire");
    let (status, _, _) = get(&app, &format!("/onboarding/{download}")).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM tenant_acme.onboarding_packages WHERE status = 'expired'")
            .await,
        1
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM tenant_acme.edge_components")
            .await,
        0
    );

    let viewer = app.user("acme", "viewer@acme.test", Role::Viewer).await;
    let viewer = app.session("acme", &viewer).await;
    let refused = app
        .gql(Some(&viewer), CREATE, json!({ "site": site, "kind": "AGENT" }))
        .await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    let refused = app
        .gql(
            Some(&viewer),
            "{ onboardingPackages { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{refused}");
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM tenant_acme.onboarding_packages")
            .await,
        1,
        "the refused mutation wrote nothing"
    );
}

#[tokio::test]
async fn a_download_token_finds_its_own_tenant_only() {
    let app = TestApp::new().await;
    let (acme_token, acme_site) = tenant_with_site(&app, "acme").await;
    let (globex_token, globex_site) = tenant_with_site(&app, "globex").await;
    let acme = create_package(&app, &acme_token, &acme_site, "AGENT").await;
    let globex = create_package(&app, &globex_token, &globex_site, "CHECKER").await;
    for (slug, created) in [("globex", &globex), ("acme", &acme)] {
        let download = created["downloadToken"].as_str().expect("token");
        let (status, _, bytes) = get(&app, &format!("/onboarding/{download}")).await;
        assert_eq!(status, StatusCode::OK);
        let files = unpack(&bytes);
        let config: Value = serde_json::from_str(&files["config.json"]).expect("config");
        assert_eq!(config["tenant"], slug);
    }
    // A site of another tenant is not found.
    let refused = app
        .gql(
            Some(&acme_token),
            CREATE,
            json!({ "site": globex_site, "kind": "AGENT" }),
        )
        .await;
    assert_eq!(error_code(&refused), Some("NOT_FOUND"), "{refused}");
}

// ---------------------------------------------------------------- the mTLS endpoint

#[tokio::test]
async fn a_package_reports_over_mutual_tls_into_its_own_tenant_only() {
    let app = TestApp::new().await;
    let (acme, acme_site) = tenant_with_site(&app, "acme").await;
    let (globex, _) = tenant_with_site(&app, "globex").await;
    let files = download_package(&app, &acme, &acme_site, "AGENT").await;
    let server = edge_server(&app).await;
    let config = client_config(
        &files["ca-chain.pem"],
        &files["component.pem"],
        &files["component-key.pem"],
    );

    let (status, beat) = post(
        server.address,
        &config,
        "/edge/v1/heartbeat",
        &json!({"status": "ok"}),
    )
    .await
    .expect("heartbeat");
    assert_eq!(status, 200, "{beat}");
    assert_eq!(beat["tenant"], "acme");
    let devices = json!({"devices": [{"hostname": "edge-router-1", "ip": "10.1.2.3", "vendor": "Acme"}]});
    let (status, answer) = post(server.address, &config, "/edge/v1/devices", &devices)
        .await
        .expect("devices");
    assert_eq!((status, answer["created"].as_u64()), (200, Some(1)), "{answer}");
    let alerts =
        json!({"alerts": [{"title": "Link down", "severity": "major", "deviceHostname": "edge-router-1"}]});
    let (status, answer) = post(server.address, &config, "/edge/v1/alerts", &alerts)
        .await
        .expect("alerts");
    assert_eq!(status, 200, "{answer}");

    // All or nothing, with the failing record's index.
    let bad = json!({"alerts": [{"title": "Fine", "severity": "minor"},
                                {"title": "Orphan", "severity": "minor", "deviceHostname": "nowhere"}]});
    let (status, answer) = post(server.address, &config, "/edge/v1/alerts", &bad)
        .await
        .expect("bad batch answered");
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "BAD_REQUEST");
    assert_eq!(answer["error"]["index"], 1);
    let bad = json!({"alerts": [{"title": "Loud", "severity": "apocalyptic"}]});
    let (status, answer) = post(server.address, &config, "/edge/v1/alerts", &bad)
        .await
        .expect("bad batch answered");
    assert_eq!(
        (status, answer["error"]["index"].as_u64()),
        (400, Some(0)),
        "{answer}"
    );

    let events = json!({"events": [{"kind": "link.down", "severity": "minor", "message": "ge-0/0/1",
                                    "deviceHostname": "edge-router-1", "data": {"ifIndex": 3}}]});
    let (status, answer) = post(server.address, &config, "/edge/v1/events", &events)
        .await
        .expect("events");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM tenant_acme.events WHERE kind = 'link.down' AND device_id IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) AS n FROM tenant_globex.events WHERE kind = 'link.down'")
            .await,
        0
    );

    let query = "{ alerts { edges { node { title } } } devices { edges { node { hostname } } } }";
    let seen = app.gql(Some(&acme), query, json!({})).await;
    assert_eq!(titles(&seen, "alerts", "title"), ["Link down"], "{seen}");
    assert!(titles(&seen, "devices", "hostname").contains(&"edge-router-1".to_owned()));
    let other = app.gql(Some(&globex), query, json!({})).await;
    assert!(titles(&other, "alerts", "title").is_empty(), "{other}");
    assert!(!titles(&other, "devices", "hostname").contains(&"edge-router-1".to_owned()));

    // First connection recorded.
    let components = app
        .gql(
            Some(&acme),
            "{ edgeComponents { edges { node { id lastSeen } } } onboardingPackages { edges { node { status } } } }",
            json!({}),
        )
        .await;
    assert!(
        components["data"]["edgeComponents"]["edges"][0]["node"]["lastSeen"].is_string(),
        "{components}"
    );
    assert_eq!(
        components["data"]["onboardingPackages"]["edges"][0]["node"]["status"],
        "ACTIVATED"
    );
}

#[tokio::test]
async fn foreign_self_signed_and_misnamed_certificates_are_refused() {
    let (_, edge_key) = enclave::edge::keys::EdgeKey::generate().expect("key");
    let spec = edge_key.clone();
    let app = TestApp::with(move |_, auth| auth.edge.edge_key = Some(spec)).await;
    let (acme, acme_site) = tenant_with_site(&app, "acme").await;
    let (globex, globex_site) = tenant_with_site(&app, "globex").await;
    let acme_files = download_package(&app, &acme, &acme_site, "AGENT").await;
    let globex_files = download_package(&app, &globex, &globex_site, "POLLER").await;
    let server = edge_server(&app).await;
    let genuine = client_config(
        &acme_files["ca-chain.pem"],
        &acme_files["component.pem"],
        &acme_files["component-key.pem"],
    );
    let beat = json!({});
    assert_eq!(
        post(server.address, &genuine, "/edge/v1/heartbeat", &beat)
            .await
            .map(|r| r.0),
        Ok(200)
    );

    // globex's CA key, unsealed as the server would.
    let ca_pem = app
        .db
        .names("SELECT certificate_pem AS name FROM tenant_globex.tenant_cas")
        .await
        .remove(0);
    let sealed = app
        .db
        .names("SELECT key_sealed AS name FROM tenant_globex.tenant_cas")
        .await
        .remove(0);
    let key = enclave::edge::keys::EdgeKey::parse(&edge_key).expect("key");
    let ca_key = rcgen::KeyPair::from_pem(
        &String::from_utf8(key.open("tenant-ca:globex", &sealed).expect("unseal")).expect("PEM"),
    )
    .expect("CA key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, &ca_key).expect("issuer");
    let forge = |claim: &str, with_dns: bool, issuer: Option<&rcgen::Issuer<'_, &rcgen::KeyPair>>| {
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("agent-x.{claim}.enclave"));
        params.subject_alt_names = vec![rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from(format!("enclave://{claim}/agent/agent-x")).expect("URI"),
        )];
        if with_dns {
            params.subject_alt_names.push(rcgen::SanType::DnsName(
                rcgen::string::Ia5String::try_from(format!("agent-x.{claim}.enclave")).expect("DNS"),
            ));
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = issuer.is_some();
        let cert = match issuer {
            Some(issuer) => params.signed_by(&leaf_key, issuer).expect("sign"),
            None => params.self_signed(&leaf_key).expect("self-sign"),
        };
        (cert.pem(), leaf_key.serialize_pem())
    };
    // Control: the same forgery naming globex passes the handshake and the name checks, and
    // is refused only because globex never issued that certificate (unknown serial).
    let (cert, key) = forge("globex", true, Some(&issuer));
    let config = client_config(&globex_files["ca-chain.pem"], &format!("{cert}{ca_pem}"), &key);
    let answered = post(server.address, &config, "/edge/v1/heartbeat", &beat).await;
    assert_eq!(answered.map(|(status, _)| status), Ok(403));
    // Signed by globex's CA, claiming acme: refused with or without a DNS name.
    for with_dns in [true, false] {
        let (cert, key) = forge("acme", with_dns, Some(&issuer));
        let config = client_config(&globex_files["ca-chain.pem"], &format!("{cert}{ca_pem}"), &key);
        let refused = post(server.address, &config, "/edge/v1/heartbeat", &beat).await;
        assert!(
            refused.is_err(),
            "a globex certificate claiming acme was accepted: {refused:?}"
        );
    }
    // Self-signed: refused.
    let (cert, key) = forge("acme", true, None);
    let config = client_config(&acme_files["ca-chain.pem"], &cert, &key);
    let refused = post(server.address, &config, "/edge/v1/heartbeat", &beat).await;
    assert!(
        refused.is_err(),
        "a self-signed certificate was accepted: {refused:?}"
    );
    // Counted: two refused after the handshake (names), one in it (self-signed); the
    // globex-signed one with acme's DNS name breaks the name constraint in the handshake.
    let refusals = &app.app.requests;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&refusals.edge_identity_refused), 1);
    assert_eq!(load(&refusals.edge_handshake_refused), 2);
    // No alert or device reached acme through any of them; the genuine one still works.
    assert_eq!(
        app.db.count("SELECT count(*) AS n FROM tenant_acme.alerts").await,
        0
    );
    assert_eq!(
        post(server.address, &genuine, "/edge/v1/heartbeat", &beat)
            .await
            .map(|r| r.0),
        Ok(200)
    );
}

#[tokio::test]
async fn a_revoked_component_is_refused_on_its_next_request() {
    let app = TestApp::new().await;
    let (acme, acme_site) = tenant_with_site(&app, "acme").await;
    let files = download_package(&app, &acme, &acme_site, "COLLECTOR").await;
    let server = edge_server(&app).await;
    let config = client_config(
        &files["ca-chain.pem"],
        &files["component.pem"],
        &files["component-key.pem"],
    );
    let beat = json!({});
    assert_eq!(
        post(server.address, &config, "/edge/v1/heartbeat", &beat)
            .await
            .map(|r| r.0),
        Ok(200)
    );
    // A keep-alive connection, idle after one request.
    let mut idle = {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let tcp = tokio::net::TcpStream::connect(server.address)
            .await
            .expect("connect");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config.clone()));
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        tls.write_all(b"POST /edge/v1/heartbeat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .expect("request");
        let mut answer = Vec::new();
        while !String::from_utf8_lossy(&answer).contains("\"ok\":true") {
            let mut chunk = [0u8; 1024];
            let n = tls.read(&mut chunk).await.expect("response");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&chunk[..n]);
        }
        tls
    };
    assert_eq!(server.connections.len(), 1, "the idle connection is tracked");
    let listed = app
        .gql(
            Some(&acme),
            "{ edgeComponents { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let id = listed["data"]["edgeComponents"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{listed}"))
        .to_owned();
    let revoked = app
        .gql(
            Some(&acme),
            "mutation($id: ID!) { revokeEdgeComponent(input: {id: $id}) { edgeComponent { revokedAt } } }",
            json!({ "id": id }),
        )
        .await;
    assert!(
        revoked["data"]["revokeEdgeComponent"]["edgeComponent"]["revokedAt"].is_string(),
        "{revoked}"
    );
    // The idle connection is closed by the next revocation check (every 5 s; run now).
    let closed = server
        .connections
        .close_revoked(&app.app)
        .await
        .expect("revocation check");
    assert_eq!(closed, 1);
    let mut rest = [0u8; 64];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut idle, &mut rest),
    )
    .await
    .expect("the idle connection is closed, not left open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let (status, answer) = post(server.address, &config, "/edge/v1/heartbeat", &beat)
        .await
        .expect("answered");
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("REVOKED")),
        "{answer}"
    );
    let alerts = json!({"alerts": [{"title": "After revocation", "severity": "info"}]});
    let (status, _) = post(server.address, &config, "/edge/v1/alerts", &alerts)
        .await
        .expect("answered");
    assert_eq!(status, 403);
    assert_eq!(
        app.db.count("SELECT count(*) AS n FROM tenant_acme.alerts").await,
        0
    );
}

#[tokio::test]
async fn the_demo_hands_out_a_working_onboarding_download_per_tenant() {
    let app = TestApp::new().await;
    let tenants = enclave::demo::prepare(&app.app, &Default::default())
        .await
        .expect("demo");
    assert_eq!(tenants.len(), 2);
    for demo in &tenants {
        let download = demo.onboarding_token.as_deref().expect("an onboarding token");
        let (status, _, bytes) = get(&app, &format!("/onboarding/{download}")).await;
        assert_eq!(status, StatusCode::OK, "{}", demo.slug);
        let config: Value = serde_json::from_str(&unpack(&bytes)["config.json"]).expect("config");
        assert_eq!(config["tenant"], demo.slug.as_str());
    }
}

#[tokio::test]
async fn components_of_different_tenants_cannot_complete_a_handshake_with_each_other() {
    let app = TestApp::new().await;
    let (acme, acme_site) = tenant_with_site(&app, "acme").await;
    let (globex, globex_site) = tenant_with_site(&app, "globex").await;
    let poller = download_package(&app, &acme, &acme_site, "POLLER").await;
    let agent = download_package(&app, &acme, &acme_site, "AGENT").await;
    let foreign = download_package(&app, &globex, &globex_site, "AGENT").await;

    // A poller serving its agents: trusts its own tenant's CA only (not the root), and
    // requires a client certificate.
    let serve = |files: &Files| {
        let chain = certs(&files["ca-chain.pem"]);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(chain[0].clone()).expect("tenant CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .expect("verifier");
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(files["component-key.pem"].as_bytes())
            .expect("key");
        let mut cert_chain = certs(&files["component.pem"]);
        cert_chain.push(chain[0].clone());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_client_cert_verifier(verifier)
            .with_single_cert(cert_chain, key)
            .expect("server config")
    };
    // Agents reach the poller by the DNS name in its certificate (its CN).
    let poller_leaf = certs(&poller["component.pem"]).remove(0);
    let (_, parsed) = x509_parser::parse_x509_certificate(&poller_leaf).expect("cert");
    let poller_cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .expect("CN")
        .to_owned();
    let handshake = |server: rustls::ServerConfig, client: &Files| {
        let poller_name = poller_cn.clone();
        let client_config = client_config(
            &client["ca-chain.pem"],
            &client["component.pem"],
            &client["component-key.pem"],
        );
        async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let (client_io, server_io) = tokio::io::duplex(64 * 1024);
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
            let server_side = tokio::spawn(async move {
                let mut tls = acceptor.accept(server_io).await.map_err(|e| e.to_string())?;
                let mut byte = [0u8; 1];
                tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
                tls.write_all(&byte).await.map_err(|e| e.to_string())?;
                tls.flush().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            });
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
            let name = rustls_pki_types::ServerName::try_from(poller_name).expect("name");
            let client_side = async {
                let mut tls = connector
                    .connect(name, client_io)
                    .await
                    .map_err(|e| e.to_string())?;
                tls.write_all(b"x").await.map_err(|e| e.to_string())?;
                tls.flush().await.map_err(|e| e.to_string())?;
                let mut byte = [0u8; 1];
                tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            };
            let client_result = client_side.await;
            let server_result = server_side.await.expect("server task");
            client_result.and(server_result)
        }
    };
    assert_eq!(
        handshake(serve(&poller), &agent).await,
        Ok(()),
        "same tenant: connects"
    );
    let refused = handshake(serve(&poller), &foreign).await;
    assert!(
        refused.is_err(),
        "another tenant's agent was accepted by the poller"
    );
}

#[tokio::test]
async fn a_suspended_tenants_components_are_refused() {
    let app = TestApp::new().await;
    let (acme, acme_site) = tenant_with_site(&app, "acme").await;
    let files = download_package(&app, &acme, &acme_site, "AGENT").await;
    let server = edge_server(&app).await;
    let config = client_config(
        &files["ca-chain.pem"],
        &files["component.pem"],
        &files["component-key.pem"],
    );
    let beat = json!({});
    assert_eq!(
        post(server.address, &config, "/edge/v1/heartbeat", &beat)
            .await
            .map(|r| r.0),
        Ok(200)
    );
    enclave::tenancy::registry::set_status(
        &mut app.db.conn().await,
        &enclave::tenancy::slug::Slug::parse("acme").expect("slug"),
        enclave::tenancy::registry::TenantStatus::Suspended,
    )
    .await
    .expect("suspend");
    app.reload().await;
    let refused = post(server.address, &config, "/edge/v1/heartbeat", &beat).await;
    assert!(
        refused.is_err(),
        "a suspended tenant's component connected: {refused:?}"
    );
}

#[tokio::test]
async fn admins_read_their_own_edge_assets_and_nobody_elses() {
    let app = TestApp::new().await;
    let (acme, acme_site) = tenant_with_site(&app, "acme").await;
    let (globex, _) = tenant_with_site(&app, "globex").await;
    let site_uuid = |schema: &str| format!("(SELECT id FROM {schema}.edge_sites LIMIT 1)");
    let mut conn = app.db.conn().await;
    for (schema, name) in [
        ("tenant_acme", "acme-collector"),
        ("tenant_globex", "globex-collector"),
    ] {
        conn.batch_execute(&format!(
            "INSERT INTO {schema}.collector_packages (name, version, platform, sha256, artifact_ref) \
             VALUES ('{name}', '1.0.0', 'linux-amd64', repeat('a', 64), 's3://builds/{name}'), \
                    ('{name}', '1.0.0', 'linux-arm64', repeat('b', 64), 's3://builds/{name}-arm');
             INSERT INTO {schema}.nats_credentials (edge_site_id, user_public_key, jwt_ref) \
             VALUES ({site}, 'U{name}', 'jwt:{name}');
             INSERT INTO {schema}.nats_leaf_servers (edge_site_id, name, url) \
             VALUES ({site}, '{name}-leaf', 'nats-leaf://{name}:7422');",
            site = site_uuid(schema)
        ))
        .await
        .expect("seed");
    }
    let query = "query($site: ID) { certificateAuthorities { edges { node { name certificatePem notAfter revokedAt } } } \
        collectorPackages(platform: \"linux-amd64\") { edges { node { name platform sha256 } } } \
        natsCredentials(edgeSiteId: $site) { edges { node { userPublicKey edgeSiteId revokedAt } } } \
        natsLeafServers(edgeSiteId: $site) { edges { node { name url status edgeSiteId } } } }";
    let out = app.gql(Some(&acme), query, json!({ "site": acme_site })).await;
    assert!(out["errors"].is_null(), "{out}");
    let data = &out["data"];
    let cas = data["certificateAuthorities"]["edges"].as_array().expect("CAs");
    assert_eq!(cas.len(), 1, "{out}");
    let pem = cas[0]["node"]["certificatePem"].as_str().expect("pem");
    assert!(pem.contains("BEGIN CERTIFICATE"), "{pem}");
    assert!(!out.to_string().contains("PRIVATE KEY"), "a key leaked: {out}");
    assert_eq!(titles(&out, "collectorPackages", "name"), vec!["acme-collector"]);
    assert_eq!(
        data["collectorPackages"]["edges"][0]["node"]["platform"],
        "linux-amd64"
    );
    assert_eq!(
        titles(&out, "natsCredentials", "userPublicKey"),
        vec!["Uacme-collector"]
    );
    assert_eq!(
        data["natsCredentials"]["edges"][0]["node"]["edgeSiteId"],
        acme_site.as_str()
    );
    assert_eq!(
        titles(&out, "natsLeafServers", "name"),
        vec!["acme-collector-leaf"]
    );
    assert_eq!(data["natsLeafServers"]["edges"][0]["node"]["status"], "unknown");
    // Another tenant's ids narrow to nothing; its rows never show.
    let globex_site = app
        .gql(
            Some(&globex),
            "{ edgeSites { edges { node { id } } } }",
            json!({}),
        )
        .await["data"]["edgeSites"]["edges"][0]["node"]["id"]
        .clone();
    let foreign = app.gql(Some(&acme), query, json!({ "site": globex_site })).await;
    assert!(foreign["errors"].is_null(), "{foreign}");
    assert!(
        titles(&foreign, "natsCredentials", "userPublicKey").is_empty(),
        "{foreign}"
    );
    assert!(
        titles(&foreign, "natsLeafServers", "name").is_empty(),
        "{foreign}"
    );
    assert!(!foreign.to_string().contains("globex"), "{foreign}");
    // Admins only.
    let viewer = app.user("acme", "viewer@acme.test", Role::Viewer).await;
    let viewer = app.session("acme", &viewer).await;
    for field in [
        "certificateAuthorities",
        "collectorPackages",
        "natsCredentials",
        "natsLeafServers",
    ] {
        let refused = app
            .gql(
                Some(&viewer),
                &format!("{{ {field} {{ edges {{ node {{ id }} }} }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(error_code(&refused), Some("FORBIDDEN"), "{field}: {refused}");
    }
}
