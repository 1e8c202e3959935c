//! Which tenant a worker serves next, from the due-index `public.job_due` (one row per
//! tenant with job work; see the public migration `job_due_index` and the tenant trigger
//! `job_due_touch` that keeps it in the same transaction as the tenant's job rows).
//!
//! One statement picks the active tenant whose work became due earliest, where a tenant
//! counts as due no earlier than the last time a worker took work of it (`served_at`), and
//! marks it served now. A tenant with 10,000 queued jobs therefore goes behind every other
//! tenant with due work after each of its jobs: one job per tenant per round. Suspended
//! tenants are skipped (their jobs pause); dropped tenants' rows vanish with them. The
//! statement reads only due rows of the index, never a tenant schema.
//!
//! The dispatcher uses its own connection of the owner role (platform data, like the
//! tenant directory's), reopened when it breaks. The workers of a process share one
//! dispatcher (`Workers::start`), so the owner connections of the job runtime do not grow
//! with `ENCLAVE_WORKERS` (one for the picks, one for the platform runner, one for the
//! `/metrics` sampler) and stay outside the request pool, whose connections log in as the
//! authenticator and could not read `public.job_due`. A pick is one short statement that
//! never waits for a lock (the row it updates is the one it locked, skipping locked ones),
//! so the workers take turns on the connection for a moment only.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::db;

/// See the module doc.
pub struct Dispatcher {
    database_url: String,
    conn: Mutex<Option<AsyncPgConnection>>,
}

#[derive(QueryableByName)]
struct Picked {
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
}

/// Why no tenant could be picked.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

const PICK: &str = "\
UPDATE public.job_due d SET served_at = $1 \
WHERE d.tenant_id = ( \
    SELECT c.tenant_id FROM public.job_due c \
    JOIN public.tenants t ON t.id = c.tenant_id AND t.status = 'active' \
    WHERE c.due_at <= $1 \
    ORDER BY greatest(c.due_at, c.served_at), c.served_at, c.tenant_id \
    LIMIT 1 FOR UPDATE OF c SKIP LOCKED) \
RETURNING d.tenant_id";

impl Dispatcher {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            conn: Mutex::new(None),
        }
    }

    /// The tenant to serve now, if any has work due at `now` (see the module doc).
    pub async fn next_tenant(&self, now: DateTime<Utc>) -> Result<Option<Uuid>, DispatchError> {
        let mut guard = self.conn.lock().await;
        let conn = match guard.as_mut() {
            Some(conn) => conn,
            None => guard.insert(db::connect(&self.database_url).await?),
        };
        let picked: Result<Option<Picked>, _> = diesel::OptionalExtension::optional(
            diesel::sql_query(PICK)
                .bind::<Timestamptz, _>(now)
                .get_result(conn)
                .await,
        );
        match picked {
            Ok(picked) => Ok(picked.map(|p| p.tenant_id)),
            Err(error) => {
                // Reconnect next time (the connection may be gone).
                *guard = None;
                Err(error.into())
            }
        }
    }
}
