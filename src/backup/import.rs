//! `enclave tenant import`: restores an archive as a tenant, all or nothing.
//!
//! 1. **Verify** the archive (see `archive`): digests, row counts, format and Enclave
//!    version, and that its tenant migrations (versions and checksums) are exactly this
//!    build's. An archive made at other migrations is refused, naming both: migrating an
//!    older archive's data forward is not implemented.
//! 2. **Stage**: create schema `enclave_import_<random>` (a name no tenant schema can
//!    have) and apply every tenant migration to it with the migration runner, in one
//!    transaction, exactly as provisioning does.
//! 3. **Load**: in one transaction, `COPY … FROM STDIN` each table (parents before the
//!    tables that reference them; user triggers off while loading, so no change
//!    notification fires for restored rows), check each table's row count against the
//!    manifest, set the sequences.
//! 4. **Swap**, in ONE transaction: drop the tenant's schema (`--replace`, after carrying
//!    over the revocations of sessions and API tokens it has, so that restoring an older
//!    snapshot revokes nothing less), `ALTER SCHEMA … RENAME` the staging schema to
//!    `tenant_<slug>`, move its ledger entries, write the tenant row, domains and
//!    memberships, and create the tenant role (or re-grant the existing one) for the new
//!    schema. With `--as`, the copy gets a new tenant id (so no token of the original
//!    names it), its copied sessions, API tokens and edge component certificates are
//!    revoked, the original's CA is deleted and a fresh tenant CA created when the edge
//!    is configured (else `serve` creates it at startup); vanity domains are not copied
//!    (they belong to the original).
//!
//! A failure in 2–4 drops the staging schema and its ledger entries; the live tenant is
//! untouched until step 4 commits. A crash between 2 and 4 can leave an
//! `enclave_import_*` schema that no tenant uses: the next start or import drops it (only
//! those no running import claims, see `staging`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::SinkExt as _;

use super::BackupError;
use super::archive::{Archive, DOMAINS_PART, MEMBERSHIPS_PART, Manifest, TENANT_PART};
use super::export::{column_list, table_columns};
use crate::db::{self, quote_ident};
use crate::tenancy::migrations::ledger;
use crate::tenancy::migrations::runner::{MIGRATION_LOCK_KEY, Target, apply};
use crate::tenancy::provision::{self, TenancyError};
use crate::tenancy::slug::Slug;
use crate::tenancy::{Installation, roles};

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Restore as a new tenant with this slug (a copy) instead of the archive's.
    pub as_slug: Option<String>,
    /// Replace the tenant of the same slug if it exists.
    pub replace: bool,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub slug: String,
    pub tenant_id: uuid::Uuid,
    pub replaced: bool,
    pub tables: usize,
    pub rows: u64,
}

/// Imports the archive at `file`; see the module doc.
pub async fn import_tenant(
    installation: &Installation,
    file: &Path,
    options: &ImportOptions,
) -> Result<ImportSummary, BackupError> {
    let archive = Archive::read(file)?;
    let manifest = &archive.manifest;
    check_migrations(installation, manifest)?;
    let source = provision::parse_slug(&manifest.slug)
        .map_err(|e| BackupError::Corrupt(format!("the manifest's tenant: {e}")))?;
    let target = match &options.as_slug {
        Some(_) if options.replace => {
            return Err(BackupError::Refused(
                "--as makes a new tenant; it cannot be combined with --replace".into(),
            ));
        }
        Some(_) if source.is_platform() => {
            return Err(BackupError::Refused(
                "the platform tenant cannot be copied under another slug (its platform admins \
                 would become admins of an ordinary tenant)"
                    .into(),
            ));
        }
        Some(raw) => provision::parse_new_slug(raw)?,
        None => source.clone(),
    };
    let plan = Plan {
        target,
        copy: options.as_slug.is_some(),
        replace: options.replace,
    };

    let mut conn = db::connect(&installation.database_url)
        .await
        .map_err(|e| BackupError::Database(e.to_string()))?;
    // Refuse early what the swap would refuse anyway, before any work.
    if !plan.replace && tenant_id(&mut conn, &plan.target).await?.is_some() {
        return Err(exists(&plan.target));
    }

    // Leftovers of imports that crashed first; then this import's own staging schema,
    // claimed before it exists (see `staging`).
    super::staging::sweep(&mut conn).await?;
    let staging = super::staging::new_name();
    super::staging::claim(&mut conn, &staging).await?;
    let result = async {
        stage(&mut conn, installation, &staging).await?;
        let rows = load(installation, &archive, &staging).await?;
        let id = swap(&mut conn, installation, &archive, &plan, &staging).await?;
        Ok::<_, BackupError>((id, rows))
    }
    .await;
    let outcome = match result {
        Ok((tenant_id, rows)) => {
            tracing::info!(tenant = %plan.target, file = %file.display(), rows, "imported tenant");
            Ok(ImportSummary {
                slug: plan.target.to_string(),
                tenant_id,
                replaced: plan.replace,
                tables: manifest.tables.len(),
                rows,
            })
        }
        Err(error) => {
            if let Err(cleanup) = discard(&mut conn, &staging).await {
                tracing::warn!(schema = staging, error = %cleanup, "could not drop the staging schema; the next import drops it");
            }
            Err(error)
        }
    };
    if let Err(error) = super::staging::release(&mut conn, &staging).await {
        tracing::warn!(schema = staging, %error, "could not release the staging claim; it ends with the connection");
    }
    outcome
}

struct Plan {
    target: Slug,
    copy: bool,
    replace: bool,
}

fn exists(slug: &Slug) -> BackupError {
    BackupError::Refused(format!(
        "tenant {slug} exists; nothing was changed (use --replace to overwrite it, or --as <slug> \
         to import a copy under another slug)"
    ))
}

/// The archive's tenant migrations must be exactly this build's.
fn check_migrations(installation: &Installation, manifest: &Manifest) -> Result<(), BackupError> {
    let ours: Vec<(&str, &str)> = installation
        .migrations
        .tenant
        .migrations()
        .iter()
        .map(|m| (m.version.as_str(), m.checksum.as_str()))
        .collect();
    let theirs: Vec<(&str, &str)> = manifest
        .tenant_migrations
        .iter()
        .map(|m| (m.version.as_str(), m.checksum.as_str()))
        .collect();
    if ours == theirs {
        return Ok(());
    }
    let unknown = theirs
        .iter()
        .find(|(v, c)| !ours.iter().any(|(ov, oc)| ov == v && oc == c));
    let latest = |list: &[(&str, &str)]| list.last().map(|(v, _)| (*v).to_owned()).unwrap_or_default();
    let reason = match unknown {
        Some((version, _)) if installation.migrations.tenant.get(version).is_none() => format!(
            "it has tenant migration {version}, which this build does not know (the archive is newer)"
        ),
        Some((version, _)) => {
            format!("its tenant migration {version} has another checksum than this build's")
        }
        None => format!(
            "it was made at tenant migration {} and this build is at {}; restoring older archives \
             is not supported: restore it with the Enclave version that made it, migrate, and export again",
            latest(&theirs),
            latest(&ours)
        ),
    };
    Err(BackupError::Unsupported(reason))
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
}

async fn tenant_id(conn: &mut AsyncPgConnection, slug: &Slug) -> Result<Option<uuid::Uuid>, BackupError> {
    let rows: Vec<IdRow> = diesel::sql_query("SELECT id FROM public.tenants WHERE slug = $1 FOR UPDATE")
        .bind::<Text, _>(slug.as_str())
        .load(conn)
        .await?;
    Ok(rows.into_iter().next().map(|r| r.id))
}

async fn take_shared_migration_lock(conn: &mut AsyncPgConnection) -> Result<(), BackupError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(conn)
        .await?;
    Ok(())
}

/// Step 2: the staging schema with every tenant migration, in one transaction. Its
/// objects are granted to the owner itself for now (the runner grants a role); the
/// tenant role gets them at the swap.
async fn stage(
    conn: &mut AsyncPgConnection,
    installation: &Installation,
    staging: &str,
) -> Result<(), BackupError> {
    #[derive(QueryableByName)]
    struct Me {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let set = &installation.migrations.tenant;
    let all: Vec<_> = set.migrations().iter().collect();
    let lock_timeout = installation.migration_lock_timeout;
    conn.transaction(async |conn| {
        take_shared_migration_lock(conn).await?;
        let me: Me = diesel::sql_query("SELECT current_user::text AS name")
            .get_result(conn)
            .await?;
        conn.batch_execute(&format!("CREATE SCHEMA {}", quote_ident(staging)))
            .await?;
        let target = Target::Tenant {
            schema: staging,
            role: &me.name,
        };
        apply(conn, &target, set, &all, lock_timeout).await?;
        Ok::<_, BackupError>(())
    })
    .await
}

/// Step 3: the data, in one transaction on a `COPY` connection. Returns the rows loaded.
async fn load(installation: &Installation, archive: &Archive, staging: &str) -> Result<u64, BackupError> {
    let manifest = &archive.manifest;
    let client = super::connect_copy(&installation.database_url).await?;
    client.batch_execute("BEGIN").await?;
    let tables: BTreeMap<String, Vec<String>> = table_columns(&client, staging).await?.into_iter().collect();
    let archived: BTreeMap<&str, &super::archive::TableEntry> =
        manifest.tables.iter().map(|t| (t.name.as_str(), t)).collect();
    for (name, columns) in &tables {
        match archived.get(name.as_str()) {
            Some(entry) if &entry.columns == columns => {}
            Some(_) => {
                return Err(BackupError::Unsupported(format!(
                    "table {name} has other columns in the archive than in this build"
                )));
            }
            None => {
                return Err(BackupError::Unsupported(format!(
                    "the archive has no table {name}"
                )));
            }
        }
    }
    if let Some(extra) = archived.keys().find(|name| !tables.contains_key(**name)) {
        return Err(BackupError::Unsupported(format!(
            "the archive has a table {extra} that this build does not have"
        )));
    }

    let mut total = 0;
    // The migrations seed a few rows (every tenant's default job schedules): the
    // archive's rows replace them, as everything else.
    let seeded: Vec<String> = tables
        .keys()
        .map(|name| format!("{}.{}", quote_ident(staging), quote_ident(name)))
        .collect();
    if !seeded.is_empty() {
        client
            .batch_execute(&format!("TRUNCATE {}", seeded.join(", ")))
            .await?;
    }
    for name in load_order(&client, staging, &tables).await? {
        let entry = archived
            .get(name.as_str())
            .ok_or_else(|| BackupError::Unsupported(format!("the archive has no table {name}")))?;
        let data = archive.part(&entry.part())?;
        let table = format!("{}.{}", quote_ident(staging), quote_ident(&name));
        client
            .batch_execute(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
            .await?;
        let sql = format!("COPY {table} ({}) FROM STDIN", column_list(&entry.columns));
        let mut sink = Box::pin(client.copy_in(&sql).await?);
        sink.send(VecDeque::from(data.to_vec())).await?;
        let rows = sink.as_mut().finish().await?;
        if rows != entry.rows {
            return Err(BackupError::Corrupt(format!(
                "table {name}: {rows} rows loaded, the manifest says {}",
                entry.rows
            )));
        }
        client
            .batch_execute(&format!("ALTER TABLE {table} ENABLE TRIGGER USER"))
            .await?;
        total += rows;
    }
    for sequence in &manifest.sequences {
        let name = format!("{}.{}", quote_ident(staging), quote_ident(&sequence.name));
        tokio_postgres::Client::execute(
            &client,
            "SELECT setval($1::text::regclass, $2, $3)",
            &[&name, &sequence.last_value, &sequence.is_called],
        )
        .await
        .map_err(|e| {
            BackupError::Unsupported(format!(
                "sequence {}: {}",
                sequence.name,
                db::pg_error_message(&e)
            ))
        })?;
    }
    client.batch_execute("COMMIT").await?;
    Ok(total)
}

/// Tables in an order where every table comes after the tables its foreign keys
/// reference (references of a table to itself are checked at the end of its `COPY`).
async fn load_order(
    client: &tokio_postgres::Client,
    schema: &str,
    tables: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, BackupError> {
    let edges = client
        .query(
            "SELECT c.relname::text, p.relname::text FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE k.contype = 'f' AND n.nspname = $1 AND c.oid <> p.oid",
            &[&schema],
        )
        .await?;
    let mut parents: HashMap<String, BTreeSet<String>> = HashMap::new();
    for edge in edges {
        let (child, parent): (String, String) = (edge.get(0), edge.get(1));
        parents.entry(child).or_default().insert(parent);
    }
    let mut order = Vec::with_capacity(tables.len());
    let mut done: BTreeSet<String> = BTreeSet::new();
    while order.len() < tables.len() {
        let ready: Vec<String> = tables
            .keys()
            .filter(|t| !done.contains(*t))
            .filter(|t| {
                parents
                    .get(*t)
                    .is_none_or(|ps| ps.iter().all(|p| done.contains(p) || !tables.contains_key(p)))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(BackupError::Unsupported(
                "the tenant tables' foreign keys form a cycle; they cannot be loaded in order".into(),
            ));
        }
        for table in ready {
            done.insert(table.clone());
            order.push(table);
        }
    }
    Ok(order)
}

/// Step 4; see the module doc. Returns the tenant id.
async fn swap(
    conn: &mut AsyncPgConnection,
    installation: &Installation,
    archive: &Archive,
    plan: &Plan,
    staging: &str,
) -> Result<uuid::Uuid, BackupError> {
    let tenant_row = archive.json(TENANT_PART)?;
    let domains = archive.json(DOMAINS_PART)?;
    let memberships = archive.json(MEMBERSHIPS_PART)?;
    let schema = plan.target.schema_name();
    let role = installation.tenant_role(&plan.target);
    let (quoted_schema, quoted_role) = (quote_ident(&schema), quote_ident(&role));
    conn.transaction(async |conn| {
        take_shared_migration_lock(conn).await?;
        let existing = tenant_id(conn, &plan.target).await?;
        let id = match existing {
            Some(_) if !plan.replace => return Err(exists(&plan.target)),
            Some(id) => {
                // Sessions and API tokens revoked since the snapshot stay revoked.
                for table in ["tokens", "api_tokens"] {
                    conn.batch_execute(&format!(
                        "UPDATE {staging_q}.{table} n SET revoked_at = o.revoked_at \
                         FROM {quoted_schema}.{table} o \
                         WHERE n.id = o.id AND o.revoked_at IS NOT NULL AND n.revoked_at IS NULL",
                        staging_q = quote_ident(staging)
                    ))
                    .await?;
                }
                conn.batch_execute(&format!("DROP SCHEMA {quoted_schema} CASCADE"))
                    .await?;
                let name = tenant_row
                    .get("name")
                    .and_then(|v| v.as_str())
                    .unwrap_or(plan.target.as_str());
                let status = tenant_row
                    .get("status")
                    .and_then(|v| v.as_str())
                    .unwrap_or("active");
                diesel::sql_query(
                    "UPDATE public.tenants SET name = $2, status = $3, updated_at = now() WHERE id = $1",
                )
                .bind::<diesel::sql_types::Uuid, _>(id)
                .bind::<Text, _>(name)
                .bind::<Text, _>(status)
                .execute(conn)
                .await?;
                diesel::sql_query(
                    "WITH d AS (DELETE FROM public.tenant_domains WHERE tenant_id = $1) \
                     DELETE FROM public.tenant_memberships WHERE tenant_id = $1",
                )
                .bind::<diesel::sql_types::Uuid, _>(id)
                .execute(conn)
                .await?;
                id
            }
            None => {
                let id = if plan.copy {
                    uuid::Uuid::new_v4()
                } else {
                    archive.manifest.tenant_id
                };
                let mut row = tenant_row.clone();
                if let Some(object) = row.as_object_mut() {
                    object.insert("id".into(), id.to_string().into());
                    object.insert("slug".into(), plan.target.as_str().into());
                }
                insert_json(conn, "tenants", &serde_json::Value::Array(vec![row]), None)
                    .await
                    .map_err(|e| match e {
                        BackupError::Database(m) if m.contains("tenants_slug_key") => exists(&plan.target),
                        BackupError::Database(m) if m.contains("tenants_pkey") => {
                            BackupError::Refused(format!(
                                "tenant id {id} of the archive belongs to another tenant here; \
                             use --as <slug> to import a copy"
                            ))
                        }
                        other => other,
                    })?;
                id
            }
        };
        if !plan.copy {
            insert_json(conn, "tenant_domains", &domains, Some(id))
                .await
                .map_err(|e| match e {
                    BackupError::Database(m) if m.contains("tenant_domains_pkey") => BackupError::Refused(
                        "a vanity domain of the archive belongs to another tenant here".into(),
                    ),
                    other => other,
                })?;
        }
        insert_json(conn, "tenant_memberships", &memberships, Some(id)).await?;

        if schema_exists(conn, &schema).await? {
            return Err(BackupError::Refused(format!(
                "schema {schema} exists without a tenant (left over?); drop it first"
            )));
        }
        // The schema does not exist: whatever the ledger still says about it is stale.
        ledger::forget(conn, &schema).await?;
        conn.batch_execute(&format!(
            "ALTER SCHEMA {} RENAME TO {quoted_schema}",
            quote_ident(staging)
        ))
        .await?;
        diesel::sql_query(
            "WITH m AS (UPDATE public.enclave_schema_migrations SET schema_name = $2 WHERE schema_name = $1) \
             UPDATE public.enclave_schema_state SET schema_name = $2 WHERE schema_name = $1",
        )
        .bind::<Text, _>(staging)
        .bind::<Text, _>(&schema)
        .execute(conn)
        .await?;

        if role_exists(conn, &role).await? {
            if existing.is_none() {
                return Err(TenancyError::RoleExists(role.clone()).into());
            }
            conn.batch_execute(&format!("GRANT USAGE ON SCHEMA {quoted_schema} TO {quoted_role}"))
                .await?;
        } else {
            conn.batch_execute(&roles::create_sql(&schema, &role, &installation.authenticator))
                .await?;
        }
        conn.batch_execute(&roles::grant_on_objects_sql(&schema, &role))
            .await?;

        if plan.copy {
            conn.batch_execute(&format!(
                "UPDATE {s}.tokens SET revoked_at = now() WHERE revoked_at IS NULL; \
                 UPDATE {s}.api_tokens SET revoked_at = now() WHERE revoked_at IS NULL; \
                 UPDATE {s}.edge_components SET revoked_at = now() WHERE revoked_at IS NULL; \
                 DELETE FROM {s}.tenant_cas;",
                s = quoted_schema
            ))
            .await?;
            if let Some(edge) = &installation.edge {
                edge.insert_tenant_ca(conn, &plan.target)
                    .await
                    .map_err(|e| TenancyError::Edge(e.to_string()))?;
            }
        }
        // The rows were loaded with triggers off: recompute the tenant's row of the job
        // due-index (a statement trigger fires even when no row changes).
        conn.batch_execute(&format!(
            "UPDATE {quoted_schema}.job_schedules SET enabled = enabled WHERE false"
        ))
        .await?;
        Ok::<_, BackupError>(id)
    })
    .await
}

/// Inserts JSON rows (`row_to_json` objects) into `public.<table>`, naming only the
/// columns the rows have (so columns added later get their defaults), with `tenant_id`
/// set to `tenant` when given.
async fn insert_json(
    conn: &mut AsyncPgConnection,
    table: &str,
    rows: &serde_json::Value,
    tenant: Option<uuid::Uuid>,
) -> Result<(), BackupError> {
    let mut rows = rows
        .as_array()
        .cloned()
        .ok_or_else(|| BackupError::Corrupt(format!("the {table} part is not a JSON array")))?;
    let Some(first) = <[serde_json::Value]>::first(&rows).and_then(|r| r.as_object()) else {
        return Ok(());
    };
    let columns: Vec<String> = first.keys().map(|k| quote_ident(k)).collect();
    if let Some(id) = tenant {
        for row in &mut rows {
            if let Some(object) = row.as_object_mut() {
                object.insert("tenant_id".into(), id.to_string().into());
            }
        }
    }
    let columns = columns.join(", ");
    diesel::sql_query(format!(
        "INSERT INTO public.{table} ({columns}) \
         SELECT {columns} FROM json_populate_recordset(NULL::public.{table}, $1::json)"
    ))
    .bind::<Text, _>(serde_json::Value::Array(rows).to_string())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

async fn schema_exists(conn: &mut AsyncPgConnection, schema: &str) -> Result<bool, BackupError> {
    let row: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS exists")
            .bind::<Text, _>(schema)
            .get_result(conn)
            .await?;
    Ok(row.exists)
}

async fn role_exists(conn: &mut AsyncPgConnection, role: &str) -> Result<bool, BackupError> {
    let row: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists")
            .bind::<Text, _>(role)
            .get_result(conn)
            .await?;
    Ok(row.exists)
}

/// Drops a staging schema and its ledger entries (after a failed import).
async fn discard(conn: &mut AsyncPgConnection, staging: &str) -> Result<(), BackupError> {
    conn.transaction(async |conn| {
        conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(staging)))
            .await?;
        ledger::forget(conn, staging).await?;
        Ok::<_, BackupError>(())
    })
    .await
}
