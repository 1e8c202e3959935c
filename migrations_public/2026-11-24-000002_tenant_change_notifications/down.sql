DROP TRIGGER tenant_domains_changed ON public.tenant_domains;
DROP TRIGGER tenants_changed ON public.tenants;
DROP FUNCTION public.enclave_notify_tenant_change();
