//! What the last drift check verified, and the cheap test of whether a tenant schema can
//! have changed since: what keeps the startup drift check of a large fleet well under a
//! second while hand-run DDL is still caught at the next start.
//!
//! **Why.** The one-query catalog digest (`catalog::digests`) builds and hashes a line per
//! object; at 1,001 schemas of ~675 objects that is 2.6 to 3.2 s, every start. Most starts
//! change nothing in any tenant schema.
//!
//! **How.** (For `public` as for the tenant schemas, each against its own reference.)
//! After a schema was found equal to its reference, `public.enclave_catalog_checks`
//! records its namespace OID, the reference's key, how many rows its *counted* catalogs
//! hold ([`UNCHANGED_SQL`]) and a *horizon*: the `xmin` of the checking transaction's
//! snapshot (every transaction older than it had ended when the catalog was read). Every
//! DDL statement inserts, updates or deletes catalog rows, and PostgreSQL stamps every
//! inserted or updated row version with its transaction id (`xmin`). So at the next check a
//! schema is *unchanged* when
//!
//! - its namespace still has the recorded OID and was not itself rewritten since the horizon,
//! - no catalog row of the schema in `pg_class`, `pg_attribute`, `pg_constraint`,
//!   `pg_trigger`, `pg_proc`, `pg_type`, `pg_enum`, `pg_sequence` or `pg_rewrite` was
//!   written by a transaction at or after the horizon (an `age(xmin)` comparison: no text,
//!   no deparsing, no hashing), and
//! - its counted catalogs (`pg_class`, `pg_constraint`, `pg_trigger`, `pg_proc`,
//!   `pg_type`) hold as many rows as recorded. Deletions leave no `xmin`; these are the
//!   catalogs whose rows can go alone (`DROP TRIGGER`, `DROP FUNCTION`, a dropped foreign
//!   key). The rows of the others go only with a counted row (a relation dropped) or
//!   together with an update (`DROP COLUMN` and `DROP DEFAULT` rewrite the column's
//!   `pg_attribute` row).
//!
//! `pg_index` and `pg_attrdef` are not scanned: what the digest compares of them changes
//! only with a row of the scanned ones (an index is re-created, which inserts its
//! `pg_class` row; `SET DEFAULT` and `DROP DEFAULT` rewrite the column's `pg_attribute`
//! row, `tests/drift.rs` checks each kind of change). Of `pg_trigger` only the
//! user-defined triggers count, as in the digest: the internal ones (four per foreign key)
//! come and go with their `pg_constraint` row.
//!
//! **Cost.** Each catalog is read once, in one pass, with no sort: `pg_class` rows are
//! counted for the listed schemas only; triggers and the (few) young rows find their
//! schema by an index lookup of their relation. At 1,001 tenant schemas `pg_attribute`
//! (1.2 million rows, ~110 ms) is a third of the query; the whole test ~300 ms on 2
//! cores (release, quiet), where it took ~430 ms when it joined every relation to its
//! schema and sorted them to find the young rows'.
//!
//! Then every catalog row it has now existed, unchanged, when it was verified, and there
//! are as many: it is the verified catalog. Only the other schemas — the *suspects*: new,
//! changed, quarantined, never verified, verified against another reference — are
//! re-fingerprinted by the full digest, which alone decides drift: a suspect that still
//! matches (a `GRANT`, an `ALTER … OWNER`, a `TRUNCATE`'s new relfilenode)
//! is simply recorded again. The test never clears drift: a drifted schema has no record
//! and is re-read at every check until it matches.
//!
//! The test and the digest run in one `REPEATABLE READ` snapshot, whose `xmin` becomes the
//! new horizon, so a change committed while a check runs is after the horizon and seen by
//! the next check. The horizon is the *oldest* transaction still running anywhere in the
//! cluster, so a long transaction elsewhere makes recent changes look recent for longer:
//! their schemas are re-read at one more start (never the other way round). Unchanged
//! schemas are recorded again with the new horizon (one statement), so the rows scanned
//! as "young" stay those written since the previous start. A horizon more than a billion
//! transactions old (`age()` is 32-bit) makes its schema a suspect.
//!
//! **What it does not see** (the full comparison does: `enclave tenant repair <slug>`, or
//! a start after `DELETE FROM public.enclave_catalog_checks`, which re-reads every schema):
//! an object moved into or out of an extension (`ALTER EXTENSION … ADD`, which writes only
//! `pg_depend`). Changes PostgreSQL writes in place without a new row version (`VACUUM`'s
//! statistics, an index's validity flags) are not seen either, and the digest does not
//! compare them.
//!
//! **Measured** (`tests/drift.rs`'s ignored `measure_…` test, 1,001 schemas of ~675 objects,
//! 2 cores shared with two other engineers' builds, load average 3 to 5): the full digest
//! of every schema 2.1 to 3.7 s; this test of every schema 0.53 to 0.59 s (0.39 to 0.42 s
//! from `psql`), recording the 1,001 schemas again 7 to 26 ms. End to end, a debug build's
//! `enclave migrate` against a scratch database of 1,002 up-to-date tenants: drift check
//! 550 to 690 ms, the whole command 0.65 to 0.81 s, with one schema changed by hand
//! (1 read again, quarantined) 693 ms; the first start after this change (no records
//! yet) reads every schema, as before. What remains is reading the catalogs once
//! (pg_attribute alone holds 1.2 million rows at 1,001 schemas, 90 ms to count); only the
//! rows written since the horizon are joined to their schema. With the one-pass test and
//! `public` folded into it, `scripts/bench` (release, 1,000 tenants with data, quiet
//! machine) measured the whole `enclave migrate` at 0.31 to 0.36 s; its first start after
//! provisioning the fleet (no records yet) 3.07 s. The test's plan is made of sequential
//! scans and hash aggregates and stays so on a database whose catalogs were never
//! analyzed (`autovacuum = off`, as on the CI machine).

use std::collections::{HashMap, HashSet};

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// For each schema of `$1` (a `text[]`), whether it is unchanged since its record of
/// `public.enclave_catalog_checks` made under its reference key (the same position of
/// `$2`, a `text[]`), and its counted rows.
pub const UNCHANGED_SQL: &str = "\
         WITH ns AS ( \
           SELECT n.oid, n.nspname, age(n.xmin) AS age FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY($1) \
         ), \
         stored AS ( \
           SELECT v.schema_name, v.namespace, v.objects, age(xid(v.horizon::text::xid8)) AS horizon_age \
           FROM public.enclave_catalog_checks v \
           WHERE (v.schema_name, v.reference_key) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
             AND pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint - v.horizon < 1000000000 \
         ), \
         bound AS (SELECT coalesce(max(horizon_age), -1) AS age FROM stored), \
         counted (nsp, n, youngest) AS ( \
           SELECT relnamespace, count(*), min(age(xmin)) FROM pg_catalog.pg_class WHERE relnamespace IN (SELECT oid FROM ns) GROUP BY 1 \
           UNION ALL SELECT connamespace, count(*), min(age(xmin)) FROM pg_catalog.pg_constraint GROUP BY 1 \
           UNION ALL SELECT pronamespace, count(*), min(age(xmin)) FROM pg_catalog.pg_proc GROUP BY 1 \
           UNION ALL SELECT typnamespace, count(*), min(age(xmin)) FROM pg_catalog.pg_type GROUP BY 1 \
           UNION ALL SELECT (SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid = t.tgrelid), count(*), min(age(t.xmin)) \
             FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal GROUP BY t.tgrelid \
         ), \
         young (rel, age) AS ( \
           SELECT attrelid, age(xmin) FROM pg_catalog.pg_attribute WHERE age(xmin) <= (SELECT age FROM bound) \
           UNION ALL SELECT seqrelid, age(xmin) FROM pg_catalog.pg_sequence WHERE age(xmin) <= (SELECT age FROM bound) \
           UNION ALL SELECT ev_class, age(xmin) FROM pg_catalog.pg_rewrite WHERE age(xmin) <= (SELECT age FROM bound) \
         ), \
         young_ns (nsp, youngest) AS ( \
           SELECT (SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid = y.rel), y.age FROM young y \
           UNION ALL SELECT t.typnamespace, age(e.xmin) FROM pg_catalog.pg_enum e \
             JOIN pg_catalog.pg_type t ON t.oid = e.enumtypid WHERE age(e.xmin) <= (SELECT age FROM bound) \
         ), \
         per_ns AS (SELECT nsp, sum(n)::bigint AS n, min(youngest) AS youngest FROM counted GROUP BY nsp), \
         young_per_ns AS (SELECT nsp, min(youngest) AS youngest FROM young_ns GROUP BY nsp) \
         SELECT ns.nspname::text AS schema_name, ns.oid::bigint AS namespace, coalesce(c.n, 0)::bigint AS objects, \
           coalesce(s.namespace = ns.oid::bigint AND s.objects = coalesce(c.n, 0) \
             AND ns.age > s.horizon_age AND coalesce(c.youngest, 2147483647) > s.horizon_age \
             AND coalesce(y.youngest, 2147483647) > s.horizon_age, false) AS unchanged \
         FROM ns \
         LEFT JOIN per_ns c ON c.nsp = ns.oid \
         LEFT JOIN young_per_ns y ON y.nsp = ns.oid \
         LEFT JOIN stored s ON s.schema_name = ns.nspname";

/// One schema as [`UNCHANGED_SQL`] sees it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Seen {
    #[diesel(sql_type = Text)]
    pub schema_name: String,
    /// Its namespace OID (recorded with a check).
    #[diesel(sql_type = BigInt)]
    pub namespace: i64,
    /// Rows of its counted catalogs (recorded with a check).
    #[diesel(sql_type = BigInt)]
    pub objects: i64,
    /// Unchanged since a check found it matching the same reference.
    #[diesel(sql_type = Bool)]
    pub unchanged: bool,
}

/// What [`test`] found: every existing schema of the list, and the snapshot's horizon.
pub struct Tested {
    pub seen: Vec<Seen>,
    /// `xmin` of the snapshot the test (and the digest after it) read.
    pub horizon: i64,
}

impl Tested {
    /// The schemas of `schemas` that must be fingerprinted: not proven unchanged (absent
    /// ones included).
    pub fn suspects(&self, schemas: &[String]) -> Vec<String> {
        let unchanged: HashSet<&str> = self
            .seen
            .iter()
            .filter(|s| s.unchanged)
            .map(|s| s.schema_name.as_str())
            .collect();
        schemas
            .iter()
            .filter(|s| !unchanged.contains(s.as_str()))
            .cloned()
            .collect()
    }
}

/// Tests which of `schemas` are unchanged since their last matching check against their
/// reference (`keys[i]` is the key of `schemas[i]`'s). Run it inside the `REPEATABLE
/// READ` transaction whose snapshot the digest reads too.
pub async fn test(
    conn: &mut AsyncPgConnection,
    schemas: &[String],
    keys: &[&str],
) -> Result<Tested, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Horizon {
        #[diesel(sql_type = BigInt)]
        horizon: i64,
    }
    // JIT off for the rest of the transaction (as for the digests): compiling this query
    // costs more than running it.
    let horizon: Horizon = diesel::sql_query(
        "SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint AS horizon, \
                set_config('jit', 'off', true) AS jit",
    )
    .get_result(conn)
    .await?;
    let seen = diesel::sql_query(UNCHANGED_SQL)
        .bind::<Array<Text>, _>(schemas)
        .bind::<Array<Text>, _>(keys)
        .load(conn)
        .await?;
    Ok(Tested {
        seen,
        horizon: horizon.horizon,
    })
}

/// Records each schema of `matching` (found equal to its reference, or unchanged since;
/// mapped to that reference's key) as verified at `tested.horizon`, and forgets the
/// records of `forget` (drifted) and of schemas that no longer exist (dropped tenants):
/// those are re-read by the next check.
pub async fn record(
    conn: &mut AsyncPgConnection,
    tested: &Tested,
    matching: &HashMap<String, &str>,
    forget: &[String],
) -> Result<(), diesel::result::Error> {
    let rows: Vec<(&Seen, &str)> = tested
        .seen
        .iter()
        .filter_map(|seen| matching.get(&seen.schema_name).map(|key| (seen, *key)))
        .collect();
    let names: Vec<&str> = rows.iter().map(|(s, _)| s.schema_name.as_str()).collect();
    let namespaces: Vec<i64> = rows.iter().map(|(s, _)| s.namespace).collect();
    let objects: Vec<i64> = rows.iter().map(|(s, _)| s.objects).collect();
    let keys: Vec<&str> = rows.iter().map(|(_, key)| *key).collect();
    diesel::sql_query(
        "DELETE FROM public.enclave_catalog_checks v WHERE v.schema_name = ANY($1) \
            OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = v.schema_name)",
    )
    .bind::<Array<Text>, _>(forget)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "INSERT INTO public.enclave_catalog_checks (schema_name, namespace, objects, horizon, reference_key) \
         SELECT s, n, o, $4, k FROM unnest($1::text[], $2::bigint[], $3::bigint[], $5::text[]) AS v (s, n, o, k) \
         ON CONFLICT (schema_name) DO UPDATE SET namespace = EXCLUDED.namespace, objects = EXCLUDED.objects, \
           horizon = EXCLUDED.horizon, reference_key = EXCLUDED.reference_key, checked_at = now()",
    )
    .bind::<Array<Text>, _>(&names)
    .bind::<Array<BigInt>, _>(&namespaces)
    .bind::<Array<BigInt>, _>(&objects)
    .bind::<BigInt, _>(tested.horizon)
    .bind::<Array<Text>, _>(&keys)
    .execute(conn)
    .await
    .map(drop)
}
