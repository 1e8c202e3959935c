-- Every change to tenants or their domains notifies channel `enclave_tenants`, so that each
-- server's in-memory tenant directory (status, vanity domains) refreshes within a second.
CREATE FUNCTION public.enclave_notify_tenant_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_notify('enclave_tenants', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION public.enclave_notify_tenant_change();

CREATE TRIGGER tenant_domains_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.tenant_domains
    FOR EACH STATEMENT EXECUTE FUNCTION public.enclave_notify_tenant_change();
