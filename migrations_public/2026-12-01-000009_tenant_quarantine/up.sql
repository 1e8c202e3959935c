-- Tenants Enclave took out of service itself (issue 16), and the catalog references that
-- drift is measured against.
--
-- A quarantined tenant's requests are refused with TENANT_UNAVAILABLE, like a suspended
-- tenant's, but the quarantine is Enclave's decision, not an operator's: `drift` when the
-- tenant's schema no longer matches a freshly migrated one (someone ran DDL by hand; the
-- next check after the repair releases it), `migration_failed` when
-- `enclave migrate --continue-on-error` could not migrate it (a later successful
-- migration releases it). `summary` is for operators (the CLI), never for API clients.
CREATE TABLE public.tenant_quarantine (
    tenant_id       uuid PRIMARY KEY REFERENCES public.tenants (id) ON DELETE CASCADE,
    reason          text NOT NULL CHECK (reason IN ('drift', 'migration_failed')),
    summary         text NOT NULL,
    differences     integer NOT NULL DEFAULT 0 CHECK (differences >= 0),
    quarantined_at  timestamptz NOT NULL DEFAULT now(),
    checked_at      timestamptz NOT NULL DEFAULT now()
);

-- Every server's tenant directory reloads when a tenant enters or leaves quarantine.
CREATE TRIGGER tenant_quarantine_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.tenant_quarantine
    FOR EACH STATEMENT EXECUTE FUNCTION public.enclave_notify_tenant_change();

-- The catalog of a freshly migrated schema (`public`, and a tenant schema), built once per
-- migration set, PostgreSQL version and fingerprint query (`key`), so that a restart
-- compares against it without running any DDL. See `enclave::tenancy::migrations::catalog`.
CREATE TABLE public.enclave_catalog_references (
    kind      text PRIMARY KEY CHECK (kind IN ('public', 'tenant')),
    key       text NOT NULL,
    digest    text NOT NULL,
    objects   jsonb NOT NULL CHECK (jsonb_typeof(objects) = 'object'),
    built_at  timestamptz NOT NULL DEFAULT now()
);
