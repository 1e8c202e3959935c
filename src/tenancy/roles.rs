//! Each tenant's own PostgreSQL role: the second, independent isolation key.
//!
//! A tenant role cannot log in. It has USAGE on its own schema and only DML on its own
//! tables and sequences; it owns nothing (the migrating role owns every object). Tenant
//! transactions run `SET LOCAL ROLE <tenant role>`, so PostgreSQL itself refuses any
//! other tenant's schema, whatever `search_path` says.

use crate::db::quote_ident;
use crate::tenancy::slug::Slug;

/// `<namespace><slug>`; the namespace is per database (see `db::role_namespace`), so
/// that several Enclave databases can share a cluster. At most 59 bytes.
pub fn role_name(namespace: &str, slug: &Slug) -> String {
    format!("{namespace}{slug}")
}

/// Creates the role and gives it its schema. The current (migrating) user becomes a
/// member so that it may `SET ROLE` to it even when it is not a superuser, and so does the
/// authenticator (request connections), when it exists already (otherwise
/// `authenticator::ensure` grants it at the next start).
pub fn create_sql(schema: &str, role: &str, authenticator: &str) -> String {
    let grant_to_authenticator = format!("GRANT {} TO {}", quote_ident(role), quote_ident(authenticator));
    let (schema, role) = (quote_ident(schema), quote_ident(role));
    format!(
        "CREATE ROLE {role} NOLOGIN NOINHERIT; \
         GRANT {role} TO CURRENT_USER; \
         GRANT USAGE ON SCHEMA {schema} TO {role}; \
         DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {}) THEN EXECUTE {}; END IF; END $$;",
        quote_literal(authenticator),
        quote_literal(&grant_to_authenticator),
    )
}

/// Quotes a SQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// DML on every table and sequence of the schema; run after each migration so that new
/// objects are covered.
pub fn grant_on_objects_sql(schema: &str, role: &str) -> String {
    let (schema, role) = (quote_ident(schema), quote_ident(role));
    format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}; \
         GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role};"
    )
}

/// Removes the role and every privilege it holds in this database.
pub(crate) fn drop_sql(role: &str) -> String {
    let role = quote_ident(role);
    format!("DROP OWNED BY {role}; DROP ROLE {role};")
}
