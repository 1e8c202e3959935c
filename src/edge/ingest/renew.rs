//! `POST /edge/v1/renew`: a component renews its own certificate before it expires, over
//! the mutual-TLS connection its current certificate opened (like EST's re-enrollment).
//!
//! The body is `{}` (Enclave generates the new key and returns it once) or
//! `{"csr": PEM}` (the component keeps its key; only the request's public key is used).
//! The new certificate names the same component (same CN and SAN URI, new serial, full
//! validity) and is recorded as another `edge_components` row of the component, with a
//! `renewed` onboarding event. The old certificate stays valid until it expires, so a
//! component can switch without a gap; `revokeEdgeComponent` revokes every certificate of
//! the component.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use diesel::sql_types::{Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::json;

use super::{Body, IngestError, in_tenant};
use crate::app::App;
use crate::edge::ca;
use crate::edge::listener::EdgeIdentity;
use crate::edge::onboarding::record_event;

/// `POST /edge/v1/renew` body.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Renewal {
    /// A PEM certificate signing request; absent: Enclave generates the key.
    #[serde(default)]
    pub csr: Option<String>,
}

/// Records the new certificate as another certificate of the calling component.
const RECORD_SQL: &str = "
INSERT INTO edge_components (onboarding_package_id, kind, component_id, name, common_name, serial, not_after)
SELECT onboarding_package_id, kind, component_id, name, $2, $3, $4 FROM edge_components WHERE id = $1";

pub(super) async fn renew(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Arc<EdgeIdentity>>,
    Body(renewal): Body<Renewal>,
) -> Result<Json<serde_json::Value>, IngestError> {
    let authority = app.installation.edge.clone().ok_or(ca::EdgeError::NoTenantCa)?;
    let csr_key = renewal.csr.as_deref().map(ca::parse_csr).transpose()?;
    let (issued, chain_pem) = in_tenant(&app, &identity, async |conn, reporter| {
        let tenant_ca = ca::load_tenant_ca(&authority, conn, &identity.tenant.slug).await?;
        let issued = match &csr_key {
            Some(key) => tenant_ca.issue_component_for_key(identity.kind, &identity.component_id, key)?,
            None => tenant_ca.issue_component(identity.kind, &identity.component_id)?,
        };
        diesel::sql_query(RECORD_SQL)
            .bind::<SqlUuid, _>(reporter.id)
            .bind::<Text, _>(&issued.common_name)
            .bind::<Text, _>(&issued.serial)
            .bind::<Timestamptz, _>(issued.not_after)
            .execute(conn)
            .await?;
        if let Some(package) = reporter.package {
            record_event(
                conn,
                package,
                "renewed",
                &format!("certificate {} renewed as {}", identity.serial, issued.serial),
            )
            .await?;
        }
        Ok((issued, tenant_ca.chain_pem()))
    })
    .await?;
    let mut answer = json!({
        "ok": true,
        "certificate": issued.certificate_pem,
        "chain": chain_pem,
        "serial": issued.serial,
        "notAfter": issued.not_after.to_rfc3339(),
    });
    if let Some(key) = issued.key_pem {
        answer["key"] = json!(key);
    }
    Ok(Json(answer))
}
