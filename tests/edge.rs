//! The edge: certificate authorities stored per tenant with sealed keys, created in the
//! provisioning transaction or at startup for tenants that have none.

mod common;

use common::TestDb;
use common::app::TestApp;
use enclave::config::AuthConfig;
use enclave::tenancy::provision::{self, NewTenant};

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
