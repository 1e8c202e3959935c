//! A job's transaction: exactly a request's tenant transaction (`Gateway::tenant_tx`:
//! `BEGIN; SET LOCAL search_path` to the tenant's schema, `SET LOCAL ROLE` to the tenant's
//! role, `SET LOCAL statement_timeout`), read-write, without a credential. So a job can
//! reach its own tenant's tables only: PostgreSQL refuses the tenant role any other schema
//! whatever the job's SQL says. Committed when the closure succeeds, rolled back when it
//! fails; dropped half-way (a killed worker), the connection is closed inside the
//! transaction and PostgreSQL rolls it back.

use std::sync::Arc;

use diesel_async::AsyncPgConnection;

use super::error::JobError;
use crate::tenancy::directory::TenantEntry;
use crate::tenancy::gateway::Gateway;
use crate::tenancy::transaction::Access;

/// Runs `work` in one transaction of `tenant` (see the module doc).
pub async fn in_tenant<T>(
    gateway: &Gateway,
    tenant: Arc<TenantEntry>,
    work: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, JobError>,
) -> Result<T, JobError> {
    let tx = gateway.tenant_tx(tenant, Access::ReadWrite, None);
    let outcome = {
        let mut conn = tx.conn().await?;
        work(conn.pg()).await
    };
    match outcome {
        Ok(value) => {
            tx.finish(true).await?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = tx.finish(false).await {
                tracing::debug!(%rollback, "rollback of a failed job transaction failed");
            }
            Err(error)
        }
    }
}
