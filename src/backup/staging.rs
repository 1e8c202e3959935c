//! Staging schemas of imports (`enclave_import_<random>`, a name no tenant schema can
//! have): naming them, the claim an import holds on its own, and the sweep of those a
//! crashed import left behind.
//!
//! **Claim.** An import takes a session advisory lock keyed on its staging schema's name
//! *before* creating it, on the connection it keeps until the end, and releases it once
//! the schema is swapped in (renamed away) or discarded. A process that crashes loses its
//! session and so its lock: a staging schema whose lock nobody holds is nobody's work.
//!
//! **Sweep.** Every import first sweeps, and so does every start (after the migrations,
//! `serve`, `worker`, `migrate` and the CLI commands that open the database): for each `enclave_import_*` schema (and each
//! ledger entry under such a name) it *tries* the lock; if it gets it, it drops the
//! schema with its ledger entries in one transaction, then lets go. A schema whose import
//! is still running is skipped (its lock is held), so two imports running side by side
//! never touch each other's work; a schema renamed in between (swapped in) is no longer
//! under its staging name, and the drop by that name finds nothing.

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Integer, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::BackupError;
use crate::db::quote_ident;
use crate::tenancy::migrations::ledger;

/// What every staging schema's name starts with.
pub const PREFIX: &str = "enclave_import_";

/// First key of the staging claims' advisory locks (the second is the name's hash).
const LOCK_CLASS: i32 = 0x656e_6369; // "enci"

/// A new staging schema name.
pub fn new_name() -> String {
    format!("{PREFIX}{}", uuid::Uuid::new_v4().simple())
}

/// Claims `name` for this session (see the module doc); waits if another session holds
/// the same key (a hash collision: it ends with that import).
pub async fn claim(conn: &mut AsyncPgConnection, name: &str) -> Result<(), BackupError> {
    diesel::sql_query("SELECT pg_advisory_lock($1, hashtext($2))")
        .bind::<Integer, _>(LOCK_CLASS)
        .bind::<Text, _>(name)
        .execute(conn)
        .await?;
    Ok(())
}

/// Lets go of the claim on `name`.
pub async fn release(conn: &mut AsyncPgConnection, name: &str) -> Result<(), BackupError> {
    diesel::sql_query("SELECT pg_advisory_unlock($1, hashtext($2))")
        .bind::<Integer, _>(LOCK_CLASS)
        .bind::<Text, _>(name)
        .execute(conn)
        .await?;
    Ok(())
}

/// Drops every staging schema (and ledger entry) no running import claims; returns their
/// names.
pub async fn sweep(conn: &mut AsyncPgConnection) -> Result<Vec<String>, BackupError> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    #[derive(QueryableByName)]
    struct Claimed {
        #[diesel(sql_type = Bool)]
        claimed: bool,
    }
    let pattern = format!("{}%", PREFIX.replace('_', "\\_"));
    let names: Vec<Name> = diesel::sql_query(
        "SELECT nspname::text AS name FROM pg_catalog.pg_namespace WHERE nspname LIKE $1 \
         UNION SELECT schema_name FROM public.enclave_schema_state WHERE schema_name LIKE $1 \
         ORDER BY 1",
    )
    .bind::<Text, _>(&pattern)
    .load(conn)
    .await?;
    let mut swept = Vec::new();
    for Name { name } in names {
        let got: Claimed = diesel::sql_query("SELECT pg_try_advisory_lock($1, hashtext($2)) AS claimed")
            .bind::<Integer, _>(LOCK_CLASS)
            .bind::<Text, _>(&name)
            .get_result(conn)
            .await?;
        if !got.claimed {
            continue;
        }
        let dropped = conn
            .transaction(async |conn| {
                conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&name)))
                    .await?;
                ledger::forget(conn, &name).await?;
                Ok::<_, BackupError>(())
            })
            .await;
        release(conn, &name).await?;
        dropped?;
        tracing::info!(schema = %name, "dropped a staging schema left by an import that did not finish");
        swept.push(name);
    }
    Ok(swept)
}
