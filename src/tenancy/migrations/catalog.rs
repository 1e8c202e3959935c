//! Catalog fingerprints: what a schema *is* (tables, columns with their types, nullability
//! and defaults, indexes, constraints, triggers, views, functions, sequences, types), read
//! from PostgreSQL's catalog, normalised so that the schema's own name does not count, and
//! compared with a *reference*: the catalog of a freshly migrated schema.
//!
//! **One query for the whole fleet.** [`digests`] reads every given schema's catalog in ONE
//! statement and returns one digest per schema, computed from the catalog's stored fields
//! (no deparsing, see [`DIGESTS_SQL`]); only the schemas whose digest differs from the
//! reference are read again, object by object and deparsed ([`objects`], again one
//! statement for all of them), to say what differs. A schema is drifted only when that
//! object-by-object comparison finds a difference. A start digests only the schemas that
//! can have changed since a check found them matching (`verified`, which says how that is
//! known cheaply); this digest is the full check. Measured on 1,001 schemas of 675
//! objects each (a scratch database, `tests/drift.rs`'s ignored `measure_…` test): 2.6 to
//! 3.2 s on 2 cores shared with three builds (load average 6 to 9); the same comparison
//! on deparsed text took 25 to 33 s, 5 s of it JIT compilation, which is now off for
//! these queries.
//!
//! **Normalisation.** Every definition [`objects`] reads is PostgreSQL's own deparsed text
//! (`pg_get_indexdef`, `pg_get_constraintdef`, `pg_get_expr`, `pg_get_triggerdef`, …) read
//! with an empty `search_path` (how Enclave connects), so objects are schema-qualified;
//! the schema's own `"<schema>".` prefix is removed. `nextval('tenant_acme.logs_id_seq')`
//! and `nextval('tenant_globex.logs_id_seq')` both become `nextval('logs_id_seq')`, while
//! a reference to *another* schema (`public.tenants`, `tenant_globex.users`) stays and
//! shows as a difference. Column positions are not compared (a restored or re-created
//! table may order them otherwise); names, types and definitions are. Objects that belong
//! to an extension are left out. Privileges and comments are not part of a fingerprint.
//!
//! **The reference.** A tenant schema's reference is built by running every tenant
//! migration into a scratch schema (`enclave_reference`, a name no tenant schema can have)
//! inside a transaction, fingerprinting it and rolling back: nothing is ever committed and
//! no other session sees it. `public`'s migrations name `public` explicitly, so its
//! reference is built the same way after renaming the live `public` aside *inside that
//! transaction* (the rename is rolled back with the rest; catalog changes are invisible
//! to other sessions until commit, and nothing commits). Building a reference costs
//! about as much as provisioning a tenant, so it is stored in
//! `public.enclave_catalog_references` under a key covering the migration set, the
//! PostgreSQL version and the fingerprint query itself: a restart with nothing new reads
//! it back and runs no DDL at all. Any change of migrations, server version or query
//! rebuilds it.

use std::collections::{BTreeMap, HashMap};

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Jsonb, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use sha2::{Digest, Sha256};

use super::ledger::{self, PUBLIC_SCHEMA};
use super::{MigrationError, MigrationSet, describe_db_error, hex};
use crate::db::quote_ident;

/// Scratch schema a tenant reference is built in (never committed).
pub const REFERENCE_SCHEMA: &str = "enclave_reference";

/// Name the live `public` takes while `public`'s reference is built (never committed).
const PUBLIC_ASIDE: &str = "enclave_public_live";

/// The catalog objects of the schemas named by `$1` (a `text[]`): `(nspname, object,
/// definition)` with `object` unique per schema, deparsed and normalised: what
/// [`OBJECTS_SQL`] reads to say how a schema differs.
macro_rules! objects_cte {
    () => {
        "WITH ns AS ( \
           SELECT n.oid, n.nspname, quote_ident(n.nspname) || '.' AS prefix \
           FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY($1) \
         ), \
         rel AS ( \
           SELECT c.oid, c.relname, c.relkind, ns.nspname, ns.prefix \
           FROM pg_catalog.pg_class c JOIN ns ON ns.oid = c.relnamespace \
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
             AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e \
                             WHERE e.classid = 'pg_catalog.pg_class'::regclass \
                               AND e.objid = c.oid AND e.deptype = 'e') \
         ), \
         objects (nspname, object, definition) AS ( \
           SELECT nspname, \
                  CASE relkind WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view ' \
                               WHEN 'S' THEN 'sequence ' WHEN 'f' THEN 'foreign table ' \
                               ELSE 'table ' END || quote_ident(relname), \
                  CASE relkind WHEN 'p' THEN 'partitioned' ELSE '' END \
           FROM rel \
           UNION ALL \
           SELECT r.nspname, 'column ' || quote_ident(r.relname) || '.' || quote_ident(a.attname), \
                  pg_catalog.format_type(a.atttypid, a.atttypmod) \
                  || CASE WHEN a.attnotnull THEN ' not null' ELSE ' null' END \
                  || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END \
                  || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END \
                  || CASE WHEN a.attcollation <> t.typcollation \
                          THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END \
                  || coalesce(' default ' || replace(pg_catalog.pg_get_expr(d.adbin, d.adrelid), r.prefix, ''), '') \
           FROM rel r \
           JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped \
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
           LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
           WHERE r.relkind <> 'S' \
           UNION ALL \
           SELECT r.nspname, 'sequence ' || quote_ident(r.relname) || ' options', \
                  s.seqtypid::regtype::text || ' increment ' || s.seqincrement \
                  || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END \
           FROM rel r JOIN pg_catalog.pg_sequence s ON s.seqrelid = r.oid \
           UNION ALL \
           SELECT r.nspname, 'index ' || quote_ident(ic.relname), \
                  replace(pg_catalog.pg_get_indexdef(i.indexrelid), r.prefix, '') \
           FROM pg_catalog.pg_index i JOIN rel r ON r.oid = i.indrelid \
           JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
           UNION ALL \
           SELECT ns.nspname, \
                  'constraint ' || coalesce(quote_ident(c.relname), 'type ' || con.contypid::regtype::text) \
                  || '.' || quote_ident(con.conname), \
                  replace(pg_catalog.pg_get_constraintdef(con.oid), ns.prefix, '') \
                  || CASE WHEN con.convalidated THEN '' ELSE ' (not validated)' END \
           FROM pg_catalog.pg_constraint con JOIN ns ON ns.oid = con.connamespace \
           LEFT JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
           UNION ALL \
           SELECT r.nspname, 'trigger ' || quote_ident(r.relname) || '.' || quote_ident(tg.tgname), \
                  replace(pg_catalog.pg_get_triggerdef(tg.oid), r.prefix, '') \
                  || CASE tg.tgenabled WHEN 'D' THEN ' (disabled)' ELSE '' END \
           FROM pg_catalog.pg_trigger tg JOIN rel r ON r.oid = tg.tgrelid WHERE NOT tg.tgisinternal \
           UNION ALL \
           SELECT nspname, 'view ' || quote_ident(relname) || ' query', \
                  replace(pg_catalog.pg_get_viewdef(oid), prefix, '') \
           FROM rel WHERE relkind IN ('v', 'm') \
           UNION ALL \
           SELECT ns.nspname, \
                  'function ' || quote_ident(p.proname) || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')', \
                  'md5 ' || md5(replace(pg_catalog.pg_get_functiondef(p.oid), ns.prefix, '')) \
           FROM pg_catalog.pg_proc p JOIN ns ON ns.oid = p.pronamespace \
           WHERE p.prokind IN ('f', 'p') \
             AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e \
                             WHERE e.classid = 'pg_catalog.pg_proc'::regclass \
                               AND e.objid = p.oid AND e.deptype = 'e') \
           UNION ALL \
           SELECT ns.nspname, 'type ' || quote_ident(ty.typname), \
                  CASE ty.typtype WHEN 'e' THEN 'enum (' || coalesce((SELECT string_agg(quote_literal(en.enumlabel), ', ' ORDER BY en.enumsortorder) \
                                                            FROM pg_catalog.pg_enum en WHERE en.enumtypid = ty.oid), '') || ')' \
                                  WHEN 'd' THEN 'domain ' || replace(pg_catalog.format_type(ty.typbasetype, ty.typtypmod), ns.prefix, '') \
                                  ELSE 'kind ' || ty.typtype::text END \
           FROM pg_catalog.pg_type ty JOIN ns ON ns.oid = ty.typnamespace \
           WHERE ty.typtype IN ('e', 'd', 'r', 'm') \
              OR (ty.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_catalog.pg_class cc \
                                               WHERE cc.oid = ty.typrelid AND cc.relkind = 'c')) \
         ) "
    };
}

/// One digest per schema of `$1` (a `text[]`), from the catalog's stored fields rather
/// than deparsed text (deparsing every index, constraint and default of a thousand
/// schemas costs seconds): a count and a sum of 64-bit hashes, one per object, so no
/// sort is needed. Names of the schema's own objects are compared by name, other objects
/// by OID (built-in types, operators and functions have the same OID everywhere);
/// sequence defaults, whose stored form holds the sequence's OID, are deparsed and
/// normalised. Equal catalogs give equal digests; a digest that differs only because of
/// how an equal object is stored (a default re-set by hand to the same value keeps its
/// new text position) is cleared by [`objects`], which compares deparsed definitions.
const DIGESTS_SQL: &str = "\
         WITH ns AS ( \
           SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY($1) \
         ), \
         rel AS ( \
           SELECT c.oid, c.relname, c.relkind, c.reloptions, ns.oid AS nsp, ns.nspname \
           FROM pg_catalog.pg_class c JOIN ns ON ns.oid = c.relnamespace \
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
             AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e') \
         ), \
         lines (nspname, line) AS ( \
           SELECT nspname, concat_ws(' ', 'r', relname, relkind, reloptions) FROM rel \
           UNION ALL \
           SELECT r.nspname, concat_ws(' ', 'c', r.relname, a.attname, a.atttypid, a.atttypmod, a.attnotnull, a.attidentity, a.attgenerated, a.attcollation, \
              CASE WHEN strpos(d.adbin::text, ':consttype 2205 ') > 0 THEN replace(pg_catalog.pg_get_expr(d.adbin, d.adrelid), quote_ident(r.nspname) || '.', '') ELSE d.adbin::text END) \
           FROM rel r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped \
           LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
           WHERE r.relkind <> 'S' \
           UNION ALL \
           SELECT r.nspname, concat_ws(' ', 's', r.relname, s.seqtypid, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle) \
           FROM rel r JOIN pg_catalog.pg_sequence s ON s.seqrelid = r.oid \
           UNION ALL \
           SELECT r.nspname, concat_ws(' ', 'i', r.relname, ic.relname, ic.relam, i.indisunique, i.indisprimary, i.indisexclusion, i.indimmediate, \
              i.indnkeyatts, i.indkey, i.indclass, i.indcollation, i.indoption, i.indexprs, i.indpred, ic.reloptions) \
           FROM pg_catalog.pg_index i JOIN rel r ON r.oid = i.indrelid JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
           UNION ALL \
           SELECT ns.nspname, concat_ws(' ', 'k', c.relname, con.contypid, con.conname, con.contype, con.condeferrable, con.condeferred, con.convalidated, \
              con.conkey, fr.relname, CASE WHEN fr.relnamespace <> ns.oid THEN fr.relnamespace END, con.confkey, con.confupdtype, con.confdeltype, \
              con.confmatchtype, con.conexclop, con.conbin, ci.relname) \
           FROM pg_catalog.pg_constraint con JOIN ns ON ns.oid = con.connamespace \
           LEFT JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
           LEFT JOIN pg_catalog.pg_class fr ON fr.oid = con.confrelid \
           LEFT JOIN pg_catalog.pg_class ci ON ci.oid = con.conindid \
           UNION ALL \
           SELECT r.nspname, concat_ws(' ', 't', r.relname, tg.tgname, tg.tgtype, tg.tgenabled, p.proname, \
              CASE WHEN p.pronamespace <> r.nsp THEN p.pronamespace END, tg.tgattr, tg.tgqual, encode(tg.tgargs, 'hex'), tg.tgdeferrable, tg.tginitdeferred) \
           FROM pg_catalog.pg_trigger tg JOIN rel r ON r.oid = tg.tgrelid JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid \
           WHERE NOT tg.tgisinternal \
           UNION ALL \
           SELECT nspname, concat_ws(' ', 'v', relname, replace(pg_catalog.pg_get_viewdef(oid), quote_ident(nspname) || '.', '')) FROM rel WHERE relkind IN ('v', 'm') \
           UNION ALL \
           SELECT ns.nspname, concat_ws(' ', 'f', p.proname, p.proargtypes, p.prorettype, p.prokind, p.prosecdef, p.provolatile, p.proconfig, p.prolang, md5(p.prosrc)) \
           FROM pg_catalog.pg_proc p JOIN ns ON ns.oid = p.pronamespace \
           WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e') \
           UNION ALL \
           SELECT ns.nspname, concat_ws(' ', 'y', ty.typname, ty.typtype, ty.typbasetype, ty.typtypmod, \
              (SELECT string_agg(en.enumlabel, ',' ORDER BY en.enumsortorder) FROM pg_catalog.pg_enum en WHERE en.enumtypid = ty.oid)) \
           FROM pg_catalog.pg_type ty JOIN ns ON ns.oid = ty.typnamespace \
           WHERE ty.typtype IN ('e', 'd', 'r', 'm') OR (ty.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_catalog.pg_class cc WHERE cc.oid = ty.typrelid AND cc.relkind = 'c')) \
         ) \
         SELECT nspname::text AS schema_name, count(*) AS objects, \
           count(*) || ':' || sum(hashtextextended(line, 0)::numeric) AS digest \
         FROM lines GROUP BY nspname";

/// Every object of every schema of `$1`.
const OBJECTS_SQL: &str = concat!(
    objects_cte!(),
    "SELECT nspname::text AS schema_name, object, definition FROM objects ORDER BY nspname, object"
);

/// A schema's catalog: object → normalised definition (`column devices.hostname` →
/// `text not null`, `index devices_hostname` → `CREATE INDEX … ON devices …`).
pub type Objects = BTreeMap<String, String>;

/// The catalog of a freshly migrated schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// What it was built from (see `reference_key`): a check verified against another
    /// key proves nothing about this reference.
    pub key: String,
    pub digest: String,
    pub objects: Objects,
}

#[derive(QueryableByName)]
struct DigestRow {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    objects: i64,
    #[diesel(sql_type = Text)]
    digest: String,
}

#[derive(QueryableByName)]
struct ObjectRow {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = Text)]
    object: String,
    #[diesel(sql_type = Text)]
    definition: String,
}

/// The digest of each given schema, in ONE catalog query. A schema that does not exist
/// (or has no object at all) is absent from the map.
pub async fn digests(
    conn: &mut AsyncPgConnection,
    schemas: &[String],
) -> Result<HashMap<String, String>, diesel::result::Error> {
    let rows: Vec<DigestRow> = conn
        .transaction(async |conn| {
            without_jit(conn).await?;
            diesel::sql_query(DIGESTS_SQL)
                .bind::<Array<Text>, _>(schemas)
                .load(conn)
                .await
        })
        .await?;
    Ok(rows.into_iter().map(|r| (r.schema_name, r.digest)).collect())
}

/// Every object of each given schema, in one catalog query. A schema that does not exist
/// maps to no objects.
pub async fn objects(
    conn: &mut AsyncPgConnection,
    schemas: &[String],
) -> Result<HashMap<String, Objects>, diesel::result::Error> {
    let rows: Vec<ObjectRow> = conn
        .transaction(async |conn| {
            without_jit(conn).await?;
            diesel::sql_query(OBJECTS_SQL)
                .bind::<Array<Text>, _>(schemas)
                .load(conn)
                .await
        })
        .await?;
    let mut by_schema: HashMap<String, Objects> =
        schemas.iter().map(|s| (s.clone(), Objects::new())).collect();
    for row in rows {
        by_schema
            .entry(row.schema_name)
            .or_default()
            .insert(row.object, row.definition);
    }
    Ok(by_schema)
}

/// Turns JIT compilation off for the rest of the transaction: the catalog queries are
/// planned as expensive (hundreds of thousands of catalog rows for a large fleet), and
/// compiling them took longer (5 s of 9 s for 1,000 schemas) than running them.
async fn without_jit(conn: &mut AsyncPgConnection) -> Result<(), diesel::result::Error> {
    diesel::sql_query("SELECT set_config('jit', 'off', true)")
        .execute(conn)
        .await
        .map(drop)
}

/// How a schema differs from its reference. Empty when it does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogDiff {
    /// In the reference, not in the schema: `(object, reference definition)`.
    pub missing: Vec<(String, String)>,
    /// In the schema, not in the reference: `(object, its definition)`.
    pub extra: Vec<(String, String)>,
    /// In both, defined otherwise: `(object, reference definition, its definition)`.
    pub changed: Vec<(String, String, String)>,
}

impl CatalogDiff {
    /// Compares `actual` with `reference`, object by object.
    pub fn between(reference: &Objects, actual: &Objects) -> Self {
        let mut diff = Self::default();
        for (object, expected) in reference {
            match actual.get(object) {
                None => diff.missing.push((object.clone(), expected.clone())),
                Some(found) if found != expected => {
                    diff.changed
                        .push((object.clone(), expected.clone(), found.clone()));
                }
                Some(_) => {}
            }
        }
        for (object, found) in actual {
            if !reference.contains_key(object) {
                diff.extra.push((object.clone(), found.clone()));
            }
        }
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of differing objects.
    pub fn len(&self) -> usize {
        self.missing.len() + self.extra.len() + self.changed.len()
    }

    /// One line per difference, for operators:
    /// `missing index devices_hostname: CREATE INDEX …`,
    /// `extra column devices.notes: text null`,
    /// `changed column devices.status: expected …, found …`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::with_capacity(self.len());
        for (object, expected) in &self.missing {
            lines.push(format!("missing {object}: {expected}"));
        }
        for (object, found) in &self.extra {
            lines.push(format!("extra {object}: {found}"));
        }
        for (object, expected, found) in &self.changed {
            lines.push(format!("changed {object}: expected {expected}, found {found}"));
        }
        lines
    }
}

impl std::fmt::Display for CatalogDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

/// Which reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceKind {
    Public,
    Tenant,
}

impl ReferenceKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Tenant => "tenant",
        }
    }
}

#[derive(QueryableByName)]
struct StoredReference {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Text)]
    digest: String,
    #[diesel(sql_type = Jsonb)]
    objects: serde_json::Value,
}

#[derive(QueryableByName)]
struct ServerVersion {
    #[diesel(sql_type = Text)]
    version: String,
}

/// The reference of `kind` for `set`: read back from `public.enclave_catalog_references`
/// when its key matches, else built (see the module doc) and stored.
pub async fn reference(
    conn: &mut AsyncPgConnection,
    kind: ReferenceKind,
    set: &MigrationSet,
) -> Result<Reference, MigrationError> {
    let context = |what: &str| format!("cannot {what} the catalog reference of {} schemas", kind.as_str());
    let version: ServerVersion = diesel::sql_query("SELECT current_setting('server_version_num') AS version")
        .get_result(conn)
        .await
        .map_err(|e| MigrationError::database(context("read"), &e))?;
    let key = reference_key(kind, set, &version.version);
    if let Some(found) = stored(conn, kind, &key)
        .await
        .map_err(|e| MigrationError::database(context("read"), &e))?
    {
        return Ok(found);
    }
    // One builder at a time (replicas starting together): concurrent builds of `public`'s
    // reference would deadlock on the renamed schema. The others wait, then read it.
    advisory(conn, "pg_advisory_lock").await?;
    let result = build_and_store(conn, kind, set, &key).await;
    advisory(conn, "pg_advisory_unlock").await?;
    result
}

/// Key of the session advisory lock that serialises reference builds.
const REFERENCE_LOCK_KEY: i64 = 0x656e_636c_7265_6631; // "enclref1"

async fn advisory(conn: &mut AsyncPgConnection, function: &str) -> Result<(), MigrationError> {
    diesel::sql_query(format!("SELECT {function}($1)"))
        .bind::<BigInt, _>(REFERENCE_LOCK_KEY)
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| MigrationError::database("cannot take the catalog reference lock", &e))
}

/// The stored reference of `kind` if it was built under `key`.
async fn stored(
    conn: &mut AsyncPgConnection,
    kind: ReferenceKind,
    key: &str,
) -> Result<Option<Reference>, diesel::result::Error> {
    let stored: Option<StoredReference> = diesel::sql_query(
        "SELECT key, digest, objects FROM public.enclave_catalog_references WHERE kind = $1",
    )
    .bind::<Text, _>(kind.as_str())
    .get_result(conn)
    .await
    .map(Some)
    .or_else(|e| match e {
        diesel::result::Error::NotFound => Ok(None),
        e => Err(e),
    })?;
    Ok(stored.filter(|s| s.key == key).and_then(|stored| {
        serde_json::from_value::<Objects>(stored.objects)
            .ok()
            .map(|objects| Reference {
                key: stored.key,
                digest: stored.digest,
                objects,
            })
    }))
}

/// Builds the reference (unless another process just did) and stores it.
async fn build_and_store(
    conn: &mut AsyncPgConnection,
    kind: ReferenceKind,
    set: &MigrationSet,
    key: &str,
) -> Result<Reference, MigrationError> {
    let context = |what: &str| format!("cannot {what} the catalog reference of {} schemas", kind.as_str());
    if let Some(found) = stored(conn, kind, key)
        .await
        .map_err(|e| MigrationError::database(context("read"), &e))?
    {
        return Ok(found);
    }
    let started = std::time::Instant::now();
    let built = build(conn, kind, set, key).await?;
    diesel::sql_query(
        "INSERT INTO public.enclave_catalog_references (kind, key, digest, objects) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (kind) DO UPDATE SET key = EXCLUDED.key, digest = EXCLUDED.digest, \
           objects = EXCLUDED.objects, built_at = now()",
    )
    .bind::<Text, _>(kind.as_str())
    .bind::<Text, _>(key)
    .bind::<Text, _>(&built.digest)
    .bind::<Jsonb, _>(serde_json::to_value(&built.objects).unwrap_or_default())
    .execute(conn)
    .await
    .map_err(|e| MigrationError::database(context("store"), &e))?;
    tracing::info!(
        kind = kind.as_str(),
        objects = built.objects.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "built the catalog reference of a freshly migrated schema"
    );
    Ok(built)
}

/// What a stored reference was built from: the kind, the migration set, the server
/// version and the queries themselves (changing any of them rebuilds it).
fn reference_key(kind: ReferenceKind, set: &MigrationSet, server_version: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [
        kind.as_str(),
        set.fingerprint(),
        server_version,
        DIGESTS_SQL,
        OBJECTS_SQL,
    ] {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
    hex(&hasher.finalize())
}

/// Why a reference build ended: always in a rollback, with the reference or the error.
enum Built {
    Done(Reference),
    Failed(MigrationError),
}

impl From<diesel::result::Error> for Built {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failed(MigrationError::database(
            "cannot build the catalog reference",
            &error,
        ))
    }
}

/// Migrates a scratch schema inside a transaction, fingerprints it and rolls back.
async fn build(
    conn: &mut AsyncPgConnection,
    kind: ReferenceKind,
    set: &MigrationSet,
    key: &str,
) -> Result<Reference, MigrationError> {
    let outcome = conn
        .transaction::<(), Built, _>(async |conn| {
            let schema = match kind {
                ReferenceKind::Tenant => {
                    conn.batch_execute(&format!("CREATE SCHEMA {}", quote_ident(REFERENCE_SCHEMA)))
                        .await?;
                    REFERENCE_SCHEMA
                }
                ReferenceKind::Public => {
                    conn.batch_execute(&format!(
                        "ALTER SCHEMA public RENAME TO {}; CREATE SCHEMA public; {}",
                        quote_ident(PUBLIC_ASIDE),
                        ledger::BOOTSTRAP_SQL
                    ))
                    .await?;
                    PUBLIC_SCHEMA
                }
            };
            diesel::sql_query("SELECT set_config('search_path', $1, true)")
                .bind::<Text, _>(quote_ident(schema))
                .execute(conn)
                .await?;
            for migration in set.migrations() {
                if let Err(error) = conn.batch_execute(&migration.up).await {
                    return Err(Built::Failed(MigrationError::Failed {
                        schema: format!("{schema} (catalog reference)"),
                        version: migration.version.clone(),
                        message: describe_db_error(&error),
                    }));
                }
            }
            // Read as every other schema is read: with an empty search_path.
            diesel::sql_query("SELECT set_config('search_path', '', true)")
                .execute(conn)
                .await?;
            let names = [schema.to_owned()];
            let digest = digests(conn, &names).await?.remove(schema).unwrap_or_default();
            let objects = objects(conn, &names).await?.remove(schema).unwrap_or_default();
            Err(Built::Done(Reference {
                key: key.to_owned(),
                digest,
                objects,
            }))
        })
        .await;
    match outcome {
        Err(Built::Done(reference)) => Ok(reference),
        Err(Built::Failed(error)) => Err(error),
        Ok(()) => Err(MigrationError::Database {
            context: "cannot build the catalog reference".into(),
            message: "the scratch transaction committed".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(pairs: &[(&str, &str)]) -> Objects {
        pairs
            .iter()
            .map(|(o, d)| ((*o).to_owned(), (*d).to_owned()))
            .collect()
    }

    #[test]
    fn a_diff_names_missing_extra_and_changed_objects() {
        let reference = objects(&[
            ("column devices.hostname", "text not null"),
            (
                "index devices_hostname",
                "CREATE INDEX devices_hostname ON devices USING btree (hostname)",
            ),
            ("column devices.status", "text not null default 'unknown'::text"),
        ]);
        let actual = objects(&[
            ("column devices.hostname", "text not null"),
            ("column devices.notes", "text null"),
            ("column devices.status", "text not null default 'up'::text"),
        ]);
        let diff = CatalogDiff::between(&reference, &actual);
        assert_eq!(diff.len(), 3);
        assert_eq!(
            diff.lines(),
            [
                "missing index devices_hostname: CREATE INDEX devices_hostname ON devices USING btree (hostname)",
                "extra column devices.notes: text null",
                "changed column devices.status: expected text not null default 'unknown'::text, found text not null default 'up'::text",
            ]
        );
        assert!(CatalogDiff::between(&reference, &reference).is_empty());
    }

    #[test]
    fn the_reference_key_changes_with_the_migrations_and_the_server() {
        let a = MigrationSet::new(vec![super::super::Migration::new(
            "1_a",
            "CREATE TABLE a ();",
            "",
        )]);
        let b = MigrationSet::new(vec![super::super::Migration::new(
            "1_a",
            "CREATE TABLE a (x int);",
            "",
        )]);
        let key = reference_key(ReferenceKind::Tenant, &a, "150020");
        assert_eq!(key, reference_key(ReferenceKind::Tenant, &a, "150020"));
        assert_ne!(key, reference_key(ReferenceKind::Tenant, &b, "150020"));
        assert_ne!(key, reference_key(ReferenceKind::Tenant, &a, "160001"));
        assert_ne!(key, reference_key(ReferenceKind::Public, &a, "150020"));
    }
}
