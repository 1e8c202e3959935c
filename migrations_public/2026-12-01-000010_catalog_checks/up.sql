-- What the last drift check verified of each tenant schema (issue 16: the startup drift
-- check of 1,000 tenants must stay well under a second). A row says: this schema (this
-- namespace OID) matched the catalog reference built under `reference_key`, it had
-- `objects` rows in the counted catalogs, and every one of its catalog rows was written by
-- a transaction older than `horizon` (an xid8: the xmin of the checking snapshot). The
-- next check re-reads a schema's catalog only when that no longer holds; see
-- `enclave::tenancy::migrations::verified`. A schema that drifted has no row.
CREATE TABLE public.enclave_catalog_checks (
    schema_name    text PRIMARY KEY,
    namespace      bigint NOT NULL,
    objects        bigint NOT NULL CHECK (objects >= 0),
    horizon        bigint NOT NULL CHECK (horizon > 0),
    reference_key  text NOT NULL,
    checked_at     timestamptz NOT NULL DEFAULT now()
);
