//! `tenant_export`: writes one tenant's archive (`backup::export_tenant`: a consistent
//! snapshot, see `backup`) into the export directory (`ENCLAVE_EXPORT_DIR`) as
//! `<slug>-<job id>.tar.gz`, and records its path, size and SHA-256 digest in the job's
//! result: `{"tenant", "path", "bytes", "sha256", "tables"}`.
//!
//! The archive is written to `<name>.partial` and renamed when complete, so the path a
//! result names is always a whole archive; a retry of the same job writes the same name
//! again. The export runs in its own snapshot transaction; meanwhile the job's lease is
//! renewed every third of a lease (a lost lease stops the export). Without an export
//! directory the job fails at once with `NOT_CONFIGURED`.

use std::path::Path;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use serde_json::json;
use sha2::Digest as _;

use super::tenant_slug;
use crate::jobs::clock::Clock;
use crate::jobs::error::JobError;
use crate::jobs::queue::{self, ClaimedJob};
use crate::tenancy::Installation;

/// Runs the job (see the module doc).
pub async fn run(
    conn: &mut AsyncPgConnection,
    installation: &Installation,
    export_dir: Option<&Path>,
    job: &ClaimedJob,
    clock: &dyn Clock,
    lease: Duration,
) -> Result<serde_json::Value, JobError> {
    let dir = export_dir.ok_or(JobError::NotConfigured("ENCLAVE_EXPORT_DIR"))?;
    let slug = tenant_slug(conn, job).await?;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|error| JobError::Export(format!("cannot create {}: {error}", dir.display())))?;
    let name = format!("{slug}-{}.tar.gz", job.id);
    let path = dir.join(&name);
    let partial = dir.join(format!("{name}.partial"));
    let lease_chrono = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);

    let export = crate::backup::export_tenant(installation, &slug, &partial);
    tokio::pin!(export);
    let mut renew = tokio::time::interval(lease / 3);
    renew.tick().await;
    let manifest = loop {
        tokio::select! {
            exported = &mut export => {
                break exported.map_err(|error| JobError::Export(error.to_string()))?;
            }
            _ = renew.tick() => {
                queue::heartbeat(conn, job, clock.now() + lease_chrono).await?;
            }
        }
    };
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|error| JobError::Export(format!("cannot rename {}: {error}", partial.display())))?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|error| JobError::Export(format!("cannot read {}: {error}", path.display())))?;
    let sha256 = format!("{:x}", sha2::Sha256::digest(&bytes));
    let result = json!({
        "tenant": slug.as_str(),
        "path": path.display().to_string(),
        "bytes": bytes.len(),
        "sha256": sha256,
        "tables": manifest.tables.len(),
    });
    queue::complete(conn, job, clock.now(), &result).await?;
    tracing::info!(tenant = %slug, path = %path.display(), "tenant exported by a platform job");
    Ok(result)
}
