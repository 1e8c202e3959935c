//! Diesel table definitions. `public` tables are schema-qualified (`public.tenants`);
//! tenant tables are unqualified, so that they resolve through the tenant transaction's
//! `SET LOCAL search_path` and nowhere else. Keep them in step with the migrations.

pub mod public;
pub mod tenant;
