//! The *authenticator*: the role every request connection logs in as (PostgREST's model).
//!
//! It owns nothing, is no superuser, cannot bypass row security, is `NOINHERIT`, and has
//! no privilege on any tenant or platform table. It is a member of every tenant role, so a
//! tenant transaction can `SET LOCAL ROLE` to its tenant; without that switch (say, after
//! a `RESET ROLE` or `set_config('role', 'none', true)` slipped into a request) the
//! session can read nothing at all. Migrations, provisioning and platform work use the
//! owner role (`DATABASE_URL`) on their own connections.
//!
//! [`ensure`] runs at every start, after the migrations: it creates the default
//! authenticator when none is configured, refuses to start when the configured one could
//! undo the role switch (superuser, `INHERIT`, member of the owner, owner of objects),
//! grants it every tenant role it lacks (one query when nothing is missing), and removes
//! the database's `TEMPORARY` privilege from `PUBLIC` (a temporary table created under one
//! tenant's role would outlive the transaction and shadow tables of the next tenant served
//! on that backend). When the owner is a superuser it also hides the per-table statistics
//! views (row counts of every tenant's tables) from `PUBLIC`.
//!
//! What remains possible for a session that runs *arbitrary* SQL: `SET ROLE` to another
//! tenant's role (membership is checked against the login role, and the authenticator is a
//! member of all of them), and reading catalog names (`pg_namespace`, `pg_class`). The
//! role switch is a second key against resolver bugs, not a sandbox for injected SQL.

use anyhow::{Context as _, bail};
use diesel::sql_types::{Bool, Text};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::Installation;
use crate::db::{self, quote_ident};

/// The authenticator's name when none is configured: `<role namespace>_authenticator`,
/// which no tenant slug can produce (a slug starts with a letter).
pub fn default_name(role_namespace: &str) -> String {
    format!("{role_namespace}_authenticator")
}

#[derive(QueryableByName, Debug)]
struct RoleFacts {
    #[diesel(sql_type = Bool)]
    superuser: bool,
    #[diesel(sql_type = Bool)]
    inherits: bool,
    #[diesel(sql_type = Bool)]
    bypasses_rls: bool,
    #[diesel(sql_type = Bool)]
    can_login: bool,
    #[diesel(sql_type = Bool)]
    is_owner: bool,
    #[diesel(sql_type = Bool)]
    member_of_owner: bool,
    #[diesel(sql_type = Bool)]
    owns_objects: bool,
    #[diesel(sql_type = Bool)]
    owner_is_superuser: bool,
}

async fn facts(conn: &mut AsyncPgConnection, role: &str) -> diesel::QueryResult<Option<RoleFacts>> {
    diesel::sql_query(
        "SELECT r.rolsuper AS superuser, r.rolinherit AS inherits, r.rolbypassrls AS bypasses_rls, \
                r.rolcanlogin AS can_login, r.rolname = current_user AS is_owner, \
                pg_has_role(r.oid, (SELECT oid FROM pg_roles WHERE rolname = current_user), 'MEMBER') \
                    AS member_of_owner, \
                (EXISTS (SELECT 1 FROM pg_class WHERE relowner = r.oid) \
                 OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspowner = r.oid) \
                 OR EXISTS (SELECT 1 FROM pg_proc WHERE proowner = r.oid)) AS owns_objects, \
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS owner_is_superuser \
         FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind::<Text, _>(role)
    .get_result(conn)
    .await
    .optional()
}

/// Key of the advisory lock that serialises [`ensure`] across processes starting at once
/// (concurrent `CREATE ROLE`, `GRANT` or `REVOKE` on the same catalog rows fail).
const LOCK_KEY: i64 = 0x656e_636c_6175_7468; // "enclauth"

/// Creates (when not configured) and checks the authenticator, grants it every tenant role
/// and hardens the database; see the module doc. Fails with a message saying what to fix.
pub async fn ensure(installation: &Installation) -> anyhow::Result<()> {
    let mut conn = db::connect(&installation.database_url)
        .await
        .with_context(|| format!("cannot connect to {}", db::describe(&installation.database_url)))?;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
        .execute(&mut conn)
        .await
        .context("cannot take the authenticator lock")?;
    let outcome = ensure_locked(&mut conn, installation).await;
    // Released explicitly: a dropped connection closes only when its task next runs, and a
    // caller that blocks its thread right after (a CLI test, say) would keep the lock.
    let _ = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(LOCK_KEY)
        .execute(&mut conn)
        .await;
    outcome
}

async fn ensure_locked(conn: &mut AsyncPgConnection, installation: &Installation) -> anyhow::Result<()> {
    let role = &installation.authenticator;
    let mut found = facts(conn, role).await?;
    if found.is_none() {
        if installation.authenticator_configured {
            bail!(
                "ENCLAVE_AUTHENTICATOR_URL logs in as role {role}, which does not exist; create it with \
                 CREATE ROLE {} LOGIN NOINHERIT PASSWORD '…'",
                quote_ident(role)
            );
        }
        let created = conn
            .batch_execute(&format!(
                "CREATE ROLE {} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
                quote_ident(role)
            ))
            .await;
        found = facts(conn, role).await?;
        if found.is_none() {
            created.with_context(|| {
                format!(
                    "cannot create the authenticator role {role} (the DATABASE_URL user needs CREATEROLE, \
                     or create the role yourself and set ENCLAVE_AUTHENTICATOR_URL)"
                )
            })?;
        }
        tracing::info!(role, "created the authenticator role");
    }
    let Some(facts) = found else {
        bail!("the authenticator role {role} vanished while starting");
    };
    let problem = if facts.is_owner {
        Some("is the DATABASE_URL user itself")
    } else if facts.superuser {
        Some("is a superuser")
    } else if facts.inherits {
        Some("has INHERIT (it would hold every tenant's privileges without switching role)")
    } else if facts.bypasses_rls {
        Some("has BYPASSRLS")
    } else if !facts.can_login {
        Some("cannot log in")
    } else if facts.member_of_owner {
        Some("is a member of the DATABASE_URL user")
    } else if facts.owns_objects {
        Some("owns objects in this database")
    } else {
        None
    };
    if let Some(problem) = problem {
        bail!(
            "the authenticator role {role} {problem}; request connections must log in as a role that owns \
             nothing, is NOINHERIT and no superuser (see README, \"Security\")"
        );
    }
    harden(conn, facts.owner_is_superuser).await?;
    grant_tenant_roles(conn, installation).await
}

/// Removes `TEMPORARY` on the database from `PUBLIC`, and (as a superuser) the
/// per-table statistics views.
async fn harden(conn: &mut AsyncPgConnection, owner_is_superuser: bool) -> anyhow::Result<()> {
    conn.batch_execute(
        "DO $$ BEGIN EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database()); END $$",
    )
    .await
    .context("cannot revoke TEMPORARY on the database from PUBLIC")?;
    if owner_is_superuser {
        conn.batch_execute(
            "REVOKE SELECT ON pg_catalog.pg_stat_all_tables, pg_catalog.pg_stat_user_tables, \
             pg_catalog.pg_stat_xact_all_tables, pg_catalog.pg_stat_xact_user_tables, \
             pg_catalog.pg_statio_all_tables, pg_catalog.pg_statio_user_tables \
             FROM PUBLIC",
        )
        .await
        .context("cannot hide the table statistics views")?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct MissingGrant {
    #[diesel(sql_type = Text)]
    role: String,
}

/// Grants the authenticator every tenant role it is not yet a member of.
async fn grant_tenant_roles(conn: &mut AsyncPgConnection, installation: &Installation) -> anyhow::Result<()> {
    let missing: Vec<MissingGrant> = diesel::sql_query(
        "SELECT r.rolname::text AS role FROM public.tenants t \
         JOIN pg_roles r ON r.rolname = $1 || t.slug \
         WHERE NOT pg_has_role($2, r.oid, 'MEMBER')",
    )
    .bind::<Text, _>(&installation.role_namespace)
    .bind::<Text, _>(&installation.authenticator)
    .load(conn)
    .await
    .context("cannot list the tenant roles")?;
    if missing.is_empty() {
        return Ok(());
    }
    let grants: String = missing
        .iter()
        .map(|m| {
            format!(
                "GRANT {} TO {};",
                quote_ident(&m.role),
                quote_ident(&installation.authenticator)
            )
        })
        .collect();
    conn.batch_execute(&grants)
        .await
        .context("cannot grant the tenant roles to the authenticator")?;
    tracing::info!(roles = missing.len(), "granted tenant roles to the authenticator");
    Ok(())
}
