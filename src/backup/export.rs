//! `enclave tenant export`: one tenant's consistent snapshot into an archive.
//!
//! Everything is read in one `REPEATABLE READ READ ONLY` transaction on one connection
//! (see the parent module for why `COPY` rather than `pg_dump`): the tenant's row, domains
//! and memberships from `public` (as JSON, `row_to_json`), its migration ledger, the
//! current value of each of its sequences, and every table of `tenant_<slug>` with
//! `COPY … TO STDOUT` (text format, columns named). Only reads: the tenant keeps serving.

use std::path::Path;

use futures_util::StreamExt as _;

use super::BackupError;
use super::archive::{
    DOMAINS_PART, ENCLAVE_VERSION, FORMAT_VERSION, MEMBERSHIPS_PART, Manifest, MigrationEntry, SequenceEntry,
    TENANT_PART, TableEntry, Writer, copy_rows, table_part,
};
use crate::db::quote_ident;
use crate::tenancy::Installation;
use crate::tenancy::slug::Slug;

/// Exports tenant `slug` to `out` (which must not exist); returns the manifest written.
pub async fn export_tenant(
    installation: &Installation,
    slug: &Slug,
    out: &Path,
) -> Result<Manifest, BackupError> {
    let schema = slug.schema_name();
    let mut writer = Writer::create(out)?;
    let client = super::connect_copy(&installation.database_url).await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;

    let tenant = client
        .query_opt(
            "SELECT row_to_json(t)::text, t.id::text FROM public.tenants t WHERE t.slug = $1",
            &[&slug.as_str()],
        )
        .await?
        .ok_or_else(|| BackupError::Refused(format!("there is no tenant {slug}")))?;
    let (tenant_json, tenant_id): (String, String) = (tenant.get(0), tenant.get(1));
    writer.add(TENANT_PART, tenant_json.as_bytes())?;
    for (part, table, order) in [
        (DOMAINS_PART, "tenant_domains", "domain"),
        (MEMBERSHIPS_PART, "tenant_memberships", "email"),
    ] {
        let row = client
            .query_one(
                &format!(
                    "SELECT coalesce(json_agg(x ORDER BY x.{order}), '[]')::text \
                     FROM public.{table} x WHERE x.tenant_id = $1::text::uuid"
                ),
                &[&tenant_id],
            )
            .await?;
        writer.add(part, row.get::<_, String>(0).as_bytes())?;
    }

    let ledger = |schema: &str| {
        let client = &client;
        let schema = schema.to_owned();
        async move {
            let rows = client
                .query(
                    "SELECT version, checksum FROM public.enclave_schema_migrations \
                     WHERE schema_name = $1 ORDER BY version",
                    &[&schema],
                )
                .await?;
            Ok::<_, BackupError>(
                rows.iter()
                    .map(|r| MigrationEntry {
                        version: r.get(0),
                        checksum: r.get(1),
                    })
                    .collect::<Vec<_>>(),
            )
        }
    };
    let tenant_migrations = ledger(&schema).await?;
    let public_migrations = ledger("public").await?;

    let sequences = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'S' ORDER BY 1",
            &[&schema],
        )
        .await?;
    let mut sequence_entries = Vec::with_capacity(sequences.len());
    for row in sequences {
        let name: String = row.get(0);
        let state = client
            .query_one(
                &format!(
                    "SELECT last_value, is_called FROM {}.{}",
                    quote_ident(&schema),
                    quote_ident(&name)
                ),
                &[],
            )
            .await?;
        sequence_entries.push(SequenceEntry {
            name,
            last_value: state.get(0),
            is_called: state.get(1),
        });
    }

    let tables = table_columns(&client, &schema).await?;
    let mut table_entries = Vec::with_capacity(tables.len());
    for (name, columns) in tables {
        let data = copy_out(&client, &schema, &name, &columns).await?;
        writer.add(&table_part(&name), &data)?;
        table_entries.push(TableEntry {
            rows: copy_rows(&data),
            name,
            columns,
        });
    }
    client.batch_execute("COMMIT").await?;

    let manifest = Manifest {
        format: FORMAT_VERSION,
        enclave_version: ENCLAVE_VERSION.to_owned(),
        created_at: chrono::Utc::now().to_rfc3339(),
        tenant_id: tenant_id
            .parse()
            .map_err(|e| BackupError::Database(format!("tenant id {tenant_id}: {e}")))?,
        slug: slug.to_string(),
        tenant_migrations,
        public_migrations,
        tables: table_entries,
        sequences: sequence_entries,
        parts: writer.parts().clone(),
    };
    let manifest = writer.finish(manifest)?;
    tracing::info!(tenant = %slug, file = %out.display(), tables = manifest.tables.len(), "exported tenant");
    Ok(manifest)
}

/// Every ordinary table of `schema` with its stored columns (generated ones excluded), in
/// column order.
pub(crate) async fn table_columns(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<Vec<(String, Vec<String>)>, BackupError> {
    let rows = client
        .query(
            "SELECT c.relname::text, array_agg(a.attname::text ORDER BY a.attnum) \
             FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
                  AND NOT a.attisdropped AND a.attgenerated = '' \
             WHERE n.nspname = $1 AND c.relkind = 'r' \
             GROUP BY c.relname ORDER BY c.relname",
            &[&schema],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// `COPY schema.table (columns) TO STDOUT`, collected.
async fn copy_out(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
    columns: &[String],
) -> Result<Vec<u8>, BackupError> {
    let sql = format!(
        "COPY {}.{} ({}) TO STDOUT",
        quote_ident(schema),
        quote_ident(table),
        column_list(columns)
    );
    let mut stream = Box::pin(client.copy_out(&sql).await?);
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk?);
    }
    Ok(data)
}

pub(crate) fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}
